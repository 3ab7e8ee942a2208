//! Which threads may use a heap backend's states: the thread that created the backend by
//! default (no lock per access; another thread gets an error, never a data race), any
//! thread with `HeapThreading::Shared`; a use from inside one of the state's own calls is
//! refused under both.

use cornerstone_backend_api::timer::TimeDomain;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, ErrorKind, KeyGroupRange, KeyedBackendParams,
    KeyedStateBackendExt, ListStateDescriptor, MapStateDescriptor, StateBackend,
    ValueStateDescriptor,
};
use cornerstone_backend_memory::{HeapKeyedStateBackend, HeapThreading, MemoryStateBackend};

fn backend(factory: MemoryStateBackend) -> HeapKeyedStateBackend<u64> {
    factory
        .create_keyed_backend::<u64>(KeyedBackendParams::new(128, KeyGroupRange::all(128)))
        .expect("create the backend")
}

#[test]
fn by_default_states_are_used_on_the_thread_that_created_the_backend() {
    let backend = backend(MemoryStateBackend::new());
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    value.update(&1, &(), 10).unwrap();
    list.add(&1, &(), 10).unwrap();
    map.put(&1, &(), 2, 20).unwrap();
    let timers = backend.timer_service::<u64>("t").unwrap();
    timers.register_event_time_timer(&1, &0, 5).unwrap();

    std::thread::scope(|s| {
        s.spawn(|| {
            for e in [
                value.get(&1, &()).unwrap_err(),
                value.update(&2, &(), 20).unwrap_err(),
                list.add(&1, &(), 11).unwrap_err(),
                list.for_each(&1, &(), |_| {}).unwrap_err(),
                map.put(&1, &(), 3, 30).unwrap_err(),
                map.get(&1, &(), &2).unwrap_err(),
                timers.register_event_time_timer(&2, &0, 6).unwrap_err(),
                timers.delete_event_time_timer(&1, &0, 5).unwrap_err(),
                timers.next_timer(TimeDomain::EventTime).unwrap_err(),
                timers.advance_watermark(10, &mut |_| Ok(())).unwrap_err(),
                backend.snapshot(CheckpointId(1)).unwrap_err(),
            ] {
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
                assert!(e.to_string().contains("HeapThreading::Shared"), "{e}");
            }
        })
        .join()
        .expect("no panic on the other thread");
    });

    // Nothing changed, and the owner thread goes on.
    assert_eq!(value.get(&1, &()).unwrap(), Some(10));
    assert_eq!(value.get(&2, &()).unwrap(), None);
    assert_eq!(list.get(&1, &()).unwrap(), vec![10]);
    assert_eq!(map.get(&1, &(), &3).unwrap(), None);
    assert_eq!(timers.num_timers(TimeDomain::EventTime).unwrap(), 1);
    assert_eq!(timers.next_timer(TimeDomain::EventTime).unwrap(), Some(5));
    // The asynchronous phase of a snapshot runs on any thread.
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    std::thread::spawn(move || drop(snapshot)).join().unwrap();

    // The backend and its states may be dropped on another thread.
    std::thread::spawn(move || drop((backend, value, list, map, timers)))
        .join()
        .expect("dropped on another thread");
}

#[test]
fn shared_states_are_used_from_any_thread() {
    let backend = backend(MemoryStateBackend::new().threading(HeapThreading::Shared));
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let timers = backend.timer_service::<u64>("t").unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (value, timers) = (&value, &timers);
            s.spawn(move || {
                for k in (t * 1000)..(t * 1000 + 1000) {
                    value.update(&k, &(), k + 1).unwrap();
                    timers.register_event_time_timer(&k, &0, k as i64).unwrap();
                }
            });
        }
        s.spawn(|| backend.snapshot(CheckpointId(1)).unwrap());
    });
    for k in 0..4000 {
        assert_eq!(value.get(&k, &()).unwrap(), Some(k + 1));
    }
    assert_eq!(timers.num_timers(TimeDomain::EventTime).unwrap(), 4000);
    let mut fired = Vec::new();
    timers
        .advance_watermark(i64::MAX, &mut |t| {
            fired.push(t.timestamp);
            Ok(())
        })
        .unwrap();
    assert_eq!(fired, (0..4000).collect::<Vec<i64>>(), "in timestamp order");
}

#[test]
fn a_state_used_from_inside_its_own_call_is_refused_not_a_deadlock() {
    for threading in [HeapThreading::Owner, HeapThreading::Shared] {
        let backend = backend(MemoryStateBackend::new().threading(threading));
        let value = backend
            .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
            .unwrap();
        value.update(&1, &(), 1).unwrap();
        let mut inner = None;
        let outer = value.transform(&1, &(), |v| {
            inner = Some(value.get(&1, &()));
            v.map(|v| v + 1)
        });
        assert!(outer.is_ok(), "{threading:?}: {outer:?}");
        let inner = inner.expect("the closure ran").unwrap_err();
        assert_eq!(inner.kind(), ErrorKind::InvalidInput, "{threading:?}");
        assert!(inner.to_string().contains("from inside"), "{inner}");
        assert_eq!(value.get(&1, &()).unwrap(), Some(2), "{threading:?}");

        // Iteration hands out a view: the state may be changed from inside it.
        let list = backend
            .list_state::<u64, ()>(&ListStateDescriptor::new("l"))
            .unwrap();
        list.add(&1, &(), 1).unwrap();
        list.for_each(&1, &(), |v| list.add(&1, &(), v + 1).unwrap())
            .unwrap();
        assert_eq!(list.get(&1, &()).unwrap(), vec![1, 2], "{threading:?}");
    }
}
