//! Changelog mode: what each table and timer queue changed since the last snapshot, per key
//! group, so that a checkpoint writes only the changes (a delta) over the last full snapshot.
//!
//! Every write records its (key, namespace) (a timer: the timer itself) in the current
//! change set of its key group; the last write is what a delta holds, so a set of keys is
//! enough, and the value is read from the snapshot's copy-on-write view when the delta is
//! written. The synchronous phase of a snapshot seals the current sets (a move, no copy) under
//! the checkpoint's id. Sealed sets are kept until a checkpoint at or after them is
//! confirmed complete: a delta holds every change since the last confirmed checkpoint, so a
//! failed or aborted checkpoint loses nothing.
//!
//! A key group whose entries changed for the most part is **whole**: once a table's set of
//! it holds as many keys as half the entries, updates of its entries are no longer
//! recorded (only removals are), and a delta writes every entry of the group, then the
//! removals. A write to a much-changed group thus costs what it costs without changelog
//! mode, and the set stays at most half the group's size, while a delta over a whole group
//! is at most twice what the keys would have written.

use std::hash::Hash;
use std::sync::Arc;

use cornerstone_backend_api::{CheckpointId, Result};
use hashbrown::{Equivalent, HashSet};

/// What changed in one key group during one interval between two checkpoints.
struct Changes<T> {
    /// The items changed (once the group is whole: also every item removed since).
    keys: HashSet<T>,
    /// Whether every entry of the group is to be written (see the module docs).
    whole: bool,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Changes {
            keys: HashSet::new(),
            whole: false,
        }
    }
}

/// The change sets of every key group (by index in the backend's range).
type Sets<T> = Vec<Changes<T>>;

/// What a write left of the entry it changed.
#[derive(Clone, Copy)]
pub(crate) enum Left {
    /// The entry is there (inserted or updated), in a key group that now has `entries`.
    Present { entries: usize },
    /// The entry was removed.
    Removed,
}

/// What a table (or timer queue) changed, since the last snapshot and in the snapshots not
/// yet confirmed.
pub(crate) struct ChangeLog<T> {
    current: Sets<T>,
    sealed: Vec<(CheckpointId, Arc<Sets<T>>)>,
}

impl<T: Hash + Eq> ChangeLog<T> {
    /// An empty log of `groups` key groups.
    pub(crate) fn new(groups: usize) -> Self {
        ChangeLog {
            current: (0..groups).map(|_| Changes::default()).collect(),
            sealed: Vec::new(),
        }
    }

    /// Records a change of `item` in the key group at `index` (`make` builds the owned item
    /// the first time it changes): a timer, which is never part of a whole group.
    #[inline]
    pub(crate) fn record<Q>(&mut self, index: usize, item: &Q, make: impl FnOnce(&Q) -> T)
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        if let Some(changes) = self.current.get_mut(index) {
            changes.keys.get_or_insert_with(item, make);
        }
    }

    /// Records a write of the table entry `item` in the key group at `index`, which `left`
    /// it as it says: nothing for a present entry of a whole group, which becomes whole
    /// when its set reaches half its entries.
    #[inline]
    pub(crate) fn record_entry<Q>(
        &mut self,
        index: usize,
        item: &Q,
        make: impl FnOnce(&Q) -> T,
        left: Left,
    ) where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        let Some(changes) = self.current.get_mut(index) else {
            return;
        };
        match left {
            Left::Present { .. } if changes.whole => {}
            Left::Present { entries } => {
                changes.keys.get_or_insert_with(item, make);
                if changes.keys.len() >= entries.div_ceil(2) {
                    changes.whole = true;
                }
            }
            Left::Removed => {
                changes.keys.get_or_insert_with(item, make);
            }
        }
    }

    /// Seals the current sets under `id` and returns every set not yet confirmed, oldest
    /// first: what a delta of checkpoint `id` holds.
    pub(crate) fn seal(&mut self, id: CheckpointId) -> Sealed<T> {
        let groups = self.current.len();
        let sets = std::mem::replace(
            &mut self.current,
            (0..groups).map(|_| Changes::default()).collect(),
        );
        self.sealed.push((id, Arc::new(sets)));
        Sealed(self.sealed.iter().map(|(_, s)| Arc::clone(s)).collect())
    }

    /// Checkpoint `id` completed with a delta or full snapshot of its own: the sets sealed
    /// up to it are in the confirmed chain.
    pub(crate) fn confirm(&mut self, id: CheckpointId) {
        self.sealed.retain(|(sealed, _)| *sealed > id);
    }

    /// The items recorded and not yet confirmed (counted once per set that holds them).
    pub(crate) fn len(&self) -> usize {
        let count = |sets: &Sets<T>| sets.iter().map(|c| c.keys.len()).sum::<usize>();
        count(&self.current) + self.sealed.iter().map(|(_, s)| count(s)).sum::<usize>()
    }
}

/// The change sets a delta writes.
pub(crate) struct Sealed<T>(Vec<Arc<Sets<T>>>);

impl<T: Hash + Eq> Sealed<T> {
    /// The number of items recorded in the key group at `index` (an upper bound when
    /// several sets hold the same item).
    pub(crate) fn len(&self, index: usize) -> usize {
        self.0
            .iter()
            .map(|sets| sets.get(index).map_or(0, |c| c.keys.len()))
            .sum()
    }

    /// Whether the key group at `index` is whole in one of the sets: a delta writes every
    /// entry of it, then the removals among the items recorded.
    pub(crate) fn whole(&self, index: usize) -> bool {
        self.0
            .iter()
            .any(|sets| sets.get(index).is_some_and(|c| c.whole))
    }

    /// Visits every item recorded in the key group at `index` once.
    pub(crate) fn for_each(&self, index: usize, mut f: impl FnMut(&T) -> Result<()>) -> Result<()> {
        let sets = self
            .0
            .iter()
            .filter_map(|sets| sets.get(index).map(|c| &c.keys));
        if self.0.len() == 1 {
            for item in sets.flatten() {
                f(item)?;
            }
            return Ok(());
        }
        let mut seen: HashSet<&T> = HashSet::new();
        for item in sets.flatten() {
            if seen.insert(item) {
                f(item)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn changed(sealed: &Sealed<u32>, index: usize) -> Vec<u32> {
        let mut v = Vec::new();
        sealed
            .for_each(index, |x| {
                v.push(*x);
                Ok(())
            })
            .unwrap();
        v.sort_unstable();
        v
    }

    /// A delta holds every change since the last confirmed checkpoint: the sets of
    /// checkpoints not confirmed (failed or aborted ones) stay until a later one is.
    #[test]
    fn sets_are_kept_until_a_checkpoint_at_or_after_them_is_confirmed() {
        let mut log = ChangeLog::<u32>::new(2);
        log.record(0, &1, |x| *x);
        log.record(0, &1, |x| *x);
        log.record(1, &7, |x| *x);
        let first = log.seal(CheckpointId(1));
        assert_eq!((changed(&first, 0), changed(&first, 1)), (vec![1], vec![7]));
        // Checkpoint 1 is not confirmed (it failed): checkpoint 2's delta holds both.
        log.record(0, &2, |x| *x);
        log.record(0, &1, |x| *x);
        let second = log.seal(CheckpointId(2));
        assert_eq!(changed(&second, 0), vec![1, 2]);
        assert_eq!(second.len(0), 3, "an upper bound: 1 is in both sets");
        log.confirm(CheckpointId(2));
        assert_eq!(log.len(), 0);
        log.record(1, &9, |x| *x);
        let third = log.seal(CheckpointId(3));
        assert_eq!((changed(&third, 0), changed(&third, 1)), (vec![], vec![9]));
        // A late confirmation of an older checkpoint drops nothing newer.
        log.confirm(CheckpointId(1));
        assert_eq!(log.len(), 1);
    }

    /// A key group becomes whole when its set reaches half its entries: then updates of
    /// present entries are not recorded, removals still are, and the next interval starts
    /// over.
    #[test]
    fn a_group_becomes_whole_at_half_its_entries() {
        let mut log = ChangeLog::<u32>::new(2);
        let present = Left::Present { entries: 10 };
        for key in 0..4 {
            log.record_entry(0, &key, |x| *x, present);
        }
        log.record_entry(1, &0, |x| *x, Left::Present { entries: 1 });
        let sealed = log.seal(CheckpointId(1));
        assert!(!sealed.whole(0), "4 of 10 entries");
        assert!(sealed.whole(1), "the one entry of a group of one");
        for key in 0..5 {
            log.record_entry(0, &key, |x| *x, present);
        }
        log.record_entry(0, &9, |x| *x, present);
        log.record_entry(0, &7, |x| *x, Left::Removed);
        let sealed = log.seal(CheckpointId(2));
        assert!(sealed.whole(0));
        assert_eq!(
            changed(&sealed, 0),
            vec![0, 1, 2, 3, 4, 7],
            "the update of 9 came after the group was whole; the removal of 7 did not"
        );
        log.confirm(CheckpointId(2));
        log.record_entry(0, &1, |x| *x, present);
        let sealed = log.seal(CheckpointId(3));
        assert!(!sealed.whole(0), "a new interval starts over");
        assert_eq!(changed(&sealed, 0), vec![1]);
    }
}
