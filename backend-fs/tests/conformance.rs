//! The conformance suite, run by the filesystem backend through the real checkpoint store
//! (`cornerstone_testkit::harness::StoreHarness`): on the local filesystem once with every
//! stream a file (uncompressed blocks) and once with the store's default inline threshold
//! and zstd-compressed blocks; in changelog mode; on OpenDAL's memory service with every stream a file; and a
//! representative subset on S3.

mod files {
    use cornerstone_backend_fs::FsStateBackend;
    use cornerstone_testkit::harness::StoreHarness;

    // A threshold of 0 makes every non-empty stream a file in `chk-N/`.
    cornerstone_backend_api::conformance_suite!(StoreHarness::local(FsStateBackend::new(), 0));
}

mod inline_zstd {
    use cornerstone_backend_api::spi::keyed_format::Compression;
    use cornerstone_backend_fs::FsStateBackend;
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_backend_api::conformance_suite!(StoreHarness::local(
        FsStateBackend::new().compression(Compression::Zstd(3)),
        20 * 1024
    ));
}

mod memory_files {
    use cornerstone_backend_fs::FsStateBackend;
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_backend_api::conformance_suite!(StoreHarness::memory(FsStateBackend::new(), 0));
}

/// A representative subset on S3 (SeaweedFS): the whole suite takes too long there (see
/// `cornerstone_testkit::s3_conformance_subset!`).
mod s3 {
    use cornerstone_backend_fs::FsStateBackend;
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_testkit::s3_conformance_subset!(StoreHarness::s3(
        FsStateBackend::new(),
        0,
        module_path!()
    ));
}

/// Changelog mode (incremental checkpoints), every stream a file, each checkpoint of a case
/// confirmed once written: a checkpoint writes a delta over the one before, a chain holds
/// at most two deltas, and the cases restore chains (rescaled, with TTL, with timers).
mod changelog {
    use cornerstone_backend_fs::{ChangelogOptions, FsStateBackend};
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_backend_api::conformance_suite!(
        StoreHarness::local(
            FsStateBackend::new().incremental(ChangelogOptions::new().max_deltas(2)),
            0
        )
        .with_confirmed_checkpoints(true)
    );
}

/// Changelog mode with the store's default inline threshold (small deltas inline in
/// `_metadata`), checkpoints not confirmed: every checkpoint materializes.
mod changelog_unconfirmed {
    use cornerstone_backend_fs::{ChangelogOptions, FsStateBackend};
    use cornerstone_testkit::harness::StoreHarness;

    cornerstone_backend_api::conformance_suite!(StoreHarness::local(
        FsStateBackend::new().incremental(ChangelogOptions::new()),
        20 * 1024
    ));
}
