//! Tables filled from a restore key group by key group, by several threads at once when
//! the restore is large.

use cornerstone_backend_api::{StateKey, StateValue};
use hashbrown::HashMap;

use crate::table::{GroupMap, HeapListTable, HeapMapTable, HeapValueTable};

/// A table filled from a restore key group by key group (by several threads at once when
/// the restore is large).
pub(crate) trait Restorable {
    /// What one key group holds.
    type Group: Send;

    /// Makes room for `additional` restored records in `group`.
    fn reserve(_group: &mut Self::Group, _additional: usize) {}

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

            fn restoring_groups(&mut self) -> Vec<&mut Self::Group> {
                self.table.restoring_groups()
            }
        }
    };
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
