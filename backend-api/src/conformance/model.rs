//! A model-based property test: random operations on value, list and map state over a
//! small key space, interleaved with checkpoints and restores at random parallelism, run
//! against the backend and against `BTreeMap`s, then compared.

use std::collections::BTreeMap;
use std::fmt::Debug;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{Backend, Harness, clock, create, kg, params, restore, write_snapshot};
use crate::backend::{
    AsyncSnapshot, CheckpointableBackend, KeyedStateBackend, KeyedStateBackendExt,
};
use crate::clock::ManualClock;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::error::Result;
use crate::handles::{CheckpointId, KeyedStateHandle};
use crate::keygroup::{KeyGroupRange, operator_index_for_key_group};
use crate::state::{ListState, MapState, ValueState};

/// The max parallelism of the model test.
const MAX_P: u32 = 32;
/// Keys are `0..KEYS`.
const KEYS: u8 = 24;
/// Namespaces are `0..NAMESPACES`.
const NAMESPACES: u8 = 2;

/// One operation of a run.
#[derive(Debug, Clone)]
enum Op {
    ValuePut(u8, u8, u32),
    ValueClear(u8, u8),
    ValueGet(u8, u8),
    ListAdd(u8, u8, u32),
    ListAddAll(u8, u8, Vec<u32>),
    ListUpdate(u8, u8, Vec<u32>),
    ListClear(u8, u8),
    ListGet(u8, u8),
    MapPut(u8, u8, u8, u32),
    MapRemove(u8, u8, u8),
    MapClear(u8, u8),
    MapGet(u8, u8),
    /// The synchronous phase of a checkpoint on every subtask; the asynchronous phase runs
    /// at the next checkpoint or restore.
    Checkpoint,
    /// Restore every subtask from the last checkpoint, at this parallelism.
    Restore(u32),
    /// Compare every key and namespace.
    Verify,
}

fn op() -> impl Strategy<Value = Op> {
    let key = || 0..KEYS;
    let ns = || 0..NAMESPACES;
    let value = || 0..1_000u32;
    let values = || vec(0..1_000u32, 0..4);
    prop_oneof![
        6 => (key(), ns(), value()).prop_map(|(k, n, v)| Op::ValuePut(k, n, v)),
        2 => (key(), ns()).prop_map(|(k, n)| Op::ValueClear(k, n)),
        2 => (key(), ns()).prop_map(|(k, n)| Op::ValueGet(k, n)),
        4 => (key(), ns(), value()).prop_map(|(k, n, v)| Op::ListAdd(k, n, v)),
        2 => (key(), ns(), values()).prop_map(|(k, n, v)| Op::ListAddAll(k, n, v)),
        2 => (key(), ns(), values()).prop_map(|(k, n, v)| Op::ListUpdate(k, n, v)),
        1 => (key(), ns()).prop_map(|(k, n)| Op::ListClear(k, n)),
        2 => (key(), ns()).prop_map(|(k, n)| Op::ListGet(k, n)),
        5 => (key(), ns(), 0..4u8, value()).prop_map(|(k, n, u, v)| Op::MapPut(k, n, u, v)),
        3 => (key(), ns(), 0..4u8).prop_map(|(k, n, u)| Op::MapRemove(k, n, u)),
        1 => (key(), ns()).prop_map(|(k, n)| Op::MapClear(k, n)),
        2 => (key(), ns()).prop_map(|(k, n)| Op::MapGet(k, n)),
        3 => Just(Op::Checkpoint),
        3 => (1..=4u32).prop_map(Op::Restore),
        1 => Just(Op::Verify),
    ]
}

/// What the backend should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    values: BTreeMap<(u8, u8), u32>,
    lists: BTreeMap<(u8, u8), Vec<u32>>,
    maps: BTreeMap<(u8, u8), BTreeMap<u8, u32>>,
}

fn value_d() -> ValueStateDescriptor<u32> {
    ValueStateDescriptor::new("value")
}
fn list_d() -> ListStateDescriptor<u32> {
    ListStateDescriptor::new("list")
}
fn map_d() -> MapStateDescriptor<u8, u32> {
    MapStateDescriptor::new("map")
}

/// One subtask. States are registered on first use, so restored state that a subtask never
/// touches is carried over unregistered.
struct Subtask<B> {
    backend: B,
    range: KeyGroupRange,
    value: Option<ValueState<u8, u32, u8>>,
    list: Option<ListState<u8, u32, u8>>,
    map: Option<MapState<u8, u8, u32, u8>>,
}

impl<B: KeyedStateBackend<u8>> Subtask<B> {
    fn new(backend: B) -> Self {
        Subtask {
            range: backend.key_group_range(),
            backend,
            value: None,
            list: None,
            map: None,
        }
    }

    fn value(&mut self) -> Result<ValueState<u8, u32, u8>> {
        if self.value.is_none() {
            self.value = Some(self.backend.value_state(&value_d())?);
        }
        Ok(self.value.clone().expect("registered"))
    }

    fn list(&mut self) -> Result<ListState<u8, u32, u8>> {
        if self.list.is_none() {
            self.list = Some(self.backend.list_state(&list_d())?);
        }
        Ok(self.list.clone().expect("registered"))
    }

    fn map(&mut self) -> Result<MapState<u8, u8, u32, u8>> {
        if self.map.is_none() {
            self.map = Some(self.backend.map_state(&map_d())?);
        }
        Ok(self.map.clone().expect("registered"))
    }
}

/// Turns a backend error into a test failure naming what was done.
fn ok<T>(what: impl Debug, r: Result<T>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what:?} failed: {e}")))
}

/// A checkpoint whose synchronous phase ran: its id, the snapshots and the model then.
type Pending = (u64, Vec<Box<dyn AsyncSnapshot>>, Model);

struct Run<'h, H: Harness> {
    h: &'h H,
    clock: ManualClock,
    subtasks: Vec<Subtask<Backend<H, u8>>>,
    model: Model,
    next_id: u64,
    pending: Option<Pending>,
    completed: Option<(Vec<KeyedStateHandle>, Model)>,
}

impl<H: Harness> Run<'_, H> {
    fn subtask(&mut self, key: u8) -> &mut Subtask<Backend<H, u8>> {
        let p = self.subtasks.len() as u32;
        let i = operator_index_for_key_group(MAX_P, p, kg(&key, MAX_P));
        &mut self.subtasks[i as usize]
    }

    fn start(&mut self, p: u32, handles: &[KeyedStateHandle]) -> Result<(), TestCaseError> {
        let mut subtasks = Vec::new();
        for i in 0..p {
            let range = KeyGroupRange::for_subtask(MAX_P, p, i).expect("subtask range");
            let backend = if handles.is_empty() {
                create::<H, u8>(self.h, params(&self.clock, MAX_P, range))
            } else {
                restore::<H, u8>(self.h, &self.clock, MAX_P, range, handles)
            };
            subtasks.push(Subtask::new(ok(("restore subtask", i, p), backend)?));
        }
        self.subtasks = subtasks;
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
        let m = &mut self.model;
        match op {
            Op::ValuePut(k, n, v) => {
                m.values.insert((*k, *n), *v);
                let s = ok(op, self.subtask(*k).value())?;
                ok(op, s.update(k, n, *v))?;
            }
            Op::ValueClear(k, n) => {
                m.values.remove(&(*k, *n));
                let s = ok(op, self.subtask(*k).value())?;
                ok(op, s.clear(k, n))?;
            }
            Op::ValueGet(k, n) => {
                let expected = m.values.get(&(*k, *n)).copied();
                let s = ok(op, self.subtask(*k).value())?;
                prop_assert_eq!(ok(op, s.get(k, n))?, expected, "{:?}", op);
            }
            Op::ListAdd(k, n, v) => {
                m.lists.entry((*k, *n)).or_default().push(*v);
                let s = ok(op, self.subtask(*k).list())?;
                ok(op, s.add(k, n, *v))?;
            }
            Op::ListAddAll(k, n, vs) => {
                if !vs.is_empty() {
                    m.lists.entry((*k, *n)).or_default().extend(vs);
                }
                let s = ok(op, self.subtask(*k).list())?;
                ok(op, s.add_all(k, n, vs.clone()))?;
            }
            Op::ListUpdate(k, n, vs) => {
                if vs.is_empty() {
                    m.lists.remove(&(*k, *n));
                } else {
                    m.lists.insert((*k, *n), vs.clone());
                }
                let s = ok(op, self.subtask(*k).list())?;
                ok(op, s.update(k, n, vs.clone()))?;
            }
            Op::ListClear(k, n) => {
                m.lists.remove(&(*k, *n));
                let s = ok(op, self.subtask(*k).list())?;
                ok(op, s.clear(k, n))?;
            }
            Op::ListGet(k, n) => {
                let expected = m.lists.get(&(*k, *n)).cloned().unwrap_or_default();
                let s = ok(op, self.subtask(*k).list())?;
                prop_assert_eq!(ok(op, s.get(k, n))?, expected, "{:?}", op);
            }
            Op::MapPut(k, n, u, v) => {
                m.maps.entry((*k, *n)).or_default().insert(*u, *v);
                let s = ok(op, self.subtask(*k).map())?;
                ok(op, s.put(k, n, *u, *v))?;
            }
            Op::MapRemove(k, n, u) => {
                if let Some(map) = m.maps.get_mut(&(*k, *n)) {
                    map.remove(u);
                    if map.is_empty() {
                        m.maps.remove(&(*k, *n));
                    }
                }
                let s = ok(op, self.subtask(*k).map())?;
                ok(op, s.remove(k, n, u))?;
            }
            Op::MapClear(k, n) => {
                m.maps.remove(&(*k, *n));
                let s = ok(op, self.subtask(*k).map())?;
                ok(op, s.clear(k, n))?;
            }
            Op::MapGet(k, n) => {
                let expected = m.maps.get(&(*k, *n)).cloned().unwrap_or_default();
                let s = ok(op, self.subtask(*k).map())?;
                for u in 0..4u8 {
                    let value = ok(op, s.get(k, n, &u))?;
                    prop_assert_eq!(value, expected.get(&u).copied(), "{:?} user key {}", op, u);
                }
                prop_assert_eq!(ok(op, s.is_empty(k, n))?, expected.is_empty(), "{:?}", op);
                let entries: BTreeMap<u8, u32> = ok(op, s.entries(k, n))?.into_iter().collect();
                prop_assert_eq!(entries, expected, "{:?}", op);
            }
            Op::Checkpoint => {
                self.write_pending();
                self.next_id += 1;
                let id = self.next_id;
                let mut snapshots = Vec::new();
                for s in &self.subtasks {
                    snapshots.push(ok(op, s.backend.snapshot(CheckpointId(id)))?);
                }
                self.pending = Some((id, snapshots, self.model.clone()));
            }
            Op::Restore(p) => {
                self.write_pending();
                let (handles, model) = self.completed.clone().unwrap_or_default();
                self.start(*p, &handles)?;
                self.model = model;
            }
            Op::Verify => self.verify()?,
        }
        Ok(())
    }

    /// Compares every key and namespace, and checks that every subtask holds only keys of
    /// its key groups.
    fn verify(&mut self) -> Result<(), TestCaseError> {
        let model = self.model.clone();
        for ns in 0..NAMESPACES {
            let (mut values, mut lists, mut maps) = (Vec::new(), Vec::new(), Vec::new());
            for s in &mut self.subtasks {
                let range = s.range;
                let v = ok("register value", s.value())?;
                let l = ok("register list", s.list())?;
                let m = ok("register map", s.map())?;
                for (keys, found) in [
                    (&mut values, ok("value keys", v.state_keys(&ns))?),
                    (&mut lists, ok("list keys", l.state_keys(&ns))?),
                    (&mut maps, ok("map keys", m.state_keys(&ns))?),
                ] {
                    for k in found {
                        prop_assert!(
                            range.contains(kg(&k, MAX_P)),
                            "key {} in a subtask owning {}",
                            k,
                            range
                        );
                        keys.push(k);
                    }
                }
            }
            values.sort_unstable();
            lists.sort_unstable();
            maps.sort_unstable();
            let keys_of = |m: Vec<(u8, u8)>| -> Vec<u8> {
                m.into_iter().filter(|x| x.1 == ns).map(|x| x.0).collect()
            };
            prop_assert_eq!(
                values,
                keys_of(model.values.keys().copied().collect()),
                "value keys of ns {}",
                ns
            );
            prop_assert_eq!(
                lists,
                keys_of(model.lists.keys().copied().collect()),
                "list keys of ns {}",
                ns
            );
            prop_assert_eq!(
                maps,
                keys_of(model.maps.keys().copied().collect()),
                "map keys of ns {}",
                ns
            );
        }
        for k in 0..KEYS {
            for n in 0..NAMESPACES {
                self.apply(&Op::ValueGet(k, n))?;
                self.apply(&Op::ListGet(k, n))?;
                self.apply(&Op::MapGet(k, n))?;
            }
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
        next_id: 0,
        pending: None,
        completed: None,
    };
    run.start(p, &[])?;
    for op in ops {
        run.apply(op)?;
    }
    run.verify()?;
    // A last checkpoint, restored at parallelism 1, holds everything.
    run.apply(&Op::Checkpoint)?;
    run.apply(&Op::Restore(1))?;
    run.verify()
}

/// Model-based property test: random operations on value, list and map state over `u8`
/// keys and two namespaces, with checkpoints and restores at random parallelism, compared
/// against `BTreeMap`s.
pub fn model_check<H: Harness>(h: &H) {
    let mut config = Config::with_cases(64);
    config.failure_persistence = None;
    config.max_shrink_iters = 2_000;
    let mut runner = TestRunner::new(config);
    let strategy = (1..=3u32, vec(op(), 1..150));
    if let Err(e) = runner.run(&strategy, |(p, ops)| run(h, p, &ops)) {
        panic!("model check failed: {e}");
    }
}
