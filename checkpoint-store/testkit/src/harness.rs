//! The conformance harness through the real checkpoint store: [`StoreHarness`] runs the
//! backend conformance suite (`cornerstone_backend_api::conformance_suite!`) for any backend
//! factory, with every snapshot written through a pending checkpoint of a
//! [`CompletedCheckpointStore`] and every restore reading through the store's range reader,
//! on any storage of [`TestStore`]: a local directory, OpenDAL's memory service, or S3 on the
//! SeaweedFS server.
//!
//! ```
//! use cornerstone_backend_api::conformance;
//! use cornerstone_backend_memory::MemoryStateBackend;
//! use cornerstone_testkit::harness::StoreHarness;
//!
//! // In a test crate, one `#[test]` per case:
//! // `cornerstone_backend_api::conformance_suite!(StoreHarness::local(MemoryStateBackend::new(), 0));`
//! conformance::snapshot_roundtrip_value(&StoreHarness::local(MemoryStateBackend::new(), 0));
//! conformance::snapshot_roundtrip_map(&StoreHarness::memory(MemoryStateBackend::new(), 0));
//! ```
//!
//! On S3 the harness is an `Option` (there may be no server here), and the whole suite takes
//! too long there (minutes for the three backends on a 2-core machine):
//! [`s3_conformance_subset!`](crate::s3_conformance_subset) runs a representative subset of
//! the cases, and returns from each test when there is no server.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use cornerstone_backend_api::conformance::Harness;
use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, StateBackend, StateReader};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, PendingCheckpoint,
};

use crate::store::TestStore;

/// The job the harness's checkpoints belong to.
pub const JOB: &str = "conformance-job";

/// Snapshots go through a [`CompletedCheckpointStore`] (job [`JOB`]) on a [`TestStore`]:
/// every stream factory is the one of a pending checkpoint, kept pending (so its files stay)
/// for the life of the harness; restores read through the store's range reader.
///
/// The capabilities the suite asks about ([`Harness::incremental_ttl_cleanup`],
/// [`Harness::full_snapshot_ttl_cleanup`]) default to those of the heap backends; a backend
/// that differs (RocksDB) sets them with [`with_incremental_ttl_cleanup`] and
/// [`with_full_snapshot_ttl_cleanup`].
///
/// [`with_incremental_ttl_cleanup`]: Self::with_incremental_ttl_cleanup
/// [`with_full_snapshot_ttl_cleanup`]: Self::with_full_snapshot_ttl_cleanup
pub struct StoreHarness<F> {
    // Dropped in this order: the pending checkpoints abort while their storage is there.
    pending: Mutex<Vec<PendingCheckpoint>>,
    checkpoints: CompletedCheckpointStore,
    factory: F,
    incremental_ttl_cleanup: bool,
    full_snapshot_ttl_cleanup: bool,
    confirms_checkpoints: bool,
    /// Kept for the life of the harness (a backend's working directory).
    kept: Vec<Box<dyn Any + Send + Sync>>,
    storage: TestStore,
}

impl<F: fmt::Debug> fmt::Debug for StoreHarness<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHarness")
            .field("factory", &self.factory)
            .field("storage", &self.storage.name)
            .field("store", &self.storage.store)
            .field("incremental_ttl_cleanup", &self.incremental_ttl_cleanup)
            .field("full_snapshot_ttl_cleanup", &self.full_snapshot_ttl_cleanup)
            .field("confirms_checkpoints", &self.confirms_checkpoints)
            .finish_non_exhaustive()
    }
}

impl<F> StoreHarness<F> {
    /// A harness over `factory` on `storage`, whose store keeps streams below
    /// `inline_threshold` bytes inline (0: every non-empty stream is a file).
    pub fn new(factory: F, storage: TestStore, inline_threshold: usize) -> Self {
        let checkpoints = CompletedCheckpointStore::open(
            &storage.store,
            JOB,
            CheckpointConfig::default().inline_threshold(inline_threshold),
        )
        .expect("open the job");
        StoreHarness {
            factory,
            storage,
            checkpoints,
            pending: Mutex::new(Vec::new()),
            incremental_ttl_cleanup: true,
            full_snapshot_ttl_cleanup: true,
            confirms_checkpoints: false,
            kept: Vec::new(),
        }
    }

    /// On OpenDAL's fs service in a new temporary directory ([`TestStore::fs`]).
    pub fn local(factory: F, inline_threshold: usize) -> Self {
        Self::new(factory, TestStore::fs(), inline_threshold)
    }

    /// On a new, empty OpenDAL memory service ([`TestStore::memory`]).
    pub fn memory(factory: F, inline_threshold: usize) -> Self {
        Self::new(factory, TestStore::memory(), inline_threshold)
    }

    /// On a new prefix of the shared SeaweedFS server ([`TestStore::s3`]); `None` after
    /// saying why when there is none here (and `CORNERSTONE_REQUIRE_S3` is not `1`).
    pub fn s3(factory: F, inline_threshold: usize, test: &str) -> Option<Self> {
        Some(Self::new(factory, TestStore::s3(test)?, inline_threshold))
    }

    /// Sets what [`Harness::incremental_ttl_cleanup`] answers (`true` unless set).
    #[must_use]
    pub fn with_incremental_ttl_cleanup(mut self, yes: bool) -> Self {
        self.incremental_ttl_cleanup = yes;
        self
    }

    /// Sets what [`Harness::full_snapshot_ttl_cleanup`] answers (`true` unless set).
    #[must_use]
    pub fn with_full_snapshot_ttl_cleanup(mut self, yes: bool) -> Self {
        self.full_snapshot_ttl_cleanup = yes;
        self
    }

    /// Sets what [`Harness::confirms_checkpoints`] answers (`false` unless set): `true`
    /// makes a backend with incremental checkpoints write chains in the cases.
    #[must_use]
    pub fn with_confirmed_checkpoints(mut self, yes: bool) -> Self {
        self.confirms_checkpoints = yes;
        self
    }

    /// Keeps `value` until the harness is dropped: what the factory needs alive, such as
    /// the temporary working directory of a RocksDB factory.
    #[must_use]
    pub fn keeping(mut self, value: impl Any + Send + Sync) -> Self {
        self.kept.push(Box::new(value));
        self
    }

    /// The storage the store is on (and its name, `fs`, `memory` or `s3`).
    pub fn storage(&self) -> &TestStore {
        &self.storage
    }

    /// The checkpoint store.
    pub fn store(&self) -> &CheckpointStore {
        &self.storage.store
    }

    /// The job's checkpoints.
    pub fn checkpoints(&self) -> &CompletedCheckpointStore {
        &self.checkpoints
    }
}

impl<F: StateBackend + Clone> Harness for StoreHarness<F> {
    type Factory = F;

    fn factory(&self) -> F {
        self.factory.clone()
    }

    fn stream_factory(&self, id: CheckpointId) -> Box<dyn CheckpointStreamFactory> {
        let pending = self
            .checkpoints
            .begin_checkpoint(id)
            .expect("begin a checkpoint");
        let streams = pending.stream_factory();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pending);
        Box::new((*streams).clone())
    }

    fn reader(&self) -> Option<Arc<dyn StateReader>> {
        Some(Arc::new(self.store().reader(self.checkpoints.job_dir())))
    }

    fn incremental_ttl_cleanup(&self) -> bool {
        self.incremental_ttl_cleanup
    }

    fn full_snapshot_ttl_cleanup(&self) -> bool {
        self.full_snapshot_ttl_cleanup
    }

    fn confirms_checkpoints(&self) -> bool {
        self.confirms_checkpoints
    }
}

/// Runs a representative subset of the conformance suite on S3, one `#[test]` per case: the
/// cases that write snapshots and read them back through storage (round trips of every
/// state kind, many keys, outstanding and concurrent asynchronous phases, a failed stream
/// write, a second snapshot cycle over restored state, a truncated file, a rescaled restore
/// (range reads), union operator state, timers, TTL timestamps and a savepoint).
///
/// The whole suite runs through the same harness on the local filesystem and on OpenDAL's
/// memory service. On S3 it takes too long for every test run: on a 2-core machine about
/// 45 s per heap backend and far more for RocksDB, whose
/// `corrupted_snapshot_byte_is_detected` alone takes a minute there (one restore per
/// corrupted byte); this subset takes about 10 to 15 s per backend, most of it starting
/// SeaweedFS.
///
/// The argument is an `Option` of a harness, evaluated once per test, such as
/// [`StoreHarness::s3`]: `None` (no SeaweedFS here; it said why) returns from the test.
///
/// ```no_run
/// use cornerstone_backend_memory::MemoryStateBackend;
/// use cornerstone_testkit::harness::StoreHarness;
///
/// cornerstone_testkit::s3_conformance_subset!(StoreHarness::s3(
///     MemoryStateBackend::new(),
///     0,
///     module_path!()
/// ));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! s3_conformance_subset {
    ($harness:expr) => {
        $crate::__backend_api::conformance_suite!(@each
            match $harness {
                Some(h) => h,
                None => return,
            };
            snapshot_roundtrip_value,
            snapshot_roundtrip_list,
            snapshot_roundtrip_map,
            snapshot_roundtrip_reducing_and_aggregating,
            snapshot_roundtrip_many_keys,
            two_snapshots_outstanding,
            ten_async_phases_at_once,
            failed_stream_write_leaves_backend_working,
            unregistered_restored_state_survives_second_cycle,
            truncated_snapshot_is_detected,
            rescale_4_to_6,
            operator_union_every_subtask_gets_all,
            timers_snapshot_roundtrip,
            timers_rescale_4_to_2,
            ttl_timestamps_survive_restore,
            savepoint_is_canonical,
        );
    };
}
