//! [`diff`]: what changed between two snapshots.

use std::collections::{BTreeMap, BTreeSet};

use cornerstone_backend_api::{Result, StreamStateHandle, SubtaskState};

use crate::completed::CompletedCheckpoint;
use crate::layout;
use crate::store::CheckpointStore;

/// How an operator changed between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorChange {
    /// The uid.
    pub uid: String,
    /// Parallelism in a and b.
    pub parallelism: (u32, u32),
    /// Max parallelism in a and b.
    pub max_parallelism: (u32, u32),
    /// Referenced state size in a and b.
    pub state_size: (u64, u64),
    /// Subtasks whose handles differ (present in one only, or with other handles).
    pub subtasks_changed: Vec<u32>,
    /// Files the operator references only in b: written since a.
    pub files_added: u64,
    /// Files it references only in a: no longer needed by b.
    pub files_removed: u64,
    /// Files it references in both: state b reuses (incremental checkpoints).
    pub files_shared: u64,
    /// Bytes of the files only in b.
    pub bytes_added: u64,
}

/// What [`diff`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotDiff {
    /// Operator uids only in a.
    pub operators_removed: Vec<String>,
    /// Operator uids only in b.
    pub operators_added: Vec<String>,
    /// Operators in both whose parallelism, max parallelism or size differ.
    pub operators_changed: Vec<OperatorChange>,
    /// Files (path in the store, size) only referenced by a.
    pub files_removed: Vec<(String, u64)>,
    /// Files only referenced by b.
    pub files_added: Vec<(String, u64)>,
    /// Files referenced by both (shared state reused by b).
    pub files_common: Vec<(String, u64)>,
    /// Total referenced size of a and b.
    pub state_size: (u64, u64),
}

/// The files (path in the store, size) that operator `op` of `c` references.
fn operator_files(
    c: &CompletedCheckpoint,
    op: &crate::metadata::OperatorState,
) -> BTreeMap<String, u64> {
    op.subtasks
        .values()
        .flat_map(SubtaskState::streams)
        .filter_map(|s| match s {
            StreamStateHandle::File(f) => Some((layout::join(&c.base_dir, &f.path), f.size)),
            StreamStateHandle::Inline(_) => None,
        })
        .collect()
}

/// Compares two checkpoints or savepoints: operators, files and sizes.
///
/// # Errors
/// Resolution and decoding errors of either.
pub fn diff(store: &CheckpointStore, a: &str, b: &str) -> Result<SnapshotDiff> {
    let a = store.resolve(a)?;
    let b = store.resolve(b)?;
    let (ma, mb) = (&a.metadata, &b.metadata);
    let mut out = SnapshotDiff {
        state_size: (ma.state_size(), mb.state_size()),
        ..SnapshotDiff::default()
    };
    // By uid: the same order whatever order the checkpoints list their operators in.
    let mut ops_a: Vec<&crate::metadata::OperatorState> = ma.operators.iter().collect();
    ops_a.sort_by(|x, y| x.uid.cmp(&y.uid));
    let mut ops_b: Vec<&crate::metadata::OperatorState> = mb.operators.iter().collect();
    ops_b.sort_by(|x, y| x.uid.cmp(&y.uid));
    for op in ops_a {
        match mb.operator(&op.uid) {
            None => out.operators_removed.push(op.uid.clone()),
            Some(other) => {
                let (fa, fb) = (operator_files(&a, op), operator_files(&b, other));
                let subtasks: BTreeSet<u32> = op
                    .subtasks
                    .keys()
                    .chain(other.subtasks.keys())
                    .copied()
                    .collect();
                let change = OperatorChange {
                    uid: op.uid.clone(),
                    parallelism: (op.parallelism, other.parallelism),
                    max_parallelism: (op.max_parallelism, other.max_parallelism),
                    state_size: (op.state_size(), other.state_size()),
                    subtasks_changed: subtasks
                        .into_iter()
                        .filter(|i| op.subtasks.get(i) != other.subtasks.get(i))
                        .collect(),
                    files_added: fb.keys().filter(|p| !fa.contains_key(*p)).count() as u64,
                    files_removed: fa.keys().filter(|p| !fb.contains_key(*p)).count() as u64,
                    files_shared: fa.keys().filter(|p| fb.contains_key(*p)).count() as u64,
                    bytes_added: fb
                        .iter()
                        .filter(|(p, _)| !fa.contains_key(*p))
                        .map(|(_, s)| s)
                        .sum(),
                };
                if change.parallelism.0 != change.parallelism.1
                    || change.max_parallelism.0 != change.max_parallelism.1
                    || change.state_size.0 != change.state_size.1
                    || op.subtasks != other.subtasks
                {
                    out.operators_changed.push(change);
                }
            }
        }
    }
    for op in ops_b {
        if ma.operator(&op.uid).is_none() {
            out.operators_added.push(op.uid.clone());
        }
    }
    let files = |c: &CompletedCheckpoint| -> BTreeMap<String, u64> {
        c.metadata
            .files()
            .into_iter()
            .map(|f| (layout::join(&c.base_dir, &f.path), f.size))
            .collect()
    };
    let (fa, fb) = (files(&a), files(&b));
    for (p, s) in &fa {
        if fb.contains_key(p) {
            out.files_common.push((p.clone(), *s));
        } else {
            out.files_removed.push((p.clone(), *s));
        }
    }
    for (p, s) in &fb {
        if !fa.contains_key(p) {
            out.files_added.push((p.clone(), *s));
        }
    }
    Ok(out)
}
