//! Checkpoint statistics: per subtask, per checkpoint and job-wide counts (what Flink's web
//! UI shows under "Checkpoints").

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use cornerstone_backend_api::CheckpointId;

use crate::task::TaskId;

/// What a subtask measured while taking its part of a checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubtaskMetrics {
    /// The synchronous phase (processing blocked).
    pub sync_duration: Duration,
    /// The asynchronous phase (state written while processing goes on).
    pub async_duration: Duration,
    /// Time from the first to the last barrier of the checkpoint on its inputs (zero for
    /// a task with one input, and under at-least-once).
    pub alignment_duration: Duration,
    /// Records that were held back while aligning (exactly-once only).
    pub buffered_records: u64,
}

/// The statistics of one subtask's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtaskStats {
    /// What the subtask measured.
    pub metrics: SubtaskMetrics,
    /// Bytes of state it wrote (inline and files).
    pub state_size: u64,
    /// Milliseconds from the trigger to the acknowledgement.
    pub ack_latency_ms: u64,
}

/// How a checkpoint ended (or that it has not yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// Waiting for acknowledgements.
    InProgress,
    /// Committed to the checkpoint store.
    Completed {
        /// The `_metadata` path.
        metadata_path: String,
    },
    /// Aborted (including subsumed by a newer completed checkpoint, which the reason says).
    Failed {
        /// Why.
        reason: String,
    },
}

/// The statistics of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint id.
    pub id: CheckpointId,
    /// When it was triggered (clock milliseconds).
    pub trigger_timestamp_ms: u64,
    /// From the trigger to the commit or the abort (zero while in progress).
    pub end_to_end_duration: Duration,
    /// Bytes of state of all acknowledged subtasks.
    pub state_size: u64,
    /// Per acknowledged subtask.
    pub subtasks: BTreeMap<TaskId, SubtaskStats>,
    /// How it ended.
    pub status: CheckpointStatus,
}

impl CheckpointStats {
    /// The longest synchronous phase of any subtask.
    pub fn max_sync_duration(&self) -> Duration {
        self.subtasks
            .values()
            .map(|s| s.metrics.sync_duration)
            .max()
            .unwrap_or_default()
    }

    /// The longest asynchronous phase of any subtask.
    pub fn max_async_duration(&self) -> Duration {
        self.subtasks
            .values()
            .map(|s| s.metrics.async_duration)
            .max()
            .unwrap_or_default()
    }

    /// The most records any subtask held back while aligning.
    pub fn max_buffered_records(&self) -> u64 {
        self.subtasks
            .values()
            .map(|s| s.metrics.buffered_records)
            .max()
            .unwrap_or_default()
    }

    /// The longest alignment of any subtask.
    pub fn max_alignment_duration(&self) -> Duration {
        self.subtasks
            .values()
            .map(|s| s.metrics.alignment_duration)
            .max()
            .unwrap_or_default()
    }
}

/// Job-wide checkpoint statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCheckpointStats {
    /// Checkpoints committed.
    pub completed: u64,
    /// Checkpoints aborted (timeout, decline, storage failure, failover, or subsumed by a
    /// newer completed checkpoint). Not all of them count against the tolerable failures:
    /// see [`CheckpointCoordinator`](crate::CheckpointCoordinator).
    pub failed: u64,
    /// Checkpoints waiting for acknowledgements now.
    pub in_progress: u64,
    /// Restores from a checkpoint.
    pub restored: u64,
    /// The id of the latest restored checkpoint.
    pub last_restored: Option<CheckpointId>,
    /// The most recent checkpoints (completed, failed and in progress), oldest first.
    pub history: Vec<CheckpointStats>,
}

impl JobCheckpointStats {
    /// The latest completed checkpoint's statistics.
    pub fn latest_completed(&self) -> Option<&CheckpointStats> {
        self.history
            .iter()
            .rev()
            .find(|c| matches!(c.status, CheckpointStatus::Completed { .. }))
    }
}

/// How many checkpoints the history keeps (Flink's `web.checkpoints.history`, default 10,
/// is for display; we keep more for reports).
pub const HISTORY_SIZE: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct StatsTracker {
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) restored: u64,
    pub(crate) last_restored: Option<CheckpointId>,
    pub(crate) history: VecDeque<CheckpointStats>,
}

impl StatsTracker {
    pub(crate) fn push(&mut self, stats: CheckpointStats) {
        if self.history.len() == HISTORY_SIZE {
            self.history.pop_front();
        }
        self.history.push_back(stats);
    }

    pub(crate) fn get_mut(&mut self, id: CheckpointId) -> Option<&mut CheckpointStats> {
        self.history.iter_mut().rev().find(|c| c.id == id)
    }
}
