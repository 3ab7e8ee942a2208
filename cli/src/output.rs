//! Human tables and stable JSON for every command's result.
//!
//! The JSON is the library's own serialized form of the inspection results
//! (`cornerstone_checkpoint_store::inspect`, documented there) with every path inside the store
//! shown as a location the tool accepts again (`/abs/path` for local stores,
//! `s3://bucket/key` for object storage), plus `schema_version`.

use std::time::{Duration, UNIX_EPOCH};

use cornerstone_checkpoint_store::Location;
use cornerstone_checkpoint_store::inspect::{
    GcReport, ListedSnapshot, SnapshotDetails, SnapshotDiff, VerifyReport,
};
use serde::Serialize;
use serde_json::Value;

/// The version of the JSON documents the tool prints: every document (each `dump` line,
/// each `--json` error too) carries it as `schema_version`; it changes only when a field
/// is removed or changes meaning (new fields may appear within a version).
pub(crate) const JSON_SCHEMA_VERSION: u64 = 1;

/// `value` with the `schema_version` field (objects only).
pub(crate) fn versioned(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert("schema_version".into(), JSON_SCHEMA_VERSION.into());
    }
    value
}

/// The keys whose string values are paths inside the store in the library's serialized
/// results.
const PATH_KEYS: [&str; 5] = ["path", "dir", "metadata_path", "base_dir", "job_dir"];

/// Rewrites every path inside the store in `value` (under [`PATH_KEYS`]) with `f`.
fn reroot(value: &mut Value, f: &impl Fn(&str) -> String) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if PATH_KEYS.contains(&key.as_str()) => *s = f(s),
                    _ => reroot(v, f),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| reroot(v, f)),
        _ => {}
    }
}

/// `1.2 MiB` style sizes (binary units); plain bytes below 1 KiB.
pub(crate) fn human_size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// What `list --json` prints.
#[derive(Serialize)]
struct ListDoc<'a> {
    location: &'a str,
    snapshots: &'a [ListedSnapshot],
}

/// What `gc --json` prints.
#[derive(Serialize)]
struct GcDoc<'a> {
    #[serde(flatten)]
    report: &'a GcReport,
    dry_run: bool,
    deleted: Option<usize>,
}

/// What `diff --json` prints.
#[derive(Serialize)]
struct DiffDoc<'a> {
    a: &'a str,
    b: &'a str,
    #[serde(flatten)]
    diff: &'a SnapshotDiff,
}

/// What `dispose --json` prints.
#[derive(Serialize)]
struct DisposeDoc<'a> {
    savepoint: &'a str,
    disposed: Option<&'a str>,
    dry_run: bool,
    files: Vec<String>,
}

/// Prints the results of a command on one location: paths inside the store come out as
/// locations the user can pass back to the tool.
pub(crate) struct Output {
    location: Location,
}

impl Output {
    /// Output for results read from the store of `location`.
    pub(crate) fn new(location: Location) -> Self {
        Output { location }
    }

    /// A path inside the store as a location.
    pub(crate) fn loc(&self, path: &str) -> String {
        self.location.to_location(path)
    }

    /// [`loc`](Self::loc) of a value that may already be a location (absolute, a URL, or a
    /// placeholder such as `<inline>`): those are kept.
    pub(crate) fn present(&self, value: &str) -> String {
        if value.starts_with('/') || value.starts_with('<') || value.contains("://") {
            value.to_owned()
        } else {
            self.loc(value)
        }
    }

    /// `value` serialized, with its paths as locations.
    fn json<T: Serialize>(&self, value: &T) -> serde_json::Result<Value> {
        let mut value = serde_json::to_value(value)?;
        reroot(&mut value, &|p| self.loc(p));
        Ok(value)
    }

    /// `value` serialized, with its paths inside the store as locations and the paths that
    /// are not (URIs outside the store) as they are: the results of Flink's job directories.
    pub(crate) fn json_presented<T: Serialize>(&self, value: &T) -> serde_json::Result<Value> {
        let mut value = serde_json::to_value(value)?;
        reroot(&mut value, &|p| self.present(p));
        Ok(value)
    }

    pub(crate) fn list_json(
        &self,
        location: &str,
        entries: &[ListedSnapshot],
    ) -> serde_json::Result<Value> {
        self.json(&ListDoc {
            location,
            snapshots: entries,
        })
    }

    pub(crate) fn show_json(&self, d: &SnapshotDetails) -> serde_json::Result<Value> {
        self.json(d)
    }

    pub(crate) fn verify_json(&self, r: &VerifyReport) -> serde_json::Result<Value> {
        self.json(r)
    }

    pub(crate) fn gc_json(
        &self,
        r: &GcReport,
        deleted: Option<usize>,
    ) -> serde_json::Result<Value> {
        self.json(&GcDoc {
            report: r,
            dry_run: deleted.is_none(),
            deleted,
        })
    }

    pub(crate) fn diff_json(
        &self,
        a: &str,
        b: &str,
        d: &SnapshotDiff,
    ) -> serde_json::Result<Value> {
        self.json(&DiffDoc { a, b, diff: d })
    }

    pub(crate) fn dispose_json(
        &self,
        path: &str,
        files: &[String],
        dry_run: bool,
    ) -> serde_json::Result<Value> {
        serde_json::to_value(DisposeDoc {
            savepoint: path,
            disposed: (!dry_run).then_some(path),
            dry_run,
            files: files.iter().map(|f| self.loc(f)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(1536), "1.50 KiB");
        assert_eq!(human_size(1_258_291), "1.20 MiB");
        assert_eq!(rfc3339(1_005), "1970-01-01T00:00:01.005Z");
    }

    #[test]
    fn store_paths_become_locations_and_others_stay() {
        let out = Output::new(Location::parse("s3://b/jobs/j").unwrap());
        let mut v = serde_json::json!({
            "location": "s3://b/jobs/j",
            "snapshots": [{"dir": "jobs/j/chk-1", "path": "jobs/j/chk-1/f", "detail": "x"}],
        });
        reroot(&mut v, &|p| out.loc(p));
        assert_eq!(v["location"], "s3://b/jobs/j");
        assert_eq!(v["snapshots"][0]["dir"], "s3://b/jobs/j/chk-1");
        assert_eq!(v["snapshots"][0]["path"], "s3://b/jobs/j/chk-1/f");
        assert_eq!(v["snapshots"][0]["detail"], "x");
        assert_eq!(out.present("<inline>"), "<inline>");
        assert_eq!(out.present("/abs"), "/abs");
    }
}
