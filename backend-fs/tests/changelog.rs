//! Changelog mode (incremental checkpoints) of the filesystem backend through the real
//! checkpoint store on the local filesystem: a materialization, then deltas of the changed
//! entries only (updates, removals, map entries, list appends), an aborted checkpoint whose
//! changes the next delta carries, a chain kept alive by retention after its first
//! checkpoint is pruned, restores (whole and rescaled) equal to a model, and a new
//! materialization once the chain is long.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    ChangelogStateHandle, CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams,
    KeyedStateBackendExt, KeyedStateHandle, ListState, ListStateDescriptor, MapState,
    MapStateDescriptor, StateBackend, StateReader, StateScope, ValueState, ValueStateDescriptor,
};
use cornerstone_backend_fs::{ChangelogOptions, FsKeyedStateBackend, FsStateBackend};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpoint, CompletedCheckpointStore, OperatorSpec,
};

const MAX_P: u32 = 128;
const KEYS: u64 = 20_000;

fn factory() -> FsStateBackend {
    FsStateBackend::new().incremental(ChangelogOptions::new().max_deltas(3))
}

/// The expected state: value, list and map per key.
#[derive(Default, Clone, PartialEq, Debug)]
struct Model {
    values: BTreeMap<u64, u64>,
    lists: BTreeMap<u64, Vec<u64>>,
    maps: BTreeMap<u64, BTreeMap<u32, u64>>,
}

struct Job {
    store: CheckpointStore,
    checkpoints: CompletedCheckpointStore,
    backend: FsKeyedStateBackend<u64>,
}

impl Job {
    /// Job `job` of a store on `dir`, and a backend of [`factory`] owning every key group.
    fn open(dir: &std::path::Path, config: CheckpointConfig) -> Self {
        let store = CheckpointStore::local(dir).unwrap();
        let checkpoints = CompletedCheckpointStore::open(&store, "job", config).unwrap();
        let backend = factory()
            .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P)))
            .unwrap();
        Job {
            store,
            checkpoints,
            backend,
        }
    }

    /// Checkpoint `id`: the snapshot written and committed; `confirm` notifies the backend.
    fn checkpoint(&self, id: u64, confirm: bool) -> (CompletedCheckpoint, ChangelogStateHandle) {
        let id = CheckpointId(id);
        let snapshot = self.backend.snapshot(id).unwrap();
        let mut pending = self.checkpoints.begin_checkpoint(id).unwrap();
        let state = snapshot.write(&*pending.stream_factory()).unwrap();
        let spec = OperatorSpec::new("op", "Op", 1, MAX_P);
        pending.add_subtask_state(&spec, 0, state).unwrap();
        let done = pending.commit().unwrap();
        if confirm {
            self.backend.notify_checkpoint_complete(id).unwrap();
        }
        let handle = changelog(&done);
        (done, handle)
    }
}

fn changelog(done: &CompletedCheckpoint) -> ChangelogStateHandle {
    match &done.metadata.operators[0].subtasks[&0].keyed[..] {
        [KeyedStateHandle::Changelog(h)] => h.clone(),
        other => panic!("a changelog handle expected, found {other:?}"),
    }
}

fn apply(
    backend: &FsKeyedStateBackend<u64>,
    model: &mut Model,
    change: impl Fn(u64) -> Op,
    keys: impl Iterator<Item = u64>,
) {
    let (values, lists, maps) = states(backend);
    for key in keys {
        match change(key) {
            Op::Put(v) => {
                values.update(&key, &(), v).unwrap();
                model.values.insert(key, v);
            }
            Op::Remove => {
                values.clear(&key, &()).unwrap();
                model.values.remove(&key);
                maps.clear(&key, &()).unwrap();
                model.maps.remove(&key);
            }
            Op::Append(v) => {
                lists.add(&key, &(), v).unwrap();
                model.lists.entry(key).or_default().push(v);
            }
            Op::MapPut(uk, v) => {
                maps.put(&key, &(), uk, v).unwrap();
                model.maps.entry(key).or_default().insert(uk, v);
            }
            Op::MapRemove(uk) => {
                maps.remove(&key, &(), &uk).unwrap();
                if let Some(m) = model.maps.get_mut(&key) {
                    m.remove(&uk);
                    if m.is_empty() {
                        model.maps.remove(&key);
                    }
                }
            }
        }
    }
}

/// The states the tests write: value `v`, list `l` and map `m`.
type States = (
    ValueState<u64, u64, ()>,
    ListState<u64, u64, ()>,
    MapState<u64, u32, u64, ()>,
);

/// The tests' [`States`] of `backend`.
fn states(backend: &FsKeyedStateBackend<u64>) -> States {
    (
        backend
            .value_state(&ValueStateDescriptor::new("v"))
            .unwrap(),
        backend.list_state(&ListStateDescriptor::new("l")).unwrap(),
        backend.map_state(&MapStateDescriptor::new("m")).unwrap(),
    )
}

enum Op {
    Put(u64),
    Remove,
    Append(u64),
    MapPut(u32, u64),
    MapRemove(u32),
}

/// The state of every key of `range` restored from `done` into a fresh backend.
fn restore(store: &CheckpointStore, done: &CompletedCheckpoint, range: KeyGroupRange) -> Model {
    let handles = done.metadata.operators[0].subtasks[&0].keyed.clone();
    let reader: Arc<dyn StateReader> = Arc::new(store.reader(&done.base_dir));
    read_back(&restored(handles, reader, range), range)
}

/// A backend owning `range`, restored from `handles`, its states not registered.
fn restored(
    handles: Vec<KeyedStateHandle>,
    reader: Arc<dyn StateReader>,
    range: KeyGroupRange,
) -> FsKeyedStateBackend<u64> {
    factory()
        .create_keyed_backend::<u64>(
            KeyedBackendParams::new(MAX_P, range).restore(handles, Some(reader)),
        )
        .unwrap()
}

/// The state of every key of `range` in `backend`.
fn read_back(backend: &FsKeyedStateBackend<u64>, range: KeyGroupRange) -> Model {
    let (values, lists, maps) = states(backend);
    let mut model = Model::default();
    for key in 0..KEYS {
        if !range.contains(key_group_for_key(&key, MAX_P).unwrap()) {
            continue;
        }
        if let Some(v) = values.get(&key, &()).unwrap() {
            model.values.insert(key, v);
        }
        let list = lists.get(&key, &()).unwrap();
        if !list.is_empty() {
            model.lists.insert(key, list);
        }
        let entries: BTreeMap<u32, u64> = maps.entries(&key, &()).unwrap().into_iter().collect();
        if !entries.is_empty() {
            model.maps.insert(key, entries);
        }
    }
    model
}

/// `model` restricted to the keys of `range`.
fn within(model: &Model, range: KeyGroupRange) -> Model {
    let keep = |k: &u64| range.contains(key_group_for_key(k, MAX_P).unwrap());
    Model {
        values: model
            .values
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (*k, *v))
            .collect(),
        lists: model
            .lists
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        maps: model
            .maps
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
    }
}

fn shared_paths(h: &ChangelogStateHandle) -> BTreeSet<String> {
    h.segments()
        .flat_map(|s| &s.parts)
        .filter_map(|p| p.stream.file())
        .map(|f| {
            assert_eq!(f.scope, StateScope::Shared, "{}", f.path);
            f.path.clone()
        })
        .collect()
}

#[test]
fn deltas_hold_only_the_changes_and_restore_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    // Every stream a file, so that sizes and liveness are those of files.
    let job = Job::open(dir.path(), CheckpointConfig::default().inline_threshold(0));
    let store = job.store.clone();
    let mut model = Model::default();
    apply(&job.backend, &mut model, Op::Put, 0..KEYS);
    apply(&job.backend, &mut model, Op::Append, 0..KEYS);
    apply(
        &job.backend,
        &mut model,
        |k| Op::MapPut((k % 3) as u32, k),
        0..KEYS,
    );
    apply(&job.backend, &mut model, |k| Op::MapPut(7, k), 0..KEYS);

    // 1: no chain yet, a materialization.
    let (_, first) = job.checkpoint(1, true);
    assert!(first.deltas.is_empty());
    let base_bytes = first.base.size();

    // 2: 1% of the keys changed, in every way.
    apply(
        &job.backend,
        &mut model,
        |k| Op::Put(k + 1_000_000),
        (0..KEYS).step_by(400),
    );
    apply(
        &job.backend,
        &mut model,
        |_| Op::Remove,
        (1..KEYS).step_by(401),
    );
    apply(&job.backend, &mut model, Op::Append, (2..KEYS).step_by(402));
    apply(
        &job.backend,
        &mut model,
        |_| Op::MapRemove(7),
        (3..KEYS).step_by(403),
    );
    apply(
        &job.backend,
        &mut model,
        |k| Op::MapPut(9, k),
        (4..KEYS).step_by(404),
    );
    let (_, second) = job.checkpoint(2, true);
    assert_eq!(second.base, first.base, "the delta extends the chain");
    assert_eq!(second.deltas.len(), 1);
    let delta = second.deltas[0].size();
    assert!(
        delta * 20 < base_bytes,
        "a delta of ~1% of the keys is {delta} bytes, the full snapshot {base_bytes}"
    );

    // 3 is written and committed, but never confirmed to the backend (an abort it heard
    // of): its changes are carried by 4's delta, which extends 2's chain.
    apply(
        &job.backend,
        &mut model,
        |k| Op::Put(k + 2_000_000),
        (5..KEYS).step_by(500),
    );
    let (_, third) = job.checkpoint(3, false);
    job.backend
        .notify_checkpoint_aborted(CheckpointId(3))
        .unwrap();
    assert_eq!(third.deltas.len(), 2);
    apply(&job.backend, &mut model, Op::Append, (6..KEYS).step_by(600));
    let (fourth_done, fourth) = job.checkpoint(4, true);
    assert_eq!(
        fourth
            .deltas
            .iter()
            .map(|d| d.checkpoint_id.0)
            .collect::<Vec<_>>(),
        [2, 4],
        "3's delta is not in the chain"
    );
    assert_eq!(
        restore(&store, &fourth_done, KeyGroupRange::all(MAX_P)),
        model
    );

    // 5 holds a third delta; checkpoints 1 to 4 are pruned (one retained), but the chain's
    // files stay alive: 5 references them.
    apply(
        &job.backend,
        &mut model,
        |k| Op::Put(k + 3_000_000),
        (7..KEYS).step_by(700),
    );
    let (fifth_done, fifth) = job.checkpoint(5, true);
    assert_eq!(fifth.deltas.len(), 3);
    assert_eq!(job.checkpoints.checkpoint_ids(), [CheckpointId(5)]);
    for path in shared_paths(&fifth) {
        assert!(
            dir.path().join("job").join(&path).is_file(),
            "{path} is gone"
        );
    }
    assert_eq!(
        restore(&store, &fifth_done, KeyGroupRange::all(MAX_P)),
        model
    );
    // Restored and left unregistered, the chain's states are written back by the next
    // checkpoint (a materialization) as the deltas leave them.
    let all = KeyGroupRange::all(MAX_P);
    let reader: Arc<dyn StateReader> = Arc::new(store.reader(&fifth_done.base_dir));
    let handles = fifth_done.metadata.operators[0].subtasks[&0].keyed.clone();
    let unregistered = restored(handles, reader, all);
    let storage = MemoryCheckpointStorage::new();
    let id = CheckpointId(100);
    let written = unregistered
        .snapshot(id)
        .unwrap()
        .write(&storage.stream_factory(id))
        .unwrap();
    let again = restored(written.keyed, Arc::new(storage), all);
    assert_eq!(read_back(&again, all), model);
    // A rescaled restore reads each key group range of base and deltas it owns.
    for index in 0..3 {
        let range = KeyGroupRange::for_subtask(MAX_P, 3, index).unwrap();
        assert_eq!(restore(&store, &fifth_done, range), within(&model, range));
    }

    // 6: the chain holds three deltas, the most: a new materialization, and once it is
    // retained alone, the old chain's files are deleted.
    apply(
        &job.backend,
        &mut model,
        |_| Op::Remove,
        (8..KEYS).step_by(800),
    );
    let (sixth_done, sixth) = job.checkpoint(6, true);
    assert!(sixth.deltas.is_empty());
    assert_eq!(sixth.base.checkpoint_id, CheckpointId(6));
    assert_eq!(
        restore(&store, &sixth_done, KeyGroupRange::all(MAX_P)),
        model
    );
    for path in shared_paths(&fifth) {
        assert!(
            !dir.path().join("job").join(&path).exists(),
            "{path} is kept"
        );
    }
    assert_eq!(job.backend.pending_changes().unwrap(), 0);
    apply(&job.backend, &mut model, Op::Put, 0..10);
    assert_eq!(job.backend.pending_changes().unwrap(), 10);
}

/// Savepoints stay full, self-contained snapshots, and leave the changes to the next delta.
/// A key group whose entries mostly changed since the last checkpoint is written whole by
/// the delta (updates beyond half its entries are not recorded one by one), and the
/// removals in it still are: the restore, whole or rescaled, is the state.
#[test]
fn much_changed_key_groups_are_written_whole_with_their_removals() {
    let dir = tempfile::tempdir().unwrap();
    let job = Job::open(dir.path(), CheckpointConfig::default());
    let mut model = Model::default();
    apply(&job.backend, &mut model, Op::Put, 0..KEYS);
    apply(&job.backend, &mut model, Op::Append, 0..KEYS / 2);
    apply(
        &job.backend,
        &mut model,
        |k| Op::MapPut((k % 3) as u32, k),
        0..KEYS,
    );
    let (_, first) = job.checkpoint(1, true);
    assert!(first.deltas.is_empty());

    // Every key changed: every 7th removed (value and map), the others updated, and a map
    // entry of every 5th removed.
    let change = |k: u64| {
        if k.is_multiple_of(7) {
            Op::Remove
        } else {
            Op::Put(k + 1)
        }
    };
    apply(&job.backend, &mut model, change, 0..KEYS);
    apply(
        &job.backend,
        &mut model,
        |k| Op::MapRemove((k % 3) as u32),
        (0..KEYS).step_by(5),
    );
    apply(&job.backend, &mut model, |k| Op::MapPut(1, k + 2), 0..KEYS);
    // One by one, the values and maps would hold 2 * KEYS changes.
    let pending = job.backend.pending_changes().unwrap();
    assert!(
        pending < (2 * KEYS * 3 / 4) as usize,
        "{pending} changes recorded"
    );
    let (done, second) = job.checkpoint(2, true);
    assert_eq!(second.deltas.len(), 1, "a delta, not a materialization");
    let all = KeyGroupRange::all(MAX_P);
    assert_eq!(restore(&job.store, &done, all), model);
    let half = KeyGroupRange::new(0, MAX_P / 2 - 1);
    assert_eq!(restore(&job.store, &done, half), within(&model, half));

    // That delta outgrew half the base: the next checkpoint materializes. The interval
    // after it records one by one again.
    let (_, third) = job.checkpoint(3, true);
    assert!(third.deltas.is_empty());
    apply(&job.backend, &mut model, Op::Put, (0..KEYS).step_by(100));
    assert_eq!(
        job.backend.pending_changes().unwrap(),
        (KEYS / 100) as usize
    );
    let (done, fourth) = job.checkpoint(4, true);
    assert_eq!(fourth.deltas.len(), 1);
    assert!(fourth.deltas[0].size() * 20 < second.deltas[0].size());
    assert_eq!(restore(&job.store, &done, all), model);
}

/// A confirmation can reach the backend late: after a newer checkpoint was taken over the
/// chain confirmed before, which holds the same changes and does not reference the
/// confirmed checkpoint's delta, so the store deletes that delta when the newer one
/// completes. The late confirmation releases its changes and the next checkpoint
/// materializes (a delta over the deleted one would be refused), unless the newer one is
/// confirmed first: then the next delta extends its chain. Each restores to the state.
#[test]
fn a_late_confirmation_never_leaves_a_chain_the_store_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let job = Job::open(dir.path(), CheckpointConfig::default());
    let mut model = Model::default();
    let all = KeyGroupRange::all(MAX_P);
    apply(&job.backend, &mut model, Op::Put, 0..KEYS);
    let (_, first) = job.checkpoint(1, true);
    assert!(first.deltas.is_empty());
    let round = |model: &mut Model, n: u64| {
        apply(
            &job.backend,
            model,
            |k| Op::Put(k + n),
            (n..KEYS).step_by(10),
        );
    };

    // Checkpoint 2 completes; its confirmation is on its way while checkpoint 3 is taken.
    round(&mut model, 2);
    let (_, second) = job.checkpoint(2, false);
    round(&mut model, 3);
    let (_, third) = job.checkpoint(3, false);
    assert_eq!(third.base, first.base);
    assert_eq!(third.deltas.len(), 1, "a delta over checkpoint 1's chain");
    // Committing 3 subsumed 2 (one checkpoint retained) and deleted its delta; then 2's
    // confirmation arrives, and releases the changes up to 2.
    for path in shared_paths(&second).difference(&shared_paths(&third)) {
        assert!(
            !dir.path().join("job").join(path).exists(),
            "{path} is kept"
        );
    }
    let pending = job.backend.pending_changes().unwrap();
    job.backend
        .notify_checkpoint_complete(CheckpointId(2))
        .unwrap();
    assert!(job.backend.pending_changes().unwrap() < pending);

    // 3's confirmation is later still: 4 materializes, and 5 extends it.
    round(&mut model, 4);
    let (done, fourth) = job.checkpoint(4, true);
    assert!(fourth.deltas.is_empty(), "a materialization");
    assert_eq!(fourth.base.checkpoint_id, CheckpointId(4));
    assert_eq!(restore(&job.store, &done, all), model);
    round(&mut model, 5);
    let (done, fifth) = job.checkpoint(5, true);
    assert_eq!((fifth.base.clone(), fifth.deltas.len()), (fourth.base, 1));
    assert_eq!(restore(&job.store, &done, all), model);

    // 6's confirmation is late, 7's is not: 8 extends 7's chain.
    round(&mut model, 6);
    job.checkpoint(6, false);
    round(&mut model, 7);
    let (_, seventh) = job.checkpoint(7, false);
    job.backend
        .notify_checkpoint_complete(CheckpointId(6))
        .unwrap();
    job.backend
        .notify_checkpoint_complete(CheckpointId(7))
        .unwrap();
    round(&mut model, 8);
    let (done, eighth) = job.checkpoint(8, true);
    assert_eq!(eighth.deltas[..seventh.deltas.len()], seventh.deltas[..]);
    assert_eq!(eighth.deltas.len(), seventh.deltas.len() + 1);
    assert_eq!(restore(&job.store, &done, all), model);
}

#[test]
fn a_savepoint_is_full_and_the_next_delta_still_holds_the_changes() {
    let backend = factory()
        .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P)))
        .unwrap();
    let storage = MemoryCheckpointStorage::new();
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    values.update(&1, &(), 1).unwrap();
    let first = backend.snapshot(CheckpointId(1)).unwrap();
    first
        .write(&storage.stream_factory(CheckpointId(1)))
        .unwrap();
    backend.notify_checkpoint_complete(CheckpointId(1)).unwrap();
    values.update(&2, &(), 2).unwrap();
    let savepoint = backend.savepoint(CheckpointId(2)).unwrap();
    let written = savepoint
        .write(&storage.stream_factory(CheckpointId(2)))
        .unwrap();
    assert!(matches!(
        written.keyed[..],
        [KeyedStateHandle::KeyGroups(_)]
    ));
    assert_eq!(backend.pending_changes().unwrap(), 1);
    let third = backend.snapshot(CheckpointId(3)).unwrap();
    let written = third
        .write(&storage.stream_factory(CheckpointId(3)))
        .unwrap();
    let [KeyedStateHandle::Changelog(chain)] = &written.keyed[..] else {
        panic!("a changelog handle expected");
    };
    assert_eq!(chain.deltas.len(), 1);
    let restored = factory()
        .create_keyed_backend::<u64>(
            KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P))
                .restore(written.keyed.clone(), Some(Arc::new(storage.clone()))),
        )
        .unwrap();
    let values = restored
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    assert_eq!(values.get(&1, &()).unwrap(), Some(1));
    assert_eq!(values.get(&2, &()).unwrap(), Some(2));
}

/// The memory backend's inline snapshots cannot hold a chain: refused when it opens.
#[test]
fn changelog_mode_needs_snapshot_streams() {
    let options = cornerstone_backend_memory::MemoryStateBackend::new()
        .options()
        .with_changelog(ChangelogOptions::new());
    let err = cornerstone_backend_memory::HeapKeyedStateBackend::<u64>::open(
        KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P)),
        options,
    )
    .unwrap_err();
    assert!(err.to_string().contains("changelog mode"), "{err}");
}

/// `list` calls a delta incremental and a materialization full, `show` gives each chain
/// (its base, length and the bytes uploaded), and `verify` checks every file of the chain:
/// a base file lost under a delta is reported.
#[test]
fn inspection_shows_the_chain_and_verify_checks_all_of_it() {
    use cornerstone_checkpoint_store::inspect::{ProblemKind, list, show, verify};

    let dir = tempfile::tempdir().unwrap();
    let config = CheckpointConfig::default()
        .inline_threshold(0)
        .num_retained(2);
    let job = Job::open(dir.path(), config);
    let store = job.store.clone();
    let mut model = Model::default();
    apply(&job.backend, &mut model, Op::Put, 0..KEYS);
    let (_, first) = job.checkpoint(1, true);
    apply(&job.backend, &mut model, Op::Append, 0..100);
    let (_, second) = job.checkpoint(2, true);

    let listed = list(&store, "job").unwrap();
    let kinds: Vec<_> = listed.iter().map(|s| (s.id, s.incremental)).collect();
    assert_eq!(
        kinds,
        [
            (Some(CheckpointId(1)), Some(false)),
            (Some(CheckpointId(2)), Some(true))
        ]
    );
    // What 2 wrote is its delta: the base is shared with 1.
    assert_eq!(listed[1].written_bytes, Some(second.latest().size()));

    let details = show(&store, "job/chk-2").unwrap();
    let handle = &details.operators[0].subtasks[0].handles[0];
    assert_eq!(handle.kind, "changelog");
    let chain = handle.chain.unwrap();
    assert_eq!(
        (chain.base_checkpoint, chain.deltas, chain.uploaded_bytes),
        (CheckpointId(1), 1, second.latest().size())
    );
    assert_eq!(
        chain.chain_bytes,
        first.base.size() + second.latest().size()
    );
    assert_eq!(handle.state_names, ["l", "m", "v"]);

    assert!(verify(&store, "job/chk-2", |_, _| {}).unwrap().is_ok());
    let base = first.base.parts[0].stream.file().unwrap().path.clone();
    std::fs::remove_file(dir.path().join("job").join(&base)).unwrap();
    let report = verify(&store, "job/chk-2", |_, _| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::MissingFile);
    assert!(
        report.problems[0].path.ends_with(&base),
        "{:?}",
        report.problems
    );
}
