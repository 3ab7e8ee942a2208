//! The one mapping of RocksDB errors into the family's [`Error`].

use cornerstone_backend_api::{Error, ErrorKind};

/// Maps a RocksDB error, naming the operation.
pub(crate) fn from_rocksdb(op: &'static str, e: rocksdb::Error) -> Error {
    use rocksdb::ErrorKind as R;
    let kind = match e.kind() {
        R::NotFound => ErrorKind::NotFound,
        R::Corruption => ErrorKind::Corrupted,
        R::InvalidArgument => ErrorKind::InvalidInput,
        R::NotSupported => ErrorKind::Unsupported,
        R::IOError | R::Busy | R::TimedOut | R::TryAgain | R::Incomplete => ErrorKind::Unavailable,
        R::ShutdownInProgress => ErrorKind::Closed,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, "rocksdb call failed")
        .with_context("op", op)
        .with_source(e)
}

/// Maps an I/O error on a local path.
pub(crate) fn local_io(op: &'static str, path: &std::path::Path, e: std::io::Error) -> Error {
    Error::io(op, e).with_context("path", path.display())
}
