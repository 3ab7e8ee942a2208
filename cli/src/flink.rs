//! The results of the commands on Apache Flink's own job directories (detected by the magic
//! number of `_metadata`): human tables and JSON documents with `"format": "flink"`.

use std::fmt::Write as _;

use cornerstone_checkpoint_store::flink::DistributionMode;
use cornerstone_checkpoint_store::inspect::{
    FlinkDetails, FlinkDiff, FlinkGcReport, FlinkListed, FlinkPaths, FlinkStream, FlinkVerifyReport,
};
use serde::Serialize;
use serde_json::Value;

use crate::human::{Table, key_group_range, or_dash, snapshot_type};
use crate::output::{Output, human_size};

/// The [`FlinkPaths`] of the store of `location`, with the `--path-prefix` remappings.
pub(crate) fn paths(location: &str, prefixes: &[(String, String)]) -> anyhow::Result<FlinkPaths> {
    let key = cornerstone_checkpoint_store::Location::parse(location)?
        .store_key()
        .to_owned();
    let mut paths = FlinkPaths::new(&key);
    for (old, new) in prefixes {
        paths = paths.with_prefix(old, new)?;
    }
    Ok(paths)
}

fn mode_str(m: DistributionMode) -> &'static str {
    match m {
        DistributionMode::SplitDistribute => "SPLIT_DISTRIBUTE",
        DistributionMode::Union => "UNION",
        DistributionMode::Broadcast => "BROADCAST",
    }
}

/// `list --json` of a Flink directory.
#[derive(Serialize)]
struct ListDoc<'a> {
    format: &'static str,
    location: &'a str,
    snapshots: &'a [FlinkListed],
}

/// `gc --json` of a Flink job directory.
#[derive(Serialize)]
struct GcDoc<'a> {
    format: &'static str,
    #[serde(flatten)]
    report: &'a FlinkGcReport,
    dry_run: bool,
    deleted: Option<usize>,
}

/// `show`, `verify` and `diff --json`: the result with `"format": "flink"`.
#[derive(Serialize)]
struct Doc<'a, T: Serialize> {
    format: &'static str,
    #[serde(flatten)]
    result: &'a T,
}

impl Output {
    pub(crate) fn flink_json<T: Serialize>(&self, result: &T) -> serde_json::Result<Value> {
        self.json_presented(&Doc {
            format: "flink",
            result,
        })
    }

    pub(crate) fn flink_list_json(
        &self,
        location: &str,
        entries: &[FlinkListed],
    ) -> serde_json::Result<Value> {
        self.json_presented(&ListDoc {
            format: "flink",
            location,
            snapshots: entries,
        })
    }

    pub(crate) fn flink_gc_json(
        &self,
        report: &FlinkGcReport,
        deleted: Option<usize>,
    ) -> serde_json::Result<Value> {
        self.json_presented(&GcDoc {
            format: "flink",
            report,
            dry_run: deleted.is_none(),
            deleted,
        })
    }

    pub(crate) fn flink_list_human(&self, location: &str, entries: &[FlinkListed]) -> String {
        let mut out = String::new();
        if entries.is_empty() {
            let _ = writeln!(out, "no Flink checkpoints or savepoints in {location}");
            return out;
        }
        let _ = writeln!(out, "Flink checkpoints of {location}");
        let mut t = Table::new(&[
            ("KIND", false),
            ("ID", false),
            ("FORMAT", false),
            ("TYPE", false),
            ("SIZE", false),
            ("WRITTEN", false),
            ("STATUS", false),
            ("DIR", false),
        ]);
        for e in entries {
            t.row(vec![
                e.kind.as_str().to_owned(),
                or_dash(e.id),
                or_dash(e.version.map(|v| format!("v{v}"))),
                snapshot_type(e.incremental).to_owned(),
                human_size(e.size_bytes),
                or_dash(e.written_bytes.map(human_size)),
                e.status.as_str().to_owned(),
                self.present(&e.dir),
            ]);
        }
        t.render(&mut out, "");
        for e in entries {
            if let Some(why) = &e.status_detail {
                let _ = writeln!(out, "{} is corrupt: {why}", self.present(&e.dir));
            }
        }
        out
    }

    fn flink_stream(&self, s: &FlinkStream) -> String {
        match &s.path {
            _ if s.inline => format!("inline {}", human_size(s.size_bytes)),
            Some(p) => format!("{} ({})", self.present(p), human_size(s.size_bytes)),
            None => format!("{} ({})", s.type_name, human_size(s.size_bytes)),
        }
    }

    pub(crate) fn flink_show_human(&self, d: &FlinkDetails) -> String {
        let mut out = String::new();
        let format = d
            .savepoint_format
            .as_ref()
            .map_or_else(String::new, |f| format!(" ({f})"));
        let _ = writeln!(out, "Flink {}{format} {}", d.kind.as_str(), d.checkpoint_id);
        let _ = writeln!(
            out,
            "  metadata:   {} ({}, format v{})",
            self.present(&d.metadata_path),
            human_size(d.metadata_size_bytes),
            d.version
        );
        let _ = writeln!(
            out,
            "  state size: {} ({} bytes, {} inline), {} operators, {} files",
            human_size(d.state_size_bytes),
            d.state_size_bytes,
            human_size(d.inline_bytes),
            d.operators.len(),
            d.files.len()
        );
        for m in &d.master_states {
            let _ = writeln!(
                out,
                "  master state {} (v{}): {}",
                m.name,
                m.version,
                human_size(m.size_bytes)
            );
        }
        for op in &d.operators {
            let _ = writeln!(
                out,
                "\noperator {} uid={} name={}: parallelism {}, max parallelism {}, {}{}",
                op.operator_id,
                op.uid.as_deref().unwrap_or("-"),
                op.name.as_deref().unwrap_or("-"),
                op.parallelism,
                op.max_parallelism,
                human_size(op.state_size_bytes),
                if op.fully_finished { ", finished" } else { "" }
            );
            if let Some(c) = op.coordinator_state_bytes {
                let _ = writeln!(out, "  coordinator state: {}", human_size(c));
            }
            for st in &op.subtasks {
                let _ = writeln!(
                    out,
                    "  subtask {}{}: {}",
                    st.index,
                    if st.finished { " (finished)" } else { "" },
                    human_size(st.state_size_bytes)
                );
                for h in &st.keyed {
                    let kg = key_group_range(h.key_groups);
                    let _ = writeln!(
                        out,
                        "    {} keyed {} key groups {kg}: {}",
                        h.state,
                        h.type_name,
                        human_size(h.state_size_bytes)
                    );
                    for s in &h.streams {
                        let _ = writeln!(out, "      {}", self.flink_stream(s));
                    }
                    if let Some(i) = &h.incremental {
                        let _ = writeln!(
                            out,
                            "      checkpoint {} backend {} meta {}",
                            i.checkpoint_id,
                            i.backend_id,
                            self.flink_stream(&i.meta)
                        );
                        for (what, files) in [("shared", &i.shared), ("private", &i.private)] {
                            let _ = writeln!(out, "      {what} ({}):", files.len());
                            for f in files {
                                let _ = writeln!(
                                    out,
                                    "        {} {}",
                                    f.local_path,
                                    self.flink_stream(&f.stream)
                                );
                            }
                        }
                    }
                }
                for h in &st.operator {
                    let states: Vec<String> = h
                        .states
                        .iter()
                        .map(|s| format!("{} ({})", s.name, mode_str(s.mode)))
                        .collect();
                    let _ = writeln!(
                        out,
                        "    {} operator state [{}]: {}",
                        h.state,
                        states.join(", "),
                        self.flink_stream(&h.stream)
                    );
                }
            }
        }
        if !d.files.is_empty() {
            let _ = writeln!(out, "\nfiles:");
            let mut t = Table::new(&[("BYTES", false), ("SCOPE", false), ("PATH", false)]);
            for f in &d.files {
                t.row(vec![
                    f.min_size_bytes.to_string(),
                    if f.shared { "shared" } else { "exclusive" }.to_owned(),
                    self.present(&f.path),
                ]);
            }
            t.render(&mut out, "  ");
        }
        out
    }

    pub(crate) fn flink_verify_human(&self, r: &FlinkVerifyReport) -> String {
        let mut out = String::new();
        let ids: Vec<String> = r
            .verified
            .iter()
            .map(|v| v.checkpoint_id.to_string())
            .collect();
        if r.is_ok() {
            let _ = writeln!(
                out,
                "OK: Flink checkpoint(s) [{}]: {} files, no problem found",
                ids.join(", "),
                r.files_checked
            );
            for v in &r.verified {
                let _ = writeln!(out, "  {}", self.present(&v.metadata_path));
            }
            return out;
        }
        let _ = writeln!(
            out,
            "FAILED: Flink checkpoint(s) [{}]: {} problem(s) in {} files checked",
            ids.join(", "),
            r.problems.len(),
            r.files_checked
        );
        let mut t = Table::new(&[
            ("PROBLEM", false),
            ("PATH", false),
            ("EXPECTED BYTES", false),
            ("REFERENCED BY", false),
            ("DETAIL", false),
        ]);
        for p in &r.problems {
            let by: Vec<String> = p
                .referenced_by
                .iter()
                .map(|b| format!("chk {} ({})", b.checkpoint_id, self.present(&b.dir)))
                .collect();
            t.row(vec![
                p.kind.as_str().to_owned(),
                self.present(&p.path),
                or_dash(p.expected_min_size_bytes),
                if by.is_empty() {
                    "-".to_owned()
                } else {
                    by.join(", ")
                },
                p.detail.clone(),
            ]);
        }
        t.render(&mut out, "  ");
        out
    }

    pub(crate) fn flink_gc_human(&self, r: &FlinkGcReport, deleted: Option<usize>) -> String {
        let mut out = String::new();
        let retained: Vec<String> = r
            .retained
            .iter()
            .map(|c| c.checkpoint_id.to_string())
            .collect();
        let _ = writeln!(
            out,
            "Flink job {}: retained [{}], {} referenced files",
            self.present(&r.job_dir),
            retained.join(", "),
            r.referenced_files
        );
        if r.candidates.is_empty() {
            let _ = writeln!(out, "nothing to collect");
        } else {
            let mut t = Table::new(&[("BYTES", false), ("REASON", false), ("PATH", false)]);
            for c in &r.candidates {
                t.row(vec![
                    c.size_bytes.to_string(),
                    c.reason.as_str().to_owned(),
                    self.present(&c.path),
                ]);
            }
            t.render(&mut out, "  ");
            let _ = writeln!(
                out,
                "{} file(s), {}",
                r.candidates.len(),
                human_size(r.candidate_bytes)
            );
        }
        for k in &r.kept {
            let _ = writeln!(out, "kept {}: {}", self.present(&k.path), k.why);
        }
        match deleted {
            Some(n) => {
                let _ = writeln!(out, "deleted {n} file(s)");
            }
            None if !r.candidates.is_empty() => {
                let _ = writeln!(out, "dry run: nothing deleted (use --delete)");
            }
            None => {}
        }
        out
    }

    pub(crate) fn flink_diff_human(&self, d: &FlinkDiff) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Flink checkpoint {} ({}) -> {} ({}): state {} -> {}",
            d.a.checkpoint_id,
            self.present(&d.a.dir),
            d.b.checkpoint_id,
            self.present(&d.b.dir),
            human_size(d.state_size_bytes.0),
            human_size(d.state_size_bytes.1)
        );
        for op in &d.operators_only_a {
            let _ = writeln!(out, "operator only in a: {op}");
        }
        for op in &d.operators_only_b {
            let _ = writeln!(out, "operator only in b: {op}");
        }
        let mut t = Table::new(&[("IN", false), ("BYTES", false), ("PATH", false)]);
        for (what, files) in [
            ("both", &d.files_common),
            ("only a", &d.files_only_a),
            ("only b", &d.files_only_b),
        ] {
            for f in files {
                t.row(vec![
                    what.to_owned(),
                    f.size_bytes.to_string(),
                    self.present(&f.path),
                ]);
            }
        }
        if !t.is_empty() {
            t.render(&mut out, "  ");
        }
        let _ = writeln!(
            out,
            "shared: {} files, {}; only in a: {} files, {}; only in b: {} files, {}",
            d.files_common.len(),
            human_size(d.bytes_common),
            d.files_only_a.len(),
            human_size(d.bytes_only_a),
            d.files_only_b.len(),
            human_size(d.bytes_only_b)
        );
        out
    }
}
