//! The shared conformance suite against the RocksDB backend with incremental snapshots
//! (its default). `ttl_cleanup_full_snapshot_drops_expired` skips here (TTL's cleanup in
//! full snapshots does not apply to native incremental snapshots, as in Flink) and runs in
//! `conformance_full.rs`, with the whole suite, on full snapshots.

mod common;

cornerstone_backend_api::conformance_suite!(common::RocksHarness::incremental());
