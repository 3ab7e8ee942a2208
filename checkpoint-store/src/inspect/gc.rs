//! [`gc_candidates`] and [`gc_delete`]: the files no complete checkpoint references.

use std::collections::BTreeSet;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};

use crate::completed::{CompletedCheckpoint, checkpoint_dirs};
use crate::layout;
use crate::lease;
use crate::status::{self, AgeGuard, CheckpointDirStatus};
use crate::store::CheckpointStore;

/// Why a file is a garbage-collection candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GcReason {
    /// In `shared/`, referenced by no complete checkpoint.
    UnreferencedShared,
    /// In a complete `chk-N/`, but not referenced by it or any other complete checkpoint.
    UnreferencedExclusive,
    /// In an abandoned `chk-N/` (no `_metadata`, nothing changed for the min age).
    IncompleteCheckpoint,
    /// In a `chk-N/` whose `_metadata` a fenced writer published after a newer writer took
    /// over (never restorable; see [`lease`]), `_metadata` included.
    FencedCheckpoint,
}

/// One garbage-collection candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcCandidate {
    /// The path in the store.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Why it is garbage.
    pub reason: GcReason,
}

/// What garbage collection keeps although nothing references it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcKept {
    /// A directory or file in the store.
    pub path: String,
    /// Why it is kept.
    pub why: String,
}

/// How [`gc_candidates`] and [`gc_delete`] decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Nothing modified more recently than this is a candidate, and a writer whose lease
    /// shows activity within it is live. Keep it above the checkpoint timeout: an upload
    /// in progress is never older than that. Default: one hour.
    pub min_age_ms: u64,
    /// Now, in milliseconds since the epoch (from the caller's clock).
    pub now_ms: u64,
    /// Delete even while the job directory's lease shows a live writer. The writer is
    /// fenced by the deletion (its next commit fails with [`ErrorKind::Fenced`]).
    pub force: bool,
}

impl GcOptions {
    /// The default min age: one hour.
    pub const DEFAULT_MIN_AGE_MS: u64 = 60 * 60 * 1000;

    /// Options with the default min age at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        GcOptions {
            min_age_ms: Self::DEFAULT_MIN_AGE_MS,
            now_ms,
            force: false,
        }
    }

    /// Sets the min age.
    #[must_use]
    pub fn with_min_age_ms(mut self, min_age_ms: u64) -> Self {
        self.min_age_ms = min_age_ms;
        self
    }

    /// Sets [`force`](Self::force).
    #[must_use]
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    fn age(&self) -> AgeGuard {
        AgeGuard {
            now_ms: self.now_ms,
            min_age_ms: self.min_age_ms,
        }
    }
}

/// What [`gc_candidates`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcReport {
    /// The job directory.
    pub job_dir: String,
    /// The complete checkpoints whose references were kept.
    pub retained: Vec<CheckpointId>,
    /// The files no complete checkpoint references.
    pub candidates: Vec<GcCandidate>,
    /// What is kept although unreferenced (in-progress checkpoints, unreadable ones,
    /// `shared/` while a `_metadata` is unreadable, files younger than the min age).
    pub kept: Vec<GcKept>,
}

impl GcReport {
    /// The total size of the candidates.
    pub fn total_size(&self) -> u64 {
        self.candidates
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.size))
    }
}

/// Finds the files under `shared/` and `chk-*/` of a job directory that no complete
/// checkpoint in it references and that are safe to delete beside a live job: nothing
/// modified within the min age, nothing of a checkpoint in progress, nothing of a checkpoint
/// whose `_metadata` is unreadable (corrupt, or of a newer format) and, while such a
/// `_metadata` exists, no `shared/` file (it may reference them). `taskowned/` is the task's
/// and never a candidate. [`GcReport::kept`] says what was kept and why.
///
/// # Errors
/// Storage errors (transient ones included: nothing is a candidate by default).
pub fn gc_candidates(
    store: &CheckpointStore,
    job_dir: &str,
    options: &GcOptions,
) -> Result<GcReport> {
    let job_dir = layout::normalize_dir(job_dir)?;
    let age = options.age();
    let mut complete = Vec::new();
    let mut dirs = Vec::new();
    let mut kept = Vec::new();
    let mut unreadable = Vec::new();
    for (_, dir, st) in status::classify_job(store, &job_dir, Some(age))? {
        match st {
            CheckpointDirStatus::Complete(done) => {
                complete.push(done);
                dirs.push((dir, GcReason::UnreferencedExclusive));
            }
            CheckpointDirStatus::Abandoned => dirs.push((dir, GcReason::IncompleteCheckpoint)),
            CheckpointDirStatus::Fenced(_) => dirs.push((dir, GcReason::FencedCheckpoint)),
            CheckpointDirStatus::InProgress => kept.push(GcKept {
                path: dir,
                why: format!(
                    "no _metadata, but a file changed within the min age ({} ms): a checkpoint may be in progress",
                    options.min_age_ms
                ),
            }),
            CheckpointDirStatus::Corrupt(e) | CheckpointDirStatus::NewerFormat(e) => {
                kept.push(GcKept {
                    path: dir.clone(),
                    why: format!("_metadata is unreadable ({e}): never garbage"),
                });
                unreadable.push(layout::metadata_path(&dir));
            }
        }
    }
    let referenced: BTreeSet<String> = complete
        .iter()
        .flat_map(CompletedCheckpoint::file_paths)
        .map(|(p, _)| p)
        .collect();
    let metadata_paths: BTreeSet<&str> =
        complete.iter().map(|c| c.metadata_path.as_str()).collect();
    let mut candidates = Vec::new();
    let mut young = 0usize;
    let mut consider = |path: String, reason: GcReason| -> Result<()> {
        if referenced.contains(&path) || metadata_paths.contains(path.as_str()) {
            return Ok(());
        }
        // Every file is aged, also in an abandoned directory: a writer may have started
        // uploading into it since it was classified.
        let modified = match store.modified_ms(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !age.is_old(modified) {
            young += 1;
            return Ok(());
        }
        let size = store.size(&path).unwrap_or(0);
        candidates.push(GcCandidate { path, size, reason });
        Ok(())
    };
    for (dir, reason) in dirs {
        for e in store.list(&dir, true)? {
            if !e.is_dir {
                consider(e.path, reason)?;
            }
        }
    }
    let shared = layout::shared_dir(&job_dir);
    if unreadable.is_empty() {
        for e in store.list(&shared, true)? {
            if !e.is_dir {
                consider(e.path, GcReason::UnreferencedShared)?;
            }
        }
    } else {
        kept.push(GcKept {
            path: shared,
            why: format!(
                "no shared file is collected while a _metadata is unreadable (it may reference them): {}",
                unreadable.join(", ")
            ),
        });
    }
    if young > 0 {
        kept.push(GcKept {
            path: job_dir.clone(),
            why: format!(
                "{young} unreferenced file(s) changed within the min age ({} ms)",
                options.min_age_ms
            ),
        });
    }
    Ok(GcReport {
        job_dir,
        retained: complete.iter().map(CompletedCheckpoint::id).collect(),
        candidates,
        kept,
    })
}

/// Deletes the candidates of a [`gc_candidates`] report. First it takes the job
/// directory's lease (so no writer that might reference them commits afterwards), unless a
/// live writer holds it: one whose lease shows activity within the min age, which is refused
/// unless [`GcOptions::force`]. Then it re-checks every candidate against storage as it is
/// now (a checkpoint may have completed since). Returns the number of files deleted.
///
/// Taking the lease fences the job's current writer: a job that is running must be
/// restarted afterwards (it restores from its latest checkpoint).
///
/// # Errors
/// [`ErrorKind::Unavailable`] when a live writer holds the lease (the message says since
/// when) and `force` is not set; storage errors.
pub fn gc_delete(store: &CheckpointStore, report: &GcReport, options: &GcOptions) -> Result<usize> {
    if report.candidates.is_empty() {
        return Ok(0);
    }
    let lease_state = lease::read_state(store, &report.job_dir)?;
    if let Some(last) = lease_state.last_activity_ms
        && !options.force
        && !options.age().is_old(Some(last))
    {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "a live writer holds the job directory's lease; stop the job first, wait for the min age, or force",
        )
        .with_context("path", lease::lease_dir(&report.job_dir))
        .with_context("epoch", lease_state.epoch)
        .with_context("last activity", format!("{} ms ago", options.now_ms.saturating_sub(last))));
    }
    let first_id = checkpoint_dirs(store, &report.job_dir)?
        .last()
        .map_or(1, |(id, _)| id.get().saturating_add(1));
    let taken = store.block_on(lease::Lease::acquire(
        store,
        &report.job_dir,
        first_id,
        "cornerstone gc",
    ))?;
    delete_still_candidates(
        store,
        &report.job_dir,
        report.candidates.iter().map(|c| c.path.as_str()),
        || {
            let fresh = gc_candidates(store, &report.job_dir, options)?;
            Ok(fresh.candidates.into_iter().map(|c| c.path).collect())
        },
        || store.block_on(taken.check("gc delete")),
    )
}

/// The last step of `gc --delete`, for Cornerstone's and Flink's job directories: makes the
/// job directory durable as it is listed, scans it again with `rescan` (a checkpoint may
/// have completed since the report), and deletes the `candidates` of the report that the
/// new scan still lists ([`delete_files`], `check` before each).
pub(super) fn delete_still_candidates<'a>(
    store: &CheckpointStore,
    job_dir: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    rescan: impl FnOnce() -> Result<BTreeSet<String>>,
    check: impl FnMut() -> Result<()>,
) -> Result<usize> {
    crate::completed::sync_job_dirs(store, job_dir, &checkpoint_dirs(store, job_dir)?)?;
    let still = rescan()?;
    delete_files(
        store,
        job_dir,
        candidates.into_iter().filter(|p| still.contains(*p)),
        check,
    )
}

/// Deletes `paths`, files of the job directory `job_dir`, calling `check` before each (a
/// failed check stops the deletion), then the directories that became empty (never
/// `shared/` or `taskowned/`). Returns how many files were deleted. The one deletion path
/// of `gc`, for Cornerstone's and Flink's job directories.
fn delete_files<'a>(
    store: &CheckpointStore,
    job_dir: &str,
    paths: impl IntoIterator<Item = &'a str>,
    mut check: impl FnMut() -> Result<()>,
) -> Result<usize> {
    let mut deleted = 0;
    let mut dirs = BTreeSet::new();
    for path in paths {
        check()?;
        store.delete(path)?;
        dirs.insert(layout::parent_dir(path));
        deleted += 1;
    }
    let keep = [layout::shared_dir(job_dir), layout::task_owned_dir(job_dir)];
    for d in dirs {
        if !keep.contains(&d) {
            store.delete_dir_if_empty(&d);
        }
    }
    Ok(deleted)
}
