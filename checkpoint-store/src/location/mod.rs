//! Where a store lives: a location (a local path or a service URL) and its options, turned
//! into an OpenDAL operator in one place, through OpenDAL's own service configurations
//! (`S3Config`, `GcsConfig`, `AzblobConfig`, in [`services`]), with the retry and timeout
//! layers of a [`StoragePolicy`] around it.

use std::collections::BTreeMap;

use cornerstone_backend_api::{Error, Result};

mod policy;
mod services;

pub use policy::StoragePolicy;
pub(crate) use services::{service_operator, unsupported};

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
    /// [`ErrorKind::InvalidInput`](cornerstone_backend_api::ErrorKind::InvalidInput) for a relative local path that cannot be made absolute or
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
