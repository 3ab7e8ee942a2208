//! Changelog mode: what each table and timer queue changed since the last snapshot, per key
//! group, so that a checkpoint writes only the changes (a delta) over the last full snapshot.
//!
//! Every write appends its (key, namespace) (a timer: the timer itself) to the current
//! change log of its key group: a push onto a vector, the cheapest record a write can make.
//! The last write is what a delta holds, so repeats are dropped: by the asynchronous phase
//! when it writes the delta, and by the writes themselves whenever a log doubled since it
//! was last deduplicated (or reached half its group's entries), which keeps a log within
//! twice its distinct items and costs a write a constant amortized share. The value is read
//! from the snapshot's copy-on-write view when the delta is written. The synchronous phase
//! of a snapshot seals the current logs (a move, no copy) under the checkpoint's id. Sealed
//! logs are kept until a checkpoint at or after them is confirmed complete: a delta holds
//! every change since the last confirmed checkpoint, so a failed or aborted checkpoint
//! loses nothing.
//!
//! A key group whose entries changed for the most part is **whole**: once a table's log of
//! it holds distinct keys for half the entries, updates of its entries are no longer
//! recorded (only removals are), and a delta writes every entry of the group, then the
//! removals. A write to a much-changed group thus costs what it costs without changelog
//! mode, and the log stays within the group's size, while a delta over a whole group is at
//! most twice what the keys would have written.

use std::hash::Hash;
use std::sync::Arc;

use cornerstone_backend_api::{CheckpointId, Result};
use hashbrown::HashSet;

/// The length below which a log is never deduplicated: a few repeats cost less than a pass.
const MIN_DEDUP: usize = 32;

/// What changed in one key group during one interval between two checkpoints.
struct Changes<T> {
    /// The items changed, in the order of their changes, with repeats (once the group is
    /// whole: also every item removed since).
    log: Vec<T>,
    /// Twice what the last deduplication left: the length at which the log is deduplicated
    /// next (at least [`MIN_DEDUP`], or for a table entry half its group's entries).
    next_dedup: usize,
    /// Whether every entry of the group is to be written (see the module docs).
    whole: bool,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Changes {
            log: Vec::new(),
            next_dedup: 0,
            whole: false,
        }
    }
}

impl<T: Hash + Eq> Changes<T> {
    /// Drops the repeats of the log (the order does not matter: each item's last write is
    /// read from the table) and sets the next pass at twice what is left.
    #[cold]
    fn dedup(&mut self) {
        let distinct: HashSet<T> = self.log.drain(..).collect();
        self.log.extend(distinct);
        self.next_dedup = 2 * self.log.len();
    }

    /// Appends `item` and, once the log has doubled since the last pass and reached `at`,
    /// drops its repeats; returns whether it did.
    #[inline]
    fn push(&mut self, item: T, at: usize) -> bool {
        self.log.push(item);
        let due = self.log.len() >= self.next_dedup.max(at);
        if due {
            self.dedup();
        }
        due
    }

    /// The number of distinct items in the log.
    fn distinct(&self) -> usize {
        self.log.iter().collect::<HashSet<&T>>().len()
    }
}

/// The change logs of every key group (by index in the backend's range).
type Logs<T> = Vec<Changes<T>>;

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
    current: Logs<T>,
    sealed: Vec<(CheckpointId, Arc<Logs<T>>)>,
}

impl<T: Hash + Eq> ChangeLog<T> {
    /// An empty log of `groups` key groups.
    pub(crate) fn new(groups: usize) -> Self {
        ChangeLog {
            current: (0..groups).map(|_| Changes::default()).collect(),
            sealed: Vec::new(),
        }
    }

    /// Records a change of `item` in the key group at `index`: a timer, which is never part
    /// of a whole group.
    #[inline]
    pub(crate) fn record(&mut self, index: usize, item: T) {
        if let Some(changes) = self.current.get_mut(index) {
            changes.push(item, MIN_DEDUP);
        }
    }

    /// Records a write of a table entry in the key group at `index`, which `left` it as it
    /// says: nothing for a present entry of a whole group (`item` builds the owned entry
    /// only when it is recorded), which becomes whole when its log holds distinct keys for
    /// half its entries.
    #[inline]
    pub(crate) fn record_entry(&mut self, index: usize, left: Left, item: impl FnOnce() -> T) {
        let Some(changes) = self.current.get_mut(index) else {
            return;
        };
        match left {
            Left::Present { .. } if changes.whole => {}
            Left::Present { entries } => {
                let half = entries.div_ceil(2);
                if changes.push(item(), half) {
                    changes.whole = changes.log.len() >= half;
                }
            }
            Left::Removed => {
                changes.push(item(), MIN_DEDUP);
            }
        }
    }

    /// Seals the current logs under `id` and returns every log not yet confirmed, oldest
    /// first: what a delta of checkpoint `id` holds. Each new log starts with room for as
    /// many changes as the one sealed, so that a steady job's writes do not grow it.
    pub(crate) fn seal(&mut self, id: CheckpointId) -> Sealed<T> {
        let next = self
            .current
            .iter()
            .map(|c| Changes {
                log: Vec::with_capacity(c.log.len()),
                ..Changes::default()
            })
            .collect();
        let logs = std::mem::replace(&mut self.current, next);
        self.sealed.push((id, Arc::new(logs)));
        Sealed(self.sealed.iter().map(|(_, s)| Arc::clone(s)).collect())
    }

    /// Checkpoint `id` completed with a delta or full snapshot of its own: the logs sealed
    /// up to it are in the confirmed chain.
    pub(crate) fn confirm(&mut self, id: CheckpointId) {
        self.sealed.retain(|(sealed, _)| *sealed > id);
    }

    /// The items recorded and not yet confirmed (counted once per log that holds them).
    pub(crate) fn len(&self) -> usize {
        let count = |logs: &Logs<T>| logs.iter().map(Changes::distinct).sum::<usize>();
        count(&self.current) + self.sealed.iter().map(|(_, s)| count(s)).sum::<usize>()
    }
}

/// The change logs a delta writes.
pub(crate) struct Sealed<T>(Vec<Arc<Logs<T>>>);

impl<T: Hash + Eq> Sealed<T> {
    /// The number of items recorded in the key group at `index` (an upper bound: repeats
    /// are counted).
    pub(crate) fn len(&self, index: usize) -> usize {
        self.0
            .iter()
            .map(|logs| logs.get(index).map_or(0, |c| c.log.len()))
            .sum()
    }

    /// Whether the key group at `index` is whole in one of the logs: a delta writes every
    /// entry of it, then the removals among the items recorded.
    pub(crate) fn whole(&self, index: usize) -> bool {
        self.0
            .iter()
            .any(|logs| logs.get(index).is_some_and(|c| c.whole))
    }

    /// Visits every item recorded in the key group at `index` once.
    pub(crate) fn for_each(&self, index: usize, mut f: impl FnMut(&T) -> Result<()>) -> Result<()> {
        let mut seen: HashSet<&T> = HashSet::with_capacity(self.len(index));
        let logs = self
            .0
            .iter()
            .filter_map(|logs| logs.get(index).map(|c| &c.log));
        for item in logs.flatten() {
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

    /// A delta holds every change since the last confirmed checkpoint: the logs of
    /// checkpoints not confirmed (failed or aborted ones) stay until a later one is.
    #[test]
    fn logs_are_kept_until_a_checkpoint_at_or_after_them_is_confirmed() {
        let mut log = ChangeLog::<u32>::new(2);
        log.record(0, 1);
        log.record(0, 1);
        log.record(1, 7);
        let first = log.seal(CheckpointId(1));
        assert_eq!((changed(&first, 0), changed(&first, 1)), (vec![1], vec![7]));
        // Checkpoint 1 is not confirmed (it failed): checkpoint 2's delta holds both.
        log.record(0, 2);
        log.record(0, 1);
        let second = log.seal(CheckpointId(2));
        assert_eq!(changed(&second, 0), vec![1, 2]);
        assert_eq!(second.len(0), 4, "an upper bound: 1 is written three times");
        log.confirm(CheckpointId(2));
        assert_eq!(log.len(), 0);
        log.record(1, 9);
        let third = log.seal(CheckpointId(3));
        assert_eq!((changed(&third, 0), changed(&third, 1)), (vec![], vec![9]));
        // A late confirmation of an older checkpoint drops nothing newer.
        log.confirm(CheckpointId(1));
        assert_eq!(log.len(), 1);
    }

    /// Repeats are dropped as a log grows: keys written over and over keep a log of a few
    /// items (within half the group's entries, or [`MIN_DEDUP`] for timers), and do not
    /// make their group whole.
    #[test]
    fn repeats_are_dropped_as_a_log_grows() {
        let mut log = ChangeLog::<u32>::new(2);
        let present = Left::Present { entries: 100 };
        for i in 0..10_000 {
            log.record_entry(0, present, || i % 3);
            log.record(1, i % 5);
            assert!(log.current[0].log.len() < 50, "entries: {i} writes");
            assert!(log.current[1].log.len() < MIN_DEDUP, "timers: {i} writes");
        }
        assert_eq!(log.len(), 8);
        let sealed = log.seal(CheckpointId(1));
        assert!(!sealed.whole(0), "3 of 100 entries changed");
        assert_eq!(changed(&sealed, 0), vec![0, 1, 2]);
        assert_eq!(changed(&sealed, 1), vec![0, 1, 2, 3, 4]);
    }

    /// A key group becomes whole when its log holds distinct keys for half its entries: then updates of
    /// present entries are not recorded, removals still are, and the next interval starts
    /// over.
    #[test]
    fn a_group_becomes_whole_at_half_its_entries() {
        let mut log = ChangeLog::<u32>::new(2);
        let present = Left::Present { entries: 10 };
        for key in 0..4 {
            log.record_entry(0, present, || key);
        }
        log.record_entry(1, Left::Present { entries: 1 }, || 0);
        let sealed = log.seal(CheckpointId(1));
        assert!(!sealed.whole(0), "4 of 10 entries");
        assert!(sealed.whole(1), "the one entry of a group of one");
        for key in 0..5 {
            log.record_entry(0, present, || key);
        }
        log.record_entry(0, present, || 9);
        log.record_entry(0, Left::Removed, || 7);
        let sealed = log.seal(CheckpointId(2));
        assert!(sealed.whole(0));
        assert_eq!(
            changed(&sealed, 0),
            vec![0, 1, 2, 3, 4, 7],
            "the update of 9 came after the group was whole; the removal of 7 did not"
        );
        log.confirm(CheckpointId(2));
        log.record_entry(0, present, || 1);
        let sealed = log.seal(CheckpointId(3));
        assert!(!sealed.whole(0), "a new interval starts over");
        assert_eq!(changed(&sealed, 0), vec![1]);
    }
}
