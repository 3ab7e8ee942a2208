//! Checkpoints written the way the tests of several crates write them: small checkpoints of
//! operator-state streams ([`begin_with_streams`], [`begin_small_checkpoint`],
//! [`commit_streams`]), and keyed operators
//! written by one backend per subtask ([`KeyedOperator`], with [`HeapFactory`] for heap
//! backends of any options and [`put_values`] to fill them).
//!
//! ```
//! use cornerstone_backend_api::spi::keyed_format::Compression;
//! use cornerstone_backend_api::{CheckpointId, StateScope};
//! use cornerstone_checkpoint_store::{CheckpointConfig, CompletedCheckpointStore};
//! use cornerstone_testkit::checkpoints::{HeapFactory, KeyedOperator, commit_streams, put_values};
//! use cornerstone_testkit::store::memory_store;
//!
//! let store = memory_store();
//! let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default())?;
//! // Checkpoint 1: operator `op`, one subtask, two streams.
//! commit_streams(&job, 1, &[(StateScope::Exclusive, b"a"), (StateScope::Shared, b"b")], &[])?;
//!
//! // Checkpoint 2: a keyed operator of 2 subtasks of the heap backend, value state `count`.
//! let keyed = KeyedOperator::new("keyed-uid", "Keyed", 2, 128);
//! let mut pending = job.begin_checkpoint(CheckpointId(2))?;
//! let heap = HeapFactory::streams("heap", Compression::None);
//! let states = keyed.write(&mut pending, CheckpointId(2), &heap, |range, backend| {
//!     put_values(backend, "count", keyed.keys_in(range, 0..100), |k| format!("value-{k}"));
//! });
//! assert_eq!(states.len(), 2);
//! pending.commit()?;
//! assert_eq!(store.resolve("job")?.metadata.operator("keyed-uid").unwrap().subtasks.len(), 2);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::ops::Range;

use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams,
    KeyedStateBackend, KeyedStateBackendExt, Result, StateBackend, StateKey, StateScope,
    StateValue, StreamStateHandle, SubtaskState, ValueStateDescriptor, key_group_for_key,
};
use cornerstone_backend_memory::{HeapBackendOptions, HeapKeyedStateBackend, HeapSnapshotStorage};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{CompletedCheckpointStore, PendingCheckpoint};

use crate::store::{state_of, try_write_stream};

/// The max parallelism of the operator of [`begin_with_streams`].
pub const MAX_PARALLELISM: u32 = 128;

/// Begins checkpoint `id` of `job`, writes `streams` (the scope and bytes of each) through
/// its stream factory and adds them, followed by `reused` (handles of earlier checkpoints),
/// as the operator state of the only subtask of operator `op` (name `Op`, max parallelism
/// [`MAX_PARALLELISM`]). Returns the checkpoint, still pending, and the handles in that
/// order.
///
/// # Errors
/// Those of beginning the checkpoint, writing a stream and adding the state.
pub fn begin_with_streams(
    job: &CompletedCheckpointStore,
    id: u64,
    streams: &[(StateScope, &[u8])],
    reused: &[StreamStateHandle],
) -> Result<(PendingCheckpoint, Vec<StreamStateHandle>)> {
    let mut pending = job.begin_checkpoint(CheckpointId(id))?;
    let factory = pending.stream_factory();
    let mut handles = Vec::with_capacity(streams.len() + reused.len());
    for (scope, bytes) in streams {
        handles.push(try_write_stream(&*factory, *scope, bytes)?);
    }
    handles.extend(reused.iter().cloned());
    pending.add_subtask_state(
        &OperatorSpec::new("op", "Op", 1, MAX_PARALLELISM),
        0,
        state_of(handles.clone()),
    )?;
    Ok((pending, handles))
}

/// [`begin_with_streams`] with the streams of a small checkpoint: an exclusive stream of 100
/// bytes and a shared one of 50, every byte `id as u8`; with `reuse` (a shared handle of an
/// earlier checkpoint), that handle instead of the shared stream.
///
/// # Errors
/// Those of [`begin_with_streams`].
pub fn begin_small_checkpoint(
    job: &CompletedCheckpointStore,
    id: u64,
    reuse: Option<&StreamStateHandle>,
) -> Result<(PendingCheckpoint, Vec<StreamStateHandle>)> {
    let exclusive = [id as u8; 100];
    let shared = [id as u8; 50];
    match reuse {
        Some(h) => begin_with_streams(
            job,
            id,
            &[(StateScope::Exclusive, &exclusive)],
            std::slice::from_ref(h),
        ),
        None => begin_with_streams(
            job,
            id,
            &[
                (StateScope::Exclusive, &exclusive),
                (StateScope::Shared, &shared),
            ],
            &[],
        ),
    }
}

/// [`begin_with_streams`], then commits the checkpoint. Returns the handles.
///
/// # Errors
/// Those of [`begin_with_streams`] and of the commit.
pub fn commit_streams(
    job: &CompletedCheckpointStore,
    id: u64,
    streams: &[(StateScope, &[u8])],
    reused: &[StreamStateHandle],
) -> Result<Vec<StreamStateHandle>> {
    let (pending, handles) = begin_with_streams(job, id, streams, reused)?;
    pending.commit()?;
    Ok(handles)
}

/// A keyed operator (keys `u64`) of a checkpoint, written by one backend per subtask.
#[derive(Debug, Clone, Copy)]
pub struct KeyedOperator<'a> {
    /// The operator's uid.
    pub uid: &'a str,
    /// The operator's name.
    pub name: &'a str,
    /// Its number of subtasks.
    pub parallelism: u32,
    /// Its number of key groups.
    pub max_parallelism: u32,
}

impl<'a> KeyedOperator<'a> {
    /// The operator `uid` named `name` at `parallelism` of `max_parallelism` key groups.
    pub fn new(uid: &'a str, name: &'a str, parallelism: u32, max_parallelism: u32) -> Self {
        KeyedOperator {
            uid,
            name,
            parallelism,
            max_parallelism,
        }
    }

    /// The key groups of `subtask`.
    pub fn range(&self, subtask: u32) -> KeyGroupRange {
        KeyGroupRange::for_subtask(self.max_parallelism, self.parallelism, subtask)
            .expect("a subtask of the operator")
    }

    /// The keys of `keys` whose key group is in `range`.
    pub fn keys_in(&self, range: KeyGroupRange, keys: Range<u64>) -> impl Iterator<Item = u64> {
        let max_parallelism = self.max_parallelism;
        keys.filter(move |k| {
            range.contains(key_group_for_key(k, max_parallelism).expect("a key group"))
        })
    }

    /// One new, empty backend of `factory` per subtask, in subtask order.
    pub fn open<F: StateBackend>(&self, factory: &F) -> Vec<F::Backend<u64>> {
        (0..self.parallelism)
            .map(|subtask| {
                factory
                    .create_keyed_backend::<u64>(KeyedBackendParams::new(
                        self.max_parallelism,
                        self.range(subtask),
                    ))
                    .expect("open a backend")
            })
            .collect()
    }

    /// Writes `snapshots` (one per subtask, in subtask order) through the stream factory of
    /// `pending` and adds each as its subtask's state. Returns the states.
    pub fn add_snapshots(
        &self,
        pending: &mut PendingCheckpoint,
        snapshots: Vec<Box<dyn AsyncSnapshot>>,
    ) -> Vec<SubtaskState> {
        assert_eq!(
            snapshots.len(),
            self.parallelism as usize,
            "one per subtask"
        );
        let factory = pending.stream_factory();
        let mut states = Vec::with_capacity(snapshots.len());
        for (subtask, snapshot) in (0..self.parallelism).zip(snapshots) {
            let state = snapshot.write(&*factory).expect("write a snapshot");
            pending
                .add_subtask_state(
                    &OperatorSpec::new(self.uid, self.name, self.parallelism, self.max_parallelism),
                    subtask,
                    state.clone(),
                )
                .expect("add a subtask's state");
            states.push(state);
        }
        states
    }

    /// For each subtask in turn: opens a backend of `factory` over its key groups, lets
    /// `fill(range, &backend)` put the state, snapshots it as checkpoint `id`, writes the
    /// snapshot through the stream factory of `pending` and adds it as the subtask's state.
    /// Returns the states.
    pub fn write<F: StateBackend>(
        &self,
        pending: &mut PendingCheckpoint,
        id: CheckpointId,
        factory: &F,
        mut fill: impl FnMut(KeyGroupRange, &F::Backend<u64>),
    ) -> Vec<SubtaskState> {
        (0..self.parallelism)
            .map(|subtask| {
                let range = self.range(subtask);
                let backend = factory
                    .create_keyed_backend::<u64>(KeyedBackendParams::new(
                        self.max_parallelism,
                        range,
                    ))
                    .expect("open a backend");
                fill(range, &backend);
                let state = backend
                    .snapshot(id)
                    .expect("snapshot")
                    .write(&*pending.stream_factory())
                    .expect("write a snapshot");
                pending
                    .add_subtask_state(
                        &OperatorSpec::new(
                            self.uid,
                            self.name,
                            self.parallelism,
                            self.max_parallelism,
                        ),
                        subtask,
                        state.clone(),
                    )
                    .expect("add a subtask's state");
                state
            })
            .collect()
    }
}

/// Puts `value(k)` for every key `k` of `keys` into the value state named `state`
/// (namespace `()`) of `backend`.
pub fn put_values<B, V>(
    backend: &B,
    state: &str,
    keys: impl IntoIterator<Item = u64>,
    value: impl Fn(u64) -> V,
) where
    B: KeyedStateBackend<u64> + ?Sized,
    V: StateValue,
{
    let values = backend
        .value_state::<V, ()>(&ValueStateDescriptor::new(state))
        .expect("register the value state");
    for k in keys {
        values.update(&k, &(), value(k)).expect("update the value");
    }
}

/// A factory of heap backends with any [`HeapBackendOptions`]: the name recorded in
/// snapshots, inline or stream snapshots, compression. (The memory and fs backends are heap
/// backends with options of their own.)
#[derive(Debug, Clone, Copy)]
pub struct HeapFactory(pub HeapBackendOptions);

impl HeapFactory {
    /// Heap backends named `name` whose snapshots are streams, as the fs backend writes
    /// them, with blocks compressed by `compression`.
    pub fn streams(name: &'static str, compression: Compression) -> Self {
        HeapFactory(
            HeapBackendOptions::new(name, HeapSnapshotStorage::Streams)
                .with_compression(compression),
        )
    }
}

impl StateBackend for HeapFactory {
    type Backend<K: StateKey> = HeapKeyedStateBackend<K>;

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn create_keyed_backend<K: StateKey>(
        &self,
        params: KeyedBackendParams,
    ) -> Result<HeapKeyedStateBackend<K>> {
        HeapKeyedStateBackend::open(params, self.0)
    }
}

/// Checks the outcome of two writers of job `job` racing to commit checkpoint `id` (each
/// result is the winner's name, as written into its checkpoint's operator name, or the
/// error): at most one completed it, the others failed with `AlreadyExists` (lost the
/// `_metadata` race), `Fenced` (the other's lease) or `InvalidInput` (an id the other's
/// lease reserved); the winner's checkpoint is on storage, whole; and a writer opening the
/// job afterwards finds the newest checkpoint any race completed (`last_winner`, updated
/// here): no checkpoint reported complete is lost.
///
/// # Panics
/// When any of that does not hold.
pub fn assert_race_outcome(
    store: &cornerstone_checkpoint_store::CheckpointStore,
    job: &str,
    id: u64,
    results: &[cornerstone_backend_api::Result<String>],
    last_winner: &mut Option<u64>,
) {
    use cornerstone_backend_api::{CheckpointId, ErrorKind};
    let winners: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(winners.len() <= 1, "chk-{id}: {results:?}");
    for loser in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(
                loser.kind(),
                ErrorKind::AlreadyExists | ErrorKind::Fenced | ErrorKind::InvalidInput
            ),
            "chk-{id}: {loser}"
        );
    }
    if let Some(winner) = winners.first() {
        let point = store
            .resolve(&format!("{job}/chk-{id}"))
            .unwrap_or_else(|e| panic!("chk-{id}: {e}"));
        assert_eq!(&&point.metadata.operators[0].name, winner, "chk-{id}");
        let report = cornerstone_checkpoint_store::inspect::verify(
            store,
            &format!("{job}/chk-{id}"),
            |_, _| {},
        )
        .unwrap_or_else(|e| panic!("chk-{id}: {e}"));
        assert!(report.is_ok(), "chk-{id}: {report:?}");
        *last_winner = Some(id);
    }
    let fresh = CompletedCheckpointStore::open(
        store,
        job,
        cornerstone_checkpoint_store::CheckpointConfig::default(),
    )
    .unwrap_or_else(|e| panic!("after chk-{id}: {e}"));
    assert_eq!(
        fresh.latest().map(|c| c.id()),
        last_winner.map(CheckpointId),
        "after the race for chk-{id}: {results:?}"
    );
}
