//! Finishing checkpoints: committing the completed one, aborting the subsumed, declined and
//! expired ones, counting failures against the tolerable number, and notifying listeners.

use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};
use cornerstone_checkpoint_store::PendingCheckpoint;

use super::{AckOutcome, CheckpointCoordinator, Pending, TaskId};
use crate::stats::CheckpointStatus;

impl CheckpointCoordinator {
    /// Commits checkpoint `id` (its last acknowledgement arrived), or aborts it when a newer
    /// checkpoint completed meanwhile; aborts the older pending ones; notifies.
    pub(super) fn complete(
        &self,
        id: CheckpointId,
        checkpoint: PendingCheckpoint,
    ) -> Result<AckOutcome> {
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

    pub(super) fn record_failure(
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
}

/// The abort reason of a checkpoint subsumed by the completion of `newer`.
fn subsumed_by(newer: CheckpointId) -> String {
    format!("subsumed by completed checkpoint {newer}")
}
