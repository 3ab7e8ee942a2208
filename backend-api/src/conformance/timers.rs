//! Timers: ordering, deduplication, deletion, registration while firing, both time
//! domains, several services and many timers in one key group. Snapshots and restores
//! are in `timers_snapshot`, which uses the helpers here.

use std::collections::BTreeSet;

use super::{Backend, Harness, MAX_P, clock, create, expect_err, fresh, kg, params, roundtrip};
use crate::backend::{CheckpointableBackend, KeyedStateBackendExt};
use crate::clock::ManualClock;
use crate::descriptor::{StateKind, ValueStateDescriptor};
use crate::error::{Error, ErrorKind};
use crate::keygroup::KeyGroupRange;
use crate::spi::codec;
use crate::timer::{TimeDomain, Timer, TimerEntry, TimerService};

type Fired<K, N> = Vec<(i64, K, N)>;

/// Advances the watermark of `timers` to `wm`, returning what fired in order.
#[track_caller]
pub(super) fn advance<K: crate::StateKey, N: crate::StateKey>(
    timers: &TimerService<K, N>,
    wm: i64,
) -> Fired<K, N> {
    let mut fired = Vec::new();
    let n = timers
        .advance_watermark(wm, &mut |t| {
            fired.push((t.timestamp, t.key, t.namespace));
            Ok(())
        })
        .expect("advance the watermark");
    assert_eq!(n, fired.len() as u64, "count of fired timers");
    fired
}

/// Every pending timer of `domain`, sorted.
#[track_caller]
pub(super) fn pending<K: crate::StateKey + Ord, N: crate::StateKey + Ord>(
    timers: &TimerService<K, N>,
    domain: TimeDomain,
) -> Vec<(i64, K, N)> {
    let mut out = Vec::new();
    timers
        .for_each_timer(domain, &mut |t| {
            out.push((t.timestamp, t.key, t.namespace));
            Ok(true)
        })
        .expect("walk the timers");
    assert_eq!(
        out.len(),
        timers.num_timers(domain).expect("count the timers"),
        "num_timers agrees with for_each_timer"
    );
    out.sort();
    out
}

/// The documented firing order of timers: timestamp, key group, then entry bytes.
fn order_key<K: serde::Serialize, N: serde::Serialize>(
    ts: i64,
    key: &K,
    ns: &N,
) -> (i64, u32, TimerEntry) {
    let k = codec::encode(key).unwrap();
    let n = codec::encode(ns).unwrap();
    (ts, kg(key, MAX_P), TimerEntry::from_parts(&k, &n))
}

/// Timers of many keys, namespaces and timestamps (many of them equal) fire in the
/// documented order, each once, and only up to the watermark.
pub fn timers_fire_in_order<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, String> = fresh(h, &clock);
    let timers = b.timer_service::<u32>("windows").unwrap();
    assert_eq!(timers.current_watermark(), i64::MIN);
    assert_eq!(timers.next_timer(TimeDomain::EventTime).unwrap(), None);
    let mut expected = Vec::new();
    for i in 0..600u32 {
        let key = format!("key-{}", i % 97);
        let ns = i % 5;
        let ts = i64::from((i * 7919) % 40) - 10;
        timers.register_event_time_timer(&key, &ns, ts).unwrap();
        expected.push((order_key(ts, &key, &ns), (ts, key, ns)));
    }
    expected.sort();
    expected.dedup();
    let expected: Vec<(i64, String, u32)> = expected.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        timers.num_timers(TimeDomain::EventTime).unwrap(),
        expected.len()
    );
    assert_eq!(timers.next_timer(TimeDomain::EventTime).unwrap(), Some(-10));

    let first = advance(&timers, 5);
    let split = expected.iter().position(|t| t.0 > 5).unwrap();
    assert_eq!(
        first,
        expected[..split],
        "timers up to watermark 5, in order"
    );
    assert_eq!(timers.current_watermark(), 5);
    assert_eq!(timers.next_timer(TimeDomain::EventTime).unwrap(), Some(6));
    // The same watermark again, and a lower one, fire nothing and keep the watermark.
    assert!(advance(&timers, 5).is_empty());
    assert!(advance(&timers, -100).is_empty());
    assert_eq!(timers.current_watermark(), 5);
    let rest = advance(&timers, i64::MAX);
    assert_eq!(rest, expected[split..], "the rest, in order");
    assert_eq!(timers.num_timers(TimeDomain::EventTime).unwrap(), 0);
    assert!(advance(&timers, i64::MAX).is_empty());
}

/// The extremes of the timestamp range order correctly: negative timestamps before
/// positive ones, `i64::MIN` first, `i64::MAX` last.
pub fn timers_extreme_timestamps<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<()>("t").unwrap();
    let stamps = [
        i64::MAX,
        0,
        -1,
        1,
        i64::MIN,
        i64::MIN + 1,
        i64::MAX - 1,
        -256,
        256,
    ];
    for (i, ts) in stamps.iter().enumerate() {
        timers
            .register_event_time_timer(&(i as u64), &(), *ts)
            .unwrap();
    }
    let b = roundtrip(h, &b, &clock, 1);
    let timers = b.timer_service::<()>("t").unwrap();
    assert_eq!(
        timers.next_timer(TimeDomain::EventTime).unwrap(),
        Some(i64::MIN)
    );
    let fired: Vec<i64> = advance(&timers, i64::MAX).iter().map(|t| t.0).collect();
    let mut sorted = stamps.to_vec();
    sorted.sort();
    assert_eq!(fired, sorted);
}

/// A timer registered twice is one timer; timers that differ in key, namespace, timestamp
/// or domain are different timers.
pub fn timers_deduplicate<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<u64>("t").unwrap();
    for _ in 0..3 {
        timers.register_event_time_timer(&1, &10, 100).unwrap();
    }
    timers.register_event_time_timer(&1, &11, 100).unwrap();
    timers.register_event_time_timer(&1, &10, 101).unwrap();
    timers.register_event_time_timer(&2, &10, 100).unwrap();
    timers.register_processing_time_timer(&1, &10, 100).unwrap();
    assert_eq!(timers.num_timers(TimeDomain::EventTime).unwrap(), 4);
    assert_eq!(timers.num_timers(TimeDomain::ProcessingTime).unwrap(), 1);
    let fired = advance(&timers, 200);
    assert_eq!(fired.len(), 4, "{fired:?}");
    assert_eq!(
        fired.iter().collect::<BTreeSet<_>>().len(),
        4,
        "each once: {fired:?}"
    );
    // The processing-time twin is untouched by the watermark.
    assert_eq!(timers.num_timers(TimeDomain::ProcessingTime).unwrap(), 1);
}

/// Deleting a timer removes it (its duplicates were the same timer); deleting an absent
/// one, or one of another domain, namespace or timestamp, changes nothing.
pub fn timers_delete<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<u64>("t").unwrap();
    timers.register_event_time_timer(&1, &0, 10).unwrap();
    timers.register_event_time_timer(&1, &0, 10).unwrap();
    timers.register_event_time_timer(&2, &0, 20).unwrap();
    timers.register_event_time_timer(&3, &0, 5).unwrap();
    timers.delete_event_time_timer(&1, &0, 10).unwrap();
    timers.delete_event_time_timer(&1, &0, 10).unwrap();
    timers.delete_event_time_timer(&9, &0, 10).unwrap();
    timers.delete_event_time_timer(&2, &1, 20).unwrap();
    timers.delete_event_time_timer(&2, &0, 21).unwrap();
    timers.delete_processing_time_timer(&2, &0, 20).unwrap();
    assert_eq!(
        pending(&timers, TimeDomain::EventTime),
        vec![(5, 3, 0), (20, 2, 0)]
    );
    // Deleting the first timer moves the next one up.
    timers.delete_event_time_timer(&3, &0, 5).unwrap();
    assert_eq!(timers.next_timer(TimeDomain::EventTime).unwrap(), Some(20));
    assert_eq!(advance(&timers, 100), vec![(20, 2, 0)]);
    assert_eq!(timers.next_timer(TimeDomain::EventTime).unwrap(), None);
}

/// The callback registers and deletes timers: a timer it registers at or below the
/// watermark fires in the same advance, one above waits; one it deletes never fires.
pub fn timers_register_while_firing<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<u64>("t").unwrap();
    timers.register_event_time_timer(&1, &0, 10).unwrap();
    timers.register_event_time_timer(&2, &0, 30).unwrap();
    timers.register_event_time_timer(&3, &0, 40).unwrap();
    let mut fired = Vec::new();
    let n = timers
        .advance_watermark(50, &mut |t: Timer<u64, u64>| {
            fired.push((t.timestamp, t.key));
            match t.key {
                1 => {
                    // Already due, before and after the pending ones: both fire now.
                    timers.register_event_time_timer(&10, &0, 20)?;
                    timers.register_event_time_timer(&11, &0, 5)?;
                    timers.register_event_time_timer(&12, &0, 50)?;
                    // Not due: waits.
                    timers.register_event_time_timer(&13, &0, 51)?;
                    // Deleted before its turn: never fires.
                    timers.delete_event_time_timer(&3, &0, 40)?;
                }
                12 => timers.register_event_time_timer(&14, &0, 50)?,
                _ => {}
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        fired,
        vec![(10, 1), (5, 11), (20, 10), (30, 2), (50, 12), (50, 14)]
    );
    assert_eq!(n, 6);
    assert_eq!(pending(&timers, TimeDomain::EventTime), vec![(51, 13, 0)]);
}

/// A failing callback stops the advance with its error: the timers after it stay pending
/// and fire at the next advance.
pub fn timers_callback_error_stops_firing<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let timers = b.timer_service::<()>("t").unwrap();
    for (key, ts) in [(1u64, 1i64), (2, 2), (3, 3)] {
        timers.register_event_time_timer(&key, &(), ts).unwrap();
    }
    let err = timers
        .advance_watermark(10, &mut |t| {
            if t.key == 2 {
                Err(Error::invalid_input("the operator failed"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(pending(&timers, TimeDomain::EventTime), vec![(3, 3, ())]);
    assert_eq!(advance(&timers, 10), vec![(3, 3, ())]);
}

/// Processing-time timers fire from the backend's clock, apart from event time.
pub fn timers_processing_time_from_clock<H: Harness>(h: &H) {
    let clock = ManualClock::new(1_000);
    let b: Backend<H, u64> = create(h, params(&clock, MAX_P, KeyGroupRange::all(MAX_P))).unwrap();
    let timers = b.timer_service::<()>("t").unwrap();
    assert_eq!(timers.current_processing_time(), 1_000);
    timers
        .register_processing_time_timer(&1, &(), 1_500)
        .unwrap();
    timers.register_processing_time_timer(&2, &(), 999).unwrap();
    timers
        .register_processing_time_timer(&3, &(), 2_000)
        .unwrap();
    timers.register_event_time_timer(&4, &(), 0).unwrap();
    assert_eq!(
        timers.next_timer(TimeDomain::ProcessingTime).unwrap(),
        Some(999)
    );
    let fire = || {
        let mut keys = Vec::new();
        timers
            .fire_due_processing_timers(&mut |t| {
                keys.push(t.key);
                Ok(())
            })
            .unwrap();
        keys
    };
    assert_eq!(fire(), vec![2]);
    clock.advance(499);
    assert_eq!(fire(), Vec::<u64>::new());
    clock.advance(1);
    assert_eq!(fire(), vec![1]);
    clock.advance(10_000);
    assert_eq!(fire(), vec![3]);
    // The event-time timer waited for a watermark.
    assert_eq!(advance(&timers, 0), vec![(0, 4, ())]);
    // An explicit processing time fires as the clock would.
    timers
        .register_processing_time_timer(&5, &(), 50_000)
        .unwrap();
    let n = timers
        .advance_processing_time(50_000, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(n, 1);
}

/// Services of other names are separate; the same name gives the same timers; a service
/// restored or registered with another namespace type is refused, and user states cannot
/// take the timers' names.
pub fn timers_named_services<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = fresh(h, &clock);
    let a = b.timer_service::<u64>("a").unwrap();
    let other = b.timer_service::<String>("b").unwrap();
    a.register_event_time_timer(&1, &7, 10).unwrap();
    other
        .register_event_time_timer(&1, &"w".to_string(), 10)
        .unwrap();
    let again = b.timer_service::<u64>("a").unwrap();
    assert_eq!(again.num_timers(TimeDomain::EventTime).unwrap(), 1);
    assert_eq!(advance(&again, 10), vec![(10, 1, 7)]);
    assert_eq!(a.num_timers(TimeDomain::EventTime).unwrap(), 0);
    assert_eq!(other.num_timers(TimeDomain::EventTime).unwrap(), 1);

    expect_err(b.timer_service::<String>("a"), ErrorKind::InvalidInput);
    expect_err(b.timer_service::<u64>(""), ErrorKind::InvalidInput);
    expect_err(
        b.value_state::<u64, ()>(&ValueStateDescriptor::new("_timer_state/event_a")),
        ErrorKind::InvalidInput,
    );
    let names: Vec<(String, StateKind)> = b
        .registered_states()
        .into_iter()
        .map(|m| (m.name, m.kind))
        .collect();
    for name in [
        "_timer_state/event_a",
        "_timer_state/processing_a",
        "_timer_state/event_b",
        "_timer_state/processing_b",
    ] {
        assert!(
            names.contains(&(name.to_owned(), StateKind::Timers)),
            "{name} in {names:?}"
        );
    }
    let b = roundtrip(h, &b, &clock, 1);
    expect_err(b.timer_service::<u32>("b"), ErrorKind::InvalidInput);
    let other = b.timer_service::<String>("b").unwrap();
    assert_eq!(advance(&other, 10), vec![(10, 1, "w".to_string())]);
}

/// A timer of a key outside the backend's key groups is refused.
pub fn timers_foreign_key_is_rejected<H: Harness>(h: &H) {
    let clock = clock();
    let range = KeyGroupRange::new(0, 63);
    let b: Backend<H, u64> = create(h, params(&clock, MAX_P, range)).unwrap();
    let timers = b.timer_service::<()>("t").unwrap();
    let foreign = super::key_where(MAX_P, 0, |g| g >= 64);
    expect_err(
        timers.register_event_time_timer(&foreign, &(), 1),
        ErrorKind::InvalidInput,
    );
    expect_err(
        timers.delete_processing_time_timer(&foreign, &(), 1),
        ErrorKind::InvalidInput,
    );
    assert_eq!(timers.num_timers(TimeDomain::EventTime).unwrap(), 0);
}

/// Thousands of timers in one key group (max parallelism 1), registered, deleted and fired
/// in an interleaving, agree with a `BTreeSet` at every step: a backend that keeps only
/// the first timers of a key group in memory must read the rest back in order.
pub fn timers_many_in_one_key_group<H: Harness>(h: &H) {
    let clock = clock();
    let b: Backend<H, u64> = create(h, params(&clock, 1, KeyGroupRange::all(1))).unwrap();
    let timers = b.timer_service::<u32>("t").unwrap();
    let mut model = BTreeSet::new();
    let mut x: u64 = 7;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut watermark = 0i64;
    for round in 0..6 {
        for _ in 0..1_500 {
            let ts = watermark + next(5_000) as i64;
            let key = next(400);
            let ns = next(3) as u32;
            timers.register_event_time_timer(&key, &ns, ts).unwrap();
            model.insert((ts, key, ns));
        }
        // Delete some, among them the first ones (a cache's head).
        let firsts: Vec<(i64, u64, u32)> = model.iter().take(40).copied().collect();
        let others: Vec<(i64, u64, u32)> = model.iter().step_by(7).copied().collect();
        for t in firsts.into_iter().step_by(2).chain(others) {
            timers.delete_event_time_timer(&t.1, &t.2, t.0).unwrap();
            model.remove(&t);
        }
        watermark += 700;
        let fired = advance(&timers, watermark);
        let mut expected = Vec::new();
        while let Some(first) = model.first().copied().filter(|t| t.0 <= watermark) {
            model.remove(&first);
            expected.push(first);
        }
        // One key group: ties order by the key's then the namespace's bytes.
        assert_eq!(fired, expected, "round {round}");
        assert_eq!(
            timers.next_timer(TimeDomain::EventTime).unwrap(),
            model.first().map(|t| t.0)
        );
        if round == 2 {
            let b2 = roundtrip(h, &b, &clock, 1);
            let restored = b2.timer_service::<u32>("t").unwrap();
            assert_eq!(
                pending(&restored, TimeDomain::EventTime),
                model.iter().copied().collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(advance(&timers, i64::MAX).len(), model.len());
}
