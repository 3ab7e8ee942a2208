//! [`FlinkPaths`]: where the absolute paths Flink wrote into `_metadata` are in the store.

use cornerstone_backend_api::{Error, Result};

/// A URI or path split into its root (`file://`, `s3://bucket`) and an absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Uri {
    root: String,
    /// Starts with `/`; no empty, `.` or `..` segments; no trailing `/` (except `/` itself).
    path: String,
}

/// Splits `s` into root and path: `file:/x`, `file:///x`, `file://localhost/x` and `/x` are
/// local (`file://`); `scheme://authority/x` has the root `scheme://authority`; `scheme:/x`
/// (no authority) the root `scheme:`. `None` for a relative path or one whose `..`
/// segments climb above the root.
fn parse(s: &str) -> Option<Uri> {
    let (root, rest) = if s.starts_with('/') {
        ("file://".to_owned(), s)
    } else {
        let colon = s.find(':')?;
        let scheme = &s[..colon];
        if scheme.is_empty() || scheme.contains('/') {
            return None;
        }
        let after = &s[colon + 1..];
        match after.strip_prefix("//") {
            Some(auth_and_path) => {
                let (auth, path) = match auth_and_path.find('/') {
                    Some(i) => auth_and_path.split_at(i),
                    None => (auth_and_path, "/"),
                };
                if scheme == "file" && (auth.is_empty() || auth == "localhost") {
                    ("file://".to_owned(), path)
                } else {
                    (format!("{scheme}://{auth}"), path)
                }
            }
            None if scheme == "file" => ("file://".to_owned(), after),
            None => (format!("{scheme}:"), after),
        }
    };
    if !rest.starts_with('/') {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    Some(Uri {
        root,
        path: format!("/{}", segments.join("/")),
    })
}

/// Where a path that Flink wrote is, after [`FlinkPaths`] mapped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedPath {
    /// A path inside the store (as its listing names it).
    InStore(String),
    /// Outside the store (another bucket or service, or an unmapped scheme): the URI after
    /// remapping, which this store cannot check.
    Foreign(String),
}

impl ResolvedPath {
    /// The store path, or the URI of a foreign path.
    pub fn as_str(&self) -> &str {
        match self {
            ResolvedPath::InStore(p) | ResolvedPath::Foreign(p) => p,
        }
    }
}

/// How the absolute paths in Flink's `_metadata` (`file:/...`, `s3://bucket/...`) map to
/// paths in the store being inspected: optional prefix remappings (a checkpoint moved or
/// copied since Flink wrote it), then the store's root (its
/// [`Location::store_key`](crate::Location::store_key): `file://` for local paths,
/// `s3://bucket` for a bucket).
///
/// ```
/// use cornerstone_checkpoint_store::inspect::{FlinkPaths, ResolvedPath};
///
/// let paths = FlinkPaths::new("file://").with_prefix("/fixtures/flink", "/tmp/copy")?;
/// assert_eq!(
///     paths.resolve("file:/fixtures/flink/job/shared/a"),
///     ResolvedPath::InStore("tmp/copy/job/shared/a".into())
/// );
/// assert_eq!(
///     paths.resolve("s3://bucket/job/shared/a"),
///     ResolvedPath::Foreign("s3://bucket/job/shared/a".into())
/// );
/// # Ok::<_, cornerstone_backend_api::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlinkPaths {
    store_root: String,
    prefixes: Vec<(Uri, Uri)>,
}

impl FlinkPaths {
    /// Paths of the store whose root is `store_key` (`file://`, `s3://bucket`), without
    /// remapping.
    pub fn new(store_key: &str) -> Self {
        let root = store_key.trim_end_matches('/');
        FlinkPaths {
            store_root: if root == "file:" { "file://" } else { root }.to_owned(),
            prefixes: Vec::new(),
        }
    }

    /// Adds a remapping: paths under `old` (a path such as `/fixtures/flink` or a URI such
    /// as `s3://bucket/old`) are read under `new`. The longest matching prefix applies.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](cornerstone_backend_api::ErrorKind::InvalidInput) when
    /// either side is not an absolute path or URI.
    pub fn with_prefix(mut self, old: &str, new: &str) -> Result<Self> {
        let parse_side = |side: &str, which: &'static str| {
            parse(side).ok_or_else(|| {
                Error::invalid_input("a path prefix must be an absolute path or a URI")
                    .with_context("prefix", side)
                    .with_context("side", which)
            })
        };
        let old = parse_side(old, "old")?;
        let new = parse_side(new, "new")?;
        self.prefixes.push((old, new));
        Ok(self)
    }

    /// Where `written`, an absolute path as Flink wrote it, is.
    pub fn resolve(&self, written: &str) -> ResolvedPath {
        let Some(mut uri) = parse(written) else {
            return ResolvedPath::Foreign(written.to_owned());
        };
        let best = self
            .prefixes
            .iter()
            .filter(|(old, _)| old.root == uri.root && under(&uri.path, &old.path).is_some())
            .max_by_key(|(old, _)| old.path.len());
        if let Some((old, new)) = best {
            let rest = under(&uri.path, &old.path).unwrap_or("");
            uri = Uri {
                root: new.root.clone(),
                path: format!("{}{rest}", new.path.trim_end_matches('/')),
            };
        }
        if uri.root == self.store_root {
            ResolvedPath::InStore(uri.path.trim_start_matches('/').to_owned())
        } else if uri.root == "file://" {
            ResolvedPath::Foreign(format!("file://{}", uri.path))
        } else {
            ResolvedPath::Foreign(format!("{}{}", uri.root, uri.path))
        }
    }
}

/// The part of `path` after `prefix` (`""` or starting with `/`), when `path` is `prefix`
/// or below it.
fn under<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uris_and_prefixes() {
        let p = FlinkPaths::new("file://")
            .with_prefix("/fixtures/flink", "/tmp/x/")
            .unwrap()
            .with_prefix("file:///fixtures/flink/deeper", "/elsewhere")
            .unwrap();
        for (written, expected) in [
            ("file:/fixtures/flink/a/b", "tmp/x/a/b"),
            ("file:///fixtures/flink/a/b", "tmp/x/a/b"),
            ("file://localhost/fixtures/flink/a", "tmp/x/a"),
            ("/fixtures/flink/a/./c/../b", "tmp/x/a/b"),
            ("file:/fixtures/flinkother/a", "fixtures/flinkother/a"),
            ("file:/fixtures/flink/deeper/z", "elsewhere/z"),
        ] {
            assert_eq!(
                p.resolve(written),
                ResolvedPath::InStore(expected.into()),
                "{written}"
            );
        }
        assert_eq!(
            p.resolve("s3://b/k"),
            ResolvedPath::Foreign("s3://b/k".into())
        );
        assert_eq!(
            p.resolve("file:/../x"),
            ResolvedPath::Foreign("file:/../x".into())
        );
        let s3 = FlinkPaths::new("s3://b")
            .with_prefix("s3a://old/p", "s3://b/q")
            .unwrap();
        assert_eq!(
            s3.resolve("s3a://old/p/shared/f"),
            ResolvedPath::InStore("q/shared/f".into())
        );
        assert_eq!(
            s3.resolve("file:/x"),
            ResolvedPath::Foreign("file:///x".into())
        );
        assert!(FlinkPaths::new("file://").with_prefix("rel", "/x").is_err());
    }
}
