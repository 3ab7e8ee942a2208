//! Per-operation throughput of keyed state: the memory backend, then the raw hash-map
//! baselines. `cargo bench -p cornerstone-benches --bench state_ops`.

use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_benches::{criterion_config, raw_state_ops, state_ops};
use criterion::{Criterion, criterion_group, criterion_main};

fn memory(c: &mut Criterion) {
    state_ops(c, "memory", &MemoryStateBackend::new());
}

fn raw(c: &mut Criterion) {
    raw_state_ops(c);
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = memory, raw
}
criterion_main!(benches);
