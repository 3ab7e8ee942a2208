//! Time-to-live of every state kind with a snapshot and restore between each step (Flink's
//! `TtlStateTestBase`, which runs each scenario against every kind): exact and relaxed
//! expiration, timestamps that overflow, snapshots taken before later writes, and
//! incremental cleanup while a snapshot is pending.

use std::time::Duration;

use super::reducing::{average, sum};
use super::ttl::{default_ttl, ttl};
use super::{
    Backend, Harness, T0, checkpoint, clock, fresh, restore, restore_same, roundtrip, skip, sorted,
};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::clock::ManualClock;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::handles::CheckpointId;
use crate::ttl::{StateTtlConfig, StateVisibility, UpdateType};

/// One state of each kind, seen as a `u64` per key: what the scenarios write and read.
struct Probe {
    kind: &'static str,
    /// Writes `value` as the whole state of `key` (a list or map of one element, a fold
    /// of one value).
    update: Box<dyn Fn(u64, u64)>,
    /// The state of `key`, if any.
    get: Box<dyn Fn(u64) -> Option<u64>>,
}

/// The probes of every state kind with TTL `config`, registered in `backend`.
fn probes<H: Harness>(backend: &Backend<H, u64>, config: &StateTtlConfig) -> Vec<Probe> {
    let value = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("value").with_ttl(config.clone()))
        .unwrap();
    let list = backend
        .list_state::<u64, ()>(&ListStateDescriptor::new("list").with_ttl(config.clone()))
        .unwrap();
    let map = backend
        .map_state::<u64, u64, ()>(&MapStateDescriptor::new("map").with_ttl(config.clone()))
        .unwrap();
    let reducing = backend
        .reducing_state::<u64, ()>(&sum("reducing").with_ttl(config.clone()))
        .unwrap();
    let aggregating = backend
        .aggregating_state::<u64, (u64, u64), f64, ()>(
            &average("aggregating").with_ttl(config.clone()),
        )
        .unwrap();
    let (value2, list2, map2, reducing2, aggregating2) = (
        value.clone(),
        list.clone(),
        map.clone(),
        reducing.clone(),
        aggregating.clone(),
    );
    vec![
        Probe {
            kind: "value",
            update: Box::new(move |k, v| value.update(&k, &(), v).unwrap()),
            get: Box::new(move |k| value2.get(&k, &()).unwrap()),
        },
        Probe {
            kind: "list",
            update: Box::new(move |k, v| list.update(&k, &(), vec![v]).unwrap()),
            get: Box::new(move |k| {
                let elements = list2.get(&k, &()).unwrap();
                assert!(elements.len() <= 1, "list of {k}: {elements:?}");
                elements.first().copied()
            }),
        },
        Probe {
            kind: "map",
            update: Box::new(move |k, v| map.put(&k, &(), 0, v).unwrap()),
            get: Box::new(move |k| map2.get(&k, &(), &0).unwrap()),
        },
        Probe {
            kind: "reducing",
            update: Box::new(move |k, v| {
                reducing.clear(&k, &()).unwrap();
                reducing.add(&k, &(), v).unwrap();
            }),
            get: Box::new(move |k| reducing2.get(&k, &()).unwrap()),
        },
        Probe {
            kind: "aggregating",
            update: Box::new(move |k, v| {
                aggregating.clear(&k, &()).unwrap();
                aggregating.add(&k, &(), v).unwrap();
            }),
            get: Box::new(move |k| aggregating2.accumulator(&k, &()).unwrap().map(|a| a.0)),
        },
    ]
}

/// A backend with TTL states of every kind that is snapshotted and restored between steps.
struct Restoring<'h, H: Harness> {
    h: &'h H,
    clock: ManualClock,
    config: StateTtlConfig,
    backend: Backend<H, u64>,
    probes: Vec<Probe>,
    checkpoints: u64,
}

impl<'h, H: Harness> Restoring<'h, H> {
    fn new(h: &'h H, config: StateTtlConfig) -> Self {
        let clock = clock();
        let backend = fresh::<H, u64>(h, &clock);
        let probes = probes::<H>(&backend, &config);
        Restoring {
            h,
            clock,
            config,
            backend,
            probes,
            checkpoints: 0,
        }
    }

    /// Snapshots the backend and continues on one restored from the snapshot.
    fn restore(&mut self) {
        self.checkpoints += 1;
        self.backend = roundtrip::<H, u64>(self.h, &self.backend, &self.clock, self.checkpoints);
        self.probes = probes::<H>(&self.backend, &self.config);
    }

    fn at(&self, offset: u64) {
        self.clock.set(T0 + offset);
    }

    fn update(&self, key: u64, value: u64) {
        for p in &self.probes {
            (p.update)(key, value);
        }
    }

    #[track_caller]
    fn expect(&self, key: u64, expected: Option<u64>, why: &str) {
        for p in &self.probes {
            assert_eq!((p.get)(key), expected, "{} state, key {key}: {why}", p.kind);
        }
    }
}

/// `OnCreateAndWrite` and `NeverReturnExpired`, every kind, restored between each step:
/// writes refresh the timestamp, reads do not, and a value is gone once expired (Flink's
/// `testExactExpirationOnWrite`).
pub fn ttl_exact_expiration_every_kind_across_restores<H: Harness>(h: &H) {
    let mut r = Restoring::new(h, default_ttl());
    r.restore();
    r.at(0);
    r.update(1, 1);
    r.restore();
    r.at(20);
    r.expect(1, Some(1), "unexpired");
    r.restore();
    r.at(50);
    r.update(1, 2);
    r.restore();
    r.at(120);
    r.expect(1, Some(2), "unexpired after an update");
    r.restore();
    r.at(170);
    r.update(1, 3);
    r.restore();
    r.at(220);
    r.expect(1, Some(3), "unexpired after an update");
    r.restore();
    r.at(300);
    r.expect(1, None, "expired");
    r.restore();
    r.expect(1, None, "expired values are cleared on read");
}

/// `ReturnExpiredIfNotCleanedUp`, every kind, restored between steps: an expired value is
/// returned by the first read after it expired and gone after it, with timestamps updated
/// on write (Flink's `testRelaxedExpirationOnWrite`) and on read
/// (`testRelaxedExpirationOnRead`, `testExactExpirationOnRead`).
pub fn ttl_relaxed_expiration_every_kind_across_restores<H: Harness>(h: &H) {
    let mut r = Restoring::new(
        h,
        ttl(
            UpdateType::OnCreateAndWrite,
            StateVisibility::ReturnExpiredIfNotCleanedUp,
        ),
    );
    r.at(0);
    r.update(1, 1);
    r.restore();
    r.at(120);
    r.expect(1, Some(1), "expired but not cleaned up");
    r.expect(1, None, "the read cleaned it up");

    let mut r = Restoring::new(
        h,
        ttl(
            UpdateType::OnReadAndWrite,
            StateVisibility::ReturnExpiredIfNotCleanedUp,
        ),
    );
    r.at(0);
    r.update(1, 1);
    r.restore();
    r.at(50);
    r.expect(1, Some(1), "unexpired; the read refreshes it");
    r.restore();
    r.at(149);
    r.expect(1, Some(1), "the read at 50 refreshed it");
    r.restore();
    r.at(249);
    r.expect(1, Some(1), "expired at 249, returned once");
    r.expect(1, None, "the read cleaned it up");

    let mut r = Restoring::new(
        h,
        ttl(
            UpdateType::OnReadAndWrite,
            StateVisibility::NeverReturnExpired,
        ),
    );
    r.at(0);
    r.update(1, 1);
    r.restore();
    r.at(50);
    r.expect(1, Some(1), "unexpired; the read refreshes it");
    r.restore();
    r.at(120);
    r.expect(1, Some(1), "the read at 50 refreshed it");
    r.restore();
    r.at(250);
    r.expect(1, None, "expired");
}

/// A TTL so long that the expiration time overflows (`u64::MAX` milliseconds,
/// `Duration::MAX`) never expires, and never panics: not on write, read, snapshot with
/// cleanup in full snapshots, restore, or a millisecond before the end of time (Flink's
/// `testExpirationTimestampOverflow`).
pub fn ttl_expiration_timestamp_overflow<H: Harness>(h: &H) {
    for (what, long) in [
        ("u64::MAX ms", Duration::from_millis(u64::MAX)),
        ("Duration::MAX", Duration::MAX),
    ] {
        let config = StateTtlConfig::new(long).cleanup_full_snapshot();
        assert_eq!(config.ttl_millis(), u64::MAX, "{what}");
        let mut r = Restoring::new(h, config);
        r.at(10);
        r.update(1, 1);
        r.restore();
        r.at(50);
        r.expect(1, Some(1), what);
        r.clock.set(u64::MAX - 1);
        r.restore();
        r.expect(1, Some(1), what);
    }
}

/// A snapshot keeps the timestamps of its time: writes after it are not in it, and values
/// restored from it expire as they would have then (Flink's `testSnapshotChangeRestore`).
pub fn ttl_snapshot_then_later_writes_restore<H: Harness>(h: &H) {
    let r = Restoring::new(h, default_ttl());
    r.at(0);
    r.update(1, 1);
    r.at(50);
    r.update(1, 2);
    r.at(100);
    r.update(2, 1);
    let state = checkpoint(h, &r.backend, 1);
    r.at(170);
    r.update(1, 3);
    r.update(2, 2);
    let restored = restore::<H, u64>(
        h,
        &r.clock,
        r.backend.max_parallelism(),
        r.backend.key_group_range(),
        &state.keyed,
    )
    .unwrap();
    let probes = probes::<H>(&restored, &r.config);
    r.at(180);
    for p in &probes {
        assert_eq!((p.get)(1), None, "{}: expired at 150", p.kind);
        assert_eq!((p.get)(2), Some(1), "{}: written at 100", p.kind);
    }
}

/// Incremental cleanup that removes expired values while a snapshot is pending does not
/// change that snapshot (Flink's `testIncrementalCleanup`): restored at the snapshot's
/// time, every value it captured is there.
pub fn ttl_incremental_cleanup_leaves_pending_snapshot_alone<H: Harness>(h: &H) {
    if !h.incremental_ttl_cleanup() {
        return skip(
            "ttl_incremental_cleanup_leaves_pending_snapshot_alone",
            "no incremental TTL cleanup",
        );
    }
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let d = ValueStateDescriptor::<u64>::new("v").with_ttl(default_ttl().cleanup_incrementally(5));
    let value = backend.value_state::<u64, ()>(&d).unwrap();
    for k in 0..200 {
        value.update(&k, &(), 0).unwrap();
    }
    clock.set(T0 + 50);
    for k in 0..50 {
        value.update(&k, &(), 1).unwrap();
    }
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    for k in 50..100 {
        value.update(&k, &(), 1).unwrap();
    }
    clock.set(T0 + 120);
    for _ in 0..400 {
        if value.state_keys(&()).unwrap().len() == 100 {
            break;
        }
        assert_eq!(value.get(&1000, &()).unwrap(), None);
    }
    assert_eq!(
        sorted(value.state_keys(&()).unwrap()),
        (0..100).collect::<Vec<_>>(),
        "the expired keys were not cleaned up"
    );
    let state = super::write_snapshot(h, snapshot, 1);
    clock.set(T0 + 50);
    let restored = restore_same(h, &clock, &backend, &state);
    let r = restored.value_state::<u64, ()>(&d).unwrap();
    for k in 0..200 {
        let expected = u64::from(k < 50);
        assert_eq!(r.get(&k, &()).unwrap(), Some(expected), "key {k}");
    }
    clock.set(T0 + 120);
    for k in 50..200 {
        assert_eq!(r.get(&k, &()).unwrap(), None, "key {k}");
    }
    for k in 0..50 {
        assert_eq!(r.get(&k, &()).unwrap(), Some(1), "key {k}");
    }
}
