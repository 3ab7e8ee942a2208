//! [`StoreStreamFactory`]: the stream factory of one checkpoint or savepoint, and the output
//! stream that keeps small streams inline and uploads larger ones in chunks.
//!
//! The output stream is a [`std::io::Write`] for backends, so it writes through OpenDAL's
//! blocking writer (over the shared I/O runtime): that writer works wherever blocking is
//! allowed, a runtime's blocking pool included, where the blocking API's `block_on` refuses
//! to run (it cannot tell a blocking-pool thread from a worker).

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use cornerstone_backend_api::{
    CheckpointId, CheckpointOutputStream, CheckpointStreamFactory, Error, FileStateHandle, Result,
    StateScope, StreamStateHandle,
};
use parking_lot::Mutex;

use super::{CheckpointStore, random_name};
use crate::error::from_opendal;
use crate::layout;

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
            self.writer = Some(
                self.factory
                    .store
                    .inner
                    .op
                    .writer(&self.full)
                    .map_err(|e| from_opendal("open writer", &self.full, e))?,
            );
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
