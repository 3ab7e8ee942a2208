//! The filesystem backend against the local disk: full checkpoints of 1M and 10M
//! `ValueState<u64>` keys beside the disk's sequential write bandwidth, restores (all key
//! groups and a quarter), the synchronous phase at 10M keys, and processing throughput
//! while checkpoints are written; then the checkpoints and restores on one thread
//! (`fs_1thread`) for comparison. `cargo bench -p cornerstone-benches --bench fs`.
//!
//! Checkpoints go to a temporary directory under `CORNERSTONE_BENCH_DIR` (default: the
//! system's temporary directory), which should be on the disk to measure.

use cornerstone_backend_fs::FsStateBackend;
use cornerstone_benches::storage::{checkpoint_write_and_restore, processing_during_checkpoints};
use cornerstone_benches::{criterion_config, snapshot_sync};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("CORNERSTONE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("create the bench directory")
}

fn fs_1m(c: &mut Criterion) {
    let dir = bench_dir();
    checkpoint_write_and_restore(c, "fs", &FsStateBackend::new(), 1_000_000, dir.path());
    processing_during_checkpoints(c, "fs", &FsStateBackend::new(), 1_000_000, dir.path());
}

fn fs_10m(c: &mut Criterion) {
    let dir = bench_dir();
    snapshot_sync(c, "fs", &FsStateBackend::new(), 10_000_000);
    checkpoint_write_and_restore(c, "fs", &FsStateBackend::new(), 10_000_000, dir.path());
}

/// The same checkpoints and restores on one thread (`io_threads(1)`): what the parallel
/// asynchronous phase and restore gain on this machine.
fn fs_one_thread(c: &mut Criterion) {
    let dir = bench_dir();
    let serial = FsStateBackend::new().io_threads(1);
    checkpoint_write_and_restore(c, "fs_1thread", &serial, 1_000_000, dir.path());
    checkpoint_write_and_restore(c, "fs_1thread", &serial, 10_000_000, dir.path());
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = fs_1m, fs_10m, fs_one_thread
}
criterion_main!(benches);
