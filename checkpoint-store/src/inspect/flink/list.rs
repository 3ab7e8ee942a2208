//! [`flink_list`]: the checkpoints and savepoints of a Flink job directory.

use std::collections::BTreeMap;

use cornerstone_backend_api::Result;
use serde::Serialize;

use super::walk::{inline_bytes, is_incremental};
use super::{FlinkKind, FlinkPaths, check_id, is_unreadable, job_metadata, load, properties_kind};
use crate::inspect::list::dir_size;
use crate::layout;
use crate::store::CheckpointStore;

/// Whether a Flink `chk-N/` or savepoint directory can be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlinkStatus {
    /// `_metadata` exists and decodes.
    Complete,
    /// No `_metadata`: in progress, or never completed.
    Incomplete,
    /// `_metadata` exists but does not decode (or is not Flink's, or holds another
    /// checkpoint than its directory's): the detail says why.
    Corrupt,
}

impl FlinkStatus {
    /// `"complete"`, `"incomplete"` or `"corrupt"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlinkStatus::Complete => "complete",
            FlinkStatus::Incomplete => "incomplete",
            FlinkStatus::Corrupt => "corrupt",
        }
    }
}

/// One checkpoint or savepoint found by [`flink_list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkListed {
    /// Checkpoint or savepoint, by the directory's name.
    pub kind: FlinkKind,
    /// What the `_metadata`'s properties say it is (`SavepointType` or `CheckpointType`),
    /// when they say it.
    pub snapshot_type: Option<FlinkKind>,
    /// A savepoint's format from its properties: `CANONICAL` or `NATIVE`.
    pub savepoint_format: Option<String>,
    /// The checkpoint id: from the directory's name for `chk-N/`, from `_metadata` for
    /// savepoints (`None` when unreadable).
    pub id: Option<u64>,
    /// The directory.
    pub dir: String,
    /// Complete, incomplete or corrupt.
    pub status: FlinkStatus,
    /// What is wrong with a corrupt one.
    pub status_detail: Option<String>,
    /// The `_metadata` format version.
    pub version: Option<u32>,
    /// Complete ones: the referenced file sizes (as the handles record them) plus the
    /// bytes inline in `_metadata`; others: the bytes in the directory.
    pub size_bytes: u64,
    /// Complete ones: the bytes inline in `_metadata`'s handles.
    pub inline_bytes: Option<u64>,
    /// Complete ones: whether keyed state is incremental (RocksDB incremental or changelog
    /// handles) rather than full.
    pub incremental: Option<bool>,
    /// Complete checkpoints: what this one added, its size minus the files it shares with
    /// the complete checkpoint listed before it.
    pub written_bytes: Option<u64>,
}

/// Lists the Flink checkpoints (`chk-N/`, by id) and savepoints (`savepoint-*/`) directly
/// in `dir`, with status, format version, sizes and what each checkpoint shares with the
/// one before.
///
/// # Errors
/// Storage errors; an unreadable `_metadata` is an entry, not an error.
pub fn flink_list(
    store: &CheckpointStore,
    dir: &str,
    paths: &FlinkPaths,
) -> Result<Vec<FlinkListed>> {
    let dir = layout::normalize_dir(dir)?;
    let (with, without) = job_metadata(store, &dir)?;
    let mut entries: Vec<(bool, Option<u64>, FlinkListed)> = Vec::new();
    let mut previous: BTreeMap<String, u64> = BTreeMap::new();
    for (id, meta) in with {
        let snapshot_dir = layout::parent_dir(&meta);
        let mut entry = FlinkListed {
            kind: FlinkKind::of_dir(&snapshot_dir),
            snapshot_type: None,
            savepoint_format: None,
            id,
            dir: snapshot_dir.clone(),
            status: FlinkStatus::Complete,
            status_detail: None,
            version: None,
            size_bytes: 0,
            inline_bytes: None,
            incremental: None,
            written_bytes: None,
        };
        match load(store, &meta, paths).and_then(|l| check_id(&l, id).map(|()| l)) {
            Ok(l) => {
                let m = &l.metadata;
                let (kind, format) = properties_kind(m);
                let inline = inline_bytes(m);
                entry.snapshot_type = kind;
                entry.savepoint_format = format;
                entry.id = Some(m.checkpoint_id);
                entry.version = Some(m.version);
                entry.inline_bytes = Some(inline);
                entry.size_bytes = l.file_bytes().saturating_add(inline);
                entry.incremental = Some(is_incremental(m));
                if id.is_some() {
                    let files: BTreeMap<String, u64> = l
                        .files
                        .iter()
                        .map(|f| (f.path.clone(), f.min_size_bytes))
                        .collect();
                    let shared = files
                        .iter()
                        .filter(|(p, _)| previous.contains_key(*p))
                        .fold(0u64, |s, (_, n)| s.saturating_add(*n));
                    entry.written_bytes = Some(entry.size_bytes.saturating_sub(shared));
                    previous = files;
                }
            }
            Err(e) if is_unreadable(&e) => {
                entry.status = FlinkStatus::Corrupt;
                entry.status_detail = Some(e.to_string());
                entry.size_bytes = dir_size(store, &snapshot_dir)?;
            }
            Err(e) => return Err(e),
        }
        entries.push((id.is_none(), id, entry));
    }
    for (id, d) in without {
        entries.push((
            id.is_none(),
            id,
            FlinkListed {
                kind: FlinkKind::of_dir(&d),
                snapshot_type: None,
                savepoint_format: None,
                id,
                size_bytes: dir_size(store, &d)?,
                dir: d,
                status: FlinkStatus::Incomplete,
                status_detail: None,
                version: None,
                inline_bytes: None,
                incremental: None,
                written_bytes: None,
            },
        ));
    }
    // Checkpoints by id, then savepoints by directory name.
    entries.sort_by(|a, b| (a.0, a.1, &a.2.dir).cmp(&(b.0, b.1, &b.2.dir)));
    Ok(entries.into_iter().map(|(_, _, e)| e).collect())
}
