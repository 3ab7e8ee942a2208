//! The one public error type of the Cornerstone crate family.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, as a small, stable set that callers branch on.
///
/// The details are in the message, the context pairs and [`std::error::Error::source`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A checkpoint, state, file or key that was asked for does not exist.
    NotFound,
    /// Something that must be created once exists already.
    AlreadyExists,
    /// The caller passed something invalid: a bad configuration, an incompatible
    /// descriptor, an out-of-range key group. Fix the input; retrying will not help.
    InvalidInput,
    /// The operation is not supported by this implementation or format version.
    Unsupported,
    /// Stored data failed a check (magic, checksum, length, decoding).
    Corrupted,
    /// A resource limit was hit, such as the memory backend's `max_state_size`.
    LimitExceeded,
    /// A transient failure of the storage or the engine; the operation may be retried.
    Unavailable,
    /// The backend or store was closed.
    Closed,
    /// An operation failed in a way that leaves its outcome unknown: it may or may not have
    /// taken effect (a commit whose response was lost). Nothing was cleaned up; the next
    /// reader of the storage finds out which (Flink's `PossibleInconsistentStateException`).
    OutcomeUnknown,
    /// Another writer took over (a newer epoch holds the job directory's lease): this writer
    /// must stop; it committed and deleted nothing.
    Fenced,
    /// A bug or an unexpected condition.
    Internal,
}

impl ErrorKind {
    /// A short lower-case name, used in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Corrupted => "corrupted",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Closed => "closed",
            ErrorKind::OutcomeUnknown => "outcome unknown",
            ErrorKind::Fenced => "fenced",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every Cornerstone crate: a kind, a message, context pairs and a source.
///
/// # Display and `source()`
///
/// `Display` (with or without `{:#}`) is one line that tells the whole story:
/// `kind: message (key=value, ...)`, followed by `: source` when there is a source (the
/// source's own `Display`, which for I/O and OpenDAL errors includes their causes). So an
/// `Error` is printed for a human with `{}`: our messages, logs and reports do that, and
/// strings kept from it (`to_string()`) keep the cause.
///
/// [`source()`](std::error::Error::source) returns the same underlying error, for programs
/// that inspect or downcast it (such as to an `std::io::Error` or an `opendal::Error`).
///
/// The rule for printers: print an `Error` with `{}` and do not walk its `source()` chain
/// for display, or the cause shows twice. A printer that walks chains for other error types
/// (anyhow's `{:#}`) skips a cause whose text the message printed so far already contains,
/// as the `cornerstone` command-line tool does (OpenDAL's errors print their sources the
/// same way).
///
/// An `Error` is one pointer wide, so that a `Result` of a small value (the value of a
/// state, say) is returned in registers on the hot paths that almost never fail; what it
/// says lives on the heap.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    context: Vec<(&'static str, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of every Cornerstone crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                context: Vec::new(),
                source: None,
            }),
        }
    }

    /// Adds a `key=value` context pair, such as `("checkpoint", 42)` or `("path", ..)`.
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.inner.context.push((key, value.to_string()));
        self
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without context or source.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The value of a context pair, if present.
    pub fn context(&self, key: &str) -> Option<&str> {
        self.inner
            .context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every context pair, in the order they were added.
    pub fn contexts(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.inner.context.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// Rewrites context values in place, `f` receiving each key and value: how a tool
    /// presents them (a path inside a store as the location the user typed, say) without
    /// rebuilding the error.
    pub fn map_contexts(&mut self, mut f: impl FnMut(&'static str, &mut String)) {
        for (key, value) in &mut self.inner.context {
            f(key, value);
        }
    }

    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind == ErrorKind::Unavailable
    }

    /// The underlying error, if any (also printed by `Display`, and returned by
    /// [`source()`](std::error::Error::source)).
    pub fn inner(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.inner.source.as_deref()
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::Corrupted`].
    pub fn corrupted(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Corrupted, message)
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// An I/O error, classified by its kind.
    ///
    /// An I/O error that carries an [`Error`] (as readers and writers of checkpoint streams
    /// return through `std::io`) gives back that error, with its kind.
    pub fn io(op: &'static str, e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return match e.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(carried)) => *carried,
                _ => {
                    Error::internal("lost the error carried by an i/o error").with_context("op", op)
                }
            };
        }
        let kind = match e.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::InvalidInput => ErrorKind::InvalidInput,
            Io::InvalidData | Io::UnexpectedEof => ErrorKind::Corrupted,
            Io::Unsupported => ErrorKind::Unsupported,
            Io::Interrupted
            | Io::TimedOut
            | Io::WouldBlock
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::ConnectionRefused
            | Io::BrokenPipe => ErrorKind::Unavailable,
            // The location is not usable as configured: retrying will not help.
            Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::InvalidInput,
            Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => ErrorKind::LimitExceeded,
            // Anything else (EIO and other unknown failures) is not known to be transient:
            // never report it as retryable.
            _ => ErrorKind::Internal,
        };
        Error::new(kind, "i/o failed")
            .with_context("op", op)
            .with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, self.inner.message)?;
        if !self.inner.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.inner.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str(")")?;
        }
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if !self.inner.context.is_empty() {
            d.field("context", &self.inner.context);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    /// The underlying error (also printed by `Display`: see the type's documentation).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io("io", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a state's `get` returns fits two registers.
    #[test]
    fn errors_are_one_pointer_and_small_results_two_words() {
        assert_eq!(size_of::<Error>(), size_of::<usize>());
        assert_eq!(size_of::<Result<()>>(), size_of::<usize>());
        assert!(size_of::<Result<Option<u64>>>() <= 2 * size_of::<usize>());
    }

    #[test]
    fn io_errors_are_retryable_only_when_known_to_be_transient() {
        use std::io::{Error as IoError, ErrorKind as Io};
        let kind = |k| Error::io("op", IoError::from(k)).kind();
        assert_eq!(kind(Io::TimedOut), ErrorKind::Unavailable);
        assert_eq!(kind(Io::ConnectionReset), ErrorKind::Unavailable);
        assert_eq!(kind(Io::PermissionDenied), ErrorKind::InvalidInput);
        assert_eq!(kind(Io::StorageFull), ErrorKind::LimitExceeded);
        assert_eq!(kind(Io::UnexpectedEof), ErrorKind::Corrupted);
        // EIO: unknown, so not retryable.
        let eio = Error::io("sync directory", IoError::from_raw_os_error(5));
        assert_eq!(eio.kind(), ErrorKind::Internal);
        assert!(!eio.is_retryable());
    }

    #[test]
    fn display_is_one_line_with_context_and_source() {
        let e = Error::new(ErrorKind::Corrupted, "checksum mismatch")
            .with_context("checkpoint", 42)
            .with_context("path", "chk-42/_metadata")
            .with_source(std::io::Error::other("boom"));
        assert_eq!(
            e.to_string(),
            "corrupted: checksum mismatch (checkpoint=42, path=chk-42/_metadata): boom"
        );
        assert_eq!(
            format!("{e:#}"),
            e.to_string(),
            "the alternate form is the same"
        );
        assert_eq!(e.context("checkpoint"), Some("42"));
        assert!(!e.is_retryable());
    }

    #[test]
    fn source_returns_the_underlying_error() {
        let e = Error::io(
            "read",
            std::io::Error::new(std::io::ErrorKind::InvalidData, "bad byte"),
        );
        let source = std::error::Error::source(&e).expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(io.to_string(), "bad byte");
        assert!(std::error::Error::source(&Error::internal("no source")).is_none());
    }

    #[test]
    fn io_gives_back_a_carried_error_with_its_kind() {
        let carried = Error::internal("a persistent storage failure").with_context("path", "p");
        let e = Error::io("read state stream", std::io::Error::other(carried));
        assert_eq!(e.kind(), ErrorKind::Internal, "not Unavailable: {e}");
        assert_eq!(e.message(), "a persistent storage failure");
        assert_eq!(e.context("path"), Some("p"));
        // An I/O error that carries none of ours, of no known kind, is not known to be
        // transient: never retryable.
        let other = Error::io("read", std::io::Error::other("boom"));
        assert_eq!(other.kind(), ErrorKind::Internal);
    }
}
