//! Incremental checkpoints: `ValueState<u64>` keys, a share of them updated (uniformly at
//! random) between checkpoints, each checkpoint committed into a checkpoint store on the
//! local disk and confirmed to the backend as a coordinator does; the bytes each checkpoint
//! uploads, its time, and the restore of a chain. Generic over [`StateBackend`]: the fs
//! backend with and without changelog mode, and RocksDB's incremental checkpoints.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedStateHandle, Result, StateBackend,
    StreamStateHandle, ValueState,
};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpoint, CompletedCheckpointStore, OperatorSpec,
};
use criterion::{Criterion, Throughput};

use crate::storage::{DiskStore, handle_bytes, keyed_handles, restore_values, write_checkpoint};
use crate::support::{MAX_PARALLELISM, SplitMix64, count_label, keyed_backend, populate_values};

/// A backend whose keys change between checkpoints of one job.
pub struct Churned<F: StateBackend> {
    backend: F::Backend<u64>,
    state: ValueState<u64, u64>,
    keys: u64,
    rng: SplitMix64,
    checkpoints: CompletedCheckpointStore,
    next: u64,
    latest: Option<CompletedCheckpoint>,
}

impl<F: StateBackend> std::fmt::Debug for Churned<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Churned")
            .field("keys", &self.keys)
            .field("next_checkpoint", &self.next)
            .finish_non_exhaustive()
    }
}

impl<F: StateBackend> Churned<F> {
    /// A backend of `factory` holding keys `0..keys` (value = key), checkpointing into job
    /// `job` of `store` (one checkpoint retained, every stream a file).
    ///
    /// # Errors
    /// The backend's and the store's errors.
    pub fn new(factory: &F, store: &CheckpointStore, job: &str, keys: u64) -> Result<Self> {
        let backend = keyed_backend(factory)?;
        let all: Vec<u64> = (0..keys).collect();
        let state = populate_values(&backend, &all)?;
        let config = CheckpointConfig::default()
            .num_retained(1)
            .inline_threshold(0);
        Ok(Churned {
            backend,
            state,
            keys,
            rng: SplitMix64(keys),
            checkpoints: CompletedCheckpointStore::open(store, job, config)?,
            next: 1,
            latest: None,
        })
    }

    /// Updates `count` keys drawn uniformly at random.
    ///
    /// # Errors
    /// The backend's errors.
    pub fn churn(&mut self, count: u64) -> Result<()> {
        for _ in 0..count {
            let key = self.rng.below(self.keys);
            self.state.update(&key, &(), key ^ self.next)?;
        }
        Ok(())
    }

    /// Takes the next checkpoint (both phases), commits it and confirms it to the backend;
    /// returns its time and the bytes it uploaded (its streams that the checkpoint before
    /// did not reference, inline ones included).
    ///
    /// # Errors
    /// The backend's and the store's errors.
    pub fn checkpoint(&mut self) -> Result<(Duration, u64)> {
        let id = CheckpointId(self.next);
        self.next += 1;
        let start = Instant::now();
        let snapshot = self.backend.snapshot(id)?;
        let mut pending = self.checkpoints.begin_checkpoint(id)?;
        let state = snapshot.write(&*pending.stream_factory())?;
        let spec = OperatorSpec::new("bench", "Bench", 1, MAX_PARALLELISM);
        pending.add_subtask_state(&spec, 0, state)?;
        let done = pending.commit()?;
        self.backend.notify_checkpoint_complete(id)?;
        let elapsed = start.elapsed();
        let before: BTreeSet<String> = self
            .latest
            .iter()
            .flat_map(|p| p.metadata.files())
            .map(|f| f.path.clone())
            .collect();
        let uploaded = keyed_handles(&done)
            .iter()
            .flat_map(KeyedStateHandle::streams)
            .map(|s| match s {
                StreamStateHandle::Inline(b) => b.len() as u64,
                StreamStateHandle::File(f) if before.contains(&f.path) => 0,
                StreamStateHandle::File(f) => f.size,
            })
            .sum();
        self.latest = Some(done);
        Ok((elapsed, uploaded))
    }

    /// The last checkpoint committed.
    pub fn latest(&self) -> Option<&CompletedCheckpoint> {
        self.latest.as_ref()
    }

    /// The bytes of a full snapshot of the same state (a savepoint, written in memory).
    ///
    /// # Errors
    /// The backend's errors.
    pub fn full_size(&self) -> Result<u64> {
        let storage = MemoryCheckpointStorage::new();
        let id = CheckpointId(u64::MAX);
        let written = self
            .backend
            .savepoint(id)?
            .write(&storage.stream_factory(id))?;
        Ok(handle_bytes(&written.keyed))
    }

    /// The backend.
    pub fn backend(&self) -> &F::Backend<u64> {
        &self.backend
    }
}

/// The incremental-checkpoint workloads of one backend, `keys` keys, `churn` of them
/// updated between checkpoints, on the disk of `dir`:
///
/// - `incremental_checkpoint/{name}/{keys}`: one checkpoint after `churn` updates (the
///   updates untimed), the bytes it uploaded printed beside a full snapshot's;
/// - `incremental_restore/{name}/{keys}`: a restore (all key groups, values decoded) of
///   the checkpoint taken after ten rounds of `churn` updates and checkpoints over a first
///   one (for the fs backend in changelog mode: a base and ten deltas), and
///   `incremental_restore/{name}_full/{keys}`: of a full snapshot of the same state.
///
/// # Panics
/// When the backend or the store fails, naming the step.
pub fn incremental_checkpoints<F: StateBackend>(
    c: &mut Criterion,
    name: &str,
    factory: &F,
    keys: u64,
    churn: u64,
    dir: &Path,
) {
    let label = count_label(keys);
    // A store of its own, so that the jobs of several backends in one directory differ.
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("create the store's directory");
    let mut disk = DiskStore::new(&dir).expect("open the checkpoint store");
    let store = disk.store().clone();
    let mut job = Churned::new(factory, &store, &format!("{name}-chain"), keys).expect("populate");
    job.checkpoint().expect("the first checkpoint");

    let uploaded = std::cell::Cell::new((0u64, 0u64));
    let mut group = c.benchmark_group("incremental_checkpoint");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if keys > 2_000_000 { 20 } else { 5 }));
    group.throughput(Throughput::Elements(churn));
    group.bench_function(format!("{name}/{label}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                job.churn(churn).expect("churn");
                let (time, bytes) = job.checkpoint().expect("checkpoint");
                total += time;
                let (n, sum) = uploaded.get();
                uploaded.set((n + 1, sum + bytes));
            }
            total
        });
    });
    group.finish();
    let (n, sum) = uploaded.get();
    let full = job.full_size().expect("a full snapshot");
    let mean = sum / n.max(1);
    eprintln!(
        "incremental_checkpoint/{name}/{label}: after {churn} updates a checkpoint uploaded \
         {mean} B on average ({n} checkpoints), {:.2}% of a full snapshot ({full} B)",
        mean as f64 * 100.0 / full as f64
    );
    drop(job);

    // A chain: a first checkpoint, then ten rounds of updates and checkpoints.
    let mut chain =
        Churned::new(factory, &store, &format!("{name}-restore"), keys).expect("populate");
    for _ in 0..11 {
        chain.churn(churn).expect("churn");
        chain.checkpoint().expect("checkpoint");
    }
    let latest = chain.latest().expect("a checkpoint").clone();
    if let [KeyedStateHandle::Changelog(h)] = &keyed_handles(&latest)[..] {
        eprintln!(
            "incremental_restore/{name}/{label}: a base of {} B and {} deltas of {} B",
            h.base.size(),
            h.deltas.len(),
            h.deltas.iter().map(|d| d.size()).sum::<u64>()
        );
    }
    let snapshot = chain
        .backend()
        .savepoint(CheckpointId(1))
        .expect("savepoint");
    let (_, full) = write_checkpoint(snapshot, &mut disk).expect("a full checkpoint");
    drop(chain);

    let mut group = c.benchmark_group("incremental_restore");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if keys > 2_000_000 { 30 } else { 5 }));
    group.throughput(Throughput::Elements(keys));
    for (label_name, point) in [(name.to_owned(), &latest), (format!("{name}_full"), &full)] {
        group.bench_function(format!("{label_name}/{label}"), |b| {
            b.iter(|| {
                let (restored, _) =
                    restore_values(factory, &store, point, KeyGroupRange::all(MAX_PARALLELISM))
                        .expect("restore");
                assert_eq!(restored as u64, keys, "every key restored");
                black_box(restored)
            });
        });
    }
    group.finish();
}
