//! The completed-checkpoint store of one job: the commit protocol, retention, cleanup on
//! termination, savepoints and restore.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cornerstone_backend_api::{
    CheckpointId, Error, ErrorKind, Result, SharedClock, StateScope, SubtaskState,
    clock::system_clock,
};
use parking_lot::Mutex;

use crate::codec::{self, MetadataCompression};
use crate::layout;
use crate::lease::Lease;
use crate::metadata::{CheckpointMetadata, FORMAT_VERSION, OperatorState, SnapshotKind};
use crate::status::{self, CheckpointDirStatus, load_completed};
use crate::store::{
    CheckpointStore, DEFAULT_INLINE_THRESHOLD, DEFAULT_WRITE_CHUNK_SIZE, StoreStateReader,
    StoreStreamFactory, random_name,
};

/// What happens to a job's externalized checkpoints when it terminates.
///
/// | policy | finished | cancelled | failed | suspended |
/// |---|---|---|---|---|
/// | `NoExternalized` (default) | delete | delete | delete | delete |
/// | `DeleteOnCancellation` | delete | delete | keep | delete |
/// | `RetainOnCancellation` | delete | keep | keep | keep |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CleanupPolicy {
    /// Checkpoints are not externalized: always deleted.
    #[default]
    NoExternalized,
    /// Kept only when the job failed.
    DeleteOnCancellation,
    /// Deleted only when the job finished.
    RetainOnCancellation,
}

/// How a job terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// It finished.
    Finished,
    /// It was cancelled.
    Cancelled,
    /// It failed for good.
    Failed,
    /// It was suspended (e.g. the cluster lost leadership).
    Suspended,
}

impl CleanupPolicy {
    /// Whether the retained checkpoints are deleted when the job terminates with `status`.
    pub fn deletes_on(self, status: JobStatus) -> bool {
        use CleanupPolicy as P;
        use JobStatus as S;
        match (self, status) {
            (P::NoExternalized, _) => true,
            (P::DeleteOnCancellation, S::Failed) => false,
            (P::DeleteOnCancellation, _) => true,
            (P::RetainOnCancellation, S::Finished) => true,
            (P::RetainOnCancellation, _) => false,
        }
    }
}

/// Restore ownership.
///
/// Which to use: a job restarting from its own job directory (after a failure, or a
/// resubmission with the same job id) claims its checkpoint, `Claim`, so it is subsumed
/// like the job's own; a new job (another job id, an upgrade) starting from another job's
/// checkpoint or from a savepoint uses `NoClaim`, leaving those files to their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClaimMode {
    /// The restored files stay owned by whoever wrote them and are never deleted by this job;
    /// new checkpoints may not reference them (the first new checkpoint is full).
    #[default]
    NoClaim,
    /// The restored checkpoint becomes owned by this job and is subsumed normally.
    /// Savepoints are never deleted automatically, so claiming one is the same as `NoClaim`.
    Claim,
}

/// The configuration of a [`CompletedCheckpointStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckpointConfig {
    /// How many completed checkpoints are retained (at least 1; default 1).
    pub num_retained: usize,
    /// Streams smaller than this are kept inline in `_metadata` (default 20 KiB).
    pub inline_threshold: usize,
    /// The chunk size of state-file uploads (default 1 MiB).
    pub write_chunk_size: usize,
    /// What happens to retained checkpoints when the job terminates.
    pub cleanup: CleanupPolicy,
    /// How `_metadata` bodies are stored (default zstd).
    pub compression: MetadataCompression,
    /// Where timestamps come from.
    pub clock: SharedClock,
    /// Whether [`CompletedCheckpointStore::open`] falls back to the newest readable
    /// checkpoint when a newer `_metadata` is unreadable (corrupt, or of a newer format), with
    /// a `tracing` warning. Off by default: then opening fails with an error that names the
    /// file, so that a job never restarts from older state without anyone deciding so.
    pub fallback_on_unreadable: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            num_retained: 1,
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            write_chunk_size: DEFAULT_WRITE_CHUNK_SIZE,
            cleanup: CleanupPolicy::default(),
            compression: MetadataCompression::default(),
            clock: system_clock(),
            fallback_on_unreadable: false,
        }
    }
}

impl CheckpointConfig {
    /// Sets `num_retained` (values below 1 mean 1).
    #[must_use]
    pub fn num_retained(mut self, n: usize) -> Self {
        self.num_retained = n.max(1);
        self
    }
    /// Sets the inline threshold.
    #[must_use]
    pub fn inline_threshold(mut self, bytes: usize) -> Self {
        self.inline_threshold = bytes;
        self
    }
    /// Sets the upload chunk size.
    #[must_use]
    pub fn write_chunk_size(mut self, bytes: usize) -> Self {
        self.write_chunk_size = bytes.max(1);
        self
    }
    /// Sets the cleanup policy.
    #[must_use]
    pub fn cleanup(mut self, policy: CleanupPolicy) -> Self {
        self.cleanup = policy;
        self
    }
    /// Sets the `_metadata` compression.
    #[must_use]
    pub fn compression(mut self, compression: MetadataCompression) -> Self {
        self.compression = compression;
        self
    }
    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
    /// Sets [`fallback_on_unreadable`](Self::fallback_on_unreadable).
    #[must_use]
    pub fn fallback_on_unreadable(mut self, fallback: bool) -> Self {
        self.fallback_on_unreadable = fallback;
        self
    }
}

/// A committed checkpoint or savepoint: its metadata and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// The decoded `_metadata`.
    pub metadata: Arc<CheckpointMetadata>,
    /// The path of `_metadata` in the store.
    pub metadata_path: String,
    /// The directory handle paths are relative to: the job directory of a checkpoint, the
    /// savepoint directory of a savepoint.
    pub base_dir: String,
}

impl CompletedCheckpoint {
    /// The checkpoint id.
    pub fn id(&self) -> CheckpointId {
        self.metadata.checkpoint_id
    }

    /// The directory that holds `_metadata`.
    pub fn dir(&self) -> String {
        layout::parent_dir(&self.metadata_path)
    }

    /// The full paths (in the store) of every referenced file, with their scope.
    pub(crate) fn file_paths(&self) -> Vec<(String, StateScope)> {
        self.metadata
            .files()
            .into_iter()
            .map(|f| (layout::join(&self.base_dir, &f.path), f.scope))
            .collect()
    }
}

/// The `(id, dir)` of every `chk-N/` directory in `job_dir`, sorted numerically.
pub(crate) fn checkpoint_dirs(
    store: &CheckpointStore,
    job_dir: &str,
) -> Result<Vec<(CheckpointId, String)>> {
    let mut dirs: Vec<(CheckpointId, String)> = store
        .list(job_dir, false)?
        .into_iter()
        .filter_map(|e| {
            let name = layout::file_name(&e.path);
            layout::parse_checkpoint_dir(name).map(|id| (id, layout::checkpoint_dir(job_dir, id)))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Makes what a job directory shows durable before a writer or `gc` acts on it: every
/// `chk-N/`, `shared/` and the job directory itself are synced (see
/// [`DirSync`](crate::DirSync)). A process that died between deleting a `_metadata` and
/// syncing its directory left a deletion that a power cut could undo; the files that
/// `_metadata` referenced may be deleted only once it is gone for good.
/// `dirs` is the job directory's [`checkpoint_dirs`], listed by the caller.
pub(crate) fn sync_job_dirs(
    store: &CheckpointStore,
    job_dir: &str,
    dirs: &[(CheckpointId, String)],
) -> Result<()> {
    let shared = layout::shared_dir(job_dir);
    store.sync_dirs(
        dirs.iter()
            .map(|(_, d)| d.as_str())
            .chain([shared.as_str(), job_dir]),
    )
}

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
        let trimmed = path.trim_start_matches('/');
        if layout::file_name(trimmed) == layout::METADATA_FILE && !trimmed.ends_with('/') {
            return load_completed(self, trimmed);
        }
        let dir = layout::normalize_dir(trimmed)?;
        let meta = layout::metadata_path(&dir);
        if self.exists(&meta)? {
            return load_completed(self, &meta);
        }
        let dirs = checkpoint_dirs(self, &dir)?;
        let lease = if dirs.is_empty() {
            crate::lease::LeaseState::default()
        } else {
            crate::lease::read_state(self, &dir)?
        };
        for (id, chk) in dirs.iter().rev() {
            let status = status::with_lease(status::classify(self, chk, *id, None)?, *id, &lease);
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
            let siblings = checkpoint_dirs(self, &layout::normalize_dir(parent)?)?;
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
        let loaded = load_completed(self, &meta);
        if let Err(e) = &loaded
            && e.kind() == ErrorKind::NotFound
            && self.list(&dir, false)?.is_empty()
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
            .list(&dir, true)?
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
            self.delete(&meta)?;
            self.sync_dirs([dir.as_str()])?;
        }
        for f in files.iter().skip_while(|f| **f == meta) {
            self.delete(f)?;
        }
        self.delete_dir_if_empty(&dir);
        Ok(files)
    }
}

#[derive(Debug, Clone)]
struct Retained {
    done: CompletedCheckpoint,
    /// Restored from another location in `Claim` mode: deleted on subsumption, but new
    /// checkpoints cannot reference its files.
    foreign: bool,
}

#[derive(Debug, Default)]
struct State {
    retained: Vec<Retained>,
    /// Checkpoints whose `_metadata` commit had an unknown outcome: every file they
    /// reference stays live until storage says whether they completed.
    doubtful: Vec<CompletedCheckpoint>,
    /// Subsumed checkpoints whose `_metadata` could not be deleted: still on storage, so
    /// every file they reference stays live; the next subsumption tries again.
    discarding: Vec<Retained>,
    cleanup_failures: Vec<String>,
    terminated: bool,
    /// A `_metadata` on storage is unreadable (corrupt, or of a newer format): it may
    /// reference shared files, so none is deleted.
    keep_shared: bool,
}

struct JobInner {
    store: CheckpointStore,
    job_id: String,
    job_dir: String,
    config: CheckpointConfig,
    lease: Lease,
    state: Mutex<State>,
}

/// The completed checkpoints of one job, in `<job-id>/` of a [`CheckpointStore`].
///
/// Opening it takes the job directory's lease with a new epoch (fencing any earlier writer,
/// see [`lease`](crate::lease)) and recovers the complete checkpoints from storage (ids
/// sorted as numbers; a `chk-N/` without `_metadata` is ignored and left for garbage
/// collection; an unreadable `_metadata` newer than every complete checkpoint is an error,
/// see [`CheckpointConfig::fallback_on_unreadable`]).
/// [`begin_checkpoint`](Self::begin_checkpoint) returns a [`PendingCheckpoint`] whose stream
/// factory backends write through; [`PendingCheckpoint::commit`] writes `_metadata` last and
/// atomically, then subsumes checkpoints beyond `num_retained`, deleting only files that no
/// retained checkpoint references. Savepoint and task-owned files are never deleted.
///
/// Clones share the same state.
#[derive(Clone)]
pub struct CompletedCheckpointStore {
    inner: Arc<JobInner>,
}

impl fmt::Debug for CompletedCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletedCheckpointStore")
            .field("job_dir", &self.inner.job_dir)
            .field("epoch", &self.inner.lease.epoch())
            .field("retained", &self.checkpoint_ids())
            .finish_non_exhaustive()
    }
}

impl CompletedCheckpointStore {
    /// Takes the lease of `job_id`'s directory in `store` and recovers its completed
    /// checkpoints.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad job id; [`ErrorKind::Corrupted`] or
    /// [`ErrorKind::Unsupported`] naming the file when a `_metadata` newer than every
    /// complete checkpoint is unreadable (unless
    /// [`fallback_on_unreadable`](CheckpointConfig::fallback_on_unreadable)); storage errors
    /// while listing or reading, transient ones included.
    pub fn open(store: &CheckpointStore, job_id: &str, config: CheckpointConfig) -> Result<Self> {
        let job_dir = layout::job_dir(job_id)?;
        // The lease first, then the checkpoints: a writer fenced by this epoch can publish
        // nothing after the listing below without finding out (it re-checks after
        // publishing), so this writer knows every checkpoint it could subsume.
        let highest_dir = checkpoint_dirs(store, &job_dir)?
            .last()
            .map_or(0, |(id, _)| id.get());
        let first_id = highest_dir.checked_add(1).ok_or_else(|| {
            Error::corrupted("checkpoint id overflows").with_context("job", job_id)
        })?;
        let owner = format!(
            "pid {} at {}",
            std::process::id(),
            config.clock.now_millis()
        );
        let lease = Lease::acquire(store, &job_dir, first_id, &owner)?;
        let dirs = checkpoint_dirs(store, &job_dir)?;
        sync_job_dirs(store, &job_dir, &dirs)?;
        let lease_state = crate::lease::read_state(store, &job_dir)?;
        let classified = status::classify_listed(store, dirs, None, &lease_state)?;
        let mut retained = Vec::new();
        let keep_shared = classified.iter().any(|(_, _, st)| st.is_unreadable());
        for (id, dir, st) in &classified {
            match st {
                CheckpointDirStatus::Complete(done) => retained.push(Retained {
                    done: done.clone(),
                    foreign: false,
                }),
                CheckpointDirStatus::Corrupt(e) | CheckpointDirStatus::NewerFormat(e) => {
                    let newest_complete = retained.last().map_or(0, |r| r.done.id().get());
                    let newer_than_complete = classified.iter().all(|(other, _, s)| {
                        !matches!(s, CheckpointDirStatus::Complete(_)) || other < id
                    });
                    if newer_than_complete && !config.fallback_on_unreadable {
                        return Err(status::unreadable_newest(st, dir));
                    }
                    tracing::warn!(
                        path = %layout::metadata_path(dir),
                        error = %e,
                        newest_complete,
                        "skipping a checkpoint whose _metadata is unreadable; it is kept on storage"
                    );
                }
                CheckpointDirStatus::InProgress
                | CheckpointDirStatus::Abandoned
                | CheckpointDirStatus::Fenced(_) => {}
            }
        }
        // What this writer saw, before it restores anything (and so before any sink aborts
        // a transaction): a `_metadata` a fenced writer publishes from now on is late.
        let present: BTreeSet<u64> = classified
            .iter()
            .filter(|(_, _, st)| {
                matches!(st, CheckpointDirStatus::Complete(_)) || st.is_unreadable()
            })
            .map(|(id, _, _)| id.get())
            .collect();
        lease.publish_view(&present)?;
        for (_, _, st) in &classified {
            if let CheckpointDirStatus::Fenced(done) = st {
                tracing::warn!(path = %done.metadata_path, "deleting the _metadata of a checkpoint a fenced writer published after a newer writer took over; it was never reported complete");
                unpublish(store, done)?;
            }
        }
        lease.prune_views(&lease_state);
        Ok(CompletedCheckpointStore {
            inner: Arc::new(JobInner {
                store: store.clone(),
                job_id: job_id.to_owned(),
                job_dir,
                config,
                lease,
                state: Mutex::new(State {
                    retained,
                    keep_shared,
                    ..State::default()
                }),
            }),
        })
    }

    /// The epoch of this writer's lease on the job directory.
    pub fn epoch(&self) -> u64 {
        self.inner.lease.epoch()
    }

    /// The lowest checkpoint id no writer of this job directory has used or reserved: the
    /// id to continue with after a restart. Ids never repeat, not even those of checkpoints
    /// that were aborted and whose directories are gone.
    pub fn next_checkpoint_id(&self) -> CheckpointId {
        let latest = self.latest().map_or(0, |c| c.id().get().saturating_add(1));
        CheckpointId(self.inner.lease.first_id().max(latest))
    }

    /// Settles the checkpoints whose commit had an unknown outcome from what storage says
    /// now: complete ones become retained (so [`latest`](Self::latest) is never older than
    /// a checkpoint that did complete), absent ones are dropped.
    ///
    /// # Errors
    /// [`ErrorKind::OutcomeUnknown`] naming the `_metadata` that storage still cannot
    /// read; [`ErrorKind::Fenced`].
    pub fn settle_doubtful(&self) -> Result<()> {
        self.inner.lease.check("settle doubtful commits")?;
        let mut state = self.inner.state.lock();
        resolve_doubtful(&self.inner.store, &mut state);
        match state.doubtful.first() {
            Some(d) => Err(Error::new(
                ErrorKind::OutcomeUnknown,
                "storage cannot tell yet whether a checkpoint completed",
            )
            .with_context("path", &d.metadata_path)),
            None => Ok(()),
        }
    }

    /// Fails with [`ErrorKind::Fenced`] when another writer took the job directory's lease.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`]; storage errors.
    pub fn check_lease(&self) -> Result<()> {
        self.inner.lease.check("check the lease")
    }

    /// The job directory (`<job-id>/`).
    pub fn job_dir(&self) -> &str {
        &self.inner.job_dir
    }

    /// The ids of the retained checkpoints, ascending.
    pub fn checkpoint_ids(&self) -> Vec<CheckpointId> {
        self.inner
            .state
            .lock()
            .retained
            .iter()
            .map(|r| r.done.id())
            .collect()
    }

    /// The retained checkpoints, oldest first.
    pub fn checkpoints(&self) -> Vec<CompletedCheckpoint> {
        self.inner
            .state
            .lock()
            .retained
            .iter()
            .map(|r| r.done.clone())
            .collect()
    }

    /// The latest retained checkpoint.
    pub fn latest(&self) -> Option<CompletedCheckpoint> {
        self.inner
            .state
            .lock()
            .retained
            .last()
            .map(|r| r.done.clone())
    }

    /// Cleanup steps that failed (their files are left for garbage collection).
    pub fn cleanup_failures(&self) -> Vec<String> {
        self.inner.state.lock().cleanup_failures.clone()
    }

    /// Starts checkpoint `id`, which must be above every retained checkpoint.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a non-increasing id; [`ErrorKind::AlreadyExists`] when
    /// `chk-N/_metadata` exists; [`ErrorKind::Closed`] after [`terminate`](Self::terminate);
    /// [`ErrorKind::Fenced`] when another writer took the job directory's lease.
    pub fn begin_checkpoint(&self, id: CheckpointId) -> Result<PendingCheckpoint> {
        let inner = &self.inner;
        {
            let state = inner.state.lock();
            if state.terminated {
                return Err(Error::new(
                    ErrorKind::Closed,
                    "the job's checkpoint store was terminated",
                )
                .with_context("job", &inner.job_id));
            }
            if let Some(last) = state.retained.iter().map(|r| r.done.id()).max()
                && id <= last
            {
                return Err(Error::invalid_input("checkpoint ids must increase")
                    .with_context("checkpoint", id)
                    .with_context("latest", last));
            }
        }
        let dir = layout::checkpoint_dir(&inner.job_dir, id);
        // Reserved before anything is written for it: no later writer reuses the id.
        inner.lease.reserve(id)?;
        if inner.store.exists(&layout::metadata_path(&dir))? {
            return Err(
                Error::new(ErrorKind::AlreadyExists, "checkpoint is already complete")
                    .with_context("checkpoint", id)
                    .with_context("path", &dir),
            );
        }
        Ok(self.pending(id, SnapshotKind::Checkpoint, inner.job_dir.clone(), dir))
    }

    /// Starts a savepoint at checkpoint `id` in a new directory
    /// `<savepoint_parent>/savepoint-<6 of job id>-<random>/`. Savepoints are self-contained
    /// (every file inside the directory, paths relative to it) and never deleted
    /// automatically.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad directory.
    pub fn begin_savepoint(
        &self,
        id: CheckpointId,
        savepoint_parent: &str,
    ) -> Result<PendingCheckpoint> {
        let parent = layout::normalize_dir(savepoint_parent)?;
        let random: String = random_name().chars().take(12).collect();
        let dir = format!(
            "{parent}{}/",
            layout::savepoint_dir_name(&self.inner.job_id, &random)
        );
        Ok(self.pending(id, SnapshotKind::Savepoint, dir.clone(), dir))
    }

    fn pending(
        &self,
        id: CheckpointId,
        kind: SnapshotKind,
        base: String,
        dir: String,
    ) -> PendingCheckpoint {
        let config = &self.inner.config;
        let factory = StoreStreamFactory::new(
            self.inner.store.clone(),
            id,
            base,
            kind == SnapshotKind::Savepoint,
            config.inline_threshold,
            config.write_chunk_size,
        );
        PendingCheckpoint {
            job: self.clone(),
            id,
            kind,
            dir,
            trigger_timestamp_ms: config.clock.now_millis(),
            factory: Arc::new(factory),
            operators: Vec::new(),
            finished: false,
        }
    }

    /// Registers a restore point with `mode` (see [`ClaimMode`]) and returns a reader for its
    /// handles. `Claim` of a checkpoint makes it owned: it is subsumed (deleted) like this
    /// job's own checkpoints. Either way, new checkpoints can only reference files this job
    /// wrote, so the first checkpoint after a restore from elsewhere is full.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for `NoClaim` of a checkpoint inside this job's own
    /// directory (its files are this job's: use `Claim`).
    pub fn restore(
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

    /// The job terminated: applies the cleanup policy ([`CleanupPolicy::deletes_on`]). When
    /// it deletes, every retained checkpoint goes (`_metadata` first), then what is left in
    /// `shared/` and in `chk-*/`; `taskowned/` and savepoints are never touched, and neither
    /// is a `chk-N/` whose `_metadata` is unreadable (corrupt, or of a newer format) nor, while
    /// one exists, `shared/`. A fenced writer deletes nothing. Afterwards no new checkpoint
    /// can begin.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`]; storage errors of the deletion (what is left is garbage for
    /// `gc`).
    pub fn terminate(&self, status: JobStatus) -> Result<()> {
        let inner = &self.inner;
        let mut state = inner.state.lock();
        state.terminated = true;
        if !inner.config.cleanup.deletes_on(status) {
            return Ok(());
        }
        inner.lease.check("clean up on termination")?;
        let mut retained = std::mem::take(&mut state.retained);
        retained.append(&mut state.discarding);
        let doubtful = std::mem::take(&mut state.doubtful);
        drop(state);
        let classified = status::classify_job(&inner.store, &inner.job_dir, None)?;
        let retained_dirs: BTreeSet<String> = retained.iter().map(|r| r.done.dir()).collect();
        // Anything on storage this job cannot account for may reference shared files.
        let unreadable = classified.iter().any(|(_, dir, st)| {
            st.is_unreadable()
                || matches!(st, CheckpointDirStatus::Complete(_)) && !retained_dirs.contains(dir)
        });
        // A checkpoint whose commit had an unknown outcome may be complete: keep its files.
        let keep: BTreeSet<String> = doubtful
            .iter()
            .flat_map(CompletedCheckpoint::file_paths)
            .map(|(p, _)| p)
            .collect();
        for r in &retained {
            inner.store.delete(&r.done.metadata_path)?;
        }
        inner.store.sync_dirs(
            retained
                .iter()
                .map(|r| r.done.dir())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )?;
        for r in &retained {
            delete_files(&inner.store, &r.done, &keep, !r.foreign, unreadable)?;
        }
        for (_, dir, st) in classified {
            match st {
                CheckpointDirStatus::Corrupt(_) | CheckpointDirStatus::NewerFormat(_) => {}
                CheckpointDirStatus::Complete(done) => {
                    if !retained_dirs.contains(&dir) {
                        // Not this job's (a doubtful commit that completed, or another writer's).
                        tracing::warn!(path = %done.metadata_path, "keeping a complete checkpoint this job did not retain");
                    }
                }
                CheckpointDirStatus::InProgress
                | CheckpointDirStatus::Abandoned
                | CheckpointDirStatus::Fenced(_) => {
                    for e in inner.store.list(&dir, true)? {
                        if !e.is_dir && !keep.contains(&e.path) {
                            inner.store.delete(&e.path)?;
                        }
                    }
                    inner.store.delete_dir_if_empty(&dir);
                }
            }
        }
        let shared = layout::shared_dir(&inner.job_dir);
        if !unreadable {
            for e in inner.store.list(&shared, true)? {
                if !e.is_dir && !keep.contains(&e.path) {
                    inner.store.delete(&e.path)?;
                }
            }
            inner.store.delete_dir_if_empty(&shared);
        }
        inner.store.delete_dir_if_empty(&inner.job_dir);
        Ok(())
    }
}

/// The first step of deleting a checkpoint that is no longer retained: its `_metadata`,
/// and its directory synced, so that no crash or power cut leaves a `_metadata` whose files
/// are gone. Savepoints are never deleted. An error leaves the outcome unknown: the
/// `_metadata` may still be there, and every file it references must stay.
fn unpublish(store: &CheckpointStore, done: &CompletedCheckpoint) -> Result<()> {
    if done.metadata.kind == SnapshotKind::Savepoint {
        return Ok(());
    }
    store.delete(&done.metadata_path)?;
    store.sync_dirs([done.dir().as_str()])
}

/// The second step, once [`unpublish`] succeeded: deletes the checkpoint's files that are
/// not in `live` (never task-owned files, never savepoints' files), then the rest of its own
/// `chk-N/`.
fn delete_files(
    store: &CheckpointStore,
    done: &CompletedCheckpoint,
    live: &BTreeSet<String>,
    own_dir: bool,
    keep_shared: bool,
) -> Result<()> {
    if done.metadata.kind == SnapshotKind::Savepoint {
        return Ok(());
    }
    // Kill point: `_metadata` is deleted, every file is still there (`failpoints`).
    #[cfg(feature = "failpoints")]
    fail::fail_point!("discard-after-metadata-delete", |_| kill_point(
        "discard-after-metadata-delete"
    ));
    for (path, scope) in done.file_paths() {
        if scope != StateScope::TaskOwned
            && !(keep_shared && scope == StateScope::Shared)
            && !live.contains(&path)
        {
            store.delete(&path)?;
            // Kill point: after each file deleted (`1*return`: after the first one).
            #[cfg(feature = "failpoints")]
            fail::fail_point!("discard-mid-files", |_| kill_point("discard-mid-files"));
        }
    }
    if own_dir {
        let dir = done.dir();
        for e in store.list(&dir, true)? {
            if !e.is_dir && !live.contains(&e.path) {
                store.delete(&e.path)?;
            }
        }
        store.delete_dir_if_empty(&dir);
    }
    Ok(())
}

/// Every file that must not be deleted: those of the retained checkpoints and of the
/// checkpoints whose commit had an unknown outcome.
fn live_files(state: &State) -> BTreeSet<String> {
    state
        .retained
        .iter()
        .map(|r| &r.done)
        .chain(state.doubtful.iter())
        .chain(state.discarding.iter().map(|r| &r.done))
        .flat_map(CompletedCheckpoint::file_paths)
        .map(|(p, _)| p)
        .collect()
}

/// A kill point was reached (feature `failpoints`): says so on stderr and waits, doing
/// nothing more, for the test to kill the process (`SIGKILL`: no destructor, no cleanup).
/// The process's other threads go on meanwhile, as they would when a kill arrives.
#[cfg(feature = "failpoints")]
fn kill_point(name: &str) -> ! {
    eprintln!("kill point {name}: waiting to be killed");
    loop {
        std::thread::park();
    }
}

/// What reading a `_metadata` back after a failed commit says.
enum ReadBack {
    /// It holds exactly the bytes this writer wrote, and its name is durable: the commit
    /// took effect.
    Ours,
    /// It holds another writer's checkpoint.
    Theirs,
    /// There is none: the commit did not take effect.
    Absent,
    /// It could not be read, or its name not made durable: the outcome stays unknown.
    Unknown(Error),
}

fn read_back(store: &CheckpointStore, path: &str, written: &[u8]) -> ReadBack {
    match store.read_small(path, status::MAX_METADATA_FILE) {
        // The failed commit may have failed at the directory sync after the write: a
        // `_metadata` that is there but could vanish at a power cut is not complete yet.
        Ok(bytes) if bytes == written => match store.sync_dirs([layout::parent_dir(path).as_str()])
        {
            Ok(()) => ReadBack::Ours,
            Err(e) => ReadBack::Unknown(e),
        },
        Ok(_) => ReadBack::Theirs,
        Err(e) if e.kind() == ErrorKind::NotFound => ReadBack::Absent,
        Err(e) => ReadBack::Unknown(e),
    }
}

/// A checkpoint or savepoint being written. Backends write through
/// [`stream_factory`](Self::stream_factory); the handles they return are added per subtask;
/// [`commit`](Self::commit) writes `_metadata`. Dropping it uncommitted aborts it.
pub struct PendingCheckpoint {
    job: CompletedCheckpointStore,
    id: CheckpointId,
    kind: SnapshotKind,
    dir: String,
    trigger_timestamp_ms: u64,
    factory: Arc<StoreStreamFactory>,
    operators: Vec<OperatorState>,
    finished: bool,
}

impl fmt::Debug for PendingCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCheckpoint")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PendingCheckpoint {
    /// The checkpoint id.
    pub fn id(&self) -> CheckpointId {
        self.id
    }

    /// The directory `_metadata` will be written to.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The stream factory backends write this checkpoint's state through.
    pub fn stream_factory(&self) -> Arc<StoreStreamFactory> {
        self.factory.clone()
    }

    /// Adds (merges) the state of one subtask of an operator.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the operator was added with another parallelism,
    /// max parallelism or name, or the index is not below the parallelism.
    pub fn add_subtask_state(
        &mut self,
        uid: &str,
        name: &str,
        parallelism: u32,
        max_parallelism: u32,
        subtask: u32,
        state: SubtaskState,
    ) -> Result<()> {
        if subtask >= parallelism {
            return Err(
                Error::invalid_input("subtask index not below the parallelism")
                    .with_context("operator", uid)
                    .with_context("subtask", subtask)
                    .with_context("parallelism", parallelism),
            );
        }
        let op = match self.operators.iter_mut().position(|o| o.uid == uid) {
            Some(i) => &mut self.operators[i],
            None => {
                self.operators
                    .push(OperatorState::new(uid, name, parallelism, max_parallelism));
                let last = self.operators.len() - 1;
                &mut self.operators[last]
            }
        };
        if op.parallelism != parallelism || op.max_parallelism != max_parallelism || op.name != name
        {
            return Err(
                Error::invalid_input("operator added twice with different properties")
                    .with_context("operator", uid)
                    .with_context(
                        "parallelism",
                        format!("{} vs {parallelism}", op.parallelism),
                    )
                    .with_context(
                        "max_parallelism",
                        format!("{} vs {max_parallelism}", op.max_parallelism),
                    ),
            );
        }
        op.subtasks.entry(subtask).or_default().merge(state);
        Ok(())
    }

    /// Commits: checks that every referenced file was written by this job (or, for shared
    /// files, is referenced by a retained checkpoint of this job) and that this writer still
    /// holds the job directory's lease, makes the written files' directories durable, writes
    /// `_metadata` last and atomically, then (for checkpoints) registers it and subsumes
    /// checkpoints beyond `num_retained`.
    ///
    /// When the `_metadata` write fails, `_metadata` is read back to learn what happened:
    /// holding these bytes, the checkpoint completed (and `commit` succeeds); absent or
    /// another writer's, the checkpoint is aborted and its files deleted; unreadable, the
    /// outcome is unknown: nothing is deleted, the error is [`ErrorKind::OutcomeUnknown`],
    /// every file the checkpoint references stays live, and the next commit (or the next
    /// [`CompletedCheckpointStore::open`]) finds out from storage. Every earlier checkpoint
    /// stays restorable in every case.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a reference to a file this job did not write (such as a
    /// file of a `NoClaim` restore), or an id not above the latest retained checkpoint;
    /// [`ErrorKind::Fenced`] when another writer took the lease (nothing is deleted; when
    /// that is found after `_metadata` was published, the checkpoint stays on storage);
    /// [`ErrorKind::OutcomeUnknown`]; storage and encoding errors.
    pub fn commit(mut self) -> Result<CompletedCheckpoint> {
        self.finished = true;
        match self.try_commit() {
            Ok(done) => Ok(done),
            Err(Failure::Clean(e)) => {
                let live = live_files(&self.job.inner.state.lock());
                let _ = self.cleanup_written(&live);
                Err(e.with_context("checkpoint", self.id))
            }
            Err(Failure::Keep(e)) => Err(e.with_context("checkpoint", self.id)),
        }
    }

    fn try_commit(&mut self) -> std::result::Result<CompletedCheckpoint, Failure> {
        let inner = self.job.inner.clone();
        let metadata = CheckpointMetadata {
            format_version: FORMAT_VERSION,
            checkpoint_id: self.id,
            job_id: inner.job_id.clone(),
            kind: self.kind,
            trigger_timestamp_ms: self.trigger_timestamp_ms,
            completed_timestamp_ms: inner.config.clock.now_millis(),
            operators: std::mem::take(&mut self.operators),
        };
        let bytes = codec::encode(&metadata, inner.config.compression).map_err(Failure::Clean)?;
        let done = CompletedCheckpoint {
            metadata: Arc::new(metadata),
            metadata_path: layout::metadata_path(&self.dir),
            base_dir: self.factory.base_dir().to_owned(),
        };
        let written: BTreeSet<String> = self
            .factory
            .written()
            .into_iter()
            .map(|w| layout::join(&done.base_dir, &w.rel))
            .collect();

        let mut state = inner.state.lock();
        if state.terminated {
            return Err(Failure::Clean(Error::new(
                ErrorKind::Closed,
                "the job's checkpoint store was terminated",
            )));
        }
        // A fenced writer deletes nothing, not even its own files.
        inner.lease.check("commit").map_err(Failure::Keep)?;
        resolve_doubtful(&inner.store, &mut state);
        if self.kind == SnapshotKind::Checkpoint
            && let Some(latest) = state.retained.iter().map(|r| r.done.id()).max()
            && self.id <= latest
        {
            return Err(Failure::Clean(
                Error::invalid_input(
                    "checkpoint is not newer than the latest completed one (it was subsumed)",
                )
                .with_context("latest", latest),
            ));
        }
        let owned_live: BTreeSet<String> = state
            .retained
            .iter()
            .filter(|r| !r.foreign)
            .flat_map(|r| r.done.file_paths())
            .filter(|(_, scope)| *scope == StateScope::Shared)
            .map(|(p, _)| p)
            .collect();
        for (path, scope) in done.file_paths() {
            let ok = match scope {
                StateScope::TaskOwned => self.kind == SnapshotKind::Checkpoint,
                StateScope::Shared if self.kind == SnapshotKind::Checkpoint => {
                    written.contains(&path) || owned_live.contains(&path)
                }
                _ => written.contains(&path),
            };
            if !ok {
                return Err(Failure::Clean(
                    Error::invalid_input(
                        "checkpoint references a file this job did not write (a NoClaim restore's file, \
                         or one no longer retained); the first checkpoint after a restore must be full",
                    )
                    .with_context("path", path)
                    .with_context("scope", format!("{scope:?}")),
                ));
            }
        }

        // Every directory entry `_metadata` depends on is durable before it is published.
        let dirs: BTreeSet<String> = written
            .iter()
            .map(|w| layout::parent_dir(w))
            .chain([self.dir.clone()])
            .collect();
        inner
            .store
            .sync_dirs(dirs.iter().map(String::as_str))
            .map_err(Failure::Clean)?;

        // Kill point: the files are written and synced, `_metadata` is not (`failpoints`).
        #[cfg(feature = "failpoints")]
        fail::fail_point!("commit-before-metadata", |_| kill_point(
            "commit-before-metadata"
        ));
        if let Err(e) = inner.store.commit_metadata(&self.dir, bytes.clone()) {
            match read_back(&inner.store, &done.metadata_path, &bytes) {
                ReadBack::Ours => {
                    tracing::warn!(path = %done.metadata_path, error = %e, "the _metadata write reported an error but took effect: the checkpoint is complete");
                }
                ReadBack::Theirs | ReadBack::Absent => return Err(Failure::Clean(e)),
                ReadBack::Unknown(read_error) => {
                    tracing::warn!(path = %done.metadata_path, error = %e, read_back = %read_error, "the outcome of a _metadata commit is unknown: keeping every file");
                    if self.kind == SnapshotKind::Checkpoint {
                        state.doubtful.push(done.clone());
                    }
                    return Err(Failure::Keep(
                        Error::new(
                            ErrorKind::OutcomeUnknown,
                            "the _metadata commit failed and reading it back failed too: the checkpoint may or may not be complete; its files are kept",
                        )
                        .with_context("path", &done.metadata_path)
                        .with_context("commit error", e)
                        .with_context("read-back error", read_error),
                    ));
                }
            }
        }
        // Kill point: `_metadata` is published, the checkpoint not yet registered nor
        // anything subsumed (`failpoints`).
        #[cfg(feature = "failpoints")]
        fail::fail_point!("commit-after-metadata", |_| kill_point(
            "commit-after-metadata"
        ));

        if self.kind == SnapshotKind::Savepoint {
            drop(state);
            return Ok(done);
        }
        state.retained.push(Retained {
            done: done.clone(),
            foreign: false,
        });
        state.retained.sort_by_key(|r| r.done.id());
        // Published: if another writer took over meanwhile, it may not have seen this
        // checkpoint, so nothing is deleted by this writer any more.
        if let Err(e) = inner.lease.check("subsume after commit") {
            return Err(Failure::Keep(
                e.with_context("committed", &done.metadata_path),
            ));
        }
        let excess = state
            .retained
            .len()
            .saturating_sub(inner.config.num_retained);
        let mut subsumed = std::mem::take(&mut state.discarding);
        subsumed.extend(state.retained.drain(..excess));
        // Every subsumed `_metadata` first: one that cannot be deleted stays on storage, and
        // so do its files (live below), until the next subsumption tries again.
        let mut unpublished = Vec::new();
        for r in subsumed {
            match unpublish(&inner.store, &r.done) {
                Ok(()) => unpublished.push(r),
                Err(e) => {
                    state.cleanup_failures.push(e.to_string());
                    state.discarding.push(r);
                }
            }
        }
        let live = live_files(&state);
        // Files written for this checkpoint but not referenced (dropped streams).
        for w in &written {
            if !live.contains(w)
                && !is_task_owned(&done.base_dir, w)
                && let Err(e) = inner.store.delete(w)
            {
                state.cleanup_failures.push(e.to_string());
            }
        }
        for r in unpublished {
            if let Err(e) =
                delete_files(&inner.store, &r.done, &live, !r.foreign, state.keep_shared)
            {
                state.cleanup_failures.push(e.to_string());
            }
        }
        Ok(done)
    }

    /// Aborts: deletes what this checkpoint wrote (not task-owned files, not files a retained
    /// checkpoint references) and its directory. A fenced writer deletes nothing.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`]; storage errors (what is left is garbage for `gc`).
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        let live = live_files(&self.job.inner.state.lock());
        self.cleanup_written(&live)
    }

    fn cleanup_written(&self, live: &BTreeSet<String>) -> Result<()> {
        let store = &self.job.inner.store;
        self.job
            .inner
            .lease
            .check("delete an aborted checkpoint's files")?;
        let base = self.factory.base_dir();
        let mut first_error = None;
        for w in self.factory.written() {
            let path = layout::join(base, &w.rel);
            if w.scope == StateScope::TaskOwned && self.kind == SnapshotKind::Checkpoint
                || live.contains(&path)
            {
                continue;
            }
            if let Err(e) = store.delete(&path) {
                first_error.get_or_insert(e);
            }
        }
        if !store
            .exists(&layout::metadata_path(&self.dir))
            .unwrap_or(true)
        {
            store.delete_dir_if_empty(&self.dir);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Why a commit failed, and so whether its files may be deleted.
enum Failure {
    /// The checkpoint is certainly not complete: delete what it wrote.
    Clean(Error),
    /// Its outcome is unknown, or this writer is fenced: delete nothing.
    Keep(Error),
}

/// Settles the checkpoints whose commit had an unknown outcome, from what storage says now:
/// complete ones become retained, absent ones are dropped (their files become garbage for
/// `gc`, as this writer can no longer tell them from a retained checkpoint's), unreadable
/// ones stay doubtful.
fn resolve_doubtful(store: &CheckpointStore, state: &mut State) {
    let doubtful = std::mem::take(&mut state.doubtful);
    for done in doubtful {
        match load_completed(store, &done.metadata_path) {
            Ok(found) if found.metadata == done.metadata => {
                tracing::info!(path = %done.metadata_path, "a checkpoint whose commit outcome was unknown is complete");
                state.retained.push(Retained {
                    done: found,
                    foreign: false,
                });
                state.retained.sort_by_key(|r| r.done.id());
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::info!(path = %done.metadata_path, "a checkpoint whose commit outcome was unknown did not complete");
            }
            Err(_) => state.doubtful.push(done),
        }
    }
}

fn is_task_owned(base: &str, path: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rel| layout::classify_job_path(rel) == layout::JobPath::TaskOwned)
}

impl Drop for PendingCheckpoint {
    fn drop(&mut self) {
        if !self.finished {
            self.finished = true;
            let live = live_files(&self.job.inner.state.lock());
            let _ = self.cleanup_written(&live);
        }
    }
}
