//! The inspection commands on Apache Flink's own checkpoint directories: [`flink_list`],
//! [`flink_show`], [`flink_verify`], [`flink_gc_candidates`] (and [`flink_gc_delete`]),
//! [`flink_diff`], over `_metadata` files read by [`crate::flink`]. [`detect_format`] tells
//! which format a location's `_metadata` is in, so that a tool runs the same commands on
//! both layouts (which are the same: `<job>/chk-N/_metadata`, `<job>/shared/`,
//! `<job>/taskowned/`, `savepoint-*/`).
//!
//! Flink writes absolute paths (`file:/...`, `s3://bucket/...`) into `_metadata` for files
//! outside the `_metadata` directory, and paths relative to that directory for the others
//! (`RELATIVE_STREAM_STATE_HANDLE`). [`FlinkPaths`] says where the absolute ones are in the
//! store, with prefix remappings for checkpoints that were moved or copied.
//!
//! Every result is plain data with public fields and `serde::Serialize` (sizes are
//! `*_bytes`, paths inside the store are under keys named `path`, `dir`, `metadata_path` or
//! `job_dir`; a path that is not in the store is the URI Flink wrote, after remapping).

mod detect;
mod diff;
mod gc;
mod list;
mod paths;
mod show;
mod verify;
mod walk;

use cornerstone_backend_api::{Error, ErrorKind, Result};
use serde::Serialize;

use crate::flink::{self, FlinkMetadata};
use crate::layout;
use crate::status::MAX_METADATA_FILE;
use crate::store::CheckpointStore;

pub use detect::{MetadataFormat, detect_format};
pub use diff::{FlinkDiff, FlinkSizedFile, flink_diff};
pub use gc::{
    FlinkGcCandidate, FlinkGcKept, FlinkGcReason, FlinkGcReport, flink_gc_candidates,
    flink_gc_delete,
};
pub use list::{FlinkListed, FlinkStatus, flink_list};
pub use paths::{FlinkPaths, ResolvedPath};

pub use show::{
    FlinkDetails, FlinkIncremental, FlinkKeyedHandle, FlinkLocalFile, FlinkMasterState,
    FlinkNamedState, FlinkOperator, FlinkOperatorHandle, FlinkStream, FlinkSubtask, flink_show,
};
pub use verify::{FlinkProblem, FlinkProblemKind, FlinkVerified, FlinkVerifyReport, flink_verify};

/// Whether a Flink snapshot is a checkpoint or a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlinkKind {
    /// A checkpoint (`chk-N/`, or `CheckpointType` in the properties).
    Checkpoint,
    /// A savepoint (`savepoint-*/`, or `SavepointType` in the properties).
    Savepoint,
}

impl FlinkKind {
    /// `"checkpoint"` or `"savepoint"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlinkKind::Checkpoint => "checkpoint",
            FlinkKind::Savepoint => "savepoint",
        }
    }

    /// The kind a directory's name says: `savepoint-*` is a savepoint, anything else a
    /// checkpoint.
    fn of_dir(dir: &str) -> Self {
        if layout::is_savepoint_dir(layout::file_name(dir)) {
            FlinkKind::Savepoint
        } else {
            FlinkKind::Checkpoint
        }
    }
}

/// What the Java-serialized `CheckpointProperties` (versions 4 and later) say, as far as
/// they can be read without Java deserialization: the class of the snapshot type
/// (`SavepointType` or `CheckpointType`) and a savepoint's format (`CANONICAL`, `NATIVE`).
fn properties_kind(m: &FlinkMetadata) -> (Option<FlinkKind>, Option<String>) {
    let Some(p) = &m.properties else {
        return (None, None);
    };
    let has = |needle: &[u8]| p.bytes.windows(needle.len()).any(|w| w == needle);
    let kind = if has(b"org.apache.flink.runtime.checkpoint.SavepointType") {
        Some(FlinkKind::Savepoint)
    } else if has(b"org.apache.flink.runtime.checkpoint.CheckpointType") {
        Some(FlinkKind::Checkpoint)
    } else {
        None
    };
    // Enum constants are TC_STRING (0x74) with a u16 length.
    let format = [&b"\x74\x00\x09CANONICAL"[..], &b"\x74\x00\x06NATIVE"[..]]
        .into_iter()
        .find(|n| kind == Some(FlinkKind::Savepoint) && has(n))
        .map(|n| String::from_utf8_lossy(&n[3..]).into_owned());
    (kind, format)
}

/// A checkpoint or savepoint a result refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkRef {
    /// The directory that holds `_metadata`.
    pub dir: String,
    /// The checkpoint id `_metadata` records.
    pub checkpoint_id: u64,
}

/// A file a Flink checkpoint references, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkFile {
    /// The path in the store, or the URI (after remapping) of a file outside it.
    pub path: String,
    /// Whether [`path`](Self::path) is in the store.
    pub in_store: bool,
    /// The path as `_metadata` holds it: an absolute URI, or a path relative to the
    /// directory of `_metadata`.
    pub written: String,
    /// The size the file must at least have (the largest a handle records).
    pub min_size_bytes: u64,
    /// Whether it is shared state (an incremental snapshot's shared files, a shared
    /// segment): other checkpoints may reference it too.
    pub shared: bool,
    /// How many handles reference it.
    pub references: u64,
}

/// A decoded Flink `_metadata` and where it is.
#[derive(Debug, Clone)]
struct Loaded {
    metadata_path: String,
    /// The directory of `_metadata` (ends with `/`).
    dir: String,
    size: u64,
    metadata: FlinkMetadata,
    /// Every referenced file, located, sorted by path.
    files: Vec<FlinkFile>,
}

impl Loaded {
    fn reference(&self) -> FlinkRef {
        FlinkRef {
            dir: self.dir.clone(),
            checkpoint_id: self.metadata.checkpoint_id,
        }
    }

    fn file_bytes(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |s, f| s.saturating_add(f.min_size_bytes))
    }
}

/// Reads and decodes the Flink `_metadata` at `metadata_path` and locates its files.
///
/// # Errors
/// Storage errors ([`ErrorKind::NotFound`] for a missing `_metadata`); decoding errors
/// with the path in their context, [`ErrorKind::Corrupted`] for a `_metadata` that is not
/// Flink's.
fn load(store: &CheckpointStore, metadata_path: &str, paths: &FlinkPaths) -> Result<Loaded> {
    let bytes = store.read_small(metadata_path, MAX_METADATA_FILE)?;
    if !flink::is_flink_metadata(&bytes) {
        return Err(
            Error::corrupted("not a Flink _metadata (no Flink magic number)")
                .with_context("path", metadata_path),
        );
    }
    let metadata =
        flink::read_flink_metadata(&bytes).map_err(|e| e.with_context("path", metadata_path))?;
    let dir = layout::parent_dir(metadata_path);
    let files = metadata
        .referenced_files(&dir)
        .map_err(|e| e.with_context("path", metadata_path))?
        .into_iter()
        .map(|f| {
            let (path, in_store, written) = match f.relative_path {
                Some(rel) => (f.path, true, rel),
                None => match paths.resolve(&f.path) {
                    ResolvedPath::InStore(p) => (p, true, f.path),
                    ResolvedPath::Foreign(p) => (p, false, f.path),
                },
            };
            FlinkFile {
                path,
                in_store,
                written,
                min_size_bytes: f.min_size,
                shared: f.shared,
                references: f.references,
            }
        })
        .collect::<Vec<_>>();
    let mut files = files;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Loaded {
        metadata_path: metadata_path.to_owned(),
        dir,
        size: bytes.len() as u64,
        metadata,
        files,
    })
}

/// What a location names.
enum Target {
    /// A `_metadata` file (named, or in the named directory).
    Metadata(String),
    /// A directory without `_metadata`: a job directory (or one of savepoints).
    JobDir(String),
}

fn target(store: &CheckpointStore, path: &str) -> Result<Target> {
    let trimmed = path.trim_start_matches('/');
    if layout::file_name(trimmed) == layout::METADATA_FILE && !trimmed.ends_with('/') {
        return Ok(Target::Metadata(trimmed.to_owned()));
    }
    let dir = layout::normalize_dir(trimmed)?;
    let meta = layout::metadata_path(&dir);
    if store.exists(&meta)? {
        Ok(Target::Metadata(meta))
    } else {
        Ok(Target::JobDir(dir))
    }
}

/// The `_metadata` a location names: itself, its directory's, or the one of the newest
/// `chk-N/` of a job directory that has one.
fn resolve_one(store: &CheckpointStore, path: &str) -> Result<String> {
    match target(store, path)? {
        Target::Metadata(m) => Ok(m),
        Target::JobDir(dir) => {
            for (_, chk) in crate::completed::checkpoint_dirs(store, &dir)?.iter().rev() {
                let meta = layout::metadata_path(chk);
                if store.exists(&meta)? {
                    return Ok(meta);
                }
            }
            Err(
                Error::not_found("no Flink checkpoint with a _metadata in this directory")
                    .with_context("path", path),
            )
        }
    }
}

/// Snapshot directories with the checkpoint id of a `chk-N/` (`None`: a savepoint).
type SnapshotDirs = Vec<(Option<u64>, String)>;

/// The `_metadata` files of a job directory: every `chk-N/` (ascending ids) and
/// `savepoint-*/` directly in it that has one. Directories without `_metadata` are returned
/// as the second list (with the checkpoint id of a `chk-N/`).
fn job_metadata(store: &CheckpointStore, job_dir: &str) -> Result<(SnapshotDirs, SnapshotDirs)> {
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut dirs: Vec<(Option<u64>, String)> = crate::completed::checkpoint_dirs(store, job_dir)?
        .into_iter()
        .map(|(id, d)| (Some(id.get()), d))
        .collect();
    let mut savepoints: Vec<String> = store
        .list(job_dir, false)?
        .into_iter()
        .filter(|e| e.is_dir && layout::is_savepoint_dir(layout::file_name(&e.path)))
        .map(|e| layout::normalize_dir(&e.path))
        .collect::<Result<_>>()?;
    savepoints.sort();
    dirs.extend(savepoints.into_iter().map(|d| (None, d)));
    for (id, dir) in dirs {
        let meta = layout::metadata_path(&dir);
        if store.exists(&meta)? {
            with.push((id, meta));
        } else {
            without.push((id, dir));
        }
    }
    Ok((with, without))
}

/// Checks that a `chk-N/` holds checkpoint N.
fn check_id(loaded: &Loaded, id: Option<u64>) -> Result<()> {
    match id {
        Some(id) if id != loaded.metadata.checkpoint_id => Err(Error::corrupted(
            "_metadata holds another checkpoint than its directory's",
        )
        .with_context("path", &loaded.metadata_path)
        .with_context("checkpoint", loaded.metadata.checkpoint_id)
        .with_context("directory", format!("chk-{id}"))),
        _ => Ok(()),
    }
}

/// Whether an error is about the data (corrupt, unsupported) rather than storage.
fn is_unreadable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported)
}
