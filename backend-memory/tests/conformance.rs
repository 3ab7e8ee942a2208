//! The shared conformance suite, run against the memory backend.

use cornerstone_backend_api::conformance::MemoryStorageHarness;
use cornerstone_backend_memory::MemoryStateBackend;

cornerstone_backend_api::conformance_suite!(MemoryStorageHarness::new(MemoryStateBackend::new()));
