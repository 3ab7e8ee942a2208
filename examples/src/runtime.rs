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

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cornerstone_backend_api::keygroup::{key_group_for_key, operator_index_for_key_group};
use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::rescale::{keyed_handles_for, redistribute_operator_state};
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, Error, ErrorKind, KeyGroupRange, KeyedBackendParams,
    KeyedStateBackendExt, OperatorStateHandle, Result, SharedClock, StateBackend,
    StateBackendFactory, StateReader, SubtaskState, TimeDomain, Timer, ValueStateDescriptor,
};
use cornerstone_checkpoint_store::{CompletedCheckpoint, StoreStreamFactory};
use cornerstone_coordinator::{
    AckOutcome, BarrierHandler, CheckpointBarrier, CheckpointCoordinator, CheckpointListener,
    CheckpointingMode, HandlerOutput, InputEvent, RestoredCheckpoint, SubtaskMetrics, TaskId,
    TransactionalFileSink, TriggerResult, TwoPhaseCommitSink,
};
use parking_lot::Mutex;

use crate::TimerCounts;
use crate::data::{INPUTS, event_key, event_time, window_start};
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

/// One source split: replayable offsets in operator state, records keyed to the counters.
#[allow(clippy::too_many_arguments)]
fn run_source(
    ctx: &Arc<Ctx>,
    task: &TaskId,
    input: u32,
    restored: Option<&RestoredCheckpoint>,
    rx: &Receiver<Msg<()>>,
    out: &[Sender<Msg<SourceElement>>],
    asyncs: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    let t = &ctx.topology;
    let split = task.subtask;
    let op = restore_operator_state(restored, &task.operator, t.splits_per_input, split)?;
    let offsets = op.list_state::<(u32, u32, u64)>(OFFSETS_STATE)?;
    let mut offset = offsets
        .get()
        .iter()
        .find(|(i, s, _)| *i == input && *s == split)
        .map_or(0, |(_, _, o)| *o);
    let channel = (input * t.splits_per_input + split) as usize;
    let end = t.events_per_split;
    let mut exhausted = false;
    loop {
        if !exhausted && offset >= end {
            broadcast(
                out,
                channel,
                &InputEvent::Record(SourceElement::Watermark(u64::MAX)),
            );
            exhausted = true;
            let _ = ctx.events.send(JobEvent::Exhausted);
        }
        let msg = if exhausted {
            rx.recv().ok()
        } else if t.pace.is_zero() {
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        } else {
            match rx.recv_timeout(t.pace) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        };
        match msg {
            Some(Msg::Barrier(barrier)) => {
                let start = Instant::now();
                offsets.update(vec![(input, split, offset)]);
                let snapshot = op.snapshot(barrier.id);
                let metrics = SubtaskMetrics {
                    sync_duration: start.elapsed(),
                    ..SubtaskMetrics::default()
                };
                broadcast(out, channel, &InputEvent::Barrier(barrier));
                asyncs.push(ctx.spawn_async(task, barrier.id, vec![snapshot], metrics)?);
            }
            Some(Msg::Finish) => {
                broadcast(out, channel, &InputEvent::EndOfInput);
                return Ok(());
            }
            Some(Msg::Cancel) => return Ok(()),
            None if exhausted => return Ok(()), // the driver went away
            Some(Msg::Notify(_) | Msg::Data { .. }) => {}
            None => {
                let stop = (offset + t.batch.max(1)).min(end);
                for o in offset..stop {
                    let key = event_key(input, split, o, t.keys);
                    let target = operator_index_for_key_group(
                        t.max_parallelism,
                        t.counters,
                        key_group_for_key(&key, t.max_parallelism)?,
                    ) as usize;
                    if let Some(sender) = out.get(target) {
                        let _ = sender.send(Msg::Data {
                            channel,
                            event: InputEvent::Record(SourceElement::Event {
                                key,
                                ts: event_time(o),
                            }),
                        });
                    }
                }
                offset = stop;
                broadcast(
                    out,
                    channel,
                    &InputEvent::Record(SourceElement::Watermark(event_time(offset))),
                );
                ctx.injector.hit(FailPoint::SourceEmit)?;
            }
        }
    }
}

/// The timestamp of the event-time timer of the window starting at `window`: its last
/// millisecond (Flink's `TimeWindow::maxTimestamp`).
fn window_timer(window: u64, window_ms: u64) -> i64 {
    let last = window.saturating_add(window_ms.max(1)) - 1;
    i64::try_from(last).unwrap_or(i64::MAX)
}

/// The timer services' watermark for this job's watermark `low`. A source's watermark `w`
/// says that every record with a timestamp below `w` came; the timer service's (Flink's)
/// says that every record at or below it did: `w - 1`. So the timer of a window, at its
/// last millisecond `start + window_ms - 1`, fires once `start + window_ms <= low`. The end
/// of input (`u64::MAX`) fires every timer.
fn timer_watermark(low: u64) -> i64 {
    i64::try_from(low).map_or(i64::MAX, |low| low - 1)
}

/// The two-input windowed count: keyed state "count" per (key, window start), the smallest
/// watermark of all input channels as its event time.
///
/// - **Windows fire from event-time timers.** The first record of a (key, window) registers
///   a timer of the service [`WINDOW_TIMERS`] for that key, namespace the window start, at
///   the window's last millisecond. Each watermark advances the service to the low
///   watermark ([`timer_watermark`]); every timer it fires emits that (key, window)'s count
///   to the sink and clears the count. Timers are keyed state: a snapshot holds them with
///   the counts, a restore (at any parallelism) brings back the pending ones, and as the
///   restored service's watermark starts at the bottom, the first watermark after a restore
///   fires what is due.
/// - **Idle keys time out on processing-time timers.** Each record sets the key's
///   [`LAST_SEEN_STATE`] to the processing time (the job's clock, the backend's); a key
///   with no pending timer gets one of the service [`IDLE_TIMERS`] at `last seen +
///   idle_timeout`. The counter waits for its next message no longer than its next
///   processing-time timer is due and fires the due ones between messages (as Flink's
///   mailbox does). A fired timer whose key had a record since re-registers at `last seen +
///   idle_timeout`; otherwise the key went idle: it is counted and its last-seen state
///   cleared (its next record starts over). Idle timeouts change no output: they are
///   counted in the report ([`TimerCounts`]), as are the timers fired in both domains.
fn run_counter<F: StateBackendFactory>(
    ctx: &Arc<Ctx>,
    task: &TaskId,
    factory: &F,
    restored: Option<&RestoredCheckpoint>,
    rx: &Receiver<Msg<SourceElement>>,
    out: &[Sender<Msg<WindowCount>>],
    asyncs: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    let t = &ctx.topology;
    let range = KeyGroupRange::for_subtask(t.max_parallelism, t.counters, task.subtask)?;
    let mut params = KeyedBackendParams::new(t.max_parallelism, range).clock(ctx.clock.clone());
    if let Some(r) = restored {
        let op = r.checkpoint.metadata.operator(COUNTER_UID).ok_or_else(|| {
            Error::not_found("the restored checkpoint has no state of the counter")
                .with_context("checkpoint", r.checkpoint.id())
        })?;
        let all = op.subtasks.values().flat_map(|s| s.keyed.iter());
        let reader: Arc<dyn StateReader> = r.reader.clone();
        params = params.restore(keyed_handles_for(all, range), Some(reader));
    }
    let backend = factory.create_keyed_backend::<u64>(params)?;
    let counts = backend.value_state::<u64, u64>(&ValueStateDescriptor::new(COUNT_STATE))?;
    let last_seen = backend.value_state::<i64, ()>(&ValueStateDescriptor::new(LAST_SEEN_STATE))?;
    let windows = backend.timer_service::<u64>(WINDOW_TIMERS)?;
    let idle = backend.timer_service::<()>(IDLE_TIMERS)?;
    let idle_timeout = i64::try_from(t.idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let fire_idle = || -> Result<()> {
        let mut timeouts = 0u64;
        let fired = idle.fire_due_processing_timers(&mut |timer: Timer<u64, ()>| {
            match last_seen.get(&timer.key, &())? {
                // A record came after the timer was set: wait for the new deadline.
                Some(seen) if seen.saturating_add(idle_timeout) > timer.timestamp => idle
                    .register_processing_time_timer(
                        &timer.key,
                        &(),
                        seen.saturating_add(idle_timeout),
                    ),
                Some(_) => {
                    timeouts += 1;
                    last_seen.clear(&timer.key, &())
                }
                None => Ok(()),
            }
        })?;
        ctx.timers
            .processing_time_fired
            .fetch_add(fired, Ordering::AcqRel);
        ctx.timers
            .idle_timeouts
            .fetch_add(timeouts, Ordering::AcqRel);
        Ok(())
    };
    let channels = (INPUTS * t.splits_per_input) as usize;
    let mut handler = BarrierHandler::new(t.mode, channels, ctx.clock.clone())?;
    let mut watermarks = vec![0u64; channels];
    let me = task.subtask as usize;
    loop {
        let msg = match idle.next_timer(TimeDomain::ProcessingTime)? {
            None => rx.recv().ok(),
            Some(due) => match u64::try_from(due.saturating_sub(idle.current_processing_time())) {
                Ok(wait) if wait > 0 => match rx.recv_timeout(Duration::from_millis(wait)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => None,
                },
                // Due: fire before the next message.
                _ => {
                    fire_idle()?;
                    continue;
                }
            },
        };
        let Some(msg) = msg else {
            return Ok(());
        };
        match msg {
            Msg::Data { channel, event } => {
                handler.push(channel, event)?;
                while let Some(output) = handler.poll() {
                    match output {
                        HandlerOutput::Record {
                            record: SourceElement::Event { key, ts },
                            ..
                        } => {
                            ctx.injector.hit(FailPoint::CounterRecord)?;
                            let window = window_start(ts, t.window_ms);
                            let n = counts.get(&key, &window)?;
                            if n.is_none() {
                                // A (key, window) has a timer exactly while it has a count:
                                // both are set here and cleared when the timer fires.
                                windows.register_event_time_timer(
                                    &key,
                                    &window,
                                    window_timer(window, t.window_ms),
                                )?;
                            }
                            counts.update(&key, &window, n.unwrap_or(0) + 1)?;
                            let now = idle.current_processing_time();
                            match last_seen.get(&key, &())? {
                                None => {
                                    last_seen.update(&key, &(), now)?;
                                    idle.register_processing_time_timer(
                                        &key,
                                        &(),
                                        now.saturating_add(idle_timeout),
                                    )?;
                                }
                                Some(seen) if seen < now => last_seen.update(&key, &(), now)?,
                                Some(_) => {}
                            }
                        }
                        HandlerOutput::Record {
                            channel,
                            record: SourceElement::Watermark(w),
                        } => {
                            if let Some(slot) = watermarks.get_mut(channel) {
                                *slot = (*slot).max(w);
                            }
                            let low = watermarks.iter().copied().min().unwrap_or(0);
                            let fired = windows.advance_watermark(
                                timer_watermark(low),
                                &mut |timer: Timer<u64, u64>| {
                                    let (key, window) = (timer.key, timer.namespace);
                                    if let Some(count) = counts.get(&key, &window)? {
                                        let target = (key % u64::from(t.sinks)) as usize;
                                        if let Some(sender) = out.get(target) {
                                            let _ = sender.send(Msg::Data {
                                                channel: me,
                                                event: InputEvent::Record(WindowCount {
                                                    key,
                                                    window,
                                                    count,
                                                }),
                                            });
                                        }
                                    }
                                    counts.clear(&key, &window)
                                },
                            )?;
                            ctx.timers
                                .event_time_fired
                                .fetch_add(fired, Ordering::AcqRel);
                        }
                        HandlerOutput::Checkpoint { barrier, alignment } => {
                            ctx.injector.hit(FailPoint::CounterSnapshot)?;
                            let start = Instant::now();
                            let snapshot = backend.snapshot(barrier.id)?;
                            let metrics = SubtaskMetrics {
                                sync_duration: start.elapsed(),
                                alignment_duration: alignment.duration,
                                buffered_records: alignment.buffered_records,
                                ..SubtaskMetrics::default()
                            };
                            broadcast(out, me, &InputEvent::Barrier(barrier));
                            asyncs.push(ctx.spawn_async(
                                task,
                                barrier.id,
                                vec![snapshot],
                                metrics,
                            )?);
                        }
                        HandlerOutput::Aborted { id } => {
                            tracing::debug!(task = %task, checkpoint = %id, "alignment abandoned");
                        }
                        HandlerOutput::EndOfInput => {
                            broadcast(out, me, &InputEvent::EndOfInput);
                            return Ok(());
                        }
                    }
                }
            }
            Msg::Notify(id) => backend.notify_checkpoint_complete(id)?,
            Msg::Cancel => return Ok(()),
            Msg::Barrier(_) | Msg::Finish => {}
        }
    }
}

/// The transactional file sink: a transaction per checkpoint interval, pre-committed in the
/// snapshot, committed on the notification.
fn run_sink(
    ctx: &Arc<Ctx>,
    task: &TaskId,
    restored: Option<&RestoredCheckpoint>,
    rx: &Receiver<Msg<WindowCount>>,
    asyncs: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    let t = &ctx.topology;
    let op = restore_operator_state(restored, SINK_UID, t.sinks, task.subtask)?;
    let files = TransactionalFileSink::open(&t.output_dir, &format!("s{}", task.subtask))?;
    let (mut sink, recovery) = TwoPhaseCommitSink::initialize(files, &op)?;
    // Transactions of failed attempts that no checkpoint recorded are garbage.
    let current = sink.current_transaction().clone();
    let lingering = sink.sink_mut().abort_lingering(&[current])?;
    if recovery.committed + recovery.aborted + lingering > 0 {
        tracing::debug!(task = %task, ?recovery, lingering, "recovered transactions");
    }
    let mut handler = BarrierHandler::new(t.mode, t.counters as usize, ctx.clock.clone())?;
    loop {
        let msg = match rx.recv() {
            Ok(m) => m,
            Err(_) => return Ok(()),
        };
        match msg {
            Msg::Data { channel, event } => {
                handler.push(channel, event)?;
                while let Some(output) = handler.poll() {
                    match output {
                        HandlerOutput::Record { record, .. } => {
                            ctx.injector.hit(FailPoint::SinkWrite)?;
                            sink.invoke(format!(
                                "{},{},{}",
                                record.key, record.window, record.count
                            ))?;
                        }
                        HandlerOutput::Checkpoint { barrier, alignment } => {
                            ctx.injector.hit(FailPoint::SinkPreCommit)?;
                            let start = Instant::now();
                            sink.snapshot_state(barrier.id)?;
                            let snapshot = op.snapshot(barrier.id);
                            let metrics = SubtaskMetrics {
                                sync_duration: start.elapsed(),
                                alignment_duration: alignment.duration,
                                buffered_records: alignment.buffered_records,
                                ..SubtaskMetrics::default()
                            };
                            asyncs.push(ctx.spawn_async(
                                task,
                                barrier.id,
                                vec![snapshot],
                                metrics,
                            )?);
                        }
                        HandlerOutput::Aborted { .. } => {}
                        HandlerOutput::EndOfInput => {
                            sink.close()?;
                            return Ok(());
                        }
                    }
                }
            }
            Msg::Notify(id) => {
                ctx.injector.hit(FailPoint::SinkCommit)?;
                sink.notify_checkpoint_complete(id)?;
            }
            Msg::Cancel => return Ok(()),
            Msg::Barrier(_) | Msg::Finish => {}
        }
    }
}

/// Notifies the tasks of one attempt (and injects failures between commit and notify).
struct Notifier {
    sources: Vec<Sender<Msg<()>>>,
    counters: Vec<Sender<Msg<SourceElement>>>,
    sinks: Vec<Sender<Msg<WindowCount>>>,
    events: Sender<JobEvent>,
    injector: Arc<FailureInjector>,
    progress: bool,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl CheckpointListener for Notifier {
    fn notify_checkpoint_complete(&self, id: CheckpointId) {
        if self.progress {
            // A closed stdout (the reader went away) is not the job's failure.
            let _ = writeln!(std::io::stdout(), "completed checkpoint {id}");
        }
        if let Err(error) = self.injector.hit(FailPoint::BeforeNotify) {
            let _ = self.events.send(JobEvent::Failed {
                task: TaskId::new("coordinator", 0),
                error,
            });
            return;
        }
        for s in &self.sources {
            let _ = s.send(Msg::Notify(id));
        }
        for c in &self.counters {
            let _ = c.send(Msg::Notify(id));
        }
        for s in &self.sinks {
            let _ = s.send(Msg::Notify(id));
        }
    }

    fn notify_checkpoint_aborted(&self, _id: CheckpointId, _reason: &str) {}
}

/// A running attempt.
struct Deployment {
    ctx: Arc<Ctx>,
    events: Receiver<JobEvent>,
    sources: Vec<Sender<Msg<()>>>,
    counters: Vec<Sender<Msg<SourceElement>>>,
    sinks: Vec<Sender<Msg<WindowCount>>>,
    threads: Vec<JoinHandle<()>>,
    tasks: usize,
}

fn spawn_task(
    ctx: &Arc<Ctx>,
    task: TaskId,
    body: impl FnOnce(&Arc<Ctx>, &TaskId, &mut Vec<JoinHandle<()>>) -> Result<()> + Send + 'static,
) -> Result<JoinHandle<()>> {
    let ctx = Arc::clone(ctx);
    thread::Builder::new()
        .name(task.to_string())
        .spawn(move || {
            let mut asyncs = Vec::new();
            let result = body(&ctx, &task, &mut asyncs);
            for a in asyncs {
                let _ = a.join();
            }
            let event = match result {
                Ok(()) => JobEvent::Finished,
                Err(error) => JobEvent::Failed { task, error },
            };
            let _ = ctx.events.send(event);
        })
        .map_err(|e| Error::io("spawn a task thread", e))
}

fn deploy<F: StateBackendFactory + 'static>(
    topology: &Topology,
    factory: &Arc<F>,
    restored: Option<RestoredCheckpoint>,
    injector: &Arc<FailureInjector>,
    timers: &Arc<TimerCounters>,
    clock: &SharedClock,
) -> Result<Deployment> {
    let (events_tx, events) = mpsc::channel();
    let ctx = Arc::new(Ctx {
        topology: topology.clone(),
        events: events_tx,
        streams: Mutex::new(HashMap::new()),
        injector: Arc::clone(injector),
        timers: Arc::clone(timers),
        clock: clock.clone(),
    });
    let restored = restored.map(Arc::new);
    let t = topology;
    let mut threads = Vec::new();
    let (sink_tx, sink_rx): (Vec<_>, Vec<_>) = (0..t.sinks).map(|_| mpsc::channel()).unzip();
    let (counter_tx, counter_rx): (Vec<_>, Vec<_>) =
        (0..t.counters).map(|_| mpsc::channel()).unzip();
    let mut source_tx = Vec::new();
    for (i, rx) in sink_rx.into_iter().enumerate() {
        let restored = restored.clone();
        threads.push(spawn_task(
            &ctx,
            TaskId::new(SINK_UID, i as u32),
            move |ctx, task, asyncs| run_sink(ctx, task, restored.as_deref(), &rx, asyncs),
        )?);
    }
    for (i, rx) in counter_rx.into_iter().enumerate() {
        let restored = restored.clone();
        let out = sink_tx.clone();
        let factory = Arc::clone(factory);
        threads.push(spawn_task(
            &ctx,
            TaskId::new(COUNTER_UID, i as u32),
            move |ctx, task, asyncs| {
                run_counter(ctx, task, &*factory, restored.as_deref(), &rx, &out, asyncs)
            },
        )?);
    }
    for (input, uid) in SOURCE_UIDS.iter().enumerate() {
        for split in 0..t.splits_per_input {
            let (tx, rx) = mpsc::channel();
            source_tx.push(tx);
            let restored = restored.clone();
            let out = counter_tx.clone();
            threads.push(spawn_task(
                &ctx,
                TaskId::new(*uid, split),
                move |ctx, task, asyncs| {
                    run_source(
                        ctx,
                        task,
                        input as u32,
                        restored.as_deref(),
                        &rx,
                        &out,
                        asyncs,
                    )
                },
            )?);
        }
    }
    let tasks = threads.len();
    Ok(Deployment {
        ctx,
        events,
        sources: source_tx,
        counters: counter_tx,
        sinks: sink_tx,
        threads,
        tasks,
    })
}

impl Deployment {
    fn notifier(&self) -> Notifier {
        Notifier {
            sources: self.sources.clone(),
            counters: self.counters.clone(),
            sinks: self.sinks.clone(),
            events: self.ctx.events.clone(),
            injector: Arc::clone(&self.ctx.injector),
            progress: self.ctx.topology.progress,
        }
    }

    /// Cancels every task and waits for them (and their asynchronous phases).
    fn tear_down(self) {
        for s in &self.sources {
            let _ = s.send(Msg::Cancel);
        }
        for c in &self.counters {
            let _ = c.send(Msg::Cancel);
        }
        for s in &self.sinks {
            let _ = s.send(Msg::Cancel);
        }
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a task thread panicked");
            }
        }
    }
}

/// How an attempt ended.
pub(crate) enum AttemptEnd {
    /// Every task finished after the final checkpoint.
    Finished,
    /// A task (or the coordinator) failed.
    Failed { task: TaskId, error: Error },
}

/// Runs one attempt until it finishes or fails; returns the latest completed checkpoint.
/// The counters add the timers they fire to `timers`.
pub(crate) fn run_attempt<F: StateBackendFactory + 'static>(
    topology: &Topology,
    factory: &Arc<F>,
    coordinator: &CheckpointCoordinator,
    restored: Option<RestoredCheckpoint>,
    injector: &Arc<FailureInjector>,
    timers: &Arc<TimerCounters>,
    clock: &SharedClock,
) -> Result<(AttemptEnd, Option<CompletedCheckpoint>)> {
    let deployment = deploy(topology, factory, restored, injector, timers, clock)?;
    coordinator.set_listeners(vec![Arc::new(deployment.notifier())]);
    let end = drive(&deployment, coordinator);
    coordinator.set_listeners(Vec::new());
    deployment.tear_down();
    end
}

fn drive(
    d: &Deployment,
    coordinator: &CheckpointCoordinator,
) -> Result<(AttemptEnd, Option<CompletedCheckpoint>)> {
    let sources = d.sources.len();
    let mut exhausted = 0usize;
    let mut finished = 0usize;
    let mut final_checkpoint: Option<CheckpointId> = None;
    let mut finish_sent = false;
    let mut latest = None;
    let tick = Duration::from_millis(1);
    loop {
        match d.events.recv_timeout(tick) {
            Ok(JobEvent::Ack {
                task,
                id,
                state,
                metrics,
            }) => match coordinator.acknowledge(id, &task, state, metrics) {
                Ok(AckOutcome::Completed(done)) => {
                    if final_checkpoint.is_some_and(|f| done.id() >= f) && !finish_sent {
                        for s in &d.sources {
                            let _ = s.send(Msg::Finish);
                        }
                        finish_sent = true;
                    }
                    latest = Some(done);
                }
                Ok(_) => {}
                Err(error) => return Ok((AttemptEnd::Failed { task, error }, latest)),
            },
            Ok(JobEvent::Decline { task, id, error }) => {
                // Beyond the tolerable checkpoint failures, the job fails over.
                if let Err(limit) = coordinator.decline(id, &task, &error.to_string()) {
                    return Ok((AttemptEnd::Failed { task, error: limit }, latest));
                }
            }
            Ok(JobEvent::Failed { task, error }) => {
                return Ok((AttemptEnd::Failed { task, error }, latest));
            }
            Ok(JobEvent::Exhausted) => exhausted += 1,
            Ok(JobEvent::Finished) => {
                finished += 1;
                if finished == d.tasks {
                    return Ok((AttemptEnd::Finished, latest));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "the job's event channel closed",
                ));
            }
        }
        if let Err(error) = coordinator.check_timeouts() {
            return Ok((
                AttemptEnd::Failed {
                    task: TaskId::new("coordinator", 0),
                    error,
                },
                latest,
            ));
        }
        if finish_sent {
            continue;
        }
        let triggered = match coordinator.trigger_if_due() {
            Ok(r) => r,
            // Fenced, or one failed checkpoint more than tolerable: the job fails over.
            Err(error) => {
                return Ok((
                    AttemptEnd::Failed {
                        task: TaskId::new("coordinator", 0),
                        error,
                    },
                    latest,
                ));
            }
        };
        if let TriggerResult::Triggered(t) = triggered {
            d.ctx.streams.lock().insert(t.id, t.streams.clone());
            if exhausted == sources && final_checkpoint.is_none() {
                final_checkpoint = Some(t.id);
            }
            let barrier = CheckpointBarrier {
                id: t.id,
                timestamp_ms: t.timestamp_ms,
            };
            for s in &d.sources {
                let _ = s.send(Msg::Barrier(barrier));
            }
        }
    }
}

/// The tasks of the job, for reports.
pub(crate) fn task_count(t: &Topology) -> usize {
    (INPUTS * t.splits_per_input + t.counters + t.sinks) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window's timer fires (its timestamp is at or below the timer watermark) exactly
    /// when the job's low watermark reaches the window's end, as the key scan fired it.
    #[test]
    fn window_timers_fire_when_the_low_watermark_reaches_the_window_end() {
        for window_ms in [1u64, 7, 500] {
            for window in (0..5).map(|i| i * window_ms) {
                for low in 0..6 * window_ms {
                    assert_eq!(
                        window_timer(window, window_ms) <= timer_watermark(low),
                        window + window_ms <= low,
                        "window {window} of {window_ms} ms at low watermark {low}"
                    );
                }
            }
        }
        // The end of input fires every window.
        assert!(window_timer(u64::MAX - 10, 500) <= timer_watermark(u64::MAX));
    }
}
