//! The primitive operations of a [`CheckpointStore`], each mapped to our error once: `async`
//! over the async OpenDAL operator (one implementation each), with their blocking forms
//! (used by inspection and the command-line paths) in `blocking`.

use cornerstone_backend_api::{Error, ErrorKind, Result};
use opendal::options::{ListOptions, WriteOptions};

use super::runtime::blocking_fs;
use super::{CheckpointStore, Created, Listed, random_name};
use crate::error::from_opendal;
use crate::layout;

impl CheckpointStore {
    pub(crate) async fn read_all_async(&self, path: &str) -> Result<Vec<u8>> {
        self.inner
            .async_op
            .read(path)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| from_opendal("read", path, e))
    }

    /// The size and CRC32 of the object at `path`, read in chunks (memory stays at one
    /// chunk whatever the object's size).
    pub(crate) async fn size_and_crc32_async(&self, path: &str) -> Result<(u64, u32)> {
        const CHUNK: u64 = 1 << 20;
        let size = self.size_async(path).await?;
        let mut hasher = crc32fast::Hasher::new();
        if size > 0 {
            let reader = self
                .inner
                .async_op
                .reader(path)
                .await
                .map_err(|e| from_opendal("open reader", path, e))?;
            let mut read = 0u64;
            while read < size {
                let end = size.min(read.saturating_add(CHUNK));
                let chunk = reader
                    .read(read..end)
                    .await
                    .map_err(|e| from_opendal("read", path, e))?;
                if chunk.is_empty() {
                    break;
                }
                for bytes in chunk.clone() {
                    hasher.update(&bytes);
                }
                read = read.saturating_add(chunk.len() as u64);
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

    pub(crate) async fn write_all_async(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.inner
            .async_op
            .write(path, bytes)
            .await
            .map(|_| ())
            .map_err(|e| from_opendal("write", path, e))
    }

    pub(crate) async fn exists_async(&self, path: &str) -> Result<bool> {
        self.inner
            .async_op
            .exists(path)
            .await
            .map_err(|e| from_opendal("stat", path, e))
    }

    /// The last-modified time of an object in milliseconds since the epoch, when the service
    /// records one.
    pub(crate) async fn modified_ms_async(&self, path: &str) -> Result<Option<u64>> {
        let meta = self
            .inner
            .async_op
            .stat(path)
            .await
            .map_err(|e| from_opendal("stat", path, e))?;
        Ok(meta
            .last_modified()
            .map(|t| u64::try_from(t.into_inner().as_millisecond()).unwrap_or(0)))
    }

    /// Reads an object of at most `limit` bytes (a `_metadata`, a lease): a larger one is
    /// [`ErrorKind::Corrupted`] before anything is read, so a crafted file cannot make the
    /// reader allocate what it chooses.
    pub(crate) async fn read_small_async(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let size = self.size_async(path).await?;
        if size > limit {
            return Err(Error::corrupted("object is larger than its format allows")
                .with_context("path", path)
                .with_context("size", size)
                .with_context("limit", limit));
        }
        self.read_all_async(path).await
    }

    /// Whether this store is a local directory (OpenDAL's `fs` service), where commits use
    /// hard links and directories are fsync'd.
    pub(crate) fn is_local(&self) -> bool {
        self.inner.async_op.info().scheme() == opendal::services::FS_SCHEME
    }

    /// Makes the entries of the given directories durable (see [`DirSync`]): each directory
    /// and every ancestor up to the store root, deepest first, each once; a no-op on
    /// services whose writes are durable when acknowledged. [`DirSync`] is a blocking call
    /// (a directory fsync): the syncs run in order on the blocking pool.
    ///
    /// [`DirSync`]: super::DirSync
    pub(crate) async fn sync_dirs_async<'a>(
        &self,
        dirs: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let Some(sync) = self.inner.dir_sync.clone() else {
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
        blocking_fs(move || ordered.iter().try_for_each(|d| sync.sync_dir(d))).await
    }

    /// Creates `path` with `bytes` only if it does not exist, atomically against other
    /// writers: on the local filesystem a temp file hard-linked into place (a link never
    /// replaces a file) and the directory fsync'd, a conditional put where the service
    /// supports if-not-exists (object storage, memory), a checked put otherwise.
    ///
    /// An error means the outcome is unknown: the object may have been created.
    pub(crate) async fn create_new_async(&self, path: &str, bytes: Vec<u8>) -> Result<Created> {
        let created = self.create_new_unsynced(path, bytes).await?;
        if created == Created::Created {
            // Its name is durable before anyone is told it exists.
            self.sync_dirs_async([layout::parent_dir(path).as_str()])
                .await?;
        }
        Ok(created)
    }

    async fn create_new_unsynced(&self, path: &str, bytes: Vec<u8>) -> Result<Created> {
        let info = self.inner.async_op.info();
        if self.is_local() {
            let dir = layout::parent_dir(path);
            let temp = layout::metadata_temp_path(&dir, &random_name());
            self.write_all_async(&temp, bytes).await?;
            let root = std::path::PathBuf::from(info.root());
            let (from, to) = (root.join(&temp), root.join(path));
            // The fsync and the link are short blocking calls of the local filesystem: on
            // the blocking pool, together.
            return blocking_fs(move || link_into_place(&from, &to)).await;
        }
        if info.capability().write_with_if_not_exists {
            return match self
                .inner
                .async_op
                .write_options(
                    path,
                    bytes,
                    WriteOptions {
                        if_not_exists: true,
                        ..WriteOptions::default()
                    },
                )
                .await
            {
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
        if self.exists_async(path).await? {
            return Ok(Created::Existed);
        }
        self.write_all_async(path, bytes).await?;
        Ok(Created::Created)
    }

    pub(crate) async fn size_async(&self, path: &str) -> Result<u64> {
        self.inner
            .async_op
            .stat(path)
            .await
            .map(|m| m.content_length())
            .map_err(|e| from_opendal("stat", path, e))
    }

    pub(crate) async fn delete_async(&self, path: &str) -> Result<()> {
        match self.inner.async_op.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(from_opendal("delete", path, e)),
        }
    }

    /// Deletes an empty directory; ignores services without directories and non-empty ones.
    pub(crate) async fn delete_dir_if_empty_async(&self, dir: &str) {
        if let Ok(entries) = self.list_async(dir, true).await
            && entries.iter().all(|e| e.is_dir)
        {
            let mut dirs: Vec<&Listed> = entries.iter().collect();
            dirs.sort_by_key(|e| std::cmp::Reverse(e.path.len()));
            for d in dirs {
                let _ = self.inner.async_op.delete(&d.path).await;
            }
            let _ = self.inner.async_op.delete(dir).await;
        }
    }

    /// Lists a directory (`dir` ends with `/` or is empty), without the directory itself.
    pub(crate) async fn list_async(&self, dir: &str, recursive: bool) -> Result<Vec<Listed>> {
        let entries = self
            .inner
            .async_op
            .list_options(
                dir,
                ListOptions {
                    recursive,
                    ..ListOptions::default()
                },
            )
            .await
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
    /// [`create_new_async`](Self::create_new_async)): of two racing writers exactly one
    /// completes.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] when `_metadata` exists; any other error leaves the
    /// outcome unknown (the caller reads `_metadata` back to find out).
    pub(crate) async fn commit_metadata_async(&self, dir: &str, bytes: Vec<u8>) -> Result<()> {
        let target = layout::metadata_path(dir);
        match self.create_new_async(&target, bytes).await? {
            Created::Created => Ok(()),
            Created::Existed => Err(Error::new(
                ErrorKind::AlreadyExists,
                "_metadata exists already",
            )
            .with_context("path", &target)),
        }
    }
}

/// Makes the temp file `from` durable, hard-links it to `to` (which fails when `to` exists:
/// a link never replaces a file) and removes the temp name. Blocking.
fn link_into_place(from: &std::path::Path, to: &std::path::Path) -> Result<Created> {
    // The temp file's content must be durable before its name is (OpenDAL's writer syncs it
    // on close; this does not depend on that).
    let synced = std::fs::File::open(from)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("sync file", e).with_context("path", from.display()));
    let linked = synced.and_then(|()| {
        std::fs::hard_link(from, to).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::new(ErrorKind::AlreadyExists, "exists already")
            } else {
                Error::io("link", e).with_context("path", to.display())
            }
        })
    });
    let _ = std::fs::remove_file(from);
    match linked {
        Ok(()) => Ok(Created::Created),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Created::Existed),
        Err(e) => Err(e),
    }
}
