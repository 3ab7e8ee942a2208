//! Namespace merges under TTL: a merge moves the stored, timestamped values. A value or list
//! element keeps its timestamp when it moves; only two live values folded together are
//! stamped with the time of the merge; expired values are cleaned up by the merge and never
//! come back to life (Flink's `TtlStateTestBase#testMergeNamespaces`).

use super::merging::{Merging, with_merging_states};
use super::ttl::{default_ttl, return_expired};
use super::{Harness, T0, clock, fresh, roundtrip};
use crate::backend::KeyedStateBackendExt;
use crate::clock::ManualClock;
use crate::descriptor::ListStateDescriptor;
use crate::ttl::StateTtlConfig;

/// A list element keeps the time it was added when a merge moves it: it expires when it
/// would have without the merge, in a target that had a list and in one that had none.
pub fn ttl_list_merge_keeps_element_timestamps<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let list_d = ListStateDescriptor::<u64>::new("l").with_ttl(default_ttl());
    let list = backend.list_state::<u64, u64>(&list_d).unwrap();
    list.add(&1, &1, 1).unwrap();
    list.add(&1, &3, 3).unwrap();
    list.add(&1, &6, 6).unwrap();
    clock.set(T0 + 50);
    list.add(&1, &2, 2).unwrap();
    clock.set(T0 + 60);
    list.merge_namespaces(&1, &2, &[1]).unwrap();
    list.merge_namespaces(&1, &4, &[3]).unwrap();
    assert_eq!(list.get(&1, &2).unwrap(), [2, 1]);
    assert_eq!(list.get(&1, &4).unwrap(), [3]);
    // The merge is no write of the moved elements: they still expire at T0 + TTL, also
    // across a restore.
    let restored = roundtrip::<H, u64>(h, &backend, &clock, 1);
    let list = restored.list_state::<u64, u64>(&list_d).unwrap();
    clock.set(T0 + 110);
    assert_eq!(
        list.get(&1, &2).unwrap(),
        [2],
        "a merged element outlived its TTL"
    );
    assert!(
        list.get(&1, &4).unwrap().is_empty(),
        "an element merged into an empty target outlived its TTL"
    );
    assert!(list.state_keys(&4).unwrap().is_empty());
    clock.set(T0 + 150);
    assert!(list.get(&1, &2).unwrap().is_empty());
    // An expired source is cleaned up by the merge, not moved.
    list.merge_namespaces(&1, &7, &[6]).unwrap();
    assert!(list.get(&1, &7).unwrap().is_empty());
    assert!(list.state_keys(&7).unwrap().is_empty());
    assert!(list.state_keys(&6).unwrap().is_empty());
}

/// With `ReturnExpiredIfNotCleanedUp`, a merge does not bring expired list elements back:
/// an element that had expired is gone after the merge, and a live element moved by a merge
/// is returned once when it expires, then gone.
pub fn ttl_list_merge_never_resurrects_expired<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let list = backend
        .list_state::<u64, u64>(&ListStateDescriptor::new("l").with_ttl(return_expired()))
        .unwrap();
    list.add(&1, &1, 1).unwrap();
    clock.set(T0 + 50);
    list.add(&1, &2, 2).unwrap();
    clock.set(T0 + 100);
    list.add(&1, &3, 3).unwrap();
    clock.set(T0 + 120);
    list.merge_namespaces(&1, &2, &[1]).unwrap();
    assert_eq!(
        list.get(&1, &2).unwrap(),
        [2],
        "an expired element came back to life in a merge"
    );
    clock.set(T0 + 140);
    list.merge_namespaces(&1, &4, &[3]).unwrap();
    clock.set(T0 + 200);
    assert_eq!(list.get(&1, &4).unwrap(), [3]);
    assert!(
        list.get(&1, &4).unwrap().is_empty(),
        "a merge gave an element a new TTL"
    );
    assert_eq!(list.get(&1, &2).unwrap(), [2]);
    assert!(list.get(&1, &2).unwrap().is_empty());
}

/// Under `NeverReturnExpired`: a value moved alone keeps its timestamp; two live values
/// folded together are stamped with the time of the merge; an expired source or target is
/// left out of the fold.
fn merge_keeps_timestamps(clock: &ManualClock, s: &Merging<'_>) {
    let what = s.what;
    clock.set(T0);
    (s.add)(1, 1, 1);
    (s.add)(1, 3, 3);
    (s.add)(1, 5, 5);
    (s.add)(1, 8, 8);
    clock.set(T0 + 50);
    (s.add)(1, 2, 2);
    clock.set(T0 + 60);
    // Alone into an empty target: keeps T0.
    (s.merge)(1, 4, &[3]);
    // Two live values: stamped T0 + 60.
    (s.merge)(1, 2, &[1]);
    assert_eq!((s.get)(1, 4), Some(3), "{what}");
    assert_eq!((s.get)(1, 2), Some(3), "{what}");
    clock.set(T0 + 90);
    (s.add)(1, 6, 6);
    (s.add)(1, 7, 7);
    clock.set(T0 + 110);
    assert_eq!(
        (s.get)(1, 4),
        None,
        "{what}: a value moved by a merge outlived its TTL"
    );
    assert_eq!((s.get)(1, 2), Some(3), "{what}");
    // A live target and an expired source: the target alone, with its own timestamp.
    (s.merge)(1, 6, &[5]);
    // An expired target and a live source: the source alone, with its own timestamp.
    (s.merge)(1, 8, &[7]);
    assert_eq!((s.get)(1, 6), Some(6), "{what}");
    assert_eq!((s.get)(1, 8), Some(7), "{what}");
    clock.set(T0 + 159);
    assert_eq!((s.get)(1, 2), Some(3), "{what}");
    clock.set(T0 + 160);
    assert_eq!(
        (s.get)(1, 2),
        None,
        "{what}: a merged value outlived its TTL"
    );
    clock.set(T0 + 190);
    assert_eq!(
        (s.get)(1, 6),
        None,
        "{what}: a merge extended a value's TTL"
    );
    assert_eq!(
        (s.get)(1, 8),
        None,
        "{what}: a merge extended a value's TTL"
    );
}

/// Under `ReturnExpiredIfNotCleanedUp`: an expired value merged alone or into a live target
/// is cleaned up by the merge, never given a new TTL; a live value moved by a merge is
/// returned once when it expires, then gone.
fn merge_never_resurrects(clock: &ManualClock, s: &Merging<'_>) {
    let what = s.what;
    clock.set(T0);
    (s.add)(1, 1, 1);
    (s.add)(1, 3, 3);
    clock.set(T0 + 90);
    (s.add)(1, 2, 2);
    (s.add)(1, 5, 5);
    clock.set(T0 + 120);
    (s.merge)(1, 4, &[1]);
    (s.merge)(1, 2, &[3]);
    assert_eq!(
        (s.get)(1, 4),
        None,
        "{what}: an expired value came back to life in a merge"
    );
    assert_eq!(
        (s.get)(1, 2),
        Some(2),
        "{what}: an expired value was folded into a live one"
    );
    (s.merge)(1, 6, &[5]);
    clock.set(T0 + 190);
    assert_eq!((s.get)(1, 6), Some(5), "{what}");
    assert_eq!(
        (s.get)(1, 6),
        None,
        "{what}: a merge gave a value a new TTL"
    );
}

/// Runs `scenario` against a reducing sum and an aggregating average with `config`.
fn run_merging<H: Harness>(
    h: &H,
    config: StateTtlConfig,
    scenario: fn(&ManualClock, &Merging<'_>),
) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    with_merging_states::<H>(&backend, Some(config), &|s| scenario(&clock, s));
}

/// Reducing and aggregating state: a merge keeps the timestamp of a value it moves alone,
/// stamps only the fold of two live values, and leaves expired values out of the fold.
pub fn ttl_reducing_merge_keeps_timestamps<H: Harness>(h: &H) {
    run_merging(h, default_ttl(), merge_keeps_timestamps);
}

/// Reducing and aggregating state with `ReturnExpiredIfNotCleanedUp`: a merge never brings
/// an expired value back for a new TTL.
pub fn ttl_reducing_merge_never_resurrects_expired<H: Harness>(h: &H) {
    run_merging(h, return_expired(), merge_never_resurrects);
}
