//! The state model of Cornerstone: keyed and operator state with Flink's semantics, key
//! groups, TTL, the snapshot contract and the stream-factory trait that checkpoint storage
//! implements.
//!
//! ```
//! use cornerstone_backend_api::operator::OperatorStateBackend;
//! use cornerstone_backend_api::rescale::redistribute_operator_state;
//! use cornerstone_backend_api::spi::MemoryCheckpointStorage;
//! use cornerstone_backend_api::{CheckpointId, StateReader};
//!
//! // Two subtasks keep the offsets of the partitions they read.
//! let storage = MemoryCheckpointStorage::new();
//! let streams = storage.stream_factory(CheckpointId(1));
//! let mut snapshots = Vec::new();
//! for subtask in 0..2u64 {
//!     let backend = OperatorStateBackend::new();
//!     let offsets = backend.list_state::<(u64, u64)>("offsets")?;
//!     offsets.add_all([(subtask * 2, 100), (subtask * 2 + 1, 200)]);
//!     // Synchronous phase, then the asynchronous phase writes through the stream factory.
//!     let written = backend.snapshot(CheckpointId(1)).write(&streams)?;
//!     snapshots.push(written.operator);
//! }
//!
//! // Restore at parallelism 4: the four partitions are split, one per subtask.
//! let assigned = redistribute_operator_state(&snapshots, 4)?;
//! let reader: &dyn StateReader = &storage;
//! for handles in &assigned {
//!     let restored = OperatorStateBackend::restore(handles, Some(reader))?;
//!     assert_eq!(restored.list_state::<(u64, u64)>("offsets")?.get().len(), 1);
//! }
//! # Ok::<_, cornerstone_backend_api::Error>(())
//! ```
//!
//! # Where things are
//! - keyed state: [`KeyedStateBackendExt`] creates [`ValueState`], [`ListState`],
//!   [`MapState`], [`ReducingState`] and [`AggregatingState`] from descriptors; backends
//!   implement [`KeyedStateBackend`] (three table primitives, see [`spi::table`]) and
//!   [`CheckpointableBackend`] (snapshots), and are created by a [`StateBackend`];
//! - [`timer`]: event-time and processing-time timers per key and namespace
//!   ([`TimerService`]), kept in the backend and checkpointed by key group;
//! - [`keygroup`]: key groups and their assignment to subtasks;
//! - [`operator`]: operator list, union and broadcast state;
//! - [`stream`] and [`handles`]: the snapshot contract and the plain-data handles;
//! - [`spi::format`]: every stored format's framing, bounded decoders and explicit encoding of
//!   the handles (the byte layouts are in `docs/format.md` in the repository);
//! - [`spi::keyed_format`]: the key-group-indexed stream of full keyed snapshots;
//! - [`rescale`]: state assignment when the parallelism changes;
//! - `conformance` (feature `conformance`): the suite that every backend runs.
//!
//! # Names
//! One name per concept, in every crate of the workspace:
//! - a **state backend** ([`StateBackend`]: `MemoryStateBackend`, `FsStateBackend`,
//!   `RocksDbStateBackend`) is what a job is configured with; it creates the keyed state
//!   backend of each subtask;
//! - a **keyed state backend** ([`KeyedStateBackend`]) is one subtask's instance; its side
//!   that does not depend on the key type, snapshots and their lifecycle, is the
//!   [`CheckpointableBackend`];
//! - a **state** ([`ValueState`], [`ListState`], ...) is the handle operator code holds; a
//!   **table** ([`spi::table`]) is what a backend implements under it;
//! - **operator state** ([`operator`]) is an operator's non-keyed state (list, union,
//!   broadcast), kept by an [`OperatorStateBackend`](operator::OperatorStateBackend);
//! - in checkpoint metadata, an operator's record is its `OperatorState` (Flink's name)
//!   and its identity an `OperatorSpec` (uid, name, parallelism, max parallelism);
//! - a **snapshot** is what one backend writes for one checkpoint or savepoint; a
//!   **checkpoint** (`chk-N/`) is owned and pruned by the job, a **savepoint** by the user;
//! - a **key group** is the unit of keyed state that moves when the parallelism changes.
//!
//! How the crates fit together, the path of a state write to a committed `_metadata` and
//! where each rule lives: `docs/ARCHITECTURE.md` in the repository.

pub mod backend;
pub mod clock;
pub mod descriptor;
pub mod error;
pub mod handles;
pub mod identity;
pub mod keygroup;
pub mod migration;
pub mod operator;
pub mod rescale;
pub mod spi;
pub mod state;
pub mod stream;
pub mod timer;
pub mod ttl;
mod ttl_table;

#[cfg(any(test, feature = "conformance"))]
#[doc(hidden)]
pub mod conformance;

pub use backend::{
    AsyncSnapshot, CheckpointableBackend, KeyedBackendParams, KeyedStateBackend,
    KeyedStateBackendExt, StateBackend,
};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use descriptor::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, StateKey, StateKind, StateMeta, StateValue, ValueStateDescriptor,
    VoidNamespace,
};
pub use error::{Error, ErrorKind, Result};
pub use handles::{
    ChangelogSegment, ChangelogStateHandle, CheckpointId, ContentMismatch, Distribution,
    FileStateHandle, IncrementalStateHandle, KeyGroupsStateHandle, KeyedStateHandle,
    NamedStateFile, OperatorStateHandle, OperatorStateMeta, StateScope, StreamStateHandle,
    SubtaskState,
};
pub use identity::StateType;
pub use keygroup::{
    DEFAULT_MAX_PARALLELISM, KeyGroupAssigner, KeyGroupRange, MAX_PARALLELISM_UPPER_BOUND,
    key_group_for_key, operator_index_for_key_group,
};
pub use state::{AggregatingState, ListState, MapState, ReducingState, ValueState};
pub use stream::{CheckpointOutputStream, CheckpointStreamFactory, StateReader};

pub use timer::{TimeDomain, Timer, TimerService};
pub use ttl::{StateTtlConfig, StateVisibility, UpdateType};
