//! State assignment on restore, including rescaling: which keyed handles a subtask reads,
//! and how operator state is redistributed (Flink's `StateAssignmentOperation`).

use std::collections::{BTreeMap, BTreeSet};

use crate::descriptor::StateMeta;
use crate::error::{Error, Result};
use crate::handles::{Distribution, KeyedStateHandle, OperatorStateHandle, OperatorStateMeta};
use crate::keygroup::KeyGroupRange;

/// The keyed handles of a previous run that a subtask owning `range` must read: those
/// whose key groups overlap it. The backend skips the key groups outside `range`.
pub fn keyed_handles_for<'a>(
    handles: impl IntoIterator<Item = &'a KeyedStateHandle>,
    range: KeyGroupRange,
) -> Vec<KeyedStateHandle> {
    handles
        .into_iter()
        .filter(|h| !h.key_group_range().intersection(&range).is_empty())
        .cloned()
        .collect()
}

/// Redistributes the operator state of `old` (one entry per old subtask) over
/// `new_parallelism` subtasks:
/// - SPLIT: the elements of all old subtasks, in subtask order, are cut into
///   `new_parallelism` contiguous parts whose sizes differ by at most one (unchanged when
///   the parallelism is unchanged);
/// - UNION: every new subtask gets every element;
/// - BROADCAST: new subtask `i` gets the copy of old subtask `i % old_parallelism`.
///
/// The new handles point into the old streams; nothing is rewritten.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] when `new_parallelism` is 0.
pub fn redistribute_operator_state(
    old: &[Vec<OperatorStateHandle>],
    new_parallelism: u32,
) -> Result<Vec<Vec<OperatorStateHandle>>> {
    if new_parallelism == 0 {
        return Err(Error::invalid_input("parallelism must be at least 1"));
    }
    let new_p = new_parallelism as usize;
    let unchanged = old.len() == new_p;
    // (new subtask, old subtask, handle index) -> state name -> meta
    type Key = (usize, usize, usize);
    let mut assigned: BTreeMap<Key, BTreeMap<String, OperatorStateMeta>> = BTreeMap::new();
    let mut assign = |new: usize,
                      old_task: usize,
                      idx: usize,
                      name: &str,
                      meta: &OperatorStateMeta,
                      offsets: Vec<u64>| {
        let states = assigned.entry((new, old_task, idx)).or_default();
        let entry = states
            .entry(name.to_owned())
            .or_insert_with(|| OperatorStateMeta {
                mode: meta.mode,
                element_type: meta.element_type.clone(),
                offsets: Vec::new(),
            });
        entry.offsets.extend(offsets);
    };

    // Names of split states, with every (old subtask, handle, offset) in order.
    let mut split: BTreeMap<&str, Vec<(usize, usize, u64, &OperatorStateMeta)>> = BTreeMap::new();
    for (old_task, handles) in old.iter().enumerate() {
        for (idx, handle) in handles.iter().enumerate() {
            for (name, meta) in &handle.states {
                match meta.mode {
                    Distribution::Split if unchanged => {
                        assign(old_task, old_task, idx, name, meta, meta.offsets.clone());
                    }
                    Distribution::Split => {
                        let list = split.entry(name).or_default();
                        list.extend(meta.offsets.iter().map(|&o| (old_task, idx, o, meta)));
                    }
                    Distribution::Union => {
                        for new in 0..new_p {
                            assign(new, old_task, idx, name, meta, meta.offsets.clone());
                        }
                    }
                    Distribution::Broadcast => {
                        for new in (0..new_p).filter(|n| n % old.len() == old_task) {
                            assign(new, old_task, idx, name, meta, meta.offsets.clone());
                        }
                    }
                }
            }
        }
    }
    for (name, elements) in split {
        let total = elements.len();
        let (base, extra) = (total / new_p, total % new_p);
        let mut it = elements.into_iter();
        for new in 0..new_p {
            let n = base + usize::from(new < extra);
            for (old_task, idx, offset, meta) in it.by_ref().take(n) {
                assign(new, old_task, idx, name, meta, vec![offset]);
            }
        }
    }

    let mut out: Vec<Vec<OperatorStateHandle>> = vec![Vec::new(); new_p];
    for ((new, old_task, idx), states) in assigned {
        out[new].push(OperatorStateHandle {
            states,
            stream: old[old_task][idx].stream.clone(),
        });
    }
    Ok(out)
}

/// Renames and drops of restored keyed states, for a job whose new version renamed or
/// removed a state: a restore applies them to every snapshot's state metas before anything
/// is registered, so the renamed state is restored (and later snapshotted) under its new
/// name, and a dropped state is gone.
///
/// ```
/// use cornerstone_backend_api::rescale::StateMapping;
/// let mapping = StateMapping::new().rename("clicks", "page-views").drop_state("debug-cache");
/// assert!(!mapping.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateMapping {
    renames: BTreeMap<String, String>,
    dropped: BTreeSet<String>,
}

impl StateMapping {
    /// No renames, no drops.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores the state stored as `old` under the name `new`.
    #[must_use]
    pub fn rename(mut self, old: impl Into<String>, new: impl Into<String>) -> Self {
        self.renames.insert(old.into(), new.into());
        self
    }

    /// Leaves the state stored as `name` out of the restore.
    #[must_use]
    pub fn drop_state(mut self, name: impl Into<String>) -> Self {
        self.dropped.insert(name.into());
        self
    }

    /// Whether it renames and drops nothing.
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty() && self.dropped.is_empty()
    }

    /// The states of one snapshot as restored: each stored meta renamed, or `None` when
    /// dropped.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when a state is both renamed and dropped, renamed
    /// to an empty name, or two states would end up with one name (a rename onto a stored
    /// state that stays), naming them.
    pub fn apply(&self, states: &[StateMeta]) -> Result<Vec<Option<StateMeta>>> {
        let mut names = BTreeSet::new();
        let mut out = Vec::with_capacity(states.len());
        for meta in states {
            if self.dropped.contains(&meta.name) {
                if self.renames.contains_key(&meta.name) {
                    return Err(Error::invalid_input("a state is both renamed and dropped")
                        .with_context("state", &meta.name));
                }
                out.push(None);
                continue;
            }
            let mut meta = meta.clone();
            if let Some(new) = self.renames.get(&meta.name) {
                if new.is_empty() {
                    return Err(
                        Error::invalid_input("a state cannot be renamed to an empty name")
                            .with_context("state", &meta.name),
                    );
                }
                meta.name = new.clone();
            }
            if !names.insert(meta.name.clone()) {
                return Err(Error::invalid_input(
                    "renaming restored states would give two states one name",
                )
                .with_context("state", &meta.name));
            }
            out.push(Some(meta));
        }
        Ok(out)
    }

    /// Checks that every renamed and dropped state was in the snapshots restored, whose
    /// state names are `stored`: a mapping of a name that does not exist is a mistake
    /// (a typo, or the wrong snapshot).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the missing states and the stored ones.
    pub fn check_used(&self, stored: &BTreeSet<String>) -> Result<()> {
        let missing: Vec<&str> = self
            .renames
            .keys()
            .chain(&self.dropped)
            .filter(|name| !stored.contains(*name))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(
            Error::invalid_input("states to rename or drop are not in the restored snapshot")
                .with_context("states", missing.join(","))
                .with_context(
                    "stored",
                    stored
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
        )
    }
}
