//! The blocking API called from inside a tokio runtime (either flavour), on a worker and on
//! the runtime's blocking pool, works and never panics (tokio refuses a nested `block_on`,
//! which the old blocking API ran into); the async API works in the same places.
#![allow(clippy::unwrap_used, missing_docs)]

use cornerstone_backend_api::CheckpointId;
use cornerstone_checkpoint_store::nonblocking::AsyncCheckpointStore;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore, CompletedCheckpointStore};

fn check_blocking_inside(rt: tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    // Outside the runtime.
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    job.begin_checkpoint(CheckpointId(1))
        .unwrap()
        .commit()
        .unwrap();
    drop(job);
    rt.block_on(async {
        // On the runtime's thread (a worker, or the thread in block_on).
        let job =
            CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
        assert_eq!(job.checkpoint_ids(), vec![CheckpointId(1)]);
        job.begin_checkpoint(CheckpointId(2))
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(store.resolve("job").unwrap().id(), CheckpointId(2));
        // On the blocking pool, as the docs advise for blocking calls.
        let job = tokio::task::spawn_blocking(move || {
            job.begin_checkpoint(CheckpointId(3))
                .unwrap()
                .commit()
                .unwrap();
            job
        })
        .await
        .unwrap();
        job.terminate(cornerstone_checkpoint_store::JobStatus::Suspended)
            .unwrap();
        // The async API in the same place.
        let job = AsyncCheckpointStore::open(store.clone(), "job", CheckpointConfig::default())
            .await
            .unwrap();
        let pending = job.begin_checkpoint(CheckpointId(4)).await.unwrap();
        job.commit(pending).await.unwrap();
    });
    // Outside again: every checkpoint is there (num-retained 1 keeps the latest).
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    assert_eq!(job.latest().map(|c| c.id()), Some(CheckpointId(4)));
}

#[test]
fn blocking_calls_inside_a_current_thread_runtime_work() {
    check_blocking_inside(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
}

#[test]
fn blocking_calls_inside_a_multi_threaded_runtime_work() {
    check_blocking_inside(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
}
