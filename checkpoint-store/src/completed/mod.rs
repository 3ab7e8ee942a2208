//! The completed-checkpoint store of one job: the commit protocol, retention, cleanup on
//! termination, savepoints and restore.
//!
//! - [`config`]: [`CheckpointConfig`], [`CleanupPolicy`], [`JobStatus`], [`ClaimMode`];
//! - [`checkpoint`]: [`CompletedCheckpoint`] and the listing of `chk-N/` directories;
//! - [`retention`]: the retained checkpoints and how the others are deleted;
//! - [`job`]: [`CompletedCheckpointStore`]: open (lease, recovery), cleanup on termination;
//! - [`pending`]: [`PendingCheckpoint`] and the commit protocol;
//! - [`restore`]: resolving restore locations, restore, disposing of savepoints.

mod checkpoint;
mod config;
mod job;
mod pending;
mod restore;
mod retention;

pub use checkpoint::CompletedCheckpoint;
pub(crate) use checkpoint::{checkpoint_dirs, checkpoint_dirs_async, sync_job_dirs};
pub use config::{CheckpointConfig, ClaimMode, CleanupPolicy, JobStatus};
pub use job::CompletedCheckpointStore;
pub use pending::PendingCheckpoint;
