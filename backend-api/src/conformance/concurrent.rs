//! Asynchronous phases that overlap: a second snapshot while the first one's asynchronous
//! phase is blocked in storage I/O, and ten asynchronous phases at once.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::faults::BlockingStreamFactory;
use super::{Harness, clock, fresh, restore_same, skip};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::descriptor::ValueStateDescriptor;
use crate::handles::{CheckpointId, SubtaskState};

/// How long a case waits for another thread before it fails (a guard against a hang, not a
/// timing assumption: the awaited step needs no time to pass).
const PATIENCE: Duration = Duration::from_secs(120);

/// Snapshot 2 is taken and written while the asynchronous phase of snapshot 1 is blocked
/// inside a storage write; then snapshot 1 completes. Each holds exactly the writes made
/// before its synchronous phase (Flink's `testParallelAsyncSnapshots`, `testAsyncSnapshot`).
pub fn snapshot_while_another_is_blocked_in_io<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = ValueStateDescriptor::<u64>::new("v");
    let value = backend.value_state::<u64, ()>(&d).unwrap();
    for k in 0..10 {
        value.update(&k, &(), k).unwrap();
    }
    let first = backend.snapshot(CheckpointId(1)).unwrap();
    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (release, release_rx) = mpsc::channel::<()>();
    let blocking = BlockingStreamFactory {
        inner: h.stream_factory(CheckpointId(1)),
        entered: entered_tx,
        release: Arc::new(Mutex::new(release_rx)),
    };
    let (state1, state2) = std::thread::scope(|s| {
        let writer = s.spawn(move || first.write(&blocking));
        match entered.recv_timeout(PATIENCE) {
            Ok(()) => {}
            // The writer ended without writing to the harness's storage (a backend that
            // keeps small snapshots inline): snapshot 1 is merely pending.
            Err(mpsc::RecvTimeoutError::Disconnected) => skip(
                "snapshot_while_another_is_blocked_in_io",
                "snapshot 1 did not write to the harness's storage, so it cannot block in it",
            ),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                drop(release);
                panic!("the asynchronous phase of snapshot 1 neither wrote nor ended");
            }
        }
        for k in 5..15 {
            value.update(&k, &(), k + 1).unwrap();
        }
        let (done_tx, done) = mpsc::channel();
        let streams = h.stream_factory(CheckpointId(2));
        // The synchronous phase on the task thread, the asynchronous one on another.
        let snapshot = backend.snapshot(CheckpointId(2)).unwrap();
        let second = s.spawn(move || {
            let state = snapshot.write(&*streams);
            let _ = done_tx.send(());
            state
        });
        let finished = done.recv_timeout(PATIENCE);
        // Release snapshot 1 in any case, so that a failure does not hang the scope.
        drop(release);
        assert!(
            finished.is_ok(),
            "snapshot 2 did not finish while snapshot 1 was blocked in I/O"
        );
        let state2 = second
            .join()
            .expect("snapshot 2 panicked")
            .expect("asynchronous phase of snapshot 2");
        let state1 = writer
            .join()
            .expect("snapshot 1 panicked")
            .expect("asynchronous phase of snapshot 1");
        (state1, state2)
    });
    let check = |state: &SubtaskState, expected: &dyn Fn(u64) -> Option<u64>, which: &str| {
        let restored = restore_same(h, &clock, &backend, state);
        let v = restored.value_state::<u64, ()>(&d).unwrap();
        for k in 0..16 {
            assert_eq!(v.get(&k, &()).unwrap(), expected(k), "{which}, key {k}");
        }
    };
    check(&state1, &|k| (k < 10).then_some(k), "snapshot 1");
    check(
        &state2,
        &|k| match k {
            0..5 => Some(k),
            5..15 => Some(k + 1),
            _ => None,
        },
        "snapshot 2",
    );
    for k in 0..15 {
        let expected = if k < 5 { k } else { k + 1 };
        assert_eq!(value.get(&k, &()).unwrap(), Some(expected));
    }
}

/// Ten snapshots, each after registering and writing a new state, whose asynchronous
/// phases then all run at once on ten threads: each holds the states registered before it
/// (Flink's `testCheckConcurrencyProblemWhenPerformingCheckpointAsync`).
pub fn ten_async_phases_at_once<H: Harness>(h: &H) {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let descriptors: Vec<ValueStateDescriptor<u64>> = (0..10)
        .map(|i| ValueStateDescriptor::new(format!("id{i}")))
        .collect();
    let mut snapshots = Vec::new();
    for (i, d) in descriptors.iter().enumerate() {
        let i = i as u64;
        backend
            .value_state::<u64, ()>(d)
            .unwrap()
            .update(&i, &(), i)
            .unwrap();
        snapshots.push(backend.snapshot(CheckpointId(i + 1)).unwrap());
    }
    let states: Vec<SubtaskState> = std::thread::scope(|s| {
        let writers: Vec<_> = snapshots
            .into_iter()
            .enumerate()
            .map(|(i, snapshot)| {
                let streams = h.stream_factory(CheckpointId(i as u64 + 1));
                s.spawn(move || snapshot.write(&*streams))
            })
            .collect();
        writers
            .into_iter()
            .map(|w| {
                w.join()
                    .expect("an asynchronous phase panicked")
                    .expect("asynchronous phase")
            })
            .collect()
    });
    for (i, state) in states.iter().enumerate() {
        let restored = restore_same(h, &clock, &backend, state);
        let names: Vec<String> = restored
            .registered_states()
            .into_iter()
            .map(|m| m.name)
            .collect();
        let mut expected: Vec<String> = (0..=i).map(|j| format!("id{j}")).collect();
        expected.sort();
        assert_eq!(names, expected, "snapshot {}", i + 1);
        for (j, d) in descriptors.iter().enumerate().take(i + 1) {
            let v = restored.value_state::<u64, ()>(d).unwrap();
            let j = j as u64;
            assert_eq!(v.get(&j, &()).unwrap(), Some(j), "snapshot {}", i + 1);
        }
    }
}
