//! Restoring into a new version of a job: states renamed or dropped on restore
//! ([`crate::rescale::StateMapping`]), at the same or another parallelism.

use super::{Backend, Harness, MAX_P, checkpoint, clock, create, expect_err, fresh, kg, params};
use crate::backend::{CheckpointableBackend, KeyedBackendParams, KeyedStateBackendExt};
use crate::clock::ManualClock;
use crate::descriptor::{ListStateDescriptor, ValueStateDescriptor};
use crate::error::{ErrorKind, Result};
use crate::handles::KeyedStateHandle;
use crate::keygroup::KeyGroupRange;
use crate::rescale::keyed_handles_for;
use crate::timer::TimeDomain;

const KEYS: u64 = 300;

/// Version 1 of a job: value state "clicks", list state "debug" and the timers of service
/// "t", for keys `0..KEYS`, snapshotted by one subtask.
fn version_1<H: Harness>(h: &H, clock: &ManualClock) -> Vec<KeyedStateHandle> {
    let b: Backend<H, u64> = fresh(h, clock);
    let clicks = b
        .value_state::<u64, ()>(&ValueStateDescriptor::new("clicks"))
        .unwrap();
    let debug = b
        .list_state::<String, ()>(&ListStateDescriptor::new("debug"))
        .unwrap();
    let timers = b.timer_service::<()>("t").unwrap();
    for k in 0..KEYS {
        clicks.update(&k, &(), k * 10).unwrap();
        debug.add(&k, &(), format!("d{k}")).unwrap();
        timers.register_event_time_timer(&k, &(), k as i64).unwrap();
    }
    checkpoint(h, &b, 1).keyed
}

/// Restores subtask `i` of `p` from `handles` with `map` applied to its parameters.
fn restore_with<H: Harness>(
    h: &H,
    clock: &ManualClock,
    handles: &[KeyedStateHandle],
    p: u32,
    i: u32,
    map: impl Fn(KeyedBackendParams) -> KeyedBackendParams,
) -> Result<Backend<H, u64>> {
    let range = KeyGroupRange::for_subtask(MAX_P, p, i).unwrap();
    let params = params(clock, MAX_P, range).restore(keyed_handles_for(handles, range), h.reader());
    create::<H, u64>(h, map(params))
}

/// A renamed state is restored under its new name, at another parallelism, and stays
/// renamed in the next snapshot; the old name is gone; the other states are untouched.
pub fn restore_renames_a_state<H: Harness>(h: &H) {
    let clock = clock();
    let handles = version_1(h, &clock);
    let mut next = Vec::new();
    let mut seen = 0;
    for i in 0..2 {
        let b = restore_with(h, &clock, &handles, 2, i, |p| {
            p.rename_state("clicks", "page-views")
        })
        .unwrap();
        let names: Vec<String> = b.registered_states().into_iter().map(|m| m.name).collect();
        assert!(names.contains(&"page-views".to_owned()), "{names:?}");
        assert!(!names.contains(&"clicks".to_owned()), "{names:?}");
        let views = b
            .value_state::<u64, ()>(&ValueStateDescriptor::new("page-views"))
            .unwrap();
        let range = b.key_group_range();
        for k in (0..KEYS).filter(|k| range.contains(kg(k, MAX_P))) {
            assert_eq!(views.get(&k, &()).unwrap(), Some(k * 10));
            seen += 1;
        }
        let clicks = b
            .value_state::<u64, ()>(&ValueStateDescriptor::new("clicks"))
            .unwrap();
        assert!(clicks.state_keys(&()).unwrap().is_empty());
        let debug = b
            .list_state::<String, ()>(&ListStateDescriptor::new("debug"))
            .unwrap();
        assert_eq!(debug.state_keys(&()).unwrap().len(), {
            (0..KEYS).filter(|k| range.contains(kg(k, MAX_P))).count()
        });
        next.extend(checkpoint(h, &b, 2).keyed);
    }
    assert_eq!(seen, KEYS);
    // Version 3 restores version 2's snapshot as it is: the new name stuck.
    let b = restore_with(h, &clock, &next, 1, 0, |p| p).unwrap();
    let views = b
        .value_state::<u64, ()>(&ValueStateDescriptor::new("page-views"))
        .unwrap();
    assert_eq!(views.state_keys(&()).unwrap().len() as u64, KEYS);
}

/// A dropped state is not restored and not in the next snapshot; a state of that name
/// registered anew starts empty.
pub fn restore_drops_a_state<H: Harness>(h: &H) {
    let clock = clock();
    let handles = version_1(h, &clock);
    let b = restore_with(h, &clock, &handles, 1, 0, |p| p.drop_state("debug")).unwrap();
    let names: Vec<String> = b.registered_states().into_iter().map(|m| m.name).collect();
    assert!(!names.contains(&"debug".to_owned()), "{names:?}");
    let timers = b.timer_service::<()>("t").unwrap();
    assert_eq!(
        timers.num_timers(TimeDomain::EventTime).unwrap() as u64,
        KEYS
    );
    let next = checkpoint(h, &b, 2).keyed;
    let b = restore_with(h, &clock, &next, 1, 0, |p| p).unwrap();
    assert!(b.registered_states().iter().all(|m| m.name != "debug"));
    let debug = b
        .list_state::<u64, ()>(&ListStateDescriptor::new("debug"))
        .unwrap();
    assert!(debug.state_keys(&()).unwrap().is_empty());
    let clicks = b
        .value_state::<u64, ()>(&ValueStateDescriptor::new("clicks"))
        .unwrap();
    assert_eq!(clicks.get(&7, &()).unwrap(), Some(70));
}

/// Renames and drops that cannot be right are refused before anything is restored: a name
/// the snapshot does not have (naming it and the stored ones), a rename onto a state that
/// stays, a state both renamed and dropped.
pub fn restore_state_mapping_mistakes_are_refused<H: Harness>(h: &H) {
    let clock = clock();
    let handles = version_1(h, &clock);
    let err = expect_err(
        restore_with(h, &clock, &handles, 1, 0, |p| {
            p.rename_state("clikcs", "views")
        }),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.context("states"), Some("clikcs"), "{err}");
    assert!(
        err.context("stored").is_some_and(|s| s.contains("clicks")),
        "{err}"
    );
    expect_err(
        restore_with(h, &clock, &handles, 1, 0, |p| p.drop_state("nope")),
        ErrorKind::InvalidInput,
    );
    let err = expect_err(
        restore_with(h, &clock, &handles, 1, 0, |p| {
            p.rename_state("clicks", "debug")
        }),
        ErrorKind::InvalidInput,
    );
    assert_eq!(err.context("state"), Some("debug"), "{err}");
    expect_err(
        restore_with(h, &clock, &handles, 1, 0, |p| {
            p.rename_state("clicks", "x").drop_state("clicks")
        }),
        ErrorKind::InvalidInput,
    );
    // Swapping two names is fine.
    let b = restore_with(h, &clock, &handles, 1, 0, |p| {
        p.rename_state("clicks", "debug")
            .rename_state("debug", "clicks")
    })
    .unwrap();
    let swapped = b
        .value_state::<u64, ()>(&ValueStateDescriptor::new("debug"))
        .unwrap();
    assert_eq!(swapped.get(&3, &()).unwrap(), Some(30));
}
