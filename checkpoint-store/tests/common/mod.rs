//! Shared helpers of the integration tests.
#![allow(
    dead_code,
    unused_macros,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    missing_docs
)]

use std::io::Write;
use std::sync::Arc;

use cornerstone_backend_api::{
    CheckpointStreamFactory, OperatorStateHandle, StateScope, StreamStateHandle, SubtaskState,
};
use cornerstone_checkpoint_store::opendal;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore};

pub mod disk;
pub mod faults;
pub mod s3;

/// One storage a suite runs on: the store, and what keeps it alive (the temp dir of `fs`,
/// the server of `s3`).
pub struct TestStore {
    pub name: &'static str,
    pub store: CheckpointStore,
    /// `fs`: the directory the store is rooted at.
    pub dir: Option<tempfile::TempDir>,
    /// `s3`: the server and the prefix the store is rooted at.
    pub s3: Option<(Arc<s3::SeaweedFs>, String)>,
}

impl TestStore {
    /// OpenDAL's fs service in a new temp dir.
    pub fn fs() -> Self {
        let dir = tempfile::tempdir().unwrap();
        TestStore {
            name: "fs",
            store: CheckpointStore::local(dir.path()).unwrap(),
            dir: Some(dir),
            s3: None,
        }
    }

    /// OpenDAL's memory service, empty.
    pub fn memory() -> Self {
        TestStore {
            name: "memory",
            store: CheckpointStore::from_url("memory://", Vec::<(String, String)>::new()).unwrap(),
            dir: None,
            s3: None,
        }
    }

    /// A new prefix of the bucket of the (shared) SeaweedFS server; `None` after saying why
    /// when there is no server here (and S3 is not required).
    pub fn s3(test: &str) -> Option<Self> {
        let server = s3::SeaweedFs::shared(test)?;
        let prefix = s3::unique_prefix(test);
        Some(TestStore {
            name: "s3",
            store: server.store(&prefix),
            dir: None,
            s3: Some((server, prefix)),
        })
    }

    /// Another, empty store of the same kind (its own directory or prefix).
    pub fn sibling(&self, label: &str) -> CheckpointStore {
        match (&self.dir, &self.s3) {
            (Some(dir), _) => CheckpointStore::local(dir.path().join(label)).unwrap(),
            (_, Some((server, prefix))) => server.store(&format!("{prefix}-{label}")),
            _ => CheckpointStore::from_url("memory://", Vec::<(String, String)>::new()).unwrap(),
        }
    }
}

/// Generates, for each named test body `fn name(s: &TestStore)`, the tests `name::fs`,
/// `name::memory` and `name::s3`: one suite, parameterised by storage.
macro_rules! storage_tests {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[test]
            fn fs() {
                super::$test(&crate::common::TestStore::fs());
            }

            #[test]
            fn memory() {
                super::$test(&crate::common::TestStore::memory());
            }

            #[test]
            fn s3() {
                if let Some(s) = crate::common::TestStore::s3(module_path!()) {
                    super::$test(&s);
                }
            }
        }
    )+};
}
pub(crate) use storage_tests;

/// Everything becomes a file.
pub fn files_config() -> CheckpointConfig {
    CheckpointConfig::default().inline_threshold(0)
}

pub fn write_stream(
    f: &dyn CheckpointStreamFactory,
    scope: StateScope,
    bytes: &[u8],
) -> StreamStateHandle {
    let mut out = f.create(scope).unwrap();
    out.write_all(bytes).unwrap();
    out.close().unwrap()
}

/// A subtask state holding `streams` as operator-state handles.
pub fn state_of(streams: Vec<StreamStateHandle>) -> SubtaskState {
    SubtaskState {
        keyed: vec![],
        operator: streams
            .into_iter()
            .map(|stream| OperatorStateHandle {
                states: Default::default(),
                stream,
            })
            .collect(),
    }
}

/// Every file path in the store under `dir`, sorted (via the OpenDAL operator).
pub fn all_files(store: &CheckpointStore, dir: &str) -> Vec<String> {
    let op = store.operator().clone();
    let mut files: Vec<String> = s3::runtime()
        .block_on(op.list_options(
            dir,
            opendal::options::ListOptions {
                recursive: true,
                ..Default::default()
            },
        ))
        .unwrap()
        .into_iter()
        .filter(|e| e.metadata().is_file())
        .map(|e| e.path().to_owned())
        // The job directory's lease belongs to its writer, not to any checkpoint; it is
        // listed only when asked for (`<job>/_lease/`).
        .filter(|p| dir.contains("/_lease/") || !p.contains("/_lease/"))
        .collect();
    files.sort();
    files
}

fn block_on<T>(f: impl std::future::Future<Output = opendal::Result<T>>) -> T {
    s3::runtime().block_on(f).unwrap()
}

/// The bytes of a file (via the OpenDAL operator).
pub fn get(store: &CheckpointStore, path: &str) -> Vec<u8> {
    block_on(store.operator().read(path)).to_vec()
}

/// Writes a file (via the OpenDAL operator), replacing it.
pub fn put(store: &CheckpointStore, path: &str, bytes: Vec<u8>) {
    block_on(store.operator().write(path, bytes));
}

/// Deletes a file (via the OpenDAL operator).
pub fn remove(store: &CheckpointStore, path: &str) {
    block_on(store.operator().delete(path));
}
