//! The stream-factory contract between backends and checkpoint storage.
//!
//! A backend's asynchronous snapshot phase writes bytes through a
//! [`CheckpointStreamFactory`] and gets back plain-data [`StreamStateHandle`]s; a restore
//! reads them back through a [`StateReader`]. `cornerstone-checkpoint-store` implements both
//! over OpenDAL; this module has two in-memory implementations:
//! [`MemoryCheckpointStorage`] (files in a map, for tests) and [`InlineStreamFactory`]
//! (everything inline, capped).
//!
//! Whether a stream's bytes stay inline is decided by the factory alone: the
//! [`CheckpointStreamFactory::create`] of a storage may keep small streams inline, and a
//! backend that keeps its snapshot in the metadata (the memory backend) asks the factory
//! for [`CheckpointStreamFactory::create_inline`] streams.

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

    /// A stream whose bytes stay inline in the checkpoint's metadata, refused past
    /// `max_state_size` bytes ([`ErrorKind::LimitExceeded`] naming the sizes): Flink's
    /// JobManager checkpoint storage, what the memory backend writes. Every inline handle
    /// comes from a stream factory, from this method or from [`create`](Self::create)'s own
    /// small-stream threshold; backends only ask. The default keeps the bytes in memory.
    ///
    /// # Errors
    /// Storage errors.
    fn create_inline(&self, max_state_size: usize) -> Result<Box<dyn CheckpointOutputStream>> {
        Ok(Box::new(InlineOutputStream::new(
            self.checkpoint_id(),
            max_state_size,
        )))
    }
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

/// Reads a whole stream into memory, checking a file's size and CRC32 (as
/// [`copy_stream`]).
///
/// # Errors
/// As [`copy_stream`].
pub fn read_stream(
    handle: &StreamStateHandle,
    reader: Option<&dyn StateReader>,
) -> Result<Vec<u8>> {
    // The recorded size is untrusted: it sizes the first allocation only up to 64 MiB.
    let mut out = Vec::with_capacity(handle.size().min(64 << 20) as usize);
    copy_stream(handle, reader, &mut out)?;
    Ok(out)
}

/// Copies a whole stream to `out` in chunks of 1 MiB, checking a file's size and CRC32
/// against its handle ([`FileStateHandle::check_content`]) as the bytes pass: a file of
/// any size costs one chunk of memory. Returns the bytes copied.
///
/// The check comes at the end, so `out` may have received the bytes of a corrupted file:
/// a caller that keeps `out` only on success needs nothing else.
///
/// # Errors
/// [`ErrorKind::Corrupted`] naming the path when the size or checksum differs; reader
/// errors; an [`Error::io`] error (its kind from the I/O error) when `out` fails.
pub fn copy_stream(
    handle: &StreamStateHandle,
    reader: Option<&dyn StateReader>,
    out: &mut dyn Write,
) -> Result<u64> {
    const CHUNK: usize = 1 << 20;
    let mut input = open_stream(handle, reader, 0..handle.size())?;
    let mut buf = vec![0u8; CHUNK.min(handle.size() as usize).max(1)];
    let mut hasher = crc32fast::Hasher::new();
    let mut copied = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_read_error(handle, e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("write a copied state stream", e))?;
        copied = copied.saturating_add(n as u64);
    }
    if let StreamStateHandle::File(file) = handle {
        file.check_content(copied, hasher.finalize())
            .map_err(|m| m.into_error(&file.path))?;
    }
    Ok(copied)
}

/// An error of reading `handle`: the [`Error`] a reader put in the I/O error, or an I/O
/// error naming the file.
fn stream_read_error(handle: &StreamStateHandle, e: std::io::Error) -> Error {
    let e = stream_write_error("read state stream", e);
    match handle {
        StreamStateHandle::File(file) if e.context("path").is_none() => {
            e.with_context("path", &file.path)
        }
        _ => e,
    }
}

/// Checkpoint storage in a map in memory: streams become [`FileStateHandle`]s, so tests and
/// benches exercise the file and range-read paths without a filesystem. Files have flat
/// names (`exclusive-<checkpoint>-<n>`, `shared-<n>`, `task-owned-<n>`); the directory
/// layout of a job's checkpoints is the checkpoint store's.
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
        // Flat names, not the checkpoint store's directory layout (which is that crate's).
        let path = match scope {
            StateScope::Exclusive => format!("exclusive-{}-{n}", self.checkpoint_id.0),
            StateScope::Shared => format!("shared-{n}"),
            StateScope::TaskOwned => format!("task-owned-{n}"),
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
/// `max_state_size` bytes: [`CheckpointStreamFactory::create_inline`] for every stream, as
/// for a backend's snapshot carried in a message rather than in storage.
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
        self.create_inline(self.max_state_size)
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
    fn new(checkpoint_id: CheckpointId, max_state_size: usize) -> Self {
        InlineOutputStream {
            checkpoint_id,
            max_state_size,
            buf: Vec::new(),
            attempted: 0,
        }
    }

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

/// Turns an I/O error from writing (or reading) a checkpoint stream back into the [`Error`]
/// it carries (such as the inline cap, or a storage error naming the path), or wraps it.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write_file(storage: &MemoryCheckpointStorage, bytes: &[u8]) -> (StreamStateHandle, String) {
        let mut out = storage
            .stream_factory(CheckpointId(1))
            .create(StateScope::Exclusive)
            .unwrap();
        out.write_all(bytes).unwrap();
        let handle = out.close().unwrap();
        let StreamStateHandle::File(file) = &handle else {
            panic!("the memory storage writes files")
        };
        let path = file.path.clone();
        (handle, path)
    }

    #[test]
    fn copy_stream_checks_size_and_checksum_of_a_file_of_several_chunks() {
        let storage = MemoryCheckpointStorage::new();
        let payload: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        let (handle, path) = write_file(&storage, &payload);

        let mut out = Vec::new();
        let copied = copy_stream(&handle, Some(&storage), &mut out).unwrap();
        assert_eq!(copied, payload.len() as u64);
        assert!(out == payload);
        assert!(read_stream(&handle, Some(&storage)).unwrap() == payload);

        // One bit flipped in the third chunk.
        let mut flipped = payload.clone();
        flipped[(2 << 20) + 5] ^= 1;
        storage.overwrite(&path, flipped);
        let e = copy_stream(&handle, Some(&storage), &mut std::io::sink()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
        assert_eq!(e.context("path"), Some(path.as_str()));

        // A longer file with the recorded prefix: the extra bytes are not read, the prefix
        // matches. A file shorter than recorded cannot be read to its recorded end.
        let mut longer = payload.clone();
        longer.extend_from_slice(b"tail");
        storage.overwrite(&path, longer);
        assert!(read_stream(&handle, Some(&storage)).unwrap() == payload);
        storage.overwrite(&path, payload[..1000].to_vec());
        let e = read_stream(&handle, Some(&storage)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
        assert_eq!(e.context("path"), Some(path.as_str()));
    }

    #[test]
    fn check_content_names_what_differs() {
        let file = FileStateHandle {
            path: "chk-1/f".into(),
            scope: StateScope::Exclusive,
            size: 10,
            crc32: 0xabcd,
        };
        assert_eq!(file.check_content(10, 0xabcd), Ok(()));
        let size = file.check_content(9, 0xabcd).unwrap_err();
        assert_eq!(size.to_string(), "expected 10 bytes, found 9");
        let e = size.into_error(&file.path);
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert_eq!(e.context("expected"), Some("10"));
        assert_eq!(e.context("actual"), Some("9"));
        let crc = file.check_content(10, 1).unwrap_err();
        assert_eq!(crc.to_string(), "expected crc32 0000abcd, found 00000001");
        assert_eq!(
            crc.into_error(&file.path).context("expected_crc32"),
            Some("0000abcd")
        );
    }

    #[test]
    fn copy_stream_reports_a_failing_output() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "disk full",
                ))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let storage = MemoryCheckpointStorage::new();
        let (handle, _) = write_file(&storage, b"some bytes");
        let e = copy_stream(&handle, Some(&storage), &mut Full).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        let inline = StreamStateHandle::Inline(b"inline".to_vec());
        let mut out = Vec::new();
        assert_eq!(copy_stream(&inline, None, &mut out).unwrap(), 6);
        assert_eq!(out, b"inline");
    }
}
