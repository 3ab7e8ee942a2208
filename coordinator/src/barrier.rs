//! Barrier handling for tasks with several input channels: aligned barriers for
//! exactly-once, tracked (unaligned, never blocking) barriers for at-least-once.
//!
//! The handler is a state machine: the task pushes whatever a channel delivered and polls
//! what to do next. Under exactly-once, a channel that delivered barrier N is *blocked*: what
//! it delivers afterwards is held back (buffered, as Flink's `BarrierBuffer` did) until every
//! input has delivered barrier N; then the task snapshots, and the held-back elements are
//! processed in their order. Under at-least-once nothing is held back, and the snapshot is
//! taken when the last input delivers barrier N (Flink's `BarrierTracker`), so it may
//! include records that follow the barrier on faster channels.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, Error, Result, SharedClock};

use crate::config::CheckpointingMode;

/// The barrier of checkpoint `id`, flowing with the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointBarrier {
    /// The checkpoint.
    pub id: CheckpointId,
    /// When the coordinator triggered it (clock milliseconds).
    pub timestamp_ms: u64,
}

/// What one input channel delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent<T> {
    /// A record (or any other in-band element, such as a watermark).
    Record(T),
    /// A checkpoint barrier.
    Barrier(CheckpointBarrier),
    /// The channel ended.
    EndOfInput,
}

/// What an alignment took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlignmentStats {
    /// From the first to the last barrier of the checkpoint on this task's inputs.
    pub duration: Duration,
    /// Records held back on blocked channels meanwhile (zero under at-least-once).
    pub buffered_records: u64,
}

/// What the task does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerOutput<T> {
    /// Process a record of `channel`.
    Record {
        /// The channel it came from.
        channel: usize,
        /// The record.
        record: T,
    },
    /// Every input delivered the barrier: snapshot now, then forward the barrier.
    Checkpoint {
        /// The barrier.
        barrier: CheckpointBarrier,
        /// What the alignment took.
        alignment: AlignmentStats,
    },
    /// A newer barrier overtook checkpoint `id` before it was aligned: the task declines it.
    Aborted {
        /// The abandoned checkpoint.
        id: CheckpointId,
    },
    /// Every channel ended.
    EndOfInput,
}

struct Alignment {
    barrier: CheckpointBarrier,
    received: BTreeSet<usize>,
    start_ms: u64,
    buffered: u64,
}

/// Aligns or tracks the barriers of a task's input channels (see the module docs).
pub struct BarrierHandler<T> {
    mode: CheckpointingMode,
    channels: usize,
    clock: SharedClock,
    ended: Vec<bool>,
    all_ended_reported: bool,
    /// Barriers at or below this id are stale.
    last_id: Option<CheckpointId>,
    /// Exactly-once: the alignment in progress and the held-back elements per channel.
    aligning: Option<Alignment>,
    held: Vec<VecDeque<InputEvent<T>>>,
    /// At-least-once: barriers seen per checkpoint.
    tracked: BTreeMap<CheckpointId, Alignment>,
    output: VecDeque<HandlerOutput<T>>,
}

impl<T> fmt::Debug for BarrierHandler<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierHandler")
            .field("mode", &self.mode)
            .field("channels", &self.channels)
            .field("aligning", &self.aligning.as_ref().map(|a| a.barrier.id))
            .field("tracked", &self.tracked.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<T> BarrierHandler<T> {
    /// A handler for `channels` input channels (at least 1).
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::InvalidInput`] for zero channels.
    pub fn new(mode: CheckpointingMode, channels: usize, clock: SharedClock) -> Result<Self> {
        if channels == 0 {
            return Err(Error::invalid_input(
                "a barrier handler needs at least one channel",
            ));
        }
        Ok(BarrierHandler {
            mode,
            channels,
            clock,
            ended: vec![false; channels],
            all_ended_reported: false,
            last_id: None,
            aligning: None,
            held: (0..channels).map(|_| VecDeque::new()).collect(),
            tracked: BTreeMap::new(),
            output: VecDeque::new(),
        })
    }

    /// The number of input channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Whether `channel` is blocked by an alignment in progress.
    pub fn is_blocked(&self, channel: usize) -> bool {
        self.aligning
            .as_ref()
            .is_some_and(|a| a.received.contains(&channel))
    }

    /// The checkpoint being aligned, if any.
    pub fn aligning(&self) -> Option<CheckpointId> {
        self.aligning.as_ref().map(|a| a.barrier.id)
    }

    /// Takes what `channel` delivered. Poll [`poll`](Self::poll) afterwards.
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::InvalidInput`] for a channel out of range or an
    /// element after the channel's end.
    pub fn push(&mut self, channel: usize, event: InputEvent<T>) -> Result<()> {
        if channel >= self.channels {
            return Err(Error::invalid_input("input channel out of range")
                .with_context("channel", channel)
                .with_context("channels", self.channels));
        }
        if self.ended[channel] || matches!(self.held[channel].back(), Some(InputEvent::EndOfInput))
        {
            return Err(
                Error::invalid_input("element after the end of an input channel")
                    .with_context("channel", channel),
            );
        }
        if self.is_blocked(channel) {
            if matches!(event, InputEvent::Record(_))
                && let Some(a) = self.aligning.as_mut()
            {
                a.buffered += 1;
            }
            self.held[channel].push_back(event);
            return Ok(());
        }
        self.process(channel, event);
        Ok(())
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<HandlerOutput<T>> {
        self.output.pop_front()
    }

    fn process(&mut self, channel: usize, event: InputEvent<T>) {
        match event {
            InputEvent::Record(record) => self
                .output
                .push_back(HandlerOutput::Record { channel, record }),
            InputEvent::Barrier(barrier) => {
                if self.last_id.is_some_and(|last| barrier.id <= last) {
                    return; // stale: already completed or abandoned
                }
                match self.mode {
                    CheckpointingMode::ExactlyOnce => self.aligned_barrier(channel, barrier),
                    CheckpointingMode::AtLeastOnce => self.tracked_barrier(channel, barrier),
                }
            }
            InputEvent::EndOfInput => {
                self.ended[channel] = true;
                match self.mode {
                    CheckpointingMode::ExactlyOnce => self.check_aligned(),
                    CheckpointingMode::AtLeastOnce => self.check_tracked(),
                }
                if !self.all_ended_reported && self.ended.iter().all(|e| *e) {
                    self.all_ended_reported = true;
                    self.output.push_back(HandlerOutput::EndOfInput);
                }
            }
        }
    }

    fn new_alignment(&self, barrier: CheckpointBarrier, channel: usize) -> Alignment {
        Alignment {
            barrier,
            received: BTreeSet::from([channel]),
            start_ms: self.clock.now_millis(),
            buffered: 0,
        }
    }

    fn aligned_barrier(&mut self, channel: usize, barrier: CheckpointBarrier) {
        match &mut self.aligning {
            Some(a) if a.barrier.id == barrier.id => {
                a.received.insert(channel);
            }
            Some(a) if a.barrier.id > barrier.id => return, // older than the alignment: stale
            Some(_) => {
                // A newer barrier overtook the alignment: abandon it and release the channels.
                if let Some(old) = self.aligning.take() {
                    self.last_id = Some(old.barrier.id);
                    self.output
                        .push_back(HandlerOutput::Aborted { id: old.barrier.id });
                }
                self.aligning = Some(self.new_alignment(barrier, channel));
                self.release();
            }
            None => self.aligning = Some(self.new_alignment(barrier, channel)),
        }
        self.check_aligned();
    }

    fn check_aligned(&mut self) {
        let complete = self
            .aligning
            .as_ref()
            .is_some_and(|a| (0..self.channels).all(|c| a.received.contains(&c) || self.ended[c]));
        if !complete {
            return;
        }
        if let Some(a) = self.aligning.take() {
            self.last_id = Some(a.barrier.id);
            let now = self.clock.now_millis();
            self.output.push_back(HandlerOutput::Checkpoint {
                barrier: a.barrier,
                alignment: AlignmentStats {
                    duration: Duration::from_millis(now.saturating_sub(a.start_ms)),
                    buffered_records: a.buffered,
                },
            });
            self.release();
        }
    }

    /// Processes held-back elements of every channel that is no longer blocked, in order.
    fn release(&mut self) {
        for channel in 0..self.channels {
            while !self.is_blocked(channel) {
                let Some(event) = self.held[channel].pop_front() else {
                    break;
                };
                self.process(channel, event);
            }
        }
    }

    fn tracked_barrier(&mut self, channel: usize, barrier: CheckpointBarrier) {
        let fresh = self.new_alignment(barrier, channel);
        self.tracked
            .entry(barrier.id)
            .and_modify(|a| {
                a.received.insert(channel);
            })
            .or_insert(fresh);
        self.check_tracked();
    }

    fn check_tracked(&mut self) {
        let complete: Option<CheckpointId> = self
            .tracked
            .iter()
            .rev()
            .find(|(_, a)| (0..self.channels).all(|c| a.received.contains(&c) || self.ended[c]))
            .map(|(id, _)| *id);
        let Some(id) = complete else {
            return;
        };
        let older: Vec<CheckpointId> = self.tracked.range(..id).map(|(i, _)| *i).collect();
        for old in older {
            self.tracked.remove(&old);
            self.output.push_back(HandlerOutput::Aborted { id: old });
        }
        if let Some(a) = self.tracked.remove(&id) {
            self.last_id = Some(id);
            let now = self.clock.now_millis();
            self.output.push_back(HandlerOutput::Checkpoint {
                barrier: a.barrier,
                alignment: AlignmentStats {
                    duration: Duration::from_millis(now.saturating_sub(a.start_ms)),
                    buffered_records: 0,
                },
            });
        }
    }
}
