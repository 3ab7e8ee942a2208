//! The storage layout. This module is the only code that builds or parses
//! `chk-N/`, `_metadata`, `shared/`, `taskowned/` and `savepoint-…/` paths.
//!
//! ```text
//! <checkpoint-dir>/<job-id>/chk-<n>/_metadata     n unpadded; chk-N is complete iff _metadata is
//! <checkpoint-dir>/<job-id>/chk-<n>/<exclusive state files>
//! <checkpoint-dir>/<job-id>/shared/<files>
//! <checkpoint-dir>/<job-id>/taskowned/<files>
//! <savepoint-dir>/savepoint-<first 6 of job-id>-<random>/_metadata
//! ```
//!
//! Paths here are OpenDAL paths relative to the store root: `/`-separated, directories end
//! with `/`, and the root itself is the empty string.

use cornerstone_backend_api::{CheckpointId, Error, Result, StateScope};

/// The name of the metadata file that commits a checkpoint or savepoint.
pub const METADATA_FILE: &str = "_metadata";
/// The prefix of checkpoint directories (`chk-<n>/`).
pub const CHECKPOINT_DIR_PREFIX: &str = "chk-";
/// The directory of shared state files.
pub const SHARED_DIR: &str = "shared";
/// The directory of task-owned state files.
pub const TASK_OWNED_DIR: &str = "taskowned";
/// The prefix of savepoint directories (`savepoint-<6 of job id>-<random>/`).
pub const SAVEPOINT_DIR_PREFIX: &str = "savepoint-";
/// The prefix of a `_metadata` file being written (renamed to `_metadata` on commit).
pub(crate) const METADATA_TEMP_PREFIX: &str = "_metadata.inprogress-";

/// Joins a directory (empty or ending with `/`) and a relative path.
pub(crate) fn join(dir: &str, rel: &str) -> String {
    format!("{dir}{rel}")
}

/// Normalizes a directory path: no leading `/`, no `.` segments, ends with `/` unless empty.
///
/// # Errors
/// [`cornerstone_backend_api::ErrorKind::InvalidInput`] for `..` segments.
pub fn normalize_dir(path: &str) -> Result<String> {
    let mut out = String::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                return Err(
                    Error::invalid_input("path must not contain `..`").with_context("path", path)
                );
            }
            s => {
                out.push_str(s);
                out.push('/');
            }
        }
    }
    Ok(out)
}

/// The directory of a job in a checkpoint directory: `<job-id>/`.
///
/// # Errors
/// [`cornerstone_backend_api::ErrorKind::InvalidInput`] when the job id is empty or contains `/`.
pub fn job_dir(job_id: &str) -> Result<String> {
    if job_id.is_empty() || job_id.contains('/') || job_id == "." || job_id == ".." {
        return Err(
            Error::invalid_input("job id must be a non-empty single path segment")
                .with_context("job_id", job_id),
        );
    }
    Ok(format!("{job_id}/"))
}

/// The name of the directory of checkpoint `id`: `chk-<n>` (unpadded).
pub fn checkpoint_dir_name(id: CheckpointId) -> String {
    format!("{CHECKPOINT_DIR_PREFIX}{}", id.get())
}

/// `<job_dir>chk-<n>/`.
pub fn checkpoint_dir(job_dir: &str, id: CheckpointId) -> String {
    format!("{job_dir}{}/", checkpoint_dir_name(id))
}

/// `<dir>_metadata` for a checkpoint or savepoint directory.
pub fn metadata_path(dir: &str) -> String {
    format!("{dir}{METADATA_FILE}")
}

/// `<job_dir>shared/`.
pub fn shared_dir(job_dir: &str) -> String {
    format!("{job_dir}{SHARED_DIR}/")
}

/// `<job_dir>taskowned/`.
pub fn task_owned_dir(job_dir: &str) -> String {
    format!("{job_dir}{TASK_OWNED_DIR}/")
}

/// The temporary name `_metadata` is written under before the commit rename.
pub(crate) fn metadata_temp_path(dir: &str, random: &str) -> String {
    format!("{dir}{METADATA_TEMP_PREFIX}{random}")
}

/// Parses a checkpoint directory name (`chk-12` or `chk-12/`) into its id.
///
/// Only canonical decimal numbers are accepted (`chk-007` is not a checkpoint directory),
/// so that parsing and [`checkpoint_dir_name`] are inverse.
pub fn parse_checkpoint_dir(name: &str) -> Option<CheckpointId> {
    let digits = name
        .strip_suffix('/')
        .unwrap_or(name)
        .strip_prefix(CHECKPOINT_DIR_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok().map(CheckpointId)
}

/// The name of a new savepoint directory: `savepoint-<first 6 of job id>-<random>`.
pub fn savepoint_dir_name(job_id: &str, random: &str) -> String {
    let short: String = job_id.chars().take(6).collect();
    format!("{SAVEPOINT_DIR_PREFIX}{short}-{random}")
}

/// Whether a directory name looks like a savepoint directory.
pub fn is_savepoint_dir(name: &str) -> bool {
    let name = name.strip_suffix('/').unwrap_or(name);
    name.strip_prefix(SAVEPOINT_DIR_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// The path of a new state file, relative to the job directory (checkpoints) or the
/// savepoint directory (savepoints, where every file is inside the directory).
pub(crate) fn state_file_rel(
    checkpoint: CheckpointId,
    scope: StateScope,
    savepoint: bool,
    random: &str,
) -> String {
    if savepoint {
        return random.to_owned();
    }
    match scope {
        StateScope::Exclusive => format!("{}/{random}", checkpoint_dir_name(checkpoint)),
        StateScope::Shared => format!("{SHARED_DIR}/{random}"),
        StateScope::TaskOwned => format!("{TASK_OWNED_DIR}/{random}"),
    }
}

/// What a path relative to a job directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPath {
    /// A file in `chk-<n>/`.
    Checkpoint(CheckpointId),
    /// A file in `shared/`.
    Shared,
    /// A file in `taskowned/`.
    TaskOwned,
    /// Something else.
    Other,
}

/// Classifies a path relative to a job directory.
pub fn classify_job_path(rel: &str) -> JobPath {
    let Some((first, _)) = rel.split_once('/') else {
        return JobPath::Other;
    };
    if first == SHARED_DIR {
        JobPath::Shared
    } else if first == TASK_OWNED_DIR {
        JobPath::TaskOwned
    } else if let Some(id) = parse_checkpoint_dir(first) {
        JobPath::Checkpoint(id)
    } else {
        JobPath::Other
    }
}

/// Checks that a path stored in a handle is a safe relative path: not empty, no leading
/// `/`, no empty, `.` or `..` segments, no backslashes or NUL.
pub(crate) fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// The parent directory of a path (`a/b/c` → `a/b/`, `a/b/` → `a/`, `a` → ``).
pub(crate) fn parent_dir(path: &str) -> String {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    match trimmed.rfind('/') {
        Some(i) => trimmed[..=i].to_owned(),
        None => String::new(),
    }
}

/// The last segment of a path, without a trailing `/`.
pub(crate) fn file_name(path: &str) -> &str {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_match_design() {
        assert_eq!(job_dir("job").unwrap(), "job/");
        assert_eq!(checkpoint_dir("job/", CheckpointId(12)), "job/chk-12/");
        assert_eq!(metadata_path("job/chk-12/"), "job/chk-12/_metadata");
        assert_eq!(shared_dir("job/"), "job/shared/");
        assert_eq!(task_owned_dir("job/"), "job/taskowned/");
        assert_eq!(
            savepoint_dir_name("abcdef0123", "xyz"),
            "savepoint-abcdef-xyz"
        );
        assert_eq!(parse_checkpoint_dir("chk-12/"), Some(CheckpointId(12)));
        assert_eq!(parse_checkpoint_dir("chk-0"), Some(CheckpointId(0)));
        for bad in [
            "chk-",
            "chk-01",
            "chk--1",
            "chk-1a",
            "chk-99999999999999999999",
            "shared",
        ] {
            assert_eq!(parse_checkpoint_dir(bad), None, "{bad}");
        }
        assert_eq!(
            classify_job_path("chk-3/x"),
            JobPath::Checkpoint(CheckpointId(3))
        );
        assert_eq!(classify_job_path("shared/x"), JobPath::Shared);
        assert_eq!(parent_dir("a/b/_metadata"), "a/b/");
        assert_eq!(parent_dir("a/b/"), "a/");
        assert_eq!(file_name("a/chk-3/"), "chk-3");
        assert_eq!(normalize_dir("/a//b/./").unwrap(), "a/b/");
        assert!(normalize_dir("a/../b").is_err());
        assert!(
            !is_safe_relative("../x") && !is_safe_relative("/x") && is_safe_relative("chk-1/x")
        );
    }
}
