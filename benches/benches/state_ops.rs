//! Per-operation throughput of keyed state: the memory backend (its states owned by the
//! bench thread, the default), the same with `HeapThreading::Shared` (a lock per access),
//! the fs backend in changelog mode (the same tables, each write also recorded in a change
//! set; no checkpoint is taken, so the sets hold every key written), then the raw hash-map
//! baselines. `cargo bench -p cornerstone-benches --bench state_ops`.

use cornerstone_backend_fs::{ChangelogOptions, FsStateBackend};
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

fn fs_changelog(c: &mut Criterion) {
    let factory = FsStateBackend::new().incremental(ChangelogOptions::new());
    state_ops(c, "fs_changelog", &factory);
}

fn raw(c: &mut Criterion) {
    raw_state_ops(c);
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = memory, memory_shared, fs_changelog, raw
}
criterion_main!(benches);
