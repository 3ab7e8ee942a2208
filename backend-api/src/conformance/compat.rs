//! Restoring with incompatible descriptors fails with a clear error.

use std::time::Duration;

use super::reducing::sum;
use super::{Backend, Harness, MAX_P, checkpoint, clock, fresh, restore};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::error::{Error, ErrorKind, Result};
use crate::handles::KeyedStateHandle;
use crate::keygroup::KeyGroupRange;
use crate::ttl::StateTtlConfig;

fn ttl() -> StateTtlConfig {
    StateTtlConfig::new(Duration::from_secs(60))
}

/// Writes a value state "count" (u64), a list state "events" (String), a map state
/// "index" (String -> u64) and a TTL value state "session" (u64), and snapshots them.
fn written<H: Harness>(h: &H) -> Vec<KeyedStateHandle> {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let count = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
        .unwrap();
    let events = backend
        .list_state::<String, ()>(&ListStateDescriptor::new("events"))
        .unwrap();
    let index = backend
        .map_state::<String, u64, ()>(&MapStateDescriptor::new("index"))
        .unwrap();
    let session = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("session").with_ttl(ttl()))
        .unwrap();
    for k in 0..20u64 {
        count.update(&k, &(), k).unwrap();
        events.add(&k, &(), format!("e{k}")).unwrap();
        index.put(&k, &(), format!("i{k}"), k).unwrap();
        session.update(&k, &(), k).unwrap();
    }
    checkpoint(h, &backend, 1).keyed
}

fn restored<H: Harness>(h: &H, handles: &[KeyedStateHandle]) -> Backend<H, u64> {
    restore::<H, u64>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), handles).expect("restore")
}

/// Asserts an `InvalidInput` error whose message names `state`.
#[track_caller]
fn assert_names_state<T>(result: Result<T>, state: &str) {
    let err: Error = match result {
        Ok(_) => panic!("state '{state}' was restored with an incompatible descriptor"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains(state),
        "the error does not name '{state}': {err}"
    );
}

/// Registering restored state with another value (or map key) type is an `InvalidInput`
/// error naming the state; the right descriptor still finds the data afterwards.
pub fn restore_with_other_value_type_fails<H: Harness>(h: &H) {
    let handles = written(h);
    let backend = restored(h, &handles);
    assert_names_state(
        backend.value_state::<String, ()>(&ValueStateDescriptor::new("count")),
        "count",
    );
    assert_names_state(
        backend.value_state::<u64, u64>(&ValueStateDescriptor::new("count")),
        "count",
    );
    assert_names_state(
        backend.list_state::<u64, ()>(&ListStateDescriptor::new("events")),
        "events",
    );
    assert_names_state(
        backend.map_state::<u64, u64, ()>(&MapStateDescriptor::new("index")),
        "index",
    );
    assert_names_state(
        backend.map_state::<String, String, ()>(&MapStateDescriptor::new("index")),
        "index",
    );
    // A renamed type keeps a state restorable only with an explicit type name.
    assert_names_state(
        backend.value_state::<u64, ()>(&ValueStateDescriptor::new("count").with_type_name("Count")),
        "count",
    );
    let count = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
        .unwrap();
    assert_eq!(count.get(&3, &()).unwrap(), Some(3));
    let index = backend
        .map_state::<String, u64, ()>(&MapStateDescriptor::new("index"))
        .unwrap();
    assert_eq!(index.get(&3, &(), &"i3".to_owned()).unwrap(), Some(3));
}

/// Registering restored state as another kind is an `InvalidInput` error naming the state.
pub fn restore_with_other_kind_fails<H: Harness>(h: &H) {
    let handles = written(h);
    let backend = restored(h, &handles);
    assert_names_state(
        backend.list_state::<u64, ()>(&ListStateDescriptor::new("count")),
        "count",
    );
    assert_names_state(backend.reducing_state::<u64, ()>(&sum("count")), "count");
    assert_names_state(
        backend.value_state::<Vec<String>, ()>(&ValueStateDescriptor::new("events")),
        "events",
    );
    assert_names_state(
        backend.value_state::<u64, ()>(&ValueStateDescriptor::new("index")),
        "index",
    );
    let events = backend
        .list_state::<String, ()>(&ListStateDescriptor::new("events"))
        .unwrap();
    assert_eq!(events.get(&4, &()).unwrap(), ["e4"]);
}

/// Switching TTL on or off for restored state is an `InvalidInput` error naming the state.
pub fn restore_with_ttl_toggled_fails<H: Harness>(h: &H) {
    let handles = written(h);
    let backend = restored(h, &handles);
    assert_names_state(
        backend.value_state::<u64, ()>(&ValueStateDescriptor::new("count").with_ttl(ttl())),
        "count",
    );
    assert_names_state(
        backend.value_state::<u64, ()>(&ValueStateDescriptor::new("session")),
        "session",
    );
    assert_names_state(
        backend.list_state::<String, ()>(&ListStateDescriptor::new("events").with_ttl(ttl())),
        "events",
    );
    // Another TTL duration is fine.
    let session = backend
        .value_state::<u64, ()>(
            &ValueStateDescriptor::new("session")
                .with_ttl(StateTtlConfig::new(Duration::from_secs(3600))),
        )
        .unwrap();
    assert_eq!(session.get(&5, &()).unwrap(), Some(5));
}

/// Restoring a snapshot with another key type is an `InvalidInput` error (when the backend
/// is created, or when a state is first used), never a panic or garbage.
pub fn restore_with_other_key_type_fails<H: Harness>(h: &H) {
    let handles = written(h);
    let outcome = (|| -> Result<()> {
        let backend =
            restore::<H, String>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), &handles)?;
        let count = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
        for key in count.state_keys(&())? {
            count.get(&key, &())?;
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => panic!("u64 keys were restored as String keys"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
    }
}
