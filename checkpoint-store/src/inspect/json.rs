//! The serialized form of the inspection results: what `cornerstone --json` prints, and
//! what any program can produce with `serde_json::to_value(&report)`.
//!
//! Conventions: sizes are `*_bytes`, timestamps `*_timestamp_ms` (milliseconds since the
//! epoch) with an RFC 3339 `completed` beside them, enumerations kebab-case strings, a pair
//! "in a and in b" a two-element array, and paths are inside the store (a program that
//! opened the store from a location prefixes them to make locations again). Fields are
//! added, never removed or changed in meaning, within a schema version.

use std::time::{Duration, UNIX_EPOCH};

use cornerstone_backend_api::StateScope;
use serde::{Serialize, Serializer};

use super::diff::{OperatorChange, SnapshotDiff};
use super::gc::{GcCandidate, GcKept, GcReason, GcReport};
use super::list::{ListedSnapshot, SnapshotStatus};
use super::show::{
    HandleSummary, OperatorSummary, SnapshotDetails, StateSummary, StreamLocation, SubtaskSummary,
};
use super::verify::{Problem, ProblemKind, VerifyReport};

/// RFC 3339 UTC with milliseconds.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn scope_str(scope: StateScope) -> &'static str {
    match scope {
        StateScope::Exclusive => "exclusive",
        StateScope::Shared => "shared",
        StateScope::TaskOwned => "task-owned",
    }
}

/// A file and its size.
#[derive(Serialize)]
struct SizedPath<'a> {
    path: &'a str,
    size_bytes: u64,
}

fn sized<'a>(files: impl IntoIterator<Item = (&'a String, &'a u64)>) -> Vec<SizedPath<'a>> {
    files
        .into_iter()
        .map(|(path, size)| SizedPath {
            path,
            size_bytes: *size,
        })
        .collect()
}

impl SnapshotStatus {
    /// What is wrong with a corrupt, newer-format or fenced snapshot.
    pub fn detail(&self) -> Option<&str> {
        match self {
            SnapshotStatus::Corrupt(why) | SnapshotStatus::NewerFormat(why) => Some(why),
            SnapshotStatus::Fenced => Some(
                "published by a fenced writer after a newer one took over: never restored, \
                 garbage for gc",
            ),
            SnapshotStatus::Complete | SnapshotStatus::Incomplete => None,
        }
    }
}

impl ListedSnapshot {
    /// Completed minus triggered, when both are known.
    pub fn duration_ms(&self) -> Option<u64> {
        self.completed_timestamp_ms?
            .checked_sub(self.trigger_timestamp_ms?)
    }
}

/// `{kind, id, dir, status, status_detail, trigger_timestamp_ms, completed_timestamp_ms,
/// completed, duration_ms, size_bytes, incremental, written_bytes}`.
impl Serialize for ListedSnapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            kind: &'a str,
            id: Option<u64>,
            dir: &'a str,
            status: &'a str,
            status_detail: Option<&'a str>,
            trigger_timestamp_ms: Option<u64>,
            completed_timestamp_ms: Option<u64>,
            completed: Option<String>,
            duration_ms: Option<u64>,
            size_bytes: u64,
            incremental: Option<bool>,
            written_bytes: Option<u64>,
        }
        View {
            kind: self.kind.as_str(),
            id: self.id.map(|id| id.0),
            dir: &self.dir,
            status: self.status.as_str(),
            status_detail: self.status.detail(),
            trigger_timestamp_ms: self.trigger_timestamp_ms,
            completed_timestamp_ms: self.completed_timestamp_ms,
            completed: self.completed_timestamp_ms.map(rfc3339),
            duration_ms: self.duration_ms(),
            size_bytes: self.size_bytes,
            incremental: self.incremental,
            written_bytes: self.written_bytes,
        }
        .serialize(s)
    }
}

/// Inline: `{inline: true, size_bytes}`; a file: `{inline: false, path, scope, size_bytes,
/// crc32}` (the CRC32 as 8 hex digits).
impl Serialize for StreamLocation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Inline {
            inline: bool,
            size_bytes: u64,
        }
        #[derive(Serialize)]
        struct File<'a> {
            inline: bool,
            path: &'a str,
            scope: &'a str,
            size_bytes: u64,
            crc32: String,
        }
        match self {
            StreamLocation::Inline { size } => Inline {
                inline: true,
                size_bytes: *size,
            }
            .serialize(s),
            StreamLocation::File {
                path,
                scope,
                size,
                crc32,
            } => File {
                inline: false,
                path,
                scope: scope_str(*scope),
                size_bytes: *size,
                crc32: format!("{crc32:08x}"),
            }
            .serialize(s),
        }
    }
}

/// `{kind, key_groups: [first, last] or null, state_names, streams}`, and of a changelog
/// handle `chain: {base_checkpoint, deltas, uploaded_bytes, chain_bytes}`.
impl Serialize for HandleSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Chain {
            base_checkpoint: u64,
            deltas: usize,
            uploaded_bytes: u64,
            chain_bytes: u64,
        }
        #[derive(Serialize)]
        struct View<'a> {
            kind: &'a str,
            key_groups: Option<[u32; 2]>,
            state_names: &'a [String],
            streams: &'a [StreamLocation],
            #[serde(skip_serializing_if = "Option::is_none")]
            chain: Option<Chain>,
        }
        View {
            kind: self.kind,
            key_groups: self.key_groups.map(|(a, b)| [a, b]),
            state_names: &self.state_names,
            streams: &self.streams,
            chain: self.chain.map(|c| Chain {
                base_checkpoint: c.base_checkpoint.0,
                deltas: c.deltas,
                uploaded_bytes: c.uploaded_bytes,
                chain_bytes: c.chain_bytes,
            }),
        }
        .serialize(s)
    }
}

/// `{index, state_size_bytes, handles}`.
impl Serialize for SubtaskSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            index: u32,
            state_size_bytes: u64,
            handles: &'a [HandleSummary],
        }
        View {
            index: self.index,
            state_size_bytes: self.state_size,
            handles: &self.handles,
        }
        .serialize(s)
    }
}

/// `{name, kind, key_type, namespace_type, user_key_type, value_type, ttl}`.
impl Serialize for StateSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            name: &'a str,
            kind: &'a str,
            key_type: Option<&'a str>,
            namespace_type: Option<&'a str>,
            user_key_type: Option<&'a str>,
            value_type: &'a str,
            ttl: bool,
        }
        View {
            name: &self.name,
            kind: &self.kind,
            key_type: self.key_type.as_deref(),
            namespace_type: self.namespace_type.as_deref(),
            user_key_type: self.user_key_type.as_deref(),
            value_type: &self.value_type,
            ttl: self.ttl,
        }
        .serialize(s)
    }
}

/// `{uid, name, parallelism, max_parallelism, state_size_bytes, states, subtasks}`.
impl Serialize for OperatorSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            uid: &'a str,
            name: &'a str,
            parallelism: u32,
            max_parallelism: u32,
            state_size_bytes: u64,
            states: &'a [StateSummary],
            subtasks: &'a [SubtaskSummary],
        }
        View {
            uid: &self.uid,
            name: &self.name,
            parallelism: self.parallelism,
            max_parallelism: self.max_parallelism,
            state_size_bytes: self.state_size,
            states: &self.states,
            subtasks: &self.subtasks,
        }
        .serialize(s)
    }
}

/// `{kind, id, job_id, format_version, metadata_path, metadata_size_bytes, base_dir,
/// trigger_timestamp_ms, completed_timestamp_ms, completed, state_size_bytes, operators,
/// files: [{path, size_bytes}]}`.
impl Serialize for SnapshotDetails {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            kind: &'a str,
            id: u64,
            job_id: &'a str,
            format_version: u16,
            metadata_path: &'a str,
            metadata_size_bytes: u64,
            base_dir: &'a str,
            trigger_timestamp_ms: u64,
            completed_timestamp_ms: u64,
            completed: String,
            state_size_bytes: u64,
            operators: &'a [OperatorSummary],
            files: Vec<SizedPath<'a>>,
        }
        let m = &self.snapshot.metadata;
        View {
            kind: m.kind.as_str(),
            id: m.checkpoint_id.0,
            job_id: &m.job_id,
            format_version: m.format_version,
            metadata_path: &self.snapshot.metadata_path,
            metadata_size_bytes: self.metadata_size,
            base_dir: &self.snapshot.base_dir,
            trigger_timestamp_ms: m.trigger_timestamp_ms,
            completed_timestamp_ms: m.completed_timestamp_ms,
            completed: rfc3339(m.completed_timestamp_ms),
            state_size_bytes: self.state_size,
            operators: &self.operators,
            files: sized(&self.files),
        }
        .serialize(s)
    }
}

impl ProblemKind {
    /// `"metadata"`, `"missing-file"`, `"size-mismatch"`, `"checksum-mismatch"`,
    /// `"unreadable"` or `"not-self-contained"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Metadata => "metadata",
            ProblemKind::MissingFile => "missing-file",
            ProblemKind::SizeMismatch => "size-mismatch",
            ProblemKind::ChecksumMismatch => "checksum-mismatch",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::NotSelfContained => "not-self-contained",
        }
    }
}

/// `{kind, path, detail}`.
impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            kind: &'a str,
            path: &'a str,
            detail: &'a str,
        }
        View {
            kind: self.kind.as_str(),
            path: &self.path,
            detail: &self.detail,
        }
        .serialize(s)
    }
}

/// `{ok, metadata_path, id, files_checked, bytes_read, problems}`.
impl Serialize for VerifyReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            ok: bool,
            metadata_path: &'a str,
            id: Option<u64>,
            files_checked: usize,
            bytes_read: u64,
            problems: &'a [Problem],
        }
        View {
            ok: self.is_ok(),
            metadata_path: &self.metadata_path,
            id: self.checkpoint_id.map(|id| id.0),
            files_checked: self.files_checked,
            bytes_read: self.bytes_read,
            problems: &self.problems,
        }
        .serialize(s)
    }
}

impl GcReason {
    /// `"unreferenced-shared"`, `"unreferenced-exclusive"`, `"incomplete-checkpoint"` or
    /// `"fenced-checkpoint"`.
    pub fn as_str(self) -> &'static str {
        match self {
            GcReason::UnreferencedShared => "unreferenced-shared",
            GcReason::UnreferencedExclusive => "unreferenced-exclusive",
            GcReason::IncompleteCheckpoint => "incomplete-checkpoint",
            GcReason::FencedCheckpoint => "fenced-checkpoint",
        }
    }
}

/// `{path, size_bytes, reason}`.
impl Serialize for GcCandidate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            path: &'a str,
            size_bytes: u64,
            reason: &'a str,
        }
        View {
            path: &self.path,
            size_bytes: self.size,
            reason: self.reason.as_str(),
        }
        .serialize(s)
    }
}

/// `{path, why}`.
impl Serialize for GcKept {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            path: &'a str,
            why: &'a str,
        }
        View {
            path: &self.path,
            why: &self.why,
        }
        .serialize(s)
    }
}

/// `{job_dir, retained, candidates, kept, total_size_bytes}`.
impl Serialize for GcReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            job_dir: &'a str,
            retained: Vec<u64>,
            candidates: &'a [GcCandidate],
            kept: &'a [GcKept],
            total_size_bytes: u64,
        }
        View {
            job_dir: &self.job_dir,
            retained: self.retained.iter().map(|id| id.0).collect(),
            candidates: &self.candidates,
            kept: &self.kept,
            total_size_bytes: self.total_size(),
        }
        .serialize(s)
    }
}

/// `{uid, parallelism: [a, b], max_parallelism: [a, b], state_size_bytes: [a, b],
/// subtasks_changed, files_added, files_removed, files_shared, bytes_added}`.
impl Serialize for OperatorChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            uid: &'a str,
            parallelism: [u32; 2],
            max_parallelism: [u32; 2],
            state_size_bytes: [u64; 2],
            subtasks_changed: &'a [u32],
            files_added: u64,
            files_removed: u64,
            files_shared: u64,
            bytes_added: u64,
        }
        View {
            uid: &self.uid,
            parallelism: [self.parallelism.0, self.parallelism.1],
            max_parallelism: [self.max_parallelism.0, self.max_parallelism.1],
            state_size_bytes: [self.state_size.0, self.state_size.1],
            subtasks_changed: &self.subtasks_changed,
            files_added: self.files_added,
            files_removed: self.files_removed,
            files_shared: self.files_shared,
            bytes_added: self.bytes_added,
        }
        .serialize(s)
    }
}

/// `{state_size_bytes: [a, b], operators_added, operators_removed, operators_changed,
/// files_added, files_removed, files_common: [{path, size_bytes}]}`.
impl Serialize for SnapshotDiff {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            state_size_bytes: [u64; 2],
            operators_added: &'a [String],
            operators_removed: &'a [String],
            operators_changed: &'a [OperatorChange],
            files_added: Vec<SizedPath<'a>>,
            files_removed: Vec<SizedPath<'a>>,
            files_common: Vec<SizedPath<'a>>,
        }
        fn pairs(files: &[(String, u64)]) -> Vec<SizedPath<'_>> {
            sized(files.iter().map(|(p, s)| (p, s)))
        }
        View {
            state_size_bytes: [self.state_size.0, self.state_size.1],
            operators_added: &self.operators_added,
            operators_removed: &self.operators_removed,
            operators_changed: &self.operators_changed,
            files_added: pairs(&self.files_added),
            files_removed: pairs(&self.files_removed),
            files_common: pairs(&self.files_common),
        }
        .serialize(s)
    }
}
