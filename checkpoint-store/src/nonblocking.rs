//! The checkpoint store from async code.
//!
//! The store's storage operations are implemented once, `async`, over OpenDAL's async
//! operator (the async core); [`CompletedCheckpointStore`] and the other blocking types are
//! a thin layer over that core, which block the calling thread until it is done (see
//! [`CheckpointStore`]'s "Blocking"). [`AsyncCheckpointStore`] offers the same operations as
//! `async` methods that run the core directly, with no thread blocked: each operation runs
//! as a task on the small tokio runtime the store shares with every store of the process
//! (where OpenDAL's connections live), and the caller awaits it from any tokio runtime,
//! multi-threaded or current-thread. Dropping such a future does not stop the operation: a
//! commit or deletion that started runs to its end, as it would in the blocking API.
//!
//! The blocking methods work inside a tokio runtime too (they never panic there): on its
//! blocking pool (`tokio::task::spawn_blocking`) as any blocking call does, and on a worker
//! thread by blocking that worker until the storage operation is done, which is what this
//! type avoids.
//!
//! State streams ([`PendingCheckpoint::stream_factory`]) are written with
//! [`std::io::Write`] and read with [`std::io::Read`]: write and read them where blocking is
//! allowed, e.g. in the snapshot's asynchronous phase run with
//! `tokio::task::spawn_blocking`, never on a runtime's worker thread.
//!
//! ```
//! use cornerstone_backend_api::CheckpointId;
//! use cornerstone_checkpoint_store::nonblocking::AsyncCheckpointStore;
//! use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore};
//!
//! # fn main() -> cornerstone_backend_api::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! rt.block_on(async {
//!     let store = CheckpointStore::local(dir.path())?;
//!     let job = AsyncCheckpointStore::open(store, "job", CheckpointConfig::default()).await?;
//!     let pending = job.begin_checkpoint(CheckpointId(1)).await?;
//!     let done = job.commit(pending).await?;
//!     assert_eq!(job.latest().map(|c| c.id()), Some(done.id()));
//!     Ok(())
//! })
//! # }
//! ```

use cornerstone_backend_api::{CheckpointId, Result};

use crate::completed::{
    CheckpointConfig, ClaimMode, CompletedCheckpoint, CompletedCheckpointStore, JobStatus,
    PendingCheckpoint,
};
use crate::store::{CheckpointStore, StoreStateReader, spawn_io};

/// [`CompletedCheckpointStore`] with `async` methods, usable on any tokio runtime: the
/// store's async core, with no thread blocked (see the [module](self) docs).
///
/// Clones share the same state, and so do the blocking store behind it
/// ([`blocking`](Self::blocking)) and its clones.
#[derive(Debug, Clone)]
pub struct AsyncCheckpointStore {
    store: CheckpointStore,
    inner: CompletedCheckpointStore,
}

impl AsyncCheckpointStore {
    /// [`CompletedCheckpointStore::open`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::open`].
    pub async fn open(
        store: CheckpointStore,
        job_id: impl Into<String>,
        config: CheckpointConfig,
    ) -> Result<Self> {
        let job_id = job_id.into();
        let opened = store.clone();
        let inner = spawn_io(async move {
            CompletedCheckpointStore::open_async(&opened, &job_id, config).await
        })
        .await?;
        Ok(AsyncCheckpointStore { store, inner })
    }

    /// The blocking store behind this one, sharing its state (for code that runs on a
    /// thread outside any tokio runtime, and for the methods that do no storage I/O).
    pub fn blocking(&self) -> &CompletedCheckpointStore {
        &self.inner
    }

    /// [`CompletedCheckpointStore::begin_checkpoint`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::begin_checkpoint`].
    pub async fn begin_checkpoint(&self, id: CheckpointId) -> Result<PendingCheckpoint> {
        let job = self.inner.clone();
        spawn_io(async move { job.begin_checkpoint_async(id).await }).await
    }

    /// [`CompletedCheckpointStore::begin_savepoint`] (no storage access).
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::begin_savepoint`].
    pub async fn begin_savepoint(
        &self,
        id: CheckpointId,
        savepoint_parent: impl Into<String>,
    ) -> Result<PendingCheckpoint> {
        self.inner.begin_savepoint(id, &savepoint_parent.into())
    }

    /// [`PendingCheckpoint::commit`].
    ///
    /// # Errors
    /// As [`PendingCheckpoint::commit`].
    pub async fn commit(&self, pending: PendingCheckpoint) -> Result<CompletedCheckpoint> {
        spawn_io(pending.commit_async()).await
    }

    /// [`PendingCheckpoint::abort`].
    ///
    /// # Errors
    /// As [`PendingCheckpoint::abort`].
    pub async fn abort(&self, pending: PendingCheckpoint) -> Result<()> {
        spawn_io(pending.abort_async()).await
    }

    /// [`CompletedCheckpointStore::latest`] (in memory: no storage access).
    pub fn latest(&self) -> Option<CompletedCheckpoint> {
        self.inner.latest()
    }

    /// [`CheckpointStore::resolve`] in this job's store: a checkpoint or savepoint to
    /// restore, by path.
    ///
    /// # Errors
    /// As [`CheckpointStore::resolve`].
    pub async fn resolve(&self, path: impl Into<String>) -> Result<CompletedCheckpoint> {
        let store = self.store.clone();
        let path = path.into();
        spawn_io(async move { store.resolve_async(&path).await }).await
    }

    /// [`CompletedCheckpointStore::restore`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::restore`].
    pub async fn restore(
        &self,
        point: CompletedCheckpoint,
        mode: ClaimMode,
    ) -> Result<StoreStateReader> {
        let job = self.inner.clone();
        spawn_io(async move { job.restore_async(&point, mode).await }).await
    }

    /// [`CompletedCheckpointStore::settle_doubtful`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::settle_doubtful`].
    pub async fn settle_doubtful(&self) -> Result<()> {
        let job = self.inner.clone();
        spawn_io(async move { job.settle_doubtful_async().await }).await
    }

    /// [`CompletedCheckpointStore::check_lease`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::check_lease`].
    pub async fn check_lease(&self) -> Result<()> {
        let job = self.inner.clone();
        spawn_io(async move { job.check_lease_async().await }).await
    }

    /// [`CompletedCheckpointStore::terminate`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::terminate`].
    pub async fn terminate(&self, status: JobStatus) -> Result<()> {
        let job = self.inner.clone();
        spawn_io(async move { job.terminate_async(status).await }).await
    }
}
