//! [`CheckpointStore`]: an OpenDAL operator and a tokio runtime that drives its blocking API,
//! plus the stream factory and the state reader over it.

use std::fmt;
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::Arc;

use cornerstone_backend_api::{
    CheckpointId, CheckpointOutputStream, CheckpointStreamFactory, Error, ErrorKind,
    FileStateHandle, Result, StateReader, StateScope, StreamStateHandle,
};
use opendal::options::{ListOptions, WriteOptions};
use parking_lot::Mutex;

use crate::error::from_opendal;
use crate::layout;
use crate::location::{self, StoragePolicy, with_query_options};

/// The default size below which a stream is kept inline in `_metadata`: 20 KiB.
pub const DEFAULT_INLINE_THRESHOLD: usize = 20 * 1024;
/// The default size of the chunks a stream uploads (and so the memory it keeps): 1 MiB.
pub const DEFAULT_WRITE_CHUNK_SIZE: usize = 1 << 20;

struct Inner {
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

/// The tokio runtime that drives OpenDAL for every store of the process; never dropped.
///
/// One runtime for all stores, not one per store: OpenDAL's HTTP transport (S3) is
/// process-wide and pools its connections, and each pooled connection is driven by a task on
/// the runtime that opened it. With a runtime per store, dropping a store killed those tasks
/// and the next store to reuse such a connection failed with "dispatch task is gone: runtime
/// dropped the dispatch task".
fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
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

/// Checkpoint storage on any OpenDAL service: the entry point of this crate.
///
/// Every path that the store's methods take is relative to the root of the operator
/// (`""` is the root itself). Clones share the operator.
///
/// # Blocking
/// The methods block the calling thread. They run OpenDAL on a small tokio runtime shared by
/// every store of the process (two threads, started with the first store), so they must not
/// be called from inside an async context (use `tokio::task::spawn_blocking`).
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

    /// A state reader that resolves handle paths against `base_dir` (a job directory for
    /// checkpoints, the savepoint directory for savepoints).
    pub fn reader(&self, base_dir: &str) -> StoreStateReader {
        StoreStateReader {
            store: self.clone(),
            base: base_dir.to_owned(),
        }
    }

    // ---- primitive operations, each mapped to our Error once ----

    pub(crate) fn read_all(&self, path: &str) -> Result<Vec<u8>> {
        self.inner
            .op
            .read(path)
            .map(|b| b.to_vec())
            .map_err(|e| from_opendal("read", path, e))
    }

    /// The size and CRC32 of the object at `path`, read in chunks (memory stays at one
    /// chunk whatever the object's size).
    pub(crate) fn size_and_crc32(&self, path: &str) -> Result<(u64, u32)> {
        const CHUNK: usize = 1 << 20;
        let size = self.size(path)?;
        let mut hasher = crc32fast::Hasher::new();
        if size > 0 {
            let reader = self
                .inner
                .op
                .reader(path)
                .map_err(|e| from_opendal("open reader", path, e))?;
            let std_reader = reader
                .into_std_read(0..size)
                .map_err(|e| from_opendal("read", path, e))?;
            let mut reader = crate::error::MapReadErrors::new(std_reader, path.to_owned());
            let mut buf = vec![0u8; CHUNK];
            let mut read = 0u64;
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| Error::io("read", e).with_context("path", path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                read = read.saturating_add(n as u64);
            }
            if read != size {
                return Err(Error::corrupted("object shorter than its listed size")
                    .with_context("path", path)
                    .with_context("size", size)
                    .with_context("read", read));
            }
        }
        Ok((size, hasher.finalize()))
    }

    pub(crate) fn write_all(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.inner
            .op
            .write(path, bytes)
            .map(|_| ())
            .map_err(|e| from_opendal("write", path, e))
    }

    pub(crate) fn exists(&self, path: &str) -> Result<bool> {
        self.inner
            .op
            .exists(path)
            .map_err(|e| from_opendal("stat", path, e))
    }

    /// The last-modified time of an object in milliseconds since the epoch, when the service
    /// records one.
    pub(crate) fn modified_ms(&self, path: &str) -> Result<Option<u64>> {
        let meta = self
            .inner
            .op
            .stat(path)
            .map_err(|e| from_opendal("stat", path, e))?;
        Ok(meta
            .last_modified()
            .map(|t| u64::try_from(t.into_inner().as_millisecond()).unwrap_or(0)))
    }

    /// Reads an object of at most `limit` bytes (a `_metadata`, a lease): a larger one is
    /// [`ErrorKind::Corrupted`] before anything is read, so a crafted file cannot make the
    /// reader allocate what it chooses.
    pub(crate) fn read_small(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let size = self.size(path)?;
        if size > limit {
            return Err(Error::corrupted("object is larger than its format allows")
                .with_context("path", path)
                .with_context("size", size)
                .with_context("limit", limit));
        }
        self.read_all(path)
    }

    /// Whether this store is a local directory (OpenDAL's `fs` service), where commits use
    /// hard links and directories are fsync'd.
    pub(crate) fn is_local(&self) -> bool {
        self.inner.async_op.info().scheme() == opendal::services::FS_SCHEME
    }

    /// Makes the entries of the given directories durable (see [`DirSync`]): each directory
    /// and every ancestor up to the store root, deepest first, each once; a no-op on
    /// services whose writes are durable when acknowledged.
    pub(crate) fn sync_dirs<'a>(&self, dirs: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let Some(sync) = &self.inner.dir_sync else {
            return Ok(());
        };
        let mut all = std::collections::BTreeSet::new();
        for dir in dirs {
            let mut d = layout::normalize_dir(dir)?;
            loop {
                all.insert(d.clone());
                if d.is_empty() {
                    break;
                }
                d = layout::parent_dir(&d);
            }
        }
        // Deepest first: a directory's entry in its parent is synced after its own entries.
        let mut ordered: Vec<String> = all.into_iter().collect();
        ordered.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for d in ordered {
            sync.sync_dir(&d)?;
        }
        Ok(())
    }

    /// Creates `path` with `bytes` only if it does not exist, atomically against other
    /// writers: on the local filesystem a temp file hard-linked into place (a link never
    /// replaces a file) and the directory fsync'd, a conditional put where the service
    /// supports if-not-exists (object storage, memory), a checked put otherwise.
    ///
    /// An error means the outcome is unknown: the object may have been created.
    pub(crate) fn create_new(&self, path: &str, bytes: Vec<u8>) -> Result<Created> {
        let created = self.create_new_unsynced(path, bytes)?;
        if created == Created::Created {
            // Its name is durable before anyone is told it exists.
            self.sync_dirs([layout::parent_dir(path).as_str()])?;
        }
        Ok(created)
    }

    fn create_new_unsynced(&self, path: &str, bytes: Vec<u8>) -> Result<Created> {
        let info = self.inner.async_op.info();
        if self.is_local() {
            let dir = layout::parent_dir(path);
            let temp = layout::metadata_temp_path(&dir, &random_name());
            self.write_all(&temp, bytes)?;
            let root = std::path::PathBuf::from(info.root());
            let (from, to) = (root.join(&temp), root.join(path));
            // The temp file's content must be durable before its name is (OpenDAL's writer
            // syncs it on close; this does not depend on that).
            let synced = std::fs::File::open(&from)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("sync file", e).with_context("path", from.display()));
            let linked = synced.and_then(|()| {
                std::fs::hard_link(&from, &to).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Error::new(ErrorKind::AlreadyExists, "exists already")
                    } else {
                        Error::io("link", e).with_context("path", to.display())
                    }
                })
            });
            let _ = std::fs::remove_file(&from);
            return match linked {
                Ok(()) => Ok(Created::Created),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Created::Existed),
                Err(e) => Err(e),
            };
        }
        if info.capability().write_with_if_not_exists {
            return match self.inner.op.write_options(
                path,
                bytes,
                WriteOptions {
                    if_not_exists: true,
                    ..WriteOptions::default()
                },
            ) {
                Ok(_) => Ok(Created::Created),
                Err(e)
                    if matches!(
                        e.kind(),
                        opendal::ErrorKind::ConditionNotMatch | opendal::ErrorKind::AlreadyExists
                    ) =>
                {
                    Ok(Created::Existed)
                }
                Err(e) => Err(from_opendal("write", path, e)),
            };
        }
        if self.exists(path)? {
            return Ok(Created::Existed);
        }
        self.write_all(path, bytes)?;
        Ok(Created::Created)
    }

    pub(crate) fn size(&self, path: &str) -> Result<u64> {
        self.inner
            .op
            .stat(path)
            .map(|m| m.content_length())
            .map_err(|e| from_opendal("stat", path, e))
    }

    pub(crate) fn delete(&self, path: &str) -> Result<()> {
        match self.inner.op.delete(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(from_opendal("delete", path, e)),
        }
    }

    /// Deletes an empty directory; ignores services without directories and non-empty ones.
    pub(crate) fn delete_dir_if_empty(&self, dir: &str) {
        if let Ok(entries) = self.list(dir, true)
            && entries.iter().all(|e| e.is_dir)
        {
            let mut dirs: Vec<&Listed> = entries.iter().collect();
            dirs.sort_by_key(|e| std::cmp::Reverse(e.path.len()));
            for d in dirs {
                let _ = self.inner.op.delete(&d.path);
            }
            let _ = self.inner.op.delete(dir);
        }
    }

    /// Lists a directory (`dir` ends with `/` or is empty), without the directory itself.
    pub(crate) fn list(&self, dir: &str, recursive: bool) -> Result<Vec<Listed>> {
        let entries = self
            .inner
            .op
            .list_options(
                dir,
                ListOptions {
                    recursive,
                    ..ListOptions::default()
                },
            )
            .map_err(|e| from_opendal("list", dir, e))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.path() != dir)
            .map(|e| Listed {
                is_dir: e.metadata().is_dir() || e.path().ends_with('/'),
                path: e.path().to_owned(),
            })
            .collect())
    }

    /// Writes `_metadata` in `dir` atomically and only if it does not exist (see
    /// [`create_new`](Self::create_new)): of two racing writers exactly one completes.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] when `_metadata` exists; any other error leaves the
    /// outcome unknown (the caller reads `_metadata` back to find out).
    pub(crate) fn commit_metadata(&self, dir: &str, bytes: Vec<u8>) -> Result<()> {
        let target = layout::metadata_path(dir);
        match self.create_new(&target, bytes)? {
            Created::Created => Ok(()),
            Created::Existed => Err(Error::new(
                ErrorKind::AlreadyExists,
                "_metadata exists already",
            )
            .with_context("path", &target)),
        }
    }

    fn writer(&self, path: &str) -> Result<opendal::blocking::Writer> {
        self.inner
            .op
            .writer(path)
            .map_err(|e| from_opendal("open writer", path, e))
    }
}

/// A random file name component (32 hex digits).
pub(crate) fn random_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A file that a stream factory created (or started to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrittenFile {
    /// Relative to the factory's base directory.
    pub(crate) rel: String,
    pub(crate) scope: StateScope,
}

/// The stream factory of one checkpoint or savepoint over OpenDAL.
///
/// Streams below the inline threshold become [`StreamStateHandle::Inline`]; larger ones are
/// uploaded in chunks of at most the write chunk size (memory stays bounded) to a new file
/// named at random, and become a [`FileStateHandle`] with size and CRC32. Checkpoint files go
/// to `chk-N/`, `shared/` or `taskowned/` of the job directory by scope; savepoint files all
/// go into the savepoint directory.
#[derive(Debug, Clone)]
pub struct StoreStreamFactory {
    store: CheckpointStore,
    checkpoint_id: CheckpointId,
    base: String,
    savepoint: bool,
    inline_threshold: usize,
    chunk_size: usize,
    written: Arc<Mutex<Vec<WrittenFile>>>,
}

impl StoreStreamFactory {
    pub(crate) fn new(
        store: CheckpointStore,
        checkpoint_id: CheckpointId,
        base: String,
        savepoint: bool,
        inline_threshold: usize,
        chunk_size: usize,
    ) -> Self {
        StoreStreamFactory {
            store,
            checkpoint_id,
            base,
            savepoint,
            inline_threshold,
            chunk_size: chunk_size.max(1),
            written: Arc::default(),
        }
    }

    /// The directory handle paths are relative to.
    pub fn base_dir(&self) -> &str {
        &self.base
    }

    pub(crate) fn written(&self) -> Vec<WrittenFile> {
        self.written.lock().clone()
    }
}

impl CheckpointStreamFactory for StoreStreamFactory {
    fn checkpoint_id(&self) -> CheckpointId {
        self.checkpoint_id
    }

    fn create(&self, scope: StateScope) -> Result<Box<dyn CheckpointOutputStream>> {
        let rel = layout::state_file_rel(self.checkpoint_id, scope, self.savepoint, &random_name());
        Ok(Box::new(StoreOutputStream {
            factory: self.clone(),
            full: layout::join(&self.base, &rel),
            rel,
            scope,
            buf: Vec::new(),
            writer: None,
            position: 0,
            hasher: crc32fast::Hasher::new(),
        }))
    }
}

struct StoreOutputStream {
    factory: StoreStreamFactory,
    rel: String,
    full: String,
    scope: StateScope,
    buf: Vec<u8>,
    writer: Option<opendal::blocking::Writer>,
    position: u64,
    hasher: crc32fast::Hasher,
}

impl fmt::Debug for StoreOutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOutputStream")
            .field("path", &self.full)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl StoreOutputStream {
    fn flush_chunk(&mut self) -> Result<()> {
        if self.writer.is_none() {
            self.factory.written.lock().push(WrittenFile {
                rel: self.rel.clone(),
                scope: self.scope,
            });
            self.writer = Some(self.factory.store.writer(&self.full)?);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        match self.writer.as_mut() {
            Some(w) => w
                .write(chunk)
                .map_err(|e| from_opendal("write", &self.full, e)),
            None => {
                Err(Error::internal("state file writer missing").with_context("path", &self.full))
            }
        }
    }
}

impl Write for StoreOutputStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.hasher.update(data);
        self.position += data.len() as u64;
        let limit = if self.writer.is_none() {
            self.factory.inline_threshold.max(1)
        } else {
            self.factory.chunk_size
        };
        if self.buf.len() >= limit {
            self.flush_chunk().map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CheckpointOutputStream for StoreOutputStream {
    fn position(&self) -> u64 {
        self.position
    }

    fn close(mut self: Box<Self>) -> Result<StreamStateHandle> {
        if self.writer.is_none() && (self.position as usize) < self.factory.inline_threshold {
            return Ok(StreamStateHandle::Inline(std::mem::take(&mut self.buf)));
        }
        self.flush_chunk()?;
        if let Some(w) = self.writer.as_mut() {
            w.close()
                .map_err(|e| from_opendal("close", &self.full, e))?;
        }
        Ok(StreamStateHandle::File(FileStateHandle {
            path: self.rel.clone(),
            scope: self.scope,
            size: self.position,
            crc32: self.hasher.clone().finalize(),
        }))
    }
}

/// Reads state files through OpenDAL with range reads, resolving handle paths against a
/// base directory (the job directory of a checkpoint, or a savepoint directory).
#[derive(Debug, Clone)]
pub struct StoreStateReader {
    store: CheckpointStore,
    base: String,
}

impl StoreStateReader {
    /// The directory handle paths are resolved against.
    pub fn base_dir(&self) -> &str {
        &self.base
    }

    /// The full path (inside the store) of a handle's file.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] when the handle's path is not a safe relative path.
    pub fn resolve(&self, file: &FileStateHandle) -> Result<String> {
        if !layout::is_safe_relative(&file.path) {
            return Err(
                Error::corrupted("state handle path is not a safe relative path")
                    .with_context("path", format!("{:?}", file.path)),
            );
        }
        Ok(layout::join(&self.base, &file.path))
    }
}

impl StateReader for StoreStateReader {
    fn open_file(
        &self,
        file: &FileStateHandle,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send + '_>> {
        let full = self.resolve(file)?;
        if range.start > range.end || range.end > file.size {
            return Err(Error::invalid_input("read range outside the state file")
                .with_context("path", &full)
                .with_context("range", format!("{}..{}", range.start, range.end))
                .with_context("size", file.size));
        }
        let reader = self
            .store
            .inner
            .op
            .reader(&full)
            .map_err(|e| from_opendal("open reader", &full, e))?;
        if range.start == range.end {
            return Ok(Box::new(std::io::empty()));
        }
        let std_reader = reader
            .into_std_read(range.start..range.end)
            .map_err(|e| from_opendal("read", &full, e))?;
        Ok(Box::new(crate::error::MapReadErrors::new(std_reader, full)))
    }
}
