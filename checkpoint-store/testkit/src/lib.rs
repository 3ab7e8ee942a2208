//! Test support of the Cornerstone workspace, shared by the tests of every crate (a
//! dev-dependency only; not published): real storages and real components, no mocks.
//!
//! ```
//! use cornerstone_backend_api::conformance;
//! use cornerstone_backend_api::{CheckpointId, StateScope};
//! use cornerstone_backend_memory::MemoryStateBackend;
//! use cornerstone_checkpoint_store::CompletedCheckpointStore;
//! use cornerstone_testkit::checkpoints::commit_streams;
//! use cornerstone_testkit::harness::StoreHarness;
//! use cornerstone_testkit::store::{TestStore, all_files, files_config};
//!
//! // A checkpoint on OpenDAL's fs service in a temporary directory.
//! let s = TestStore::fs();
//! let job = CompletedCheckpointStore::open(&s.store, "job", files_config())?;
//! commit_streams(&job, 1, &[(StateScope::Exclusive, b"state")], &[])?;
//! assert_eq!(all_files(&s.store, "job/chk-1/").len(), 2); // the state file and `_metadata`
//!
//! // A case of the backend conformance suite, through the real checkpoint store.
//! conformance::snapshot_roundtrip_value(&StoreHarness::memory(MemoryStateBackend::new(), 0));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//! - [`store`]: [`TestStore`](store::TestStore), one storage a suite runs on (OpenDAL's `fs`
//!   service in a temp dir, OpenDAL's memory service, S3); [`storage_tests!`] generates a
//!   test per storage; small helpers (streams, states, files);
//! - [`s3`]: a SeaweedFS server on 127.0.0.1 started by the test, killed when dropped;
//! - [`faults`]: [`FailNthWrite`](faults::FailNthWrite), a fault layer around real OpenDAL
//!   services;
//! - [`disk`]: [`SimDisk`](disk::SimDisk), a local disk simulated for power cuts;
//! - [`harness`]: [`StoreHarness`](harness::StoreHarness), the backend conformance suite
//!   through the real checkpoint store, for any backend and storage, and
//!   [`s3_conformance_subset!`], the subset of the suite that runs on S3;
//! - [`checkpoints`]: checkpoints written the way several crates' tests write them;
//! - [`flink`]: the Apache Flink 2.3 fixtures of `testdata/flink-2.3/` (their manifests,
//!   temp copies, the mapping of Flink's absolute paths onto them).
//!
//! # S3
//! The S3 variants need `weed` (SeaweedFS; `scripts/seaweedfs.sh install`) and a checkpoint
//! store built with its `s3` feature (the crate under test's, or this crate's `s3` feature).
//! Without either they say why on stderr and return, unless `CORNERSTONE_REQUIRE_S3=1`
//! makes that a failure.
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed step of a test's set-up fails the test"
)]

#[doc(hidden)]
pub use cornerstone_backend_api as __backend_api;

pub mod checkpoints;
pub mod disk;
pub mod faults;
pub mod flink;
pub mod harness;
pub mod s3;
pub mod store;
