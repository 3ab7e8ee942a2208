//! The primitive operations of a [`CheckpointStore`], each mapped to our error once.

use std::io::Read;

use cornerstone_backend_api::{Error, ErrorKind, Result};
use opendal::options::{ListOptions, WriteOptions};

use super::{CheckpointStore, Created, Listed, random_name};
use crate::error::from_opendal;
use crate::layout;

impl CheckpointStore {
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
    ///
    /// [`DirSync`]: super::DirSync
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

    pub(super) fn writer(&self, path: &str) -> Result<opendal::blocking::Writer> {
        self.inner
            .op
            .writer(path)
            .map_err(|e| from_opendal("open writer", path, e))
    }
}
