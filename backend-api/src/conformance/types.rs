//! Stable type identities: state written with one set of types restores wherever the same
//! identities are declared, whichever backend wrote it and whichever release of the
//! library (snapshots written before identities existed recorded `std::any::type_name`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::reducing::sum;
use super::value::Order;
use super::{Backend, Harness, MAX_P, checkpoint, clock, fresh, restore};
use crate::backend::{KeyedStateBackend, KeyedStateBackendExt, StateBackend};
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::handles::KeyedStateHandle;
use crate::keygroup::KeyGroupRange;
use crate::spi::format::Reader;
use crate::ttl::StateTtlConfig;

/// The keys of the typed states.
fn keys() -> impl Iterator<Item = (u64, String)> {
    (0..40u64).map(|i| (i, format!("key-{i}")))
}

fn ttl() -> StateTtlConfig {
    StateTtlConfig::new(Duration::from_secs(3600))
}

/// Writes, for every key of [`keys`], one state of each shape the identities cover:
/// primitives, strings, options, tuples, byte vectors, ordered maps, a serde struct, a
/// TTL state, a reducing state and event-time timers with a `u64` namespace.
pub(crate) fn write_typed_states<B: KeyedStateBackend<String> + ?Sized>(backend: &B) {
    let count = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
        .unwrap();
    let name = backend
        .value_state::<String, u64>(&ValueStateDescriptor::new("name"))
        .unwrap();
    let maybe = backend
        .value_state::<Option<i32>, ()>(&ValueStateDescriptor::new("maybe"))
        .unwrap();
    let events = backend
        .list_state::<(u32, String), ()>(&ListStateDescriptor::new("events"))
        .unwrap();
    let index = backend
        .map_state::<String, Vec<u8>, ()>(&MapStateDescriptor::new("index"))
        .unwrap();
    let tree = backend
        .value_state::<BTreeMap<u32, String>, ()>(&ValueStateDescriptor::new("tree"))
        .unwrap();
    let order = backend
        .value_state::<Order, ()>(&ValueStateDescriptor::new("order"))
        .unwrap();
    let session = backend
        .value_state::<bool, ()>(&ValueStateDescriptor::new("session").with_ttl(ttl()))
        .unwrap();
    let total = backend.reducing_state::<u64, ()>(&sum("total")).unwrap();
    let timers = backend.timer_service::<u64>("windows").unwrap();
    for (i, k) in keys() {
        count.update(&k, &(), i).unwrap();
        name.update(&k, &(i % 3), format!("name-{i}")).unwrap();
        maybe
            .update(&k, &(), (i % 2 == 0).then_some(-(i as i32)))
            .unwrap();
        events.add(&k, &(), (i as u32, format!("e{i}"))).unwrap();
        events
            .add(&k, &(), (i as u32 + 1, "second".into()))
            .unwrap();
        index
            .put(&k, &(), format!("i{i}"), vec![i as u8; (i % 5) as usize])
            .unwrap();
        tree.update(
            &k,
            &(),
            (0..i as u32 % 4).map(|j| (j, format!("t{j}"))).collect(),
        )
        .unwrap();
        order.update(&k, &(), Order::sample(i)).unwrap();
        session.update(&k, &(), i % 2 == 1).unwrap();
        total.add(&k, &(), i).unwrap();
        total.add(&k, &(), 1).unwrap();
        timers
            .register_event_time_timer(&k, &(i % 3), 1_000 + i as i64)
            .unwrap();
    }
}

/// Checks every state [`write_typed_states`] wrote, registered with the same types.
#[track_caller]
pub(crate) fn check_typed_states<B: KeyedStateBackend<String> + ?Sized>(backend: &B) {
    let count = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
        .unwrap();
    let name = backend
        .value_state::<String, u64>(&ValueStateDescriptor::new("name"))
        .unwrap();
    let maybe = backend
        .value_state::<Option<i32>, ()>(&ValueStateDescriptor::new("maybe"))
        .unwrap();
    let events = backend
        .list_state::<(u32, String), ()>(&ListStateDescriptor::new("events"))
        .unwrap();
    let index = backend
        .map_state::<String, Vec<u8>, ()>(&MapStateDescriptor::new("index"))
        .unwrap();
    let tree = backend
        .value_state::<BTreeMap<u32, String>, ()>(&ValueStateDescriptor::new("tree"))
        .unwrap();
    let order = backend
        .value_state::<Order, ()>(&ValueStateDescriptor::new("order"))
        .unwrap();
    let session = backend
        .value_state::<bool, ()>(&ValueStateDescriptor::new("session").with_ttl(ttl()))
        .unwrap();
    let total = backend.reducing_state::<u64, ()>(&sum("total")).unwrap();
    let timers = backend.timer_service::<u64>("windows").unwrap();
    for (i, k) in keys() {
        let range = backend.key_group_range();
        let kg = crate::keygroup::key_group_for_key(&k, backend.max_parallelism()).unwrap();
        if !range.contains(kg) {
            continue;
        }
        assert_eq!(count.get(&k, &()).unwrap(), Some(i), "count of {k}");
        assert_eq!(
            name.get(&k, &(i % 3)).unwrap(),
            Some(format!("name-{i}")),
            "name of {k}"
        );
        assert_eq!(
            maybe.get(&k, &()).unwrap(),
            Some((i % 2 == 0).then_some(-(i as i32))),
            "maybe of {k}"
        );
        assert_eq!(
            events.get(&k, &()).unwrap(),
            [(i as u32, format!("e{i}")), (i as u32 + 1, "second".into())],
            "events of {k}"
        );
        assert_eq!(
            index.get(&k, &(), &format!("i{i}")).unwrap(),
            Some(vec![i as u8; (i % 5) as usize]),
            "index of {k}"
        );
        let expected: BTreeMap<u32, String> =
            (0..i as u32 % 4).map(|j| (j, format!("t{j}"))).collect();
        assert_eq!(tree.get(&k, &()).unwrap(), Some(expected), "tree of {k}");
        assert_eq!(
            order.get(&k, &()).unwrap(),
            Some(Order::sample(i)),
            "order of {k}"
        );
        assert_eq!(
            session.get(&k, &()).unwrap(),
            Some(i % 2 == 1),
            "session of {k}"
        );
        assert_eq!(total.get(&k, &()).unwrap(), Some(i + 1), "total of {k}");
    }
    let mut fired = Vec::new();
    timers
        .advance_watermark(i64::MAX, &mut |t| {
            fired.push((t.timestamp, t.key, t.namespace));
            Ok(())
        })
        .unwrap();
    let mut expected: Vec<(i64, String, u64)> = keys()
        .filter(|(_, k)| {
            let kg = crate::keygroup::key_group_for_key(k, backend.max_parallelism()).unwrap();
            backend.key_group_range().contains(kg)
        })
        .map(|(i, k)| (1_000 + i as i64, k, i % 3))
        .collect();
    expected.sort();
    fired.sort();
    assert_eq!(fired, expected, "timers");
}

/// A snapshot of [`write_typed_states`] taken by the memory backend of release 0.1, whose
/// headers name every type with `std::any::type_name` (`alloc::string::String`,
/// `core::option::Option<i32>`, `alloc::vec::Vec<u8>`, ...): the handles of one subtask
/// over all 128 key groups, streams inline, in the handle format of `docs/format.md`.
const RUST_TYPE_NAMES: &[u8] = include_bytes!("rust-type-names.cshd");

/// The handles of [`RUST_TYPE_NAMES`].
fn rust_type_names_handles() -> Vec<KeyedStateHandle> {
    let mut r = Reader::new(RUST_TYPE_NAMES, "rust-type-names.cshd");
    crate::spi::format::handles::subtask(&mut r)
        .expect("decode the fixture's handles")
        .keyed
}

/// A snapshot written before stable type identities (types named by
/// `std::any::type_name`) restores into this backend with today's descriptors, at the
/// same parallelism and split over three subtasks.
pub fn restore_snapshot_with_rust_type_names<H: Harness>(h: &H) {
    let handles = rust_type_names_handles();
    let all = restore::<H, String>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), &handles)
        .expect("restore the snapshot with Rust type names");
    check_typed_states(&all);
    for range in [KeyGroupRange::new(0, 40), KeyGroupRange::new(41, 127)] {
        let part = restore::<H, String>(h, &clock(), MAX_P, range, &handles)
            .expect("restore part of the snapshot with Rust type names");
        check_typed_states(&part);
    }
}

/// A full snapshot of typed states round-trips through this backend: written, restored,
/// and checked with the same descriptors.
pub fn typed_states_roundtrip<H: Harness>(h: &H) {
    let backend: Backend<H, String> = fresh(h, &clock());
    write_typed_states(&backend);
    let state = checkpoint(h, &backend, 1);
    let restored =
        restore::<H, String>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), &state.keyed)
            .expect("restore typed states");
    check_typed_states(&restored);
}

/// The handles of a snapshot of [`write_typed_states`] from a fresh backend of `h`, with
/// every stream inline, in the subtask handle format: how `rust-type-names.cshd` was
/// written (by the memory backend, at commit `c696942`, before type identities).
#[doc(hidden)]
pub fn typed_states_fixture<H: Harness>(h: &H) -> Vec<u8> {
    use crate::handles::{KeyedStateHandle, StreamStateHandle, SubtaskState};
    let backend: Backend<H, String> = fresh(h, &clock());
    write_typed_states(&backend);
    let mut state = checkpoint(h, &backend, 1);
    for handle in &mut state.keyed {
        let KeyedStateHandle::KeyGroups(groups) = handle else {
            panic!("a full snapshot is key-group handles");
        };
        if let StreamStateHandle::File(file) = &groups.stream {
            let reader = h.reader().expect("a reader of the harness's files");
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut reader.open_file(file, 0..file.size).unwrap(),
                &mut bytes,
            )
            .unwrap();
            groups.stream = StreamStateHandle::Inline(bytes);
        }
    }
    let mut out = Vec::new();
    crate::spi::format::handles::put_subtask(
        &mut out,
        &SubtaskState {
            keyed: state.keyed,
            operator: Vec::new(),
        },
    );
    out
}

/// Takes a savepoint of typed states (and timers) from a fresh backend of `h`.
fn typed_savepoint<H: Harness>(h: &H) -> Vec<KeyedStateHandle> {
    let backend: Backend<H, String> = fresh(h, &clock());
    write_typed_states(&backend);
    let snapshot =
        crate::backend::CheckpointableBackend::savepoint(&backend, crate::CheckpointId(7))
            .expect("synchronous phase of a savepoint");
    let state = super::write_snapshot(h, snapshot, 7);
    for handle in &state.keyed {
        assert!(
            matches!(handle, KeyedStateHandle::KeyGroups(_)),
            "a savepoint is in the canonical key-group format, whatever the checkpoints are"
        );
    }
    state.keyed
}

/// A savepoint is a self-contained snapshot in the canonical format (key-group handles,
/// also from a backend whose checkpoints are incremental) that restores into this
/// backend, whole and split over two subtasks.
pub fn savepoint_is_canonical<H: Harness>(h: &H) {
    let handles = typed_savepoint(h);
    for range in [
        KeyGroupRange::all(MAX_P),
        KeyGroupRange::new(0, 63),
        KeyGroupRange::new(64, 127),
    ] {
        let restored =
            restore::<H, String>(h, &clock(), MAX_P, range, &handles).expect("restore a savepoint");
        check_typed_states(&restored);
    }
}

/// A savepoint taken by the backend of `from` restores into the backend of `to` (any
/// backend into any backend, Flink's canonical savepoint), whole and split over two
/// subtasks, with every typed state, TTL timestamp and timer. Not in
/// [`conformance_suite!`](crate::conformance_suite), which runs one backend: run it for
/// every pair of backends.
pub fn savepoint_moves_between_backends<A: Harness, B: Harness>(from: &A, to: &B) {
    let handles = typed_savepoint(from);
    for range in [
        KeyGroupRange::all(MAX_P),
        KeyGroupRange::new(0, 63),
        KeyGroupRange::new(64, 127),
    ] {
        let handles = crate::rescale::keyed_handles_for(&handles, range);
        let params = super::params(&clock(), MAX_P, range).restore(handles, from.reader());
        let restored = to
            .factory()
            .create_keyed_backend::<String>(params)
            .expect("restore another backend's savepoint");
        check_typed_states(&restored);
    }
}

/// Version 1 of a user type, as a job's first release declares it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ClickV1 {
    page: String,
}
crate::state_type!(ClickV1, "com.example.Click");

/// The same type renamed in Rust: it keeps its identity, so its state restores.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct PageClick {
    page: String,
}
crate::state_type!(PageClick, "com.example.Click");

/// Version 2: a field added, a new schema version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ClickV2 {
    page: String,
    at: u64,
}
crate::state_type!(ClickV2, "com.example.Click", version = 2);

/// A Rust type renamed (its identity kept) restores its state; a new schema version of the
/// type is refused with an `InvalidInput` error naming the state and both versions.
pub fn renamed_type_restores_and_new_version_is_named<H: Harness>(h: &H) {
    let backend: Backend<H, u64> = fresh(h, &clock());
    let clicks = backend
        .value_state::<ClickV1, ()>(&ValueStateDescriptor::new("clicks"))
        .unwrap();
    for k in 0..10u64 {
        clicks
            .update(
                &k,
                &(),
                ClickV1 {
                    page: format!("/p{k}"),
                },
            )
            .unwrap();
    }
    let state = checkpoint(h, &backend, 1);
    let restored =
        restore::<H, u64>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), &state.keyed).unwrap();
    let Err(err) = restored.value_state::<ClickV2, ()>(&ValueStateDescriptor::new("clicks")) else {
        panic!("version 2 of the type must not read version 1's bytes");
    };
    assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
    let message = err.to_string();
    for part in [
        "'clicks'",
        "schema version 1 of 'com.example.Click'",
        "version 2",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    let renamed = restored
        .value_state::<PageClick, ()>(&ValueStateDescriptor::new("clicks"))
        .unwrap();
    for k in 0..10u64 {
        assert_eq!(
            renamed.get(&k, &()).unwrap(),
            Some(PageClick {
                page: format!("/p{k}")
            })
        );
    }
}

/// Version 3 of the type, reached from version 2 by one more step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ClickV3 {
    url: String,
    at: u64,
    tags: Vec<String>,
}
crate::state_type!(ClickV3, "com.example.Click", version = 3);

fn v1(k: u64) -> ClickV1 {
    ClickV1 {
        page: format!("/p{k}"),
    }
}

fn v1_to_v2(old: ClickV1) -> ClickV2 {
    ClickV2 {
        page: old.page,
        at: 0,
    }
}

fn v2_to_v3(old: ClickV2) -> ClickV3 {
    ClickV3 {
        url: format!("https://example.com{}", old.page),
        at: old.at + 1,
        tags: vec!["migrated".into()],
    }
}

/// Writes version 1 of the click type as a value state, a list state, a map state's
/// values and a TTL value state, and snapshots them.
fn written_v1<H: Harness>(h: &H) -> Vec<KeyedStateHandle> {
    let backend: Backend<H, u64> = fresh(h, &clock());
    let last = backend
        .value_state::<ClickV1, ()>(&ValueStateDescriptor::new("last"))
        .unwrap();
    let history = backend
        .list_state::<ClickV1, ()>(&ListStateDescriptor::new("history"))
        .unwrap();
    let by_page = backend
        .map_state::<String, ClickV1, ()>(&MapStateDescriptor::new("by_page"))
        .unwrap();
    let recent = backend
        .value_state::<ClickV1, ()>(&ValueStateDescriptor::new("recent").with_ttl(ttl()))
        .unwrap();
    for k in 0..30u64 {
        last.update(&k, &(), v1(k)).unwrap();
        history.add(&k, &(), v1(k)).unwrap();
        history.add(&k, &(), v1(k + 100)).unwrap();
        by_page.put(&k, &(), format!("p{k}"), v1(k)).unwrap();
        recent.update(&k, &(), v1(k)).unwrap();
    }
    checkpoint(h, &backend, 1).keyed
}

/// Restored state whose values were written as version 1 of a type is read as version 2
/// through the migration registered on the descriptor (value, list elements, map values,
/// TTL values with their timestamps), and as version 3 through a chain of two steps; the
/// next snapshot holds the new version, which restores without any migration.
pub fn migration_on_restore<H: Harness>(h: &H) {
    let handles = written_v1(h);
    let restored =
        restore::<H, u64>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), &handles).unwrap();
    let last = restored
        .value_state::<ClickV2, ()>(&ValueStateDescriptor::new("last").migrate_from(v1_to_v2))
        .unwrap();
    let history = restored
        .list_state::<ClickV2, ()>(&ListStateDescriptor::new("history").migrate_from(v1_to_v2))
        .unwrap();
    let by_page = restored
        .map_state::<String, ClickV2, ()>(
            &MapStateDescriptor::new("by_page").migrate_from(v1_to_v2),
        )
        .unwrap();
    // Two steps: 1 -> 2 -> 3.
    let recent = restored
        .value_state::<ClickV3, ()>(
            &ValueStateDescriptor::new("recent")
                .with_ttl(ttl())
                .migrate::<ClickV1, ClickV2>(v1_to_v2)
                .migrate_from(v2_to_v3),
        )
        .unwrap();
    for k in 0..30u64 {
        assert_eq!(last.get(&k, &()).unwrap(), Some(v1_to_v2(v1(k))));
        assert_eq!(
            history.get(&k, &()).unwrap(),
            [v1_to_v2(v1(k)), v1_to_v2(v1(k + 100))]
        );
        assert_eq!(
            by_page.get(&k, &(), &format!("p{k}")).unwrap(),
            Some(v1_to_v2(v1(k)))
        );
        assert_eq!(
            recent.get(&k, &()).unwrap(),
            Some(v2_to_v3(v1_to_v2(v1(k))))
        );
    }
    history
        .add(
            &3,
            &(),
            ClickV2 {
                page: "/new".into(),
                at: 9,
            },
        )
        .unwrap();
    // The migrated state is snapshotted as the new version: no migration needed again.
    let again = checkpoint(h, &restored, 2).keyed;
    let second = restore::<H, u64>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), &again).unwrap();
    let history = second
        .list_state::<ClickV2, ()>(&ListStateDescriptor::new("history"))
        .unwrap();
    assert_eq!(history.get(&3, &()).unwrap().len(), 3);
    let recent = second
        .value_state::<ClickV3, ()>(&ValueStateDescriptor::new("recent").with_ttl(ttl()))
        .unwrap();
    assert_eq!(
        recent.get(&7, &()).unwrap(),
        Some(v2_to_v3(v1_to_v2(v1(7))))
    );
}

/// A migration that does not lead from the stored type to the descriptor's is refused
/// with an `InvalidInput` error naming the state, the stored identity and what to
/// register; the state is left as restored, so the right descriptor still reads it.
pub fn migration_without_a_path_is_named<H: Harness>(h: &H) {
    let handles = written_v1(h);
    let restored =
        restore::<H, u64>(h, &clock(), MAX_P, KeyGroupRange::all(MAX_P), &handles).unwrap();
    // Only 2 -> 3 registered; the state holds version 1.
    let Err(err) = restored
        .value_state::<ClickV3, ()>(&ValueStateDescriptor::new("last").migrate_from(v2_to_v3))
    else {
        panic!("no registered migration leads from version 1 to 3");
    };
    assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
    let message = err.to_string();
    for part in ["'last'", "'com.example.Click'", "migrate_from"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    let last = restored
        .value_state::<ClickV1, ()>(&ValueStateDescriptor::new("last"))
        .unwrap();
    assert_eq!(last.get(&4, &()).unwrap(), Some(v1(4)));
}
