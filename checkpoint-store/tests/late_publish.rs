//! The window fencing alone cannot close: a writer passes its lease check, a newer writer
//! takes the lease and lists the job, then the old writer publishes its `_metadata`. The old
//! writer reports `Fenced` (nothing was told the checkpoint completed), and that `_metadata`
//! must never be restored: the newer writer's view of the job (`_lease/view-<E>`) makes it
//! late, readers skip it, the next writer deletes it, and `gc` collects its files.
//!
//! Runs code at the `commit-before-metadata` kill point, so it needs the `failpoints`
//! feature (`cargo test --all-features` has it); one test in its own binary, because the
//! fail points are process-wide.
#![cfg(feature = "failpoints")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use cornerstone_backend_api::{CheckpointId, ErrorKind};
use cornerstone_checkpoint_store::inspect::{self, GcOptions, SnapshotStatus};
use cornerstone_checkpoint_store::status::{self, CheckpointDirStatus};
use cornerstone_checkpoint_store::{CheckpointStore, CompletedCheckpointStore};
use cornerstone_testkit::checkpoints::begin_small_checkpoint;
use cornerstone_testkit::store::files_config;

/// Begins checkpoint `id` with an exclusive and a shared file, not committed yet.
fn begin_and_write(
    job: &CompletedCheckpointStore,
    id: u64,
) -> cornerstone_checkpoint_store::PendingCheckpoint {
    begin_small_checkpoint(job, id, None).unwrap().0
}

#[test]
fn a_metadata_published_after_a_newer_writer_listed_the_job_is_never_restored() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let old = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    begin_and_write(&old, 1).commit().unwrap();

    // Between the old writer's lease check and its publish, a new writer opens the job.
    let newer: Arc<Mutex<Option<CompletedCheckpointStore>>> = Arc::default();
    let slot = newer.clone();
    let opener = store.clone();
    fail::cfg_callback("commit-before-metadata", move || {
        let mut slot = slot.lock().unwrap();
        if slot.is_none() {
            *slot = Some(CompletedCheckpointStore::open(&opener, "job", files_config()).unwrap());
        }
    })
    .unwrap();
    let late = begin_and_write(&old, 2).commit().unwrap_err();
    fail::remove("commit-before-metadata");
    assert_eq!(late.kind(), ErrorKind::Fenced, "{late}");
    let newer = newer.lock().unwrap().take().expect("the new writer opened");
    assert_eq!(newer.checkpoint_ids(), vec![CheckpointId(1)]);
    assert!(dir.path().join("job/chk-2/_metadata").exists(), "published");

    // Readers never pick it: not the job's latest, listed as fenced.
    assert_eq!(store.resolve("job").unwrap().id(), CheckpointId(1));
    let classified = status::classify_job(&store, "job", None).unwrap();
    assert!(
        matches!(classified[1].2, CheckpointDirStatus::Fenced(_)),
        "{:?}",
        classified[1].2
    );
    let listed = inspect::list(&store, "job").unwrap();
    assert_eq!(listed[1].status, SnapshotStatus::Fenced);

    // The new writer never completes a checkpoint and goes away (a crash): the next one
    // still restores chk-1, and deletes the late _metadata.
    drop(newer);
    let next = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    assert_eq!(next.latest().unwrap().id(), CheckpointId(1));
    assert!(
        !dir.path().join("job/chk-2/_metadata").exists(),
        "retracted"
    );
    assert!(next.next_checkpoint_id().get() > 2);
    // gc collects what is left of it.
    let report =
        inspect::gc_candidates(&store, "job", &GcOptions::new(u64::MAX).with_min_age_ms(0))
            .unwrap();
    assert!(
        report
            .candidates
            .iter()
            .any(|c| c.path.starts_with("job/chk-2/")),
        "{report:?}"
    );
    scenario.teardown();
}
