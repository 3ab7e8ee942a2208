//! [`flink_verify`]: every file a Flink checkpoint references exists, at least as large as
//! recorded.

use std::collections::BTreeMap;

use cornerstone_backend_api::{ErrorKind, Result};
use serde::Serialize;

use super::{FlinkPaths, FlinkRef, Target, is_unreadable, job_metadata, load, target};
use crate::store::CheckpointStore;

/// What kind of problem [`flink_verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlinkProblemKind {
    /// `_metadata` is unreadable or does not decode.
    Metadata,
    /// A referenced file does not exist.
    MissingFile,
    /// A referenced file is smaller than a handle records.
    SizeMismatch,
    /// A referenced file could not be examined (a storage error).
    Unreadable,
    /// A referenced file is outside this store (another service, bucket or an unmapped
    /// scheme): not checked; remap its prefix to check it.
    OutsideStore,
}

impl FlinkProblemKind {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlinkProblemKind::Metadata => "metadata",
            FlinkProblemKind::MissingFile => "missing-file",
            FlinkProblemKind::SizeMismatch => "size-mismatch",
            FlinkProblemKind::Unreadable => "unreadable",
            FlinkProblemKind::OutsideStore => "outside-store",
        }
    }
}

/// One problem found by [`flink_verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkProblem {
    /// What kind.
    pub kind: FlinkProblemKind,
    /// The file (in the store, or its URI outside it) or the `_metadata`.
    pub path: String,
    /// The path as `_metadata` holds it.
    pub written: Option<String>,
    /// The size the file must at least have.
    pub expected_min_size_bytes: Option<u64>,
    /// The size found.
    pub actual_size_bytes: Option<u64>,
    /// The checkpoints and savepoints that reference the file.
    pub referenced_by: Vec<FlinkRef>,
    /// What is wrong, in words.
    pub detail: String,
}

/// A `_metadata` that [`flink_verify`] read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkVerified {
    /// The `_metadata`.
    pub metadata_path: String,
    /// The checkpoint id.
    pub checkpoint_id: u64,
    /// The format version.
    pub version: u32,
    /// How many files it references.
    pub files: usize,
}

/// What [`flink_verify`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FlinkVerifyReport {
    /// The `_metadata` files read.
    pub verified: Vec<FlinkVerified>,
    /// How many distinct files were checked.
    pub files_checked: usize,
    /// Every problem found, by path; empty when intact.
    pub problems: Vec<FlinkProblem>,
}

impl FlinkVerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies Flink snapshots: a `_metadata` file or a `chk-N/` or savepoint directory, or
/// every `chk-N/` and `savepoint-*/` of a job directory with a `_metadata`. Each referenced
/// file (relative handles resolved against the `_metadata`'s directory, absolute ones
/// through `paths`) must exist with at least the size its handles record; a problem names
/// the file, the size expected and every snapshot that references it. Files are examined,
/// not read. `progress` is called after each file with (files done, files total).
///
/// # Errors
/// [`ErrorKind::NotFound`] when a named `_metadata` (or a job directory's every
/// `_metadata`) does not exist; storage errors other than on referenced files. A corrupt
/// `_metadata` is a [`FlinkProblemKind::Metadata`] problem.
pub fn flink_verify(
    store: &CheckpointStore,
    path: &str,
    paths: &FlinkPaths,
    mut progress: impl FnMut(usize, usize),
) -> Result<FlinkVerifyReport> {
    let metas: Vec<String> = match target(store, path)? {
        Target::Metadata(m) => vec![m],
        Target::JobDir(dir) => {
            let (with, _) = job_metadata(store, &dir)?;
            if with.is_empty() {
                return Err(cornerstone_backend_api::Error::not_found(
                    "no Flink checkpoint or savepoint with a _metadata here",
                )
                .with_context("path", path));
            }
            with.into_iter().map(|(_, m)| m).collect()
        }
    };
    let mut report = FlinkVerifyReport::default();
    // path -> (written, min size, in store, referencing snapshots)
    let mut files: BTreeMap<String, (String, u64, bool, Vec<FlinkRef>)> = BTreeMap::new();
    for meta in metas {
        let loaded = match load(store, &meta, paths) {
            Ok(l) => l,
            Err(e) if is_unreadable(&e) || e.kind() == ErrorKind::NotFound => {
                report.problems.push(FlinkProblem {
                    kind: FlinkProblemKind::Metadata,
                    path: meta,
                    written: None,
                    expected_min_size_bytes: None,
                    actual_size_bytes: None,
                    referenced_by: Vec::new(),
                    detail: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        report.verified.push(FlinkVerified {
            metadata_path: loaded.metadata_path.clone(),
            checkpoint_id: loaded.metadata.checkpoint_id,
            version: loaded.metadata.version,
            files: loaded.files.len(),
        });
        for f in &loaded.files {
            let e = files
                .entry(f.path.clone())
                .or_insert_with(|| (f.written.clone(), 0, f.in_store, Vec::new()));
            e.1 = e.1.max(f.min_size_bytes);
            e.3.push(loaded.reference());
        }
    }
    let total = files.len();
    for (i, (path, (written, min, in_store, by))) in files.into_iter().enumerate() {
        let mut problem = |kind, actual, detail: String| {
            report.problems.push(FlinkProblem {
                kind,
                path: path.clone(),
                written: Some(written.clone()),
                expected_min_size_bytes: Some(min),
                actual_size_bytes: actual,
                referenced_by: by.clone(),
                detail,
            });
        };
        if !in_store {
            problem(
                FlinkProblemKind::OutsideStore,
                None,
                format!(
                    "referenced file (at least {min} bytes) is outside this store: not checked; \
                     map its prefix with --path-prefix OLD=NEW"
                ),
            );
        } else {
            match store.size(&path) {
                Ok(size) if size < min => problem(
                    FlinkProblemKind::SizeMismatch,
                    Some(size),
                    format!("expected at least {min} bytes, found {size}"),
                ),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => problem(
                    FlinkProblemKind::MissingFile,
                    None,
                    format!("referenced file does not exist (expected at least {min} bytes)"),
                ),
                Err(e) => problem(FlinkProblemKind::Unreadable, None, e.to_string()),
            }
        }
        report.files_checked += 1;
        progress(i + 1, total);
    }
    Ok(report)
}
