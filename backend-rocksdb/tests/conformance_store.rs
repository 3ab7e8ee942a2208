//! The shared conformance suite against the RocksDB backend with incremental snapshots (its
//! default) through the real checkpoint store (`cornerstone_testkit::harness::StoreHarness`):
//! on the local filesystem, on OpenDAL's memory service and, a representative subset, on S3.
//! `conformance.rs` and `conformance_full.rs` run the suite over a `MemoryCheckpointStorage`
//! with incremental and full snapshots.

mod common;

use common::RocksHarness;
use cornerstone_testkit::store::TestStore;

/// On OpenDAL's fs service in a temporary directory.
mod local {
    use super::{RocksHarness, TestStore};

    cornerstone_backend_api::conformance_suite!(RocksHarness::through_store(TestStore::fs()));
}

/// On OpenDAL's memory service.
mod memory {
    use super::{RocksHarness, TestStore};

    cornerstone_backend_api::conformance_suite!(RocksHarness::through_store(TestStore::memory()));
}

/// A representative subset on S3 (SeaweedFS): the whole suite takes too long there (see
/// `cornerstone_testkit::s3_conformance_subset!`).
mod s3 {
    use super::{RocksHarness, TestStore};

    cornerstone_testkit::s3_conformance_subset!(
        TestStore::s3(module_path!()).map(RocksHarness::through_store)
    );
}
