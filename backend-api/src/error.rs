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
/// `Display` is one line: `kind: message (key=value, ...)`, followed by `: source` when there
/// is a source. The source is printed, not returned from `source()`, so reporters that walk
/// the chain do not show it twice.
pub struct Error {
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
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// Adds a `key=value` context pair, such as `("checkpoint", 42)` or `("path", ..)`.
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without context or source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The value of a context pair, if present.
    pub fn context(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }

    /// The underlying error, if any (also printed by `Display`).
    pub fn inner(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
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
    pub fn io(op: &'static str, e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match e.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::InvalidInput => ErrorKind::InvalidInput,
            Io::InvalidData | Io::UnexpectedEof => ErrorKind::Corrupted,
            Io::Unsupported => ErrorKind::Unsupported,
            Io::Interrupted | Io::TimedOut | Io::WouldBlock | Io::ConnectionReset => {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, "i/o failed")
            .with_context("op", op)
            .with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str(")")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io("io", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(e.context("checkpoint"), Some("42"));
        assert!(std::error::Error::source(&e).is_none());
        assert!(!e.is_retryable());
    }
}
