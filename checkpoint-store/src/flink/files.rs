//! The files a Flink checkpoint references, for `verify` and `gc`.

use std::collections::BTreeMap;

use cornerstone_backend_api::{Error, Result};
use serde::Serialize;

use super::model::{
    FlinkMetadata, KeyedStateHandle, OperatorStateHandle, SegmentScope, StreamStateHandle,
};

/// A file that a checkpoint references, with what every reference requires of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferencedFile {
    /// Where the file is: the path as written for absolute handles (`file:/...`,
    /// `s3://...`), or the relative path joined to the directory of `_metadata`.
    pub path: String,
    /// For `RELATIVE_STREAM_STATE_HANDLE`s: the path as written, relative to the directory of
    /// `_metadata`.
    pub relative_path: Option<String>,
    /// The smallest size the file must have: the largest size a handle records (for a
    /// segment of a merged file, where the segment ends).
    pub min_size: u64,
    /// Whether a reference puts the file in a shared scope: the shared state of an
    /// incremental handle (files that other checkpoints may reference too), or a segment of
    /// a `SHARED` physical file. A `gc` must not delete such a file only because this
    /// checkpoint is gone.
    pub shared: bool,
    /// How many handles reference the file.
    pub references: u64,
}

struct Collector<'a> {
    dir: &'a str,
    files: BTreeMap<String, ReferencedFile>,
}

impl Collector<'_> {
    fn add(&mut self, path: String, relative_path: Option<&str>, min_size: u64, shared: bool) {
        let entry = self
            .files
            .entry(path.clone())
            .or_insert_with(|| ReferencedFile {
                path,
                relative_path: relative_path.map(str::to_owned),
                min_size: 0,
                shared: false,
                references: 0,
            });
        entry.min_size = entry.min_size.max(min_size);
        entry.shared |= shared;
        entry.references = entry.references.saturating_add(1);
    }

    fn stream(&mut self, handle: &StreamStateHandle, shared: bool) -> Result<()> {
        match handle {
            StreamStateHandle::ByteStream { .. } | StreamStateHandle::EmptySegment => {}
            StreamStateHandle::File { path, size } => self.add(path.clone(), None, *size, shared),
            StreamStateHandle::Relative {
                relative_path,
                size,
            } => {
                check_relative(relative_path)?;
                let path = format!("{}/{relative_path}", self.dir.trim_end_matches('/'));
                self.add(path, Some(relative_path), *size, shared);
            }
            StreamStateHandle::Segment {
                physical_path,
                start_pos,
                size,
                scope,
                ..
            } => {
                let end = start_pos.checked_add(*size).ok_or_else(|| {
                    Error::corrupted("a segment's end overflows u64")
                        .with_context("path", physical_path)
                        .with_context("start_pos", start_pos)
                        .with_context("size", size)
                })?;
                let shared = shared || *scope == SegmentScope::Shared;
                self.add(physical_path.clone(), None, end, shared);
            }
            StreamStateHandle::KeyGroups(k) => self.stream(&k.stream, shared)?,
        }
        Ok(())
    }

    fn keyed(&mut self, handle: &KeyedStateHandle) -> Result<()> {
        match handle {
            KeyedStateHandle::KeyGroups(h)
            | KeyedStateHandle::KeyGroupsV2(h)
            | KeyedStateHandle::SavepointKeyGroups(h) => self.stream(&h.stream, false),
            KeyedStateHandle::Incremental(h) | KeyedStateHandle::IncrementalV2(h) => {
                self.stream(&h.meta, false)?;
                for f in &h.shared {
                    self.stream(&f.handle, true)?;
                }
                for f in &h.private {
                    self.stream(&f.handle, false)?;
                }
                Ok(())
            }
            KeyedStateHandle::Changelog(h) | KeyedStateHandle::ChangelogV2(h) => {
                for k in h.materialized.iter().chain(&h.non_materialized) {
                    self.keyed(k)?;
                }
                Ok(())
            }
            KeyedStateHandle::ChangelogByteIncrement(_) => Ok(()),
            KeyedStateHandle::ChangelogFileIncrement(h)
            | KeyedStateHandle::ChangelogFileIncrementV2(h) => {
                for o in &h.handles {
                    self.stream(&o.handle, false)?;
                }
                Ok(())
            }
        }
    }

    fn operator(&mut self, handle: &OperatorStateHandle) -> Result<()> {
        self.stream(handle.stream(), false)
    }
}

/// Refuses a relative path that could name a file outside the directory of `_metadata`, or
/// that Flink's `Path` would parse as something else than a relative path: empty, absolute,
/// with a scheme or drive (`:`), a backslash, or an empty, `.` or `..` component.
fn check_relative(relative_path: &str) -> Result<()> {
    let bad = relative_path.is_empty()
        || relative_path.starts_with('/')
        || relative_path.contains(':')
        || relative_path.contains('\\')
        || relative_path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::corrupted(format!(
            "relative state path {relative_path:?} does not stay inside the directory of \
             _metadata"
        ))
        .with_context("format", "flink _metadata")
        .with_context("relative_path", relative_path));
    }
    Ok(())
}

impl FlinkMetadata {
    /// Every file the checkpoint references, once each, sorted by path: absolute paths as
    /// written and relative paths (`RELATIVE_STREAM_STATE_HANDLE`) joined with `/` to
    /// `metadata_dir`, the directory that holds `_metadata` (a local path or a URI, as the
    /// caller addresses files). Inline state (`BYTE_STREAM_STATE_HANDLE`, whose name only
    /// says where the bytes would have been as a file) and the empty segment are no files.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`](cornerstone_backend_api::ErrorKind) for a relative path that
    /// could name a file outside the directory (empty or absolute, with a `:` or a `\`, or
    /// with an empty, `.` or `..` component) and for a segment whose end overflows: a `gc`
    /// must not act on a listing it cannot trust.
    pub fn referenced_files(&self, metadata_dir: &str) -> Result<Vec<ReferencedFile>> {
        let mut c = Collector {
            dir: metadata_dir,
            files: BTreeMap::new(),
        };
        for op in &self.operators {
            if let Some(h) = &op.coordinator_state {
                c.stream(h, false)?;
            }
            for s in &op.subtasks {
                for h in s.managed_operator_state.iter().chain(&s.raw_operator_state) {
                    c.operator(h)?;
                }
                for h in s.managed_keyed_state.iter().chain(&s.raw_keyed_state) {
                    c.keyed(h)?;
                }
                for h in &s.input_channel_state {
                    c.stream(h.delegate(), false)?;
                }
                for h in &s.result_subpartition_state {
                    c.stream(h.delegate(), false)?;
                }
            }
        }
        Ok(c.files.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths_must_stay_inside() {
        for ok in ["a", "3e79c2f3-e2e7-4fa4-975d-60fd8f3c9a5c", "sub/file"] {
            check_relative(ok).unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "./x",
            "a//b",
            "s3:bucket",
            "C:\\x",
            "a\\b",
            "dir/",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }
}
