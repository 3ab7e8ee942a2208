//! The storage primitive that backends implement ([`TimerQueue`]) and the tournament tree
//! of key-group heads ([`KeyGroupHeads`]) that helps them find the earliest key group.

use super::types::TimerEntry;
use crate::error::{Error, Result};

/// Checks that `meta` is the meta of a timer queue (kind
/// [`StateKind::Timers`](crate::StateKind::Timers)): what a backend's
/// [`KeyedStateBackend::timer_queue`](crate::KeyedStateBackend::timer_queue) checks first.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] naming the state and its kind.
pub fn check_queue_meta(meta: &crate::StateMeta) -> Result<()> {
    if meta.kind == crate::StateKind::Timers {
        return Ok(());
    }
    Err(
        Error::invalid_input("a timer queue's state kind must be Timers")
            .with_context("state", &meta.name)
            .with_context("kind", meta.kind),
    )
}

/// A timer as a queue hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTimer {
    /// Its key group.
    pub key_group: u32,
    /// When it fires.
    pub timestamp: i64,
    /// Its serialized key and namespace.
    pub entry: TimerEntry,
}

/// Visits one stored timer: `(key_group, timestamp, entry)`; returns `false` to stop.
pub type TimerVisit<'v> = dyn FnMut(u32, i64, &[u8]) -> Result<bool> + 'v;

/// The storage primitive of timers: a key-grouped priority queue with set semantics (Flink's
/// `KeyGroupedInternalPriorityQueue`), one per [`TimeDomain`](crate::timer::TimeDomain) of a
/// service. Backends implement it; engine code uses [`TimerService`](crate::timer::TimerService).
///
/// Timers are ordered by timestamp, then key group, then entry bytes. Every method takes
/// `&self`: a queue is used from its subtask's thread while snapshots of it are written on
/// others.
pub trait TimerQueue: Send + Sync {
    /// Adds a timer; adding one that is present changes nothing.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when `key_group` is outside the backend's range;
    /// engine errors.
    fn add(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()>;

    /// Removes a timer; removing an absent one changes nothing.
    ///
    /// # Errors
    /// As [`add`](Self::add).
    fn remove(&self, key_group: u32, timestamp: i64, entry: &[u8]) -> Result<()>;

    /// The timestamp of the first timer.
    ///
    /// # Errors
    /// Engine errors.
    fn peek(&self) -> Result<Option<i64>>;

    /// Removes and returns the first timer if its timestamp is at most `up_to`.
    ///
    /// # Errors
    /// Engine errors.
    fn poll(&self, up_to: i64) -> Result<Option<RawTimer>>;

    /// The number of timers (a scan on RocksDB).
    ///
    /// # Errors
    /// Engine errors.
    fn len(&self) -> Result<usize>;

    /// Whether there is no timer.
    ///
    /// # Errors
    /// Engine errors.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.peek()?.is_none())
    }

    /// Visits every timer in key-group order, each key group in timer order:
    /// `visit(key_group, timestamp, entry)` returns `false` to stop. `visit` must not use
    /// the queue.
    ///
    /// # Errors
    /// Engine errors, and the errors of `visit`.
    fn for_each(&self, visit: &mut TimerVisit<'_>) -> Result<()>;
}

/// The earliest key group of a key-grouped queue: a tournament tree over the head timestamp
/// of each key group, so that changing one head and finding the first are `O(log groups)`
/// with no allocation. Ties go to the lower key group.
#[derive(Debug, Clone)]
pub struct KeyGroupHeads {
    /// The head timestamp of each key-group index.
    heads: Vec<Option<i64>>,
    /// Leaves padded to a power of two.
    width: usize,
    /// `tree[i]` is the winning key-group index below node `i`; leaves are `width..2*width`.
    tree: Vec<u32>,
}

impl KeyGroupHeads {
    /// No heads for `groups` key groups.
    pub fn new(groups: usize) -> Self {
        let width = groups.max(1).next_power_of_two();
        let mut tree = vec![0u32; 2 * width];
        for (i, slot) in tree.iter_mut().enumerate().skip(width) {
            *slot = (i - width) as u32;
        }
        for i in (1..width).rev() {
            tree[i] = tree[2 * i];
        }
        KeyGroupHeads {
            heads: vec![None; groups],
            width,
            tree,
        }
    }

    fn key(&self, index: u32) -> (bool, i64, u32) {
        match self.heads.get(index as usize).copied().flatten() {
            Some(ts) => (false, ts, index),
            None => (true, 0, index),
        }
    }

    /// Sets the head timestamp of the key group at `index` (`None`: it has no timers).
    pub fn set(&mut self, index: usize, head: Option<i64>) {
        if self.heads.get(index).copied().flatten() == head {
            return;
        }
        self.heads[index] = head;
        let mut node = (self.width + index) / 2;
        while node >= 1 {
            let (l, r) = (self.tree[2 * node], self.tree[2 * node + 1]);
            self.tree[node] = if self.key(r) < self.key(l) { r } else { l };
            node /= 2;
        }
    }

    /// The head timestamp of the key group at `index`.
    pub fn head(&self, index: usize) -> Option<i64> {
        self.heads.get(index).copied().flatten()
    }

    /// The earliest head and its key-group index.
    pub fn first(&self) -> Option<(i64, usize)> {
        let winner = if self.width == 1 { 0 } else { self.tree[1] } as usize;
        self.head(winner).map(|ts| (ts, winner))
    }
}
