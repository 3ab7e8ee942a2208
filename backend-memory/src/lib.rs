//! The memory state backend of Cornerstone: keyed state as typed objects on the heap,
//! snapshots inline in checkpoint metadata, capped (5 MiB by default), like Flink's
//! `MemoryStateBackend`. The snapshot is one stream that the backend asks the checkpoint's
//! stream factory to keep inline (`CheckpointStreamFactory::create_inline`): the factory,
//! not the backend, makes the handle.
//!
//! ```
//! use cornerstone_backend_api::{
//!     CheckpointId, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt, CheckpointableBackend,
//!     StateBackend, ValueStateDescriptor,
//! };
//! use cornerstone_backend_api::spi::MemoryCheckpointStorage;
//! use cornerstone_backend_memory::MemoryStateBackend;
//!
//! let factory = MemoryStateBackend::new();
//! let backend = factory.create_keyed_backend::<String>(KeyedBackendParams::new(128, KeyGroupRange::all(128)))?;
//! let counts = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
//! counts.update(&"alice".to_string(), &(), 3)?;
//!
//! // Synchronous phase (no copy), then the asynchronous phase writes an inline stream.
//! let snapshot = backend.snapshot(CheckpointId(1))?;
//! counts.update(&"alice".to_string(), &(), 4)?; // not in checkpoint 1
//! let storage = MemoryCheckpointStorage::new();
//! let handles = snapshot.write(&storage.stream_factory(CheckpointId(1)))?;
//!
//! let restored = factory.create_keyed_backend::<String>(
//!     KeyedBackendParams::new(128, KeyGroupRange::all(128)).restore(handles.keyed, None),
//! )?;
//! let counts = restored.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
//! assert_eq!(counts.get(&"alice".to_string(), &())?, Some(3));
//! # Ok::<_, cornerstone_backend_api::Error>(())
//! ```
//!
//! # Threads
//! A keyed backend and its states (its timers too) are used on the thread that created the
//! backend, as Flink runs a subtask on its task thread: the states are plain hash maps and
//! the timers ordered sets, with no lock or atomic operation per access, and a use from
//! another thread is an error ([`HeapThreading::Owner`], the default). The asynchronous
//! phase of a snapshot runs on any thread. An engine that moves a subtask between threads
//! (a multi-threaded async runtime) or shares its state between threads builds the backend
//! with [`HeapThreading::Shared`]: a lock per access. Both refuse a use of a state from
//! inside one of its own calls (such as a `transform` closure) with an error instead of a
//! deadlock.
//!
//! Timers ([`TimerService`](cornerstone_backend_api::TimerService)) are kept as an ordered
//! set per key group behind an `Arc`, copied on the first change after a snapshot as the
//! tables are; the synchronous phase of a snapshot copies no timer.
//!
//! How the crates fit together, the path of a state write to a committed `_metadata` and
//! where each rule lives: `docs/ARCHITECTURE.md` in the repository.

mod access;
mod backend;
mod capture;
mod changelog;
mod parallel;
mod restorable;
mod table;
mod timers;

pub use access::HeapThreading;
pub use backend::{
    ChangelogOptions, DEFAULT_MAX_STATE_SIZE, HeapBackendOptions, HeapKeyedStateBackend,
    HeapSnapshotStorage, MemoryStateBackend, NAME,
};
