//! Timers in snapshots: snapshots (isolation, restore, unregistered timers), restores at
//! another parallelism, timers restored with keyed state and corrupt timer snapshots.

use super::timers::{advance, pending};
use super::{
    Backend, Harness, MAX_P, checkpoint, clock, create, fresh, kg, params, restore, restore_same,
    roundtrip, write_snapshot,
};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::clock::ManualClock;
use crate::descriptor::{StateKind, ValueStateDescriptor};
use crate::error::{ErrorKind, Result};
use crate::handles::KeyedStateHandle;
use crate::keygroup::{KeyGroupRange, operator_index_for_key_group};
use crate::timer::{TimeDomain, Timer};

/// Timers of both domains survive a snapshot and restore; the restored service starts
/// with no watermark and fires what is due at the next one.
pub fn timers_snapshot_roundtrip<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, String> = fresh(h, &clock);
    let timers = b.timer_service::<u64>("t").unwrap();
    let mut event = Vec::new();
    let mut processing = Vec::new();
    for i in 0..300u64 {
        let key = format!("k{i}");
        timers
            .register_event_time_timer(&key, &(i % 3), i as i64)
            .unwrap();
        event.push((i as i64, key.clone(), i % 3));
        if i % 2 == 0 {
            timers
                .register_processing_time_timer(&key, &0, 1_000 + i as i64)
                .unwrap();
            processing.push((1_000 + i as i64, key, 0));
        }
    }
    advance(&timers, 99);
    event.retain(|t| t.0 > 99);
    event.sort();
    processing.sort();
    let b = roundtrip(h, &b, &clock, 1);
    let timers = b.timer_service::<u64>("t").unwrap();
    assert_eq!(timers.current_watermark(), i64::MIN);
    assert_eq!(pending(&timers, TimeDomain::EventTime), event);
    assert_eq!(pending(&timers, TimeDomain::ProcessingTime), processing);
    assert_eq!(advance(&timers, 150).len(), 51);
    // Twice more, with the queue changed between: each snapshot holds what it saw.
    let b = roundtrip(h, &b, &clock, 2);
    let timers = b.timer_service::<u64>("t").unwrap();
    assert_eq!(timers.next_timer(TimeDomain::EventTime).unwrap(), Some(151));
    assert_eq!(advance(&timers, i64::MAX).len(), 149);
}

/// The synchronous phase captures the timers: registrations, deletions and firings after it
/// are not in the snapshot, and do not disturb its asynchronous phase.
pub fn timers_snapshot_isolation<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<()>("t").unwrap();
    for k in 0..200u64 {
        timers.register_event_time_timer(&k, &(), k as i64).unwrap();
    }
    let snapshot = b.snapshot(crate::CheckpointId(1)).unwrap();
    for k in 200..300u64 {
        timers.register_event_time_timer(&k, &(), k as i64).unwrap();
    }
    for k in 50..60u64 {
        timers.delete_event_time_timer(&k, &(), k as i64).unwrap();
    }
    assert_eq!(advance(&timers, 20).len(), 21);
    let state = write_snapshot(h, snapshot, 1);
    // The live service went on as if nothing happened.
    assert_eq!(
        timers.num_timers(TimeDomain::EventTime).unwrap(),
        300 - 10 - 21
    );
    let restored = restore_same(h, &clock, &b, &state);
    let timers = restored.timer_service::<()>("t").unwrap();
    let expected: Vec<(i64, u64, ())> = (0..200u64).map(|k| (k as i64, k, ())).collect();
    assert_eq!(pending(&timers, TimeDomain::EventTime), expected);
}

/// Timers restored and not asked for (no `timer_service` call) are carried into the next
/// snapshot as they were.
pub fn timers_unregistered_survive_a_second_cycle<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<u64>("t").unwrap();
    for k in 0..50u64 {
        timers
            .register_event_time_timer(&k, &k, 1_000 - k as i64)
            .unwrap();
        timers
            .register_processing_time_timer(&k, &k, k as i64)
            .unwrap();
    }
    let b = roundtrip(h, &b, &clock, 1);
    let b = roundtrip(h, &b, &clock, 2);
    let timers = b.timer_service::<u64>("t").unwrap();
    assert_eq!(timers.num_timers(TimeDomain::EventTime).unwrap(), 50);
    assert_eq!(timers.num_timers(TimeDomain::ProcessingTime).unwrap(), 50);
    assert_eq!(advance(&timers, 1_000)[0], (951, 49, 49));
}

/// `p` subtasks of `max_p` key groups, each with the timers of the keys it owns: key `k`
/// has event timers at `k` and `k + 1_000_000` in namespace `k % 4` and a processing timer
/// at `k`. Returns the snapshots.
fn timers_at<H: Harness>(
    h: &H,
    clock: &ManualClock,
    max_p: u32,
    p: u32,
    keys: u64,
) -> Vec<KeyedStateHandle> {
    let subtasks: Vec<Backend<H, u64>> = (0..p)
        .map(|i| {
            let range = KeyGroupRange::for_subtask(max_p, p, i).unwrap();
            create::<H, u64>(h, params(clock, max_p, range)).unwrap()
        })
        .collect();
    for k in 0..keys {
        let owner = &subtasks[operator_index_for_key_group(max_p, p, kg(&k, max_p)) as usize];
        let timers = owner.timer_service::<u64>("t").unwrap();
        timers
            .register_event_time_timer(&k, &(k % 4), k as i64)
            .unwrap();
        timers
            .register_event_time_timer(&k, &(k % 4), k as i64 + 1_000_000)
            .unwrap();
        timers
            .register_processing_time_timer(&k, &0, k as i64)
            .unwrap();
    }
    subtasks
        .iter()
        .flat_map(|s| checkpoint(h, s, 1).keyed)
        .collect()
}

/// Restores `p` subtasks from `handles` and checks that every timer is restored exactly
/// once, in the subtask owning its key group.
fn check_timers_at<H: Harness>(
    h: &H,
    clock: &ManualClock,
    max_p: u32,
    p: u32,
    keys: u64,
    handles: &[KeyedStateHandle],
) {
    let mut event = Vec::new();
    let mut processing = Vec::new();
    for i in 0..p {
        let range = KeyGroupRange::for_subtask(max_p, p, i).unwrap();
        let b: Backend<H, u64> = restore(h, clock, max_p, range, handles).unwrap();
        let timers = b.timer_service::<u64>("t").unwrap();
        for domain in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
            timers
                .for_each_timer(domain, &mut |t| {
                    assert!(range.contains(kg(&t.key, max_p)), "timer of a foreign key");
                    Ok(true)
                })
                .unwrap();
        }
        processing.extend(pending(&timers, TimeDomain::ProcessingTime));
        // Fire them all: each key's two event timers fire in order, here.
        let fired = advance(&timers, i64::MAX);
        assert!(fired.windows(2).all(|w| w[0].0 <= w[1].0), "fired in order");
        event.extend(fired);
    }
    event.sort();
    processing.sort();
    let mut expected: Vec<(i64, u64, u64)> = (0..keys)
        .flat_map(|k| [(k as i64, k, k % 4), (k as i64 + 1_000_000, k, k % 4)])
        .collect();
    expected.sort();
    assert_eq!(event, expected, "every event timer exactly once");
    let expected: Vec<(i64, u64, u64)> = (0..keys).map(|k| (k as i64, k, 0)).collect();
    assert_eq!(processing, expected, "every processing timer exactly once");
}

/// Timers written by one subtask are split over three.
pub fn timers_rescale_1_to_3<H: Harness>(h: &H) {
    let clock = clock();
    let handles = timers_at(h, &clock, MAX_P, 1, 500);
    check_timers_at(h, &clock, MAX_P, 3, 500, &handles);
}

/// Timers written by four subtasks are merged into two.
pub fn timers_rescale_4_to_2<H: Harness>(h: &H) {
    let clock = clock();
    let handles = timers_at(h, &clock, MAX_P, 4, 500);
    check_timers_at(h, &clock, MAX_P, 2, 500, &handles);
}

/// Timers with a two-byte key-group prefix (max parallelism over 128), 3 to 5 subtasks.
pub fn timers_rescale_max_parallelism_1000<H: Harness>(h: &H) {
    let clock = clock();
    let handles = timers_at(h, &clock, 1000, 3, 400);
    check_timers_at(h, &clock, 1000, 5, 400, &handles);
}

/// Timers and keyed state of the same keys restore together.
pub fn timers_restore_with_keyed_state<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<u64>("window").unwrap();
    let sums = b
        .value_state::<u64, u64>(&ValueStateDescriptor::new("sum"))
        .unwrap();
    for k in 0..100u64 {
        let window = (k / 10) * 10 + 9;
        sums.update(&k, &window, k).unwrap();
        timers
            .register_event_time_timer(&k, &window, window as i64)
            .unwrap();
    }
    let state = checkpoint(h, &b, 1);
    let b: Backend<H, u64> = restore_same(h, &clock, &b, &state);
    let timers = b.timer_service::<u64>("window").unwrap();
    let sums = b
        .value_state::<u64, u64>(&ValueStateDescriptor::new("sum"))
        .unwrap();
    let mut emitted = Vec::new();
    timers
        .advance_watermark(49, &mut |t: Timer<u64, u64>| -> Result<()> {
            let sum = sums.get(&t.key, &t.namespace)?.expect("the window's sum");
            sums.clear(&t.key, &t.namespace)?;
            emitted.push((t.namespace, t.key, sum));
            Ok(())
        })
        .unwrap();
    assert_eq!(emitted.len(), 50);
    assert!(
        emitted
            .iter()
            .all(|(w, k, s)| k == s && *w >= *k && *w < 50)
    );
    assert_eq!(sums.get(&60, &69).unwrap(), Some(60));
}

/// A timer snapshot whose timestamp value was cut is refused on restore with a corruption
/// error naming the state; a heap or RocksDB backend never panics on it.
pub fn timers_corrupt_timestamp_is_refused<H: Harness>(h: &H) {
    use crate::handles::{KeyGroupsStateHandle, StreamStateHandle};
    use crate::spi::keyed_format::{Compression, KeyedSnapshotHeader, KeyedSnapshotWriter};
    let clock = clock();
    let range = KeyGroupRange::all(MAX_P);
    let header = KeyedSnapshotHeader {
        backend: "test".into(),
        key_type: "u64".into(),
        states: vec![crate::StateMeta {
            name: TimeDomain::EventTime.queue_name("t"),
            kind: StateKind::Timers,
            namespace_type: crate::descriptor::namespace_type_name::<()>(),
            user_key_type: None,
            value_type: crate::timer::TIMESTAMP_TYPE.into(),
            ttl: false,
        }],
    };
    let key = 7u64;
    let mut w = KeyedSnapshotWriter::new(Vec::new(), &header, range, Compression::None).unwrap();
    w.begin_key_group(kg(&key, MAX_P)).unwrap();
    w.raw_record(0, &key.to_be_bytes(), &[], None, &[1, 2, 3])
        .unwrap();
    let (bytes, offsets) = w.finish().unwrap();
    let handle = KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
        range,
        offsets,
        stream: StreamStateHandle::Inline(bytes),
    });
    let err = match restore::<H, u64>(h, &clock, MAX_P, range, &[handle]) {
        Err(e) => e,
        Ok(b) => b
            .timer_service::<()>("t")
            .expect_err("a timer with a 3-byte timestamp"),
    };
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
}
