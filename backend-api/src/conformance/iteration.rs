//! Iteration while the state changes: map state modified from inside `for_each`, state
//! changed during a walk of its keys, keys per namespace for every state kind, and absent
//! values through clear and restore.

use super::reducing::{average, sum};
use super::{Harness, clock, fresh, roundtrip, sorted};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};

/// Removes, overwrites and a clear from inside `for_each`: every entry there when the
/// iteration began is visited exactly once, with its value at that time, and the changes
/// take effect (Flink's `testMapState` iterator updates, `testMapStateIteratorArbitraryAccess`).
pub fn map_modified_while_iterating<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    for i in 0..300 {
        map.put(&1, &(), i, i * 2).unwrap();
    }
    let mut visited = Vec::new();
    map.for_each(&1, &(), |k, v| {
        assert_eq!(
            *v,
            k * 2,
            "entry {k} seen with a value written during the iteration"
        );
        visited.push(*k);
        match k % 3 {
            0 => map.remove(&1, &(), k).unwrap(),
            1 => map.put(&1, &(), *k, k * 2 + 1).unwrap(),
            _ => {}
        }
    })
    .unwrap();
    assert_eq!(sorted(visited), (0..300).collect::<Vec<_>>());
    let expected: Vec<(u64, u64)> = (0..300)
        .filter(|k| k % 3 != 0)
        .map(|k| (k, if k % 3 == 1 { k * 2 + 1 } else { k * 2 }))
        .collect();
    assert_eq!(sorted(map.entries(&1, &()).unwrap()), expected);

    // A clear at the first entry: every entry is still visited once; the map is gone.
    let mut visited = 0;
    map.for_each(&1, &(), |_, _| {
        if visited == 0 {
            map.clear(&1, &()).unwrap();
        }
        visited += 1;
    })
    .unwrap();
    assert_eq!(visited, expected.len());
    assert!(map.is_empty(&1, &()).unwrap());
    assert!(map.state_keys(&()).unwrap().is_empty());
}

/// Any access from inside `for_each`: reads of the same map, other keys and other states,
/// and writes to them (Flink's `testMapStateIteratorArbitraryAccess`).
pub fn map_arbitrary_access_while_iterating<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    for i in 0..200 {
        map.put(&1, &(), i, i).unwrap();
        map.put(&2, &(), i, i + 1).unwrap();
    }
    let mut count = 0;
    map.for_each(&1, &(), |k, v| {
        assert_eq!(map.get(&1, &(), k).unwrap(), Some(*v));
        assert!(map.contains(&1, &(), k).unwrap());
        assert!(!map.is_empty(&1, &()).unwrap());
        assert_eq!(map.get(&2, &(), k).unwrap(), Some(k + 1));
        map.put(&2, &(), *k, 0).unwrap();
        list.add(&1, &(), *v).unwrap();
        count += 1;
    })
    .unwrap();
    assert_eq!(count, 200);
    assert_eq!(
        sorted(list.get(&1, &()).unwrap()),
        (0..200).collect::<Vec<_>>()
    );
    assert!(map.values(&2, &()).unwrap().iter().all(|v| *v == 0));
    assert_eq!(map.keys(&1, &()).unwrap().len(), 200);
}

/// State changed while walking its keys (Flink's `applyToAllKeys` tests): reading each key,
/// clearing each, and adding, clearing and adding again, each in a walk over `state_keys`.
pub fn state_changed_while_walking_keys<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let list = backend
        .list_state::<String, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    for i in 0..100 {
        list.add(&i, &(), format!("Hello{i}")).unwrap();
    }
    let keys = list.state_keys(&()).unwrap();
    assert_eq!(sorted(keys.clone()), (0..100).collect::<Vec<_>>());
    for k in &keys {
        assert_eq!(list.get(k, &()).unwrap(), [format!("Hello{k}")]);
    }
    for k in &keys {
        list.clear(k, &()).unwrap();
    }
    for k in &keys {
        assert!(list.get(k, &()).unwrap().is_empty());
    }
    assert!(list.state_keys(&()).unwrap().is_empty());
    for k in &keys {
        list.add(k, &(), format!("Hello{k}")).unwrap();
        list.clear(k, &()).unwrap();
        list.add(k, &(), format!("Hello_{k}")).unwrap();
    }
    let after = list.state_keys(&()).unwrap();
    assert_eq!(sorted(after.clone()), (0..100).collect::<Vec<_>>());
    for k in &after {
        assert_eq!(list.get(k, &()).unwrap(), [format!("Hello_{k}")]);
    }
}

/// `state_keys(ns)` of every state kind lists exactly the keys with state in `ns`, with
/// many keys over two namespaces, some keys in both (Flink's `testGetKeys`,
/// `testMapStateGetKeys`, `testGetKeysAndNamespaces`).
pub fn state_keys_per_namespace_every_kind<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value = backend
        .value_state::<u64, String>(&ValueStateDescriptor::new("value"))
        .unwrap();
    let list = backend
        .list_state::<u64, String>(&ListStateDescriptor::new("list"))
        .unwrap();
    let map = backend
        .map_state::<String, u64, String>(&MapStateDescriptor::new("map"))
        .unwrap();
    let reducing = backend
        .reducing_state::<u64, String>(&sum("reducing"))
        .unwrap();
    let aggregating = backend
        .aggregating_state::<u64, (u64, u64), f64, String>(&average("aggregating"))
        .unwrap();
    let (ns1, ns2) = ("ns1".to_owned(), "ns2".to_owned());
    // Keys 0..1000 in ns1, 500..1500 in ns2.
    for k in 0..1500u64 {
        for ns in [&ns1, &ns2] {
            if (ns == &ns1 && k >= 1000) || (ns == &ns2 && k < 500) {
                continue;
            }
            value.update(&k, ns, k * 2).unwrap();
            list.add(&k, ns, k).unwrap();
            map.put(&k, ns, "he".into(), k).unwrap();
            map.put(&k, ns, "ho".into(), k).unwrap();
            reducing.add(&k, ns, k).unwrap();
            aggregating.add(&k, ns, k).unwrap();
        }
    }
    let expect1: Vec<u64> = (0..1000).collect();
    let expect2: Vec<u64> = (500..1500).collect();
    for (kind, keys1, keys2) in [
        ("value", value.state_keys(&ns1), value.state_keys(&ns2)),
        ("list", list.state_keys(&ns1), list.state_keys(&ns2)),
        ("map", map.state_keys(&ns1), map.state_keys(&ns2)),
        (
            "reducing",
            reducing.state_keys(&ns1),
            reducing.state_keys(&ns2),
        ),
        (
            "aggregating",
            aggregating.state_keys(&ns1),
            aggregating.state_keys(&ns2),
        ),
    ] {
        assert_eq!(sorted(keys1.unwrap()), expect1, "{kind} state, ns1");
        assert_eq!(sorted(keys2.unwrap()), expect2, "{kind} state, ns2");
    }
    assert!(value.state_keys(&"ns3".to_owned()).unwrap().is_empty());
}

/// Absent state reads as absent for every kind, also after a clear and across a restore;
/// a cleared key has no state to list (Flink's `testValueStateNullUpdate`, and the
/// `*DefaultValue` tests in our terms: no default values, absence is `None` or empty).
pub fn absent_and_cleared_state_across_restore<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let vd = ValueStateDescriptor::<u64>::new("value");
    let ld = ListStateDescriptor::<u64>::new("list");
    let md = MapStateDescriptor::<u64, u64>::new("map");
    let rd = sum("reducing");
    let ad = average("aggregating");
    let check = |b: &super::Backend<H, u64>, key: u64| {
        let value = b.value_state::<u64, ()>(&vd).unwrap();
        let list = b.list_state::<u64, ()>(&ld).unwrap();
        let map = b.map_state::<u64, u64, ()>(&md).unwrap();
        let reducing = b.reducing_state::<u64, ()>(&rd).unwrap();
        let aggregating = b
            .aggregating_state::<u64, (u64, u64), f64, ()>(&ad)
            .unwrap();
        assert_eq!(value.get(&key, &()).unwrap(), None);
        assert!(list.get(&key, &()).unwrap().is_empty());
        assert_eq!(map.get(&key, &(), &1).unwrap(), None);
        assert!(map.entries(&key, &()).unwrap().is_empty());
        assert!(map.is_empty(&key, &()).unwrap());
        assert_eq!(reducing.get(&key, &()).unwrap(), None);
        assert_eq!(aggregating.get(&key, &()).unwrap(), None);
        assert_eq!(aggregating.accumulator(&key, &()).unwrap(), None);
        assert!(value.state_keys(&()).unwrap().is_empty());
        assert!(list.state_keys(&()).unwrap().is_empty());
        assert!(map.state_keys(&()).unwrap().is_empty());
        assert!(reducing.state_keys(&()).unwrap().is_empty());
        assert!(aggregating.state_keys(&()).unwrap().is_empty());
        (value, list, map, reducing, aggregating)
    };
    let (value, list, map, reducing, aggregating) = check(&backend, 1);
    value.update(&1, &(), 1).unwrap();
    list.add(&1, &(), 1).unwrap();
    map.put(&1, &(), 1, 1).unwrap();
    reducing.add(&1, &(), 1).unwrap();
    aggregating.add(&1, &(), 1).unwrap();
    value.clear(&1, &()).unwrap();
    list.clear(&1, &()).unwrap();
    map.clear(&1, &()).unwrap();
    reducing.clear(&1, &()).unwrap();
    aggregating.clear(&1, &()).unwrap();
    check(&backend, 1);
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    check(&restored, 1);
    check(&restored, 2);
    let names: Vec<String> = restored
        .registered_states()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["aggregating", "list", "map", "reducing", "value"]);
}
