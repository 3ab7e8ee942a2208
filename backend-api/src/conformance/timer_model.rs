//! A property test of timers against a `BTreeSet` model: random registrations, deletions,
//! watermarks and processing times over a small key space, interleaved with checkpoints
//! and restores at random parallelism. What fires, and in which order, must match the
//! model's first timers, restricted to each subtask's key groups.

use std::collections::BTreeSet;
use std::fmt::Debug;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{Backend, Harness, clock, create, kg, params, restore, write_snapshot};
use crate::backend::{AsyncSnapshot, CheckpointableBackend, KeyedStateBackendExt};
use crate::clock::ManualClock;
use crate::error::Result;
use crate::handles::{CheckpointId, KeyedStateHandle};
use crate::keygroup::{KeyGroupRange, operator_index_for_key_group};
use crate::spi::codec;
use crate::timer::{TimeDomain, TimerEntry, TimerService};

/// The max parallelism of the test.
const MAX_P: u32 = 16;
/// Keys are `0..KEYS`.
const KEYS: u16 = 40;

#[derive(Debug, Clone)]
enum Op {
    Register(bool, u16, u8, i64),
    Delete(bool, u16, u8, i64),
    /// Advance the watermark by this much.
    Watermark(i64),
    /// Fire processing-time timers up to the watermark plus this much.
    Processing(i64),
    Checkpoint,
    Restore(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let ts = || -20..60i64;
    prop_oneof![
        8 => (any::<bool>(), 0..KEYS, 0..3u8, ts()).prop_map(|(e, k, n, t)| Op::Register(e, k, n, t)),
        3 => (any::<bool>(), 0..KEYS, 0..3u8, ts()).prop_map(|(e, k, n, t)| Op::Delete(e, k, n, t)),
        3 => (-5..15i64).prop_map(Op::Watermark),
        2 => (-5..15i64).prop_map(Op::Processing),
        2 => Just(Op::Checkpoint),
        2 => (1..=4u32).prop_map(Op::Restore),
    ]
}

/// A timer of the model, ordered as timers fire.
type ModelTimer = (i64, u32, TimerEntry, u16, u8);

fn model_timer(ts: i64, key: u16, ns: u8) -> ModelTimer {
    let entry = TimerEntry::from_parts(&codec::encode(&key).unwrap(), &codec::encode(&ns).unwrap());
    (ts, kg(&key, MAX_P), entry, key, ns)
}

#[derive(Debug, Clone, Default)]
struct Model {
    event: BTreeSet<ModelTimer>,
    processing: BTreeSet<ModelTimer>,
}

fn ok<T>(what: impl Debug, r: Result<T>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what:?} failed: {e}")))
}

/// One subtask: its key groups, its backend, its timer service.
type Subtask<H> = (KeyGroupRange, Backend<H, u16>, TimerService<u16, u8>);

type Pending = (u64, Vec<Box<dyn AsyncSnapshot>>, Model);

struct Run<'h, H: Harness> {
    h: &'h H,
    clock: ManualClock,
    subtasks: Vec<Subtask<H>>,
    model: Model,
    /// Where the watermark of the ops stands (it may go down).
    watermark: i64,
    /// The services' watermark: it never goes down, and starts anew at a restore.
    service_watermark: i64,
    next_id: u64,
    pending: Option<Pending>,
    completed: Option<(Vec<KeyedStateHandle>, Model)>,
}

impl<H: Harness> Run<'_, H> {
    fn start(&mut self, p: u32, handles: &[KeyedStateHandle]) -> Result<(), TestCaseError> {
        self.subtasks.clear();
        for i in 0..p {
            let range = KeyGroupRange::for_subtask(MAX_P, p, i).expect("subtask range");
            let backend = if handles.is_empty() {
                create::<H, u16>(self.h, params(&self.clock, MAX_P, range))
            } else {
                restore::<H, u16>(self.h, &self.clock, MAX_P, range, handles)
            };
            let backend = ok(("restore subtask", i, p), backend)?;
            let timers = ok("timer service", backend.timer_service::<u8>("t"))?;
            self.subtasks.push((range, backend, timers));
        }
        Ok(())
    }

    fn owner(&self, key: u16) -> &TimerService<u16, u8> {
        let p = self.subtasks.len() as u32;
        &self.subtasks[operator_index_for_key_group(MAX_P, p, kg(&key, MAX_P)) as usize].2
    }

    /// Fires `domain` up to `up_to` on every subtask and compares with the model.
    fn fire(&mut self, domain: TimeDomain, up_to: i64) -> Result<(), TestCaseError> {
        let model = match domain {
            TimeDomain::EventTime => &mut self.model.event,
            TimeDomain::ProcessingTime => &mut self.model.processing,
        };
        let due: Vec<ModelTimer> = model.iter().filter(|t| t.0 <= up_to).cloned().collect();
        for t in &due {
            model.remove(t);
        }
        for (range, _, timers) in &self.subtasks {
            let mut fired = Vec::new();
            let mut on_timer = |t: crate::timer::Timer<u16, u8>| {
                fired.push((t.timestamp, t.key, t.namespace));
                Ok(())
            };
            let r = match domain {
                TimeDomain::EventTime => timers.advance_watermark(up_to, &mut on_timer),
                TimeDomain::ProcessingTime => timers.advance_processing_time(up_to, &mut on_timer),
            };
            ok(("fire", domain, up_to), r)?;
            let expected: Vec<(i64, u16, u8)> = due
                .iter()
                .filter(|t| range.contains(t.1))
                .map(|t| (t.0, t.3, t.4))
                .collect();
            prop_assert_eq!(fired, expected, "{:?} up to {} in {}", domain, up_to, range);
        }
        Ok(())
    }

    fn write_pending(&mut self) {
        if let Some((id, snapshots, model)) = self.pending.take() {
            let mut handles = Vec::new();
            for snapshot in snapshots {
                handles.extend(write_snapshot(self.h, snapshot, id).keyed);
            }
            self.completed = Some((handles, model));
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Register(event, k, n, ts) | Op::Delete(event, k, n, ts) => {
                let register = matches!(op, Op::Register(..));
                let domain = if *event {
                    TimeDomain::EventTime
                } else {
                    TimeDomain::ProcessingTime
                };
                let set = if *event {
                    &mut self.model.event
                } else {
                    &mut self.model.processing
                };
                let t = model_timer(*ts, *k, *n);
                if register {
                    set.insert(t);
                } else {
                    set.remove(&t);
                }
                let timers = self.owner(*k);
                let r = if register {
                    timers.register(domain, k, n, *ts)
                } else {
                    timers.delete(domain, k, n, *ts)
                };
                ok(op, r)?;
            }
            Op::Watermark(by) => {
                self.watermark += by;
                self.service_watermark = self.service_watermark.max(self.watermark);
                self.fire(TimeDomain::EventTime, self.service_watermark)?;
                for (_, _, timers) in &self.subtasks {
                    prop_assert_eq!(timers.current_watermark(), self.service_watermark);
                }
            }
            Op::Processing(by) => {
                self.fire(TimeDomain::ProcessingTime, self.watermark + by)?;
            }
            Op::Checkpoint => {
                self.write_pending();
                self.next_id += 1;
                let id = self.next_id;
                let mut snapshots = Vec::new();
                for (_, backend, _) in &self.subtasks {
                    snapshots.push(ok(op, backend.snapshot(CheckpointId(id)))?);
                }
                self.pending = Some((id, snapshots, self.model.clone()));
            }
            Op::Restore(p) => {
                self.write_pending();
                let (handles, model) = self.completed.clone().unwrap_or_default();
                self.start(*p, &handles)?;
                self.model = model;
                self.service_watermark = i64::MIN;
            }
        }
        Ok(())
    }

    /// Every pending timer, per subtask, equals the model's.
    fn verify(&self) -> Result<(), TestCaseError> {
        for (domain, model) in [
            (TimeDomain::EventTime, &self.model.event),
            (TimeDomain::ProcessingTime, &self.model.processing),
        ] {
            let mut found = Vec::new();
            for (range, _, timers) in &self.subtasks {
                ok(
                    "walk timers",
                    timers.for_each_timer(domain, &mut |t| {
                        found.push((
                            range.contains(kg(&t.key, MAX_P)),
                            t.timestamp,
                            t.key,
                            t.namespace,
                        ));
                        Ok(true)
                    }),
                )?;
                let next = ok("next timer", timers.next_timer(domain))?;
                let expected = model.iter().find(|t| range.contains(t.1)).map(|t| t.0);
                prop_assert_eq!(next, expected, "next {:?} timer in {}", domain, range);
            }
            prop_assert!(
                found.iter().all(|t| t.0),
                "a timer in a subtask not owning it"
            );
            let mut found: Vec<(i64, u16, u8)> =
                found.into_iter().map(|t| (t.1, t.2, t.3)).collect();
            found.sort();
            let mut expected: Vec<(i64, u16, u8)> = model.iter().map(|t| (t.0, t.3, t.4)).collect();
            expected.sort();
            prop_assert_eq!(found, expected, "pending {:?} timers", domain);
        }
        Ok(())
    }
}

fn run<H: Harness>(h: &H, p: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut run = Run {
        h,
        clock: clock(),
        subtasks: Vec::new(),
        model: Model::default(),
        watermark: 0,
        service_watermark: i64::MIN,
        next_id: 0,
        pending: None,
        completed: None,
    };
    run.start(p, &[])?;
    for op in ops {
        run.apply(op)?;
        run.verify()?;
    }
    run.apply(&Op::Checkpoint)?;
    run.apply(&Op::Restore(1))?;
    run.verify()?;
    // Everything left fires, in order.
    run.fire(TimeDomain::EventTime, i64::MAX)?;
    run.fire(TimeDomain::ProcessingTime, i64::MAX)?;
    run.verify()
}

/// Property test of timers against a `BTreeSet` model: random registrations and deletions
/// in both domains, watermarks and processing times, checkpoints and restores at random
/// parallelism. Fired timers and their order, pending timers and the next timer of every
/// subtask must match the model.
pub fn timers_model_check<H: Harness>(h: &H) {
    let mut config = Config::with_cases(48);
    config.failure_persistence = None;
    config.max_shrink_iters = 2_000;
    let mut runner = TestRunner::new(config);
    let strategy = (1..=3u32, vec(op(), 1..120));
    if let Err(e) = runner.run(&strategy, |(p, ops)| run(h, p, &ops)) {
        panic!("timer model check failed: {e}");
    }
}
