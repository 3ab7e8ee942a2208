//! The records of a key group that a changelog's base and deltas leave, applied in order
//! ([`live_records`]): what a full snapshot of the same state holds.

use std::collections::HashMap;
use std::hash::Hash;

use crate::descriptor::StateKind;

/// One record of a key group of a changelog (its base, then its deltas in order), as
/// [`live_records`] sees it. `state` names the record's state in any way that is the same
/// across the streams (an index of one header, or the state's name).
#[derive(Debug, Clone, Copy)]
pub struct ChangelogRecord<'a, S> {
    /// The record's state.
    pub state: S,
    /// Its kind.
    pub kind: StateKind,
    /// Serialized key.
    pub key: &'a [u8],
    /// Serialized namespace.
    pub namespace: &'a [u8],
    /// Serialized value (of a timers state, the timestamp).
    pub value: &'a [u8],
    /// Whether it is a removal ([`super::Record::removed`]).
    pub removed: bool,
}

/// What a record is the entry of: its state, key and namespace, and of a timer its
/// timestamp.
type Entry<'a, S> = (S, &'a [u8], &'a [u8], Option<&'a [u8]>);

/// Applies the records of one key group in order and says, for each, whether it is left:
/// a removal deletes the records before it of its (state, key, namespace) (of a timers
/// state, the one timer of its timestamp) and is not left itself; a value or list record
/// replaces the ones before it; a map or timer record adds one entry.
pub fn live_records<'a, S: Hash + Eq>(
    records: impl IntoIterator<Item = ChangelogRecord<'a, S>>,
) -> Vec<bool> {
    let mut live = Vec::new();
    let mut by_entry: HashMap<Entry<'a, S>, Vec<usize>> = HashMap::new();
    for r in records {
        // A timer is its timestamp too: a removal deletes that timer only.
        let timer = (r.kind == StateKind::Timers).then_some(r.value);
        let before = by_entry
            .entry((r.state, r.key, r.namespace, timer))
            .or_default();
        if r.removed || !matches!(r.kind, StateKind::Map | StateKind::Timers) {
            for i in before.drain(..) {
                live[i] = false;
            }
        }
        if !r.removed {
            before.push(live.len());
        }
        live.push(!r.removed);
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        kind: StateKind,
        key: &'static [u8],
        value: &'static [u8],
        removed: bool,
    ) -> ChangelogRecord<'static, u8> {
        ChangelogRecord {
            state: kind as u8,
            kind,
            key,
            namespace: b"",
            value,
            removed,
        }
    }

    #[test]
    fn removals_delete_values_replace_maps_and_timers_add() {
        use StateKind::{Map, Timers, Value};
        let records = [
            record(Value, b"a", b"1", false),
            record(Value, b"b", b"1", false),
            record(Map, b"a", b"x", false),
            record(Map, b"a", b"y", false),
            record(Timers, b"a", b"10", false),
            record(Timers, b"a", b"20", false),
            // Deltas.
            record(Value, b"a", b"2", false),
            record(Value, b"b", b"", true),
            record(Map, b"a", b"", true),
            record(Map, b"a", b"z", false),
            record(Timers, b"a", b"10", true),
        ];
        assert_eq!(
            live_records(records),
            [
                false, false, false, false, false, true, true, false, false, true, false
            ]
        );
    }
}
