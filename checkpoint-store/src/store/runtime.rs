//! The one tokio runtime that drives OpenDAL for every store of the process, and the ways
//! code gets onto it: [`CheckpointStore::block_on`] (the blocking API: a thin layer over the
//! async core), [`spawn_io`] (the async API: the core's futures run on this runtime,
//! whatever runtime awaits them), [`spawn_detached`] (a destructor's cleanup) and
//! [`blocking_fs`] (short blocking steps of a local filesystem, on the blocking pool).

use std::future::Future;

use cornerstone_backend_api::{Error, Result};

use super::CheckpointStore;

/// The tokio runtime that drives OpenDAL for every store of the process; never dropped.
///
/// One runtime for all stores, not one per store (nor the caller's): OpenDAL's HTTP
/// transport (S3) is process-wide and pools its connections, and each pooled connection is
/// driven by a task on the runtime that opened it. With a runtime per store, dropping a
/// store killed those tasks and the next store to reuse such a connection failed with
/// "dispatch task is gone: runtime dropped the dispatch task". The same would happen with
/// the runtimes of async callers, which is why [`spawn_io`] runs the async core here too.
pub(super) fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("cornerstone-checkpoint-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Error::internal("cannot start the checkpoint I/O runtime").with_context("cause", e)
        })
}

/// Whether the calling thread is inside a tokio runtime: on one of its workers, or on its
/// blocking pool (tokio offers no way to tell the two apart).
pub(crate) fn in_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

impl CheckpointStore {
    /// Runs `fut` (a step of the async core) to completion with the shared I/O runtime
    /// driving it, blocking the calling thread: what every blocking method is made of.
    ///
    /// Inside a tokio runtime (where tokio refuses to start another runtime's `block_on`),
    /// the future is driven from a short-lived thread of its own while the caller waits:
    /// the blocking API then works on a runtime's blocking pool
    /// (`tokio::task::spawn_blocking`), as any blocking call does, and on a worker thread
    /// it blocks that worker (the async API, [`crate::nonblocking`], does not).
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::Internal`] when the runtime or the thread cannot be started; whatever
    /// `fut` returns.
    pub(crate) fn block_on<T: Send>(
        &self,
        fut: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        let runtime = io_runtime()?;
        if !in_runtime() {
            return runtime.block_on(fut);
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("cornerstone-checkpoint-block-on".into())
                .spawn_scoped(scope, || runtime.block_on(fut))
                .map_err(|e| Error::io("start a thread for a blocking storage call", e))?
                .join()
                .map_err(|_| Error::internal("a blocking storage call panicked"))?
        })
    }
}

/// Runs `fut` (a step of the async core) as a task on the shared I/O runtime and awaits it
/// from whatever runtime the caller is on: the async API. The caller's runtime only waits;
/// OpenDAL's connections and the core's blocking steps stay on the runtime that owns them.
/// Dropping the returned future does not cancel the task: a storage step that started
/// (a commit, a deletion) runs to its end, as it would in the blocking API.
///
/// # Errors
/// [`ErrorKind::Internal`] when the runtime cannot be started or the task panicked;
/// whatever `fut` returns.
pub(crate) async fn spawn_io<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    io_runtime()?.spawn(fut).await.map_err(|e| {
        Error::internal("a checkpoint storage task did not finish").with_context("cause", e)
    })?
}

/// Starts `fut` as a task on the shared I/O runtime without waiting for it (a destructor's
/// cleanup inside a tokio runtime). Nothing happens when the runtime cannot be started.
pub(crate) fn spawn_detached<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(runtime) = io_runtime() {
        drop(runtime.spawn(fut));
    }
}

/// Runs a short blocking step of the local filesystem (a directory fsync, a hard link) on
/// the blocking pool of the runtime the async core runs on, so that it never stalls a
/// worker thread.
///
/// # Errors
/// [`ErrorKind::Internal`] when the step panicked; whatever `f` returns.
pub(crate) async fn blocking_fs<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::internal("a blocking storage step did not finish").with_context("cause", e)
    })?
}
