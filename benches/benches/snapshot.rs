//! Snapshots of 1M `ValueState<u64>` keys: the synchronous phase, the first write after
//! it (copy-on-write of one key group), and the asynchronous write, beside raw baselines.
//! `cargo bench -p cornerstone-benches --bench snapshot`.

use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_benches::{
    criterion_config, raw_snapshot_baselines, snapshot_async, snapshot_sync,
};
use criterion::{Criterion, criterion_group, criterion_main};

const KEYS: u64 = 1_000_000;

fn memory(c: &mut Criterion) {
    // The default 5 MiB inline cap is far below a 1M-key snapshot.
    let factory = MemoryStateBackend::new().max_state_size(1 << 30);
    snapshot_sync(c, "memory", &factory, KEYS);
    snapshot_async(c, "memory", &factory, KEYS);
}

fn raw(c: &mut Criterion) {
    raw_snapshot_baselines(c, KEYS);
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = memory, raw
}
criterion_main!(benches);
