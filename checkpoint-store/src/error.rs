//! The one place that maps OpenDAL errors to [`ErrorKind`].
//!
//! Every OpenDAL error kind is mapped deliberately. For kinds that say something definite
//! about the object or the request, the kind decides; for the others, OpenDAL's retry status
//! decides ([`opendal::Error::is_temporary`]): only a temporary error is
//! [`ErrorKind::Unavailable`] (retryable), while a permanent one, or one that stayed after
//! retries (persistent), is [`ErrorKind::Internal`].
//!
//! | OpenDAL kind | status | [`ErrorKind`] | why |
//! |---|---|---|---|
//! | `NotFound` | any | `NotFound` | |
//! | `AlreadyExists` | any | `AlreadyExists` | |
//! | `ConditionNotMatch` | any | `AlreadyExists` | our only caller condition is if-not-exists |
//! | `RangeNotSatisfied` | any | `Corrupted` | our reads stay within the size a handle records, so the object is shorter than recorded (truncated or replaced) |
//! | `ConfigInvalid` | any | `InvalidInput` | bad configuration (a missing bucket, an invalid option) |
//! | `PermissionDenied` | any | `InvalidInput` | credentials or ACLs to fix; retrying will not help |
//! | `IsADirectory`, `NotADirectory` | any | `InvalidInput` | the path names the wrong kind of entry |
//! | `Unexpected` from an I/O `NotADirectory` (the fs service) | any | `InvalidInput` | as `NotADirectory` |
//! | `IsSameFile` | any | `InvalidInput` | a copy or rename onto itself |
//! | `Unsupported` | any | `Unsupported` | the service lacks the operation |
//! | `RateLimited` | any | `Unavailable` | slowing down and retrying helps, even after the retries OpenDAL made |
//! | `Conflict`, `Unexpected`, kinds added later | temporary | `Unavailable` | OpenDAL says a retry may succeed |
//! | `Conflict`, `Unexpected`, kinds added later | permanent or persistent | `Internal` | OpenDAL says a retry will not help |
//!
//! OpenDAL sets the temporary status only on `Unexpected`, `RateLimited` and `Conflict`
//! errors, so ignoring it for the definite kinds loses nothing.
//!
//! The error keeps the OpenDAL error as its source ([`std::error::Error::source`]), and names
//! the operation (`op`) and the path (`path`) as context.
//!
//! Reads through [`std::io::Read`] report OpenDAL's errors as [`std::io::Error`]s (kind
//! `Other`) that callers map with [`Error::io`]; [`MapReadErrors`] classifies them here first.

use std::io::{self, Read};

use cornerstone_backend_api::{Error, ErrorKind};

/// The [`ErrorKind`] of an OpenDAL error (see the table in the module documentation).
pub(crate) fn kind_of(e: &opendal::Error) -> ErrorKind {
    use opendal::ErrorKind as O;
    match e.kind() {
        O::NotFound => ErrorKind::NotFound,
        O::AlreadyExists | O::ConditionNotMatch => ErrorKind::AlreadyExists,
        O::RangeNotSatisfied => ErrorKind::Corrupted,
        O::ConfigInvalid
        | O::PermissionDenied
        | O::IsADirectory
        | O::NotADirectory
        | O::IsSameFile => ErrorKind::InvalidInput,
        O::Unsupported => ErrorKind::Unsupported,
        O::RateLimited => ErrorKind::Unavailable,
        // The fs service reports a file where a directory is expected as `Unexpected`
        // (temporary): it is `NotADirectory`, and no retry helps.
        O::Unexpected if not_a_directory(e) => ErrorKind::InvalidInput,
        // `Conflict`, `Unexpected` and kinds added to OpenDAL later: its retry status decides.
        // Persistent: temporary, and still failing after the retries of a retry layer.
        _ if e.is_temporary() || e.is_persistent() => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Whether the I/O error behind `e` is `NotADirectory` (a path crosses a file).
fn not_a_directory(e: &opendal::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cause {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::NotADirectory)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Maps an OpenDAL error, naming the operation and the path.
pub(crate) fn from_opendal(op: &'static str, path: &str, e: opendal::Error) -> Error {
    let kind = kind_of(&e);
    let message = match (kind, e.kind()) {
        (ErrorKind::NotFound, _) => "object not found in checkpoint storage",
        (ErrorKind::AlreadyExists, _) => "object already exists in checkpoint storage",
        (_, opendal::ErrorKind::RangeNotSatisfied) => {
            "object in checkpoint storage is shorter than recorded (truncated or replaced)"
        }
        (ErrorKind::InvalidInput, opendal::ErrorKind::PermissionDenied) => {
            "checkpoint storage denied permission"
        }
        (
            ErrorKind::InvalidInput,
            opendal::ErrorKind::NotADirectory | opendal::ErrorKind::Unexpected,
        ) => "the path goes through a file where a directory is expected",
        _ => "checkpoint storage operation failed",
    };
    let error = Error::new(kind, message)
        .with_context("op", op)
        .with_context("path", path);
    if kind == ErrorKind::InvalidInput && e.kind() == opendal::ErrorKind::Unexpected {
        // A file where a directory is expected: OpenDAL's text would call it temporary.
        return error.with_context("cause", "not a directory");
    }
    error.with_source(e)
}

/// The [`io::ErrorKind`] that [`Error::io`] maps back to `kind`, so that an [`Error`] carried
/// through an [`io::Error`] keeps its kind even where the carried error is not looked at.
fn io_kind_of(kind: ErrorKind) -> io::ErrorKind {
    match kind {
        ErrorKind::NotFound => io::ErrorKind::NotFound,
        ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
        ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
        ErrorKind::Unsupported => io::ErrorKind::Unsupported,
        ErrorKind::Corrupted => io::ErrorKind::InvalidData,
        // Not `Interrupted`: `Read::read_to_end` and `read_exact` retry that forever.
        ErrorKind::Unavailable => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    }
}

/// Classifies a read error: an OpenDAL error carried by `e` becomes an [`Error`] mapped by
/// [`from_opendal`] (naming `path`), carried by an [`io::Error`] of the matching kind. Any
/// other error is returned unchanged.
pub(crate) fn map_read_error(path: &str, e: io::Error) -> io::Error {
    if !e
        .get_ref()
        .is_some_and(|inner| inner.is::<opendal::Error>())
    {
        return e;
    }
    let io_kind = e.kind();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<opendal::Error>())
    {
        Some(Ok(opendal_error)) => {
            let error = from_opendal("read", path, *opendal_error);
            io::Error::new(io_kind_of(error.kind()), error)
        }
        Some(Err(inner)) => io::Error::new(io_kind, inner),
        None => io::Error::from(io_kind),
    }
}

/// A reader of a state file in checkpoint storage that classifies OpenDAL's errors with
/// [`map_read_error`] (a truncated file is [`ErrorKind::Corrupted`], not a transient
/// failure). [`StoreStateReader`](crate::StoreStateReader) wraps its readers in it.
#[derive(Debug)]
pub(crate) struct MapReadErrors<R> {
    inner: R,
    path: String,
}

impl<R: Read> MapReadErrors<R> {
    /// Wraps `inner`, a reader of the object at `path` (inside the store).
    pub(crate) fn new(inner: R, path: impl Into<String>) -> Self {
        MapReadErrors {
            inner,
            path: path.into(),
        }
    }
}

impl<R: Read> Read for MapReadErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| map_read_error(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use opendal::ErrorKind as O;

    fn kind(e: opendal::Error) -> ErrorKind {
        from_opendal("read", "job/chk-1/f", e).kind()
    }

    #[test]
    fn definite_kinds_map_by_kind() {
        for (o, expected) in [
            (O::NotFound, ErrorKind::NotFound),
            (O::AlreadyExists, ErrorKind::AlreadyExists),
            (O::ConditionNotMatch, ErrorKind::AlreadyExists),
            (O::RangeNotSatisfied, ErrorKind::Corrupted),
            (O::ConfigInvalid, ErrorKind::InvalidInput),
            (O::PermissionDenied, ErrorKind::InvalidInput),
            (O::IsADirectory, ErrorKind::InvalidInput),
            (O::NotADirectory, ErrorKind::InvalidInput),
            (O::IsSameFile, ErrorKind::InvalidInput),
            (O::Unsupported, ErrorKind::Unsupported),
            (O::RateLimited, ErrorKind::Unavailable),
        ] {
            assert_eq!(kind(opendal::Error::new(o, "x")), expected, "{o}");
            assert_eq!(
                kind(opendal::Error::new(o, "x").set_persistent()),
                expected,
                "{o} persistent"
            );
        }
    }

    #[test]
    fn unexpected_and_conflict_map_by_retry_status() {
        for o in [O::Unexpected, O::Conflict] {
            // Persistent: temporary, and still failing after a retry layer's retries (an
            // outage longer than the retries): still worth retrying later.
            for e in [
                opendal::Error::new(o, "x").set_temporary(),
                opendal::Error::new(o, "x").set_persistent(),
            ] {
                let mapped = from_opendal("write", "p", e);
                assert_eq!(mapped.kind(), ErrorKind::Unavailable, "{o}: {mapped}");
                assert!(mapped.is_retryable());
            }
            for e in [
                opendal::Error::new(o, "x"),
                opendal::Error::new(o, "x").set_permanent(),
            ] {
                let mapped = from_opendal("write", "p", e);
                assert_eq!(mapped.kind(), ErrorKind::Internal, "{o}: {mapped}");
                assert!(!mapped.is_retryable());
            }
        }
    }

    #[test]
    fn mapped_error_names_op_and_path_and_keeps_the_source() {
        let e = from_opendal(
            "read",
            "job/chk-1/f",
            opendal::Error::new(O::RangeNotSatisfied, "range exceeds content length"),
        );
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert_eq!(e.context("op"), Some("read"));
        assert_eq!(e.context("path"), Some("job/chk-1/f"));
        let source = std::error::Error::source(&e).unwrap();
        let source = source.downcast_ref::<opendal::Error>().unwrap();
        assert_eq!(source.kind(), O::RangeNotSatisfied);
        let shown = e.to_string();
        assert!(shown.contains("shorter than recorded"), "{shown}");
        assert!(shown.contains("range exceeds content length"), "{shown}");
    }

    /// A reader failing as OpenDAL's `StdReader` does on a file shorter than the range.
    struct Failing(Option<opendal::Error>);

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other(self.0.take().unwrap()))
        }
    }

    #[test]
    fn read_errors_are_classified_through_error_io() {
        for (o, expected) in [
            (O::RangeNotSatisfied, ErrorKind::Corrupted),
            (O::NotFound, ErrorKind::NotFound),
            (O::Unexpected, ErrorKind::Internal),
        ] {
            let mut r =
                MapReadErrors::new(Failing(Some(opendal::Error::new(o, "x"))), "job/chk-1/f");
            let io_error = r.read_to_end(&mut Vec::new()).unwrap_err();
            let e = Error::io("read state stream", io_error);
            assert_eq!(e.kind(), expected, "{o}: {e}");
            assert!(e.to_string().contains("job/chk-1/f"), "{o}: {e}");
        }
        // Temporary: retryable, and not `Interrupted` (which `read_to_end` would retry forever).
        let mut r = MapReadErrors::new(
            Failing(Some(
                opendal::Error::new(O::Unexpected, "x").set_temporary(),
            )),
            "p",
        );
        let io_error = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(io_error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Error::io("read", io_error).kind(), ErrorKind::Unavailable);
        // Other errors pass through unchanged.
        let plain = map_read_error("p", io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        assert_eq!(plain.kind(), io::ErrorKind::UnexpectedEof);
    }
}
