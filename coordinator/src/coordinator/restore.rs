//! Restoring a job from the latest completed checkpoint or from a chosen snapshot.

use std::sync::Arc;

use cornerstone_backend_api::Result;
use cornerstone_checkpoint_store::{ClaimMode, CompletedCheckpoint};

use super::{CheckpointCoordinator, RestoredCheckpoint};
use crate::mapping::map_operators;

impl CheckpointCoordinator {
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
    ///
    /// [`ErrorKind::OutcomeUnknown`]: cornerstone_backend_api::ErrorKind::OutcomeUnknown
    /// [`ErrorKind::Fenced`]: cornerstone_backend_api::ErrorKind::Fenced
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
    ///
    /// [`CheckpointStore::resolve`]: cornerstone_checkpoint_store::CheckpointStore::resolve
    /// [`CompletedCheckpointStore::restore`]: cornerstone_checkpoint_store::CompletedCheckpointStore::restore
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
}
