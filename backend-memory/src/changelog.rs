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

use std::hash::Hash;
use std::sync::Arc;

use cornerstone_backend_api::{CheckpointId, Result};
use hashbrown::{Equivalent, HashSet};

/// The change sets of every key group (by index in the backend's range).
type Sets<T> = Vec<HashSet<T>>;

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
            current: (0..groups).map(|_| HashSet::new()).collect(),
            sealed: Vec::new(),
        }
    }

    /// Records a change of `item` in the key group at `index` (`make` builds the owned item
    /// the first time it changes).
    #[inline]
    pub(crate) fn record<Q>(&mut self, index: usize, item: &Q, make: impl FnOnce(&Q) -> T)
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        if let Some(set) = self.current.get_mut(index) {
            set.get_or_insert_with(item, make);
        }
    }

    /// Seals the current sets under `id` and returns every set not yet confirmed, oldest
    /// first: what a delta of checkpoint `id` holds.
    pub(crate) fn seal(&mut self, id: CheckpointId) -> Sealed<T> {
        let groups = self.current.len();
        let sets = std::mem::replace(
            &mut self.current,
            (0..groups).map(|_| HashSet::new()).collect(),
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
        let count = |sets: &Sets<T>| sets.iter().map(HashSet::len).sum::<usize>();
        count(&self.current) + self.sealed.iter().map(|(_, s)| count(s)).sum::<usize>()
    }
}

/// The change sets a delta writes.
pub(crate) struct Sealed<T>(Vec<Arc<Sets<T>>>);

impl<T: Hash + Eq> Sealed<T> {
    /// The number of changes of the key group at `index` (an upper bound when several
    /// sets hold the same item).
    pub(crate) fn len(&self, index: usize) -> usize {
        self.0
            .iter()
            .map(|sets| sets.get(index).map_or(0, HashSet::len))
            .sum()
    }

    /// Visits every item changed in the key group at `index` once.
    pub(crate) fn for_each(&self, index: usize, mut f: impl FnMut(&T) -> Result<()>) -> Result<()> {
        let sets = self.0.iter().filter_map(|sets| sets.get(index));
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
}
