//! Restore points: resolving a location to a checkpoint or savepoint
//! ([`CheckpointStore::resolve`]), registering one with a job
//! ([`CompletedCheckpointStore::restore`]), and disposing of savepoints.

use cornerstone_backend_api::{Error, ErrorKind, Result};

use super::checkpoint::{CompletedCheckpoint, checkpoint_dirs_async};
use super::config::ClaimMode;
use super::job::CompletedCheckpointStore;
use super::retention::Retained;
use crate::layout;
use crate::metadata::SnapshotKind;
use crate::status::{self, CheckpointDirStatus, load_completed};
use crate::store::{CheckpointStore, StoreStateReader};

impl CheckpointStore {
    /// Resolves a restore location: a `_metadata` path, a `chk-N/` or savepoint directory,
    /// or a job directory (its latest complete checkpoint; `chk-N/` without `_metadata` are
    /// skipped).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when nothing restorable is there (the message lists the
    /// checkpoint directories that exist); decoding errors of an explicitly named
    /// `_metadata`; [`ErrorKind::Corrupted`] or [`ErrorKind::Unsupported`] naming the file
    /// when the newest `_metadata` of a job directory is unreadable (it never falls back to
    /// an older checkpoint silently); storage errors, transient ones included.
    pub fn resolve(&self, path: &str) -> Result<CompletedCheckpoint> {
        self.block_on(self.resolve_async(path))
    }

    /// [`resolve`](Self::resolve), async.
    pub(crate) async fn resolve_async(&self, path: &str) -> Result<CompletedCheckpoint> {
        let trimmed = path.trim_start_matches('/');
        if layout::file_name(trimmed) == layout::METADATA_FILE && !trimmed.ends_with('/') {
            return load_completed(self, trimmed).await;
        }
        let dir = layout::normalize_dir(trimmed)?;
        let meta = layout::metadata_path(&dir);
        if self.exists_async(&meta).await? {
            return load_completed(self, &meta).await;
        }
        let dirs = checkpoint_dirs_async(self, &dir).await?;
        let lease = if dirs.is_empty() {
            crate::lease::LeaseState::default()
        } else {
            crate::lease::read_state_async(self, &dir).await?
        };
        for (id, chk) in dirs.iter().rev() {
            let status = status::with_lease(
                status::classify_async(self, chk, *id, None).await?,
                *id,
                &lease,
            );
            match status {
                CheckpointDirStatus::Complete(done) => return Ok(done),
                CheckpointDirStatus::InProgress
                | CheckpointDirStatus::Abandoned
                | CheckpointDirStatus::Fenced(_) => {}
                CheckpointDirStatus::Corrupt(_) | CheckpointDirStatus::NewerFormat(_) => {
                    return Err(status::unreadable_newest(&status, chk));
                }
            }
        }
        // A `chk-N` directory without `_metadata` (a typo, or one not yet committed): say
        // which checkpoints its job directory has.
        let dir_name = dir.trim_end_matches('/');
        let (parent, name) = dir_name.rsplit_once('/').unwrap_or(("", dir_name));
        if let Some(id) = layout::parse_checkpoint_dir(name) {
            let siblings = checkpoint_dirs_async(self, &layout::normalize_dir(parent)?).await?;
            let names: Vec<String> = siblings
                .iter()
                .map(|(id, _)| layout::checkpoint_dir_name(*id))
                .collect();
            return Err(Error::not_found(format!(
                "{} is not a complete checkpoint: it has no _metadata",
                layout::checkpoint_dir_name(id)
            ))
            .with_context("path", path)
            .with_context(
                "checkpoint directories",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
            ));
        }
        let names: Vec<String> = dirs
            .iter()
            .map(|(id, _)| layout::checkpoint_dir_name(*id))
            .collect();
        Err(
            Error::not_found("no complete checkpoint or savepoint to restore")
                .with_context("path", path)
                .with_context(
                    "checkpoint directories",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        format!("{} (none with _metadata)", names.join(", "))
                    },
                ),
        )
    }

    /// Disposes of a savepoint (its directory or its `_metadata`): deletes `_metadata` first,
    /// so a half-deleted savepoint is never restorable, then every other file of the
    /// directory. Returns the paths deleted (with `dry_run`, the paths that would be).
    ///
    /// Only a directory whose `_metadata` decodes as a savepoint is disposed of; anything
    /// else (no `_metadata`, an unreadable one, a checkpoint, a directory merely named
    /// `savepoint-…`) is refused unless `force` is set, and even then a checkpoint is never
    /// disposed of here.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the location is refused (the message says why);
    /// storage errors.
    pub fn dispose_savepoint(&self, path: &str, force: bool, dry_run: bool) -> Result<Vec<String>> {
        self.block_on(self.dispose_savepoint_async(path, force, dry_run))
    }

    /// [`dispose_savepoint`](Self::dispose_savepoint), async.
    async fn dispose_savepoint_async(
        &self,
        path: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let trimmed = path.trim_start_matches('/');
        let dir = if layout::file_name(trimmed) == layout::METADATA_FILE && !trimmed.ends_with('/')
        {
            layout::parent_dir(trimmed)
        } else {
            layout::normalize_dir(trimmed)?
        };
        if dir.is_empty() {
            return Err(
                Error::invalid_input("refusing to dispose of the storage root")
                    .with_context("path", path),
            );
        }
        let meta = layout::metadata_path(&dir);
        let loaded = load_completed(self, &meta).await;
        if let Err(e) = &loaded
            && e.kind() == ErrorKind::NotFound
            && self.list_async(&dir, false).await?.is_empty()
        {
            return Err(Error::not_found(
                "nothing to dispose of: no savepoint (nor any file) at this path",
            )
            .with_context("path", path));
        }
        match loaded {
            Ok(done) if done.metadata.kind == SnapshotKind::Savepoint => {}
            Ok(_) => {
                return Err(Error::invalid_input(
                    "refusing to dispose of a checkpoint as a savepoint",
                )
                .with_context("path", &meta));
            }
            Err(e)
                if force
                    && matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::Corrupted | ErrorKind::Unsupported
                    ) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::Corrupted | ErrorKind::Unsupported
                ) =>
            {
                return Err(Error::invalid_input(
                    "refusing to dispose: the directory has no readable savepoint _metadata \
                     (pass force to delete it anyway)",
                )
                .with_context("path", &meta)
                .with_context("cause", format!("{}: {}", e.kind().as_str(), e.message())));
            }
            Err(e) => return Err(e),
        }
        let mut files: Vec<String> = self
            .list_async(&dir, true)
            .await?
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(|e| e.path)
            .collect();
        files.sort();
        // `_metadata` first: a half-deleted savepoint is never restorable.
        if let Some(i) = files.iter().position(|f| *f == meta) {
            let m = files.remove(i);
            files.insert(0, m);
        }
        if dry_run {
            return Ok(files);
        }
        if files.first() == Some(&meta) {
            self.delete_async(&meta).await?;
            self.sync_dirs_async([dir.as_str()]).await?;
        }
        for f in files.iter().skip_while(|f| **f == meta) {
            self.delete_async(f).await?;
        }
        self.delete_dir_if_empty_async(&dir).await;
        Ok(files)
    }
}

impl CompletedCheckpointStore {
    /// Registers a restore point with `mode` (see [`ClaimMode`]) and returns a reader for its
    /// handles. `Claim` of a checkpoint makes it owned: it is subsumed (deleted) like this
    /// job's own checkpoints. Either way, new checkpoints can only reference files this job
    /// wrote, so the first checkpoint after a restore from elsewhere is full.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for `NoClaim` of a checkpoint inside this job's own
    /// directory (its files are this job's: use `Claim`); storage errors.
    pub fn restore(
        &self,
        point: &CompletedCheckpoint,
        mode: ClaimMode,
    ) -> Result<StoreStateReader> {
        self.inner.store.block_on(self.restore_async(point, mode))
    }

    /// [`restore`](Self::restore), async.
    pub(crate) async fn restore_async(
        &self,
        point: &CompletedCheckpoint,
        mode: ClaimMode,
    ) -> Result<StoreStateReader> {
        let own = point.base_dir == self.inner.job_dir;
        let checkpoint = point.metadata.kind == SnapshotKind::Checkpoint;
        match (mode, checkpoint, own) {
            (ClaimMode::NoClaim, true, true) => {
                return Err(Error::invalid_input(
                    "NoClaim restore of a checkpoint in the job's own directory: its files belong to this job; \
                     use Claim or restore into a new job id",
                )
                .with_context("path", &point.metadata_path));
            }
            (ClaimMode::Claim, true, _) => {
                let _writer = self.inner.writer.lock().await;
                let mut state = self.inner.state.lock();
                if !state
                    .retained
                    .iter()
                    .any(|r| r.done.metadata_path == point.metadata_path)
                {
                    state.retained.push(Retained {
                        done: point.clone(),
                        foreign: !own,
                    });
                    state.retained.sort_by_key(|r| r.done.id());
                }
            }
            _ => {}
        }
        Ok(self.inner.store.reader(&point.base_dir))
    }
}
