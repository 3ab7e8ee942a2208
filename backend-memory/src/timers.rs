//! The heap timer queue: one ordered set of timers per key group, each behind an `Arc` that
//! a snapshot clones and the next change copies (copy-on-write per key group, as the
//! tables), and a tournament tree over the key groups' first timers.
//!
//! An ordered set is Flink's `HeapPriorityQueueSet` in one structure: it orders the timers,
//! deduplicates them and deletes any of them in `O(log n)`, with no index kept beside it.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use cornerstone_backend_api::timer::{
    KeyGroupHeads, RawTimer, TimerEntry, TimerQueue, TimerVisit, decode_timestamp, encode_timestamp,
};
use cornerstone_backend_api::{CheckpointId, Error, KeyGroupRange, Result};

use crate::access::{Binding, Guarded};
use crate::changelog::{ChangeLog, Sealed};
use crate::table::{Captured, GroupArc, Registered, SnapshotWriter};

/// The timers of one key group, in firing order.
pub(crate) type Group = BTreeSet<(i64, TimerEntry)>;

/// A timer: its timestamp and entry.
type Timer = (i64, TimerEntry);

struct Inner {
    groups: Vec<GroupArc<Group>>,
    heads: KeyGroupHeads,
    len: usize,
    /// The timers added or removed (changelog mode).
    changes: Option<ChangeLog<Timer>>,
}

impl Inner {
    fn record(&mut self, index: usize, timer: &Timer) {
        if let Some(changes) = &mut self.changes {
            changes.record(index, timer.clone());
        }
    }
}

/// The heap [`TimerQueue`], under the backend's [`Binding`] as its tables: owned by the task
/// thread (no lock or atomic per timer), or shared under a lock.
pub(crate) struct HeapTimerQueue {
    range: KeyGroupRange,
    inner: Guarded<Inner>,
}

impl HeapTimerQueue {
    /// An empty queue; `changelog` records what changes (changelog mode).
    pub(crate) fn new(range: KeyGroupRange, binding: Binding, changelog: bool) -> Self {
        let groups = range.len() as usize;
        let inner = Inner {
            groups: (0..groups).map(|_| GroupArc::new(Group::new())).collect(),
            heads: KeyGroupHeads::new(groups),
            len: 0,
            changes: changelog.then(|| ChangeLog::new(groups)),
        };
        HeapTimerQueue {
            range,
            inner: Guarded::new(binding, inner),
        }
    }

    fn index(&self, key_group: u32) -> Result<usize> {
        self.range.index_of(key_group).ok_or_else(|| {
            Error::invalid_input("timer key belongs to a key group outside this backend's range")
                .with_context("key_group", key_group)
                .with_context("range", self.range)
        })
    }
}

impl HeapTimerQueue {
    /// Every key group's set, shared (a clone of each `Arc`).
    fn groups(&self) -> Result<Vec<GroupArc<Group>>> {
        self.inner.with(|inner| inner.shared_groups())
    }

    pub(crate) fn restoring_groups(&mut self) -> Vec<&mut Group> {
        self.inner
            .get_mut()
            .groups
            .iter_mut()
            .map(GroupArc::make_mut)
            .collect()
    }

    pub(crate) fn restored(&mut self) {
        let inner = self.inner.get_mut();
        inner.len = inner.groups.iter().map(|g| g.len()).sum();
        for index in 0..inner.groups.len() {
            let head = inner.groups[index].first().map(|(ts, _)| *ts);
            inner.heads.set(index, head);
        }
    }
}

impl Inner {
    /// Inserts `timer` into the key group at `index` (copying the group if a snapshot shares
    /// it) and moves the key group's head up if it is the first.
    fn insert(&mut self, index: usize, timer: (i64, TimerEntry)) {
        let timestamp = timer.0;
        self.record(index, &timer);
        if let Some(group) = self.groups.get_mut(index)
            && GroupArc::make_mut(group).insert(timer)
        {
            self.len += 1;
            if self.heads.head(index).is_none_or(|head| timestamp < head) {
                self.heads.set(index, Some(timestamp));
            }
        }
    }

    /// After `timer` was taken out of the key group at `index` (removed or fired): records
    /// it, counts it and moves the key group's head on if it was the first.
    fn taken(&mut self, index: usize, timer: &Timer) {
        self.record(index, timer);
        self.len -= 1;
        if self.heads.head(index) == Some(timer.0) {
            let next = self.groups[index].first().map(|(ts, _)| *ts);
            self.heads.set(index, next);
        }
    }

    /// Every key group's set, shared (a clone of each `Arc`).
    fn shared_groups(&self) -> Vec<GroupArc<Group>> {
        self.groups.iter().map(GroupArc::clone).collect()
    }
}

impl TimerQueue for HeapTimerQueue {
    fn add(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()> {
        let index = self.index(key_group)?;
        let timer = (timestamp, TimerEntry::from_bytes(entry));
        self.inner.with(|inner| {
            let group = &inner.groups[index];
            // A group shared with a snapshot is copied only when the timer is new.
            if GroupArc::strong_count(group) > 1 && group.contains(&timer) {
                return;
            }
            inner.insert(index, timer);
        })
    }

    fn remove(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()> {
        let index = self.index(key_group)?;
        let timer = (timestamp, TimerEntry::from_bytes(entry));
        self.inner.with(|inner| {
            let group = &mut inner.groups[index];
            // One search when the group is not shared with a snapshot; a shared one is
            // copied only when the timer is there.
            let removed = match GroupArc::get_mut(group) {
                Some(group) => group.remove(&timer),
                None => group.contains(&timer) && GroupArc::make_mut(group).remove(&timer),
            };
            if removed {
                inner.taken(index, &timer);
            }
        })
    }

    fn peek(&self) -> Result<Option<i64>> {
        self.inner
            .with(|inner| inner.heads.first().map(|(ts, _)| ts))
    }

    fn poll(&self, up_to: i64) -> Result<Option<RawTimer>> {
        self.inner.with(|inner| {
            let Some((head, index)) = inner.heads.first() else {
                return Ok(None);
            };
            if head > up_to {
                return Ok(None);
            }
            let Some(timer) = GroupArc::make_mut(&mut inner.groups[index]).pop_first() else {
                return Err(Error::internal("timer queue head of an empty key group"));
            };
            inner.taken(index, &timer);
            let (timestamp, entry) = timer;
            Ok(Some(RawTimer {
                key_group: self.range.first() + index as u32,
                timestamp,
                entry,
            }))
        })?
    }

    fn len(&self) -> Result<usize> {
        self.inner.with(|inner| inner.len)
    }

    fn for_each(&self, visit: &mut TimerVisit<'_>) -> Result<()> {
        // The key groups' sets are cloned (shared) so that `visit` may use the queue.
        let groups = self.groups()?;
        for (key_group, group) in self.range.iter().zip(&groups) {
            for (ts, entry) in group.iter() {
                if !visit(key_group, *ts, entry.as_bytes())? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The timers a snapshot captured: the key groups' sets, shared until the next change, and
/// the changes a delta writes (changelog checkpoints only).
struct TimerCapture(Vec<GroupArc<Group>>, Option<Sealed<Timer>>);

impl Captured for TimerCapture {
    fn entries(&self, index: usize) -> usize {
        self.0[index].len()
    }

    fn write_key_group(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        _now: u64,
    ) -> Result<()> {
        for (ts, entry) in self.0[index].iter() {
            let (key, namespace) = entry.split()?;
            writer.raw_record(state, key, namespace, None, &encode_timestamp(*ts))?;
        }
        Ok(())
    }

    fn changes(&self, index: usize) -> usize {
        self.1.as_ref().map_or(0, |c| c.len(index))
    }

    /// A timer added since is written, one removed since is written as a removal of its
    /// timestamp.
    fn write_changes(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        _now: u64,
    ) -> Result<()> {
        let Some(changes) = &self.1 else {
            return Err(Error::internal("a delta of a capture without changes"));
        };
        let group = &self.0[index];
        changes.for_each(index, |timer| {
            let (key, namespace) = timer.1.split()?;
            let timestamp = encode_timestamp(timer.0);
            if group.contains(timer) {
                writer.raw_record(state, key, namespace, None, &timestamp)
            } else {
                writer.raw_removal(state, key, namespace, None, &timestamp)
            }
        })
    }
}

impl Registered for HeapTimerQueue {
    fn capture(&self) -> Result<Box<dyn Captured>> {
        Ok(Box::new(TimerCapture(self.groups()?, None)))
    }

    fn capture_changes(&self, id: CheckpointId) -> Result<Box<dyn Captured>> {
        self.inner.with(|inner| {
            let groups = inner.shared_groups();
            let Some(changes) = &mut inner.changes else {
                return Err(Error::internal(
                    "a changelog snapshot of a timer queue that records no changes",
                ));
            };
            Ok(Box::new(TimerCapture(groups, Some(changes.seal(id)))) as Box<dyn Captured>)
        })?
    }

    fn confirm(&self, id: CheckpointId) -> Result<()> {
        self.inner.with(|inner| {
            if let Some(changes) = &mut inner.changes {
                changes.confirm(id);
            }
        })
    }

    fn pending_changes(&self) -> Result<usize> {
        self.inner
            .with(|inner| inner.changes.as_ref().map_or(0, ChangeLog::len))
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Decodes a restored timer record into its key group's timers.
pub(crate) fn insert_record(
    group: &mut Group,
    key: &[u8],
    namespace: &[u8],
    value: &[u8],
) -> Result<()> {
    group.insert((
        decode_timestamp(value)?,
        TimerEntry::from_parts(key, namespace),
    ));
    Ok(())
}

/// Removes the timer of a restored removal record from its key group's timers.
pub(crate) fn remove_record(
    group: &mut Group,
    key: &[u8],
    namespace: &[u8],
    value: &[u8],
) -> Result<()> {
    group.remove(&(
        decode_timestamp(value)?,
        TimerEntry::from_parts(key, namespace),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::HeapThreading;

    fn groups(queue: &HeapTimerQueue) -> Vec<GroupArc<Group>> {
        queue.groups().unwrap()
    }

    /// A capture shares every key group's set; the first change after it copies that key
    /// group's set only, and the capture keeps what it saw.
    #[test]
    fn capture_copies_nothing_and_a_change_copies_one_key_group() {
        let queue = HeapTimerQueue::new(
            KeyGroupRange::new(0, 3),
            Binding::here(HeapThreading::Owner),
            false,
        );
        for kg in 0..4u32 {
            for ts in 0..10i64 {
                queue.add(kg, ts, &[1, kg as u8]).unwrap();
            }
        }
        let before = groups(&queue);
        let captured = queue.capture().unwrap();
        let shared = groups(&queue);
        assert!(
            before
                .iter()
                .zip(&shared)
                .all(|(a, b)| GroupArc::ptr_eq(a, b))
        );
        // Adding a present timer, or removing an absent one, copies nothing.
        queue.add(2, 5, &[1, 2]).unwrap();
        queue.remove(2, 99, &[1, 2]).unwrap();
        assert!(GroupArc::ptr_eq(&groups(&queue)[2], &before[2]));
        queue.add(2, 100, &[1, 2]).unwrap();
        let after = groups(&queue);
        for kg in 0..4 {
            assert_eq!(
                GroupArc::ptr_eq(&after[kg], &before[kg]),
                kg != 2,
                "key group {kg}"
            );
        }
        assert_eq!(before[2].len(), 10);
        assert_eq!(after[2].len(), 11);
        drop(captured);
        assert_eq!(queue.len().unwrap(), 41);
    }
}
