//! The checkpoint coordinator of Cornerstone: triggering, acknowledgements, timeouts and
//! statistics ([`CheckpointCoordinator`]), barrier alignment for tasks with several inputs
//! ([`barrier`]), restart strategies ([`restart`]) and two-phase-commit sinks
//! ([`two_phase`]), with Flink's behaviour and defaults (each default says which seed or
//! Flink setting it comes from).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cornerstone_backend_api::{ManualClock, SharedClock, SubtaskState};
//! use cornerstone_backend_api::operator::OperatorStateBackend;
//! use cornerstone_checkpoint_store::CheckpointStore;
//! use cornerstone_coordinator::{
//!     AckOutcome, CheckpointCoordinator, CoordinatorConfig, OperatorSpec, SubtaskMetrics, TaskId,
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let store = CheckpointStore::local(dir.path())?;
//! let clock = ManualClock::new(0);
//! let coordinator = CheckpointCoordinator::open(
//!     &store,
//!     "job-1",
//!     CoordinatorConfig::every(Duration::from_secs(1)),
//!     vec![OperatorSpec::new("source", "Source", 2, 128)],
//!     Arc::new(clock.clone()) as SharedClock,
//! )?;
//!
//! // Not due before the interval.
//! assert!(coordinator.trigger_if_due()?.triggered().is_none());
//! clock.advance(1_000);
//! let checkpoint = coordinator.trigger_if_due()?.triggered().expect("due");
//!
//! // Each subtask snapshots its state through the checkpoint's streams and acknowledges.
//! for subtask in 0..2 {
//!     let offsets = OperatorStateBackend::new();
//!     offsets.list_state::<u64>("offsets")?.add(100 * u64::from(subtask));
//!     let state = offsets.snapshot(checkpoint.id).write(&*checkpoint.streams)?;
//!     let outcome = coordinator.acknowledge(
//!         checkpoint.id,
//!         &TaskId::new("source", subtask),
//!         state,
//!         SubtaskMetrics::default(),
//!     )?;
//!     if subtask == 1 {
//!         let AckOutcome::Completed(done) = outcome else { panic!("not complete") };
//!         assert_eq!(done.metadata_path, "job-1/chk-1/_metadata");
//!     }
//! }
//! assert_eq!(coordinator.stats().completed, 1);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//! - [`config`] — [`CoordinatorConfig`] (Flink's `CheckpointConfig`) and
//!   [`CheckpointingMode`];
//! - [`coordinator`] — [`CheckpointCoordinator`] and the types it exchanges with tasks;
//! - [`stats`] — per-subtask, per-checkpoint and job-wide statistics;
//! - [`barrier`] — [`BarrierHandler`], aligned (exactly-once) or tracked (at-least-once);
//! - [`restart`] — [`RestartStrategy`] (none, fixed delay, failure rate, exponential delay)
//!   and [`RestartTracker`];
//! - [`two_phase`] — [`TwoPhaseCommitSink`] over a [`TransactionalSink`], and
//!   [`TransactionalFileSink`].
//!
//! How the crates fit together, the path of a state write to a committed `_metadata` and
//! where each rule lives: `docs/ARCHITECTURE.md` in the repository.

pub mod barrier;
pub mod config;
pub mod coordinator;
pub mod mapping;
pub mod restart;
pub mod stats;
mod task;
pub mod two_phase;

pub use barrier::{AlignmentStats, BarrierHandler, CheckpointBarrier, HandlerOutput, InputEvent};
pub use config::{CheckpointingMode, CoordinatorConfig};
pub use coordinator::{
    AckOutcome, CheckpointCoordinator, CheckpointListener, OperatorSpec, RestoredCheckpoint,
    SkipReason, TaskId, TriggerResult, TriggeredCheckpoint,
};
pub use mapping::{OperatorMapping, map_operators};
pub use restart::{RestartDecision, RestartStrategy, RestartTracker};
pub use stats::{
    CheckpointStats, CheckpointStatus, JobCheckpointStats, SubtaskMetrics, SubtaskStats,
};
pub use two_phase::{
    FileTransaction, RecoveryReport, TransactionalFileSink, TransactionalSink, TwoPhaseCommitSink,
};
