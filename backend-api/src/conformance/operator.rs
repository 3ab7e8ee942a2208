//! Operator state: SPLIT and UNION list state and broadcast state, through the harness's
//! storage, redistributed on rescale.

use std::collections::BTreeMap;

use super::{Harness, expect_err, sorted};
use crate::error::ErrorKind;
use crate::handles::{CheckpointId, OperatorStateHandle};
use crate::operator::OperatorStateBackend;
use crate::rescale::redistribute_operator_state;

/// Snapshots each backend into the harness's storage: the operator handles per subtask.
fn snapshot_all<H: Harness>(
    h: &H,
    backends: &[OperatorStateBackend],
    id: u64,
) -> Vec<Vec<OperatorStateHandle>> {
    backends
        .iter()
        .map(|b| {
            b.snapshot(CheckpointId(id))
                .write(&*h.stream_factory(CheckpointId(id)))
                .expect("write operator state")
                .operator
        })
        .collect()
}

/// Redistributes `old` to `p` subtasks and restores them.
fn restore_all<H: Harness>(
    h: &H,
    old: &[Vec<OperatorStateHandle>],
    p: u32,
) -> Vec<OperatorStateBackend> {
    let reader = h.reader();
    redistribute_operator_state(old, p)
        .expect("redistribute operator state")
        .iter()
        .map(|handles| {
            OperatorStateBackend::restore(handles, reader.as_deref())
                .expect("restore operator state")
        })
        .collect()
}

/// Subtask `i` of the old run holds `sizes[i]` elements `(i, n)`; returns the split lists of
/// the restored subtasks.
type Elements = Vec<(u64, u64)>;

fn split(h: &impl Harness, sizes: &[u64], p: u32) -> (Elements, Vec<Elements>) {
    let backends: Vec<OperatorStateBackend> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let b = OperatorStateBackend::new();
            let offsets = b.list_state::<(u64, u64)>("offsets").unwrap();
            offsets.add_all((0..n).map(|e| (i as u64, e)));
            b
        })
        .collect();
    let all: Vec<(u64, u64)> = sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| (0..n).map(move |e| (i as u64, e)))
        .collect();
    let old = snapshot_all(h, &backends, 1);
    let restored = restore_all(h, &old, p);
    assert_eq!(restored.len(), p as usize);
    let lists = restored
        .iter()
        .map(|b| b.list_state::<(u64, u64)>("offsets").unwrap().get())
        .collect();
    (all, lists)
}

#[track_caller]
fn assert_even_split(all: &[(u64, u64)], lists: &[Vec<(u64, u64)>]) {
    let mut got: Vec<(u64, u64)> = lists.iter().flatten().copied().collect();
    // In subtask order, the parts are contiguous runs of the old elements.
    assert_eq!(
        got, all,
        "SPLIT hands out every element exactly once, in order"
    );
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), all.len());
    let min = lists
        .iter()
        .map(Vec::len)
        .min()
        .expect("at least one subtask");
    let max = lists
        .iter()
        .map(Vec::len)
        .max()
        .expect("at least one subtask");
    assert!(
        max - min <= 1,
        "uneven split: {:?}",
        lists.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

/// SPLIT list state from 2 subtasks to 3: every element once, sizes differ by at most one.
pub fn operator_split_2_to_3<H: Harness>(h: &H) {
    let (all, lists) = split(h, &[3, 8], 3);
    assert_even_split(&all, &lists);
    let (all, lists) = split(h, &[0, 2], 3);
    assert_even_split(&all, &lists);
}

/// SPLIT list state from 3 subtasks to 2.
pub fn operator_split_3_to_2<H: Harness>(h: &H) {
    let (all, lists) = split(h, &[5, 0, 6], 2);
    assert_even_split(&all, &lists);
    let (all, lists) = split(h, &[1, 1, 1], 2);
    assert_even_split(&all, &lists);
}

/// At the same parallelism, SPLIT state stays where it was, even when uneven.
pub fn operator_split_same_parallelism_keeps_assignment<H: Harness>(h: &H) {
    let sizes = [7, 0, 2];
    let (_, lists) = split(h, &sizes, 3);
    for (i, list) in lists.iter().enumerate() {
        let expected: Vec<(u64, u64)> = (0..sizes[i]).map(|e| (i as u64, e)).collect();
        assert_eq!(list, &expected, "subtask {i}");
    }
}

/// UNION list state: every new subtask gets every element, whatever the parallelism.
pub fn operator_union_every_subtask_gets_all<H: Harness>(h: &H) {
    let backends: Vec<OperatorStateBackend> = (0..2u64)
        .map(|i| {
            let b = OperatorStateBackend::new();
            b.union_list_state::<String>("watermarks")
                .unwrap()
                .add_all((0..=i).map(|e| format!("{i}-{e}")));
            b
        })
        .collect();
    let old = snapshot_all(h, &backends, 1);
    let expected = vec!["0-0".to_owned(), "1-0".to_owned(), "1-1".to_owned()];
    for p in [1, 2, 3] {
        for b in restore_all(h, &old, p) {
            let mut got = b.union_list_state::<String>("watermarks").unwrap().get();
            got.sort();
            assert_eq!(got, expected, "parallelism {p}");
        }
    }
}

/// Broadcast state: every new subtask gets the same map, whatever the parallelism.
pub fn operator_broadcast_same_map_everywhere<H: Harness>(h: &H) {
    let rules: BTreeMap<String, u64> = (0..20u64).map(|i| (format!("rule-{i}"), i)).collect();
    let backends: Vec<OperatorStateBackend> = (0..3)
        .map(|_| {
            let b = OperatorStateBackend::new();
            let state = b.broadcast_state::<String, u64>("rules").unwrap();
            for (k, v) in &rules {
                state.put(k.clone(), *v);
            }
            b
        })
        .collect();
    let old = snapshot_all(h, &backends, 1);
    for p in [1, 2, 3, 5] {
        let restored = restore_all(h, &old, p);
        assert_eq!(restored.len(), p as usize);
        for b in restored {
            let state = b.broadcast_state::<String, u64>("rules").unwrap();
            let got: BTreeMap<String, u64> = state.entries().into_iter().collect();
            assert_eq!(got, rules, "parallelism {p}");
            assert_eq!(state.get(&"rule-3".to_owned()), Some(3));
        }
    }
}

/// Registering restored operator state with another mode or element type is an
/// `InvalidInput` error naming the state.
pub fn operator_restore_with_other_mode_fails<H: Harness>(h: &H) {
    let b = OperatorStateBackend::new();
    b.list_state::<u64>("split").unwrap().add(1);
    b.union_list_state::<u64>("union").unwrap().add(2);
    b.broadcast_state::<u64, u64>("broadcast")
        .unwrap()
        .put(3, 3);
    let old = snapshot_all(h, &[b], 1);
    let restored = restore_all(h, &old, 1).pop().expect("one subtask");
    let e = expect_err(
        restored.union_list_state::<u64>("split"),
        ErrorKind::InvalidInput,
    );
    assert!(e.to_string().contains("split"), "{e}");
    let e = expect_err(restored.list_state::<u64>("union"), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("union"), "{e}");
    expect_err(
        restored.list_state::<u64>("broadcast"),
        ErrorKind::InvalidInput,
    );
    expect_err(
        restored.list_state::<String>("split"),
        ErrorKind::InvalidInput,
    );
    expect_err(
        restored.broadcast_state::<u64, String>("broadcast"),
        ErrorKind::InvalidInput,
    );
    // The right registrations still find the data.
    assert_eq!(restored.list_state::<u64>("split").unwrap().get(), vec![1]);
    assert_eq!(
        restored.union_list_state::<u64>("union").unwrap().get(),
        vec![2]
    );
    assert_eq!(
        restored
            .broadcast_state::<u64, u64>("broadcast")
            .unwrap()
            .get(&3),
        Some(3)
    );
}

/// Restored operator state that is not registered again is carried over by the next
/// snapshot, and still redistributed by its mode.
pub fn operator_unregistered_state_survives<H: Harness>(h: &H) {
    let backends: Vec<OperatorStateBackend> = (0..2u64)
        .map(|i| {
            let b = OperatorStateBackend::new();
            b.list_state::<u64>("split")
                .unwrap()
                .add_all([i * 10, i * 10 + 1]);
            b.union_list_state::<u64>("union").unwrap().add(i);
            b
        })
        .collect();
    let first = snapshot_all(h, &backends, 1);
    let middle = restore_all(h, &first, 2);
    middle[0].list_state::<u64>("split").unwrap().add(99);
    for b in &middle {
        assert_eq!(
            b.state_names(),
            vec!["split".to_owned(), "union".to_owned()]
        );
    }
    let second = snapshot_all(h, &middle, 2);
    let last = restore_all(h, &second, 1).pop().expect("one subtask");
    let mut split = last.list_state::<u64>("split").unwrap().get();
    split.sort_unstable();
    assert_eq!(split, vec![0, 1, 10, 11, 99]);
    // Union state, restored twice at parallelism 2, was carried over by both subtasks.
    let mut union = last.union_list_state::<u64>("union").unwrap().get();
    union.sort_unstable();
    assert_eq!(union, vec![0, 0, 1, 1]);
}

/// Registration (Flink's `testRegisterStates`): a name registered again returns the same
/// state, and registering it with another mode is an `InvalidInput` error naming it.
pub fn operator_register_states<H: Harness>(h: &H) {
    let b = OperatorStateBackend::new();
    assert!(b.state_names().is_empty());
    let l1 = b.list_state::<u64>("test1").unwrap();
    l1.add(42);
    l1.add(4711);
    let l2 = b.list_state::<u64>("test2").unwrap();
    l2.add_all([7, 13, 23]);
    let u3 = b.union_list_state::<u64>("test3").unwrap();
    u3.add_all([17, 3, 123]);
    assert_eq!(b.state_names(), ["test1", "test2", "test3"]);
    let l1b = b.list_state::<u64>("test1").unwrap();
    l1b.add(123);
    assert_eq!(l1.get(), [42, 4711, 123]);
    assert_eq!(l1b.get(), [42, 4711, 123]);
    assert_eq!(u3.get(), [17, 3, 123]);
    let e = expect_err(b.union_list_state::<u64>("test2"), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("test2"), "{e}");
    let e = expect_err(b.list_state::<u64>("test3"), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("test3"), "{e}");
    // The registrations survive a snapshot and restore.
    let restored = restore_all(h, &snapshot_all(h, &[b], 1), 1);
    assert_eq!(
        restored[0].list_state::<u64>("test1").unwrap().get(),
        [42, 4711, 123]
    );
    assert_eq!(restored[0].state_names(), ["test1", "test2", "test3"]);
}

/// A snapshot holds the operator state of its synchronous phase: changes made while its
/// asynchronous phase is pending (adds, puts, clears, a new state) are not in it (Flink's
/// `testSnapshotRestoreSync`, `testSnapshotRestoreAsync`).
pub fn operator_snapshot_isolation<H: Harness>(h: &H) {
    let b = OperatorStateBackend::new();
    let l1 = b.list_state::<u64>("test1").unwrap();
    let l2 = b.list_state::<u64>("test2").unwrap();
    let u3 = b.union_list_state::<u64>("test3").unwrap();
    let b1 = b.broadcast_state::<u64, u64>("test4").unwrap();
    let b2 = b.broadcast_state::<u64, u64>("test5").unwrap();
    b.broadcast_state::<u64, u64>("test6").unwrap();
    l1.add_all([42, 4711]);
    l2.add_all([7, 13, 23]);
    u3.add_all([17, 18, 19, 20]);
    b1.put(1, 2);
    b1.put(2, 5);
    b2.put(2, 5);
    let snapshot = b.snapshot(CheckpointId(1));
    l1.add(77);
    b1.put(32, 97);
    l2.update(l2.get().iter().map(|v| v + 10).collect());
    u3.clear();
    b2.clear();
    b.list_state::<u64>("test7").unwrap().add(1);
    let state = snapshot
        .write(&*h.stream_factory(CheckpointId(1)))
        .expect("write operator state");
    let restored = restore_all(h, &[state.operator], 1);
    let r = &restored[0];
    assert_eq!(
        r.state_names(),
        ["test1", "test2", "test3", "test4", "test5", "test6"]
    );
    assert_eq!(r.list_state::<u64>("test1").unwrap().get(), [42, 4711]);
    assert_eq!(r.list_state::<u64>("test2").unwrap().get(), [7, 13, 23]);
    assert_eq!(
        r.union_list_state::<u64>("test3").unwrap().get(),
        [17, 18, 19, 20]
    );
    let entries = |name: &str| sorted(r.broadcast_state::<u64, u64>(name).unwrap().entries());
    assert_eq!(entries("test4"), [(1, 2), (2, 5)]);
    assert_eq!(entries("test5"), [(2, 5)]);
    assert!(entries("test6").is_empty());
}

/// A backend without operator state snapshots and restores to one without states
/// (Flink's `testSnapshotEmpty`).
pub fn operator_empty_snapshot<H: Harness>(h: &H) {
    let old = snapshot_all(h, &[OperatorStateBackend::new()], 1);
    let restored = restore_all(h, &old, 2);
    for r in &restored {
        assert!(r.state_names().is_empty(), "{:?}", r.state_names());
    }
}

/// Broadcast state through remove and clear, with a snapshot and restore after each
/// (Flink's `testSnapshotBroadcastStateWithEmptyOperatorState`).
pub fn operator_broadcast_remove_and_clear_cycles<H: Harness>(h: &H) {
    let mut backend = OperatorStateBackend::new();
    let mut expected = vec![(1, 2), (3, 4), (5, 6)];
    let state = backend.broadcast_state::<u64, u64>("b").unwrap();
    for (k, v) in &expected {
        state.put(*k, *v);
    }
    for (id, change) in [(1u64, "remove"), (2, "clear"), (3, "none")] {
        let old = snapshot_all(h, &[backend], id);
        backend = restore_all(h, &old, 1).remove(0);
        let state = backend.broadcast_state::<u64, u64>("b").unwrap();
        assert_eq!(sorted(state.entries()), expected, "after checkpoint {id}");
        match change {
            "remove" => {
                state.remove(&1);
                expected.remove(0);
            }
            "clear" => {
                state.clear();
                expected.clear();
            }
            _ => {}
        }
    }
    assert_eq!(backend.state_names(), ["b"]);
}

/// Union list state where some subtasks never registered it: every new subtask gets the
/// elements of those that did, and the others contribute nothing.
pub fn operator_union_partly_registered<H: Harness>(h: &H) {
    let backends: Vec<OperatorStateBackend> = (0..3).map(|_| OperatorStateBackend::new()).collect();
    for i in [0u64, 2] {
        backends[i as usize]
            .union_list_state::<u64>("u")
            .unwrap()
            .add_all([i * 10, i * 10 + 1]);
    }
    backends[1].list_state::<u64>("other").unwrap().add(99);
    let old = snapshot_all(h, &backends, 1);
    for p in [1, 2, 4] {
        for (i, r) in restore_all(h, &old, p).iter().enumerate() {
            let u = r.union_list_state::<u64>("u").unwrap();
            assert_eq!(sorted(u.get()), [0, 1, 20, 21], "subtask {i} of {p}");
        }
    }
}
