//! [`CheckpointStore`]: an OpenDAL operator and the tokio runtime that drives it, plus the
//! stream factory and the state reader over it.
//!
//! - this file: [`CheckpointStore`] and how it is opened (a local directory, a URL, any
//!   OpenDAL operator), and [`DirSync`];
//! - `runtime`: the shared I/O runtime, and how the blocking API (`block_on`) and the async
//!   API (`spawn_io`) get onto it;
//! - `ops`: the primitive operations, `async`, each mapped to our error once;
//! - `blocking`: their blocking forms, thin layers over the `async` ones;
//! - `stream`: the stream factory ([`StoreStreamFactory`]) and its output stream;
//! - `reader`: the state reader ([`StoreStateReader`]).

use std::fmt;
use std::sync::Arc;

use cornerstone_backend_api::{Error, Result};

use crate::error::from_opendal;
use crate::location::{self, StoragePolicy, with_query_options};

mod blocking;
mod ops;
mod reader;
mod runtime;
mod stream;

use runtime::io_runtime;
pub(crate) use runtime::{in_runtime, spawn_detached, spawn_io};

pub use reader::StoreStateReader;
pub use stream::StoreStreamFactory;

/// The default size below which a stream is kept inline in `_metadata`: 20 KiB.
pub const DEFAULT_INLINE_THRESHOLD: usize = 20 * 1024;
/// The default size of the chunks a stream uploads (and so the memory it keeps): 1 MiB.
pub const DEFAULT_WRITE_CHUNK_SIZE: usize = 1 << 20;

struct Inner {
    /// The blocking operator, for the state streams only: [`StoreStreamFactory`]'s output
    /// stream ([`std::io::Write`]) and [`StoreStateReader`]'s readers ([`std::io::Read`]),
    /// which backends use where blocking is allowed (also on a runtime's blocking pool).
    op: opendal::blocking::Operator,
    async_op: opendal::Operator,
    description: String,
    /// How directory entries become durable; `None` where a write is durable once
    /// acknowledged (object storage, memory).
    dir_sync: Option<Arc<dyn DirSync>>,
}

/// Makes the entries of a directory (the names created and removed in it) durable: what an
/// fsync of the directory does on a local filesystem, where a file's content is durable once
/// written (OpenDAL's `fs` writer syncs it on close) but its name is not.
///
/// The store calls it before anything that depends on those entries: before `_metadata` is
/// published (for every directory a checkpoint wrote into, and the checkpoint's own), after
/// `_metadata` is deleted and before any file it referenced is, and after a lease or
/// checkpoint-id record is created. Each directory is passed with its ancestors up to the
/// store root, deepest first, each once per call.
///
/// [`CheckpointStore::local`] (and [`CheckpointStore::new`] over OpenDAL's `fs` service)
/// uses the directory fsync; other services have none, because an acknowledged write is
/// durable there. [`CheckpointStore::with_dir_sync`] sets another, for storage that needs a
/// barrier of its own (a layer that buffers writes, or a simulated disk that drops
/// unsynced entries at a power cut).
pub trait DirSync: Send + Sync + fmt::Debug {
    /// Makes the entries of `dir` (relative to the store root, `""` for the root, otherwise
    /// ending with `/`) durable.
    ///
    /// # Errors
    /// Whatever the storage reports; the store then treats the entries as not durable.
    fn sync_dir(&self, dir: &str) -> Result<()>;
}

/// The directory fsync of a local filesystem rooted at `root`.
#[derive(Debug)]
struct LocalDirSync {
    root: std::path::PathBuf,
}

impl DirSync for LocalDirSync {
    fn sync_dir(&self, dir: &str) -> Result<()> {
        let path = self.root.join(dir);
        match std::fs::File::open(&path) {
            Ok(f) => f
                .sync_all()
                .map_err(|e| Error::io("sync directory", e).with_context("path", path.display())),
            // A directory that does not exist (nothing was written there) has no entries to
            // make durable.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                Err(Error::io("open directory to sync", e).with_context("path", path.display()))
            }
        }
    }
}

/// Checkpoint storage on any OpenDAL service: the entry point of this crate.
///
/// Every path that the store's methods take is relative to the root of the operator
/// (`""` is the root itself). Clones share the operator.
///
/// # Blocking
/// The storage operations are implemented once, `async`, over OpenDAL's async operator, on a
/// small tokio runtime shared by every store of the process (two threads, started with the
/// first store). The async API ([`AsyncCheckpointStore`]) runs them as tasks on that
/// runtime and can be awaited from any tokio runtime, multi-threaded or current-thread. The
/// blocking methods (of this type, of [`CompletedCheckpointStore`] and of
/// [`PendingCheckpoint`]) are a thin layer over the same code: they block the calling thread
/// until the shared runtime has done the work. They work on any thread and never panic:
/// outside a tokio runtime they drive the shared runtime directly; inside one (where tokio
/// refuses a nested `block_on`) a short-lived thread of their own drives it while the caller
/// waits. On a runtime's blocking pool (`tokio::task::spawn_blocking`) that is the usual
/// blocking call; on a worker thread it blocks the worker, which the async API avoids.
///
/// The state streams are [`StoreStreamFactory`]'s output stream and [`StoreStateReader`]'s
/// readers, [`std::io::Write`] and [`std::io::Read`] for backends, which write and read them
/// where blocking is allowed, including on a runtime's blocking pool; they must not be used
/// on a runtime's worker thread.
///
/// [`AsyncCheckpointStore`]: crate::nonblocking::AsyncCheckpointStore
/// [`CompletedCheckpointStore`]: crate::CompletedCheckpointStore
/// [`PendingCheckpoint`]: crate::PendingCheckpoint
#[derive(Clone)]
pub struct CheckpointStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("location", &self.inner.description)
            .finish_non_exhaustive()
    }
}

/// One entry of a recursive listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) path: String,
    pub(crate) is_dir: bool,
}

/// What [`CheckpointStore::create_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// The object did not exist and now holds the bytes.
    Created,
    /// The object existed already and was left alone.
    Existed,
}

impl CheckpointStore {
    /// A store over an existing OpenDAL operator (any service, with any layers).
    ///
    /// # Errors
    /// [`ErrorKind::Internal`] when the runtime cannot be started.
    ///
    /// [`ErrorKind::Internal`]: cornerstone_backend_api::ErrorKind::Internal
    pub fn new(op: opendal::Operator) -> Result<Self> {
        let description = format!("{}://{}", op.info().scheme(), op.info().root());
        Self::with_description(op, description)
    }

    fn with_description(op: opendal::Operator, description: String) -> Result<Self> {
        let runtime = io_runtime()?;
        let blocking = {
            let _guard = runtime.enter();
            opendal::blocking::Operator::new(op.clone())
                .map_err(|e| from_opendal("blocking operator", "", e))?
        };
        let dir_sync: Option<Arc<dyn DirSync>> =
            (op.info().scheme() == opendal::services::FS_SCHEME).then(|| {
                Arc::new(LocalDirSync {
                    root: std::path::PathBuf::from(op.info().root()),
                }) as Arc<dyn DirSync>
            });
        Ok(CheckpointStore {
            inner: Arc::new(Inner {
                op: blocking,
                async_op: op,
                description,
                dir_sync,
            }),
        })
    }

    /// This store with `sync` as the way directory entries become durable (see [`DirSync`]),
    /// replacing the default: the directory fsync on OpenDAL's `fs` service, nothing on
    /// other services.
    #[must_use]
    pub fn with_dir_sync(self, sync: Arc<dyn DirSync>) -> Self {
        let inner = &self.inner;
        CheckpointStore {
            inner: Arc::new(Inner {
                op: inner.op.clone(),
                async_op: inner.async_op.clone(),
                description: inner.description.clone(),
                dir_sync: Some(sync),
            }),
        }
    }

    /// A store in a local directory (OpenDAL's `fs` service), the embedded default, with the
    /// default [`StoragePolicy`]. The directory is created when missing.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the directory cannot be used.
    ///
    /// [`ErrorKind::InvalidInput`]: cornerstone_backend_api::ErrorKind::InvalidInput
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::local_with(dir.as_ref(), StoragePolicy::default())
    }

    fn local_with(dir: &std::path::Path, policy: StoragePolicy) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::invalid_input("cannot create the checkpoint directory")
                .with_context("path", dir.display())
                .with_source(e)
        })?;
        let root = dir.to_str().ok_or_else(|| {
            Error::invalid_input("checkpoint directory is not valid UTF-8")
                .with_context("path", dir.display())
        })?;
        let op = opendal::Operator::new(opendal::services::Fs::default().root(root))
            .map_err(|e| from_opendal("open fs", root, e))?;
        Self::with_description(policy.apply(op), format!("file://{root}"))
    }

    /// A store from a URL: `file:///abs/dir` (or a plain path), `memory://` (a new, empty
    /// in-memory store), `s3://bucket/prefix` (feature `s3`), `gs://bucket/prefix` (feature
    /// `gcs`) or `azblob://container/prefix` (feature `azblob`). Options come from `options`
    /// and from the URL's query (`s3://bucket/prefix?region=eu-west-1`, percent-encoded),
    /// which must agree where both give one.
    ///
    /// Every scheme takes the [`StoragePolicy`] options (`retries`, `retry_delay`, `timeout`,
    /// `io_timeout`). The services take every option of OpenDAL's configuration of the
    /// service (`S3Config`, `GcsConfig`, `AzblobConfig`: `region`, `endpoint`, `profile`,
    /// `credential_path`, `account_name`, ..., by name or by OpenDAL's aliases such as
    /// `aws_region`) and `anonymous` (unsigned requests, for public buckets and servers
    /// without authentication). Credentials that no option gives come from the service's
    /// usual environment variables and files, through OpenDAL's loaders: `AWS_*` and
    /// `~/.aws/config` with `AWS_PROFILE` for S3, `GOOGLE_APPLICATION_CREDENTIALS` for GCS,
    /// `AZBLOB_ACCOUNT_NAME` / `AZBLOB_ACCOUNT_KEY` / `AZURE_STORAGE_SAS_TOKEN` for Azure.
    /// S3 needs a region (`region`, `AWS_REGION` or `AWS_DEFAULT_REGION`); Azure an
    /// `endpoint` or an account name. An unknown option is an error naming the known ones.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL, an unknown option or a missing one;
    /// [`ErrorKind::Unsupported`] for a scheme this build does not support.
    ///
    /// [`ErrorKind::InvalidInput`]: cornerstone_backend_api::ErrorKind::InvalidInput
    /// [`ErrorKind::Unsupported`]: cornerstone_backend_api::ErrorKind::Unsupported
    pub fn from_url<K, V>(url: &str, options: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let (url, mut options) = with_query_options(url, options)?;
        let url = url.as_str();
        let policy = StoragePolicy::take_from(&mut options)?;
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) => (s, r),
            None => ("file", url),
        };
        let no_options = |scheme: &str| -> Result<()> {
            match options.keys().next() {
                Some(k) => Err(Error::invalid_input("unknown checkpoint storage option")
                    .with_context("scheme", scheme)
                    .with_context("option", k)
                    .with_context("known", StoragePolicy::OPTIONS.join(", "))),
                None => Ok(()),
            }
        };
        match scheme {
            "file" => {
                no_options(scheme)?;
                if rest.is_empty() {
                    return Err(
                        Error::invalid_input("file URL has no path").with_context("url", url)
                    );
                }
                Self::local_with(std::path::Path::new(rest), policy)
            }
            "memory" => {
                no_options(scheme)?;
                let op = opendal::Operator::new(
                    opendal::services::Memory::default().root(&format!("/{rest}")),
                )
                .map_err(|e| from_opendal("open memory", rest, e))?;
                Self::with_description(policy.apply(op), url.to_owned())
            }
            "s3" | "gs" | "gcs" | "azblob" => {
                let op = location::service_operator(scheme, url, rest, options)?;
                Self::with_description(policy.apply(op), url.to_owned())
            }
            other => Err(location::unsupported(other)),
        }
    }

    /// Opens the store that contains a location given as a local path or URL and returns it
    /// with the location's path inside it. Local paths and `file://` URLs are rooted at `/`,
    /// `s3://bucket/a/b` at the bucket, so that a `_metadata` path or a `chk-N` directory can
    /// reach the job directory above it. This is what a command-line tool uses.
    ///
    /// # Errors
    /// As [`from_url`](Self::from_url); a relative local path that cannot be made absolute.
    pub fn open_location<K, V>(
        location: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(Self, String)>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let (location, options) = with_query_options(location, options)?;
        let location = location.as_str();
        match location.split_once("://") {
            Some((scheme @ ("s3" | "gs" | "gcs" | "azblob"), rest)) => {
                let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                Ok((
                    Self::from_url(&format!("{scheme}://{bucket}"), options)?,
                    path.to_owned(),
                ))
            }
            Some(("file", path)) => Self::open_local_location(path, options),
            Some(_) => Ok((Self::from_url(location, options)?, String::new())),
            None => Self::open_local_location(location, options),
        }
    }

    fn open_local_location<K, V>(
        path: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(Self, String)>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let abs = std::path::absolute(path).map_err(|e| {
            Error::invalid_input("cannot resolve the path")
                .with_context("path", path)
                .with_source(e)
        })?;
        let abs = abs
            .to_str()
            .ok_or_else(|| {
                Error::invalid_input("path is not valid UTF-8").with_context("path", path)
            })?
            .to_owned();
        let store = Self::from_url("file:///", options)?;
        Ok((store, abs.trim_start_matches('/').to_owned()))
    }

    /// The OpenDAL operator.
    pub fn operator(&self) -> &opendal::Operator {
        &self.inner.async_op
    }
}

/// A random file name component (32 hex digits).
pub(crate) fn random_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
