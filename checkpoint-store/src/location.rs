//! Where a store lives: a location (a local path or a service URL) and its options, turned
//! into an OpenDAL operator in one place, through OpenDAL's own service configurations
//! (`S3Config`, `GcsConfig`, `AzblobConfig`), with the retry and timeout layers of a
//! [`StoragePolicy`] around it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use cornerstone_backend_api::{Error, ErrorKind, Result};
use opendal::layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer};

use crate::error::from_opendal;

/// A location and its query (without the `?`): service URLs (`s3://bucket/prefix?region=x`)
/// have one; local paths and `file://` URLs never do (a `?` is part of the path).
pub fn split_location_query(location: &str) -> (&str, Option<&str>) {
    if location.contains("://")
        && !location.starts_with("file://")
        && let Some((bare, query)) = location.split_once('?')
    {
        return (bare, Some(query));
    }
    (location, None)
}

/// A location as a user gives it (a local path, `file:///abs/dir`, `memory://`,
/// `s3://bucket/prefix`, `gs://bucket/prefix`, `azblob://container/prefix`, each service URL
/// with an optional `?query` of options), parsed once: which store holds it, the path inside
/// that store, and how to turn a path inside the store back into a location.
///
/// Local paths and `file://` URLs are made absolute and live in the store rooted at `/`;
/// service URLs live in the store of their bucket or container.
///
/// ```
/// use cornerstone_checkpoint_store::Location;
///
/// let l = Location::parse("s3://bucket/jobs/wordcount/chk-7?region=eu-west-1")?;
/// assert_eq!(l.scheme(), "s3");
/// assert_eq!(l.path(), "jobs/wordcount/chk-7");
/// assert_eq!(l.store_key(), "s3://bucket");
/// assert_eq!(l.to_location("jobs/wordcount/shared/f"), "s3://bucket/jobs/wordcount/shared/f");
///
/// let l = Location::parse("/tmp/checkpoints/job")?;
/// assert!(l.is_local());
/// assert_eq!(l.path(), "tmp/checkpoints/job");
/// assert_eq!(l.to_location(l.path()), "/tmp/checkpoints/job");
/// # Ok::<_, cornerstone_backend_api::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    scheme: String,
    /// The store's URL without a trailing `/`: `file://`, `memory://x`, `s3://bucket`.
    store: String,
    /// The path inside the store (no leading `/`).
    path: String,
    /// The query, without the `?`.
    query: Option<String>,
}

impl Location {
    /// Parses a location.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a relative local path that cannot be made absolute or
    /// is not valid UTF-8, or a service URL without a bucket.
    pub fn parse(location: &str) -> Result<Location> {
        let (bare, query) = split_location_query(location);
        let query = query.map(str::to_owned);
        let local = |path: &str| -> Result<Location> {
            let abs = std::path::absolute(path).map_err(|e| {
                Error::invalid_input("cannot resolve the path")
                    .with_context("path", path)
                    .with_source(e)
            })?;
            let abs = abs.to_str().ok_or_else(|| {
                Error::invalid_input("path is not valid UTF-8").with_context("path", path)
            })?;
            Ok(Location {
                scheme: "file".to_owned(),
                store: "file://".to_owned(),
                path: abs.trim_start_matches('/').to_owned(),
                query: None,
            })
        };
        match bare.split_once("://") {
            None => local(bare),
            Some(("file", path)) => local(path),
            Some((scheme @ ("s3" | "gs" | "gcs" | "azblob"), rest)) => {
                let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(
                        Error::invalid_input("storage URL has no bucket or container")
                            .with_context("url", location),
                    );
                }
                Ok(Location {
                    scheme: scheme.to_owned(),
                    store: format!("{scheme}://{bucket}"),
                    path: path.trim_matches('/').to_owned(),
                    query,
                })
            }
            Some((scheme, rest)) => Ok(Location {
                scheme: scheme.to_owned(),
                store: format!("{scheme}://{rest}"),
                path: String::new(),
                query,
            }),
        }
    }

    /// The scheme: `file` for local paths.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether this is a local path (or `file://` URL).
    pub fn is_local(&self) -> bool {
        self.scheme == "file"
    }

    /// The path inside the store (`""` for the store's root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The local filesystem path, for local locations.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        self.is_local()
            .then(|| std::path::PathBuf::from(format!("/{}", self.path)))
    }

    /// Which store holds the location: two locations with the same key are in one store
    /// (`file://` for every local path, `s3://bucket` per bucket).
    pub fn store_key(&self) -> &str {
        &self.store
    }

    /// A path inside the store as a location that [`parse`](Self::parse) takes again:
    /// `/abs/path` for local stores, `s3://bucket/path` for a bucket.
    pub fn to_location(&self, path_in_store: &str) -> String {
        if self.is_local() {
            format!("/{path_in_store}")
        } else if self.store.ends_with("://") {
            format!("{}{path_in_store}", self.store)
        } else {
            format!("{}/{path_in_store}", self.store)
        }
    }

    /// Opens the store that holds this location, with `options` joined to the location's
    /// own query options (see [`CheckpointStore::from_url`](crate::CheckpointStore::from_url)).
    ///
    /// # Errors
    /// As [`CheckpointStore::from_url`](crate::CheckpointStore::from_url).
    pub fn open<K, V>(
        &self,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<crate::CheckpointStore>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let url = if self.is_local() {
            "file:///".to_owned()
        } else {
            match &self.query {
                Some(q) => format!("{}?{q}", self.store),
                None => self.store.clone(),
            }
        };
        crate::CheckpointStore::from_url(&url, options)
    }
}

/// Splits the query of a service URL (`s3://bucket/prefix?region=eu-west-1&anonymous`) into
/// options, joined with `options`; an option given both ways must agree. Local paths and
/// `file://` URLs have no query.
pub(crate) fn with_query_options<K, V>(
    location: &str,
    options: impl IntoIterator<Item = (K, V)>,
) -> Result<(String, BTreeMap<String, String>)>
where
    K: Into<String>,
    V: Into<String>,
{
    let mut all: BTreeMap<String, String> = options
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let (location, query) = split_location_query(location);
    let Some(query) = query else {
        return Ok((location.to_owned(), all));
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match all.get(key.as_ref()) {
            Some(given) if *given != value => {
                return Err(Error::invalid_input(
                    "a storage option is given twice with different values",
                )
                .with_context("option", key)
                .with_context("in the location", value)
                .with_context("given", given));
            }
            _ => {
                all.insert(key.into_owned(), value.into_owned());
            }
        }
    }
    Ok((location.to_owned(), all))
}

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
/// of kind [`ErrorKind::Unavailable`].
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
    /// [`ErrorKind::InvalidInput`] naming an option whose value does not parse.
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

/// A service URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `azblob://container/prefix`)
/// as an operator, from OpenDAL's configuration of the service: every option OpenDAL's
/// `S3Config`, `GcsConfig` or `AzblobConfig` takes (by its name or an alias, such as
/// `aws_region`), plus `anonymous` (unsigned requests). Unknown options are an error
/// naming the known ones. Credentials not given come from the service's usual environment
/// variables and files (OpenDAL's loaders).
pub(crate) fn service_operator(
    scheme: &str,
    url: &str,
    rest: &str,
    mut options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(
            Error::invalid_input("storage URL has no bucket or container").with_context("url", url),
        );
    }
    let anonymous = take_flag(&mut options, "anonymous")?;
    match scheme {
        "s3" => s3(url, bucket, prefix, anonymous, options),
        "gs" | "gcs" => gcs(url, bucket, prefix, anonymous, options),
        "azblob" => azblob(url, bucket, prefix, anonymous, options),
        other => Err(unsupported(other)),
    }
}

/// The schemes this build opens.
pub(crate) fn supported() -> String {
    let mut schemes = vec!["file", "memory"];
    if cfg!(feature = "s3") {
        schemes.push("s3");
    }
    if cfg!(feature = "gcs") {
        schemes.push("gs");
    }
    if cfg!(feature = "azblob") {
        schemes.push("azblob");
    }
    schemes.join(", ")
}

pub(crate) fn unsupported(scheme: &str) -> Error {
    let feature = match scheme {
        "s3" => Some("s3"),
        "gs" | "gcs" => Some("gcs"),
        "azblob" => Some("azblob"),
        _ => None,
    };
    let mut e = Error::new(
        ErrorKind::Unsupported,
        "unsupported checkpoint storage URL scheme",
    )
    .with_context("scheme", scheme)
    .with_context("supported", supported());
    if let Some(feature) = feature {
        e = e.with_context(
            "build with",
            format!("the `{feature}` feature of cornerstone-checkpoint-store"),
        );
    }
    e
}

/// Removes a flag option (`true`, `false`, or empty for true).
fn take_flag(options: &mut BTreeMap<String, String>, key: &str) -> Result<bool> {
    match options.remove(key).as_deref() {
        None | Some("false") => Ok(false),
        Some("" | "true") => Ok(true),
        Some(other) => Err(Error::invalid_input("storage option takes true or false")
            .with_context("option", key)
            .with_context("value", other)),
    }
}

/// A service's configuration from options, through OpenDAL's own deserializer; an option
/// that the configuration does not take is an error naming the ones it does.
#[cfg_attr(
    not(any(feature = "s3", feature = "gcs", feature = "azblob")),
    allow(dead_code)
)]
fn service_config<C: opendal::Configurator>(
    service: &str,
    url: &str,
    mut options: BTreeMap<String, String>,
    from_url: [(&str, &str); 2],
) -> Result<C> {
    for (key, value) in from_url {
        if options.contains_key(key) {
            return Err(Error::invalid_input(
                "storage option is given by the URL and cannot be set apart",
            )
            .with_context("option", key)
            .with_context("url", url));
        }
        options.insert(key.to_owned(), value.to_owned());
    }
    let mut unknown = Vec::new();
    let de = opendal::raw::ConfigDeserializer::new(options.into_iter().collect::<HashMap<_, _>>());
    let config: C =
        serde_ignored::deserialize(de, |path| unknown.push(path.to_string())).map_err(|e| {
            Error::invalid_input("invalid storage option")
                .with_context("service", service)
                .with_context("url", url)
                .with_context("cause", e)
        })?;
    if !unknown.is_empty() {
        let mut known = Vec::new();
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(
            C::deserialize(opendal::raw::ConfigDeserializer::new(
                from_url
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ))
            .ok(),
        ) {
            known.extend(fields.keys().cloned());
        }
        known.extend(["anonymous".to_owned()]);
        known.extend(StoragePolicy::OPTIONS.iter().map(|s| (*s).to_owned()));
        known.sort();
        return Err(Error::invalid_input("unknown storage option")
            .with_context("service", service)
            .with_context("option", unknown.join(", "))
            .with_context("known", known.join(", ")));
    }
    Ok(config)
}

/// An operator from a service's configuration.
#[cfg_attr(
    not(any(feature = "s3", feature = "gcs", feature = "azblob")),
    allow(dead_code)
)]
fn operator<C: opendal::Configurator>(url: &str, config: C) -> Result<opendal::Operator> {
    // The process-wide HTTP transport (reqwest with rustls); idempotent.
    opendal::install_default();
    opendal::Operator::from_config(config).map_err(|e| from_opendal("open storage", url, e))
}

#[cfg(feature = "s3")]
fn s3(
    url: &str,
    bucket: &str,
    prefix: &str,
    anonymous: bool,
    mut options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    // The name this crate used before it took OpenDAL's (`enable_virtual_host_style`).
    if let Some(v) = options.remove("virtual_host_style") {
        options.insert("enable_virtual_host_style".to_owned(), v);
    }
    let root = format!("/{prefix}");
    let mut config: opendal::services::S3Config =
        service_config("s3", url, options, [("bucket", bucket), ("root", &root)])?;
    if anonymous {
        // Unsigned requests: public buckets, or servers without authentication.
        config.skip_signature = true;
    }
    let from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if config.region.is_none() && !from_env {
        return Err(Error::invalid_input(
            "s3 needs a region: the option `region` (cornerstone: --region), or AWS_REGION / \
             AWS_DEFAULT_REGION (S3-compatible servers such as SeaweedFS and MinIO accept \
             us-east-1)",
        )
        .with_context("url", url));
    }
    operator(url, config)
}

#[cfg(not(feature = "s3"))]
fn s3(
    _url: &str,
    _bucket: &str,
    _prefix: &str,
    _anonymous: bool,
    _options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    Err(unsupported("s3"))
}

#[cfg(feature = "gcs")]
fn gcs(
    url: &str,
    bucket: &str,
    prefix: &str,
    anonymous: bool,
    options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    let root = format!("/{prefix}");
    let mut config: opendal::services::GcsConfig =
        service_config("gcs", url, options, [("bucket", bucket), ("root", &root)])?;
    if anonymous {
        config.skip_signature = true;
    }
    operator(url, config)
}

#[cfg(not(feature = "gcs"))]
fn gcs(
    _url: &str,
    _bucket: &str,
    _prefix: &str,
    _anonymous: bool,
    _options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    Err(unsupported("gs"))
}

#[cfg(feature = "azblob")]
fn azblob(
    url: &str,
    container: &str,
    prefix: &str,
    anonymous: bool,
    options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    let root = format!("/{prefix}");
    let mut config: opendal::services::AzblobConfig = service_config(
        "azblob",
        url,
        options,
        [("container", container), ("root", &root)],
    )?;
    if anonymous {
        config.skip_signature = true;
    }
    if config.endpoint.is_none() {
        // Azure's public endpoint of the account, named by the option or by the variable
        // OpenDAL's credential loader reads.
        let account = config.account_name.clone().or_else(|| {
            std::env::var("AZBLOB_ACCOUNT_NAME")
                .ok()
                .filter(|v| !v.is_empty())
        });
        match account {
            Some(account) => {
                config.endpoint = Some(format!("https://{account}.blob.core.windows.net"));
            }
            None => {
                return Err(Error::invalid_input(
                    "azblob needs an endpoint: the option `endpoint` \
                     (https://ACCOUNT.blob.core.windows.net, or an emulator's URL), or an \
                     account name (the option `account_name` or AZBLOB_ACCOUNT_NAME) for \
                     Azure's public endpoint",
                )
                .with_context("url", url));
            }
        }
    }
    operator(url, config)
}

#[cfg(not(feature = "azblob"))]
fn azblob(
    _url: &str,
    _container: &str,
    _prefix: &str,
    _anonymous: bool,
    _options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    Err(unsupported("azblob"))
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

    #[cfg(feature = "s3")]
    #[test]
    fn s3_takes_opendal_options_and_names_unknown_ones() {
        // Any option of OpenDAL's S3Config, by name or alias.
        let op = service_operator(
            "s3",
            "s3://b/p",
            "b/p",
            options(&[
                ("region", "us-east-1"),
                ("endpoint", "http://127.0.0.1:1"),
                ("aws_profile", "nobody"),
                ("default_storage_class", "STANDARD_IA"),
                ("virtual_host_style", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(op.info().name(), "b");
        assert_eq!(op.info().root(), "/p/");

        let e = service_operator(
            "s3",
            "s3://b/p",
            "b/p",
            options(&[("region", "us-east-1"), ("regoin", "eu-west-1")]),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let text = e.to_string();
        assert!(text.contains("unknown storage option"), "{text}");
        assert!(text.contains("regoin"), "{text}");
        assert!(text.contains("session_token"), "{text}");
        assert!(text.contains("anonymous"), "{text}");
        assert!(text.contains("retries"), "{text}");
    }

    #[cfg(feature = "gcs")]
    #[test]
    fn gcs_opens_a_bucket() {
        let op = service_operator(
            "gs",
            "gs://b/p",
            "b/p",
            options(&[("endpoint", "http://127.0.0.1:1"), ("anonymous", "")]),
        )
        .unwrap();
        assert_eq!(op.info().name(), "b");
        let e = service_operator("gs", "gs://b", "b", options(&[("region", "x")])).unwrap_err();
        assert!(e.to_string().contains("region"), "{e}");
    }

    #[cfg(feature = "azblob")]
    #[test]
    fn azblob_names_the_missing_endpoint() {
        if std::env::var_os("AZBLOB_ACCOUNT_NAME").is_none() {
            let e = service_operator("azblob", "azblob://c/p", "c/p", BTreeMap::new()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains("`endpoint`"), "{e}");
            assert!(e.to_string().contains("account_name"), "{e}");
        }
        let op = service_operator(
            "azblob",
            "azblob://c/p",
            "c/p",
            options(&[("account_name", "devstoreaccount1")]),
        )
        .unwrap();
        assert_eq!(op.info().name(), "c");
    }
}
