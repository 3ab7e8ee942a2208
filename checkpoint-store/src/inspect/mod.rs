//! Read-only inspection of checkpoint storage, for the `cornerstone` command-line tool:
//! [`list`], [`show`], [`verify`], [`gc_candidates`] (and [`gc_delete`], the one call here
//! that deletes), [`diff`]; and the same on Apache Flink's own job directories (module
//! `flink`: [`flink_list`], [`flink_show`], [`flink_verify`], [`flink_gc_candidates`] and
//! [`flink_gc_delete`], [`flink_diff`]), with [`detect_format`] to tell which a location holds.
//!
//! Every function takes a [`CheckpointStore`](crate::CheckpointStore) and a path inside it
//! (`""` is the store's root); see [`Location`](crate::Location) to turn a local path or URL
//! into both.
//! The returned types are plain data with public fields, ready to print or serialize.

mod diff;
mod flink;
mod gc;
mod json;
mod list;
mod show;
mod verify;

pub use diff::{OperatorChange, SnapshotDiff, diff};
pub use flink::{
    FlinkDetails, FlinkDiff, FlinkFile, FlinkGcCandidate, FlinkGcKept, FlinkGcReason,
    FlinkGcReport, FlinkIncremental, FlinkKeyedHandle, FlinkKind, FlinkListed, FlinkLocalFile,
    FlinkMasterState, FlinkNamedState, FlinkOperator, FlinkOperatorHandle, FlinkPaths,
    FlinkProblem, FlinkProblemKind, FlinkRef, FlinkSizedFile, FlinkStatus, FlinkStream,
    FlinkSubtask, FlinkVerified, FlinkVerifyReport, MetadataFormat, ResolvedPath, detect_format,
    flink_diff, flink_gc_candidates, flink_gc_delete, flink_list, flink_show, flink_verify,
};
pub use gc::{GcCandidate, GcKept, GcOptions, GcReason, GcReport, gc_candidates, gc_delete};
pub use list::{ListedSnapshot, SnapshotStatus, list};
pub use show::{
    ChainSummary, HandleSummary, OperatorSummary, SnapshotDetails, StateSummary, StreamLocation,
    SubtaskSummary, show,
};
pub use verify::{Problem, ProblemKind, VerifyReport, verify};
