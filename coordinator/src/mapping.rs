//! Assigning a checkpoint's or savepoint's operator state to the operators of the job that
//! restores it (Flink's `Checkpoints.loadAndValidateCheckpoint`): state is matched by
//! operator uid; state of a uid the job does not have is refused unless
//! `allow_non_restored_state` is set (Flink's `--allowNonRestoredState`); operators the
//! snapshot does not know start empty; keyed state cannot change its max parallelism.

use cornerstone_backend_api::{Error, Result};
use cornerstone_checkpoint_store::CheckpointMetadata;

use crate::task::OperatorSpec;

/// How a snapshot's operators map onto a job's, as [`map_operators`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorMapping {
    /// Uids of the job's operators that get state from the snapshot.
    pub restored: Vec<String>,
    /// Uids of the job's operators the snapshot has no state for: they start empty.
    pub fresh: Vec<String>,
    /// Uids of the snapshot's operators with state that the job does not have: their state
    /// is skipped (only with `allow_non_restored_state`).
    pub not_restored: Vec<String>,
}

/// Maps the operators of `metadata` (a snapshot at `path`) onto `operators`.
///
/// An operator of the snapshot counts only if it holds state (a subtask with a handle):
/// operators that never had state can come and go freely, as in Flink.
///
/// # Errors
/// [`cornerstone_backend_api::ErrorKind::InvalidInput`]
/// - when the snapshot holds state for operators the job does not have and
///   `allow_non_restored_state` is false, naming every such uid and the snapshot;
/// - when an operator's keyed state was written with another max parallelism than the job's
///   operator has (key groups cannot be re-split), naming the uid and both values.
pub fn map_operators(
    metadata: &CheckpointMetadata,
    path: &str,
    operators: &[OperatorSpec],
    allow_non_restored_state: bool,
) -> Result<OperatorMapping> {
    let mut mapping = OperatorMapping::default();
    for stored in &metadata.operators {
        let has_state = stored.subtasks.values().any(|s| !s.is_empty());
        let Some(spec) = operators.iter().find(|o| o.uid == stored.uid) else {
            if has_state {
                mapping.not_restored.push(stored.uid.clone());
            }
            continue;
        };
        let keyed = stored.subtasks.values().any(|s| !s.keyed.is_empty());
        if keyed && stored.max_parallelism != spec.max_parallelism {
            return Err(Error::invalid_input(
                "an operator's keyed state was written with another max parallelism than the job's \
                 operator has: key groups cannot change; restore with the stored max parallelism",
            )
            .with_context("operator", &stored.uid)
            .with_context("stored_max_parallelism", stored.max_parallelism)
            .with_context("job_max_parallelism", spec.max_parallelism)
            .with_context("path", path));
        }
        mapping.restored.push(spec.uid.clone());
    }
    if !mapping.not_restored.is_empty() && !allow_non_restored_state {
        return Err(Error::invalid_input(
            "the snapshot holds state for operators this job does not have; map them to the \
             job's operator uids, or set allow_non_restored_state to skip their state",
        )
        .with_context("operators", mapping.not_restored.join(","))
        .with_context("checkpoint", metadata.checkpoint_id)
        .with_context("path", path));
    }
    mapping.fresh = operators
        .iter()
        .filter(|o| !mapping.restored.contains(&o.uid))
        .map(|o| o.uid.clone())
        .collect();
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cornerstone_backend_api::{
        CheckpointId, KeyGroupRange, KeyGroupsStateHandle, KeyedStateHandle, StreamStateHandle,
        SubtaskState,
    };
    use cornerstone_checkpoint_store::{OperatorState, SnapshotKind};

    use super::*;

    fn keyed(max_parallelism: u32) -> SubtaskState {
        let range = KeyGroupRange::all(max_parallelism);
        SubtaskState {
            keyed: vec![KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
                range,
                offsets: vec![0; range.len() as usize],
                stream: StreamStateHandle::Inline(Vec::new()),
            })],
            operator: Vec::new(),
        }
    }

    fn metadata(operators: Vec<OperatorState>) -> CheckpointMetadata {
        CheckpointMetadata {
            format_version: 1,
            checkpoint_id: CheckpointId(7),
            job_id: "job".into(),
            kind: SnapshotKind::Savepoint,
            trigger_timestamp_ms: 0,
            completed_timestamp_ms: 0,
            operators,
        }
    }

    /// Keyed state cannot change its max parallelism; an operator without state can come
    /// and go, and so can its max parallelism.
    #[test]
    fn max_parallelism_and_stateless_operators() {
        let mut counter = OperatorState::new("counter", "Counter", 1, 128);
        counter.subtasks.insert(0, keyed(128));
        let mut stateless = OperatorState::new("map", "Map", 1, 128);
        stateless.subtasks.insert(0, SubtaskState::default());
        let meta = metadata(vec![counter, stateless]);
        let job = [OperatorSpec::new("counter", "Counter", 4, 256)];
        let err = map_operators(&meta, "sp/_metadata", &job, true).unwrap_err();
        assert_eq!(err.context("operator"), Some("counter"));
        assert_eq!(err.context("stored_max_parallelism"), Some("128"));
        assert_eq!(err.context("job_max_parallelism"), Some("256"));

        let job = [OperatorSpec::new("counter", "Counter", 4, 128)];
        let mapping = map_operators(&meta, "sp/_metadata", &job, false).unwrap();
        assert_eq!(mapping.restored, ["counter"]);
        assert!(mapping.not_restored.is_empty() && mapping.fresh.is_empty());
    }
}
