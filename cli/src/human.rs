//! The human renderings of every command's result: plain tables on `comfy-table`.

use std::fmt::Write as _;

use cornerstone_backend_api::StateScope;
use cornerstone_checkpoint_store::inspect::{
    GcReport, ListedSnapshot, SnapshotDetails, SnapshotDiff, StreamLocation, VerifyReport,
};

use crate::output::{Output, human_size, rfc3339};

fn scope_str(scope: StateScope) -> &'static str {
    match scope {
        StateScope::Exclusive => "exclusive",
        StateScope::Shared => "shared",
        StateScope::TaskOwned => "task-owned",
    }
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

/// `-` for `None`, the value otherwise.
pub(crate) fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The TYPE column of `list`: whether a snapshot is incremental, where known.
pub(crate) fn snapshot_type(incremental: Option<bool>) -> &'static str {
    match incremental {
        Some(true) => "incremental",
        Some(false) => "full",
        None => "-",
    }
}

/// A key group range `a..=b`, or `-`.
pub(crate) fn key_group_range(key_groups: Option<(u32, u32)>) -> String {
    or_dash(key_groups.map(|(a, b)| format!("{a}..={b}")))
}

/// A plain table (whitespace-separated columns, a header row) on `comfy-table`: two spaces
/// between columns, the columns marked so right-aligned, no trailing spaces. Every human
/// table of the tool, Cornerstone's and Flink's.
pub(crate) struct Table {
    inner: comfy_table::Table,
    rows: usize,
}

impl Table {
    /// A table with `columns`: (header, right-aligned).
    pub(crate) fn new(columns: &[(&'static str, bool)]) -> Self {
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

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.inner.add_row(cells);
        self.rows += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends the table to `out`, each line after `indent`.
    pub(crate) fn render(&self, out: &mut String, indent: &str) {
        for line in self.inner.lines() {
            out.push_str(indent);
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

impl Output {
    pub(crate) fn list_human(&self, location: &str, entries: &[ListedSnapshot]) -> String {
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
                or_dash(e.id.map(|id| id.0)),
                or_dash(e.completed_timestamp_ms.map(rfc3339)),
                or_dash(
                    e.duration_ms()
                        .map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms))),
                ),
                snapshot_type(e.incremental).to_owned(),
                human_size(e.size_bytes),
                or_dash(e.written_bytes.map(human_size)),
                e.status.as_str().to_owned(),
                self.loc(&e.dir),
            ]);
        }
        t.render(&mut out, "");
        for e in entries {
            if let Some(why) = e.status.detail() {
                let _ = writeln!(out, "{} is corrupt: {why}", self.loc(&e.dir));
            }
        }
        out
    }

    fn stream_human(&self, s: &StreamLocation) -> String {
        match s {
            StreamLocation::Inline { size } => format!("inline, {}", human_size(*size)),
            StreamLocation::File {
                path, scope, size, ..
            } => format!(
                "{} ({}, {})",
                self.loc(path),
                scope_str(*scope),
                human_size(*size)
            ),
        }
    }

    pub(crate) fn show_human(&self, d: &SnapshotDetails) -> String {
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
            self.loc(&d.snapshot.metadata_path),
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
                for st in &op.states {
                    let value = match &st.user_key_type {
                        Some(uk) => format!("{uk} -> {}", st.value_type),
                        None => st.value_type.clone(),
                    };
                    t.row(vec![
                        st.name.clone(),
                        st.kind.clone(),
                        or_dash(st.key_type.as_ref()),
                        or_dash(st.namespace_type.as_ref()),
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
                    let kg = key_group_range(h.key_groups);
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
                                match h.chain {
                                    Some(c) => format!(
                                        "changelog: base chk-{} + {} deltas, uploaded {} of {}",
                                        c.base_checkpoint,
                                        c.deltas,
                                        human_size(c.uploaded_bytes),
                                        human_size(c.chain_bytes)
                                    ),
                                    None => h.kind.to_owned(),
                                }
                            } else {
                                String::new()
                            },
                            if first { kg.clone() } else { String::new() },
                            if first { states.clone() } else { String::new() },
                            self.stream_human(s),
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
                t.row(vec![human_size(*s), s.to_string(), self.loc(p)]);
            }
            t.render(&mut out, "  ");
        }
        out
    }

    pub(crate) fn verify_human(&self, r: &VerifyReport) -> String {
        let mut out = String::new();
        let what = r
            .checkpoint_id
            .map_or_else(String::new, |id| format!(" (checkpoint {id})"));
        if r.is_ok() {
            let _ = writeln!(
                out,
                "OK: {}{what}: {} files, {} read, no problem found",
                self.loc(&r.metadata_path),
                r.files_checked,
                human_size(r.bytes_read)
            );
            return out;
        }
        let _ = writeln!(
            out,
            "FAILED: {}{what}: {} problem(s) in {} files checked",
            self.loc(&r.metadata_path),
            r.problems.len(),
            r.files_checked
        );
        let mut t = Table::new(&[("PROBLEM", false), ("PATH", false), ("DETAIL", false)]);
        for p in &r.problems {
            t.row(vec![
                p.kind.as_str().to_owned(),
                self.loc(&p.path),
                p.detail.clone(),
            ]);
        }
        t.render(&mut out, "  ");
        out
    }

    pub(crate) fn gc_human(&self, r: &GcReport, deleted: Option<usize>) -> String {
        let mut out = String::new();
        let retained: Vec<String> = r.retained.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "job {}: retained checkpoints [{}]",
            self.loc(&r.job_dir),
            retained.join(", ")
        );
        for k in &r.kept {
            let _ = writeln!(out, "kept {}: {}", self.loc(&k.path), k.why);
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
                c.reason.as_str().to_owned(),
                self.loc(&c.path),
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

    pub(crate) fn diff_human(&self, a: &str, b: &str, d: &SnapshotDiff) -> String {
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
                t.row(vec![
                    mark.to_owned(),
                    human_size(*s),
                    s.to_string(),
                    self.loc(p),
                ]);
            }
        }
        if !t.is_empty() {
            t.render(&mut out, "  ");
        }
        out
    }

    pub(crate) fn dispose_human(&self, path: &str, files: &[String], dry_run: bool) -> String {
        let mut out = String::new();
        let verb = if dry_run { "would delete" } else { "deleted" };
        for f in files {
            let _ = writeln!(out, "{verb} {}", self.loc(f));
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
}
