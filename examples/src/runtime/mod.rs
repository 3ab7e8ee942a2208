//! The job's runtime: one thread per subtask, channels between them, and a driver (the
//! caller's thread) with the checkpoint coordinator and the restart strategy.
//!
//! Topology (parallelism per config):
//!
//! ```text
//! source-a ×P ─┐ keyBy(key)
//!              ├──────────► counter ×C (two inputs, aligned barriers, keyed state "count"
//! source-b ×P ─┘             per (key, window), windows fired by event-time timers)
//!                              ──► sink ×S (two-phase commit into files)
//! ```

pub(crate) mod attempt;
mod counter;
mod sink;
mod source;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::rescale::redistribute_operator_state;
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, Error, OperatorStateHandle, Result, SharedClock, StateReader,
    SubtaskState,
};
use cornerstone_checkpoint_store::StoreStreamFactory;
use cornerstone_coordinator::{
    CheckpointBarrier, CheckpointingMode, InputEvent, RestoredCheckpoint, SubtaskMetrics, TaskId,
};
use parking_lot::Mutex;

use crate::data::INPUTS;
use crate::failure::{FailPoint, FailureInjector};

/// Operator uids (the keys of their state in `_metadata`).
pub const SOURCE_UIDS: [&str; 2] = ["source-a", "source-b"];
/// The uid of the two-input windowed count.
pub const COUNTER_UID: &str = "counter";
/// The uid of the transactional sink.
pub const SINK_UID: &str = "sink";
/// The keyed state of the counter: count per key, namespace = window start.
pub const COUNT_STATE: &str = "count";
/// The operator state of the sources: (input, split, next offset).
pub const OFFSETS_STATE: &str = "offsets";
/// The counter's event-time timer service: a timer per (key, window), namespace = window
/// start, at the window's last millisecond.
pub const WINDOW_TIMERS: &str = "window";
/// The counter's processing-time timer service of idle keys: a timer per key (namespace
/// `()`).
pub const IDLE_TIMERS: &str = "idle";
/// The keyed state of idle detection: the processing time (ms) of a key's latest record.
pub const LAST_SEEN_STATE: &str = "last-seen";

/// The shape of the job, as the runtime needs it.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    pub(crate) splits_per_input: u32,
    pub(crate) counters: u32,
    pub(crate) sinks: u32,
    pub(crate) max_parallelism: u32,
    pub(crate) events_per_split: u64,
    pub(crate) keys: u64,
    pub(crate) window_ms: u64,
    pub(crate) idle_timeout: Duration,
    pub(crate) batch: u64,
    pub(crate) pace: Duration,
    pub(crate) mode: CheckpointingMode,
    pub(crate) output_dir: PathBuf,
    pub(crate) progress: bool,
}

enum Msg<T> {
    Data {
        channel: usize,
        event: InputEvent<T>,
    },
    Barrier(CheckpointBarrier),
    Notify(CheckpointId),
    Finish,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceElement {
    Event { key: u64, ts: u64 },
    Watermark(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct WindowCount {
    key: u64,
    window: u64,
    count: u64,
}

pub(crate) enum JobEvent {
    Ack {
        task: TaskId,
        id: CheckpointId,
        state: SubtaskState,
        metrics: SubtaskMetrics,
    },
    /// The asynchronous phase failed: the task declines the checkpoint (Flink counts it
    /// against the tolerable checkpoint failures; the task itself goes on).
    Decline {
        task: TaskId,
        id: CheckpointId,
        error: Error,
    },
    Failed {
        task: TaskId,
        error: Error,
    },
    Exhausted,
    Finished,
}

/// The timers the counter's subtasks fired, summed over every subtask of every attempt
/// (failed ones included: a window fired after the last checkpoint of an attempt that then
/// failed fires again after the restore, and both count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerCounts {
    /// Event-time timers fired: one per (key, window) emitted to the sink. Without failures
    /// it is the number of output lines; with failures at least that.
    pub event_time_fired: u64,
    /// Processing-time timers fired: the idle-key timers, those that found a newer record
    /// (and set the next deadline) included.
    pub processing_time_fired: u64,
    /// Of the processing-time timers fired, those that found their key idle: no record for
    /// [`JobConfig::idle_timeout`].
    ///
    /// [`JobConfig::idle_timeout`]: crate::JobConfig::idle_timeout
    pub idle_timeouts: u64,
}

/// The timers the counters fired, summed over subtasks and attempts: every attempt's
/// tasks add to the one set of the run (as they share its [`FailureInjector`]).
#[derive(Debug, Default)]
pub(crate) struct TimerCounters {
    event_time_fired: AtomicU64,
    processing_time_fired: AtomicU64,
    idle_timeouts: AtomicU64,
}

impl TimerCounters {
    /// The totals so far.
    pub(crate) fn totals(&self) -> TimerCounts {
        TimerCounts {
            event_time_fired: self.event_time_fired.load(Ordering::Acquire),
            processing_time_fired: self.processing_time_fired.load(Ordering::Acquire),
            idle_timeouts: self.idle_timeouts.load(Ordering::Acquire),
        }
    }
}

/// What every task of one attempt shares.
struct Ctx {
    topology: Topology,
    events: Sender<JobEvent>,
    streams: Mutex<HashMap<CheckpointId, Arc<StoreStreamFactory>>>,
    injector: Arc<FailureInjector>,
    timers: Arc<TimerCounters>,
    clock: SharedClock,
}

impl Ctx {
    fn streams_for(&self, id: CheckpointId) -> Result<Arc<StoreStreamFactory>> {
        self.streams.lock().get(&id).cloned().ok_or_else(|| {
            Error::not_found("no storage for this checkpoint in this attempt")
                .with_context("checkpoint", id)
        })
    }

    /// The asynchronous phase on its own thread: writes `parts`, then acknowledges.
    fn spawn_async(
        self: &Arc<Self>,
        task: &TaskId,
        id: CheckpointId,
        parts: Vec<Box<dyn AsyncSnapshot>>,
        mut metrics: SubtaskMetrics,
    ) -> Result<JoinHandle<()>> {
        let streams = self.streams_for(id)?;
        let ctx = Arc::clone(self);
        let task = task.clone();
        thread::Builder::new()
            .name(format!("{task}-async-{id}"))
            .spawn(move || {
                let start = Instant::now();
                let written = (|| -> Result<SubtaskState> {
                    ctx.injector.hit(FailPoint::AsyncWrite)?;
                    let mut state = SubtaskState::default();
                    for part in parts {
                        state.merge(part.write(&*streams)?);
                    }
                    Ok(state)
                })();
                metrics.async_duration = start.elapsed();
                let event = match written {
                    Ok(state) => JobEvent::Ack {
                        task,
                        id,
                        state,
                        metrics,
                    },
                    Err(error) => JobEvent::Decline {
                        task,
                        id,
                        error: error.with_context("checkpoint", id),
                    },
                };
                let _ = ctx.events.send(event);
            })
            .map_err(|e| Error::io("spawn an asynchronous snapshot thread", e))
    }
}

fn broadcast<T: Clone>(out: &[Sender<Msg<T>>], channel: usize, event: &InputEvent<T>) {
    for o in out {
        // A closed channel means the attempt is being torn down.
        let _ = o.send(Msg::Data {
            channel,
            event: event.clone(),
        });
    }
}

/// The operator-state handles of `uid`'s subtask `subtask` in the restored checkpoint.
fn operator_handles(
    restored: Option<&RestoredCheckpoint>,
    uid: &str,
    parallelism: u32,
    subtask: u32,
) -> Result<Vec<OperatorStateHandle>> {
    let Some(r) = restored else {
        return Ok(Vec::new());
    };
    let op = r.checkpoint.metadata.operator(uid).ok_or_else(|| {
        Error::not_found("the restored checkpoint has no state of this operator")
            .with_context("operator", uid)
            .with_context("checkpoint", r.checkpoint.id())
    })?;
    let old: Vec<Vec<OperatorStateHandle>> = (0..op.parallelism)
        .map(|i| {
            op.subtasks
                .get(&i)
                .map(|s| s.operator.clone())
                .unwrap_or_default()
        })
        .collect();
    let mut new = redistribute_operator_state(&old, parallelism)?;
    Ok(if (subtask as usize) < new.len() {
        new.swap_remove(subtask as usize)
    } else {
        Vec::new()
    })
}

fn restore_operator_state(
    restored: Option<&RestoredCheckpoint>,
    uid: &str,
    parallelism: u32,
    subtask: u32,
) -> Result<OperatorStateBackend> {
    let handles = operator_handles(restored, uid, parallelism, subtask)?;
    let reader = restored.map(|r| &*r.reader as &dyn StateReader);
    OperatorStateBackend::restore(&handles, reader)
}

/// The tasks of the job, for reports.
pub(crate) fn task_count(t: &Topology) -> usize {
    (INPUTS * t.splits_per_input + t.counters + t.sinks) as usize
}
