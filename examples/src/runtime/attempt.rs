//! One attempt of the job: deploying its tasks, notifying them of completed checkpoints,
//! driving the coordinator until the attempt finishes or fails, and tearing it down.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result, SharedClock, StateBackend};
use cornerstone_checkpoint_store::CompletedCheckpoint;
use cornerstone_coordinator::{
    AckOutcome, CheckpointBarrier, CheckpointCoordinator, CheckpointListener, RestoredCheckpoint,
    TaskId, TriggerResult,
};
use parking_lot::Mutex;

use super::counter::run_counter;
use super::sink::run_sink;
use super::source::run_source;
use super::{
    COUNTER_UID, Ctx, JobEvent, Msg, SINK_UID, SOURCE_UIDS, SourceElement, TimerCounters, Topology,
    WindowCount,
};
use crate::failure::{FailPoint, FailureInjector, MAX_CHECKPOINT_COUNTDOWN};

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

fn deploy<F: StateBackend + 'static>(
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
pub(crate) fn run_attempt<F: StateBackend + 'static>(
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

/// How many checkpoints an attempt takes past its final one while a failure planned at a
/// checkpoint point is armed: every checkpoint passes the point at least once, so twice its
/// largest countdown leaves room for checkpoints that were declined.
const MAX_HELD_CHECKPOINTS: u64 = 2 * MAX_CHECKPOINT_COUNTDOWN;

fn drive(
    d: &Deployment,
    coordinator: &CheckpointCoordinator,
) -> Result<(AttemptEnd, Option<CompletedCheckpoint>)> {
    let sources = d.sources.len();
    let mut exhausted = 0usize;
    let mut finished = 0usize;
    let mut final_checkpoint: Option<CheckpointId> = None;
    let mut finish_sent = false;
    let mut held = 0u64;
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
                    let mut ends = !finish_sent && final_checkpoint.is_some_and(|f| done.id() >= f);
                    if ends && held < MAX_HELD_CHECKPOINTS && d.ctx.injector.armed_at_checkpoints()
                    {
                        // A failure planned at a checkpoint point has not fired yet: take
                        // one more checkpoint (each passes every such point) instead of
                        // ending.
                        held += 1;
                        final_checkpoint = None;
                        ends = false;
                    }
                    if ends {
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
