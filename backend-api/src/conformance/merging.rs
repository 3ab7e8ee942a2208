//! Namespace merges of list, reducing and aggregating state in every arrangement of the
//! values (Flink's `testListStateMerging`, `testReducingStateMerging` and
//! `testAggregatingStateMerging*`), and list state's API with empty lists
//! (`testListStateAPIs`).

use super::reducing::{average, sum};
use super::{Backend, Harness, clock, fresh, sorted};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::ListStateDescriptor;
use crate::ttl::StateTtlConfig;

/// The operations of a merging state whose value reads as a `u64` (a sum, or the sum of an
/// average's accumulator), so one scenario runs against reducing and aggregating state.
pub(crate) struct Merging<'a> {
    /// What the scenario says when it fails.
    pub(crate) what: &'static str,
    /// Adds a value to (key, namespace).
    pub(crate) add: &'a dyn Fn(u64, u64, u64),
    /// The value of (key, namespace).
    pub(crate) get: &'a dyn Fn(u64, u64) -> Option<u64>,
    /// Merges the sources into the target namespace of a key.
    pub(crate) merge: &'a dyn Fn(u64, u64, &[u64]),
    /// Clears (key, namespace).
    pub(crate) clear: &'a dyn Fn(u64, u64),
    /// The keys with a value in a namespace.
    pub(crate) keys: &'a dyn Fn(u64) -> Vec<u64>,
}

/// Runs `scenario` against a reducing sum and an aggregating average (with `ttl`, if any)
/// of `backend`.
pub(crate) fn with_merging_states<H: Harness>(
    backend: &Backend<H, u64>,
    ttl: Option<StateTtlConfig>,
    scenario: &dyn Fn(&Merging<'_>),
) {
    let mut sum_d = sum("sum");
    let mut avg_d = average("avg");
    if let Some(ttl) = ttl {
        sum_d = sum_d.with_ttl(ttl.clone());
        avg_d = avg_d.with_ttl(ttl);
    }
    let reducing = backend.reducing_state::<u64, u64>(&sum_d).unwrap();
    scenario(&Merging {
        what: "reducing state",
        add: &|k, ns, v| reducing.add(&k, &ns, v).unwrap(),
        get: &|k, ns| reducing.get(&k, &ns).unwrap(),
        merge: &|k, target, sources| reducing.merge_namespaces(&k, &target, sources).unwrap(),
        clear: &|k, ns| reducing.clear(&k, &ns).unwrap(),
        keys: &|ns| reducing.state_keys(&ns).unwrap(),
    });
    let aggregating = backend
        .aggregating_state::<u64, (u64, u64), f64, u64>(&avg_d)
        .unwrap();
    scenario(&Merging {
        what: "aggregating state",
        add: &|k, ns, v| aggregating.add(&k, &ns, v).unwrap(),
        get: &|k, ns| aggregating.accumulator(&k, &ns).unwrap().map(|acc| acc.0),
        merge: &|k, target, sources| aggregating.merge_namespaces(&k, &target, sources).unwrap(),
        clear: &|k, ns| aggregating.clear(&k, &ns).unwrap(),
        keys: &|ns| aggregating.state_keys(&ns).unwrap(),
    });
}

/// The keys of the merge arrangements: values spread over the target and both sources;
/// over the target and one source, the other empty; nowhere; already all in the target;
/// all in one source.
const SPREAD: u64 = 1;
const ONE_SOURCE_EMPTY: u64 = 2;
const NOWHERE: u64 = 3;
const ALL_IN_TARGET: u64 = 4;
const ALL_IN_ONE_SOURCE: u64 = 5;

/// Where the values 11, 22, 33, 44 and 55 are before the merge into namespace 1 from 2
/// and 3, per key.
fn arrangement() -> Vec<(u64, u64, Vec<u64>)> {
    vec![
        (SPREAD, 1, vec![33, 55]),
        (SPREAD, 2, vec![22, 11]),
        (SPREAD, 3, vec![44]),
        (ONE_SOURCE_EMPTY, 1, vec![11, 44]),
        (ONE_SOURCE_EMPTY, 3, vec![22, 55, 33]),
        (ALL_IN_TARGET, 1, vec![11, 22, 33, 44, 55]),
        (ALL_IN_ONE_SOURCE, 3, vec![11, 22, 33, 44, 55]),
    ]
}

const KEYS: [u64; 5] = [
    SPREAD,
    ONE_SOURCE_EMPTY,
    NOWHERE,
    ALL_IN_TARGET,
    ALL_IN_ONE_SOURCE,
];

/// List state: merging namespace 2 and 3 into 1 gathers every element in the target
/// whatever the arrangement, leaves the sources empty, and creates nothing when there is
/// nothing to merge; clearing the targets leaves the state empty.
pub fn list_merge_every_arrangement<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let list = backend
        .list_state::<u64, u64>(&ListStateDescriptor::new("l"))
        .unwrap();
    for (k, ns, values) in arrangement() {
        list.add_all(&k, &ns, values).unwrap();
    }
    for k in KEYS {
        list.merge_namespaces(&k, &1, &[2, 3]).unwrap();
        let merged = sorted(list.get(&k, &1).unwrap());
        if k == NOWHERE {
            assert!(merged.is_empty(), "a merge of nothing created a list");
        } else {
            assert_eq!(merged, [11, 22, 33, 44, 55], "key {k}");
        }
    }
    for ns in [2, 3] {
        assert!(list.state_keys(&ns).unwrap().is_empty(), "source {ns} kept");
    }
    assert_eq!(
        sorted(list.state_keys(&1).unwrap()),
        [SPREAD, ONE_SOURCE_EMPTY, ALL_IN_TARGET, ALL_IN_ONE_SOURCE]
    );
    for k in KEYS {
        list.clear(&k, &1).unwrap();
    }
    for ns in [1, 2, 3] {
        assert!(
            list.state_keys(&ns).unwrap().is_empty(),
            "state left in {ns}"
        );
    }
}

/// Reducing and aggregating state: as [`list_merge_every_arrangement`], the merged value is
/// the fold of all values (165) whatever the arrangement.
pub fn reducing_merge_every_arrangement<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    with_merging_states::<H>(&backend, None, &|s| {
        let what = s.what;
        for (k, ns, values) in arrangement() {
            for v in values {
                (s.add)(k, ns, v);
            }
        }
        for k in KEYS {
            (s.merge)(k, 1, &[2, 3]);
            let expected = (k != NOWHERE).then_some(165);
            assert_eq!((s.get)(k, 1), expected, "{what}, key {k}");
        }
        for ns in [2, 3] {
            assert!((s.keys)(ns).is_empty(), "{what}: source {ns} kept");
        }
        for k in KEYS {
            (s.clear)(k, 1);
        }
        for ns in [1, 2, 3] {
            assert!((s.keys)(ns).is_empty(), "{what}: state left in {ns}");
        }
    });
}

/// List state's API around empty lists, as Flink's `testListStateAPIs`: `update` with an
/// empty list leaves the list absent, `add_all` of nothing adds nothing, lists of different
/// keys stay apart, and clearing every list leaves the state without keys.
pub fn list_api_with_empty_lists<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, String>(h, &clock);
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    let (def, abc, g) = ("def".to_owned(), "abc".to_owned(), "g".to_owned());
    assert!(list.get(&def, &()).unwrap().is_empty());
    list.add(&def, &(), 17).unwrap();
    list.add(&def, &(), 11).unwrap();
    assert_eq!(list.get(&def, &()).unwrap(), [17, 11]);
    list.update(&def, &(), vec![]).unwrap();
    assert!(list.get(&def, &()).unwrap().is_empty());
    assert!(list.state_keys(&()).unwrap().is_empty());
    list.update(&def, &(), vec![10, 16]).unwrap();
    assert_eq!(list.get(&def, &()).unwrap(), [10, 16]);
    assert!(list.get(&abc, &()).unwrap().is_empty());
    list.add_all(&g, &(), vec![]).unwrap();
    assert!(list.get(&g, &()).unwrap().is_empty());
    assert_eq!(list.state_keys(&()).unwrap(), ["def"]);
    list.add_all(&g, &(), vec![3, 4]).unwrap();
    list.add_all(&g, &(), vec![]).unwrap();
    list.add_all(&g, &(), vec![5, 6]).unwrap();
    assert_eq!(list.get(&g, &()).unwrap(), [3, 4, 5, 6]);
    list.update(&g, &(), vec![1, 2]).unwrap();
    assert_eq!(list.get(&g, &()).unwrap(), [1, 2]);
    assert_eq!(list.get(&def, &()).unwrap(), [10, 16]);
    list.clear(&def, &()).unwrap();
    assert!(list.get(&def, &()).unwrap().is_empty());
    list.add_all(&g, &(), vec![3, 2, 1]).unwrap();
    assert_eq!(list.get(&g, &()).unwrap(), [1, 2, 3, 2, 1]);
    list.update(&g, &(), vec![5, 6]).unwrap();
    list.clear(&g, &()).unwrap();
    assert!(list.state_keys(&()).unwrap().is_empty(), "state left");
}
