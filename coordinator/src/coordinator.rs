//! The checkpoint coordinator: triggers checkpoints, collects every task's
//! acknowledgement, finalizes into the checkpoint store, notifies tasks, aborts on timeout or
//! decline, counts failures against the tolerable number, and keeps statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result, SharedClock, SubtaskState};
use cornerstone_checkpoint_store::{
    CheckpointStore, ClaimMode, CompletedCheckpoint, CompletedCheckpointStore, JobStatus,
    PendingCheckpoint, StoreStateReader, StoreStreamFactory,
};
use parking_lot::Mutex;

use crate::config::CoordinatorConfig;
use crate::mapping::{OperatorMapping, map_operators};
use crate::stats::{
    CheckpointStats, CheckpointStatus, JobCheckpointStats, StatsTracker, SubtaskMetrics,
    SubtaskStats,
};

/// One operator of the job graph, as recorded in checkpoint metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSpec {
    /// The stable uid (the key of its state in `_metadata`).
    pub uid: String,
    /// A readable name.
    pub name: String,
    /// How many subtasks it runs.
    pub parallelism: u32,
    /// Its number of key groups.
    pub max_parallelism: u32,
}

impl OperatorSpec {
    /// An operator with `parallelism` subtasks and `max_parallelism` key groups.
    pub fn new(
        uid: impl Into<String>,
        name: impl Into<String>,
        parallelism: u32,
        max_parallelism: u32,
    ) -> Self {
        OperatorSpec {
            uid: uid.into(),
            name: name.into(),
            parallelism,
            max_parallelism,
        }
    }
}

/// One subtask of one operator: what acknowledges a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The operator's uid.
    pub operator: String,
    /// The subtask index.
    pub subtask: u32,
}

impl TaskId {
    /// Subtask `subtask` of operator `operator`.
    pub fn new(operator: impl Into<String>, subtask: u32) -> Self {
        TaskId {
            operator: operator.into(),
            subtask,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.operator, self.subtask)
    }
}

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

    /// Triggers a periodic checkpoint when the interval has passed since the last trigger
    /// and neither `max_concurrent` nor `min_pause` forbid it.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`] when another coordinator took over the job directory (this one
    /// must stop); [`ErrorKind::LimitExceeded`] when a checkpoint that could not begin is one
    /// failure more than tolerable. Other storage errors while beginning the checkpoint are a
    /// [`TriggerResult::Failed`].
    pub fn trigger_if_due(&self) -> Result<TriggerResult> {
        let Some(interval) = self.config.interval else {
            return Ok(TriggerResult::Skipped(SkipReason::Disabled));
        };
        let now = self.clock.now_millis();
        let mut inner = self.inner.lock();
        if now < inner.next_periodic_ms {
            return Ok(TriggerResult::Skipped(SkipReason::NotDue {
                remaining: Duration::from_millis(inner.next_periodic_ms - now),
            }));
        }
        let result = self.trigger_locked(&mut inner, now)?;
        if !matches!(result, TriggerResult::Skipped(_)) {
            inner.next_periodic_ms = now.saturating_add(duration_ms(interval));
        }
        drop(inner);
        self.count_trigger_failure(result)
    }

    /// Triggers a checkpoint now (whatever the interval), unless `max_concurrent` or
    /// `min_pause` forbid it.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`] when another coordinator took over the job directory (this one
    /// must stop); [`ErrorKind::LimitExceeded`] when a checkpoint that could not begin is one
    /// failure more than tolerable. Other storage errors while beginning the checkpoint are a
    /// [`TriggerResult::Failed`].
    pub fn trigger(&self) -> Result<TriggerResult> {
        let now = self.clock.now_millis();
        let mut inner = self.inner.lock();
        let result = self.trigger_locked(&mut inner, now)?;
        if let (TriggerResult::Triggered(_) | TriggerResult::Failed { .. }, Some(interval)) =
            (&result, self.config.interval)
        {
            inner.next_periodic_ms = now.saturating_add(duration_ms(interval));
        }
        drop(inner);
        self.count_trigger_failure(result)
    }

    /// A checkpoint that could not begin is a failed checkpoint (outside the `inner` lock:
    /// failures take `finishing` first).
    fn count_trigger_failure(&self, result: TriggerResult) -> Result<TriggerResult> {
        if let TriggerResult::Failed { id, error } = &result {
            tracing::warn!(checkpoint = %id, %error, "a checkpoint could not begin");
            self.record_failure(*id, &format!("could not begin: {error}"), true, None)?;
        }
        Ok(result)
    }

    fn trigger_locked(&self, inner: &mut Inner, now: u64) -> Result<TriggerResult> {
        if inner.shut_down {
            return Ok(TriggerResult::Skipped(SkipReason::ShutDown));
        }
        let max = self.config.effective_max_concurrent();
        if inner.pending.len() >= max {
            return Ok(TriggerResult::Skipped(SkipReason::TooManyConcurrent {
                in_progress: inner.pending.len(),
                max,
            }));
        }
        if let Some(done) = inner.last_completion_ms {
            let earliest = done.saturating_add(duration_ms(self.config.min_pause));
            if now < earliest {
                return Ok(TriggerResult::Skipped(SkipReason::MinPause {
                    remaining: Duration::from_millis(earliest - now),
                }));
            }
        }
        let id = CheckpointId(inner.next_id);
        inner.next_id += 1;
        let begun = self.store.begin_checkpoint(id);
        inner.stats.push(CheckpointStats {
            id,
            trigger_timestamp_ms: now,
            end_to_end_duration: Duration::ZERO,
            state_size: 0,
            subtasks: BTreeMap::new(),
            status: CheckpointStatus::InProgress,
        });
        let checkpoint = match begun {
            Ok(c) => c,
            // A fenced coordinator must stop: that is no checkpoint failure.
            Err(e) if e.kind() == ErrorKind::Fenced => return Err(e),
            Err(error) => return Ok(TriggerResult::Failed { id, error }),
        };
        let streams = checkpoint.stream_factory();
        inner.pending.insert(
            id,
            Pending {
                checkpoint,
                deadline_ms: now.saturating_add(duration_ms(self.config.timeout)),
                waiting: self.tasks.clone(),
            },
        );
        tracing::debug!(checkpoint = %id, "triggered checkpoint");
        Ok(TriggerResult::Triggered(TriggeredCheckpoint {
            id,
            timestamp_ms: now,
            streams,
        }))
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
        pending.checkpoint.add_subtask_state(
            &spec.uid,
            &spec.name,
            spec.parallelism,
            spec.max_parallelism,
            task.subtask,
            state,
        )?;
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

    /// Commits checkpoint `id` (its last acknowledgement arrived), or aborts it when a newer
    /// checkpoint completed meanwhile; aborts the older pending ones; notifies.
    fn complete(&self, id: CheckpointId, checkpoint: PendingCheckpoint) -> Result<AckOutcome> {
        let _finishing = self.finishing.lock();
        let newer = self.inner.lock().latest_completed.filter(|l| *l > id);
        if let Some(newer) = newer {
            self.abort_finishing(id, &subsumed_by(newer), false, Some(checkpoint))?;
            return Ok(AckOutcome::Discarded);
        }
        // The commit does storage I/O: outside the `inner` lock.
        let done = match checkpoint.commit() {
            Ok(done) => done,
            Err(e) if matches!(e.kind(), ErrorKind::OutcomeUnknown | ErrorKind::Fenced) => {
                // The checkpoint may be on storage (its `_metadata` was published, or the
                // commit's outcome is unknown): its side effects, such as a sink's
                // pre-committed transaction, must be neither committed nor discarded, so
                // no listener is told. The job must fail over (outcome unknown: the restore
                // finds out from storage) or stop (fenced: another writer owns the job).
                tracing::warn!(checkpoint = %id, error = %e, "checkpoint commit in doubt");
                self.mark_failed(id, &format!("finalizing the checkpoint failed: {e}"));
                return Err(e);
            }
            Err(e) => {
                let reason = format!("finalizing the checkpoint failed: {e}");
                self.abort_finishing(id, &reason, true, None)?;
                return Ok(AckOutcome::Discarded);
            }
        };
        let now = self.clock.now_millis();
        let subsumed = {
            let mut inner = self.inner.lock();
            inner.latest_completed = Some(id);
            inner.last_completion_ms = Some(now);
            inner.continuous_failures = 0;
            inner.stats.completed += 1;
            if let Some(stats) = inner.stats.get_mut(id) {
                stats.end_to_end_duration =
                    Duration::from_millis(now.saturating_sub(stats.trigger_timestamp_ms));
                stats.status = CheckpointStatus::Completed {
                    metadata_path: done.metadata_path.clone(),
                };
            }
            let newer = inner.pending.split_off(&id);
            std::mem::replace(&mut inner.pending, newer)
        };
        tracing::info!(
            checkpoint = %id,
            path = %done.metadata_path,
            state_size = done.metadata.state_size(),
            "completed checkpoint"
        );
        let reason = subsumed_by(id);
        for (old, p) in subsumed {
            // Not counted: cannot exceed the limit.
            let _ = self.abort_finishing(old, &reason, false, Some(p.checkpoint));
        }
        let listeners = self.inner.lock().listeners.clone();
        for l in listeners {
            l.notify_checkpoint_complete(id);
        }
        Ok(AckOutcome::Completed(done))
    }

    /// A task declined checkpoint `id` (its snapshot failed): the checkpoint is aborted and
    /// counts as a failure.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an unknown task; [`ErrorKind::LimitExceeded`] when
    /// this failure is one more than tolerable.
    pub fn decline(&self, id: CheckpointId, task: &TaskId, reason: &str) -> Result<()> {
        self.spec_of(task)?;
        let pending = self.inner.lock().pending.remove(&id);
        match pending {
            Some(p) => {
                let reason = format!("declined by {task}: {reason}");
                self.record_failure(id, &reason, true, Some(p.checkpoint))
            }
            None => Ok(()),
        }
    }

    /// Aborts every checkpoint whose timeout has passed; returns their ids.
    ///
    /// # Errors
    /// [`ErrorKind::LimitExceeded`] when the expirations make more failures in a row than
    /// tolerable.
    pub fn check_timeouts(&self) -> Result<Vec<CheckpointId>> {
        let now = self.clock.now_millis();
        let expired: Vec<(CheckpointId, Pending)> = {
            let mut inner = self.inner.lock();
            let ids: Vec<CheckpointId> = inner
                .pending
                .iter()
                .filter(|(_, p)| now >= p.deadline_ms)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| inner.pending.remove(&id).map(|p| (id, p)))
                .collect()
        };
        let mut ids = Vec::new();
        let mut limit = None;
        for (id, p) in expired {
            ids.push(id);
            let waiting: Vec<String> = p.waiting.iter().map(ToString::to_string).collect();
            let reason = format!(
                "expired after {:?} waiting for {}",
                self.config.timeout,
                waiting.join(", ")
            );
            if let Err(e) = self.record_failure(id, &reason, true, Some(p.checkpoint)) {
                limit.get_or_insert(e);
            }
        }
        limit.map_or(Ok(ids), Err)
    }

    /// Aborts every pending checkpoint because the job fails over or stops; these aborts do
    /// not count against the tolerable failures.
    pub fn abort_pending(&self, reason: &str) {
        let pending: Vec<(CheckpointId, Pending)> = std::mem::take(&mut self.inner.lock().pending)
            .into_iter()
            .collect();
        for (id, p) in pending {
            // Not counted: cannot exceed the limit.
            let _ = self.record_failure(id, reason, false, Some(p.checkpoint));
        }
    }

    fn record_failure(
        &self,
        id: CheckpointId,
        reason: &str,
        counts: bool,
        checkpoint: Option<PendingCheckpoint>,
    ) -> Result<()> {
        let _finishing = self.finishing.lock();
        self.abort_finishing(id, reason, counts, checkpoint)
    }

    /// Aborts checkpoint `id` (deleting what it wrote), records it and notifies the
    /// listeners. `counts`: whether it is a failure for the failure manager, which ignores
    /// checkpoints older than the latest completed one anyway. The caller holds
    /// `finishing`.
    fn abort_finishing(
        &self,
        id: CheckpointId,
        reason: &str,
        counts: bool,
        checkpoint: Option<PendingCheckpoint>,
    ) -> Result<()> {
        if let Some(c) = checkpoint
            && let Err(e) = c.abort()
        {
            tracing::warn!(checkpoint = %id, error = %e, "cleaning up an aborted checkpoint failed");
        }
        tracing::info!(checkpoint = %id, reason, "checkpoint aborted");
        self.mark_failed(id, reason);
        let (listeners, exceeded) = {
            let mut inner = self.inner.lock();
            let mut exceeded = false;
            if counts && inner.latest_completed.is_none_or(|l| id > l) {
                inner.continuous_failures += 1;
                if inner.continuous_failures > self.config.tolerable_failed {
                    inner.continuous_failures = 0;
                    exceeded = true;
                }
            }
            (inner.listeners.clone(), exceeded)
        };
        for l in listeners {
            l.notify_checkpoint_aborted(id, reason);
        }
        if exceeded {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                "exceeded the tolerable number of checkpoint failures",
            )
            .with_context("tolerable", self.config.tolerable_failed)
            .with_context("checkpoint", id)
            .with_context("reason", reason));
        }
        Ok(())
    }

    /// Counts checkpoint `id` as failed in the statistics, with `reason`.
    fn mark_failed(&self, id: CheckpointId, reason: &str) {
        let now = self.clock.now_millis();
        let mut inner = self.inner.lock();
        inner.stats.failed += 1;
        if let Some(stats) = inner.stats.get_mut(id) {
            stats.end_to_end_duration =
                Duration::from_millis(now.saturating_sub(stats.trigger_timestamp_ms));
            stats.status = CheckpointStatus::Failed {
                reason: reason.to_owned(),
            };
        }
    }

    /// Restores the latest completed checkpoint (claimed: it is subsumed like the job's own
    /// checkpoints), or `None` when there is none. Pending checkpoints must have been
    /// aborted ([`abort_pending`](Self::abort_pending)). A checkpoint whose commit outcome
    /// was unknown is settled from storage first, so a restore never starts from older
    /// state than a checkpoint that did complete. Its operators are mapped onto the job's as
    /// [`restore_from`](Self::restore_from) does.
    ///
    /// # Errors
    /// [`ErrorKind::OutcomeUnknown`] while storage still cannot say whether such a
    /// checkpoint completed; [`ErrorKind::Fenced`]; the mapping errors of
    /// [`map_operators`]; storage errors.
    pub fn restore_latest(&self) -> Result<Option<RestoredCheckpoint>> {
        self.store.settle_doubtful()?;
        let Some(latest) = self.store.latest() else {
            return Ok(None);
        };
        self.restore_from(latest, ClaimMode::Claim).map(Some)
    }

    /// Restores `point`, a checkpoint or savepoint of this coordinator's store (found with
    /// [`CheckpointStore::resolve`]), with `mode` (see [`ClaimMode`]): after an upgrade, a
    /// rescale or a move to another job id. The snapshot's operators are
    /// mapped onto the job's by uid ([`map_operators`]): operators it has no state for start
    /// empty; state of operators the job lacks is refused unless the configuration allows
    /// non-restored state. Checkpoint ids continue after the snapshot's.
    ///
    /// # Errors
    /// The mapping errors of [`map_operators`]; the errors of
    /// [`CompletedCheckpointStore::restore`].
    pub fn restore_from(
        &self,
        point: CompletedCheckpoint,
        mode: ClaimMode,
    ) -> Result<RestoredCheckpoint> {
        let mapping = map_operators(
            &point.metadata,
            &point.metadata_path,
            &self.operators,
            self.config.allow_non_restored_state,
        )?;
        if !mapping.not_restored.is_empty() {
            tracing::warn!(
                checkpoint = %point.id(),
                operators = %mapping.not_restored.join(","),
                "skipping the state of operators this job does not have (allow_non_restored_state)"
            );
        }
        let reader = self.store.restore(&point, mode)?;
        let mut inner = self.inner.lock();
        inner.next_id = inner.next_id.max(point.id().get() + 1);
        inner.stats.restored += 1;
        inner.stats.last_restored = Some(point.id());
        tracing::info!(checkpoint = %point.id(), path = %point.metadata_path, "restoring from checkpoint");
        Ok(RestoredCheckpoint {
            checkpoint: point,
            reader: Arc::new(reader),
            mapping,
        })
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

/// The abort reason of a checkpoint subsumed by the completion of `newer`.
fn subsumed_by(newer: CheckpointId) -> String {
    format!("subsumed by completed checkpoint {newer}")
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
