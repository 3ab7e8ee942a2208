//! Human tables and stable JSON for every command's result.
//!
//! JSON field names are part of the tool's interface for scripts: sizes are exact bytes,
//! timestamps are milliseconds since the epoch (plus an RFC 3339 string), paths are given
//! as locations that the tool accepts again (`/abs/path` for local stores,
//! `s3://bucket/key` for S3).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use cornerstone_backend_api::StateScope;
use cornerstone_checkpoint_store::inspect::{
    GcCandidate, GcReason, GcReport, ListedSnapshot, ProblemKind, SnapshotDetails, SnapshotDiff,
    SnapshotStatus, StreamLocation, VerifyReport,
};
use serde_json::{Value, json};

static ROOT: OnceLock<String> = OnceLock::new();

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

/// Sets what precedes a path inside the store to make it a location again (`/` for local
/// stores, `s3://bucket/` for S3, nothing for the others). Call once, before printing.
pub(crate) fn set_root(root: String) {
    let _ = ROOT.set(root);
}

/// A path inside the store as a location the user can pass back to the tool.
fn loc(path: &str) -> String {
    format!("{}{path}", ROOT.get().map_or("", String::as_str))
}

/// [`loc`] of a value that may already be a location (absolute, a URL, or a placeholder
/// such as `<inline>`): those are kept.
pub(crate) fn location(value: &str) -> String {
    let root = ROOT.get().map_or("", String::as_str);
    if value.starts_with('/') || value.starts_with('<') || value.contains("://") || root.is_empty()
    {
        value.to_owned()
    } else {
        loc(value)
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

fn opt_rfc3339(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(rfc3339(ms)))
}

/// A plain table (whitespace-separated columns, a header row) on `comfy-table`: two spaces
/// between columns, numbers right-aligned, no trailing spaces.
struct Table {
    inner: comfy_table::Table,
    rows: usize,
}

impl Table {
    /// A table with `columns`: (header, right-aligned).
    fn new(columns: &[(&'static str, bool)]) -> Self {
        use comfy_table::{CellAlignment, ContentArrangement, presets};
        let mut inner = comfy_table::Table::new();
        inner
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(columns.iter().map(|c| c.0));
        for (i, (_, right)) in columns.iter().enumerate() {
            if let Some(column) = inner.column_mut(i) {
                column.set_padding((0, 2));
                if *right {
                    column.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        Table { inner, rows: 0 }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.inner.add_row(cells);
        self.rows += 1;
    }

    fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends the table to `out`, each line after `indent`.
    fn render(&self, out: &mut String, indent: &str) {
        for line in self.inner.lines() {
            out.push_str(indent);
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

fn status_detail(status: &SnapshotStatus) -> Option<&str> {
    match status {
        SnapshotStatus::Corrupt(why) | SnapshotStatus::NewerFormat(why) => Some(why),
        SnapshotStatus::Fenced => Some(
            "published by a fenced writer after a newer one took over: never restored, garbage for gc",
        ),
        SnapshotStatus::Complete | SnapshotStatus::Incomplete => None,
    }
}

// ---- list ----

/// From trigger to completion, when both are known.
fn duration_ms(e: &ListedSnapshot) -> Option<u64> {
    e.completed_timestamp_ms?
        .checked_sub(e.trigger_timestamp_ms?)
}

pub(crate) fn list_json(location: &str, entries: &[ListedSnapshot]) -> Value {
    json!({
        "location": location,
        "snapshots": entries.iter().map(|e| json!({
            "kind": e.kind.as_str(),
            "id": e.id.map(|id| id.0),
            "dir": loc(&e.dir),
            "status": e.status.as_str(),
            "status_detail": status_detail(&e.status),
            "trigger_timestamp_ms": e.trigger_timestamp_ms,
            "completed_timestamp_ms": e.completed_timestamp_ms,
            "completed": opt_rfc3339(e.completed_timestamp_ms),
            "duration_ms": duration_ms(e),
            "size_bytes": e.size_bytes,
            "incremental": e.incremental,
            "written_bytes": e.written_bytes,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn list_human(location: &str, entries: &[ListedSnapshot]) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        let _ = writeln!(out, "no checkpoints or savepoints in {location}");
        return out;
    }
    let mut t = Table::new(&[
        ("KIND", false),
        ("ID", true),
        ("COMPLETED (UTC)", false),
        ("DURATION", true),
        ("TYPE", false),
        ("SIZE", true),
        ("WRITTEN", true),
        ("STATUS", false),
        ("DIR", false),
    ]);
    for e in entries {
        t.row(vec![
            e.kind.as_str().to_owned(),
            e.id.map_or_else(|| "-".to_owned(), |id| id.0.to_string()),
            e.completed_timestamp_ms
                .map_or_else(|| "-".to_owned(), rfc3339),
            duration_ms(e).map_or_else(
                || "-".to_owned(),
                |ms| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string(),
            ),
            match e.incremental {
                Some(true) => "incremental",
                Some(false) => "full",
                None => "-",
            }
            .to_owned(),
            human_size(e.size_bytes),
            e.written_bytes.map_or_else(|| "-".to_owned(), human_size),
            e.status.as_str().to_owned(),
            loc(&e.dir),
        ]);
    }
    t.render(&mut out, "");
    for e in entries {
        if let Some(why) = status_detail(&e.status) {
            let _ = writeln!(out, "{} is corrupt: {why}", loc(&e.dir));
        }
    }
    out
}

// ---- show ----

fn scope_str(scope: StateScope) -> &'static str {
    match scope {
        StateScope::Exclusive => "exclusive",
        StateScope::Shared => "shared",
        StateScope::TaskOwned => "task-owned",
    }
}

fn stream_json(s: &StreamLocation) -> Value {
    match s {
        StreamLocation::Inline { size } => json!({ "inline": true, "size_bytes": size }),
        StreamLocation::File {
            path,
            scope,
            size,
            crc32,
        } => json!({
            "inline": false,
            "path": loc(path),
            "scope": scope_str(*scope),
            "size_bytes": size,
            "crc32": format!("{crc32:08x}"),
        }),
    }
}

pub(crate) fn show_json(d: &SnapshotDetails) -> Value {
    let m = &d.snapshot.metadata;
    json!({
        "kind": m.kind.as_str(),
        "id": m.checkpoint_id.0,
        "job_id": m.job_id,
        "format_version": m.format_version,
        "metadata_path": loc(&d.snapshot.metadata_path),
        "metadata_size_bytes": d.metadata_size,
        "base_dir": loc(&d.snapshot.base_dir),
        "trigger_timestamp_ms": m.trigger_timestamp_ms,
        "completed_timestamp_ms": m.completed_timestamp_ms,
        "completed": rfc3339(m.completed_timestamp_ms),
        "state_size_bytes": d.state_size,
        "operators": d.operators.iter().map(|op| json!({
            "uid": op.uid,
            "name": op.name,
            "parallelism": op.parallelism,
            "max_parallelism": op.max_parallelism,
            "state_size_bytes": op.state_size,
            "states": op.states.iter().map(|st| json!({
                "name": st.name,
                "kind": st.kind,
                "key_type": st.key_type,
                "namespace_type": st.namespace_type,
                "user_key_type": st.user_key_type,
                "value_type": st.value_type,
                "ttl": st.ttl,
            })).collect::<Vec<_>>(),
            "subtasks": op.subtasks.iter().map(|st| json!({
                "index": st.index,
                "state_size_bytes": st.state_size,
                "handles": st.handles.iter().map(|h| json!({
                    "kind": h.kind,
                    "key_groups": h.key_groups.map(|(a, b)| json!([a, b])),
                    "state_names": h.state_names,
                    "streams": h.streams.iter().map(stream_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "files": d.files.iter().map(|(p, s)| json!({ "path": loc(p), "size_bytes": s })).collect::<Vec<_>>(),
    })
}

fn stream_human(s: &StreamLocation) -> String {
    match s {
        StreamLocation::Inline { size } => format!("inline, {}", human_size(*size)),
        StreamLocation::File {
            path, scope, size, ..
        } => format!(
            "{} ({}, {})",
            loc(path),
            scope_str(*scope),
            human_size(*size)
        ),
    }
}

pub(crate) fn show_human(d: &SnapshotDetails) -> String {
    let m = &d.snapshot.metadata;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} of job {}",
        m.kind.as_str(),
        m.checkpoint_id,
        m.job_id
    );
    let _ = writeln!(
        out,
        "  metadata:   {} ({}, format v{})",
        loc(&d.snapshot.metadata_path),
        human_size(d.metadata_size),
        m.format_version
    );
    let _ = writeln!(out, "  triggered:  {}", rfc3339(m.trigger_timestamp_ms));
    let _ = writeln!(out, "  completed:  {}", rfc3339(m.completed_timestamp_ms));
    let _ = writeln!(
        out,
        "  state size: {} ({} bytes), {} operators, {} files",
        human_size(d.state_size),
        d.state_size,
        d.operators.len(),
        d.files.len()
    );
    for op in &d.operators {
        let _ = writeln!(
            out,
            "\noperator {} ({}): parallelism {}, max parallelism {}, {}",
            op.uid,
            op.name,
            op.parallelism,
            op.max_parallelism,
            human_size(op.state_size)
        );
        if !op.states.is_empty() {
            let mut t = Table::new(&[
                ("STATE", false),
                ("KIND", false),
                ("KEY", false),
                ("NAMESPACE", false),
                ("VALUE", false),
                ("TTL", false),
            ]);
            let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
            for st in &op.states {
                let value = match &st.user_key_type {
                    Some(uk) => format!("{uk} -> {}", st.value_type),
                    None => st.value_type.clone(),
                };
                t.row(vec![
                    st.name.clone(),
                    st.kind.clone(),
                    or_dash(&st.key_type),
                    or_dash(&st.namespace_type),
                    value,
                    if st.ttl { "yes" } else { "-" }.to_owned(),
                ]);
            }
            t.render(&mut out, "  ");
        }
        let mut t = Table::new(&[
            ("SUBTASK", true),
            ("HANDLE", false),
            ("KEY GROUPS", false),
            ("STATES", false),
            ("STREAM", false),
        ]);
        for st in &op.subtasks {
            for h in &st.handles {
                let kg = h
                    .key_groups
                    .map_or_else(|| "-".to_owned(), |(a, b)| format!("{a}..={b}"));
                // The states themselves are in the table above.
                let states = if h.state_names.is_empty() {
                    "-".to_owned()
                } else {
                    h.state_names.len().to_string()
                };
                for (i, s) in h.streams.iter().enumerate() {
                    let first = i == 0;
                    t.row(vec![
                        if first {
                            st.index.to_string()
                        } else {
                            String::new()
                        },
                        if first {
                            h.kind.to_owned()
                        } else {
                            String::new()
                        },
                        if first { kg.clone() } else { String::new() },
                        if first { states.clone() } else { String::new() },
                        stream_human(s),
                    ]);
                }
            }
        }
        t.render(&mut out, "  ");
    }
    if !d.files.is_empty() {
        let _ = writeln!(out, "\nfiles:");
        let mut t = Table::new(&[("SIZE", true), ("BYTES", true), ("PATH", false)]);
        for (p, s) in &d.files {
            t.row(vec![human_size(*s), s.to_string(), loc(p)]);
        }
        t.render(&mut out, "  ");
    }
    out
}

// ---- verify ----

fn problem_kind_str(kind: ProblemKind) -> &'static str {
    match kind {
        ProblemKind::Metadata => "metadata",
        ProblemKind::MissingFile => "missing-file",
        ProblemKind::SizeMismatch => "size-mismatch",
        ProblemKind::ChecksumMismatch => "checksum-mismatch",
        ProblemKind::Unreadable => "unreadable",
        ProblemKind::NotSelfContained => "not-self-contained",
    }
}

pub(crate) fn verify_json(r: &VerifyReport) -> Value {
    json!({
        "ok": r.is_ok(),
        "metadata_path": loc(&r.metadata_path),
        "id": r.checkpoint_id.map(|id| id.0),
        "files_checked": r.files_checked,
        "bytes_read": r.bytes_read,
        "problems": r.problems.iter().map(|p| json!({
            "kind": problem_kind_str(p.kind),
            "path": loc(&p.path),
            "detail": p.detail,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn verify_human(r: &VerifyReport) -> String {
    let mut out = String::new();
    let what = r
        .checkpoint_id
        .map_or_else(String::new, |id| format!(" (checkpoint {id})"));
    if r.is_ok() {
        let _ = writeln!(
            out,
            "OK: {}{what}: {} files, {} read, no problem found",
            loc(&r.metadata_path),
            r.files_checked,
            human_size(r.bytes_read)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "FAILED: {}{what}: {} problem(s) in {} files checked",
        loc(&r.metadata_path),
        r.problems.len(),
        r.files_checked
    );
    let mut t = Table::new(&[("PROBLEM", false), ("PATH", false), ("DETAIL", false)]);
    for p in &r.problems {
        t.row(vec![
            problem_kind_str(p.kind).to_owned(),
            loc(&p.path),
            p.detail.clone(),
        ]);
    }
    t.render(&mut out, "  ");
    out
}

// ---- gc ----

fn gc_reason_str(reason: GcReason) -> &'static str {
    match reason {
        GcReason::UnreferencedShared => "unreferenced-shared",
        GcReason::UnreferencedExclusive => "unreferenced-exclusive",
        GcReason::IncompleteCheckpoint => "incomplete-checkpoint",
        GcReason::FencedCheckpoint => "fenced-checkpoint",
    }
}

fn candidate_json(c: &GcCandidate) -> Value {
    json!({ "path": loc(&c.path), "size_bytes": c.size, "reason": gc_reason_str(c.reason) })
}

pub(crate) fn gc_json(r: &GcReport, deleted: Option<usize>) -> Value {
    json!({
        "job_dir": loc(&r.job_dir),
        "dry_run": deleted.is_none(),
        "retained": r.retained.iter().map(|id| id.0).collect::<Vec<_>>(),
        "candidates": r.candidates.iter().map(candidate_json).collect::<Vec<_>>(),
        "kept": r.kept.iter().map(|k| json!({ "path": loc(&k.path), "why": k.why })).collect::<Vec<_>>(),
        "total_size_bytes": r.total_size(),
        "deleted": deleted,
    })
}

pub(crate) fn gc_human(r: &GcReport, deleted: Option<usize>) -> String {
    let mut out = String::new();
    let retained: Vec<String> = r.retained.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "job {}: retained checkpoints [{}]",
        loc(&r.job_dir),
        retained.join(", ")
    );
    for k in &r.kept {
        let _ = writeln!(out, "kept {}: {}", loc(&k.path), k.why);
    }
    if r.candidates.is_empty() {
        let _ = writeln!(out, "no unreferenced files");
        return out;
    }
    let mut t = Table::new(&[
        ("SIZE", true),
        ("BYTES", true),
        ("REASON", false),
        ("PATH", false),
    ]);
    for c in &r.candidates {
        t.row(vec![
            human_size(c.size),
            c.size.to_string(),
            gc_reason_str(c.reason).to_owned(),
            loc(&c.path),
        ]);
    }
    t.render(&mut out, "  ");
    let total = human_size(r.total_size());
    match deleted {
        None => {
            let _ = writeln!(
                out,
                "{} unreferenced file(s), {total}; dry run, pass --delete to remove them",
                r.candidates.len()
            );
        }
        Some(n) => {
            let _ = writeln!(
                out,
                "deleted {n} of {} unreferenced file(s), {total}",
                r.candidates.len()
            );
        }
    }
    out
}

// ---- diff ----

fn files_json(files: &[(String, u64)]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|(p, s)| json!({ "path": loc(p), "size_bytes": s }))
            .collect(),
    )
}

pub(crate) fn diff_json(a: &str, b: &str, d: &SnapshotDiff) -> Value {
    json!({
        "a": a,
        "b": b,
        "state_size_bytes": [d.state_size.0, d.state_size.1],
        "operators_added": d.operators_added,
        "operators_removed": d.operators_removed,
        "operators_changed": d.operators_changed.iter().map(|c| json!({
            "uid": c.uid,
            "parallelism": [c.parallelism.0, c.parallelism.1],
            "max_parallelism": [c.max_parallelism.0, c.max_parallelism.1],
            "state_size_bytes": [c.state_size.0, c.state_size.1],
            "subtasks_changed": c.subtasks_changed,
            "files_added": c.files_added,
            "files_removed": c.files_removed,
            "files_shared": c.files_shared,
            "bytes_added": c.bytes_added,
        })).collect::<Vec<_>>(),
        "files_added": files_json(&d.files_added),
        "files_removed": files_json(&d.files_removed),
        "files_common": files_json(&d.files_common),
    })
}

fn size_change(a: u64, b: u64) -> String {
    let delta = i128::from(b) - i128::from(a);
    let sign = if delta < 0 { "-" } else { "+" };
    format!(
        "{} -> {} ({sign}{})",
        human_size(a),
        human_size(b),
        human_size(delta.unsigned_abs() as u64)
    )
}

pub(crate) fn diff_human(a: &str, b: &str, d: &SnapshotDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "a: {a}\nb: {b}");
    let _ = writeln!(
        out,
        "state size: {}",
        size_change(d.state_size.0, d.state_size.1)
    );
    let _ = writeln!(out, "\noperators:");
    if d.operators_added.is_empty()
        && d.operators_removed.is_empty()
        && d.operators_changed.is_empty()
    {
        let _ = writeln!(out, "  no change");
    }
    for uid in &d.operators_added {
        let _ = writeln!(out, "  + {uid}");
    }
    for uid in &d.operators_removed {
        let _ = writeln!(out, "  - {uid}");
    }
    for c in &d.operators_changed {
        let mut parts = Vec::new();
        if c.parallelism.0 != c.parallelism.1 {
            parts.push(format!(
                "parallelism {} -> {}",
                c.parallelism.0, c.parallelism.1
            ));
        }
        if c.max_parallelism.0 != c.max_parallelism.1 {
            parts.push(format!(
                "max parallelism {} -> {}",
                c.max_parallelism.0, c.max_parallelism.1
            ));
        }
        parts.push(format!(
            "size {}",
            size_change(c.state_size.0, c.state_size.1)
        ));
        if !c.subtasks_changed.is_empty() {
            let ids: Vec<String> = c.subtasks_changed.iter().map(u32::to_string).collect();
            parts.push(format!("state of subtasks {} changed", ids.join(",")));
        }
        if c.files_added + c.files_removed + c.files_shared > 0 {
            parts.push(format!(
                "files: {} new ({}), {} dropped, {} reused",
                c.files_added,
                human_size(c.bytes_added),
                c.files_removed,
                c.files_shared
            ));
        }
        let _ = writeln!(out, "  ~ {}: {}", c.uid, parts.join(", "));
    }
    let _ = writeln!(
        out,
        "\nfiles: {} added, {} removed, {} in common",
        d.files_added.len(),
        d.files_removed.len(),
        d.files_common.len()
    );
    let mut t = Table::new(&[
        ("", false),
        ("SIZE", true),
        ("BYTES", true),
        ("PATH", false),
    ]);
    for (mark, files) in [
        ("+", &d.files_added),
        ("-", &d.files_removed),
        ("=", &d.files_common),
    ] {
        for (p, s) in files {
            t.row(vec![mark.to_owned(), human_size(*s), s.to_string(), loc(p)]);
        }
    }
    if !t.is_empty() {
        t.render(&mut out, "  ");
    }
    out
}

// ---- dispose ----

pub(crate) fn dispose_json(path: &str, files: &[String], dry_run: bool) -> Value {
    json!({
        "savepoint": path,
        "disposed": if dry_run { Value::Null } else { Value::from(path) },
        "dry_run": dry_run,
        "files": files.iter().map(|f| loc(f)).collect::<Vec<_>>(),
    })
}

pub(crate) fn dispose_human(path: &str, files: &[String], dry_run: bool) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would delete" } else { "deleted" };
    for f in files {
        let _ = writeln!(out, "{verb} {}", loc(f));
    }
    let _ = writeln!(
        out,
        "{} savepoint {path} ({} files)",
        if dry_run {
            "would dispose of"
        } else {
            "disposed of"
        },
        files.len()
    );
    out
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
}
