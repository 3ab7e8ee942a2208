//! Walking the handles of a decoded Flink `_metadata`: every stream a subtask or an
//! operator holds, and the bytes kept inline.

use crate::flink::{
    FlinkMetadata, KeyedStateHandle, OperatorState, StreamStateHandle, SubtaskState,
};

/// Calls `f` with every stream of a keyed handle (nested changelog handles included).
/// Changelog changes kept inline are no stream: see [`inline_changes`].
pub(super) fn keyed_streams<'a>(
    h: &'a KeyedStateHandle,
    f: &mut impl FnMut(&'a StreamStateHandle),
) {
    match h {
        KeyedStateHandle::KeyGroups(k)
        | KeyedStateHandle::KeyGroupsV2(k)
        | KeyedStateHandle::SavepointKeyGroups(k) => f(&k.stream),
        KeyedStateHandle::Incremental(i) | KeyedStateHandle::IncrementalV2(i) => {
            f(&i.meta);
            for s in i.shared.iter().chain(&i.private) {
                f(&s.handle);
            }
        }
        KeyedStateHandle::Changelog(c) | KeyedStateHandle::ChangelogV2(c) => {
            for k in c.materialized.iter().chain(&c.non_materialized) {
                keyed_streams(k, f);
            }
        }
        KeyedStateHandle::ChangelogByteIncrement(_) => {}
        KeyedStateHandle::ChangelogFileIncrement(c)
        | KeyedStateHandle::ChangelogFileIncrementV2(c) => {
            for o in &c.handles {
                f(&o.handle);
            }
        }
    }
}

/// The bytes of changelog changes kept inline in a keyed handle (nested ones included).
pub(super) fn inline_changes(h: &KeyedStateHandle) -> u64 {
    match h {
        KeyedStateHandle::ChangelogByteIncrement(c) => c
            .changes
            .iter()
            .fold(0u64, |s, c| s.saturating_add(c.data.len() as u64)),
        KeyedStateHandle::Changelog(c) | KeyedStateHandle::ChangelogV2(c) => c
            .materialized
            .iter()
            .chain(&c.non_materialized)
            .fold(0u64, |s, k| s.saturating_add(inline_changes(k))),
        _ => 0,
    }
}

/// Calls `f` with every stream of a subtask: operator state, keyed state, channel state.
pub(super) fn subtask_streams<'a>(st: &'a SubtaskState, f: &mut impl FnMut(&'a StreamStateHandle)) {
    for h in st
        .managed_operator_state
        .iter()
        .chain(&st.raw_operator_state)
    {
        f(h.stream());
    }
    for h in st.managed_keyed_state.iter().chain(&st.raw_keyed_state) {
        keyed_streams(h, f);
    }
    for h in &st.input_channel_state {
        f(h.delegate());
    }
    for h in &st.result_subpartition_state {
        f(h.delegate());
    }
}

/// The bytes of a stream kept inline in `_metadata` (a key-groups stream: its delegate's).
pub(super) fn inline_size(s: &StreamStateHandle) -> u64 {
    match s {
        StreamStateHandle::ByteStream { data, .. } => data.len() as u64,
        StreamStateHandle::KeyGroups(k) => inline_size(&k.stream),
        _ => 0,
    }
}

/// The state size of a subtask: what its handles record, inline and in files.
pub(super) fn subtask_size(st: &SubtaskState) -> u64 {
    let mut total = st
        .managed_keyed_state
        .iter()
        .chain(&st.raw_keyed_state)
        .fold(0u64, |s, k| s.saturating_add(inline_changes(k)));
    subtask_streams(st, &mut |s| total = total.saturating_add(s.state_size()));
    total
}

/// The state size of an operator: its subtasks' and its coordinator's.
pub(super) fn operator_size(op: &OperatorState) -> u64 {
    op.subtasks
        .iter()
        .fold(0u64, |s, st| s.saturating_add(subtask_size(st)))
        .saturating_add(
            op.coordinator_state
                .as_ref()
                .map_or(0, StreamStateHandle::state_size),
        )
}

/// The bytes a `_metadata` keeps inline in its handles: inline streams (coordinator state
/// included) and inline changelog changes. Master states are not counted.
pub(super) fn inline_bytes(m: &FlinkMetadata) -> u64 {
    let mut total = 0u64;
    for op in &m.operators {
        if let Some(c) = &op.coordinator_state {
            total = total.saturating_add(inline_size(c));
        }
        for st in &op.subtasks {
            for k in st.managed_keyed_state.iter().chain(&st.raw_keyed_state) {
                total = total.saturating_add(inline_changes(k));
            }
            subtask_streams(st, &mut |s| total = total.saturating_add(inline_size(s)));
        }
    }
    total
}

/// Whether keyed state is incremental: RocksDB (or ForSt) incremental handles, or the
/// changelog backend's.
pub(super) fn is_incremental(m: &FlinkMetadata) -> bool {
    m.operators.iter().flat_map(|op| &op.subtasks).any(|st| {
        st.managed_keyed_state
            .iter()
            .chain(&st.raw_keyed_state)
            .any(|k| {
                !matches!(
                    **k,
                    KeyedStateHandle::KeyGroups(_)
                        | KeyedStateHandle::KeyGroupsV2(_)
                        | KeyedStateHandle::SavepointKeyGroups(_)
                )
            })
    })
}
