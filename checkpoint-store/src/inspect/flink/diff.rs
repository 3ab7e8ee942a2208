//! [`flink_diff`]: the files two Flink snapshots share and those only one references.

use std::collections::{BTreeMap, BTreeSet};

use cornerstone_backend_api::Result;
use serde::Serialize;

use super::walk::inline_bytes;
use super::{FlinkPaths, FlinkRef, Loaded, load, resolve_one};
use crate::store::CheckpointStore;

/// A file and its size (the largest a handle records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkSizedFile {
    /// The path in the store (or its URI outside it).
    pub path: String,
    /// Its size.
    pub size_bytes: u64,
}

/// What [`flink_diff`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlinkDiff {
    /// The first snapshot.
    pub a: FlinkRef,
    /// The second snapshot.
    pub b: FlinkRef,
    /// Files both reference (state b reuses), by path.
    pub files_common: Vec<FlinkSizedFile>,
    /// Files only a references, by path.
    pub files_only_a: Vec<FlinkSizedFile>,
    /// Files only b references, by path.
    pub files_only_b: Vec<FlinkSizedFile>,
    /// The bytes of the common files.
    pub bytes_common: u64,
    /// The bytes of the files only in a.
    pub bytes_only_a: u64,
    /// The bytes of the files only in b.
    pub bytes_only_b: u64,
    /// The state size (files and inline bytes) of a and of b.
    pub state_size_bytes: (u64, u64),
    /// Operator ids only in a.
    pub operators_only_a: Vec<String>,
    /// Operator ids only in b.
    pub operators_only_b: Vec<String>,
}

fn sizes(l: &Loaded) -> BTreeMap<String, u64> {
    l.files
        .iter()
        .map(|f| (f.path.clone(), f.min_size_bytes))
        .collect()
}

fn operators(l: &Loaded) -> BTreeSet<String> {
    l.metadata
        .operators
        .iter()
        .map(|o| o.operator_id.clone())
        .collect()
}

/// Compares two Flink snapshots (each a `_metadata`, a `chk-N/` or savepoint directory, or
/// a job directory's newest checkpoint): the files both reference and those only one does,
/// with sizes.
///
/// # Errors
/// As [`flink_show`](super::flink_show) for either.
pub fn flink_diff(
    store: &CheckpointStore,
    a: &str,
    b: &str,
    paths: &FlinkPaths,
) -> Result<FlinkDiff> {
    let la = load(store, &resolve_one(store, a)?, paths)?;
    let lb = load(store, &resolve_one(store, b)?, paths)?;
    let (fa, fb) = (sizes(&la), sizes(&lb));
    let sized = |p: &String, s: &u64| FlinkSizedFile {
        path: p.clone(),
        size_bytes: *s,
    };
    let files_common: Vec<FlinkSizedFile> = fa
        .iter()
        .filter(|(p, _)| fb.contains_key(*p))
        .map(|(p, s)| sized(p, fb.get(p).map_or(s, |sb| sb.max(s))))
        .collect();
    let files_only_a: Vec<FlinkSizedFile> = fa
        .iter()
        .filter(|(p, _)| !fb.contains_key(*p))
        .map(|(p, s)| sized(p, s))
        .collect();
    let files_only_b: Vec<FlinkSizedFile> = fb
        .iter()
        .filter(|(p, _)| !fa.contains_key(*p))
        .map(|(p, s)| sized(p, s))
        .collect();
    let total = |v: &[FlinkSizedFile]| v.iter().fold(0u64, |s, f| s.saturating_add(f.size_bytes));
    let (oa, ob) = (operators(&la), operators(&lb));
    Ok(FlinkDiff {
        a: la.reference(),
        b: lb.reference(),
        bytes_common: total(&files_common),
        bytes_only_a: total(&files_only_a),
        bytes_only_b: total(&files_only_b),
        files_common,
        files_only_a,
        files_only_b,
        state_size_bytes: (
            la.file_bytes().saturating_add(inline_bytes(&la.metadata)),
            lb.file_bytes().saturating_add(inline_bytes(&lb.metadata)),
        ),
        operators_only_a: oa.difference(&ob).cloned().collect(),
        operators_only_b: ob.difference(&oa).cloned().collect(),
    })
}
