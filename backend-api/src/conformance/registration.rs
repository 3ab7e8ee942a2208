//! Registering states: names, descriptors, conflicts; backend parameters.

use std::time::Duration;

use super::reducing::{average, sum};
use super::{Harness, MAX_P, clock, create, expect_err, fresh, params};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::descriptor::{
    ListStateDescriptor, MapStateDescriptor, StateKind, StateMeta, ValueStateDescriptor,
};
use crate::error::ErrorKind;
use crate::keygroup::KeyGroupRange;
use crate::ttl::StateTtlConfig;

/// Registering a name again with the same descriptor gives a handle to the same data.
pub fn same_name_returns_same_data<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let v1 = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    v1.update(&1, &(), 10).unwrap();
    let v2 = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    assert_eq!(v2.get(&1, &()).unwrap(), Some(10));
    v2.update(&2, &(), 20).unwrap();
    assert_eq!(v1.get(&2, &()).unwrap(), Some(20));

    let l1 = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    l1.add(&1, &(), 1).unwrap();
    let l2 = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    l2.add(&1, &(), 2).unwrap();
    assert_eq!(l1.get(&1, &()).unwrap(), [1, 2]);

    let m1 = backend
        .map_state::<u8, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    m1.put(&1, &(), 1, 1).unwrap();
    let m2 = backend
        .map_state::<u8, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    assert_eq!(m2.get(&1, &(), &1).unwrap(), Some(1));

    let r1 = backend.reducing_state::<u64, ()>(&sum("r")).unwrap();
    r1.add(&1, &(), 5).unwrap();
    let r2 = backend.reducing_state::<u64, ()>(&sum("r")).unwrap();
    r2.add(&1, &(), 6).unwrap();
    assert_eq!(r1.get(&1, &()).unwrap(), Some(11));

    // Clones of a handle share the data too.
    let v3 = v1.clone();
    v3.clear(&1, &()).unwrap();
    assert_eq!(v2.get(&1, &()).unwrap(), None);
    assert_eq!(backend.registered_states().len(), 4);
}

/// Registering a name again with another value type is an `InvalidInput` error naming the
/// state, and leaves the registered state intact.
pub fn same_name_other_value_type_is_rejected<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let v = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
        .unwrap();
    v.update(&1, &(), 1).unwrap();
    let err = expect_err(
        backend.value_state::<String, ()>(&ValueStateDescriptor::new("count")),
        ErrorKind::InvalidInput,
    );
    assert!(
        err.to_string().contains("count"),
        "the error names the state: {err}"
    );
    expect_err(
        backend.list_state::<u32, ()>(&ListStateDescriptor::new("count")),
        ErrorKind::InvalidInput,
    );
    let m = backend
        .map_state::<u32, u32, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    m.put(&1, &(), 1, 1).unwrap();
    expect_err(
        backend.map_state::<u64, u32, ()>(&MapStateDescriptor::new("m")),
        ErrorKind::InvalidInput,
    );
    expect_err(
        backend.map_state::<u32, u64, ()>(&MapStateDescriptor::new("m")),
        ErrorKind::InvalidInput,
    );
    assert_eq!(v.get(&1, &()).unwrap(), Some(1));
    assert_eq!(m.get(&1, &(), &1).unwrap(), Some(1));
    let again = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
        .unwrap();
    assert_eq!(again.get(&1, &()).unwrap(), Some(1));
}

/// Registering a name again as another kind (even with the same value type) is an
/// `InvalidInput` error.
pub fn same_name_other_kind_is_rejected<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let v = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("sessions"))
        .unwrap();
    v.update(&1, &(), 1).unwrap();
    let err = expect_err(
        backend.list_state::<u64, ()>(&ListStateDescriptor::new("sessions")),
        ErrorKind::InvalidInput,
    );
    assert!(
        err.to_string().contains("sessions"),
        "the error names the state: {err}"
    );
    expect_err(
        backend.reducing_state::<u64, ()>(&sum("sessions")),
        ErrorKind::InvalidInput,
    );
    expect_err(
        backend.map_state::<u64, u64, ()>(&MapStateDescriptor::new("sessions")),
        ErrorKind::InvalidInput,
    );
    let r = backend.reducing_state::<u64, ()>(&sum("r")).unwrap();
    r.add(&1, &(), 1).unwrap();
    expect_err(
        backend.value_state::<u64, ()>(&ValueStateDescriptor::new("r")),
        ErrorKind::InvalidInput,
    );
    let a = backend
        .aggregating_state::<u64, (u64, u64), f64, ()>(&average("a"))
        .unwrap();
    a.add(&1, &(), 1).unwrap();
    expect_err(
        backend.value_state::<(u64, u64), ()>(&ValueStateDescriptor::new("a")),
        ErrorKind::InvalidInput,
    );
    assert_eq!(v.get(&1, &()).unwrap(), Some(1));
    assert_eq!(r.get(&1, &()).unwrap(), Some(1));
    assert_eq!(a.accumulator(&1, &()).unwrap(), Some((1, 1)));
}

/// Registering a name again with another namespace type, or with TTL switched on or off,
/// is an `InvalidInput` error.
pub fn same_name_other_namespace_or_ttl_is_rejected<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let ttl = StateTtlConfig::new(Duration::from_secs(10));
    backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("plain"))
        .unwrap();
    expect_err(
        backend.value_state::<u64, u64>(&ValueStateDescriptor::new("plain")),
        ErrorKind::InvalidInput,
    );
    expect_err(
        backend.value_state::<u64, ()>(&ValueStateDescriptor::new("plain").with_ttl(ttl.clone())),
        ErrorKind::InvalidInput,
    );
    backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("with-ttl").with_ttl(ttl.clone()))
        .unwrap();
    expect_err(
        backend.list_state::<u64, ()>(&ListStateDescriptor::new("with-ttl")),
        ErrorKind::InvalidInput,
    );
    // The same TTL setting is fine.
    backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("with-ttl").with_ttl(ttl))
        .unwrap();
}

/// An empty state name is an `InvalidInput` error.
pub fn empty_state_name_is_rejected<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    expect_err(
        backend.value_state::<u64, ()>(&ValueStateDescriptor::new("")),
        ErrorKind::InvalidInput,
    );
    expect_err(
        backend.list_state::<u64, ()>(&ListStateDescriptor::new("")),
        ErrorKind::InvalidInput,
    );
    expect_err(
        backend.map_state::<u64, u64, ()>(&MapStateDescriptor::new("")),
        ErrorKind::InvalidInput,
    );
    assert!(backend.registered_states().is_empty());
}

/// Bad parameters (max parallelism out of bounds, empty range, range beyond the max
/// parallelism) are `InvalidInput` errors; the bounds themselves are accepted.
pub fn invalid_params_are_rejected<H: Harness>(h: &H) {
    let clock = clock();
    let bad = [
        params(&clock, 0, KeyGroupRange::new(0, 0)),
        params(&clock, 32_769, KeyGroupRange::new(0, 10)),
        params(&clock, MAX_P, KeyGroupRange::EMPTY),
        params(&clock, MAX_P, KeyGroupRange::new(0, MAX_P)),
        params(&clock, MAX_P, KeyGroupRange::new(200, 300)),
    ];
    for p in bad {
        let described = format!("{p:?}");
        match create::<H, u64>(h, p) {
            Ok(_) => panic!("parameters accepted: {described}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{described}: {e}"),
        }
    }
    for (max_p, range) in [
        (1, KeyGroupRange::all(1)),
        (32_768, KeyGroupRange::new(32_767, 32_767)),
        (7, KeyGroupRange::new(3, 6)),
    ] {
        let backend = create::<H, u64>(h, params(&clock, max_p, range)).unwrap();
        assert_eq!(backend.max_parallelism(), max_p);
        assert_eq!(backend.key_group_range(), range);
    }
}

/// `registered_states` lists every registered state's meta, by name order.
pub fn registered_states_lists_states_by_name<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    assert!(backend.registered_states().is_empty());
    backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("b"))
        .unwrap();
    backend
        .map_state::<u32, String, u64>(
            &MapStateDescriptor::new("c").with_ttl(StateTtlConfig::new(Duration::from_secs(1))),
        )
        .unwrap();
    backend
        .list_state::<u8, ()>(&ListStateDescriptor::new("a").with_type_name("my.Byte"))
        .unwrap();
    backend.reducing_state::<u64, ()>(&sum("d")).unwrap();
    let expected = vec![
        StateMeta {
            name: "a".into(),
            kind: StateKind::List,
            namespace_type: "()".into(),
            user_key_type: None,
            value_type: "my.Byte".into(),
            ttl: false,
        },
        StateMeta {
            name: "b".into(),
            kind: StateKind::Value,
            namespace_type: "()".into(),
            user_key_type: None,
            value_type: "u64".into(),
            ttl: false,
        },
        StateMeta {
            name: "c".into(),
            kind: StateKind::Map,
            namespace_type: "u64".into(),
            user_key_type: Some("u32".into()),
            value_type: "string".into(),
            ttl: true,
        },
        StateMeta {
            name: "d".into(),
            kind: StateKind::Reducing,
            namespace_type: "()".into(),
            user_key_type: None,
            value_type: "u64".into(),
            ttl: false,
        },
    ];
    assert_eq!(backend.registered_states(), expected);
}
