//! The store driven from inside tokio runtimes of both flavours through
//! [`AsyncCheckpointStore`]: a checkpoint begun, its state written (on the blocking pool),
//! committed, resolved and restored, and the job terminated.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, StateScope};
use cornerstone_checkpoint_store::nonblocking::AsyncCheckpointStore;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore, ClaimMode, JobStatus};

async fn round_trip(root: std::path::PathBuf) {
    let store = CheckpointStore::local(&root).unwrap();
    let job = AsyncCheckpointStore::open(
        store,
        "job",
        CheckpointConfig::default().inline_threshold(0),
    )
    .await
    .unwrap();
    for id in 1..=2 {
        let pending = job.begin_checkpoint(CheckpointId(id)).await.unwrap();
        // State streams are blocking writes: on the blocking pool, as an engine's
        // asynchronous snapshot phase would run them.
        let factory = pending.stream_factory();
        let handle = tokio::task::spawn_blocking(move || {
            let mut out = factory.create(StateScope::Exclusive).unwrap();
            out.write_all(format!("state {id}").as_bytes()).unwrap();
            out.close().unwrap()
        })
        .await
        .unwrap();
        assert!(handle.file().is_some());
        let done = job.commit(pending).await.unwrap();
        assert_eq!(done.id(), CheckpointId(id));
    }
    assert_eq!(job.latest().unwrap().id(), CheckpointId(2));
    let point = job.resolve("job").await.unwrap();
    assert_eq!(point.id(), CheckpointId(2));
    job.restore(point, ClaimMode::Claim).await.unwrap();
    // An aborted checkpoint leaves nothing behind.
    let pending = job.begin_checkpoint(CheckpointId(3)).await.unwrap();
    job.abort(pending).await.unwrap();
    job.terminate(JobStatus::Finished).await.unwrap();
}

#[test]
fn works_inside_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(round_trip(dir.path().to_owned()));
}

#[test]
fn works_inside_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(round_trip(dir.path().to_owned()));
}
