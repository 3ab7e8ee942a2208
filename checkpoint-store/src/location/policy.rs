//! [`StoragePolicy`]: the retries and timeouts around every storage call.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use cornerstone_backend_api::{Error, Result};
use opendal::layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer};

/// How a store retries failed storage calls and bounds their time: OpenDAL's
/// [`TimeoutLayer`] inside its [`RetryLayer`], so that a call that times out is retried like
/// any other temporary failure.
///
/// | setting | default | storage option |
/// |---|---|---|
/// | retries of a temporary failure (0: none) | 4 | `retries` |
/// | first backoff, doubled per retry (with jitter) up to 5 s | 200 ms | `retry_delay` |
/// | time limit of one call (stat, list, delete, the start of a read or write) | 60 s | `timeout` |
/// | time limit of one read or write of data | 30 s | `io_timeout` |
///
/// Durations take humantime's syntax (`500ms`, `30s`, `2m`). Retries are logged at `info`
/// (target `cornerstone_checkpoint_store`); a call that still fails after them is an error
/// of kind [`ErrorKind::Unavailable`](cornerstone_backend_api::ErrorKind::Unavailable).
///
/// Local directories are bounded by the timeouts but not retried: their errors (a full disk,
/// a permission, a file where a directory is expected) do not go away by themselves, and
/// OpenDAL's `fs` service reports some of them as temporary.
///
/// Retries never make a commit ambiguous in a new way: a `_metadata` write whose first attempt
/// took effect but whose answer was lost finds `_metadata` present on the retry, and the store
/// then reads it back and recognises its own bytes; when that read fails too, the outcome is
/// reported as unknown and every file is kept, as without retries.
///
/// [`CheckpointStore::from_url`](crate::CheckpointStore::from_url),
/// [`open_location`](crate::CheckpointStore::open_location) and
/// [`local`](crate::CheckpointStore::local) apply the default policy (or the one their options
/// give); [`CheckpointStore::new`](crate::CheckpointStore::new) takes the operator as given,
/// and [`StoragePolicy::apply`] adds the layers to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoragePolicy {
    retries: usize,
    retry_delay: Duration,
    timeout: Duration,
    io_timeout: Duration,
}

/// The longest backoff between two retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

impl Default for StoragePolicy {
    fn default() -> Self {
        StoragePolicy {
            retries: 4,
            retry_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
            io_timeout: Duration::from_secs(30),
        }
    }
}

impl StoragePolicy {
    /// The storage options that set a policy (the others belong to the service).
    pub const OPTIONS: [&'static str; 4] = ["retries", "retry_delay", "timeout", "io_timeout"];

    /// This policy with `retries` retries of a temporary failure (0: none).
    #[must_use]
    pub fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// This policy with `delay` as the first backoff (doubled per retry, up to 5 s).
    #[must_use]
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// This policy with `timeout` as the time limit of one call.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This policy with `timeout` as the time limit of one read or write of data.
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Retries of a temporary failure.
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// The time limit of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The time limit of one read or write of data.
    pub fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// `op` with this policy's timeout and retry layers (only the timeouts on OpenDAL's
    /// `fs` service).
    pub fn apply(&self, op: opendal::Operator) -> opendal::Operator {
        let local = op.info().scheme() == opendal::services::FS_SCHEME;
        let op = op.layer(
            TimeoutLayer::default()
                .with_timeout(self.timeout)
                .with_io_timeout(self.io_timeout),
        );
        if local {
            return op;
        }
        op.layer(
            RetryLayer::default()
                .with_max_times(self.retries)
                .with_min_delay(self.retry_delay)
                .with_max_delay(MAX_RETRY_DELAY.max(self.retry_delay))
                .with_factor(2.0)
                .with_jitter()
                .with_notify(LogRetries),
        )
    }

    /// The default policy changed by the policy options in `options`, which are removed.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](cornerstone_backend_api::ErrorKind::InvalidInput) naming an
    /// option whose value does not parse.
    pub(crate) fn take_from(options: &mut BTreeMap<String, String>) -> Result<Self> {
        let mut policy = StoragePolicy::default();
        if let Some(v) = options.remove("retries") {
            policy.retries = v.parse().map_err(|_| {
                Error::invalid_input("storage option `retries` takes a number of retries")
                    .with_context("value", &v)
            })?;
        }
        let duration = |key: &str, v: &str| -> Result<Duration> {
            humantime::parse_duration(v).map_err(|e| {
                Error::invalid_input("storage option takes a duration such as 500ms, 30s or 2m")
                    .with_context("option", key)
                    .with_context("value", v)
                    .with_context("cause", e)
            })
        };
        if let Some(v) = options.remove("retry_delay") {
            policy.retry_delay = duration("retry_delay", &v)?;
        }
        if let Some(v) = options.remove("timeout") {
            policy.timeout = duration("timeout", &v)?;
        }
        if let Some(v) = options.remove("io_timeout") {
            policy.io_timeout = duration("io_timeout", &v)?;
        }
        Ok(policy)
    }
}

/// Logs each retry of a storage call.
struct LogRetries;

impl RetryInterceptor for LogRetries {
    fn intercept(&self, event: RetryEvent<'_>) {
        tracing::info!(
            op = %event.op,
            attempt = event.attempt,
            retry_in = ?event.retry_after,
            error = %event.err,
            "retrying a storage call that failed temporarily"
        );
    }
}

impl fmt::Display for StoragePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retries={} retry_delay={:?} timeout={:?} io_timeout={:?}",
            self.retries, self.retry_delay, self.timeout, self.io_timeout
        )
    }
}

#[cfg(test)]
mod tests {
    use cornerstone_backend_api::ErrorKind;

    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn policy_options_are_taken_and_checked() {
        let mut o = options(&[
            ("retries", "2"),
            ("timeout", "5s"),
            ("io_timeout", "750ms"),
            ("region", "x"),
        ]);
        let p = StoragePolicy::take_from(&mut o).unwrap();
        assert_eq!(p.retries(), 2);
        assert_eq!(p.timeout(), Duration::from_secs(5));
        assert_eq!(p.io_timeout(), Duration::from_millis(750));
        assert_eq!(o, options(&[("region", "x")]));

        let e = StoragePolicy::take_from(&mut options(&[("timeout", "soon")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("timeout"), "{e}");
        let e = StoragePolicy::take_from(&mut options(&[("retries", "-1")])).unwrap_err();
        assert!(e.to_string().contains("retries"), "{e}");
    }
}
