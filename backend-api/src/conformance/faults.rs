//! Fault injection: stream factories that fail, readers that serve damaged files.

use std::io::{Read, Write};
use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::handles::{CheckpointId, FileStateHandle, StateScope, StreamStateHandle};
use crate::stream::{CheckpointOutputStream, CheckpointStreamFactory, StateReader};

/// How a [`FailingStreamFactory`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// `create` fails.
    Create,
    /// Writes fail once the stream holds this many bytes.
    WriteAfter(u64),
    /// `close` fails.
    Close,
}

/// A stream factory that fails as told, delegating to another one until then.
#[derive(Debug)]
pub struct FailingStreamFactory {
    inner: Box<dyn CheckpointStreamFactory>,
    mode: FailureMode,
}

impl FailingStreamFactory {
    /// Wraps `inner`, failing as `mode` says.
    pub fn new(inner: Box<dyn CheckpointStreamFactory>, mode: FailureMode) -> Self {
        FailingStreamFactory { inner, mode }
    }
}

fn injected() -> Error {
    Error::new(ErrorKind::Unavailable, "injected storage failure")
}

impl CheckpointStreamFactory for FailingStreamFactory {
    fn checkpoint_id(&self) -> CheckpointId {
        self.inner.checkpoint_id()
    }

    fn create(&self, scope: StateScope) -> Result<Box<dyn CheckpointOutputStream>> {
        if self.mode == FailureMode::Create {
            return Err(injected());
        }
        Ok(Box::new(FailingStream {
            inner: self.inner.create(scope)?,
            mode: self.mode,
        }))
    }
}

#[derive(Debug)]
struct FailingStream {
    inner: Box<dyn CheckpointOutputStream>,
    mode: FailureMode,
}

impl Write for FailingStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let FailureMode::WriteAfter(limit) = self.mode
            && self.inner.position() + data.len() as u64 > limit
        {
            return Err(std::io::Error::other(injected()));
        }
        self.inner.write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl CheckpointOutputStream for FailingStream {
    fn position(&self) -> u64 {
        self.inner.position()
    }

    fn close(self: Box<Self>) -> Result<StreamStateHandle> {
        if self.mode == FailureMode::Close {
            return Err(injected());
        }
        self.inner.close()
    }
}

/// How a [`DamagingReader`] damages a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// XORs the byte at this position with `0xFF`.
    Flip(u64),
    /// Serves only this many bytes: reads past them end early.
    Truncate(u64),
}

impl Damage {
    /// Applies the damage to bytes held in memory.
    pub(crate) fn apply(self, bytes: &mut Vec<u8>) {
        match self {
            Damage::Flip(at) => {
                if let Some(b) = bytes.get_mut(at as usize) {
                    *b ^= 0xFF;
                }
            }
            Damage::Truncate(len) => bytes.truncate(len as usize),
        }
    }
}

/// A reader that serves one file damaged, and every other file as `inner` does, as a
/// storage with a bad disk would.
#[derive(Debug)]
pub(crate) struct DamagingReader {
    pub(crate) inner: Arc<dyn StateReader>,
    pub(crate) path: String,
    pub(crate) damage: Damage,
}

impl StateReader for DamagingReader {
    fn open_file(
        &self,
        file: &FileStateHandle,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send + '_>> {
        if file.path != self.path {
            return self.inner.open_file(file, range);
        }
        let mut bytes = Vec::new();
        self.inner
            .open_file(file, 0..file.size)?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read state file", e))?;
        self.damage.apply(&mut bytes);
        let len = bytes.len() as u64;
        let start = range.start.min(len) as usize;
        let end = range.end.min(len) as usize;
        let slice = bytes
            .get(start..end.max(start))
            .unwrap_or_default()
            .to_vec();
        Ok(Box::new(std::io::Cursor::new(slice)))
    }
}

/// A stream factory whose first write blocks, as storage stalled in I/O would: the
/// blocked writer reports through `entered` and waits until the sender of `release` is
/// dropped. Writes after the release do not block.
#[derive(Debug)]
pub(crate) struct BlockingStreamFactory {
    pub(crate) inner: Box<dyn CheckpointStreamFactory>,
    pub(crate) entered: std::sync::mpsc::SyncSender<()>,
    pub(crate) release: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl CheckpointStreamFactory for BlockingStreamFactory {
    fn checkpoint_id(&self) -> CheckpointId {
        self.inner.checkpoint_id()
    }

    fn create(&self, scope: StateScope) -> Result<Box<dyn CheckpointOutputStream>> {
        Ok(Box::new(BlockingStream {
            inner: self.inner.create(scope)?,
            entered: Some(self.entered.clone()),
            release: Arc::clone(&self.release),
        }))
    }
}

#[derive(Debug)]
struct BlockingStream {
    inner: Box<dyn CheckpointOutputStream>,
    entered: Option<std::sync::mpsc::SyncSender<()>>,
    release: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl Write for BlockingStream {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(entered) = self.entered.take() {
            // Only the first stream to write reports and blocks; the others see a
            // disconnected or full channel and go on.
            if entered.try_send(()).is_ok() {
                let release = self.release.lock().unwrap_or_else(|e| e.into_inner());
                // Ends when the sender is dropped (no message is ever sent).
                let _ = release.recv();
            }
        }
        self.inner.write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl CheckpointOutputStream for BlockingStream {
    fn position(&self) -> u64 {
        self.inner.position()
    }

    fn close(self: Box<Self>) -> Result<StreamStateHandle> {
        self.inner.close()
    }
}
