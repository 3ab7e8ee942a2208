//! Workloads that write snapshots into, and restore them from, a real checkpoint store on
//! the local disk, beside the disk's own sequential write bandwidth measured in the same
//! run. Generic over [`StateBackend`], for backends whose snapshots are files.

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cornerstone_backend_api::rescale::keyed_handles_for;
use cornerstone_backend_api::spi::CountingReader;
use cornerstone_backend_api::{
    AsyncSnapshot, CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams,
    KeyedStateBackendExt, KeyedStateHandle, Result, StateBackend, StateReader, StreamStateHandle,
    ValueStateDescriptor,
};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpoint, CompletedCheckpointStore,
};
use criterion::{Criterion, Throughput};

use crate::support::{
    Cycle, MAX_PARALLELISM, SEED, count_label, keyed_backend, populate_values, shuffled_keys,
};

/// The chunk size of the raw sequential-write baseline: the snapshot format's block size.
pub const RAW_WRITE_CHUNK: usize = 256 * 1024;

/// A checkpoint store on a directory, with a counter for fresh job ids.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    store: CheckpointStore,
    jobs: u64,
}

impl DiskStore {
    /// A store on `dir` (which should be on the disk to measure).
    ///
    /// # Errors
    /// The store's errors.
    pub fn new(dir: &Path) -> Result<Self> {
        Ok(DiskStore {
            dir: dir.to_path_buf(),
            store: CheckpointStore::local(dir)?,
            jobs: 0,
        })
    }

    /// The store.
    pub fn store(&self) -> &CheckpointStore {
        &self.store
    }

    /// A new job in the store, so every measured checkpoint is the first of its job.
    ///
    /// # Errors
    /// The store's errors.
    pub fn new_job(&mut self) -> Result<(String, CompletedCheckpointStore)> {
        self.jobs += 1;
        let job = format!("bench-job-{}", self.jobs);
        let checkpoints = CompletedCheckpointStore::open(
            &self.store,
            &job,
            CheckpointConfig::default().num_retained(1),
        )?;
        Ok((job, checkpoints))
    }

    /// Deletes a job directory (untimed housekeeping between iterations).
    pub fn remove_job(&self, job: &str) {
        let _ = std::fs::remove_dir_all(self.dir.join(job));
    }
}

/// Writes a full checkpoint of `backend` as checkpoint 1 of a new job: the synchronous
/// phase, the asynchronous phase into the store, and the `_metadata` commit.
///
/// # Errors
/// The backend's and the store's errors.
pub fn checkpoint_into<B: CheckpointableBackend + ?Sized>(
    backend: &B,
    store: &mut DiskStore,
) -> Result<(String, CompletedCheckpoint)> {
    write_checkpoint(backend.snapshot(CheckpointId(1))?, store)
}

/// Writes the asynchronous phase of `snapshot` (of checkpoint 1) as a new job's checkpoint
/// and commits it: the part of [`checkpoint_into`] that runs on any thread.
///
/// # Errors
/// The backend's and the store's errors.
pub fn write_checkpoint(
    snapshot: Box<dyn AsyncSnapshot>,
    store: &mut DiskStore,
) -> Result<(String, CompletedCheckpoint)> {
    let (job, checkpoints) = store.new_job()?;
    let mut pending = checkpoints.begin_checkpoint(CheckpointId(1))?;
    let state = snapshot.write(&*pending.stream_factory())?;
    pending.add_subtask_state(
        &OperatorSpec::new("bench", "Bench", 1, MAX_PARALLELISM),
        0,
        state,
    )?;
    Ok((job, pending.commit()?))
}

/// Every keyed handle of a checkpoint written by [`checkpoint_into`].
pub fn keyed_handles(point: &CompletedCheckpoint) -> Vec<KeyedStateHandle> {
    point
        .metadata
        .operators
        .iter()
        .flat_map(|o| o.subtasks.values())
        .flat_map(|s| s.keyed.clone())
        .collect()
}

/// The bytes of every stream the handles reference.
pub fn handle_bytes(handles: &[KeyedStateHandle]) -> u64 {
    handles
        .iter()
        .flat_map(|h| h.streams())
        .map(StreamStateHandle::size)
        .sum()
}

/// Restores `ValueState<u64>` `"value"` of a checkpoint into a backend owning `range`
/// and decodes it (registration); returns the number of keys and the bytes read.
///
/// # Errors
/// The backend's and the store's errors.
pub fn restore_values<F: StateBackend>(
    factory: &F,
    store: &CheckpointStore,
    point: &CompletedCheckpoint,
    range: KeyGroupRange,
) -> Result<(usize, u64)> {
    let reader = Arc::new(CountingReader::new(Arc::new(store.reader(&point.base_dir))));
    let handles = keyed_handles_for(&keyed_handles(point), range);
    let backend = factory.create_keyed_backend::<u64>(
        KeyedBackendParams::new(MAX_PARALLELISM, range)
            .restore(handles, Some(Arc::clone(&reader) as Arc<dyn StateReader>)),
    )?;
    let values = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("value"))?;
    let keys = values.state_keys(&())?.len();
    Ok((keys, reader.bytes_read()))
}

/// Writes `bytes` bytes to a new file in `dir` in chunks of [`RAW_WRITE_CHUNK`], then
/// `sync_all` (as OpenDAL's fs writer does on close): the disk's sequential write
/// bandwidth as a program sees it.
///
/// # Errors
/// I/O errors.
pub fn raw_sequential_write(dir: &Path, bytes: u64) -> std::io::Result<()> {
    let chunk: Vec<u8> = (0..RAW_WRITE_CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let path = dir.join("raw-sequential-write");
    let mut file = std::fs::File::create(&path)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(RAW_WRITE_CHUNK as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    drop(file);
    std::fs::remove_file(path)
}

/// The full-checkpoint workloads of a backend with `keys` `ValueState<u64>` keys, on the
/// disk of `dir`, with throughput in bytes (the snapshot's size):
///
/// - `checkpoint_write/{name}/{keys}`: a full checkpoint end to end (synchronous phase,
///   asynchronous write into `chk-1/`, `_metadata` commit);
/// - `checkpoint_write/raw_sequential_write/{keys}`: [`raw_sequential_write`] of as many
///   bytes as that snapshot, in the same run;
/// - `checkpoint_restore/{name}/{keys}`: a restore of every key group, values decoded;
/// - `checkpoint_restore_quarter/{name}/{keys}`: a restore of subtask 0 of 4 (a quarter of
///   the key groups); the share of the snapshot's bytes it reads is printed.
///
/// # Panics
/// When the backend or the store fails, naming the operation.
pub fn checkpoint_write_and_restore<F: StateBackend>(
    c: &mut Criterion,
    name: &str,
    factory: &F,
    keys: u64,
    dir: &Path,
) {
    let label = count_label(keys);
    let key_list = shuffled_keys(keys, SEED);
    let backend = keyed_backend(factory).expect("create the keyed backend");
    populate_values(&backend, &key_list).expect("populate value state");
    drop(key_list);
    let mut store = DiskStore::new(dir).expect("open the checkpoint store");

    let (job, point) = checkpoint_into(&backend, &mut store).expect("write a checkpoint");
    let size = handle_bytes(&keyed_handles(&point));
    eprintln!("checkpoint_write/{name}/{label}: the snapshot is {size} bytes");

    let mut group = c.benchmark_group("checkpoint_write");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if keys > 2_000_000 { 20 } else { 5 }));
    group.throughput(Throughput::Bytes(size));
    group.bench_function(format!("{name}/{label}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let (job, point) = checkpoint_into(&backend, &mut store).expect("checkpoint");
                total += start.elapsed();
                black_box(point);
                store.remove_job(&job);
            }
            total
        });
    });
    group.bench_function(format!("raw_sequential_write/{label}"), |b| {
        b.iter(|| raw_sequential_write(dir, size).expect("raw sequential write"));
    });
    group.finish();

    let mut group = c.benchmark_group("checkpoint_restore");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if keys > 2_000_000 { 30 } else { 5 }));
    group.throughput(Throughput::Bytes(size));
    group.bench_function(format!("{name}/{label}"), |b| {
        b.iter(|| {
            let (restored, _) = restore_values(
                factory,
                store.store(),
                &point,
                KeyGroupRange::all(MAX_PARALLELISM),
            )
            .expect("restore");
            assert_eq!(restored as u64, keys, "every key restored");
        });
    });
    group.finish();

    let quarter = KeyGroupRange::for_subtask(MAX_PARALLELISM, 4, 0).expect("a quarter");
    let (_, read) = restore_values(factory, store.store(), &point, quarter).expect("restore");
    eprintln!(
        "checkpoint_restore_quarter/{name}/{label}: read {read} of {size} bytes ({:.1}%)",
        read as f64 * 100.0 / size as f64
    );
    let mut group = c.benchmark_group("checkpoint_restore_quarter");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if keys > 2_000_000 { 20 } else { 5 }));
    group.throughput(Throughput::Bytes(read));
    group.bench_function(format!("{name}/{label}"), |b| {
        b.iter(|| restore_values(factory, store.store(), &point, quarter).expect("restore"));
    });
    group.finish();
    store.remove_job(&job);
}

/// Processing throughput (`ValueState<u64>` updates over `keys` keys, in batches of 10k)
/// while nothing else runs (`processing/{name}/idle/{keys}`) and while checkpoints are
/// written back to back (`processing/{name}/during_checkpoints/{keys}`): the processing
/// thread takes the synchronous phase between two batches whenever the previous
/// checkpoint is written, as a task thread does, and another thread writes the
/// asynchronous phase into the store on `dir`. The number of checkpoints completed during
/// the measurement is printed.
///
/// # Panics
/// When the backend or the store fails, naming the operation.
pub fn processing_during_checkpoints<F>(
    c: &mut Criterion,
    name: &str,
    factory: &F,
    keys: u64,
    dir: &Path,
) where
    F: StateBackend,
{
    const BATCH: u64 = 10_000;
    let label = count_label(keys);
    let key_list = shuffled_keys(keys, SEED);
    let backend = keyed_backend(factory).expect("create the keyed backend");
    let state = populate_values(&backend, &key_list).expect("populate value state");

    let mut group = c.benchmark_group("processing");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(format!("{name}/idle/{label}"), |b| {
        let mut cycle = Cycle::new(&key_list);
        b.iter(|| {
            for _ in 0..BATCH {
                let key = cycle.next_item();
                state.update(&key, &(), key + 1).expect("value_update");
            }
        });
    });

    let stop = AtomicBool::new(false);
    let completed = AtomicU64::new(0);
    // Whether the writer is free for the next snapshot.
    let idle = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let (stop, completed, idle) = (&stop, &completed, &idle);
        let (to_writer, snapshots) = std::sync::mpsc::sync_channel::<Box<dyn AsyncSnapshot>>(1);
        let writer = scope.spawn(move || {
            let mut store = DiskStore::new(dir).expect("open the checkpoint store");
            for snapshot in snapshots {
                let (job, _) = write_checkpoint(snapshot, &mut store).expect("checkpoint");
                store.remove_job(&job);
                completed.fetch_add(1, Ordering::Relaxed);
                idle.store(true, Ordering::Release);
            }
        });
        group.bench_function(format!("{name}/during_checkpoints/{label}"), |b| {
            let mut cycle = Cycle::new(&key_list);
            b.iter(|| {
                if !stop.load(Ordering::Relaxed) && idle.swap(false, Ordering::Acquire) {
                    let snapshot = backend.snapshot(CheckpointId(1)).expect("snapshot");
                    to_writer.send(snapshot).expect("the checkpoint thread");
                }
                for _ in 0..BATCH {
                    let key = cycle.next_item();
                    state.update(&key, &(), key + 2).expect("value_update");
                }
            });
        });
        stop.store(true, Ordering::Relaxed);
        drop(to_writer);
        writer.join().expect("the checkpoint thread");
    });
    group.finish();
    eprintln!(
        "processing/{name}/during_checkpoints/{label}: {} checkpoints completed meanwhile",
        completed.load(Ordering::Relaxed)
    );
}
