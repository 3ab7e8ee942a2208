//! Snapshots: round trips, the synchronous/asynchronous split, failed writes.

use super::faults::{FailingStreamFactory, FailureMode};
use super::reducing::{average, sum};
use super::value::Order;
use super::{
    Harness, checkpoint, clock, expect_err, fresh, restore, restore_same, roundtrip, sorted,
    write_snapshot,
};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::error::ErrorKind;
use crate::handles::CheckpointId;
use crate::state::{ListState, MapState, ValueState};

/// Value state (with and without namespaces) survives a snapshot and restore; the
/// restored backend is writable and can be snapshotted again.
pub fn snapshot_roundtrip_value<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let plain = ValueStateDescriptor::<u64>::new("plain");
    let windowed = ValueStateDescriptor::<String>::new("windowed");
    let v = backend.value_state::<u64, ()>(&plain).unwrap();
    let w = backend.value_state::<String, u64>(&windowed).unwrap();
    for k in 0..200u64 {
        v.update(&k, &(), k * 3).unwrap();
        w.update(&k, &(k % 3), format!("w{k}")).unwrap();
    }
    v.clear(&7, &()).unwrap();
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    backend.notify_checkpoint_complete(CheckpointId(1)).unwrap();
    assert_eq!(restored.registered_states(), backend.registered_states());
    let rv = restored.value_state::<u64, ()>(&plain).unwrap();
    let rw = restored.value_state::<String, u64>(&windowed).unwrap();
    assert_eq!(
        sorted(rv.state_keys(&()).unwrap()),
        sorted(v.state_keys(&()).unwrap())
    );
    for k in 0..200u64 {
        assert_eq!(rv.get(&k, &()).unwrap(), (k != 7).then_some(k * 3));
        assert_eq!(rw.get(&k, &(k % 3)).unwrap(), Some(format!("w{k}")));
        assert_eq!(rw.get(&k, &((k + 1) % 3)).unwrap(), None);
    }
    for ns in 0..3 {
        assert_eq!(
            sorted(rw.state_keys(&ns).unwrap()),
            sorted(w.state_keys(&ns).unwrap())
        );
    }
    rv.update(&7, &(), 7).unwrap();
    let again = roundtrip::<H, u64>(h, &restored, &clock, 2);
    let av = again.value_state::<u64, ()>(&plain).unwrap();
    assert_eq!(av.get(&7, &()).unwrap(), Some(7));
    assert_eq!(av.state_keys(&()).unwrap().len(), 200);
}

/// List state survives a snapshot and restore, element order included.
pub fn snapshot_roundtrip_list<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = ListStateDescriptor::<String>::new("l");
    let l = backend.list_state::<String, u64>(&d).unwrap();
    for k in 0..100u64 {
        for i in 0..(k % 5) {
            l.add(&k, &(k % 2), format!("{k}-{i}")).unwrap();
        }
    }
    l.update(&3, &1, vec!["z".into(), "a".into()]).unwrap();
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    let r = restored.list_state::<String, u64>(&d).unwrap();
    for k in 0..100u64 {
        for ns in 0..2 {
            assert_eq!(
                r.get(&k, &ns).unwrap(),
                l.get(&k, &ns).unwrap(),
                "key {k} ns {ns}"
            );
        }
    }
    assert_eq!(r.get(&3, &1).unwrap(), ["z", "a"]);
    for ns in 0..2 {
        assert_eq!(
            sorted(r.state_keys(&ns).unwrap()),
            sorted(l.state_keys(&ns).unwrap())
        );
    }
}

/// Map state survives a snapshot and restore.
pub fn snapshot_roundtrip_map<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = MapStateDescriptor::<String, Vec<u8>>::new("m");
    let m = backend.map_state::<String, Vec<u8>, ()>(&d).unwrap();
    for k in 0..100u64 {
        for i in 0..(k % 6) {
            m.put(&k, &(), format!("uk{i}"), vec![i as u8; i as usize])
                .unwrap();
        }
    }
    m.remove(&5, &(), &"uk0".to_owned()).unwrap();
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    let r = restored.map_state::<String, Vec<u8>, ()>(&d).unwrap();
    for k in 0..100u64 {
        assert_eq!(
            sorted(r.entries(&k, &()).unwrap()),
            sorted(m.entries(&k, &()).unwrap()),
            "key {k}"
        );
    }
    assert_eq!(
        sorted(r.state_keys(&()).unwrap()),
        sorted(m.state_keys(&()).unwrap())
    );
    assert!(r.contains(&5, &(), &"uk1".to_owned()).unwrap());
    assert!(!r.contains(&5, &(), &"uk0".to_owned()).unwrap());
}

/// Reducing and aggregating state survive a snapshot and restore and keep folding.
pub fn snapshot_roundtrip_reducing_and_aggregating<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let r = backend.reducing_state::<u64, u64>(&sum("sum")).unwrap();
    let a = backend
        .aggregating_state::<u64, (u64, u64), f64, ()>(&average("avg"))
        .unwrap();
    for k in 0..50u64 {
        for v in 0..k {
            r.add(&k, &(v % 2), v).unwrap();
            a.add(&k, &(), v).unwrap();
        }
    }
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    let rr = restored.reducing_state::<u64, u64>(&sum("sum")).unwrap();
    let ra = restored
        .aggregating_state::<u64, (u64, u64), f64, ()>(&average("avg"))
        .unwrap();
    for k in 0..50u64 {
        for ns in 0..2 {
            assert_eq!(rr.get(&k, &ns).unwrap(), r.get(&k, &ns).unwrap());
        }
        assert_eq!(
            ra.accumulator(&k, &()).unwrap(),
            a.accumulator(&k, &()).unwrap()
        );
    }
    rr.add(&10, &0, 1000).unwrap();
    ra.add(&10, &(), 1000).unwrap();
    assert_eq!(rr.get(&10, &0).unwrap(), Some(20 + 1000));
    assert_eq!(ra.accumulator(&10, &()).unwrap(), Some((45 + 1000, 11)));
}

/// String keys, string namespaces and serde-derived struct values survive a round trip.
pub fn snapshot_roundtrip_string_keys_struct_values<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, String>(h, &clock);
    let vd = ValueStateDescriptor::<Order>::new("orders");
    let ld = ListStateDescriptor::<Order>::new("history");
    let md = MapStateDescriptor::<String, Order>::new("by-ref");
    let v = backend.value_state::<Order, String>(&vd).unwrap();
    let l = backend.list_state::<Order, ()>(&ld).unwrap();
    let m = backend.map_state::<String, Order, ()>(&md).unwrap();
    let keys: Vec<String> = (0..60).map(|i| format!("user-{i}-ü")).collect();
    for (i, k) in keys.iter().enumerate() {
        let i = i as u64;
        v.update(k, &format!("session-{}", i % 3), Order::sample(i))
            .unwrap();
        l.add_all(k, &(), vec![Order::sample(i), Order::sample(i + 1)])
            .unwrap();
        m.put(k, &(), format!("ref-{i}"), Order::sample(i * 2))
            .unwrap();
    }
    // The empty string is a key like any other.
    v.update(&String::new(), &String::new(), Order::sample(999))
        .unwrap();
    let restored = roundtrip::<H, String>(h, &backend, &clock, 1);
    let rv = restored.value_state::<Order, String>(&vd).unwrap();
    let rl = restored.list_state::<Order, ()>(&ld).unwrap();
    let rm = restored.map_state::<String, Order, ()>(&md).unwrap();
    for (i, k) in keys.iter().enumerate() {
        let i = i as u64;
        assert_eq!(
            rv.get(k, &format!("session-{}", i % 3)).unwrap(),
            Some(Order::sample(i))
        );
        assert_eq!(
            rl.get(k, &()).unwrap(),
            vec![Order::sample(i), Order::sample(i + 1)]
        );
        assert_eq!(
            rm.get(k, &(), &format!("ref-{i}")).unwrap(),
            Some(Order::sample(i * 2))
        );
    }
    assert_eq!(
        rv.get(&String::new(), &String::new()).unwrap(),
        Some(Order::sample(999))
    );
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(sorted(rl.state_keys(&()).unwrap()), expected);
}

/// Many keys in many key groups survive a round trip.
pub fn snapshot_roundtrip_many_keys<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let (v, l, _) = value_list_map(&backend);
    const N: u64 = 5_000;
    for k in 0..N {
        v.update(&k, &(), k ^ 0xABCD).unwrap();
        if k.is_multiple_of(10) {
            l.add_all(&k, &(), (0..20).collect()).unwrap();
        }
    }
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    let (rv, rl, _) = value_list_map(&restored);
    assert_eq!(
        sorted(rv.state_keys(&()).unwrap()),
        (0..N).collect::<Vec<_>>()
    );
    for k in 0..N {
        assert_eq!(rv.get(&k, &()).unwrap(), Some(k ^ 0xABCD));
    }
    assert_eq!(rl.state_keys(&()).unwrap().len() as u64, N / 10);
    assert_eq!(rl.get(&990, &()).unwrap(), (0..20).collect::<Vec<u64>>());
}

/// An empty backend snapshots and restores; so does a restore from no handles.
pub fn snapshot_empty_backend<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = checkpoint(h, &backend, 1);
    let restored = restore_same(h, &clock, &backend, &state);
    assert!(restored.registered_states().is_empty());
    let v = restored
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    assert_eq!(v.get(&1, &()).unwrap(), None);
    v.update(&1, &(), 1).unwrap();
    let again = roundtrip::<H, u64>(h, &restored, &clock, 2);
    let v = again
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    assert_eq!(v.get(&1, &()).unwrap(), Some(1));
    let from_nothing = restore::<H, u64>(
        h,
        &clock,
        backend.max_parallelism(),
        backend.key_group_range(),
        &[],
    )
    .unwrap();
    assert!(from_nothing.registered_states().is_empty());
}

/// A registered state without values is recorded in a snapshot: after a restore it is
/// listed, and registering it with another type fails.
pub fn snapshot_keeps_registered_empty_state<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("never-written"))
        .unwrap();
    let l = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("emptied"))
        .unwrap();
    l.add(&1, &(), 1).unwrap();
    l.clear(&1, &()).unwrap();
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    assert_eq!(restored.registered_states(), backend.registered_states());
    expect_err(
        restored.value_state::<String, ()>(&ValueStateDescriptor::new("never-written")),
        ErrorKind::InvalidInput,
    );
    let l = restored
        .list_state::<u64, ()>(&ListStateDescriptor::new("emptied"))
        .unwrap();
    assert!(l.state_keys(&()).unwrap().is_empty());
}

/// Updates and inserts made after the synchronous phase are not in the snapshot.
pub fn snapshot_excludes_later_updates<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = ValueStateDescriptor::<u64>::new("v");
    let v = backend.value_state::<u64, ()>(&d).unwrap();
    for k in 0..1_000u64 {
        v.update(&k, &(), k).unwrap();
    }
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    for k in 0..1_000u64 {
        v.update(&k, &(), k + 1).unwrap();
    }
    for k in 1_000..1_100u64 {
        v.update(&k, &(), k).unwrap();
    }
    v.transform(&0, &(), |_| Some(12345)).unwrap();
    let state = write_snapshot(h, snapshot, 1);
    let restored = restore_same(h, &clock, &backend, &state);
    let r = restored.value_state::<u64, ()>(&d).unwrap();
    assert_eq!(
        sorted(r.state_keys(&()).unwrap()),
        (0..1_000).collect::<Vec<_>>()
    );
    for k in 0..1_000u64 {
        assert_eq!(r.get(&k, &()).unwrap(), Some(k));
    }
    assert_eq!(v.get(&0, &()).unwrap(), Some(12345));
    assert_eq!(v.get(&5, &()).unwrap(), Some(6));
    assert_eq!(v.state_keys(&()).unwrap().len(), 1_100);
}

/// A value, a list and a map state of `u64` keys, values and map keys.
type ThreeStates = (
    ValueState<u64, u64>,
    ListState<u64, u64>,
    MapState<u64, u64, u64>,
);

/// The states `v` (value), `l` (list) and `m` (map) of `u64` keys, values and map keys,
/// without namespace, registered in `backend`.
fn value_list_map<B: KeyedStateBackendExt<u64> + ?Sized>(backend: &B) -> ThreeStates {
    let v = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let l = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    let m = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    (v, l, m)
}

/// Deletes made after the synchronous phase are not in the snapshot.
pub fn snapshot_excludes_later_deletes<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let (v, l, m) = value_list_map(&backend);
    for k in 0..500u64 {
        v.update(&k, &(), k).unwrap();
        l.add(&k, &(), k).unwrap();
        m.put_all(&k, &(), vec![(1, k), (2, k)]).unwrap();
    }
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    for k in 0..500u64 {
        v.clear(&k, &()).unwrap();
        if k.is_multiple_of(2) {
            l.clear(&k, &()).unwrap();
            m.clear(&k, &()).unwrap();
        } else {
            l.update(&k, &(), vec![]).unwrap();
            m.remove(&k, &(), &1).unwrap();
        }
    }
    assert!(v.state_keys(&()).unwrap().is_empty());
    let state = write_snapshot(h, snapshot, 1);
    let restored = restore_same(h, &clock, &backend, &state);
    let (rv, rl, rm) = value_list_map(&restored);
    for k in 0..500u64 {
        assert_eq!(rv.get(&k, &()).unwrap(), Some(k));
        assert_eq!(rl.get(&k, &()).unwrap(), [k]);
        assert_eq!(sorted(rm.entries(&k, &()).unwrap()), vec![(1, k), (2, k)]);
    }
}

/// List elements added after the synchronous phase are not in the snapshot.
pub fn snapshot_excludes_later_list_adds<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = ListStateDescriptor::<u64>::new("l");
    let l = backend.list_state::<u64, u64>(&d).unwrap();
    for k in 0..300u64 {
        l.add_all(&k, &0, vec![k, k + 1]).unwrap();
    }
    let snapshot = backend.snapshot(CheckpointId(7)).unwrap();
    for k in 0..300u64 {
        l.add(&k, &0, 99).unwrap();
        l.add_all(&k, &1, vec![1, 2]).unwrap();
    }
    l.merge_namespaces(&0, &0, &[1]).unwrap();
    l.update(&1, &0, vec![42]).unwrap();
    let state = write_snapshot(h, snapshot, 7);
    let restored = restore_same(h, &clock, &backend, &state);
    let r = restored.list_state::<u64, u64>(&d).unwrap();
    for k in 0..300u64 {
        assert_eq!(r.get(&k, &0).unwrap(), [k, k + 1]);
    }
    assert!(r.state_keys(&1).unwrap().is_empty());
    assert_eq!(l.get(&0, &0).unwrap(), [0, 1, 99, 1, 2]);
}

/// Map entries put after the synchronous phase are not in the snapshot.
pub fn snapshot_excludes_later_map_puts<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = MapStateDescriptor::<u64, String>::new("m");
    let m = backend.map_state::<u64, String, ()>(&d).unwrap();
    for k in 0..300u64 {
        m.put(&k, &(), 1, "old".into()).unwrap();
    }
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    for k in 0..300u64 {
        m.put(&k, &(), 1, "new".into()).unwrap();
        m.put(&k, &(), 2, "added".into()).unwrap();
    }
    for k in 300..320u64 {
        m.put_all(&k, &(), vec![(1, "fresh".into())]).unwrap();
    }
    let state = write_snapshot(h, snapshot, 1);
    let restored = restore_same(h, &clock, &backend, &state);
    let r = restored.map_state::<u64, String, ()>(&d).unwrap();
    assert_eq!(
        sorted(r.state_keys(&()).unwrap()),
        (0..300).collect::<Vec<_>>()
    );
    for k in 0..300u64 {
        assert_eq!(r.entries(&k, &()).unwrap(), vec![(1, "old".to_owned())]);
    }
    assert_eq!(m.get(&5, &(), &1).unwrap().as_deref(), Some("new"));
}

/// A series of checkpoints with the same keys written between each two (updated, removed,
/// written again): each one restores to the state at its own synchronous phase. (An
/// incremental backend writes the later ones over the earlier: a key written in several
/// intervals is in each of their changes.)
pub fn checkpoint_series_restores_each_state<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let (v, l, m) = value_list_map(&backend);
    // What round `n` leaves of key `k`: written in every round, removed in round 3 when
    // `k` is odd (and written again in round 4).
    let present = |k: u64, n: u64| n != 3 || k.is_multiple_of(2);
    let mut states = Vec::new();
    for n in 1..=5u64 {
        for k in 0..200u64 {
            if present(k, n) {
                v.update(&k, &(), k * 10 + n).unwrap();
                l.add(&k, &(), n).unwrap();
                m.put(&k, &(), n % 2, n).unwrap();
            } else {
                v.clear(&k, &()).unwrap();
                l.clear(&k, &()).unwrap();
                m.clear(&k, &()).unwrap();
            }
        }
        states.push((n, checkpoint(h, &backend, n)));
    }
    for (n, state) in &states {
        let restored = restore_same(h, &clock, &backend, state);
        let (rv, rl, rm) = value_list_map(&restored);
        for k in 0..200u64 {
            let value = present(k, *n).then_some(k * 10 + n);
            assert_eq!(rv.get(&k, &()).unwrap(), value, "checkpoint {n}, key {k}");
            // The list and map kept since the last removal (round 3, odd keys).
            let since = if *n >= 4 && !k.is_multiple_of(2) {
                4
            } else {
                1
            };
            let list: Vec<u64> = if present(k, *n) {
                (since..=*n).collect()
            } else {
                vec![]
            };
            assert_eq!(rl.get(&k, &()).unwrap(), list, "checkpoint {n}, key {k}");
            let mut entries: Vec<(u64, u64)> = Vec::new();
            if present(k, *n) {
                entries.push((n % 2, *n));
                if *n > since {
                    entries.push(((n - 1) % 2, n - 1));
                }
            }
            assert_eq!(
                sorted(rm.entries(&k, &()).unwrap()),
                sorted(entries),
                "checkpoint {n}, key {k}"
            );
        }
    }
}

/// A confirmation can arrive late: checkpoint 2 completed, then 3 was taken before 2's
/// confirmation reached the backend. Checkpoint 3 then holds 2's changes without
/// referencing the files only 2 wrote, and the store deletes those once 3 completes
/// (subsuming 2). So the checkpoint after the late confirmation references no file that 2
/// referenced and 3 did not, and restores to the state.
pub fn late_confirmation_references_no_file_the_newer_checkpoint_dropped<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let (v, _, m) = value_list_map(&backend);
    // All 400 keys in round 0, 8 of them in each later round (the later checkpoints are
    // deltas where a backend writes them).
    let write = |round: u64| {
        let step = if round == 0 { 1 } else { 50 };
        for k in (round * 7..400).step_by(step) {
            v.update(&k, &(), k * 10 + round).unwrap();
            m.put(&k, &(), round, k).unwrap();
        }
    };
    write(0);
    checkpoint(h, &backend, 1);
    backend.notify_checkpoint_complete(CheckpointId(1)).unwrap();
    write(1);
    let second = write_snapshot(h, backend.snapshot(CheckpointId(2)).unwrap(), 2);
    write(2);
    let third = write_snapshot(h, backend.snapshot(CheckpointId(3)).unwrap(), 3);
    backend.notify_checkpoint_complete(CheckpointId(2)).unwrap();
    write(3);
    let fourth = write_snapshot(h, backend.snapshot(CheckpointId(4)).unwrap(), 4);
    let files = |state: &crate::handles::SubtaskState| -> std::collections::BTreeSet<String> {
        state
            .streams()
            .into_iter()
            .filter_map(|s| s.file().map(|f| f.path.clone()))
            .collect()
    };
    let (second, third, fourth_files) = (files(&second), files(&third), files(&fourth));
    for path in second.difference(&third) {
        assert!(
            !fourth_files.contains(path),
            "checkpoint 4 references {path}, which only checkpoint 2 referenced"
        );
    }
    let restored = restore_same(h, &clock, &backend, &fourth);
    let (rv, _, rm) = value_list_map(&restored);
    for k in 0..400u64 {
        assert_eq!(rv.get(&k, &()).unwrap(), v.get(&k, &()).unwrap(), "key {k}");
        assert_eq!(
            sorted(rm.entries(&k, &()).unwrap()),
            sorted(m.entries(&k, &()).unwrap()),
            "key {k}"
        );
    }
}

/// Two snapshots can be outstanding at once, and be written in either order.
pub fn two_snapshots_outstanding<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let vd = ValueStateDescriptor::<u64>::new("v");
    let ld = ListStateDescriptor::<u64>::new("l");
    let v = backend.value_state::<u64, ()>(&vd).unwrap();
    let l = backend.list_state::<u64, ()>(&ld).unwrap();
    for k in 0..100u64 {
        v.update(&k, &(), 1).unwrap();
        l.add(&k, &(), 1).unwrap();
    }
    let first = backend.snapshot(CheckpointId(1)).unwrap();
    for k in 0..100u64 {
        v.update(&k, &(), 2).unwrap();
        l.add(&k, &(), 2).unwrap();
    }
    let second = backend.snapshot(CheckpointId(2)).unwrap();
    for k in 0..100u64 {
        v.update(&k, &(), 3).unwrap();
        l.add(&k, &(), 3).unwrap();
    }
    let state2 = write_snapshot(h, second, 2);
    let state1 = write_snapshot(h, first, 1);
    backend.notify_checkpoint_complete(CheckpointId(2)).unwrap();
    for (state, n) in [(state1, 1u64), (state2, 2)] {
        let restored = restore_same(h, &clock, &backend, &state);
        let rv = restored.value_state::<u64, ()>(&vd).unwrap();
        let rl = restored.list_state::<u64, ()>(&ld).unwrap();
        for k in 0..100u64 {
            assert_eq!(rv.get(&k, &()).unwrap(), Some(n), "checkpoint {n}");
            assert_eq!(
                rl.get(&k, &()).unwrap(),
                (1..=n).collect::<Vec<_>>(),
                "checkpoint {n}"
            );
        }
    }
    assert_eq!(v.get(&0, &()).unwrap(), Some(3));
    assert_eq!(l.get(&0, &()).unwrap(), [1, 2, 3]);
}

/// The asynchronous phase runs on another thread while this one keeps writing.
pub fn async_phase_on_another_thread<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = MapStateDescriptor::<u64, u64>::new("m");
    let m = backend.map_state::<u64, u64, ()>(&d).unwrap();
    for k in 0..2_000u64 {
        m.put(&k, &(), 0, k).unwrap();
    }
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    let streams = h.stream_factory(CheckpointId(1));
    let state = std::thread::scope(|s| {
        let writer = s.spawn(move || snapshot.write(&*streams));
        for k in 0..2_000u64 {
            m.put(&k, &(), 0, k + 1).unwrap();
            m.put(&k, &(), 1, k).unwrap();
            if k.is_multiple_of(3) {
                m.clear(&k, &()).unwrap();
            }
        }
        writer.join().expect("the writer thread panicked")
    })
    .unwrap();
    let restored = restore_same(h, &clock, &backend, &state);
    let r = restored.map_state::<u64, u64, ()>(&d).unwrap();
    assert_eq!(r.state_keys(&()).unwrap().len(), 2_000);
    for k in 0..2_000u64 {
        assert_eq!(r.entries(&k, &()).unwrap(), vec![(0, k)]);
    }
}

fn failed_write_leaves_backend_working<H: Harness>(h: &H, modes: &[FailureMode]) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = ValueStateDescriptor::<u64>::new("v");
    let v = backend.value_state::<u64, ()>(&d).unwrap();
    for k in 0..200u64 {
        v.update(&k, &(), k).unwrap();
    }
    let mut id = 0;
    for &mode in modes {
        id += 1;
        let snapshot = backend.snapshot(CheckpointId(id)).unwrap();
        let failing = FailingStreamFactory::new(h.stream_factory(CheckpointId(id)), mode);
        // A backend that keeps snapshots inline (the memory backend) needs no storage, so
        // a failing storage cannot fail it; anything that went to storage must fail.
        if let Ok(state) = snapshot.write(&failing) {
            let in_storage = state
                .streams()
                .iter()
                .filter(|s| s.file().is_some())
                .count();
            assert_eq!(
                in_storage,
                0,
                "{mode:?}: the write through a failing stream factory succeeded with {} bytes in \
                 storage: a failed stream must fail the snapshot",
                state.state_size()
            );
        }
        backend.notify_checkpoint_aborted(CheckpointId(id)).unwrap();
        // The backend keeps working.
        v.update(&(1_000 + id), &(), id).unwrap();
        assert_eq!(v.get(&0, &()).unwrap(), Some(0));
    }
    id += 1;
    let state = checkpoint(h, &backend, id);
    let restored = restore_same(h, &clock, &backend, &state);
    let r = restored.value_state::<u64, ()>(&d).unwrap();
    assert_eq!(r.state_keys(&()).unwrap().len(), 200 + modes.len());
    for k in 0..200u64 {
        assert_eq!(r.get(&k, &()).unwrap(), Some(k));
    }
    for i in 1..=modes.len() as u64 {
        assert_eq!(r.get(&(1_000 + i), &()).unwrap(), Some(i));
    }
}

/// A snapshot whose stream cannot be created fails that checkpoint only: the backend keeps
/// working and a later snapshot succeeds.
pub fn failed_stream_create_leaves_backend_working<H: Harness>(h: &H) {
    failed_write_leaves_backend_working(h, &[FailureMode::Create]);
}

/// A snapshot whose stream fails while writing, or on close, fails that checkpoint only.
pub fn failed_stream_write_leaves_backend_working<H: Harness>(h: &H) {
    failed_write_leaves_backend_working(
        h,
        &[
            FailureMode::WriteAfter(0),
            FailureMode::WriteAfter(20),
            FailureMode::Close,
        ],
    );
}

/// Restored state that is never registered again is carried over by the next snapshot.
pub fn unregistered_restored_state_survives_second_cycle<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let vd = ValueStateDescriptor::<u64>::new("v");
    let ld = ListStateDescriptor::<String>::new("l");
    let md = MapStateDescriptor::<u32, u64>::new("m");
    let v = backend.value_state::<u64, ()>(&vd).unwrap();
    let l = backend.list_state::<String, u64>(&ld).unwrap();
    let m = backend.map_state::<u32, u64, ()>(&md).unwrap();
    for k in 0..50u64 {
        v.update(&k, &(), k).unwrap();
        l.add(&k, &(k % 2), format!("e{k}")).unwrap();
        m.put(&k, &(), k as u32, k).unwrap();
    }
    let second = roundtrip::<H, u64>(h, &backend, &clock, 1);
    assert_eq!(second.registered_states(), backend.registered_states());
    // Only "v" is used in the second run.
    let v2 = second.value_state::<u64, ()>(&vd).unwrap();
    v2.update(&0, &(), 100).unwrap();
    let third = roundtrip::<H, u64>(h, &second, &clock, 2);
    assert_eq!(third.registered_states(), backend.registered_states());
    let v3 = third.value_state::<u64, ()>(&vd).unwrap();
    let l3 = third.list_state::<String, u64>(&ld).unwrap();
    let m3 = third.map_state::<u32, u64, ()>(&md).unwrap();
    assert_eq!(v3.get(&0, &()).unwrap(), Some(100));
    for k in 0..50u64 {
        if k > 0 {
            assert_eq!(v3.get(&k, &()).unwrap(), Some(k));
        }
        assert_eq!(l3.get(&k, &(k % 2)).unwrap(), [format!("e{k}")]);
        assert_eq!(m3.get(&k, &(), &(k as u32)).unwrap(), Some(k));
    }
}
