//! Incremental checkpoints of the fs backend (its changelog mode) beside full ones and, with
//! the `rocksdb` feature, RocksDB's incremental checkpoints, in one run: 10M
//! `ValueState<u64>` keys, 1% of them updated (uniformly at random) between checkpoints.
//! The cost of changelog mode per state operation is in the `state_ops` bench
//! (`fs_changelog` beside `memory`, the same heap tables without it).
//!
//! ```sh
//! cargo bench -p cornerstone-benches --bench changelog                      # fs
//! cargo bench -p cornerstone-benches --features rocksdb --bench changelog   # + RocksDB
//! ```
//!
//! Checkpoints go to a temporary directory under `CORNERSTONE_BENCH_DIR` (default: the
//! system's temporary directory), which should be on the disk to measure.

use cornerstone_backend_fs::{ChangelogOptions, FsStateBackend};
use cornerstone_benches::criterion_config;
use cornerstone_benches::incremental::incremental_checkpoints;
use criterion::{Criterion, criterion_group, criterion_main};

const KEYS: u64 = 10_000_000;
/// Keys updated between two checkpoints: 1%.
const CHURN: u64 = KEYS / 100;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("CORNERSTONE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("create the bench directory")
}

/// Changelog mode without a materialization in the chain measured: every checkpoint after
/// the first is a delta.
fn changelog() -> FsStateBackend {
    FsStateBackend::new().incremental(
        ChangelogOptions::new()
            .max_deltas(u32::MAX)
            .max_delta_percent(u32::MAX),
    )
}

fn fs(c: &mut Criterion) {
    let dir = bench_dir();
    incremental_checkpoints(c, "fs_changelog", &changelog(), KEYS, CHURN, dir.path());
    incremental_checkpoints(c, "fs", &FsStateBackend::new(), KEYS, CHURN, dir.path());
}

fn rocksdb(c: &mut Criterion) {
    #[cfg(feature = "rocksdb")]
    {
        let dir = bench_dir();
        let factory =
            cornerstone_backend_rocksdb::RocksDbStateBackend::new().working_dir(dir.path());
        incremental_checkpoints(c, "rocksdb", &factory, KEYS, CHURN, dir.path());
    }
    #[cfg(not(feature = "rocksdb"))]
    let _ = c;
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = fs, rocksdb
}
criterion_main!(benches);
