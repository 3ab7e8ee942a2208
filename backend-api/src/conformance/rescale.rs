//! Restores at another parallelism: every key is restored exactly once, into the subtask
//! that owns its key group.

use std::collections::BTreeMap;

use super::{Backend, Harness, checkpoint, clock, create, kg, params, restore, sorted};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::clock::ManualClock;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::handles::KeyedStateHandle;
use crate::keygroup::{KeyGroupRange, operator_index_for_key_group};

const KEYS: usize = 400;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key-{i}")).collect()
}

fn value_d() -> ValueStateDescriptor<u64> {
    ValueStateDescriptor::new("value")
}
fn window_d() -> ValueStateDescriptor<String> {
    ValueStateDescriptor::new("window")
}
fn list_d() -> ListStateDescriptor<u64> {
    ListStateDescriptor::new("list")
}
fn map_d() -> MapStateDescriptor<u32, String> {
    MapStateDescriptor::new("map")
}

/// Creates `p` subtasks, routes every key to the one owning its key group, writes value,
/// namespaced value, list and map state, and snapshots them all.
fn write_at<H: Harness>(
    h: &H,
    clock: &ManualClock,
    max_p: u32,
    p: u32,
    id: u64,
) -> Vec<KeyedStateHandle> {
    let subtasks: Vec<Backend<H, String>> = (0..p)
        .map(|i| {
            let range = KeyGroupRange::for_subtask(max_p, p, i).unwrap();
            create::<H, String>(h, params(clock, max_p, range)).unwrap()
        })
        .collect();
    for (i, k) in keys().iter().enumerate() {
        let g = kg(k, max_p);
        let owner = &subtasks[operator_index_for_key_group(max_p, p, g) as usize];
        assert!(owner.key_group_range().contains(g));
        let i = i as u64;
        owner
            .value_state::<u64, ()>(&value_d())
            .unwrap()
            .update(k, &(), i)
            .unwrap();
        owner
            .value_state::<String, u64>(&window_d())
            .unwrap()
            .update(k, &(i % 3), format!("w{i}"))
            .unwrap();
        if i.is_multiple_of(2) {
            owner
                .list_state::<u64, ()>(&list_d())
                .unwrap()
                .add_all(k, &(), vec![i, i + 1])
                .unwrap();
        }
        if i.is_multiple_of(3) {
            owner
                .map_state::<u32, String, ()>(&map_d())
                .unwrap()
                .put(k, &(), i as u32, format!("m{i}"))
                .unwrap();
        }
    }
    let mut handles = Vec::new();
    for subtask in &subtasks {
        handles.extend(checkpoint(h, subtask, id).keyed);
    }
    handles
}

/// Restores `handles` at parallelism `p`, registering the states, and checks that every
/// key is restored exactly once, into the subtask owning its key group, with its values.
fn check_at<H: Harness>(
    h: &H,
    clock: &ManualClock,
    max_p: u32,
    p: u32,
    handles: &[KeyedStateHandle],
) {
    let mut owners: BTreeMap<String, u32> = BTreeMap::new();
    let mut list_keys = Vec::new();
    let mut map_keys = Vec::new();
    let mut window_keys = Vec::new();
    for i in 0..p {
        let range = KeyGroupRange::for_subtask(max_p, p, i).unwrap();
        let backend = restore::<H, String>(h, clock, max_p, range, handles).unwrap();
        let value = backend.value_state::<u64, ()>(&value_d()).unwrap();
        let window = backend.value_state::<String, u64>(&window_d()).unwrap();
        let list = backend.list_state::<u64, ()>(&list_d()).unwrap();
        let map = backend.map_state::<u32, String, ()>(&map_d()).unwrap();
        for k in value.state_keys(&()).unwrap() {
            let g = kg(&k, max_p);
            assert!(
                range.contains(g),
                "key {k} of key group {g} restored into subtask {i} owning {range}"
            );
            assert_eq!(operator_index_for_key_group(max_p, p, g), i);
            if let Some(other) = owners.insert(k.clone(), i) {
                panic!("key {k} restored into subtasks {other} and {i}");
            }
        }
        for ns in 0..3 {
            window_keys.extend(window.state_keys(&ns).unwrap());
        }
        list_keys.extend(list.state_keys(&()).unwrap());
        map_keys.extend(map.state_keys(&()).unwrap());
        for k in list
            .state_keys(&())
            .unwrap()
            .iter()
            .chain(&map.state_keys(&()).unwrap())
        {
            assert!(
                range.contains(kg(k, max_p)),
                "key {k} restored into subtask {i} owning {range}"
            );
        }
        // Values of the keys this subtask owns.
        for (n, k) in keys().iter().enumerate() {
            if !range.contains(kg(k, max_p)) {
                continue;
            }
            let n = n as u64;
            assert_eq!(value.get(k, &()).unwrap(), Some(n), "value of {k}");
            assert_eq!(
                window.get(k, &(n % 3)).unwrap(),
                Some(format!("w{n}")),
                "window of {k}"
            );
            let expected_list = if n.is_multiple_of(2) {
                vec![n, n + 1]
            } else {
                vec![]
            };
            assert_eq!(list.get(k, &()).unwrap(), expected_list, "list of {k}");
            let expected_map = if n.is_multiple_of(3) {
                vec![(n as u32, format!("m{n}"))]
            } else {
                vec![]
            };
            assert_eq!(map.entries(k, &()).unwrap(), expected_map, "map of {k}");
        }
    }
    let all = sorted(keys());
    assert_eq!(
        owners.keys().cloned().collect::<Vec<_>>(),
        all,
        "every key is restored once"
    );
    assert_eq!(sorted(window_keys), all);
    let every = |m: usize| -> Vec<String> {
        sorted(
            keys()
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % m == 0)
                .map(|(_, k)| k)
                .collect(),
        )
    };
    assert_eq!(sorted(list_keys), every(2));
    assert_eq!(sorted(map_keys), every(3));
}

fn rescale<H: Harness>(h: &H, max_p: u32, from: u32, to: u32) {
    let clock = clock();
    let handles = write_at(h, &clock, max_p, from, 1);
    check_at(h, &clock, max_p, from, &handles);
    check_at(h, &clock, max_p, to, &handles);
}

/// Rescale from 1 to 3 subtasks (max parallelism 128).
pub fn rescale_1_to_3<H: Harness>(h: &H) {
    rescale(h, 128, 1, 3);
}

/// Rescale from 3 subtasks to 1 (max parallelism 128).
pub fn rescale_3_to_1<H: Harness>(h: &H) {
    rescale(h, 128, 3, 1);
}

/// Rescale from 4 to 6 subtasks (max parallelism 128).
pub fn rescale_4_to_6<H: Harness>(h: &H) {
    rescale(h, 128, 4, 6);
}

/// Rescale with max parallelism 7, up to one key group per subtask and back.
pub fn rescale_max_parallelism_7<H: Harness>(h: &H) {
    rescale(h, 7, 2, 7);
    rescale(h, 7, 7, 3);
}

/// Rescale with max parallelism 1000.
pub fn rescale_max_parallelism_1000<H: Harness>(h: &H) {
    rescale(h, 1000, 3, 5);
    rescale(h, 1000, 5, 2);
}

/// Rescale 1 → 3 → 2, with the middle run never registering the states: restored state
/// is carried over and rescaled again.
pub fn rescale_twice_without_registering<H: Harness>(h: &H) {
    let clock = clock();
    let max_p = 128;
    let first = write_at(h, &clock, max_p, 1, 1);
    let mut second = Vec::new();
    for i in 0..3 {
        let range = KeyGroupRange::for_subtask(max_p, 3, i).unwrap();
        let backend = restore::<H, String>(h, &clock, max_p, range, &first).unwrap();
        assert_eq!(backend.registered_states().len(), 4);
        second.extend(checkpoint(h, &backend, 2).keyed);
    }
    check_at(h, &clock, max_p, 2, &second);
}

/// Flink's `testKeyGroupSnapshotRestore`: `from` subtasks each register a different value
/// state per key group they own (as operators that create state at runtime do) and write
/// one key in each key group; restored at `to` subtasks, every subtask finds the state and
/// value of each key group it owns.
fn rescale_state_per_key_group<H: Harness>(h: &H, from: u32, to: u32) {
    let clock = clock();
    let max_p = 128;
    let state_d = |g: u32| ValueStateDescriptor::<String>::new(format!("state{g}"));
    let key_of = |g: u32| super::key_where(max_p, u64::from(g) * 1000, |kg| kg == g);
    let mut handles = Vec::new();
    for i in 0..from {
        let range = KeyGroupRange::for_subtask(max_p, from, i).unwrap();
        let backend = create::<H, u64>(h, params(&clock, max_p, range)).unwrap();
        for g in range.iter() {
            backend
                .value_state::<String, ()>(&state_d(g))
                .unwrap()
                .update(&key_of(g), &(), format!("{i}:{g}"))
                .unwrap();
        }
        handles.extend(checkpoint(h, &backend, 1).keyed);
    }
    let writer_of = |g: u32| operator_index_for_key_group(max_p, from, g);
    let mut seen = 0;
    for i in 0..to {
        let range = KeyGroupRange::for_subtask(max_p, to, i).unwrap();
        let backend = restore::<H, u64>(h, &clock, max_p, range, &handles).unwrap();
        for g in range.iter() {
            let state = backend.value_state::<String, ()>(&state_d(g)).unwrap();
            assert_eq!(
                state.get(&key_of(g), &()).unwrap(),
                Some(format!("{}:{g}", writer_of(g))),
                "key group {g} restored into subtask {i} of {to}"
            );
            assert_eq!(state.state_keys(&()).unwrap(), [key_of(g)]);
            seen += 1;
        }
    }
    assert_eq!(seen, max_p);
}

/// State per key group, 4 subtasks restored at 2 (Flink's
/// `testKeyGroupSnapshotRestoreScaleDown`).
pub fn rescale_state_per_key_group_4_to_2<H: Harness>(h: &H) {
    rescale_state_per_key_group(h, 4, 2);
}

/// State per key group, 2 subtasks restored at 4 (`testKeyGroupSnapshotRestoreScaleUp`).
pub fn rescale_state_per_key_group_2_to_4<H: Harness>(h: &H) {
    rescale_state_per_key_group(h, 2, 4);
}

/// State per key group, 15 subtasks restored at 77: uneven ranges
/// (`testKeyGroupsSnapshotRestoreScaleUpUnEvenDistribute`).
pub fn rescale_state_per_key_group_15_to_77<H: Harness>(h: &H) {
    rescale_state_per_key_group(h, 15, 77);
}

/// State per key group, 77 subtasks restored at 15
/// (`testKeyGroupsSnapshotRestoreScaleDownUnEvenDistribute`).
pub fn rescale_state_per_key_group_77_to_15<H: Harness>(h: &H) {
    rescale_state_per_key_group(h, 77, 15);
}
