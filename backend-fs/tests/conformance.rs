//! The conformance suite, run by the filesystem backend over the real checkpoint store on
//! the local filesystem: once with every stream a file (uncompressed blocks), once with the
//! store's default inline threshold and zstd-compressed blocks.

mod common;

mod files {
    use super::common::StoreHarness;
    use cornerstone_backend_fs::FsStateBackend;

    // A threshold of 0 makes every non-empty stream a file in `chk-N/`.
    cornerstone_backend_api::conformance_suite!(StoreHarness::new(FsStateBackend::new(), 0));
}

mod inline_zstd {
    use super::common::StoreHarness;
    use cornerstone_backend_api::keyed_format::Compression;
    use cornerstone_backend_fs::FsStateBackend;

    cornerstone_backend_api::conformance_suite!(StoreHarness::new(
        FsStateBackend::new().compression(Compression::Zstd(3)),
        20 * 1024
    ));
}
