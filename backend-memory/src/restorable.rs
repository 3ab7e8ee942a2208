//! Tables filled from a restore key group by key group, by several threads at once when
//! the restore is large.

use cornerstone_backend_api::spi::codec;
use cornerstone_backend_api::spi::keyed_format::Fields;
use cornerstone_backend_api::{Result, StateKey, StateValue};
use hashbrown::HashMap;

use crate::table::{GroupMap, HeapListTable, HeapMapTable, HeapValueTable};
use crate::timers::{Group as TimerGroup, HeapTimerQueue, remove_record};

/// A table filled from a restore key group by key group (by several threads at once when
/// the restore is large).
pub(crate) trait Restorable {
    /// What one key group holds.
    type Group: Send;

    /// Makes room for `additional` restored records in `group`.
    fn reserve(_group: &mut Self::Group, _additional: usize) {}

    /// Applies the removal record `r` (of a changelog's delta) to `group`.
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::Corrupted`] when its fields do not decode.
    fn remove(group: &mut Self::Group, r: Fields<'_>) -> Result<()>;

    /// Every key group, by index in the backend's range, unshared.
    fn restoring_groups(&mut self) -> Vec<&mut Self::Group>;

    /// Called once every key group is filled.
    fn restored(&mut self) {}
}

macro_rules! restorable {
    ($ty:ident < $($g:ident),+ >, $group:ty, $reserve:expr, $($bounds:tt)+) => {
        impl<$($g),+> Restorable for $ty<$($g),+>
        where
            $($bounds)+
        {
            type Group = $group;

            fn reserve(group: &mut Self::Group, additional: usize) {
                if $reserve {
                    group.reserve(additional);
                }
            }

            fn remove(group: &mut Self::Group, r: Fields<'_>) -> Result<()> {
                group.remove(&(codec::decode(r.key)?, codec::decode(r.namespace)?));
                Ok(())
            }

            fn restoring_groups(&mut self) -> Vec<&mut Self::Group> {
                self.table.restoring_groups()
            }
        }
    };
}

impl Restorable for HeapTimerQueue {
    type Group = TimerGroup;

    fn remove(group: &mut TimerGroup, r: Fields<'_>) -> Result<()> {
        remove_record(group, r.key, r.namespace, r.value)
    }

    fn restoring_groups(&mut self) -> Vec<&mut TimerGroup> {
        self.restoring_groups()
    }

    fn restored(&mut self) {
        self.restored();
    }
}

restorable!(HeapValueTable<K, V, N>, GroupMap<K, N, V>, true, K: StateKey, N: StateKey, V: StateValue);

restorable!(HeapListTable<K, T, N>, GroupMap<K, N, Vec<T>>, true, K: StateKey, N: StateKey, T: StateValue);

// Map records are entries: their number says nothing of the number of maps.
restorable!(
    HeapMapTable<K, UK, UV, N>,
    GroupMap<K, N, HashMap<UK, UV>>,
    false,
    K: StateKey, N: StateKey, UK: StateKey, UV: StateValue
);
