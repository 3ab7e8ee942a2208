//! The stream-factory contract between backends and checkpoint storage.
//!
//! A backend's asynchronous snapshot phase writes bytes through a
//! [`CheckpointStreamFactory`] and gets back plain-data [`StreamStateHandle`]s; a restore
//! reads them back through a [`StateReader`]. `cornerstone-checkpoint-store` implements both
//! over OpenDAL; this module has two in-memory implementations:
//! [`MemoryCheckpointStorage`] (files in a map, for tests) and [`InlineStreamFactory`]
//! (everything inline, capped: the memory backend's storage).

use std::collections::HashMap;
use std::fmt::Debug;
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::handles::{CheckpointId, FileStateHandle, StateScope, StreamStateHandle};

/// A stream that a snapshot writes into. Dropping it without [`close`](Self::close)
/// discards what was written.
pub trait CheckpointOutputStream: Write + Send + Debug {
    /// Bytes written so far.
    fn position(&self) -> u64;

    /// Finishes the stream and returns where its bytes are.
    ///
    /// # Errors
    /// Storage errors; [`ErrorKind::LimitExceeded`] when a size cap was exceeded.
    fn close(self: Box<Self>) -> Result<StreamStateHandle>;
}

/// Creates the output streams of one checkpoint.
pub trait CheckpointStreamFactory: Send + Sync + Debug {
    /// The checkpoint the streams belong to.
    fn checkpoint_id(&self) -> CheckpointId;

    /// A new stream in `scope`.
    ///
    /// # Errors
    /// Storage errors.
    fn create(&self, scope: StateScope) -> Result<Box<dyn CheckpointOutputStream>>;
}

/// Reads the files that state handles point to.
pub trait StateReader: Send + Sync + Debug {
    /// Opens `range` of `file` for reading (a range read on object storage).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] naming the path, storage errors.
    fn open_file(
        &self,
        file: &FileStateHandle,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send + '_>>;
}

/// A [`StateReader`] that counts the bytes read through it: how much of the snapshot files a
/// restore really read (a rescaled restore reads only the byte ranges of its key groups).
#[derive(Debug)]
pub struct CountingReader {
    inner: Arc<dyn StateReader>,
    bytes: AtomicU64,
}

impl CountingReader {
    /// Counts what is read through `inner`.
    pub fn new(inner: Arc<dyn StateReader>) -> Self {
        CountingReader {
            inner,
            bytes: AtomicU64::new(0),
        }
    }

    /// The bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

struct CountingRead<'a> {
    inner: Box<dyn Read + Send + 'a>,
    bytes: &'a AtomicU64,
}

impl Read for CountingRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl StateReader for CountingReader {
    fn open_file(
        &self,
        file: &FileStateHandle,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(CountingRead {
            inner: self.inner.open_file(file, range)?,
            bytes: &self.bytes,
        }))
    }
}

/// Opens `range` of any stream handle: inline bytes are served directly, files by `reader`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] when the range is outside the stream; [`ErrorKind::NotFound`]
/// when a file handle is read without a reader; reader errors.
pub fn open_stream<'a>(
    handle: &'a StreamStateHandle,
    reader: Option<&'a dyn StateReader>,
    range: Range<u64>,
) -> Result<Box<dyn Read + Send + 'a>> {
    if range.start > range.end || range.end > handle.size() {
        return Err(Error::invalid_input("read range outside the stream")
            .with_context("range", format!("{}..{}", range.start, range.end))
            .with_context("size", handle.size()));
    }
    match handle {
        StreamStateHandle::Inline(bytes) => {
            Ok(Box::new(&bytes[range.start as usize..range.end as usize]))
        }
        StreamStateHandle::File(file) => match reader {
            Some(reader) => reader.open_file(file, range),
            None => Err(
                Error::not_found("a file handle was restored without a state reader")
                    .with_context("path", &file.path),
            ),
        },
    }
}

/// Reads a whole stream into memory, checking a file's size and CRC32.
///
/// # Errors
/// [`ErrorKind::Corrupted`] naming the path when the size or checksum differs.
pub fn read_stream(
    handle: &StreamStateHandle,
    reader: Option<&dyn StateReader>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(handle.size().min(64 << 20) as usize);
    open_stream(handle, reader, 0..handle.size())?
        .read_to_end(&mut out)
        .map_err(|e| Error::io("read state stream", e))?;
    if let StreamStateHandle::File(file) = handle {
        if out.len() as u64 != file.size {
            return Err(Error::corrupted("state file has the wrong size")
                .with_context("path", &file.path)
                .with_context("expected", file.size)
                .with_context("actual", out.len()));
        }
        let crc = crc32fast::hash(&out);
        if crc != file.crc32 {
            return Err(Error::corrupted("state file checksum mismatch")
                .with_context("path", &file.path)
                .with_context("expected_crc32", format!("{:08x}", file.crc32))
                .with_context("actual_crc32", format!("{crc:08x}")));
        }
    }
    Ok(out)
}

/// Checkpoint storage in a map in memory: streams become [`FileStateHandle`]s, so tests and
/// benches exercise the file and range-read paths without a filesystem.
///
/// Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpointStorage {
    files: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
    next: Arc<AtomicU64>,
    bytes_read: Arc<AtomicU64>,
}

impl MemoryCheckpointStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream factory of checkpoint `id`.
    pub fn stream_factory(&self, id: CheckpointId) -> MemoryStreamFactory {
        MemoryStreamFactory {
            storage: self.clone(),
            checkpoint_id: id,
        }
    }

    /// The paths of every file, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.files.lock().keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Deletes a file; `false` if it did not exist.
    pub fn delete(&self, path: &str) -> bool {
        self.files.lock().remove(path).is_some()
    }

    /// Replaces the bytes of a file (for corruption tests).
    pub fn overwrite(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().insert(path.to_owned(), Arc::new(bytes));
    }

    /// The bytes of a file.
    pub fn get(&self, path: &str) -> Option<Arc<Vec<u8>>> {
        self.files.lock().get(path).cloned()
    }

    /// Total bytes handed out by [`StateReader::open_file`] so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// The total size of all files.
    pub fn total_size(&self) -> u64 {
        self.files.lock().values().map(|v| v.len() as u64).sum()
    }
}

impl StateReader for MemoryCheckpointStorage {
    fn open_file(
        &self,
        file: &FileStateHandle,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send + '_>> {
        let bytes = self.get(&file.path).ok_or_else(|| {
            Error::not_found("state file does not exist").with_context("path", &file.path)
        })?;
        if range.start > range.end || range.end > bytes.len() as u64 {
            return Err(
                Error::corrupted("read range beyond the end of the state file")
                    .with_context("path", &file.path)
                    .with_context("range", format!("{}..{}", range.start, range.end))
                    .with_context("size", bytes.len()),
            );
        }
        self.bytes_read
            .fetch_add(range.end - range.start, Ordering::Relaxed);
        let slice = bytes[range.start as usize..range.end as usize].to_vec();
        Ok(Box::new(std::io::Cursor::new(slice)))
    }
}

/// The stream factory of one checkpoint in a [`MemoryCheckpointStorage`].
#[derive(Debug, Clone)]
pub struct MemoryStreamFactory {
    storage: MemoryCheckpointStorage,
    checkpoint_id: CheckpointId,
}

impl CheckpointStreamFactory for MemoryStreamFactory {
    fn checkpoint_id(&self) -> CheckpointId {
        self.checkpoint_id
    }

    fn create(&self, scope: StateScope) -> Result<Box<dyn CheckpointOutputStream>> {
        let n = self.storage.next.fetch_add(1, Ordering::Relaxed);
        let path = match scope {
            StateScope::Exclusive => format!("chk-{}/state-{n}", self.checkpoint_id),
            StateScope::Shared => format!("shared/state-{n}"),
            StateScope::TaskOwned => format!("taskowned/state-{n}"),
        };
        Ok(Box::new(MemoryOutputStream {
            storage: self.storage.clone(),
            path,
            scope,
            buf: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct MemoryOutputStream {
    storage: MemoryCheckpointStorage,
    path: String,
    scope: StateScope,
    buf: Vec<u8>,
}

impl Write for MemoryOutputStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CheckpointOutputStream for MemoryOutputStream {
    fn position(&self) -> u64 {
        self.buf.len() as u64
    }

    fn close(self: Box<Self>) -> Result<StreamStateHandle> {
        let handle = FileStateHandle {
            path: self.path.clone(),
            scope: self.scope,
            size: self.buf.len() as u64,
            crc32: crc32fast::hash(&self.buf),
        };
        self.storage
            .files
            .lock()
            .insert(self.path, Arc::new(self.buf));
        Ok(StreamStateHandle::File(handle))
    }
}

/// A stream factory that keeps every stream inline (in `_metadata`), each capped at
/// `max_state_size` bytes: Flink's JobManager checkpoint storage, used by the memory
/// backend.
#[derive(Debug, Clone)]
pub struct InlineStreamFactory {
    checkpoint_id: CheckpointId,
    max_state_size: usize,
}

impl InlineStreamFactory {
    /// Inline streams of checkpoint `id`, each at most `max_state_size` bytes.
    pub fn new(checkpoint_id: CheckpointId, max_state_size: usize) -> Self {
        InlineStreamFactory {
            checkpoint_id,
            max_state_size,
        }
    }
}

impl CheckpointStreamFactory for InlineStreamFactory {
    fn checkpoint_id(&self) -> CheckpointId {
        self.checkpoint_id
    }

    fn create(&self, _scope: StateScope) -> Result<Box<dyn CheckpointOutputStream>> {
        Ok(Box::new(InlineOutputStream {
            checkpoint_id: self.checkpoint_id,
            max_state_size: self.max_state_size,
            buf: Vec::new(),
            attempted: 0,
        }))
    }
}

#[derive(Debug)]
struct InlineOutputStream {
    checkpoint_id: CheckpointId,
    max_state_size: usize,
    buf: Vec<u8>,
    /// Bytes the writer tried to write, counting those refused past the cap.
    attempted: u64,
}

impl InlineOutputStream {
    fn over_cap(&self) -> Error {
        Error::new(
            ErrorKind::LimitExceeded,
            "state snapshot exceeds the memory backend's max_state_size; raise the cap or \
             use the filesystem backend (cornerstone-backend-fs), which streams snapshots to files",
        )
        .with_context("checkpoint", self.checkpoint_id)
        // The writer stops at the first refused write: the snapshot is at least this big.
        .with_context("size", format!("at least {} bytes", self.attempted))
        .with_context("max_state_size", format!("{} bytes", self.max_state_size))
    }
}

impl Write for InlineOutputStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.attempted += data.len() as u64;
        if self.buf.len() + data.len() > self.max_state_size {
            return Err(std::io::Error::other(self.over_cap()));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CheckpointOutputStream for InlineOutputStream {
    fn position(&self) -> u64 {
        self.buf.len() as u64
    }

    fn close(self: Box<Self>) -> Result<StreamStateHandle> {
        if self.attempted > self.max_state_size as u64 {
            return Err(self.over_cap());
        }
        Ok(StreamStateHandle::Inline(self.buf))
    }
}

/// Turns an I/O error from writing a checkpoint stream back into the [`Error`] it carries
/// (such as the inline cap), or wraps it.
pub fn stream_write_error(op: &'static str, e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(err) = inner.downcast::<Error>()
        {
            return *err;
        }
        return Error::internal("lost the error of a checkpoint stream");
    }
    Error::io(op, e)
}
