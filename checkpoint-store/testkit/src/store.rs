//! Storages for suites that run on every storage, and small helpers over a store: the
//! [`TestStore`] of each storage (OpenDAL's `fs` service in a temp dir, OpenDAL's memory
//! service, S3 on the shared SeaweedFS server), the [`storage_tests!`](crate::storage_tests)
//! macro that generates one test per storage, and stream, state and file helpers.
//!
//! ```
//! use cornerstone_backend_api::{CheckpointId, StateScope};
//! use cornerstone_checkpoint_store::{CompletedCheckpointStore, OperatorSpec};
//! use cornerstone_testkit::store::{TestStore, all_files, files_config, state_of, write_stream};
//!
//! fn one_file_per_stream(s: &TestStore) {
//!     let job = CompletedCheckpointStore::open(&s.store, "job", files_config()).unwrap();
//!     let mut p = job.begin_checkpoint(CheckpointId(1)).unwrap();
//!     let f = p.stream_factory();
//!     let h = write_stream(&*f, StateScope::Exclusive, b"state");
//!     p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(vec![h])).unwrap();
//!     p.commit().unwrap();
//!     assert_eq!(all_files(&s.store, "job/").len(), 2, "{}: a state file and _metadata", s.name);
//! }
//!
//! // In a test crate: `cornerstone_testkit::storage_tests!(one_file_per_stream);` makes the
//! // tests `one_file_per_stream::{fs, memory, s3}`.
//! one_file_per_stream(&TestStore::fs());
//! one_file_per_stream(&TestStore::memory());
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use cornerstone_backend_api::stream::stream_write_error;
use cornerstone_backend_api::{
    CheckpointStreamFactory, OperatorStateHandle, Result, StateScope, StreamStateHandle,
    SubtaskState,
};
use cornerstone_checkpoint_store::opendal;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore};

use crate::s3;

/// One storage a suite runs on: the store, and what keeps it alive (the temp dir of `fs`,
/// the server of `s3`).
#[derive(Debug)]
pub struct TestStore {
    /// `fs`, `memory` or `s3`: for failure messages.
    pub name: &'static str,
    /// The store, rooted at the directory, the empty memory service or the prefix.
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
            store: memory_store(),
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
            _ => memory_store(),
        }
    }
}

/// A store on a new, empty OpenDAL memory service (`memory://`).
pub fn memory_store() -> CheckpointStore {
    CheckpointStore::from_url("memory://", Vec::<(String, String)>::new()).unwrap()
}

/// A raw operator (no layers) on a new, empty OpenDAL memory service: to wrap in a fault
/// layer or a simulated disk before [`CheckpointStore::new`].
pub fn memory_operator() -> opendal::Operator {
    opendal::Operator::new(opendal::services::Memory::default()).unwrap()
}

/// Generates, for each named test body `fn name(s: &TestStore)`, the tests `name::fs`,
/// `name::memory` and `name::s3`: one suite, parameterised by storage
/// ([`TestStore`](crate::store::TestStore)). The `s3` test returns (after saying why) when
/// there is no SeaweedFS here, unless `CORNERSTONE_REQUIRE_S3=1`.
///
/// ```
/// use cornerstone_testkit::store::TestStore;
///
/// fn opens(s: &TestStore) {
///     assert!(s.store.resolve("no-such-job").is_err(), "{}", s.name);
/// }
///
/// cornerstone_testkit::storage_tests!(opens);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! storage_tests {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[test]
            fn fs() {
                super::$test(&$crate::store::TestStore::fs());
            }

            #[test]
            fn memory() {
                super::$test(&$crate::store::TestStore::memory());
            }

            #[test]
            fn s3() {
                if let Some(s) = $crate::store::TestStore::s3(module_path!()) {
                    super::$test(&s);
                }
            }
        }
    )+};
}

/// A config under which every stream becomes a file (an inline threshold of 0).
pub fn files_config() -> CheckpointConfig {
    CheckpointConfig::default().inline_threshold(0)
}

/// Writes `bytes` as one stream of `scope` through `f` and returns its handle.
pub fn write_stream(
    f: &dyn CheckpointStreamFactory,
    scope: StateScope,
    bytes: &[u8],
) -> StreamStateHandle {
    try_write_stream(f, scope, bytes).unwrap()
}

/// [`write_stream`], failing instead of panicking (on storage faults).
///
/// # Errors
/// Those of creating, writing and closing the stream.
pub fn try_write_stream(
    f: &dyn CheckpointStreamFactory,
    scope: StateScope,
    bytes: &[u8],
) -> Result<StreamStateHandle> {
    let mut out = f.create(scope)?;
    out.write_all(bytes)
        .map_err(|e| stream_write_error("write", e))?;
    out.close()
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

/// Every file path in the store under `dir`, sorted (via the OpenDAL operator). The job
/// directory's lease (`<job>/_lease/`) is left out unless `dir` is inside it.
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

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
