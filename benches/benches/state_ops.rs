//! Per-operation throughput of keyed state: the memory backend (its states owned by the
//! bench thread, the default), the same with `HeapThreading::Shared` (a lock per access),
//! then the raw hash-map baselines. `cargo bench -p cornerstone-benches --bench state_ops`.

use cornerstone_backend_memory::{HeapThreading, MemoryStateBackend};
use cornerstone_benches::{criterion_config, raw_state_ops, state_ops};
use criterion::{Criterion, criterion_group, criterion_main};

fn memory(c: &mut Criterion) {
    state_ops(c, "memory", &MemoryStateBackend::new());
}

fn memory_shared(c: &mut Criterion) {
    let factory = MemoryStateBackend::new().threading(HeapThreading::Shared);
    state_ops(c, "memory_shared", &factory);
}

fn raw(c: &mut Criterion) {
    raw_state_ops(c);
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = memory, memory_shared, raw
}
criterion_main!(benches);
