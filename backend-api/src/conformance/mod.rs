//! The conformance suite that every keyed state backend runs. **Not semver-stable**: cases
//! are added, renamed and tightened as the contract is pinned down.
//!
//! A backend crate runs the whole suite from an integration test, one `#[test]` per case, so
//! a failure names the case:
//!
//! ```ignore
//! // backend-memory/tests/conformance.rs
//! use cornerstone_backend_api::conformance::MemoryStorageHarness;
//! use cornerstone_backend_memory::MemoryStateBackend;
//! cornerstone_backend_api::conformance_suite!(MemoryStorageHarness::new(MemoryStateBackend::new()));
//! ```
//!
//! A backend that cannot run every case lists the cases it runs with
//! `conformance_suite!(@each harness; case_a, case_b)`. Cases that depend on an optional
//! capability ask the [`Harness`] and skip out loud (they print why) when it is missing.
//!
//! Every case is a `pub fn case<H: Harness>(h: &H)` that panics on failure. The harness is
//! built anew for every test, so cases do not share storage.
//!
//! # Topics
//! - `value`, `list`, `map`, `reducing`: the semantics of every state kind, with namespaces;
//! - `registration`: names, descriptors and conflicts, parameter checks;
//! - `keygroups`: key-group ranges and isolation;
//! - `merging`: namespace merges in every arrangement, list state around empty lists;
//! - `iteration`: state changed while iterating a map or walking keys, keys per namespace,
//!   absent and cleared state;
//! - `ttl`: time-to-live with a [`ManualClock`]; `ttl_kinds`: every kind with a restore
//!   between steps; `ttl_merge`: namespace merges keep the stored timestamps;
//! - `snapshot`: round trips, the synchronous/asynchronous split, failed writes;
//!   `concurrent`: overlapping asynchronous phases, one blocked in storage I/O;
//! - `compat`: restoring with incompatible descriptors; `upgrade`: states renamed or
//!   dropped on restore;
//! - `corruption`: damaged snapshots are detected, never panic;
//! - `rescale`: restores at another parallelism;
//! - `operator`: operator list, union and broadcast state;
//! - `timers`: timer services (order, deduplication, deletion, registration while firing,
//!   both time domains); `timers_snapshot`: timers in snapshots and rescaling;
//!   `timer_model`: a property test of timers against a `BTreeSet`;
//! - `model`: a model-based property test against a `BTreeMap`.
//!
//! # Flink's tests and these cases
//!
//! Each test of Flink's `StateBackendTestBase` (66), `OperatorStateBackendTest`
//! (10) and `TtlStateTestBase` (16), 92 in all, and the cases that state its
//! behaviour here, or why it does not apply (28 do not: Java's serializers, nulls, default
//! values, queryable state, metrics, cancellation). Keep it in step when either
//! side changes. The tests are in apache/flink,
//! `flink-runtime/src/test/java/org/apache/flink/runtime/state/` (`ttl/` for the last).
//!
//! | `StateBackendTestBase` | cases | note |
//! | --- | --- | --- |
//! | `testEnableStateLatencyTracking` | — | metrics: no latency tracking |
//! | `testKeyGroupedInternalPriorityQueue` | `timers_fire_in_order`, `timers_deduplicate`, `timers_delete`, `timers_snapshot_roundtrip`, `timers_model_check` | the queue is used through `TimerService` |
//! | `testKeyGroupedInternalPriorityQueueAddAll` | `timers_rescale_1_to_3`, `timers_rescale_4_to_2` | no bulk add: restores fill the queue per key group |
//! | `testGetKeys` | `state_keys_per_namespace_every_kind`, `value_window_namespaces_and_state_keys` |  |
//! | `testGetKeysAndNamespaces` | `state_keys_per_namespace_every_kind` | keys per namespace; the API has no walk of (key, namespace) pairs |
//! | `testBackendUsesRegisteredKryoDefaultSerializer` | — | Kryo |
//! | `testBackendUsesRegisteredKryoDefaultSerializerUsingGetOrCreate` | — | Kryo |
//! | `testBackendUsesRegisteredKryoSerializer` | — | Kryo |
//! | `testBackendUsesRegisteredKryoSerializerUsingGetOrCreate` | — | Kryo |
//! | `testKryoRegisteringRestoreResilienceWithRegisteredType` | — | Kryo |
//! | `testKryoRegisteringRestoreResilienceWithDefaultSerializer` | — | Kryo |
//! | `testKryoRegisteringRestoreResilienceWithRegisteredSerializer` | — | Kryo |
//! | `testKryoRestoreResilienceWithDifferentRegistrationOrder` | — | Kryo |
//! | `testPojoRestoreResilienceWithDifferentRegistrationOrder` | — | POJO serializer; serde types: `snapshot_roundtrip_string_keys_struct_values` |
//! | `testValueState` | `snapshot_roundtrip_value`, `snapshot_excludes_later_updates` |  |
//! | `testValueStateWorkWithTtl` | `ttl_on_create_and_write` | mutable Java values do not exist here |
//! | `testValueStateRace` | — | queryable state (serialized reads from another thread) |
//! | `testMultipleValueStates` | `clear_of_one_key_keeps_others`, `snapshot_roundtrip_value` |  |
//! | `testValueStateNullUpdate` | `absent_and_cleared_state_across_restore` | no nulls: `clear` is the update to absent |
//! | `testListState` | `snapshot_roundtrip_list`, `snapshot_excludes_later_list_adds` |  |
//! | `testListStateAddNull` | — | nulls |
//! | `testListStateAddAllNullEntries` | — | nulls |
//! | `testListStateAddAllNull` | — | nulls |
//! | `testListStateUpdateNullEntries` | — | nulls |
//! | `testListStateUpdateNull` | — | nulls |
//! | `testListStateAPIs` | `list_api_with_empty_lists`, `list_get_add_add_all_update_clear` |  |
//! | `testListStateMerging` | `list_merge_every_arrangement`, `list_merge_namespaces` |  |
//! | `testReducingState` | `snapshot_roundtrip_reducing_and_aggregating` |  |
//! | `testReducingStateAddAndGet` | `reducing_add_get_clear` |  |
//! | `testReducingStateMerging` | `reducing_merge_every_arrangement`, `reducing_merge_namespaces` |  |
//! | `testAggregatingStateAddAndGetWithMutableAccumulator` | `aggregating_average` | accumulators are moved, never shared, so mutable and immutable ones behave alike |
//! | `testAggregatingStateMergingWithMutableAccumulator` | `reducing_merge_every_arrangement`, `aggregating_merge_namespaces` |  |
//! | `testAggregatingStateAddAndGetWithImmutableAccumulator` | `aggregating_average` |  |
//! | `testAggregatingStateMergingWithImmutableAccumulator` | `reducing_merge_every_arrangement` |  |
//! | `testMapState` | `map_get_put_remove_contains`, `map_put_all_entries_keys_values`, `snapshot_roundtrip_map`, `snapshot_excludes_later_map_puts`, `map_modified_while_iterating` |  |
//! | `testMapStateIsEmpty` | `map_is_empty_clear_for_each`, `map_removing_last_entry_removes_key` |  |
//! | `testMapStateIteratorArbitraryAccess` | `map_modified_while_iterating`, `map_arbitrary_access_while_iterating` | no iterator object: `Iterator.remove` twice has no counterpart |
//! | `testValueStateNullAsDefaultValue` | — | default values and nulls; absence: `absent_and_cleared_state_across_restore` |
//! | `testValueStateDefaultValue` | — | default values; absence: `absent_and_cleared_state_across_restore` |
//! | `testReducingStateDefaultValue` | `absent_and_cleared_state_across_restore` |  |
//! | `testListStateDefaultValue` | `absent_and_cleared_state_across_restore` |  |
//! | `testMapStateDefaultValue` | `absent_and_cleared_state_across_restore` |  |
//! | `testSnapshotNonAccessedState` | `unregistered_restored_state_survives_second_cycle`, `rescale_twice_without_registering` |  |
//! | `testKeyGroupSnapshotRestoreScaleDown` | `rescale_state_per_key_group_4_to_2` |  |
//! | `testKeyGroupSnapshotRestoreScaleUp` | `rescale_state_per_key_group_2_to_4` |  |
//! | `testKeyGroupsSnapshotRestoreNoRescale` | `rescale_4_to_6` (restores at 4 first), `keys_in_different_key_groups_do_not_interfere` |  |
//! | `testKeyGroupsSnapshotRestoreScaleUpUnEvenDistribute` | `rescale_state_per_key_group_15_to_77` |  |
//! | `testKeyGroupsSnapshotRestoreScaleDownUnEvenDistribute` | `rescale_state_per_key_group_77_to_15` |  |
//! | `testRestoreWithWrongKeySerializer` | `restore_with_other_key_type_fails` |  |
//! | `testValueStateRestoreWithWrongSerializers` | `restore_with_other_value_type_fails` |  |
//! | `testListStateRestoreWithWrongSerializers` | `restore_with_other_value_type_fails` |  |
//! | `testReducingStateRestoreWithWrongSerializers` | `restore_with_other_value_type_fails` |  |
//! | `testMapStateRestoreWithWrongSerializers` | `restore_with_other_value_type_fails` |  |
//! | `testCopyDefaultValue` | — | default values (copies of a Java object) |
//! | `testRequireNonNullNamespace` | — | nulls: a namespace is a value of its type |
//! | `testQueryableStateRegistration` | — | queryable state |
//! | `testEmptyStateCheckpointing` | `snapshot_empty_backend` |  |
//! | `testNumStateEntries` | `value_get_update_clear`, `clear_of_one_key_keeps_others` | entries counted through `state_keys` |
//! | `testParallelAsyncSnapshots` | `snapshot_while_another_is_blocked_in_io`, `two_snapshots_outstanding` |  |
//! | `testNonConcurrentSnapshotTransformerAccess` | — | Flink's snapshot transformers are stateful objects; a `SnapshotFilter` is a shared `Fn`, run by concurrent phases in `ten_async_phases_at_once` |
//! | `testAsyncSnapshot` | `async_phase_on_another_thread`, `snapshot_while_another_is_blocked_in_io` |  |
//! | `testConcurrentModificationWithApplyToAllKeys` | `state_changed_while_walking_keys` |  |
//! | `testApplyToAllKeysLambdaFunction` | `state_changed_while_walking_keys` |  |
//! | `testAsyncSnapshotCancellation` | — | no cancellation of a running asynchronous phase: a pending one is dropped; failed writes: `failed_stream_write_leaves_backend_working` |
//! | `testMapStateGetKeys` | `state_keys_per_namespace_every_kind` |  |
//! | `testCheckConcurrencyProblemWhenPerformingCheckpointAsync` | `ten_async_phases_at_once` |  |
//!
//! | `OperatorStateBackendTest` | cases | note |
//! | --- | --- | --- |
//! | `testCreateOnAbstractStateBackend` | `operator_register_states` |  |
//! | `testRegisterStatesWithoutTypeSerializer` | — | Kryo |
//! | `testRegisterStates` | `operator_register_states` |  |
//! | `testCorrectClassLoaderUsedOnSnapshot` | — | class loaders |
//! | `testSnapshotEmpty` | `operator_empty_snapshot` |  |
//! | `testSnapshotBroadcastStateWithEmptyOperatorState` | `operator_broadcast_remove_and_clear_cycles` |  |
//! | `testSnapshotRestoreSync` | `operator_snapshot_isolation` |  |
//! | `testSnapshotRestoreAsync` | `operator_snapshot_isolation` |  |
//! | `testSnapshotAsyncClose` | — | no close or cancellation of a running asynchronous phase |
//! | `testSnapshotAsyncCancel` | — | as above |
//!
//! | `TtlStateTestBase` | cases | note |
//! | --- | --- | --- |
//! | `testNonExistentValue` | `absent_and_cleared_state_across_restore` |  |
//! | `testValueSetNull` | — | nulls |
//! | `testExactExpirationOnWrite` | `ttl_exact_expiration_every_kind_across_restores` |  |
//! | `testRelaxedExpirationOnWrite` | `ttl_relaxed_expiration_every_kind_across_restores` |  |
//! | `testExactExpirationOnRead` | `ttl_relaxed_expiration_every_kind_across_restores`, `ttl_on_read_and_write_refreshes_on_read` |  |
//! | `testRelaxedExpirationOnRead` | `ttl_relaxed_expiration_every_kind_across_restores` |  |
//! | `testExpirationTimestampOverflow` | `ttl_expiration_timestamp_overflow` |  |
//! | `testMergeNamespaces` | `ttl_list_merge_keeps_element_timestamps`, `ttl_list_merge_never_resurrects_expired`, `ttl_reducing_merge_keeps_timestamps`, `ttl_reducing_merge_never_resurrects_expired` |  |
//! | `testMultipleKeys` | `ttl_on_create_and_write`, `ttl_timestamps_survive_restore` |  |
//! | `testMultipleKeysWithSnapshotCleanup` | `ttl_cleanup_full_snapshot_drops_expired` |  |
//! | `testMultipleNamespaces` | `ttl_reducing_merge_keeps_timestamps`, `ttl_incremental_cleanup_removes_expired_values` | values of one key in several namespaces expire apart |
//! | `testMultipleNamespacesWithSnapshotCleanup` | `ttl_cleanup_full_snapshot_drops_expired` | the filter sees each stored value, whatever its namespace; the case uses one namespace |
//! | `testSnapshotChangeRestore` | `ttl_snapshot_then_later_writes_restore` |  |
//! | `testRestoreTtlAndRegisterNonTtlStateCompatFailure` | `restore_with_ttl_toggled_fails` |  |
//! | `testIncrementalCleanupWholeState` | `ttl_incremental_cleanup_removes_expired_values`, `ttl_incremental_cleanup_lists_and_maps` |  |
//! | `testIncrementalCleanup` | `ttl_incremental_cleanup_leaves_pending_snapshot_alone` |  |

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Debug;
use std::sync::Arc;

use crate::backend::{CheckpointableBackend, KeyedBackendParams, StateBackend};
use crate::clock::ManualClock;
use crate::descriptor::StateKey;
use crate::error::{Error, ErrorKind, Result};
use crate::handles::{CheckpointId, KeyedStateHandle, StreamStateHandle, SubtaskState};
use crate::keygroup::{KeyGroupRange, key_group_for_key};
use crate::stream::{CheckpointStreamFactory, MemoryCheckpointStorage, StateReader};

mod compat;
mod concurrent;
mod corruption;
mod faults;
mod iteration;
mod keygroups;
mod list;
mod map;
mod merging;
mod model;
mod operator;
mod reducing;
mod registration;
mod rescale;
mod snapshot;
mod suite;
mod timer_model;
mod timers;
mod timers_snapshot;
mod ttl;
mod ttl_kinds;
mod ttl_merge;
mod types;
mod upgrade;
mod value;

pub use compat::*;
pub use concurrent::*;
pub use corruption::*;
pub use faults::{FailingStreamFactory, FailureMode};
pub use iteration::*;
pub use keygroups::*;
pub use list::*;
pub use map::*;
pub use merging::*;
pub use model::*;
pub use operator::*;
pub use reducing::*;
pub use registration::*;
pub use rescale::*;
pub use snapshot::*;
pub use timer_model::*;
pub use timers::*;
pub use timers_snapshot::*;
pub use ttl::*;
pub use ttl_kinds::*;
pub use ttl_merge::*;
pub use types::*;
pub use upgrade::*;
pub use value::*;

/// What the suite needs from a backend under test: a factory, and checkpoint storage to
/// write snapshots into and read them back from.
pub trait Harness {
    /// The factory of the backend under test.
    type Factory: StateBackend;

    /// A factory for backends under test (a fresh one per call is fine).
    fn factory(&self) -> Self::Factory;

    /// The stream factory of checkpoint `id` in this harness's storage.
    fn stream_factory(&self, id: CheckpointId) -> Box<dyn CheckpointStreamFactory>;

    /// Reads files of that storage.
    fn reader(&self) -> Option<Arc<dyn StateReader>>;

    /// Whether TTL's incremental cleanup removes expired entries as the state is accessed
    /// (heap backends). Backends that clean up elsewhere (RocksDB compactions) return
    /// `false`, and the cases that observe incremental cleanup skip.
    fn incremental_ttl_cleanup(&self) -> bool {
        true
    }

    /// Whether snapshots apply TTL's cleanup in full snapshots (every full, key-group-indexed
    /// snapshot). Backends whose snapshots are native and incremental (RocksDB) return
    /// `false`: as in Flink, `cleanupFullSnapshot` does not apply to them.
    fn full_snapshot_ttl_cleanup(&self) -> bool {
        true
    }

    /// Whether the cases confirm each checkpoint they take to its backend once it is
    /// written (`notify_checkpoint_complete`, as a coordinator does after a commit), so that
    /// a backend with incremental checkpoints writes later ones over earlier ones and the
    /// cases restore chains (default `false`: every checkpoint stands alone).
    fn confirms_checkpoints(&self) -> bool {
        false
    }
}

/// A harness over a factory that stores snapshot files in a [`MemoryCheckpointStorage`].
#[derive(Debug, Clone)]
pub struct MemoryStorageHarness<F> {
    /// The factory of the backend under test.
    pub factory: F,
    /// Where snapshots are written.
    pub storage: MemoryCheckpointStorage,
}

impl<F> MemoryStorageHarness<F> {
    /// A harness over `factory` with empty storage.
    pub fn new(factory: F) -> Self {
        MemoryStorageHarness {
            factory,
            storage: MemoryCheckpointStorage::new(),
        }
    }
}

impl<F: StateBackend + Clone> Harness for MemoryStorageHarness<F> {
    type Factory = F;

    fn factory(&self) -> F {
        self.factory.clone()
    }

    fn stream_factory(&self, id: CheckpointId) -> Box<dyn CheckpointStreamFactory> {
        Box::new(self.storage.stream_factory(id))
    }

    fn reader(&self) -> Option<Arc<dyn StateReader>> {
        Some(Arc::new(self.storage.clone()))
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers of the cases.

/// The keyed backend of a harness for keys `K`.
pub(crate) type Backend<H, K> = <<H as Harness>::Factory as StateBackend>::Backend<K>;

/// The max parallelism of most cases.
pub(crate) const MAX_P: u32 = 128;

/// The time the manual clocks of the cases start at.
pub(crate) const T0: u64 = 1_000_000;

/// A manual clock standing at [`T0`].
pub(crate) fn clock() -> ManualClock {
    ManualClock::new(T0)
}

/// The parameters of a fresh backend over `range` of `max_p` key groups, with `clock`.
pub(crate) fn params(clock: &ManualClock, max_p: u32, range: KeyGroupRange) -> KeyedBackendParams {
    KeyedBackendParams::new(max_p, range).clock(Arc::new(clock.clone()))
}

/// Creates a backend.
pub(crate) fn create<H: Harness, K: StateKey>(
    h: &H,
    params: KeyedBackendParams,
) -> Result<Backend<H, K>> {
    h.factory().create_keyed_backend::<K>(params)
}

/// A fresh backend owning all [`MAX_P`] key groups.
#[track_caller]
pub(crate) fn fresh<H: Harness, K: StateKey>(h: &H, clock: &ManualClock) -> Backend<H, K> {
    create::<H, K>(h, params(clock, MAX_P, KeyGroupRange::all(MAX_P)))
        .expect("create a fresh backend")
}

/// Runs both phases of a snapshot into the harness's storage.
#[track_caller]
pub(crate) fn checkpoint<H: Harness, B: CheckpointableBackend + ?Sized>(
    h: &H,
    backend: &B,
    id: u64,
) -> SubtaskState {
    let snapshot = backend
        .snapshot(CheckpointId(id))
        .expect("synchronous phase of a snapshot");
    let state = write_snapshot(h, snapshot, id);
    if h.confirms_checkpoints() {
        backend
            .notify_checkpoint_complete(CheckpointId(id))
            .expect("confirm a checkpoint");
    }
    state
}

/// Runs the asynchronous phase of a snapshot into the harness's storage.
#[track_caller]
pub(crate) fn write_snapshot<H: Harness>(
    h: &H,
    snapshot: Box<dyn crate::backend::AsyncSnapshot>,
    id: u64,
) -> SubtaskState {
    assert_eq!(
        snapshot.checkpoint_id(),
        CheckpointId(id),
        "checkpoint id of the snapshot"
    );
    snapshot
        .write(&*h.stream_factory(CheckpointId(id)))
        .expect("asynchronous phase of a snapshot")
}

/// Restores a backend over `range` of `max_p` key groups from `handles` (filtered to those
/// overlapping `range`).
pub(crate) fn restore<H: Harness, K: StateKey>(
    h: &H,
    clock: &ManualClock,
    max_p: u32,
    range: KeyGroupRange,
    handles: &[KeyedStateHandle],
) -> Result<Backend<H, K>> {
    let handles = crate::rescale::keyed_handles_for(handles, range);
    create::<H, K>(h, params(clock, max_p, range).restore(handles, h.reader()))
}

/// Restores a new backend with `backend`'s key groups from `state` (a snapshot of it).
#[track_caller]
pub(crate) fn restore_same<H: Harness, K: StateKey>(
    h: &H,
    clock: &ManualClock,
    backend: &Backend<H, K>,
    state: &SubtaskState,
) -> Backend<H, K> {
    restore::<H, K>(
        h,
        clock,
        backend.max_parallelism(),
        backend.key_group_range(),
        &state.keyed,
    )
    .expect("restore from a snapshot")
}

/// Snapshots `backend` and restores a new backend with the same range from it.
#[track_caller]
pub(crate) fn roundtrip<H: Harness, K: StateKey>(
    h: &H,
    backend: &Backend<H, K>,
    clock: &ManualClock,
    id: u64,
) -> Backend<H, K> {
    let state = checkpoint(h, backend, id);
    restore_same(h, clock, backend, &state)
}

/// Asserts that `result` is an error of `kind`, and returns the error.
#[track_caller]
pub(crate) fn expect_err<T: Debug>(result: Result<T>, kind: ErrorKind) -> Error {
    match result {
        Ok(value) => panic!("expected an error of kind {kind:?}, got Ok({value:?})"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "unexpected error kind: {e}");
            e
        }
    }
}

/// `v`, sorted.
pub(crate) fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// The key group of `key`.
#[track_caller]
pub(crate) fn kg<K: serde::Serialize + ?Sized>(key: &K, max_p: u32) -> u32 {
    key_group_for_key(key, max_p).expect("key group of a key")
}

/// The first `u64` key at or after `from` whose key group satisfies `pred`.
#[track_caller]
pub(crate) fn key_where(max_p: u32, from: u64, pred: impl Fn(u32) -> bool) -> u64 {
    (from..from + 1_000_000)
        .find(|k| pred(kg(k, max_p)))
        .expect("a key with a key group as wanted")
}

/// Every stream of a keyed handle, for editing.
pub(crate) fn keyed_streams_mut(handle: &mut KeyedStateHandle) -> Vec<&mut StreamStateHandle> {
    match handle {
        KeyedStateHandle::KeyGroups(h) => vec![&mut h.stream],
        KeyedStateHandle::Incremental(h) => std::iter::once(&mut h.meta)
            .chain(h.shared.iter_mut().map(|f| &mut f.handle))
            .chain(h.private.iter_mut().map(|f| &mut f.handle))
            .collect(),
        KeyedStateHandle::Changelog(h) => std::iter::once(&mut h.base)
            .chain(h.deltas.iter_mut())
            .flat_map(|s| s.parts.iter_mut().map(|p| &mut p.stream))
            .collect(),
    }
}

/// Says that a case skips, and why.
pub(crate) fn skip(case: &str, why: &str) {
    eprintln!("conformance case {case} skipped: {why}");
}
