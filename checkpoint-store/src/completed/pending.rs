//! [`PendingCheckpoint`], a checkpoint or savepoint being written, and the commit protocol:
//! checks, `_metadata` written last and atomically, read back when its write fails, then
//! subsumption of the checkpoints beyond `num_retained`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result, StateScope, SubtaskState};

use super::checkpoint::CompletedCheckpoint;
use super::job::CompletedCheckpointStore;
#[cfg(feature = "failpoints")]
use super::retention::fail_point;
use super::retention::{Retained, delete_files, live_files, resolve_doubtful, unpublish};
use crate::codec;
use crate::layout;
use crate::metadata::{
    CheckpointMetadata, FORMAT_VERSION, OperatorSpec, OperatorState, SnapshotKind,
};
use crate::status;
use crate::store::{CheckpointStore, StoreStreamFactory, in_runtime, random_name};

impl CompletedCheckpointStore {
    /// Starts checkpoint `id`, which must be above every retained checkpoint and at least
    /// [`next_checkpoint_id`](Self::next_checkpoint_id) at open: ids below it were reserved
    /// by older writers of the job.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a non-increasing id or one an older writer reserved
    /// (naming it and this writer's first id); [`ErrorKind::AlreadyExists`] when
    /// `chk-N/_metadata` exists; [`ErrorKind::Closed`] after [`terminate`](Self::terminate);
    /// [`ErrorKind::Fenced`] when another writer took the job directory's lease.
    pub fn begin_checkpoint(&self, id: CheckpointId) -> Result<PendingCheckpoint> {
        self.inner.store.block_on(self.begin_checkpoint_async(id))
    }

    /// [`begin_checkpoint`](Self::begin_checkpoint), async.
    pub(crate) async fn begin_checkpoint_async(
        &self,
        id: CheckpointId,
    ) -> Result<PendingCheckpoint> {
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
        inner.lease.reserve(id).await?;
        if inner
            .store
            .exists_async(&layout::metadata_path(&dir))
            .await?
        {
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

async fn read_back(store: &CheckpointStore, path: &str, written: &[u8]) -> ReadBack {
    match store
        .read_small_async(path, status::MAX_METADATA_FILE)
        .await
    {
        // The failed commit may have failed at the directory sync after the write: a
        // `_metadata` that is there but could vanish at a power cut is not complete yet.
        Ok(bytes) if bytes == written => match store
            .sync_dirs_async([layout::parent_dir(path).as_str()])
            .await
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
        operator: &OperatorSpec,
        subtask: u32,
        state: SubtaskState,
    ) -> Result<()> {
        let (uid, name) = (operator.uid.as_str(), operator.name.as_str());
        let (parallelism, max_parallelism) = (operator.parallelism, operator.max_parallelism);
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
    pub fn commit(self) -> Result<CompletedCheckpoint> {
        let store = self.job.inner.store.clone();
        store.block_on(self.commit_async())
    }

    /// [`commit`](Self::commit), async.
    pub(crate) async fn commit_async(mut self) -> Result<CompletedCheckpoint> {
        self.finished = true;
        match self.try_commit().await {
            Ok(done) => Ok(done),
            Err(Failure::Clean(e)) => {
                let live = live_files(&self.job.inner.state.lock());
                let _ = self.cleanup().cleanup_written(&live).await;
                Err(e.with_context("checkpoint", self.id))
            }
            Err(Failure::Keep(e)) => Err(e.with_context("checkpoint", self.id)),
        }
    }

    async fn try_commit(&mut self) -> std::result::Result<CompletedCheckpoint, Failure> {
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

        // One commit (or other change of the retained checkpoints) at a time; `state` is only
        // held for the in-memory steps below, never across storage I/O.
        let _writer = inner.writer.lock().await;
        if inner.state.lock().terminated {
            return Err(Failure::Clean(Error::new(
                ErrorKind::Closed,
                "the job's checkpoint store was terminated",
            )));
        }
        // A fenced writer deletes nothing, not even its own files.
        inner.lease.check("commit").await.map_err(Failure::Keep)?;
        resolve_doubtful(&inner.store, &inner.state).await;
        let owned_live: BTreeSet<String> = {
            let state = inner.state.lock();
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
            state
                .retained
                .iter()
                .filter(|r| !r.foreign)
                .flat_map(|r| r.done.file_paths())
                .filter(|(_, scope)| *scope == StateScope::Shared)
                .map(|(p, _)| p)
                .collect()
        };
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
            .sync_dirs_async(dirs.iter().map(String::as_str))
            .await
            .map_err(Failure::Clean)?;

        // Kill point: the files are written and synced, `_metadata` is not (`failpoints`).
        #[cfg(feature = "failpoints")]
        fail_point("commit-before-metadata");
        if let Err(e) = inner
            .store
            .commit_metadata_async(&self.dir, bytes.clone())
            .await
        {
            match read_back(&inner.store, &done.metadata_path, &bytes).await {
                ReadBack::Ours => {
                    tracing::warn!(path = %done.metadata_path, error = %e, "the _metadata write reported an error but took effect: the checkpoint is complete");
                }
                ReadBack::Theirs | ReadBack::Absent => return Err(Failure::Clean(e)),
                ReadBack::Unknown(read_error) => {
                    tracing::warn!(path = %done.metadata_path, error = %e, read_back = %read_error, "the outcome of a _metadata commit is unknown: keeping every file");
                    if self.kind == SnapshotKind::Checkpoint {
                        inner.state.lock().doubtful.push(done.clone());
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
        fail_point("commit-after-metadata");

        if self.kind == SnapshotKind::Savepoint {
            return Ok(done);
        }
        {
            let mut state = inner.state.lock();
            state.retained.push(Retained {
                done: done.clone(),
                foreign: false,
            });
            state.retained.sort_by_key(|r| r.done.id());
        }
        // Published: if another writer took over meanwhile, it may not have seen this
        // checkpoint, so nothing is deleted by this writer any more.
        if let Err(e) = inner.lease.check("subsume after commit").await {
            return Err(Failure::Keep(
                e.with_context("committed", &done.metadata_path),
            ));
        }
        let subsumed = {
            let mut state = inner.state.lock();
            let excess = state
                .retained
                .len()
                .saturating_sub(inner.config.num_retained);
            let mut subsumed = std::mem::take(&mut state.discarding);
            subsumed.extend(state.retained.drain(..excess));
            subsumed
        };
        // Every subsumed `_metadata` first: one that cannot be deleted stays on storage, and
        // so do its files (live below), until the next subsumption tries again.
        let mut failures = Vec::new();
        let mut unpublished = Vec::new();
        let mut still_published = Vec::new();
        for r in subsumed {
            match unpublish(&inner.store, &r.done).await {
                Ok(()) => unpublished.push(r),
                Err(e) => {
                    failures.push(e.to_string());
                    still_published.push(r);
                }
            }
        }
        let (live, keep_shared) = {
            let mut state = inner.state.lock();
            state.discarding.extend(still_published);
            (live_files(&state), state.keep_shared)
        };
        // Files written for this checkpoint but not referenced (dropped streams).
        for w in &written {
            if !live.contains(w)
                && !is_task_owned(&done.base_dir, w)
                && let Err(e) = inner.store.delete_async(w).await
            {
                failures.push(e.to_string());
            }
        }
        for r in unpublished {
            if let Err(e) =
                delete_files(&inner.store, &r.done, &live, !r.foreign, keep_shared).await
            {
                failures.push(e.to_string());
            }
        }
        if !failures.is_empty() {
            inner.state.lock().cleanup_failures.extend(failures);
        }
        Ok(done)
    }

    /// Aborts: deletes what this checkpoint wrote (not task-owned files, not files a retained
    /// checkpoint references) and its directory. A fenced writer deletes nothing.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`]; storage errors (what is left is garbage for `gc`).
    pub fn abort(self) -> Result<()> {
        let store = self.job.inner.store.clone();
        store.block_on(self.abort_async())
    }

    /// [`abort`](Self::abort), async.
    pub(crate) async fn abort_async(mut self) -> Result<()> {
        self.finished = true;
        let _writer = self.job.inner.writer.lock().await;
        let live = live_files(&self.job.inner.state.lock());
        self.cleanup().cleanup_written(&live).await
    }

    /// What deleting this checkpoint's files needs, owned (a dropped checkpoint's cleanup
    /// may run as a task of its own).
    fn cleanup(&self) -> Cleanup {
        Cleanup {
            job: self.job.clone(),
            factory: self.factory.clone(),
            kind: self.kind,
            dir: self.dir.clone(),
        }
    }
}

/// The files of an uncommitted checkpoint, to delete.
struct Cleanup {
    job: CompletedCheckpointStore,
    factory: Arc<StoreStreamFactory>,
    kind: SnapshotKind,
    dir: String,
}

impl Cleanup {
    async fn cleanup_written(&self, live: &BTreeSet<String>) -> Result<()> {
        let store = &self.job.inner.store;
        self.job
            .inner
            .lease
            .check("delete an aborted checkpoint's files")
            .await?;
        let base = self.factory.base_dir();
        let mut first_error = None;
        for w in self.factory.written() {
            let path = layout::join(base, &w.rel);
            if w.scope == StateScope::TaskOwned && self.kind == SnapshotKind::Checkpoint
                || live.contains(&path)
            {
                continue;
            }
            if let Err(e) = store.delete_async(&path).await {
                first_error.get_or_insert(e);
            }
        }
        if !store
            .exists_async(&layout::metadata_path(&self.dir))
            .await
            .unwrap_or(true)
        {
            store.delete_dir_if_empty_async(&self.dir).await;
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

fn is_task_owned(base: &str, path: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rel| layout::classify_job_path(rel) == layout::JobPath::TaskOwned)
}

impl Drop for PendingCheckpoint {
    /// Aborts an uncommitted checkpoint (without the job's writer lock, as it always did):
    /// on the calling thread outside a tokio runtime; inside one, where a destructor cannot
    /// wait, as a task on the shared I/O runtime that finishes later.
    fn drop(&mut self) {
        if !self.finished {
            self.finished = true;
            let live = live_files(&self.job.inner.state.lock());
            let cleanup = self.cleanup();
            let task = async move {
                let _ = cleanup.cleanup_written(&live).await;
            };
            if in_runtime() {
                crate::store::spawn_detached(task);
            } else {
                let _ = self.job.inner.store.block_on(async {
                    task.await;
                    Ok(())
                });
            }
        }
    }
}
