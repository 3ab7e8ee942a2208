//! The shared conformance suite, run against the memory backend: over a
//! `MemoryCheckpointStorage`, and through the real checkpoint store
//! (`cornerstone_testkit::harness::StoreHarness`) on the local filesystem, on OpenDAL's
//! memory service and, a representative subset, on S3.

use cornerstone_backend_api::conformance::MemoryStorageHarness;
use cornerstone_backend_memory::MemoryStateBackend;

cornerstone_backend_api::conformance_suite!(MemoryStorageHarness::new(MemoryStateBackend::new()));

/// On OpenDAL's fs service in a temporary directory (every non-empty stream a file).
mod store_local {
    use cornerstone_backend_memory::MemoryStateBackend;
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_backend_api::conformance_suite!(StoreHarness::local(MemoryStateBackend::new(), 0));
}

/// On OpenDAL's memory service (every non-empty stream a file).
mod store_memory {
    use cornerstone_backend_memory::MemoryStateBackend;
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_backend_api::conformance_suite!(StoreHarness::memory(MemoryStateBackend::new(), 0));
}

/// A representative subset on S3 (SeaweedFS): the whole suite takes too long there (see
/// `cornerstone_testkit::s3_conformance_subset!`).
mod store_s3 {
    use cornerstone_backend_memory::MemoryStateBackend;
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_testkit::s3_conformance_subset!(StoreHarness::s3(
        MemoryStateBackend::new(),
        0,
        module_path!()
    ));
}
