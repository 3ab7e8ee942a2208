//! Upgrading a job from a checkpoint its "version 1" wrote, on every backend.
//!
//! `testdata/upgrade-v1/` is a retained checkpoint (`upgrade-v1/chk-1`) of version 1 of a
//! job, written by [`write_v1`] (regenerate with
//! `cargo test -p cornerstone-examples --test upgrade -- --ignored`):
//! - operator `clicks`, parallelism 2, keyed by `u64` with states `last` (`example.Click`,
//!   schema version 1), `session` (`example.Session`) and `count` (`u64`);
//! - operator `legacy`, parallelism 1, with a value state `x`.
//!
//! Version 2 of the job restores it with every change an upgrade brings at once: a field
//! added to `example.Click` (version 2, migrated with `migrate_from`), the Rust type of
//! `example.Session` renamed (its identity kept), the state `count` renamed to `visits`,
//! the operator `legacy` removed (refused, naming it, unless non-restored state is allowed)
//! and `clicks` rescaled from 2 to 3 subtasks. Each backend (memory, fs, RocksDB) restores
//! it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, ErrorKind, KeyGroupRange, KeyedBackendParams,
    KeyedStateBackendExt, ManualClock, SharedClock, StateBackend, StateReader,
    ValueStateDescriptor, state_type,
};
use cornerstone_backend_fs::FsStateBackend;
use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_checkpoint_store::{CheckpointStore, ClaimMode};
use cornerstone_coordinator::{
    AckOutcome, CheckpointCoordinator, CoordinatorConfig, OperatorSpec, SubtaskMetrics, TaskId,
};
use serde::{Deserialize, Serialize};

const MAX_P: u32 = 128;
const KEYS: u64 = 300;

// ---- Version 1 of the job's types. ----

/// A click, schema version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClickV1 {
    page: String,
}
state_type!(ClickV1, "example.Click");

/// A session, as version 1 names the Rust type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    pages: u32,
}
state_type!(Session, "example.Session");

// ---- Version 2. ----

/// A click, schema version 2: a field added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Click {
    page: String,
    referrer: Option<String>,
}
state_type!(Click, "example.Click", version = 2);

/// The session type renamed in Rust; its identity is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserSession {
    user: String,
    pages: u32,
}
state_type!(UserSession, "example.Session");

fn click_v1(k: u64) -> ClickV1 {
    ClickV1 {
        page: format!("/p/{k}"),
    }
}

fn session(k: u64) -> (String, u32) {
    (format!("user-{}", k % 17), (k % 9) as u32)
}

fn upgrade(old: ClickV1) -> Click {
    Click {
        page: old.page,
        referrer: None,
    }
}

fn clock() -> SharedClock {
    Arc::new(ManualClock::new(1_000))
}

/// The keys of `range`.
fn keys_in(range: KeyGroupRange) -> impl Iterator<Item = u64> {
    (0..KEYS).filter(move |k| range.contains(key_group_for_key(k, MAX_P).unwrap()))
}

/// Version 1 of the job writes its checkpoint `upgrade-v1/chk-1` under `root`.
fn write_v1(root: &Path) {
    let store = CheckpointStore::local(root).unwrap();
    let operators = vec![
        OperatorSpec::new("clicks", "Clicks", 2, MAX_P),
        OperatorSpec::new("legacy", "Legacy", 1, MAX_P),
    ];
    let coordinator = CheckpointCoordinator::open(
        &store,
        "upgrade-v1",
        CoordinatorConfig::default(),
        operators,
        clock(),
    )
    .unwrap();
    let t = coordinator.trigger().unwrap().triggered().unwrap();
    let mut outcomes = Vec::new();
    for subtask in 0..2 {
        let range = KeyGroupRange::for_subtask(MAX_P, 2, subtask).unwrap();
        let backend = MemoryStateBackend::new()
            .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, range))
            .unwrap();
        let last = backend
            .value_state::<ClickV1, ()>(&ValueStateDescriptor::new("last"))
            .unwrap();
        let sessions = backend
            .value_state::<Session, ()>(&ValueStateDescriptor::new("session"))
            .unwrap();
        let count = backend
            .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
            .unwrap();
        for k in keys_in(range) {
            last.update(&k, &(), click_v1(k)).unwrap();
            let (user, pages) = session(k);
            sessions.update(&k, &(), Session { user, pages }).unwrap();
            count.update(&k, &(), k * 3).unwrap();
        }
        let state = backend.snapshot(t.id).unwrap().write(&*t.streams).unwrap();
        let task = TaskId::new("clicks", subtask);
        outcomes.push(
            coordinator
                .acknowledge(t.id, &task, state, SubtaskMetrics::default())
                .unwrap(),
        );
    }
    let all = KeyGroupRange::all(MAX_P);
    let legacy = MemoryStateBackend::new()
        .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, all))
        .unwrap();
    let x = legacy
        .value_state::<u64, ()>(&ValueStateDescriptor::new("x"))
        .unwrap();
    for k in 0..KEYS {
        x.update(&k, &(), k).unwrap();
    }
    let state = legacy.snapshot(t.id).unwrap().write(&*t.streams).unwrap();
    let task = TaskId::new("legacy", 0);
    outcomes.push(
        coordinator
            .acknowledge(t.id, &task, state, SubtaskMetrics::default())
            .unwrap(),
    );
    assert!(
        matches!(outcomes.last(), Some(AckOutcome::Completed(_))),
        "{outcomes:?}"
    );
}

/// Version 2 of the job restores the checkpoint of version 1 under `root` into backends of
/// `factory`.
fn restore_v2<F: StateBackend>(root: &Path, factory: &F) {
    let store = CheckpointStore::local(root).unwrap();
    let point = store.resolve("upgrade-v1/chk-1").unwrap();
    let operators = vec![OperatorSpec::new("clicks", "Clicks", 3, MAX_P)];
    let open = |config: CoordinatorConfig, job: &str| {
        CheckpointCoordinator::open(&store, job, config, operators.clone(), clock()).unwrap()
    };

    // The removed operator's state is refused, naming it.
    let strict = open(CoordinatorConfig::default(), "upgrade-v2-strict");
    let err = strict
        .restore_from(point.clone(), ClaimMode::NoClaim)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.context("operators"), Some("legacy"), "{err}");

    let job = open(
        CoordinatorConfig::default().allow_non_restored_state(true),
        "upgrade-v2",
    );
    let restored = job.restore_from(point, ClaimMode::NoClaim).unwrap();
    assert_eq!(restored.mapping.restored, ["clicks"]);
    assert_eq!(restored.mapping.not_restored, ["legacy"]);
    let clicks = restored.checkpoint.metadata.operator("clicks").unwrap();
    let reader = Arc::clone(&restored.reader) as Arc<dyn StateReader>;

    let mut seen = 0;
    for subtask in 0..3 {
        let range = KeyGroupRange::for_subtask(MAX_P, 3, subtask).unwrap();
        let params = KeyedBackendParams::new(MAX_P, range)
            .restore(clicks.keyed_handles_for(range), Some(Arc::clone(&reader)))
            .rename_state("count", "visits");
        let backend = factory.create_keyed_backend::<u64>(params).unwrap();
        let last = backend
            .value_state::<Click, ()>(&ValueStateDescriptor::new("last").migrate_from(upgrade))
            .unwrap();
        let sessions = backend
            .value_state::<UserSession, ()>(&ValueStateDescriptor::new("session"))
            .unwrap();
        let visits = backend
            .value_state::<u64, ()>(&ValueStateDescriptor::new("visits"))
            .unwrap();
        for k in keys_in(range) {
            assert_eq!(
                last.get(&k, &()).unwrap(),
                Some(upgrade(click_v1(k))),
                "key {k}"
            );
            let (user, pages) = session(k);
            assert_eq!(
                sessions.get(&k, &()).unwrap(),
                Some(UserSession { user, pages }),
                "key {k}"
            );
            assert_eq!(visits.get(&k, &()).unwrap(), Some(k * 3), "key {k}");
            seen += 1;
        }
        // Version 2 checkpoints its upgraded state as it is now.
        backend.snapshot(CheckpointId(2)).unwrap();
    }
    assert_eq!(seen, KEYS, "every key restored exactly once");
}

/// The committed fixture, copied into a fresh directory.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    cornerstone_testkit::store::copy_dir(&committed(), dir.path());
    dir
}

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/upgrade-v1")
}

/// The committed fixture's `_metadata` exists (a missing fixture would make every case
/// restore nothing).
#[test]
fn fixture_is_committed() {
    assert!(
        committed().join("upgrade-v1/chk-1/_metadata").is_file(),
        "testdata/upgrade-v1 is missing: regenerate it with --ignored"
    );
}

#[test]
fn version_2_restores_version_1_on_the_memory_backend() {
    let dir = fixture();
    restore_v2(dir.path(), &MemoryStateBackend::new());
}

#[test]
fn version_2_restores_version_1_on_the_fs_backend() {
    let dir = fixture();
    restore_v2(dir.path(), &FsStateBackend::new());
}

#[cfg(feature = "rocksdb")]
#[test]
fn version_2_restores_version_1_on_the_rocksdb_backend() {
    let dir = fixture();
    let work = tempfile::tempdir().unwrap();
    let factory = cornerstone_backend_rocksdb::RocksDbStateBackend::new().working_dir(work.path());
    restore_v2(dir.path(), &factory);
}

/// The generator still writes what version 2 restores (so regenerating the fixture is
/// always possible).
#[test]
fn generator_writes_what_version_2_restores() {
    let dir = tempfile::tempdir().unwrap();
    write_v1(dir.path());
    restore_v2(dir.path(), &MemoryStateBackend::new());
}

/// Rewrites `testdata/upgrade-v1` with version 1 of the job.
#[test]
#[ignore = "writes testdata/upgrade-v1; run with --ignored to regenerate the fixture"]
fn write_upgrade_v1_fixture() {
    let target = committed();
    if target.exists() {
        std::fs::remove_dir_all(&target).unwrap();
    }
    write_v1(&target);
}
