//! The blocking API called from inside a tokio runtime (either flavour) returns a clear
//! [`ErrorKind::Unsupported`] error naming the async alternative, instead of panicking.
#![allow(clippy::unwrap_used, missing_docs)]

use cornerstone_backend_api::{CheckpointId, ErrorKind};
use cornerstone_checkpoint_store::nonblocking::AsyncCheckpointStore;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore, CompletedCheckpointStore};

fn check_refused(rt: tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    // Opened outside the runtime: the blocking API works there.
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    rt.block_on(async {
        let err = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default())
            .expect_err("a blocking open inside a runtime is refused");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("AsyncCheckpointStore"), "{err}");
        let err = job
            .begin_checkpoint(CheckpointId(1))
            .expect_err("a blocking begin inside a runtime is refused");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        let err = store
            .resolve("job")
            .expect_err("a blocking resolve is refused");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        // The async API works in the same place.
        let job = AsyncCheckpointStore::open(store.clone(), "job", CheckpointConfig::default())
            .await
            .unwrap();
        let pending = job.begin_checkpoint(CheckpointId(1)).await.unwrap();
        job.commit(pending).await.unwrap();
    });
    // Outside again, the blocking API works; the store opened there sees the checkpoint
    // when reopened.
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    assert_eq!(job.checkpoint_ids(), vec![CheckpointId(1)]);
}

#[test]
fn blocking_calls_inside_a_current_thread_runtime_are_refused() {
    check_refused(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
}

#[test]
fn blocking_calls_inside_a_multi_threaded_runtime_are_refused() {
    check_refused(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
}
