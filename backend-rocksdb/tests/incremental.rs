//! Incremental checkpoints with the real checkpoint store, full snapshots across backends,
//! and the lifecycle of working directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    KeyedStateHandle, ListStateDescriptor, MapStateDescriptor, StateBackend, StateReader,
    StateScope, TimeDomain, ValueStateDescriptor,
};
use cornerstone_backend_memory::{
    ChangelogOptions, HeapBackendOptions, HeapKeyedStateBackend, HeapSnapshotStorage,
    MemoryStateBackend,
};
use cornerstone_backend_rocksdb::{RocksDbKeyedStateBackend, RocksDbStateBackend};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, ClaimMode, CompletedCheckpointStore,
};

const MAX_P: u32 = 128;

fn params() -> KeyedBackendParams {
    KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P))
}

/// Hash-indexed memtables here, beside the default plain skiplist in the incremental
/// conformance suite.
fn factory(dir: &std::path::Path) -> RocksDbStateBackend {
    RocksDbStateBackend::new()
        .working_dir(dir)
        .memtable_hash_buckets(1024)
        .block_cache_size(8 << 20)
        .write_buffer_size(4 << 20)
}

fn value_d() -> ValueStateDescriptor<u64> {
    ValueStateDescriptor::new("value")
}
fn list_d() -> ListStateDescriptor<String> {
    ListStateDescriptor::new("list")
}
fn map_d() -> MapStateDescriptor<u32, u64> {
    MapStateDescriptor::new("map")
}

/// The incremental handle of a checkpoint's only subtask.
fn incremental_handle(
    done: &cornerstone_checkpoint_store::CompletedCheckpoint,
) -> cornerstone_backend_api::IncrementalStateHandle {
    let op = &done.metadata.operators[0];
    match &op.subtasks[&0].keyed[0] {
        KeyedStateHandle::Incremental(h) => h.clone(),
        other => panic!("expected an incremental handle, got {other:?}"),
    }
}

/// Six incremental checkpoints with `num_retained = 2` in a local checkpoint store: later
/// checkpoints reuse the SST files of earlier ones, retention deletes no file that a
/// retained checkpoint references, and the newest restores exactly the state it captured.
#[test]
fn chain_of_incremental_checkpoints_restores_from_newest_and_retention_keeps_references() {
    let work = tempfile::tempdir().unwrap();
    let chk = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(chk.path()).unwrap();
    let job = CompletedCheckpointStore::open(
        &store,
        "job-a",
        CheckpointConfig::default()
            .num_retained(2)
            .inline_threshold(0),
    )
    .unwrap();
    let factory = factory(work.path());
    let backend = factory.create_keyed_backend::<u64>(params()).unwrap();
    let value = backend.value_state::<u64, ()>(&value_d()).unwrap();
    let list = backend.list_state::<String, ()>(&list_d()).unwrap();
    let map = backend.map_state::<u32, u64, ()>(&map_d()).unwrap();

    let mut model_v: BTreeMap<u64, u64> = BTreeMap::new();
    let mut model_l: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut model_m: BTreeMap<u64, BTreeMap<u32, u64>> = BTreeMap::new();
    let mut reused_total = 0;
    for round in 1..=6u64 {
        // Round 1 writes 3,000 keys, later rounds change 100 of them and delete a few.
        let keys: Vec<u64> = if round == 1 {
            (0..3_000).collect()
        } else {
            (0..100).map(|i| (i * 31 + round * 7) % 3_000).collect()
        };
        for &k in &keys {
            value.update(&k, &(), k * 10 + round).unwrap();
            model_v.insert(k, k * 10 + round);
            list.add(&k, &(), format!("r{round}")).unwrap();
            model_l.entry(k).or_default().push(format!("r{round}"));
            map.put(&k, &(), round as u32, k).unwrap();
            model_m.entry(k).or_default().insert(round as u32, k);
        }
        if round > 1 {
            let gone = round * 13;
            value.clear(&gone, &()).unwrap();
            model_v.remove(&gone);
            map.clear(&gone, &()).unwrap();
            model_m.remove(&gone);
        }
        let id = CheckpointId(round);
        let mut pending = job.begin_checkpoint(id).unwrap();
        let snapshot = backend.snapshot(id).unwrap();
        // Changes after the synchronous phase are not in this checkpoint.
        value.update(&0, &(), 999_999).unwrap();
        let state = snapshot.write(&*pending.stream_factory()).unwrap();
        value.update(&0, &(), model_v[&0]).unwrap();
        pending
            .add_subtask_state(&OperatorSpec::new("op", "op", 1, MAX_P), 0, state)
            .unwrap();
        let done = pending.commit().unwrap();
        backend.notify_checkpoint_complete(id).unwrap();
        let h = incremental_handle(&done);
        assert_eq!(h.checkpoint_id, id);
        assert_eq!(h.backend_id, backend.backend_id());
        assert!(!h.shared.is_empty() && !h.private.is_empty());
        assert!(h.private.iter().any(|f| f.local_name == "CURRENT"));
        assert!(
            h.private
                .iter()
                .any(|f| f.local_name.starts_with("MANIFEST"))
        );
        for f in &h.shared {
            assert!(f.local_name.ends_with(".sst"), "{}", f.local_name);
            assert_eq!(f.handle.file().unwrap().scope, StateScope::Shared);
        }
        for f in &h.private {
            assert_eq!(f.handle.file().unwrap().scope, StateScope::Exclusive);
        }
        if round > 1 {
            // Only new SSTs were uploaded: the others are the previous checkpoint's files.
            let previous = job
                .checkpoints()
                .iter()
                .find(|c| c.id() == CheckpointId(round - 1))
                .map(incremental_handle)
                .unwrap();
            let before: BTreeSet<&str> = previous
                .shared
                .iter()
                .map(|f| f.handle.file().unwrap().path.as_str())
                .collect();
            let reused = h
                .shared
                .iter()
                .filter(|f| before.contains(f.handle.file().unwrap().path.as_str()))
                .count();
            reused_total += reused;
        }
        // Retention: at most two retained, and every file they reference exists.
        let retained = job.checkpoints();
        assert!(retained.len() <= 2);
        assert_eq!(retained.last().unwrap().id(), id);
        for c in &retained {
            for f in c.metadata.files() {
                let path = chk.path().join("job-a").join(&f.path);
                assert!(
                    path.is_file(),
                    "checkpoint {} references {} which retention deleted",
                    c.id(),
                    f.path
                );
            }
        }
    }
    assert!(reused_total > 0, "no SST file was ever reused");
    // Subsumed checkpoints are gone, and shared/ holds only referenced files.
    assert!(!chk.path().join("job-a/chk-1").exists());
    assert!(!chk.path().join("job-a/chk-4").exists());
    let referenced: BTreeSet<String> = job
        .checkpoints()
        .iter()
        .flat_map(|c| {
            c.metadata
                .files()
                .into_iter()
                .map(|f| f.path.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    for entry in std::fs::read_dir(chk.path().join("job-a/shared")).unwrap() {
        let name = format!("shared/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(referenced.contains(&name), "{name} leaked in shared/");
    }

    // Restore from the newest, through the store's reader (a new job claiming it).
    let latest = job.latest().unwrap();
    assert_eq!(latest.id(), CheckpointId(6));
    let reader: Arc<dyn StateReader> = Arc::new(job.restore(&latest, ClaimMode::Claim).unwrap());
    let handles = latest.metadata.operators[0].subtasks[&0].keyed.clone();
    drop(backend);
    let restored = factory
        .create_keyed_backend::<u64>(params().restore(handles, Some(reader)))
        .unwrap();
    let rv = restored.value_state::<u64, ()>(&value_d()).unwrap();
    let rl = restored.list_state::<String, ()>(&list_d()).unwrap();
    let rm = restored.map_state::<u32, u64, ()>(&map_d()).unwrap();
    let mut keys = rv.state_keys(&()).unwrap();
    keys.sort_unstable();
    assert_eq!(keys, model_v.keys().copied().collect::<Vec<_>>());
    for (k, v) in &model_v {
        assert_eq!(rv.get(k, &()).unwrap(), Some(*v), "value of {k}");
    }
    for (k, l) in &model_l {
        assert_eq!(&rl.get(k, &()).unwrap(), l, "list of {k}");
    }
    for k in 0..3_000u64 {
        let mut entries = rm.entries(&k, &()).unwrap();
        entries.sort_unstable();
        let expected: Vec<(u32, u64)> = model_m
            .get(&k)
            .map(|m| m.iter().map(|(a, b)| (*a, *b)).collect())
            .unwrap_or_default();
        assert_eq!(entries, expected, "map of {k}");
    }
}

fn fill<B: KeyedStateBackendExt<u64>>(backend: &B) {
    let v = backend.value_state::<u64, u64>(&value_d()).unwrap();
    let l = backend.list_state::<String, ()>(&list_d()).unwrap();
    let m = backend.map_state::<u32, u64, ()>(&map_d()).unwrap();
    for k in 0..500u64 {
        v.update(&k, &(k % 3), k).unwrap();
        l.add_all(&k, &(), vec![format!("a{k}"), format!("b{k}")])
            .unwrap();
        m.put_all(&k, &(), vec![(1, k), (2, k + 1)]).unwrap();
    }
    let t = backend.timer_service::<u64>("window").unwrap();
    for k in 0..500u64 {
        t.register_event_time_timer(&k, &(k % 3), k as i64 - 250)
            .unwrap();
        t.register_processing_time_timer(&k, &0, 10_000 + k as i64)
            .unwrap();
    }
}

fn check<B: KeyedStateBackendExt<u64>>(backend: &B) {
    let v = backend.value_state::<u64, u64>(&value_d()).unwrap();
    let l = backend.list_state::<String, ()>(&list_d()).unwrap();
    let m = backend.map_state::<u32, u64, ()>(&map_d()).unwrap();
    for k in 0..500u64 {
        assert_eq!(v.get(&k, &(k % 3)).unwrap(), Some(k));
        assert_eq!(v.get(&k, &((k + 1) % 3)).unwrap(), None);
        assert_eq!(l.get(&k, &()).unwrap(), [format!("a{k}"), format!("b{k}")]);
        let mut e = m.entries(&k, &()).unwrap();
        e.sort_unstable();
        assert_eq!(e, vec![(1, k), (2, k + 1)]);
    }
    assert_eq!(l.state_keys(&()).unwrap().len(), 500);
    let t = backend.timer_service::<u64>("window").unwrap();
    for (domain, expected) in [
        (
            TimeDomain::EventTime,
            (0..500u64)
                .map(|k| (k as i64 - 250, k, k % 3))
                .collect::<Vec<_>>(),
        ),
        (
            TimeDomain::ProcessingTime,
            (0..500u64).map(|k| (10_000 + k as i64, k, 0)).collect(),
        ),
    ] {
        let mut timers = Vec::new();
        t.for_each_timer(domain, &mut |timer| {
            timers.push((timer.timestamp, timer.key, timer.namespace));
            Ok(true)
        })
        .unwrap();
        timers.sort_unstable();
        assert_eq!(timers, expected, "{domain:?} timers");
        assert_eq!(t.next_timer(domain).unwrap(), Some(expected[0].0));
    }
}

/// Everything a backend filled by [`fill`] (and changed since) holds: values, lists, maps
/// and timers of both domains, sorted.
type Contents = (
    Vec<(u64, u64, u64)>,
    Vec<(u64, Vec<String>)>,
    Vec<(u64, Vec<(u32, u64)>)>,
    Vec<(bool, i64, u64, u64)>,
);

fn contents<B: KeyedStateBackendExt<u64>>(backend: &B) -> Contents {
    let v = backend.value_state::<u64, u64>(&value_d()).unwrap();
    let l = backend.list_state::<String, ()>(&list_d()).unwrap();
    let m = backend.map_state::<u32, u64, ()>(&map_d()).unwrap();
    let (mut values, mut lists, mut maps) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..500u64 {
        for ns in 0..3 {
            if let Some(value) = v.get(&k, &ns).unwrap() {
                values.push((k, ns, value));
            }
        }
        let list = l.get(&k, &()).unwrap();
        if !list.is_empty() {
            lists.push((k, list));
        }
        let mut entries = m.entries(&k, &()).unwrap();
        entries.sort_unstable();
        if !entries.is_empty() {
            maps.push((k, entries));
        }
    }
    let t = backend.timer_service::<u64>("window").unwrap();
    let mut timers = Vec::new();
    for domain in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
        t.for_each_timer(domain, &mut |timer| {
            let event = domain == TimeDomain::EventTime;
            timers.push((event, timer.timestamp, timer.key, timer.namespace));
            Ok(true)
        })
        .unwrap();
    }
    timers.sort_unstable();
    (values, lists, maps, timers)
}

/// A heap backend's changelog (a full snapshot, then deltas of updates, removals, maps
/// changed entry by entry and cleared, list appends, timers deleted and added) restores
/// into the RocksDB backend to the same state as into a heap backend, which is the state
/// the chain was written from: the format says what a delta is, not who wrote it.
#[test]
fn a_heap_changelog_restores_into_rocksdb() {
    let work = tempfile::tempdir().unwrap();
    let options = HeapBackendOptions::new("fs", HeapSnapshotStorage::Streams)
        .with_changelog(ChangelogOptions::new());
    let storage = MemoryCheckpointStorage::new();
    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    let heap = HeapKeyedStateBackend::<u64>::open(params(), options).unwrap();
    fill(&heap);
    let write = |id: u64| {
        let id = CheckpointId(id);
        let state = heap
            .snapshot(id)
            .unwrap()
            .write(&storage.stream_factory(id))
            .unwrap();
        heap.notify_checkpoint_complete(id).unwrap();
        state.keyed
    };
    write(1);
    let v = heap.value_state::<u64, u64>(&value_d()).unwrap();
    let l = heap.list_state::<String, ()>(&list_d()).unwrap();
    let m = heap.map_state::<u32, u64, ()>(&map_d()).unwrap();
    let t = heap.timer_service::<u64>("window").unwrap();
    for k in (0..500u64).step_by(7) {
        v.update(&k, &(k % 3), k * 10).unwrap();
    }
    for k in (1..500u64).step_by(11) {
        v.clear(&k, &(k % 3)).unwrap();
        l.clear(&k, &()).unwrap();
        m.clear(&k, &()).unwrap();
    }
    for k in (2..500u64).step_by(13) {
        m.remove(&k, &(), &1).unwrap();
        m.put(&k, &(), 9, k).unwrap();
        l.add(&k, &(), format!("c{k}")).unwrap();
    }
    for k in (3..500u64).step_by(17) {
        t.delete_event_time_timer(&k, &(k % 3), k as i64 - 250)
            .unwrap();
        t.register_event_time_timer(&k, &(k % 3), 5_000 + k as i64)
            .unwrap();
    }
    write(2);
    for k in (4..500u64).step_by(19) {
        v.update(&k, &(k % 3), 1).unwrap();
        m.remove(&k, &(), &1).unwrap();
        m.remove(&k, &(), &2).unwrap();
    }
    let handles = write(3);
    match &handles[..] {
        [KeyedStateHandle::Changelog(h)] => assert_eq!(h.deltas.len(), 2),
        other => panic!("a changelog handle expected, got {other:?}"),
    }
    let expected = contents(&heap);
    let into_heap = HeapKeyedStateBackend::<u64>::open(
        params().restore(handles.clone(), Some(reader.clone())),
        options,
    )
    .unwrap();
    assert_eq!(contents(&into_heap), expected);
    let into_rocks = factory(work.path())
        .create_keyed_backend::<u64>(params().restore(handles, Some(reader)))
        .unwrap();
    assert_eq!(contents(&into_rocks), expected);
}

/// A full snapshot of the RocksDB backend restores into the heap backend, and a heap
/// snapshot into the RocksDB backend: one format, one restore path.
#[test]
fn full_snapshots_restore_across_rocksdb_and_heap_backends() {
    let work = tempfile::tempdir().unwrap();
    let rocks = factory(work.path()).incremental(false);
    let heap = MemoryStateBackend::new();
    let storage = MemoryCheckpointStorage::new();
    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());

    let from_rocks = rocks.create_keyed_backend::<u64>(params()).unwrap();
    fill(&from_rocks);
    let handles = from_rocks
        .snapshot(CheckpointId(1))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(1)))
        .unwrap()
        .keyed;
    assert!(matches!(handles[0], KeyedStateHandle::KeyGroups(_)));
    let into_heap = heap
        .create_keyed_backend::<u64>(params().restore(handles.clone(), Some(reader.clone())))
        .unwrap();
    check(&into_heap);
    assert_eq!(
        into_heap.registered_states(),
        from_rocks.registered_states()
    );

    let from_heap = heap.create_keyed_backend::<u64>(params()).unwrap();
    fill(&from_heap);
    let handles = from_heap
        .snapshot(CheckpointId(2))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(2)))
        .unwrap()
        .keyed;
    let into_rocks = rocks
        .create_keyed_backend::<u64>(params().restore(handles, None))
        .unwrap();
    check(&into_rocks);
    // And a restored RocksDB backend snapshots incrementally too.
    let inc = factory(work.path());
    let handles = into_rocks
        .snapshot(CheckpointId(3))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(3)))
        .unwrap()
        .keyed;
    let again = inc
        .create_keyed_backend::<u64>(params().restore(handles, Some(reader)))
        .unwrap();
    check(&again);
}

/// A working directory is removed when the backend is dropped; a directory left by a
/// crashed process does not disturb a new backend.
#[test]
fn working_directories_are_removed_and_leftovers_are_harmless() {
    let work = tempfile::tempdir().unwrap();
    // What a crash leaves: a working directory with a database and a snapshot in it.
    let stale = work.path().join("rocksdb-crashed");
    std::fs::create_dir_all(stale.join("db")).unwrap();
    std::fs::write(stale.join("db/CURRENT"), b"garbage").unwrap();
    std::fs::write(stale.join("db/LOCK"), b"").unwrap();
    let factory = factory(work.path());
    let backend: RocksDbKeyedStateBackend<u64> =
        factory.create_keyed_backend::<u64>(params()).unwrap();
    let dir = backend.working_dir().to_path_buf();
    assert!(dir.starts_with(work.path()) && dir.is_dir());
    let v = backend.value_state::<u64, ()>(&value_d()).unwrap();
    v.update(&1, &(), 1).unwrap();
    let storage = MemoryCheckpointStorage::new();
    let snapshot = backend.snapshot(CheckpointId(1)).unwrap();
    drop(v);
    drop(backend);
    // The pending snapshot keeps the directory until it is written.
    assert!(dir.is_dir());
    snapshot
        .write(&storage.stream_factory(CheckpointId(1)))
        .unwrap();
    assert!(
        !dir.exists(),
        "working directory left behind: {}",
        dir.display()
    );
    // A second backend in the same root works.
    let other = factory.create_keyed_backend::<u64>(params()).unwrap();
    let v = other.value_state::<u64, ()>(&value_d()).unwrap();
    v.update(&2, &(), 2).unwrap();
    assert_eq!(v.get(&2, &()).unwrap(), Some(2));
}

/// After changing 1% of the keys, an incremental checkpoint uploads a small fraction of
/// what a full snapshot of the same state writes, and references the unchanged files.
#[test]
fn incremental_checkpoint_after_changing_one_percent_uploads_little() {
    const KEYS: u64 = 50_000;
    let work = tempfile::tempdir().unwrap();
    let factory = factory(work.path());
    let backend = factory.create_keyed_backend::<u64>(params()).unwrap();
    let v = backend.value_state::<u64, ()>(&value_d()).unwrap();
    for k in 0..KEYS {
        v.update(&k, &(), k).unwrap();
    }
    let storage = MemoryCheckpointStorage::new();
    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    let write = |id: u64| {
        let before = storage.total_size();
        let state = backend
            .snapshot(CheckpointId(id))
            .unwrap()
            .write(&storage.stream_factory(CheckpointId(id)))
            .unwrap();
        backend
            .notify_checkpoint_complete(CheckpointId(id))
            .unwrap();
        (state, storage.total_size() - before)
    };
    let (_, first) = write(1);
    for k in (0..KEYS).step_by(100) {
        v.update(&k, &(), k + 1).unwrap();
    }
    let (second, uploaded) = write(2);
    let full = factory
        .clone()
        .incremental(false)
        .create_keyed_backend::<u64>(params().restore(second.keyed.clone(), Some(reader)))
        .unwrap();
    let full_size = full
        .snapshot(CheckpointId(3))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(3)))
        .unwrap()
        .state_size();
    eprintln!(
        "{KEYS} keys, 1% changed: incremental upload {uploaded} B = {:.2}% of the full snapshot \
         ({full_size} B); first checkpoint {first} B",
        uploaded as f64 * 100.0 / full_size as f64
    );
    assert!(
        uploaded * 20 <= full_size,
        "incremental upload {uploaded} B is more than 5% of the full snapshot {full_size} B \
         (first checkpoint {first} B)"
    );
    let rv = full.value_state::<u64, ()>(&value_d()).unwrap();
    assert_eq!(rv.get(&100, &()).unwrap(), Some(101));
    assert_eq!(rv.get(&101, &()).unwrap(), Some(101));
}

/// `canonical_snapshot` rewrites an incremental snapshot (values, lists and timers) in the
/// canonical key-group format, with the key type it recorded: the memory backend restores
/// it, at another parallelism too.
#[test]
fn incremental_snapshot_rewritten_in_the_canonical_format() {
    let dir = tempfile::tempdir().unwrap();
    let rocks = factory(dir.path()).incremental(true);
    let backend = rocks.create_keyed_backend::<String>(params()).unwrap();
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
        .unwrap();
    let lists = backend.list_state::<String, ()>(&list_d()).unwrap();
    let timers = backend.timer_service::<u64>("t").unwrap();
    for k in 0..200u64 {
        let key = format!("k{k}");
        values.update(&key, &(), k).unwrap();
        lists.add(&key, &(), format!("a{k}")).unwrap();
        timers
            .register_event_time_timer(&key, &k, 1_000 + k as i64)
            .unwrap();
    }
    let storage = MemoryCheckpointStorage::new();
    let state = backend
        .snapshot(CheckpointId(3))
        .unwrap()
        .write(&storage.stream_factory(CheckpointId(3)))
        .unwrap();
    let KeyedStateHandle::Incremental(h) = &state.keyed[0] else {
        panic!("an incremental snapshot");
    };
    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    let out = MemoryCheckpointStorage::new();
    let canonical = rocks
        .canonical_snapshot(h, Some(reader), &out.stream_factory(CheckpointId(3)))
        .unwrap();
    assert!(matches!(canonical, KeyedStateHandle::KeyGroups(_)));
    let out_reader: Arc<dyn StateReader> = Arc::new(out.clone());
    let mut seen = 0;
    for subtask in 0..2 {
        let range = KeyGroupRange::for_subtask(MAX_P, 2, subtask).unwrap();
        let restored = MemoryStateBackend::new()
            .create_keyed_backend::<String>(KeyedBackendParams::new(MAX_P, range).restore(
                cornerstone_backend_api::rescale::keyed_handles_for([&canonical], range),
                Some(Arc::clone(&out_reader)),
            ))
            .unwrap();
        let values = restored
            .value_state::<u64, ()>(&ValueStateDescriptor::new("value"))
            .unwrap();
        let lists = restored.list_state::<String, ()>(&list_d()).unwrap();
        let timers = restored.timer_service::<u64>("t").unwrap();
        for k in 0..200u64 {
            let key = format!("k{k}");
            let kg = cornerstone_backend_api::keygroup::key_group_for_key(&key, MAX_P).unwrap();
            if range.contains(kg) {
                assert_eq!(values.get(&key, &()).unwrap(), Some(k));
                assert_eq!(lists.get(&key, &()).unwrap(), [format!("a{k}")]);
                seen += 1;
            }
        }
        assert_eq!(
            timers.num_timers(TimeDomain::EventTime).unwrap() as u64,
            (0..200u64)
                .filter(|k| range.contains(
                    cornerstone_backend_api::keygroup::key_group_for_key(&format!("k{k}"), MAX_P)
                        .unwrap()
                ))
                .count() as u64
        );
    }
    assert_eq!(seen, 200);
}
