//! [`detect_format`]: whether a location holds Cornerstone's or Apache Flink's `_metadata`.

use cornerstone_backend_api::Result;

use super::{Target, job_metadata, target};
use crate::flink;
use crate::status::MAX_METADATA_FILE;
use crate::store::CheckpointStore;

/// The format of a location's `_metadata`, by its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataFormat {
    /// Cornerstone's own (`CSMD`): the [`inspect`](crate::inspect) functions.
    Cornerstone,
    /// Apache Flink's (`0x4960672d`): the `flink_*` functions.
    Flink,
    /// No `_metadata` was found, or it starts with neither magic number (Cornerstone's
    /// functions report it as corrupt).
    Unknown,
}

/// Tells which format the `_metadata` a location names is in: a `_metadata` file, a
/// directory with one, or a job directory (its newest `chk-N/` with a `_metadata`, else its
/// first savepoint with one). Reads the one `_metadata` it decides by.
///
/// # Errors
/// Storage errors.
pub fn detect_format(store: &CheckpointStore, path: &str) -> Result<MetadataFormat> {
    let meta = match target(store, path)? {
        Target::Metadata(m) => m,
        Target::JobDir(dir) => {
            let (with, _) = job_metadata(store, &dir)?;
            // Newest checkpoint first, then savepoints (listed after the checkpoints).
            let newest = with
                .iter()
                .rev()
                .find(|(id, _)| id.is_some())
                .or_else(|| with.first());
            match newest {
                Some((_, m)) => m.clone(),
                None => return Ok(MetadataFormat::Unknown),
            }
        }
    };
    let bytes = match store.read_small(&meta, MAX_METADATA_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == cornerstone_backend_api::ErrorKind::NotFound => {
            return Ok(MetadataFormat::Unknown);
        }
        // Too large for either format, or unreadable: the commands say why.
        Err(e) if e.kind() == cornerstone_backend_api::ErrorKind::Corrupted => {
            return Ok(MetadataFormat::Unknown);
        }
        Err(e) => return Err(e),
    };
    Ok(if flink::is_flink_metadata(&bytes) {
        MetadataFormat::Flink
    } else if bytes.starts_with(b"CSMD") {
        MetadataFormat::Cornerstone
    } else {
        MetadataFormat::Unknown
    })
}
