//! The checkpoint store from async code.
//!
//! [`CompletedCheckpointStore`] is a blocking API: it drives OpenDAL on a runtime of its
//! own, so calling it on a tokio worker thread would block that worker, and on a
//! current-thread runtime it cannot run at all (tokio refuses to block inside an
//! asynchronous context). [`AsyncCheckpointStore`] offers the same operations as `async`
//! methods that run the blocking implementation on tokio's blocking pool, as `tokio::fs`
//! does for files: they can be awaited on any tokio runtime, multi-threaded or
//! current-thread, without stalling it.
//!
//! State streams ([`PendingCheckpoint::stream_factory`]) are written with
//! [`std::io::Write`]: write them where blocking is allowed, e.g. in the snapshot's
//! asynchronous phase run with `tokio::task::spawn_blocking`.
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

use cornerstone_backend_api::{CheckpointId, Error, Result};

use crate::completed::{
    CheckpointConfig, ClaimMode, CompletedCheckpoint, CompletedCheckpointStore, JobStatus,
    PendingCheckpoint,
};
use crate::store::{CheckpointStore, StoreStateReader};

/// Runs `f` on tokio's blocking pool and awaits it.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::internal("a checkpoint storage task did not finish").with_context("cause", e)
    })?
}

/// [`CompletedCheckpointStore`] with `async` methods, usable on any tokio runtime.
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
        let inner =
            blocking(move || CompletedCheckpointStore::open(&opened, &job_id, config)).await?;
        Ok(AsyncCheckpointStore { store, inner })
    }

    /// The blocking store behind this one (for code that runs where blocking is allowed).
    pub fn blocking(&self) -> &CompletedCheckpointStore {
        &self.inner
    }

    /// [`CompletedCheckpointStore::begin_checkpoint`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::begin_checkpoint`].
    pub async fn begin_checkpoint(&self, id: CheckpointId) -> Result<PendingCheckpoint> {
        let job = self.inner.clone();
        blocking(move || job.begin_checkpoint(id)).await
    }

    /// [`CompletedCheckpointStore::begin_savepoint`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::begin_savepoint`].
    pub async fn begin_savepoint(
        &self,
        id: CheckpointId,
        savepoint_parent: impl Into<String>,
    ) -> Result<PendingCheckpoint> {
        let job = self.inner.clone();
        let parent = savepoint_parent.into();
        blocking(move || job.begin_savepoint(id, &parent)).await
    }

    /// [`PendingCheckpoint::commit`].
    ///
    /// # Errors
    /// As [`PendingCheckpoint::commit`].
    pub async fn commit(&self, pending: PendingCheckpoint) -> Result<CompletedCheckpoint> {
        blocking(move || pending.commit()).await
    }

    /// [`PendingCheckpoint::abort`].
    ///
    /// # Errors
    /// As [`PendingCheckpoint::abort`].
    pub async fn abort(&self, pending: PendingCheckpoint) -> Result<()> {
        blocking(move || pending.abort()).await
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
        blocking(move || store.resolve(&path)).await
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
        blocking(move || job.restore(&point, mode)).await
    }

    /// [`CompletedCheckpointStore::settle_doubtful`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::settle_doubtful`].
    pub async fn settle_doubtful(&self) -> Result<()> {
        let job = self.inner.clone();
        blocking(move || job.settle_doubtful()).await
    }

    /// [`CompletedCheckpointStore::terminate`].
    ///
    /// # Errors
    /// As [`CompletedCheckpointStore::terminate`].
    pub async fn terminate(&self, status: JobStatus) -> Result<()> {
        let job = self.inner.clone();
        blocking(move || job.terminate(status)).await
    }
}
