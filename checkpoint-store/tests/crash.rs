//! Crash injection: an OpenDAL layer fails the k-th storage write (writes and the commit
//! rename), for every k of a checkpoint's writes; the store stays restorable to the previous
//! completed checkpoint and nothing of it is lost (fs, memory and S3).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{CheckpointId, StateScope, StreamStateHandle};
use cornerstone_checkpoint_store::opendal;
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, inspect,
};
use cornerstone_testkit::checkpoints::commit_streams;
use cornerstone_testkit::faults::FailNthWrite;
use cornerstone_testkit::s3::{SeaweedFs, unique_prefix};
use cornerstone_testkit::store::{all_files, memory_operator};

/// Checkpoint `id`: an exclusive, a shared and an exclusive file of `payload` (several
/// chunks per file: the write chunk size is 1 KiB).
fn try_checkpoint(
    job: &CompletedCheckpointStore,
    id: u64,
    payload: &[u8],
) -> Result<Vec<StreamStateHandle>, cornerstone_backend_api::Error> {
    let streams = [
        StateScope::Exclusive,
        StateScope::Shared,
        StateScope::Exclusive,
    ]
    .map(|scope| (scope, payload));
    commit_streams(job, id, &streams, &[])
}

fn run(make_op: impl Fn() -> opendal::Operator, name: &str) {
    let config = CheckpointConfig::default()
        .inline_threshold(0)
        .write_chunk_size(1024);
    let payload = vec![5u8; 4000];
    // Count the writes of one checkpoint.
    let plan = FailNthWrite::default();
    let store = CheckpointStore::new(make_op().layer(plan.clone())).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
    try_checkpoint(&job, 1, &payload).unwrap();
    let before = plan.count.load(Ordering::SeqCst);
    try_checkpoint(&job, 2, &payload).unwrap();
    let writes = plan.count.load(Ordering::SeqCst) - before;
    assert!(writes >= 4, "{name}: {writes} writes per checkpoint");

    for k in 1..=writes {
        let plan = FailNthWrite::default();
        let base = make_op();
        let store = CheckpointStore::new(base.clone().layer(plan.clone())).unwrap();
        let job = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
        let good = try_checkpoint(&job, 1, &payload).unwrap();
        plan.fail_at
            .store(plan.count.load(Ordering::SeqCst) + k, Ordering::SeqCst);
        let err = try_checkpoint(&job, 2, &payload).expect_err("the injected failure surfaces");
        assert!(
            err.to_string().contains("injected failure"),
            "{name} k={k}: {err}"
        );

        // Recover through a store without the layer (a restart).
        let clean = CheckpointStore::new(base).unwrap();
        let recovered = CompletedCheckpointStore::open(&clean, "job", config.clone()).unwrap();
        assert_eq!(
            recovered.checkpoint_ids(),
            vec![CheckpointId(1)],
            "{name} k={k}"
        );
        let point = clean.resolve("job").unwrap();
        assert_eq!(point.id(), CheckpointId(1));
        let reader = clean.reader(&point.base_dir);
        for s in &good {
            assert_eq!(
                read_stream(s, Some(&reader)).unwrap(),
                payload,
                "{name} k={k}: nothing lost"
            );
        }
        assert!(inspect::verify(&clean, "job", |_, _| {}).unwrap().is_ok());
        // The aborted checkpoint cleaned up after itself: nothing is garbage.
        let gc = inspect::gc_candidates(
            &clean,
            "job",
            &inspect::GcOptions::new(0).with_min_age_ms(0),
        )
        .unwrap();
        assert!(
            gc.candidates.is_empty(),
            "{name} k={k}: {gc:?} {:?}",
            all_files(&clean, "")
        );
        // And the job continues.
        let next = CompletedCheckpointStore::open(&clean, "job", config.clone()).unwrap();
        try_checkpoint(&next, 3, &payload).unwrap();
        assert_eq!(clean.resolve("job").unwrap().id(), CheckpointId(3));
    }
}

#[test]
fn failing_any_write_of_a_checkpoint_keeps_the_previous_one_fs() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    run(
        || {
            let sub = dir
                .path()
                .join(n.fetch_add(1, Ordering::SeqCst).to_string());
            std::fs::create_dir_all(&sub).unwrap();
            opendal::Operator::new(opendal::services::Fs::default().root(sub.to_str().unwrap()))
                .unwrap()
        },
        "fs",
    );
}

#[test]
fn failing_any_write_of_a_checkpoint_keeps_the_previous_one_memory() {
    run(memory_operator, "memory");
}

#[test]
fn failing_any_write_of_a_checkpoint_keeps_the_previous_one_s3() {
    let test = "crash::s3";
    let Some(server) = SeaweedFs::shared(test) else {
        return;
    };
    run(|| server.operator(&unique_prefix(test)), "s3");
}
