//! Checkpoint storage of Cornerstone on any OpenDAL service: Flink's layout, the versioned
//! `_metadata` format, the commit protocol, retention, cleanup policies, savepoints, restore
//! and a read-only inspection API.
//!
//! ```
//! use std::io::Write;
//! use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, StateScope, SubtaskState};
//! use cornerstone_backend_api::{OperatorStateHandle, stream::read_stream};
//! use cornerstone_checkpoint_store::{
//!     CheckpointConfig, CheckpointStore, ClaimMode, CompletedCheckpointStore, OperatorSpec,
//! };
//!
//! # let dir = tempfile::tempdir()?;
//! let store = CheckpointStore::local(dir.path())?;
//! let job = CompletedCheckpointStore::open(&store, "job-1", CheckpointConfig::default())?;
//!
//! // A backend writes its snapshot through the checkpoint's stream factory...
//! let mut pending = job.begin_checkpoint(CheckpointId(1))?;
//! let streams = pending.stream_factory();
//! let mut out = streams.create(StateScope::Exclusive)?;
//! out.write_all(&vec![7u8; 64 * 1024])?; // above the 20 KiB inline threshold: a file
//! let handle = out.close()?;
//! let state = SubtaskState {
//!     keyed: vec![],
//!     operator: vec![OperatorStateHandle { states: Default::default(), stream: handle.clone() }],
//! };
//! pending.add_subtask_state(&OperatorSpec::new("source-uid", "Source", 1, 128), 0, state)?;
//! // ... and the commit writes `_metadata` last.
//! let done = pending.commit()?;
//! assert_eq!(done.metadata_path, "job-1/chk-1/_metadata");
//!
//! // After a restart: recover, resolve the latest checkpoint and read the state back.
//! let job = CompletedCheckpointStore::open(&store, "job-1", CheckpointConfig::default())?;
//! assert_eq!(job.checkpoint_ids(), vec![CheckpointId(1)]);
//! let point = store.resolve("job-1")?;
//! let reader = job.restore(&point, ClaimMode::Claim)?;
//! assert_eq!(read_stream(&handle, Some(&reader))?, vec![7u8; 64 * 1024]);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//! - [`layout`]: every path name (`chk-N/`, `_metadata`, `shared/`, `taskowned/`,
//!   `savepoint-…/`);
//! - [`metadata`] and [`codec`]: the `_metadata` content and its versioned format (the
//!   byte layout is in `docs/format.md` in the repository);
//! - [`CheckpointStore`]: the operator, the stream factory ([`StoreStreamFactory`]) and the
//!   state reader ([`StoreStateReader`]);
//! - [`CompletedCheckpointStore`]: commit, retention, cleanup policies, savepoints, restore;
//! - [`nonblocking`]: the same operations as `async` methods for any tokio runtime. The
//!   store's storage operations are implemented once, `async`; the blocking API is a thin
//!   layer over them for threads outside any tokio runtime (see [`CheckpointStore`]'s
//!   "Blocking");
//! - [`status`]: the one classification of a `chk-N/` directory (complete, in progress,
//!   abandoned, corrupt, newer format) that every reader and deleter uses;
//! - [`lease`]: one writer per job directory (epochs that fence older writers) and
//!   checkpoint ids that never repeat;
//! - [`inspect`]: read-only queries for the command-line tool;
//! - [`flink`]: a bounded reader of Apache Flink's own `_metadata` files (versions 3 to 7).
//!
//! How the crates fit together, the path of a state write to a committed `_metadata` and
//! where each rule lives: `docs/ARCHITECTURE.md` in the repository.

mod completed;
mod error;
mod location;
mod store;

pub mod codec;
pub mod flink;
pub mod inspect;
pub mod layout;
pub mod lease;
pub mod metadata;
pub mod nonblocking;
pub mod status;

pub use codec::MetadataCompression;
pub use completed::{
    CheckpointConfig, ClaimMode, CleanupPolicy, CompletedCheckpoint, CompletedCheckpointStore,
    JobStatus, PendingCheckpoint,
};
pub use location::{Location, StoragePolicy, split_location_query};
pub use metadata::{CheckpointMetadata, FORMAT_VERSION, OperatorSpec, OperatorState, SnapshotKind};
pub use store::{
    CheckpointStore, DEFAULT_INLINE_THRESHOLD, DEFAULT_WRITE_CHUNK_SIZE, DirSync, StoreStateReader,
    StoreStreamFactory,
};

/// Re-exported so that callers can build operators with layers without a direct dependency.
pub use opendal;
