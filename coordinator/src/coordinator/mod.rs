//! The checkpoint coordinator: triggers checkpoints, collects every task's
//! acknowledgement, finalizes into the checkpoint store, notifies tasks, aborts on timeout or
//! decline, counts failures against the tolerable number, and keeps statistics.

mod finish;
mod restore;
mod trigger;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, Error, Result, SharedClock, SubtaskState};
use cornerstone_checkpoint_store::{
    CheckpointStore, CompletedCheckpoint, CompletedCheckpointStore, JobStatus, PendingCheckpoint,
    StoreStateReader, StoreStreamFactory,
};
use parking_lot::Mutex;

use crate::config::CoordinatorConfig;
use crate::mapping::OperatorMapping;
use crate::stats::{JobCheckpointStats, StatsTracker, SubtaskMetrics, SubtaskStats};

pub use crate::task::{OperatorSpec, TaskId};

/// Receives the coordinator's notifications (Flink's `CheckpointListener`): the place where
/// a task commits side effects, such as a two-phase-commit sink's transactions.
///
/// # Guarantees
/// - Each triggered checkpoint is notified at most once: completed or aborted, never both.
/// - Completions are notified in increasing id order: once checkpoint `N` is notified
///   complete, no checkpoint below `N` ever is. The older ones still pending are aborted as
///   subsumed, notified before `N`'s completion; one whose last acknowledgement raced with
///   `N`'s completion is aborted as subsumed right after it.
/// - Aborts as such are not ordered by id (an expiry may be notified after a newer
///   checkpoint's completion).
/// - Notifications are delivered one at a time (never concurrently), from the thread whose
///   call finished the checkpoint. A listener must not call back into the coordinator's
///   [`acknowledge`](CheckpointCoordinator::acknowledge),
///   [`decline`](CheckpointCoordinator::decline),
///   [`check_timeouts`](CheckpointCoordinator::check_timeouts),
///   [`abort_pending`](CheckpointCoordinator::abort_pending) or
///   [`shutdown`](CheckpointCoordinator::shutdown) from a notification (that would
///   deadlock); hand the work to another thread instead.
pub trait CheckpointListener: Send + Sync + fmt::Debug {
    /// Checkpoint `id` is committed to the checkpoint store (it subsumes every older one).
    fn notify_checkpoint_complete(&self, id: CheckpointId);
    /// Checkpoint `id` was aborted (`reason` says why; a checkpoint subsumed by a newer
    /// completed one is aborted too, with a reason saying so).
    fn notify_checkpoint_aborted(&self, id: CheckpointId, reason: &str);
}

/// A triggered checkpoint: inject a barrier with this id into every source; tasks write
/// their state through `streams`.
#[derive(Debug, Clone)]
pub struct TriggeredCheckpoint {
    /// The checkpoint id.
    pub id: CheckpointId,
    /// When it was triggered (clock milliseconds).
    pub timestamp_ms: u64,
    /// The stream factory of the checkpoint's storage.
    pub streams: Arc<StoreStreamFactory>,
}

/// Why a trigger did not start a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Periodic checkpointing is disabled (no interval).
    Disabled,
    /// The interval since the last trigger has not passed.
    NotDue {
        /// Until the next periodic trigger.
        remaining: Duration,
    },
    /// `max_concurrent` checkpoints are in progress.
    TooManyConcurrent {
        /// In progress now.
        in_progress: usize,
        /// The effective maximum.
        max: usize,
    },
    /// The minimum pause since the last completed checkpoint has not passed.
    MinPause {
        /// Until the pause has passed.
        remaining: Duration,
    },
    /// The coordinator was shut down.
    ShutDown,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Disabled => f.write_str("periodic checkpointing is disabled"),
            SkipReason::NotDue { remaining } => write!(f, "not due for {remaining:?}"),
            SkipReason::TooManyConcurrent { in_progress, max } => write!(
                f,
                "{in_progress} checkpoints in progress, at most {max} concurrent"
            ),
            SkipReason::MinPause { remaining } => {
                write!(f, "minimum pause between checkpoints: {remaining:?} left")
            }
            SkipReason::ShutDown => f.write_str("the coordinator is shut down"),
        }
    }
}

/// The result of a trigger.
#[derive(Debug)]
pub enum TriggerResult {
    /// A checkpoint started.
    Triggered(TriggeredCheckpoint),
    /// No checkpoint started.
    Skipped(SkipReason),
    /// Checkpoint `id` could not begin (storage failed): it is a failed checkpoint, counted
    /// against the tolerable failures like a declined one (Flink's trigger failure), and
    /// the job goes on.
    Failed {
        /// The checkpoint's id (never used again).
        id: CheckpointId,
        /// Why it could not begin.
        error: Error,
    },
}

impl TriggerResult {
    /// The triggered checkpoint, if one started.
    pub fn triggered(self) -> Option<TriggeredCheckpoint> {
        match self {
            TriggerResult::Triggered(t) => Some(t),
            TriggerResult::Skipped(_) | TriggerResult::Failed { .. } => None,
        }
    }
}

/// What an acknowledgement did.
#[derive(Debug, Clone)]
pub enum AckOutcome {
    /// Recorded; `remaining` tasks have not acknowledged yet.
    Pending {
        /// Tasks still to acknowledge.
        remaining: usize,
    },
    /// The last acknowledgement: the checkpoint is committed and the listeners notified.
    Completed(CompletedCheckpoint),
    /// The checkpoint is no longer pending (aborted, expired, subsumed by a newer completed
    /// checkpoint, or a duplicate acknowledgement): the state is discarded, as in Flink.
    Discarded,
}

/// A checkpoint a job restores from, with the reader of its files.
#[derive(Debug, Clone)]
pub struct RestoredCheckpoint {
    /// The checkpoint.
    pub checkpoint: CompletedCheckpoint,
    /// Reads its file handles.
    pub reader: Arc<StoreStateReader>,
    /// Which of the job's operators get state from it, which start empty, and whose state
    /// is skipped.
    pub mapping: OperatorMapping,
}

struct Pending {
    checkpoint: PendingCheckpoint,
    deadline_ms: u64,
    waiting: BTreeSet<TaskId>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    pending: BTreeMap<CheckpointId, Pending>,
    next_periodic_ms: u64,
    last_completion_ms: Option<u64>,
    continuous_failures: u32,
    /// The id of the latest checkpoint committed (or recovered) by this coordinator.
    latest_completed: Option<CheckpointId>,
    stats: StatsTracker,
    shut_down: bool,
    listeners: Vec<Arc<dyn CheckpointListener>>,
}

/// The checkpoint coordinator of one job (Flink's `CheckpointCoordinator` with its
/// `CheckpointFailureManager`).
///
/// It is a state machine driven by its caller, thread-safe (`&self` everywhere): the job
/// calls [`trigger_if_due`](Self::trigger_if_due) and [`check_timeouts`](Self::check_timeouts)
/// periodically, injects a barrier for each triggered checkpoint, and every task calls
/// [`acknowledge`](Self::acknowledge) (or [`decline`](Self::decline)) with the state handles
/// it wrote through the checkpoint's stream factory. The last acknowledgement commits the
/// checkpoint through the checkpoint store (`_metadata` last; retention and subsumption are
/// the store's) and notifies the [`CheckpointListener`]s. Time comes from the injected
/// clock, so timeouts and pauses are tested on a manual clock.
///
/// # Ordering
/// Finishing a checkpoint (committing or aborting it, and notifying the listeners) is
/// serialized; the storage I/O happens outside the lock that acknowledgements and triggers
/// take. When checkpoint `N` completes, every pending checkpoint older than `N` is aborted
/// as subsumed (Flink's `dropSubsumedCheckpoints`): its files are deleted, its listeners
/// notified of the abort, and its later acknowledgements discarded. A checkpoint whose last
/// acknowledgement arrives after a newer one completed is aborted the same way instead of
/// committed. So completions are notified in increasing id order, each checkpoint once (see
/// [`CheckpointListener`]).
///
/// # Failures
/// A checkpoint that expires, is declined, or fails to commit is aborted (its files
/// deleted) and counts as a failure; a completed checkpoint resets the count. When more
/// than `tolerable_failed` failures happen in a row, the call that saw the last one returns
/// an error of kind [`ErrorKind::LimitExceeded`]: the job must fail over (Flink's
/// `CheckpointFailureManager`). Aborts caused by a failover or shutdown do not count, nor
/// do aborts of checkpoints older than the latest completed one (subsumed ones, or a
/// failure that lost the race with a newer checkpoint's completion), as in Flink. Every
/// abort shows in the statistics as [`CheckpointStatus::Failed`] with its reason.
///
/// [`ErrorKind::LimitExceeded`]: cornerstone_backend_api::ErrorKind::LimitExceeded
/// [`CheckpointStatus::Failed`]: crate::stats::CheckpointStatus::Failed
pub struct CheckpointCoordinator {
    store: CompletedCheckpointStore,
    config: CoordinatorConfig,
    clock: SharedClock,
    operators: Vec<OperatorSpec>,
    tasks: BTreeSet<TaskId>,
    inner: Mutex<Inner>,
    /// Held while a checkpoint is finished (committed or aborted) and its listeners are
    /// notified. Lock order: `finishing` before `inner`, never the reverse.
    finishing: Mutex<()>,
}

impl fmt::Debug for CheckpointCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointCoordinator")
            .field("job_dir", &self.store.job_dir())
            .field("config", &self.config)
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl CheckpointCoordinator {
    /// Opens the checkpoints of `job_id` in `store` (recovering the completed ones) and
    /// creates the coordinator of a job made of `operators`. Opening takes the job
    /// directory's lease, fencing any earlier coordinator of the job. Checkpoint ids continue
    /// after every id used before, by any writer (see
    /// [`CompletedCheckpointStore::next_checkpoint_id`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad configuration, an empty job, a zero parallelism
    /// or two operators with one uid; storage errors while recovering.
    ///
    /// [`ErrorKind::InvalidInput`]: cornerstone_backend_api::ErrorKind::InvalidInput
    pub fn open(
        store: &CheckpointStore,
        job_id: &str,
        config: CoordinatorConfig,
        operators: Vec<OperatorSpec>,
        clock: SharedClock,
    ) -> Result<Self> {
        config.validate()?;
        if operators.is_empty() {
            return Err(Error::invalid_input("a job needs at least one operator")
                .with_context("job", job_id));
        }
        let mut tasks = BTreeSet::new();
        let mut uids = BTreeSet::new();
        for op in &operators {
            if op.parallelism == 0 {
                return Err(
                    Error::invalid_input("an operator needs a parallelism of at least 1")
                        .with_context("operator", &op.uid),
                );
            }
            if !uids.insert(op.uid.clone()) {
                return Err(Error::invalid_input("two operators with the same uid")
                    .with_context("operator", &op.uid));
            }
            tasks.extend((0..op.parallelism).map(|i| TaskId::new(op.uid.clone(), i)));
        }
        let checkpoints =
            CompletedCheckpointStore::open(store, job_id, config.store_config(clock.clone()))?;
        // Ids never repeat: the store's lease knows every id any writer reserved, also those
        // of aborted checkpoints whose directories are gone.
        let latest_completed = checkpoints.latest().map(|c| c.id());
        let next_id = checkpoints.next_checkpoint_id().get();
        let now = clock.now_millis();
        let next_periodic_ms = now.saturating_add(duration_ms(config.interval.unwrap_or_default()));
        Ok(CheckpointCoordinator {
            store: checkpoints,
            config,
            clock,
            operators,
            tasks,
            inner: Mutex::new(Inner {
                next_id,
                next_periodic_ms,
                latest_completed,
                ..Inner::default()
            }),
            finishing: Mutex::new(()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The completed-checkpoint store the coordinator finalizes into.
    pub fn checkpoint_store(&self) -> &CompletedCheckpointStore {
        &self.store
    }

    /// Every task that acknowledges a checkpoint.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskId> {
        self.tasks.iter()
    }

    /// Replaces the listeners notified of completed and aborted checkpoints (the tasks of
    /// the current execution attempt).
    pub fn set_listeners(&self, listeners: Vec<Arc<dyn CheckpointListener>>) {
        self.inner.lock().listeners = listeners;
    }

    /// Records the acknowledgement of `task` for checkpoint `id` with the state it wrote.
    /// The last one commits the checkpoint, aborts every older pending checkpoint as
    /// subsumed (not a failure), and notifies the listeners: the subsumed aborts first, then
    /// the completion. If a newer checkpoint completed while this one waited to be
    /// committed, this one is aborted as subsumed instead ([`AckOutcome::Discarded`]).
    /// Acknowledgements of a checkpoint that is no longer pending are discarded.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `task` is not a task of this job;
    /// [`ErrorKind::LimitExceeded`] when the commit failed and that was one failure more
    /// than tolerable (see the type's docs); a failed commit within the tolerance is not an
    /// error (the outcome is [`AckOutcome::Discarded`]).
    ///
    /// [`ErrorKind::InvalidInput`]: cornerstone_backend_api::ErrorKind::InvalidInput
    /// [`ErrorKind::LimitExceeded`]: cornerstone_backend_api::ErrorKind::LimitExceeded
    pub fn acknowledge(
        &self,
        id: CheckpointId,
        task: &TaskId,
        state: SubtaskState,
        metrics: SubtaskMetrics,
    ) -> Result<AckOutcome> {
        let spec = self.spec_of(task)?;
        let now = self.clock.now_millis();
        let mut inner = self.inner.lock();
        let Some(pending) = inner.pending.get_mut(&id) else {
            return Ok(AckOutcome::Discarded);
        };
        if !pending.waiting.remove(task) {
            return Ok(AckOutcome::Discarded);
        }
        let size = state.state_size();
        pending
            .checkpoint
            .add_subtask_state(spec, task.subtask, state)?;
        let remaining = pending.waiting.len();
        if let Some(stats) = inner.stats.get_mut(id) {
            stats.state_size = stats.state_size.saturating_add(size);
            stats.subtasks.insert(
                task.clone(),
                SubtaskStats {
                    metrics,
                    state_size: size,
                    ack_latency_ms: now.saturating_sub(stats.trigger_timestamp_ms),
                },
            );
        }
        if remaining > 0 {
            return Ok(AckOutcome::Pending { remaining });
        }
        let Some(pending) = inner.pending.remove(&id) else {
            return Ok(AckOutcome::Discarded);
        };
        drop(inner);
        self.complete(id, pending.checkpoint)
    }

    /// The ids of the checkpoints waiting for acknowledgements.
    pub fn pending_ids(&self) -> Vec<CheckpointId> {
        self.inner.lock().pending.keys().copied().collect()
    }

    /// The statistics so far.
    pub fn stats(&self) -> JobCheckpointStats {
        let inner = self.inner.lock();
        JobCheckpointStats {
            completed: inner.stats.completed,
            failed: inner.stats.failed,
            in_progress: inner.pending.len() as u64,
            restored: inner.stats.restored,
            last_restored: inner.stats.last_restored,
            history: inner.stats.history.iter().cloned().collect(),
        }
    }

    /// The job terminated with `status`: aborts pending checkpoints and applies the cleanup
    /// policy through the checkpoint store. No checkpoint is triggered afterwards.
    ///
    /// # Errors
    /// Storage errors of the cleanup.
    pub fn shutdown(&self, status: JobStatus) -> Result<()> {
        self.abort_pending(&format!("job terminated: {status:?}"));
        self.inner.lock().shut_down = true;
        self.store.terminate(status)
    }

    fn spec_of(&self, task: &TaskId) -> Result<&OperatorSpec> {
        self.operators
            .iter()
            .find(|o| o.uid == task.operator && task.subtask < o.parallelism)
            .ok_or_else(|| {
                Error::invalid_input("acknowledgement from a task that is not part of the job")
                    .with_context("task", task)
            })
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
