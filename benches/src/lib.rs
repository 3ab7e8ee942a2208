//! Criterion benchmarks of Cornerstone's state backends: one harness, generic over
//! [`StateBackend`], that runs the same workloads against every backend, and raw
//! baselines (plain hash maps) measured in the same run.
//!
//! ```
//! use cornerstone_backend_memory::MemoryStateBackend;
//! use cornerstone_benches::{Cycle, keyed_backend, populate_values, shuffled_keys};
//!
//! // What `value_get/memory/100k` does, on 1,000 keys and without criterion.
//! let backend = keyed_backend(&MemoryStateBackend::new())?;
//! let keys = shuffled_keys(1_000, 42);
//! let state = populate_values(&backend, &keys)?;
//! let mut cycle = Cycle::new(&keys);
//! let mut sum = 0;
//! for _ in 0..2_000 {
//!     let key = cycle.next_item();
//!     sum += state.get(&key, &())?.expect("every key is populated");
//! }
//! assert_eq!(sum, 2 * (0..1_000u64).sum::<u64>());
//! # Ok::<_, cornerstone_backend_api::Error>(())
//! ```
//!
//! # Workloads
//! - [`state_ops`]: `ValueState<u64>` get and update, `ListState<u64>` add, get and
//!   `for_each`, `MapState<u64, u64>` put, get and iterate, for one backend;
//!   [`raw_state_ops`]: the same on `hashbrown` maps plus the key-group computation;
//! - [`snapshot_sync`]: the synchronous phase of a snapshot and the first write after it
//!   (copy-on-write); [`snapshot_async`]: the asynchronous write of the snapshot;
//!   [`raw_snapshot_baselines`]: cloning and serializing a plain map of the same size;
//! - [`incremental::incremental_checkpoints`]: checkpoints after a share of the keys
//!   changed (bytes uploaded and time) and restores of the chain, for incremental
//!   checkpoints (the fs backend's changelog mode, RocksDB) beside full ones;
//! - [`timer_ops`]: registering, deleting and firing 100k keys × 10 event-time timers
//!   (namespace `u64`) through a backend's timer service; [`raw_heap_timer_ops`]: the same
//!   on a `BinaryHeap` + `HashSet` ([`timers`] module).
//!
//! Benchmark ids are `op/backend/detail`, e.g. `value_get/memory/100k`; per-operation
//! groups set [`Throughput::Elements`] so criterion prints operations per second.
//!
//! Every backend runs single-threaded with keys `u64`, namespace `()` (`u64` for timers), max parallelism
//! [`MAX_PARALLELISM`] and one backend owning all key groups.
//!
//! [`StateBackend`]: cornerstone_backend_api::StateBackend
//! [`Throughput::Elements`]: criterion::Throughput::Elements

pub mod incremental;
mod snapshot;
mod state;
pub mod storage;
mod support;
pub mod timers;

pub use snapshot::{raw_snapshot_baselines, snapshot_async, snapshot_sync};
pub use state::{LIST_KEYS, LIST_LEN, MAP_ENTRIES, MAP_KEYS, VALUE_KEYS, raw_state_ops, state_ops};
pub use support::{
    Cycle, ListBuild, MAX_PARALLELISM, checkpoint_into, count_label, criterion_config,
    keyed_backend, map_ops, per_op_group, populate_lists, populate_maps, populate_values,
    shuffled_keys, timed_in_chunks,
};
pub use timers::{
    BenchTimer, FireCursor, RawHeapTimers, TIMER_KEYS, TIMER_ROUND_SPAN, TIMER_SERVICE,
    TIMERS_PER_KEY, TimerBench, TimerWorkload, raw_heap_timer_ops, timed_fire, timer_groups,
    timer_ops, timer_service,
};
