//! Shared helpers of the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

use std::io::Write;

use cornerstone_backend_api::{
    CheckpointStreamFactory, OperatorStateHandle, StateScope, StreamStateHandle, SubtaskState,
};
use cornerstone_checkpoint_store::opendal;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore};

/// The fs service in a temp dir, and the memory service.
pub fn stores(dir: &tempfile::TempDir) -> Vec<(&'static str, CheckpointStore)> {
    vec![
        ("fs", CheckpointStore::local(dir.path()).unwrap()),
        (
            "memory",
            CheckpointStore::from_url("memory://", Vec::<(String, String)>::new()).unwrap(),
        ),
    ]
}

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut files: Vec<String> = rt
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
        .collect();
    files.sort();
    files
}
