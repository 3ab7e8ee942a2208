//! One-shot restore of 10M timers (1M `u64` keys × 10 event-time timers, namespace `u64`,
//! the workload of the `timers` bench at ten times the keys): snapshot size, restore time
//! and peak memory, for the memory backend and, with the `rocksdb` feature, the RocksDB
//! backend (incremental checkpoint and full key-group-indexed snapshot). Criterion would
//! repeat each restore at least ten times; one timing per phase is enough at this size.
//!
//! ```sh
//! cargo bench -p cornerstone-benches --bench timers_restore                      # memory
//! cargo bench -p cornerstone-benches --features rocksdb --bench timers_restore   # + RocksDB
//! CORNERSTONE_TIMER_KEYS=100000 cargo bench -p cornerstone-benches --bench timers_restore
//! ```
//!
//! A restore is timed from `create_keyed_backend` until the restored timer service has
//! answered `next_timer` (the memory backend decodes timer records when the queue is first
//! asked for; RocksDB loads each key group's timer cache then). Memory: the peak of Rust
//! allocations (`peak_alloc`) and the peak resident set size (`VmHWM`, reset through
//! `/proc/self/clear_refs` before each phase; it includes RocksDB's C++ allocations and
//! freed pages the allocator kept), both in MiB. Without `--bench` (`cargo test`) it runs
//! 10k timers as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use cornerstone_backend_api::timer::TimeDomain;
use cornerstone_backend_api::{
    KeyGroupRange, KeyedBackendParams, KeyedStateBackend, KeyedStateHandle, StateBackend,
    StateReader,
};
use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_benches::timers::timers;
use cornerstone_benches::{
    MAX_PARALLELISM, TIMERS_PER_KEY, checkpoint_into as checkpoint, count_label, timer_service,
};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Starts a memory measurement: resets the Rust heap peak and the peak RSS.
fn reset_peaks() {
    HEAP.reset_peak_usage();
    // Best effort: without it VmHWM is the peak since the process started.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak RSS (`VmHWM`) in MiB, if the kernel reports it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn peaks() -> String {
    format!(
        "heap peak {:.0} MiB (now {:.0}), peak RSS {} MiB",
        HEAP.peak_usage_as_mb(),
        HEAP.current_usage_as_mb(),
        peak_rss_mib().map_or_else(|| "?".to_string(), |m| m.to_string())
    )
}

fn params() -> KeyedBackendParams {
    KeyedBackendParams::new(MAX_PARALLELISM, KeyGroupRange::all(MAX_PARALLELISM))
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Registers the workload's timers; returns the time it took.
fn fill<B: KeyedStateBackend<u64>>(backend: &B, keys: u64) -> Duration {
    let service = timer_service(backend).expect("timer service");
    let start = Instant::now();
    for t in timers(keys, TIMERS_PER_KEY) {
        service
            .register_event_time_timer(&t.key, &t.namespace, t.timestamp)
            .expect("register");
    }
    start.elapsed()
}

/// Restores `handles` into a backend of `factory` and opens its timer service; checks the
/// timers are all there (untimed).
fn restore<F: StateBackend>(
    label: &str,
    factory: &F,
    handles: Vec<KeyedStateHandle>,
    storage: &MemoryCheckpointStorage,
    expected: u64,
) -> F::Backend<u64> {
    let reader: Arc<dyn StateReader> = Arc::new(storage.clone());
    reset_peaks();
    let start = Instant::now();
    let backend = factory
        .create_keyed_backend::<u64>(params().restore(handles, Some(reader)))
        .expect("restore");
    let service = timer_service(&backend).expect("timer service");
    let next = service
        .next_timer(TimeDomain::EventTime)
        .expect("next timer");
    let took = start.elapsed();
    println!("{label}: restore {} ({})", secs(took), peaks());
    assert!(next.is_some(), "restored timers");
    let n = service.num_timers(TimeDomain::EventTime).expect("count");
    assert_eq!(n as u64, expected, "{label}: restored timers");
    backend
}

fn memory(keys: u64) {
    let n = keys * TIMERS_PER_KEY;
    let label = format!("memory/{}x{TIMERS_PER_KEY}", count_label(keys));
    let factory = MemoryStateBackend::new().max_state_size(usize::MAX / 2);
    let storage = MemoryCheckpointStorage::new();
    let handles = {
        reset_peaks();
        let backend = factory
            .create_keyed_backend::<u64>(params())
            .expect("backend");
        let took = fill(&backend, keys);
        println!(
            "{label}: registered {n} timers in {} ({})",
            secs(took),
            peaks()
        );
        let (handles, bytes, took) = checkpoint(&backend, 1, &storage);
        println!("{label}: snapshot {bytes} B, written in {}", secs(took));
        handles
    };
    drop(restore(&label, &factory, handles, &storage, n));
}

#[cfg(feature = "rocksdb")]
fn rocksdb(keys: u64) {
    use cornerstone_backend_rocksdb::RocksDbStateBackend;

    let n = keys * TIMERS_PER_KEY;
    let label = format!("rocksdb/{}x{TIMERS_PER_KEY}", count_label(keys));
    let dir = tempfile::tempdir().expect("a temp dir");
    let incremental = RocksDbStateBackend::new().working_dir(dir.path());
    let full = RocksDbStateBackend::new()
        .working_dir(dir.path())
        .incremental(false);
    let storage = MemoryCheckpointStorage::new();
    let (handles, bytes) = {
        reset_peaks();
        let backend = incremental
            .create_keyed_backend::<u64>(params())
            .expect("backend");
        let took = fill(&backend, keys);
        println!(
            "{label}: registered {n} timers in {} ({})",
            secs(took),
            peaks()
        );
        let (handles, bytes, took) = checkpoint(&backend, 1, &storage);
        println!(
            "{label}: incremental checkpoint {bytes} B (every SST), written in {}",
            secs(took)
        );
        (handles, bytes)
    };
    let referenced: u64 = handles
        .iter()
        .flat_map(KeyedStateHandle::streams)
        .map(|s| s.size())
        .sum();
    assert_eq!(
        referenced, bytes,
        "a first checkpoint uploads what it references"
    );
    // Restoring the incremental checkpoint, into a backend that writes full snapshots.
    let restored = restore(&format!("{label}/incremental"), &full, handles, &storage, n);
    let (full_handles, full_bytes, took) = checkpoint(&restored, 2, &storage);
    println!(
        "{label}: full snapshot {full_bytes} B, written in {}",
        secs(took)
    );
    drop(restored);
    drop(restore(
        &format!("{label}/full"),
        &incremental,
        full_handles,
        &storage,
        n,
    ));
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let keys = std::env::var("CORNERSTONE_TIMER_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 1_000 });
    memory(keys);
    #[cfg(feature = "rocksdb")]
    rocksdb(keys);
}
