//! The one place that maps OpenDAL errors to [`ErrorKind`] (STYLE §5).

use cornerstone_backend_api::{Error, ErrorKind};

/// Maps an OpenDAL error, naming the operation and the path.
pub(crate) fn from_opendal(op: &'static str, path: &str, e: opendal::Error) -> Error {
    use opendal::ErrorKind as O;
    let kind = match e.kind() {
        O::NotFound => ErrorKind::NotFound,
        O::AlreadyExists | O::ConditionNotMatch | O::IsSameFile => ErrorKind::AlreadyExists,
        O::ConfigInvalid | O::IsADirectory | O::NotADirectory | O::RangeNotSatisfied => {
            ErrorKind::InvalidInput
        }
        O::Unsupported => ErrorKind::Unsupported,
        O::PermissionDenied => ErrorKind::InvalidInput,
        O::RateLimited | O::Conflict => ErrorKind::Unavailable,
        _ if e.is_temporary() => ErrorKind::Unavailable,
        _ => ErrorKind::Unavailable,
    };
    let message = match kind {
        ErrorKind::NotFound => "object not found in checkpoint storage",
        ErrorKind::AlreadyExists => "object already exists in checkpoint storage",
        _ => "checkpoint storage operation failed",
    };
    Error::new(kind, message)
        .with_context("op", op)
        .with_context("path", path)
        .with_source(e)
}
