//! The memory of the state itself: 1M `ValueState<u64>` keys (namespace `()`) in the
//! memory backend, beside a raw `hashbrown::HashMap<u64, u64>` holding the same pairs, and,
//! with the `rocksdb` feature, in the RocksDB backend. A one-shot measurement, not a
//! criterion timing.
//!
//! ```sh
//! cargo bench -p cornerstone-benches --bench state_memory                      # heap + raw
//! cargo bench -p cornerstone-benches --features rocksdb --bench state_memory   # + RocksDB
//! ```
//!
//! Heap and raw: the Rust heap in use after populating minus before (`peak_alloc`), per
//! key. The change log of the fs backend's changelog mode: the heap grown when every key
//! changes after a checkpoint, per key recorded and per key changed. RocksDB keeps its
//! data in C++ memory (memtables, block cache) and on disk, which the Rust allocator does
//! not see: the resident set size grows by (`VmRSS` after minus before) and the bytes of
//! its working directory (SST and log files) are reported per key instead. Without
//! `--bench` (`cargo test`) it runs 10k keys as a smoke test.

use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_benches::{count_label, keyed_backend, populate_values, shuffled_keys};

/// The key order (any fixed seed: the memory does not depend on it).
const SEED: u64 = 7;
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Bytes of the Rust heap in use.
fn heap_bytes() -> f64 {
    HEAP.current_usage() as f64
}

fn per_key(bytes: f64, keys: u64) -> String {
    format!("{:.1} B/key", bytes / keys as f64)
}

fn main() {
    let keys: u64 = if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        10_000
    };
    let label = count_label(keys);
    let key_list = shuffled_keys(keys, SEED);

    // The raw baseline: the same pairs in one hash map, as `state_ops`' raw_hashmap.
    let before = heap_bytes();
    let raw: hashbrown::HashMap<u64, u64> = key_list.iter().map(|&k| (k, k)).collect();
    let raw_bytes = heap_bytes() - before;
    println!(
        "state_memory/raw_hashmap/{label}: {}",
        per_key(raw_bytes, keys)
    );
    drop(raw);

    let before = heap_bytes();
    let backend = keyed_backend(&MemoryStateBackend::new()).expect("create the backend");
    let state = populate_values(&backend, &key_list).expect("populate value state");
    let heap = heap_bytes() - before;
    println!(
        "state_memory/memory/{label}: {} ({:.2}x raw)",
        per_key(heap, keys),
        heap / raw_bytes
    );
    drop((state, backend));

    changelog(&key_list, &label, raw_bytes);

    #[cfg(feature = "rocksdb")]
    rocksdb(&key_list, &label);
}

/// The fs backend's changelog mode: the state itself, then its change log: every key
/// updated once after a checkpoint confirmed complete (which leaves the key groups
/// unshared, so the updates copy nothing), the heap grown per key recorded and per key
/// changed.
fn changelog(key_list: &[u64], label: &str, raw_bytes: f64) {
    use cornerstone_backend_api::spi::MemoryCheckpointStorage;
    use cornerstone_backend_api::{CheckpointId, CheckpointableBackend};
    use cornerstone_backend_fs::{ChangelogOptions, FsStateBackend};

    let factory = FsStateBackend::new().incremental(ChangelogOptions::new());
    let before = heap_bytes();
    let backend = keyed_backend(&factory).expect("create the backend");
    let state = populate_values(&backend, key_list).expect("populate value state");
    let storage = MemoryCheckpointStorage::new();
    let id = CheckpointId(1);
    let snapshot = backend.snapshot(id).expect("snapshot");
    snapshot
        .write(&storage.stream_factory(id))
        .expect("write the snapshot");
    backend.notify_checkpoint_complete(id).expect("confirm");
    // The confirmation dropped the changes of the populating; the snapshot is not needed.
    drop(storage);
    let keys = key_list.len() as u64;
    let state_bytes = heap_bytes() - before;
    println!(
        "state_memory/fs_changelog/{label}: the state: {} ({:.2}x raw)",
        per_key(state_bytes, keys),
        state_bytes / raw_bytes
    );
    let before = heap_bytes();
    for &key in key_list {
        state.update(&key, &(), key + 1).expect("update");
    }
    let grown = heap_bytes() - before;
    // A key group stops recording updates once half its keys are recorded (it is then
    // written whole): about half the keys are in the logs.
    let recorded = backend.pending_changes().expect("pending changes");
    println!(
        "state_memory/fs_changelog/{label}: the change log after every key changed: \
         {recorded} keys recorded, {} per recorded key, {} per changed key",
        per_key(grown, recorded as u64),
        per_key(grown, keys)
    );
}

/// The resident set size (`VmRSS`) in bytes, if the kernel reports it.
#[cfg(feature = "rocksdb")]
fn rss_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// The bytes of the files under `dir`.
#[cfg(feature = "rocksdb")]
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

#[cfg(feature = "rocksdb")]
fn rocksdb(key_list: &[u64], label: &str) {
    use cornerstone_backend_rocksdb::RocksDbStateBackend;

    let keys = key_list.len() as u64;
    let dir = tempfile::tempdir().expect("a working directory");
    let rss_before = rss_bytes();
    let factory = RocksDbStateBackend::new().working_dir(dir.path());
    let backend = keyed_backend(&factory).expect("create the backend");
    let state = populate_values(&backend, key_list).expect("populate value state");
    let rss = rss_bytes().zip(rss_before).map_or_else(
        || "?".to_string(),
        |(after, before)| per_key(after - before, keys),
    );
    println!(
        "state_memory/rocksdb/{label}: resident set +{rss}, working directory {}",
        per_key(dir_bytes(dir.path()) as f64, keys)
    );
    drop((state, backend));
}
