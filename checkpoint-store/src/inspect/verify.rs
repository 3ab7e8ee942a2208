//! [`verify`]: every referenced file read in full and checked.

use cornerstone_backend_api::{CheckpointId, ContentMismatch, ErrorKind, FileStateHandle, Result};

use crate::layout;
use crate::metadata::SnapshotKind;
use crate::store::CheckpointStore;

/// What kind of problem [`verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// `_metadata` is missing, unreadable or does not decode.
    Metadata,
    /// A referenced file does not exist.
    MissingFile,
    /// A referenced file has another size than its handle says.
    SizeMismatch,
    /// A referenced file's CRC32 differs from its handle's.
    ChecksumMismatch,
    /// A referenced file could not be read.
    Unreadable,
    /// A savepoint references a file outside its directory (it would not be relocatable).
    NotSelfContained,
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The path in the store.
    pub path: String,
    /// Details: expected and actual sizes or checksums, the error.
    pub detail: String,
}

/// What [`verify`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// The `_metadata` that was verified (empty if none was found).
    pub metadata_path: String,
    /// The checkpoint id, if `_metadata` decoded.
    pub checkpoint_id: Option<CheckpointId>,
    /// How many files were checked.
    pub files_checked: usize,
    /// How many bytes were read.
    pub bytes_read: u64,
    /// Every problem found; empty when the snapshot is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies a checkpoint or savepoint: decodes `_metadata`, then reads every referenced file
/// in full and checks its size and CRC32. Every problem is reported, not just the first.
/// `progress` is called after each file with (files done, files total).
///
/// # Errors
/// Only when the location cannot be resolved at all ([`ErrorKind::NotFound`]); a corrupt
/// `_metadata` named explicitly is a [`ProblemKind::Metadata`] problem.
pub fn verify(
    store: &CheckpointStore,
    path: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let snapshot = match store.resolve(path) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported) => {
            report.metadata_path = e.context("path").unwrap_or(path).to_owned();
            report.problems.push(Problem {
                kind: ProblemKind::Metadata,
                path: report.metadata_path.clone(),
                detail: e.to_string(),
            });
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    report.metadata_path = snapshot.metadata_path.clone();
    report.checkpoint_id = Some(snapshot.id());
    let files: Vec<&FileStateHandle> = snapshot.metadata.files();
    let total = files.len();
    for (i, f) in files.into_iter().enumerate() {
        let full = layout::join(&snapshot.base_dir, &f.path);
        if snapshot.metadata.kind == SnapshotKind::Savepoint && f.path.contains('/') {
            report.problems.push(Problem {
                kind: ProblemKind::NotSelfContained,
                path: full.clone(),
                detail: "savepoint file is not directly in the savepoint directory".into(),
            });
        }
        // Streamed: a file of any size costs one chunk of memory.
        match store.size_and_crc32(&full) {
            Ok((size, crc)) => {
                report.bytes_read += size;
                if let Err(mismatch) = f.check_content(size, crc) {
                    report.problems.push(Problem {
                        kind: match mismatch {
                            ContentMismatch::Size { .. } => ProblemKind::SizeMismatch,
                            ContentMismatch::Crc32 { .. } => ProblemKind::ChecksumMismatch,
                        },
                        path: full.clone(),
                        detail: mismatch.to_string(),
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => report.problems.push(Problem {
                kind: ProblemKind::MissingFile,
                path: full.clone(),
                detail: format!("referenced file does not exist (expected {} bytes)", f.size),
            }),
            Err(e) => report.problems.push(Problem {
                kind: ProblemKind::Unreadable,
                path: full.clone(),
                detail: e.to_string(),
            }),
        }
        report.files_checked += 1;
        progress(i + 1, total);
    }
    Ok(report)
}
