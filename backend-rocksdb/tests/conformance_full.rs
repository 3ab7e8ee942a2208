//! The shared conformance suite against the RocksDB backend with full (key-group-indexed)
//! snapshots.

mod common;

cornerstone_backend_api::conformance_suite!(common::RocksHarness::full());
