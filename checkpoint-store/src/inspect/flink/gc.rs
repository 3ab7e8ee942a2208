//! [`flink_gc_candidates`] and [`flink_gc_delete`]: the files of a Flink job directory
//! that no `_metadata` in it references.

use std::collections::BTreeSet;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};
use serde::Serialize;

use super::{FlinkPaths, FlinkRef, check_id, is_unreadable, job_metadata, load};
use crate::inspect::GcOptions;
use crate::layout;
use crate::status::{self, AgeGuard, CheckpointDirStatus};
use crate::store::CheckpointStore;

/// Why a file is a garbage-collection candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlinkGcReason {
    /// In `shared/`, referenced by no `_metadata`.
    UnreferencedShared,
    /// In a complete `chk-N/`, referenced by no `_metadata`.
    UnreferencedExclusive,
    /// In a `chk-N/` without `_metadata` in which nothing changed for the min age.
    IncompleteCheckpoint,
}

impl FlinkGcReason {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlinkGcReason::UnreferencedShared => "unreferenced-shared",
            FlinkGcReason::UnreferencedExclusive => "unreferenced-exclusive",
            FlinkGcReason::IncompleteCheckpoint => "incomplete-checkpoint",
        }
    }
}

/// One garbage-collection candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkGcCandidate {
    /// The path in the store.
    pub path: String,
    /// Its size.
    pub size_bytes: u64,
    /// Why it is garbage.
    pub reason: FlinkGcReason,
}

/// What is kept although unreferenced, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkGcKept {
    /// A directory or file.
    pub path: String,
    /// Why.
    pub why: String,
}

/// What [`flink_gc_candidates`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FlinkGcReport {
    /// The job directory.
    pub job_dir: String,
    /// The checkpoints and savepoints whose references were kept.
    pub retained: Vec<FlinkRef>,
    /// How many distinct files they reference.
    pub referenced_files: usize,
    /// The files nothing references, by path.
    pub candidates: Vec<FlinkGcCandidate>,
    /// The candidates' total size.
    pub candidate_bytes: u64,
    /// What is kept although unreferenced (checkpoints in progress, young files).
    pub kept: Vec<FlinkGcKept>,
}

/// The error that refuses a `gc`, with what caused it.
fn refuse(message: &'static str, cause: &Error) -> Error {
    Error::new(cause.kind(), message).with_context("cause", cause)
}

/// Finds the files under the `shared/` and `chk-N/` directories of a Flink
/// job directory that no `_metadata` of the job (every `chk-N/` and `savepoint-*/` directly
/// in it) references, comparing the referenced paths (relative ones joined to their
/// `_metadata`'s directory, absolute ones mapped by `paths`) with the listing. Nothing
/// modified within the min age is a candidate, nor anything of a `chk-N/` without
/// `_metadata` in which a file changed within it (a checkpoint in progress).
///
/// It refuses rather than guess: when a `_metadata` of the job cannot be read (it may
/// reference any file), when a `_metadata` references a file outside the store (the paths
/// need remapping: `FlinkPaths::with_prefix`), and when a referenced file does not exist
/// (a broken checkpoint, or paths that point elsewhere).
///
/// # Errors
/// As described, each naming the `_metadata` or file (the kind of the decoding error for an
/// unreadable `_metadata`, [`ErrorKind::InvalidInput`] for the others); storage errors.
pub fn flink_gc_candidates(
    store: &CheckpointStore,
    job_dir: &str,
    paths: &FlinkPaths,
    options: &GcOptions,
) -> Result<FlinkGcReport> {
    let job_dir = layout::normalize_dir(job_dir)?;
    let age = AgeGuard {
        now_ms: options.now_ms,
        min_age_ms: options.min_age_ms,
    };
    let (with, without) = job_metadata(store, &job_dir)?;
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    let mut retained = Vec::new();
    let mut dirs: Vec<(String, FlinkGcReason)> = Vec::new();
    let mut kept = Vec::new();
    let mut files = 0usize;
    for (id, meta) in &with {
        let loaded = load(store, meta, paths)
            .and_then(|l| check_id(&l, *id).map(|()| l))
            .map_err(|e| {
                if is_unreadable(&e) {
                    refuse(
                        "refusing to collect garbage: a _metadata of the job cannot be read (it may reference any file)",
                        &e,
                    )
                    .with_context("path", meta)
                } else {
                    e
                }
            })?;
        for f in &loaded.files {
            if !f.in_store {
                return Err(Error::invalid_input(
                    "refusing to collect garbage: a _metadata references a file outside this store; map its prefix (--path-prefix OLD=NEW)",
                )
                .with_context("path", &f.path)
                .with_context("metadata", meta));
            }
            if referenced.insert(f.path.clone()) {
                files += 1;
                if !store.exists(&f.path)? {
                    return Err(Error::invalid_input(
                        "refusing to collect garbage: a referenced file does not exist (a broken checkpoint, or paths that need --path-prefix OLD=NEW); run verify",
                    )
                    .with_context("path", &f.path)
                    .with_context("expected size", f.min_size_bytes)
                    .with_context("metadata", meta));
                }
            }
        }
        referenced.insert(meta.clone());
        if id.is_some() {
            dirs.push((loaded.dir.clone(), FlinkGcReason::UnreferencedExclusive));
        }
        retained.push(loaded.reference());
    }
    for (id, dir) in without {
        let Some(id) = id else { continue };
        match status::classify(store, &dir, CheckpointId(id), Some(age))? {
            CheckpointDirStatus::Abandoned => dirs.push((dir, FlinkGcReason::IncompleteCheckpoint)),
            CheckpointDirStatus::InProgress => kept.push(FlinkGcKept {
                path: dir,
                why: format!(
                    "no _metadata, but a file changed within the min age ({} ms): a checkpoint may be in progress",
                    options.min_age_ms
                ),
            }),
            other => kept.push(FlinkGcKept {
                path: dir,
                why: format!("changed while scanning ({}): kept", other.as_str()),
            }),
        }
    }
    dirs.push((
        layout::shared_dir(&job_dir),
        FlinkGcReason::UnreferencedShared,
    ));
    // `taskowned/` belongs to the task managers (Flink's JobManager never deletes it, and a
    // running task may hold files there that no completed checkpoint references yet), as
    // in Cornerstone's own gc: left alone, and said so.
    let task_owned = layout::task_owned_dir(&job_dir);
    if store.exists(&task_owned)? {
        kept.push(FlinkGcKept {
            path: task_owned,
            why: "task-owned state belongs to the task managers: never collected".into(),
        });
    }
    let mut candidates = Vec::new();
    let mut young = 0usize;
    for (dir, reason) in dirs {
        let listed = match store.list(&dir, true) {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in listed {
            if e.is_dir || referenced.contains(&e.path) {
                continue;
            }
            let modified = match store.modified_ms(&e.path) {
                Ok(m) => m,
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if !age.is_old(modified) {
                young += 1;
                continue;
            }
            let size_bytes = store.size(&e.path).unwrap_or(0);
            candidates.push(FlinkGcCandidate {
                path: e.path,
                size_bytes,
                reason,
            });
        }
    }
    candidates.sort_by(|a, b| a.path.cmp(&b.path));
    if young > 0 {
        kept.push(FlinkGcKept {
            path: job_dir.clone(),
            why: format!(
                "{young} unreferenced file(s) changed within the min age ({} ms)",
                options.min_age_ms
            ),
        });
    }
    Ok(FlinkGcReport {
        candidate_bytes: candidates
            .iter()
            .fold(0u64, |s, c| s.saturating_add(c.size_bytes)),
        job_dir,
        retained,
        referenced_files: files,
        candidates,
        kept,
    })
}

/// Deletes the candidates of a [`flink_gc_candidates`] report that are candidates still:
/// the job directory is made durable as it is listed, then scanned again (a checkpoint may
/// have completed since) with the same refusals. Deletes through the same path as
/// [`gc_delete`](crate::inspect::gc_delete), but takes no lease: Flink's job manager does
/// not honour one, so stop the job first or keep the min age above its checkpoint timeout.
/// Returns the number of files deleted.
///
/// # Errors
/// As [`flink_gc_candidates`]; storage errors.
pub fn flink_gc_delete(
    store: &CheckpointStore,
    report: &FlinkGcReport,
    paths: &FlinkPaths,
    options: &GcOptions,
) -> Result<usize> {
    if report.candidates.is_empty() {
        return Ok(0);
    }
    crate::inspect::gc::delete_still_candidates(
        store,
        &report.job_dir,
        report.candidates.iter().map(|c| c.path.as_str()),
        || {
            let fresh = flink_gc_candidates(store, &report.job_dir, paths, options)?;
            Ok(fresh.candidates.into_iter().map(|c| c.path).collect())
        },
        || Ok(()),
    )
}
