//! Value state, namespaces, iteration and clear.

use serde::{Deserialize, Serialize};

use super::{Harness, clock, fresh, sorted};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};

/// A struct value, to check that serde-derived types work as state values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) customer: String,
    pub(crate) items: Vec<(String, u32)>,
    pub(crate) note: Option<String>,
}

// The default identity, the type's path: what `std::any::type_name` recorded before
// identities, so the pinned `rust-type-names.cshd` restores.
crate::state_type!(Order);

impl Order {
    pub(crate) fn sample(id: u64) -> Self {
        Order {
            id,
            customer: format!("customer-{}", id % 7),
            items: (0..id % 4)
                .map(|i| (format!("sku-{i}"), i as u32 + 1))
                .collect(),
            note: id.is_multiple_of(2).then(|| "gift wrap ✓".to_owned()),
        }
    }
}

/// Value state: get of an absent value, update, overwrite, clear, clear of an absent value.
pub fn value_get_update_clear<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    assert_eq!(state.name(), "v");
    assert_eq!(state.get(&1, &()).unwrap(), None);
    state.update(&1, &(), 10).unwrap();
    state.update(&2, &(), 20).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), Some(10));
    assert_eq!(state.get(&2, &()).unwrap(), Some(20));
    state.update(&1, &(), 11).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), Some(11));
    state.clear(&1, &()).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), None);
    assert_eq!(state.get(&2, &()).unwrap(), Some(20));
    state.clear(&1, &()).unwrap();
    state.clear(&99, &()).unwrap();
    assert_eq!(state.state_keys(&()).unwrap(), vec![2]);
    // A value can be set again after a clear.
    state.update(&1, &(), 12).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), Some(12));
}

/// Value state: transform sees the current value, sets a new one, and clears on `None`.
pub fn value_transform<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .value_state::<String, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let mut seen = Vec::new();
    state
        .transform(&1, &(), |cur| {
            seen.push(cur.clone());
            Some("a".to_owned())
        })
        .unwrap();
    state
        .transform(&1, &(), |cur| {
            seen.push(cur.clone());
            cur.map(|s| s + "b")
        })
        .unwrap();
    assert_eq!(seen, vec![None, Some("a".to_owned())]);
    assert_eq!(state.get(&1, &()).unwrap().as_deref(), Some("ab"));
    state.transform(&1, &(), |_| None).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), None);
    assert!(state.state_keys(&()).unwrap().is_empty());
    // `None` on an absent value stays absent.
    state.transform(&2, &(), |_| None).unwrap();
    assert_eq!(state.get(&2, &()).unwrap(), None);
    assert!(state.state_keys(&()).unwrap().is_empty());
}

/// The same key in different namespaces holds different values.
pub fn value_namespaces_isolate<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .value_state::<u64, String>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let (a, b) = ("window-a".to_owned(), "window-b".to_owned());
    state.update(&7, &a, 1).unwrap();
    assert_eq!(state.get(&7, &b).unwrap(), None);
    state.update(&7, &b, 2).unwrap();
    assert_eq!(state.get(&7, &a).unwrap(), Some(1));
    assert_eq!(state.get(&7, &b).unwrap(), Some(2));
    state.clear(&7, &a).unwrap();
    assert_eq!(state.get(&7, &a).unwrap(), None);
    assert_eq!(state.get(&7, &b).unwrap(), Some(2));
    assert!(state.state_keys(&a).unwrap().is_empty());
    assert_eq!(state.state_keys(&b).unwrap(), vec![7]);
}

/// Window-like `u64` namespaces: `state_keys(ns)` lists the keys of that window only.
pub fn value_window_namespaces_and_state_keys<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .value_state::<u64, u64>(&ValueStateDescriptor::new("per-window"))
        .unwrap();
    // Key k has a value in windows 0..=k%4 (window ids are window end timestamps).
    for k in 0..40u64 {
        for w in 0..=(k % 4) {
            state.update(&k, &(w * 1000), k * 10 + w).unwrap();
        }
    }
    for w in 0..5u64 {
        let expected: Vec<u64> = (0..40).filter(|k| k % 4 >= w).collect();
        assert_eq!(
            sorted(state.state_keys(&(w * 1000)).unwrap()),
            expected,
            "window {w}"
        );
        for &k in &expected {
            assert_eq!(state.get(&k, &(w * 1000)).unwrap(), Some(k * 10 + w));
        }
    }
    // Purging a window leaves the others.
    for k in state.state_keys(&0).unwrap() {
        state.clear(&k, &0).unwrap();
    }
    assert!(state.state_keys(&0).unwrap().is_empty());
    assert_eq!(state.state_keys(&1000).unwrap().len(), 30);
}

/// Serde-derived structs work as values.
pub fn value_struct_values<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, String>(h, &clock);
    let state = backend
        .value_state::<Order, ()>(&ValueStateDescriptor::new("orders"))
        .unwrap();
    for id in 0..10u64 {
        state
            .update(&format!("k{id}"), &(), Order::sample(id))
            .unwrap();
    }
    for id in 0..10u64 {
        assert_eq!(
            state.get(&format!("k{id}"), &()).unwrap(),
            Some(Order::sample(id))
        );
    }
}

/// `state_keys` lists every key with state exactly once, per state and namespace.
pub fn state_keys_iterates_every_key_once<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    for k in 0..2_000u64 {
        value.update(&k, &(), k).unwrap();
        value.update(&k, &(), k + 1).unwrap();
        if k.is_multiple_of(2) {
            list.add(&k, &(), 1).unwrap();
            list.add(&k, &(), 2).unwrap();
        }
        if k.is_multiple_of(3) {
            map.put(&k, &(), 1, 1).unwrap();
            map.put(&k, &(), 2, 2).unwrap();
        }
    }
    assert_eq!(
        sorted(value.state_keys(&()).unwrap()),
        (0..2_000).collect::<Vec<_>>()
    );
    assert_eq!(
        sorted(list.state_keys(&()).unwrap()),
        (0..2_000u64)
            .filter(|k| k.is_multiple_of(2))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        sorted(map.state_keys(&()).unwrap()),
        (0..2_000u64)
            .filter(|k| k.is_multiple_of(3))
            .collect::<Vec<_>>()
    );
}

/// Clearing one key of one state leaves other keys and other states alone.
pub fn clear_of_one_key_keeps_others<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let a = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("a"))
        .unwrap();
    let b = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("b"))
        .unwrap();
    let l = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    let m = backend
        .map_state::<u8, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    for k in 0..10u64 {
        a.update(&k, &(), k).unwrap();
        b.update(&k, &(), k + 100).unwrap();
        l.add(&k, &(), k).unwrap();
        m.put(&k, &(), 1, k).unwrap();
    }
    a.clear(&3, &()).unwrap();
    l.clear(&4, &()).unwrap();
    m.clear(&5, &()).unwrap();
    for k in 0..10u64 {
        assert_eq!(a.get(&k, &()).unwrap(), (k != 3).then_some(k));
        assert_eq!(b.get(&k, &()).unwrap(), Some(k + 100));
        assert_eq!(
            l.get(&k, &()).unwrap(),
            if k == 4 { vec![] } else { vec![k] }
        );
        assert_eq!(m.get(&k, &(), &1).unwrap(), (k != 5).then_some(k));
    }
    assert_eq!(a.state_keys(&()).unwrap().len(), 9);
    assert_eq!(b.state_keys(&()).unwrap().len(), 10);
    assert_eq!(l.state_keys(&()).unwrap().len(), 9);
    assert_eq!(m.state_keys(&()).unwrap().len(), 9);
}
