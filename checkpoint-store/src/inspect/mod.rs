//! Read-only inspection of checkpoint storage, for the `cornerstone` command-line tool:
//! [`list`], [`show`], [`verify`], [`gc_candidates`] (and [`gc_delete`], the one call here
//! that deletes), [`diff`].
//!
//! Every function takes a [`CheckpointStore`](crate::CheckpointStore) and a path inside it
//! (`""` is the store's root); see [`Location`](crate::Location) to turn a local path or URL
//! into both.
//! The returned types are plain data with public fields, ready to print or serialize.

mod diff;
mod gc;
mod json;
mod list;
mod show;
mod verify;

pub use diff::{OperatorChange, SnapshotDiff, diff};
pub use gc::{GcCandidate, GcKept, GcOptions, GcReason, GcReport, gc_candidates, gc_delete};
pub use list::{ListedSnapshot, SnapshotStatus, list};
pub use show::{
    HandleSummary, OperatorSummary, SnapshotDetails, StateSummary, StreamLocation, SubtaskSummary,
    show,
};
pub use verify::{Problem, ProblemKind, VerifyReport, verify};
