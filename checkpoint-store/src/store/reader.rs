//! [`StoreStateReader`]: reads state files of a checkpoint or savepoint with range reads.

use std::io::Read;
use std::ops::Range;

use cornerstone_backend_api::{Error, FileStateHandle, Result, StateReader};

use super::CheckpointStore;
use crate::error::from_opendal;
use crate::layout;

impl CheckpointStore {
    /// A state reader that resolves handle paths against `base_dir` (a job directory for
    /// checkpoints, the savepoint directory for savepoints).
    pub fn reader(&self, base_dir: &str) -> StoreStateReader {
        StoreStateReader {
            store: self.clone(),
            base: base_dir.to_owned(),
        }
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
    ///
    /// [`ErrorKind::Corrupted`]: cornerstone_backend_api::ErrorKind::Corrupted
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
