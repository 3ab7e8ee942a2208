//! Reducing and aggregating state.

use super::{Harness, clock, fresh};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::{AggregateFunction, AggregatingStateDescriptor, ReducingStateDescriptor};

/// The average of `u64`s, with a `(sum, count)` accumulator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Average;

impl AggregateFunction<u64, (u64, u64), f64> for Average {
    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, value: u64, acc: (u64, u64)) -> (u64, u64) {
        (acc.0 + value, acc.1 + 1)
    }
    fn result(&self, acc: &(u64, u64)) -> f64 {
        if acc.1 == 0 {
            0.0
        } else {
            acc.0 as f64 / acc.1 as f64
        }
    }
    fn merge(&self, a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

/// The descriptor of a sum reducing state.
pub(crate) fn sum(name: &str) -> ReducingStateDescriptor<u64> {
    ReducingStateDescriptor::new(name, |a: u64, b: u64| a + b)
}

/// The descriptor of an average aggregating state.
pub(crate) fn average(name: &str) -> AggregatingStateDescriptor<u64, (u64, u64), f64> {
    AggregatingStateDescriptor::new(name, Average)
}

/// Reducing state: folds added values, get, clear; the reduce function sees (current, new).
pub fn reducing_add_get_clear<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend.reducing_state::<u64, ()>(&sum("sum")).unwrap();
    assert_eq!(state.name(), "sum");
    assert_eq!(state.get(&1, &()).unwrap(), None);
    for v in 1..=10 {
        state.add(&1, &(), v).unwrap();
    }
    state.add(&2, &(), 7).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), Some(55));
    assert_eq!(state.get(&2, &()).unwrap(), Some(7));
    state.clear(&1, &()).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), None);
    state.add(&1, &(), 3).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), Some(3));

    // Order of arguments: reduce(current, new).
    let concat = backend
        .reducing_state::<String, ()>(&ReducingStateDescriptor::new(
            "concat",
            |a: String, b: String| format!("{a},{b}"),
        ))
        .unwrap();
    for s in ["x", "y", "z"] {
        concat.add(&1, &(), s.to_owned()).unwrap();
    }
    assert_eq!(concat.get(&1, &()).unwrap().as_deref(), Some("x,y,z"));
    let mut keys = state.state_keys(&()).unwrap();
    keys.sort_unstable();
    assert_eq!(keys, vec![1, 2]);
}

/// Reducing state: `merge_namespaces` folds the sources into the target and clears them.
pub fn reducing_merge_namespaces<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend.reducing_state::<u64, u64>(&sum("sum")).unwrap();
    state.add(&1, &10, 1).unwrap();
    state.add(&1, &20, 2).unwrap();
    state.add(&1, &30, 4).unwrap();
    state.add(&2, &20, 100).unwrap();
    state.merge_namespaces(&1, &10, &[20, 30, 40]).unwrap();
    assert_eq!(state.get(&1, &10).unwrap(), Some(7));
    assert_eq!(state.get(&1, &20).unwrap(), None);
    assert_eq!(state.get(&1, &30).unwrap(), None);
    assert_eq!(state.get(&2, &20).unwrap(), Some(100));
    // Into an absent target.
    state.merge_namespaces(&2, &50, &[20]).unwrap();
    assert_eq!(state.get(&2, &50).unwrap(), Some(100));
    assert_eq!(state.get(&2, &20).unwrap(), None);
    assert!(state.state_keys(&20).unwrap().is_empty());
    // Nothing to merge: the target stays absent.
    state.merge_namespaces(&3, &60, &[61]).unwrap();
    assert_eq!(state.get(&3, &60).unwrap(), None);
}

/// Aggregating state: an average, its accumulator, clear.
pub fn aggregating_average<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .aggregating_state::<u64, (u64, u64), f64, ()>(&average("avg"))
        .unwrap();
    assert_eq!(state.name(), "avg");
    assert_eq!(state.get(&1, &()).unwrap(), None);
    assert_eq!(state.accumulator(&1, &()).unwrap(), None);
    for v in [1, 2, 3, 6] {
        state.add(&1, &(), v).unwrap();
    }
    state.add(&2, &(), 10).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), Some(3.0));
    assert_eq!(state.accumulator(&1, &()).unwrap(), Some((12, 4)));
    assert_eq!(state.get(&2, &()).unwrap(), Some(10.0));
    state.clear(&1, &()).unwrap();
    assert_eq!(state.get(&1, &()).unwrap(), None);
    assert_eq!(state.accumulator(&1, &()).unwrap(), None);
    state.add(&1, &(), 5).unwrap();
    assert_eq!(state.accumulator(&1, &()).unwrap(), Some((5, 1)));
    assert_eq!(state.state_keys(&()).unwrap().len(), 2);
}

/// Aggregating state: `merge_namespaces` merges accumulators (as session windows do).
pub fn aggregating_merge_namespaces<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let state = backend
        .aggregating_state::<u64, (u64, u64), f64, u64>(&average("avg"))
        .unwrap();
    state.add(&1, &1, 1).unwrap();
    state.add(&1, &1, 2).unwrap();
    state.add(&1, &2, 9).unwrap();
    state.add(&1, &3, 4).unwrap();
    state.merge_namespaces(&1, &1, &[2, 3, 4]).unwrap();
    assert_eq!(state.accumulator(&1, &1).unwrap(), Some((16, 4)));
    assert_eq!(state.get(&1, &1).unwrap(), Some(4.0));
    assert_eq!(state.get(&1, &2).unwrap(), None);
    assert_eq!(state.get(&1, &3).unwrap(), None);
    state.merge_namespaces(&1, &9, &[1]).unwrap();
    assert_eq!(state.accumulator(&1, &9).unwrap(), Some((16, 4)));
    assert_eq!(state.accumulator(&1, &1).unwrap(), None);
    assert!(state.state_keys(&1).unwrap().is_empty());
    assert_eq!(state.state_keys(&9).unwrap(), vec![1]);
}
