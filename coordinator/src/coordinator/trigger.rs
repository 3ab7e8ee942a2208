//! Triggering: periodic and forced checkpoints, and what forbids them.

use std::collections::BTreeMap;
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, ErrorKind, Result};

use super::{
    CheckpointCoordinator, Inner, Pending, SkipReason, TriggerResult, TriggeredCheckpoint,
    duration_ms,
};
use crate::stats::{CheckpointStats, CheckpointStatus};

impl CheckpointCoordinator {
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
}
