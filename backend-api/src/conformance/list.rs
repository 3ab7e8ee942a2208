//! List state.

use super::{Harness, clock, fresh, sorted};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::ListStateDescriptor;

/// List state: get of an absent list, add, add_all, update, clear.
pub fn list_get_add_add_all_update_clear<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .list_state::<String, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    assert_eq!(state.name(), "l");
    assert!(state.get(&1, &()).unwrap().is_empty());
    state.add(&1, &(), "a".into()).unwrap();
    state.add(&1, &(), "b".into()).unwrap();
    state
        .add_all(&1, &(), vec!["c".into(), "d".into()])
        .unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), ["a", "b", "c", "d"]);
    // add_all of nothing changes nothing and creates nothing.
    state.add_all(&1, &(), vec![]).unwrap();
    state.add_all(&2, &(), vec![]).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(state.state_keys(&()).unwrap(), vec![1]);
    // add_all on an absent list creates it.
    state.add_all(&3, &(), vec!["x".into()]).unwrap();
    assert_eq!(state.get(&3, &()).unwrap(), ["x"]);
    state.update(&1, &(), vec!["z".into(), "y".into()]).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), ["z", "y"]);
    state.update(&4, &(), vec!["new".into()]).unwrap();
    assert_eq!(state.get(&4, &()).unwrap(), ["new"]);
    state.clear(&1, &()).unwrap();
    assert!(state.get(&1, &()).unwrap().is_empty());
    state.clear(&1, &()).unwrap();
    assert_eq!(sorted(state.state_keys(&()).unwrap()), vec![3, 4]);
    // Duplicates are kept.
    state.add(&5, &(), "d".into()).unwrap();
    state.add(&5, &(), "d".into()).unwrap();
    assert_eq!(state.get(&5, &()).unwrap(), ["d", "d"]);
}

/// `for_each` visits the elements in insertion order; `with_elements` sees them as one
/// slice in the same order (empty for an absent list).
pub fn list_for_each_in_insertion_order<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .list_state::<u64, u64>(&ListStateDescriptor::new("l"))
        .unwrap();
    let expected: Vec<u64> = (0..500).map(|i| (i * 7919) % 1000).collect();
    for chunk in expected.chunks(50) {
        state.add(&1, &9, chunk[0]).unwrap();
        state.add_all(&1, &9, chunk[1..].to_vec()).unwrap();
    }
    let mut seen = Vec::new();
    state.for_each(&1, &9, |v| seen.push(*v)).unwrap();
    assert_eq!(seen, expected);
    assert_eq!(state.get(&1, &9).unwrap(), expected);
    let mut none = 0;
    state.for_each(&2, &9, |_| none += 1).unwrap();
    state.for_each(&1, &8, |_| none += 1).unwrap();
    assert_eq!(none, 0);
    assert_eq!(
        state.with_elements(&1, &9, <[u64]>::to_vec).unwrap(),
        expected
    );
    assert_eq!(state.with_elements(&2, &9, <[u64]>::len).unwrap(), 0);
}

/// Updating a list to empty clears it: the key has no list anymore.
pub fn list_empty_update_clears<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    state.add_all(&1, &(), vec![1, 2, 3]).unwrap();
    state.add(&2, &(), 1).unwrap();
    state.update(&1, &(), vec![]).unwrap();
    assert!(state.get(&1, &()).unwrap().is_empty());
    assert_eq!(state.state_keys(&()).unwrap(), vec![2]);
    state.update(&3, &(), vec![]).unwrap();
    assert_eq!(state.state_keys(&()).unwrap(), vec![2]);
    state.add(&1, &(), 4).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), [4]);
}

/// `merge_namespaces` appends the sources to the target and clears the sources.
pub fn list_merge_namespaces<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .list_state::<u64, u64>(&ListStateDescriptor::new("l"))
        .unwrap();
    state.add_all(&1, &10, vec![1, 2]).unwrap();
    state.add_all(&1, &20, vec![3]).unwrap();
    state.add_all(&1, &30, vec![4, 5]).unwrap();
    state.add_all(&2, &20, vec![99]).unwrap();
    state.merge_namespaces(&1, &10, &[20, 30, 40]).unwrap();
    assert_eq!(state.get(&1, &10).unwrap(), [1, 2, 3, 4, 5]);
    assert!(state.get(&1, &20).unwrap().is_empty());
    assert!(state.get(&1, &30).unwrap().is_empty());
    assert!(state.state_keys(&30).unwrap().is_empty());
    // Other keys are untouched.
    assert_eq!(state.get(&2, &20).unwrap(), [99]);
    // Merging into an absent target creates it.
    state.merge_namespaces(&2, &50, &[20]).unwrap();
    assert_eq!(state.get(&2, &50).unwrap(), [99]);
    assert!(state.get(&2, &20).unwrap().is_empty());
    // Merging nothing creates nothing.
    state.merge_namespaces(&3, &60, &[61, 62]).unwrap();
    assert!(state.state_keys(&60).unwrap().is_empty());
}
