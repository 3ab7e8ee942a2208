//! No completed checkpoint is ever lost: one test for each way a committed checkpoint used to
//! be lost (ambiguous commits, `gc` beside a live job, unreadable `_metadata`, two writers,
//! reused ids, `dispose` by name), on real OpenDAL services with faults injected around
//! them.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::Ordering;

use cornerstone_backend_api::{CheckpointId, ErrorKind, StateScope, StreamStateHandle};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::inspect::{self, GcOptions};
use cornerstone_checkpoint_store::status::{self, CheckpointDirStatus};
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore, CompletedCheckpointStore};
use cornerstone_testkit::checkpoints::begin_small_checkpoint;
use cornerstone_testkit::disk::SimDisk;
use cornerstone_testkit::faults::FailNthWrite;
use cornerstone_testkit::store::{
    all_files, files_config, get, memory_operator as memory, put, state_of, write_stream,
};

/// Begins checkpoint `id`, writes an exclusive and a shared file (reusing `reuse`, a shared
/// handle of an earlier checkpoint, when given) and commits.
fn checkpoint(
    job: &CompletedCheckpointStore,
    id: u64,
    reuse: Option<&StreamStateHandle>,
) -> cornerstone_backend_api::Result<Vec<StreamStateHandle>> {
    let (p, handles) = begin_small_checkpoint(job, id, reuse)?;
    p.commit()?;
    Ok(handles)
}

/// Every `_metadata` on storage verifies (every referenced file present and intact).
fn assert_every_checkpoint_verifies(store: &CheckpointStore, job: &str) {
    for (id, dir, st) in status::classify_job(store, job, None).unwrap() {
        if let CheckpointDirStatus::Complete(done) = st {
            let report = inspect::verify(store, &done.metadata_path, |_, _| {}).unwrap();
            assert!(report.is_ok(), "chk-{id} ({dir}): {report:?}");
        }
    }
}

/// Defect 1: the `_metadata` write takes effect and then reports an error. Reading it back
/// decides: the checkpoint completed. Before, `commit` deleted the checkpoint's files and
/// left a `_metadata` that referenced missing files.
#[test]
fn a_commit_error_after_metadata_took_effect_keeps_the_checkpoint() {
    let base = memory();
    let faults = FailNthWrite::default();
    let store = CheckpointStore::new(base.clone().layer(faults.clone())).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    checkpoint(&job, 1, None).unwrap();
    *faults.fail_after_suffix.lock().unwrap() = Some("_metadata".into());
    checkpoint(&job, 2, None).expect("the write took effect: the checkpoint is complete");
    assert_eq!(job.latest().unwrap().id(), CheckpointId(2));

    let clean = CheckpointStore::new(base).unwrap();
    assert_eq!(clean.resolve("job").unwrap().id(), CheckpointId(2));
    assert_every_checkpoint_verifies(&clean, "job");
}

/// Defect 1, undecidable: the `_metadata` write takes effect, reports an error, and reading
/// it back fails too. Nothing is deleted, the error says the outcome is unknown, and the next
/// `open` finds the complete checkpoint.
#[test]
fn an_undecidable_commit_keeps_every_file_and_the_next_open_decides() {
    let base = memory();
    let faults = FailNthWrite::default();
    let store = CheckpointStore::new(base.clone().layer(faults.clone())).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    let first = checkpoint(&job, 1, None).unwrap();
    *faults.fail_after_suffix.lock().unwrap() = Some("chk-2/_metadata".into());
    faults.hide_after_failure.store(true, Ordering::SeqCst);
    let e = checkpoint(&job, 2, Some(&first[1])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
    *faults.fail_reads_suffix.lock().unwrap() = None;
    *faults.fail_after_suffix.lock().unwrap() = None;

    // The same writer goes on; the doubtful checkpoint's files stay live while it subsumes.
    checkpoint(&job, 3, None).unwrap();
    let clean = CheckpointStore::new(base).unwrap();
    assert_every_checkpoint_verifies(&clean, "job");
    let reopened = CompletedCheckpointStore::open(&clean, "job", files_config()).unwrap();
    assert_eq!(reopened.latest().unwrap().id(), CheckpointId(3));
}

/// Defect 1, absent: the write fails before it takes effect; reading back finds nothing, so
/// the checkpoint's files are deleted and the previous checkpoint stays the latest.
#[test]
fn a_commit_that_did_not_take_effect_is_cleaned_up() {
    let base = memory();
    let faults = FailNthWrite::default();
    let store = CheckpointStore::new(base.clone().layer(faults.clone())).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    checkpoint(&job, 1, None).unwrap();
    // chk-2 reserves its id, writes two files, then `_metadata`: fail the fourth write.
    faults
        .fail_at
        .store(faults.count.load(Ordering::SeqCst) + 4, Ordering::SeqCst);
    checkpoint(&job, 2, None).unwrap_err();
    let clean = CheckpointStore::new(base).unwrap();
    assert_eq!(clean.resolve("job").unwrap().id(), CheckpointId(1));
    assert!(all_files(&clean, "job/chk-2/").is_empty());
    assert_every_checkpoint_verifies(&clean, "job");
}

/// Defect 2: `gc --delete` between a checkpoint's uploads and its commit. The uploads are
/// younger than the min age (and the writer's lease is live), so nothing is deleted and the
/// commit leaves a checkpoint that verifies.
#[test]
fn gc_beside_a_live_job_deletes_nothing_of_a_checkpoint_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let config = files_config().num_retained(1);
    let job = CompletedCheckpointStore::open(&store, "job", config).unwrap();
    let first = checkpoint(&job, 1, None).unwrap();
    let mut p = job.begin_checkpoint(CheckpointId(2)).unwrap();
    let f = p.stream_factory();
    let h = vec![
        write_stream(&*f, StateScope::Exclusive, b"in progress"),
        first[1].clone(),
    ];
    let now = cornerstone_backend_api::clock::system_clock().now_millis();
    let options = GcOptions::new(now);
    let report = inspect::gc_candidates(&store, "job", &options).unwrap();
    assert!(report.candidates.is_empty(), "{report:?}");
    assert!(
        report.kept.iter().any(|k| k.path == "job/chk-2/"),
        "{report:?}"
    );
    // Even told that everything is old, gc refuses while the writer's lease is live.
    let aged = GcOptions::new(now + 2 * GcOptions::DEFAULT_MIN_AGE_MS);
    let report = inspect::gc_candidates(&store, "job", &aged).unwrap();
    assert!(!report.candidates.is_empty());
    let live = GcOptions {
        min_age_ms: GcOptions::DEFAULT_MIN_AGE_MS,
        now_ms: now,
        force: false,
    };
    let e = inspect::gc_delete(&store, &report, &live).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");

    p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(h))
        .unwrap();
    p.commit().unwrap();
    assert_every_checkpoint_verifies(&store, "job");
    assert_eq!(store.resolve("job").unwrap().id(), CheckpointId(2));
}

/// Defect 2, forced: a gc that deletes takes the lease, so the writer it raced is fenced:
/// its commit fails and deletes nothing, and every `_metadata` on storage verifies.
#[test]
fn a_forced_gc_fences_the_writer_instead_of_breaking_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    checkpoint(&job, 1, None).unwrap();
    let mut p = job.begin_checkpoint(CheckpointId(2)).unwrap();
    let f = p.stream_factory();
    let h = vec![write_stream(&*f, StateScope::Exclusive, b"in progress")];
    let options = GcOptions::new(0).with_min_age_ms(0).with_force(true);
    let report = inspect::gc_candidates(&store, "job", &options).unwrap();
    assert_eq!(report.candidates.len(), 1, "{report:?}");
    assert_eq!(inspect::gc_delete(&store, &report, &options).unwrap(), 1);
    p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(h))
        .unwrap();
    let e = p.commit().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    assert!(
        !all_files(&store, "job/chk-2/")
            .iter()
            .any(|f| f.ends_with("_metadata"))
    );
    assert_every_checkpoint_verifies(&store, "job");
    assert_eq!(store.resolve("job").unwrap().id(), CheckpointId(1));
}

/// Writes chk-2's `_metadata` with a format version this build does not know.
fn newer_format(store: &CheckpointStore) {
    let mut bytes = get(store, "job/chk-1/_metadata");
    bytes[4..6].copy_from_slice(&99u16.to_be_bytes());
    put(store, "job/chk-2/_metadata", bytes);
}

/// Defect 3: an unreadable newest `_metadata` is an error naming it (never a silent restart
/// from an older checkpoint), and a newer-format checkpoint is never garbage, nor are the
/// shared files it may reference.
#[test]
fn an_unreadable_newest_metadata_is_an_error_and_never_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    checkpoint(&job, 1, None).unwrap();
    newer_format(&store);
    drop(job);

    let e = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(e.context("path"), Some("job/chk-2/_metadata"), "{e}");
    let e = store.resolve("job").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(!inspect::verify(&store, "job", |_, _| {}).unwrap().is_ok());

    let report =
        inspect::gc_candidates(&store, "job", &GcOptions::new(0).with_min_age_ms(0)).unwrap();
    assert!(report.candidates.is_empty(), "{report:?}");
    assert!(
        report.kept.iter().any(|k| k.path == "job/shared/"),
        "{report:?}"
    );
    let listed = inspect::list(&store, "job").unwrap();
    assert_eq!(listed[1].status.as_str(), "newer-format");

    // Falling back is the caller's decision; the newer checkpoint stays on storage.
    let job =
        CompletedCheckpointStore::open(&store, "job", files_config().fallback_on_unreadable(true))
            .unwrap();
    assert_eq!(job.latest().unwrap().id(), CheckpointId(1));
    job.terminate(cornerstone_checkpoint_store::JobStatus::Finished)
        .unwrap();
    assert!(!all_files(&store, "job/chk-2/").is_empty());
    assert!(!all_files(&store, "job/shared/").is_empty());
}

/// Defect 4: a second writer on the same job directory (a resubmitted job id, a zombie
/// after failover). The newer one fences the older: the older commits nothing and deletes
/// nothing, and every checkpoint on storage verifies.
#[test]
fn a_second_writer_fences_the_first_and_nothing_is_lost() {
    let base = memory();
    let store = CheckpointStore::new(base).unwrap();
    let config = files_config().num_retained(1);
    let a = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
    let a1 = checkpoint(&a, 1, None).unwrap();
    let b = CompletedCheckpointStore::open(&store, "job", config).unwrap();
    assert!(b.epoch() > a.epoch());
    assert_eq!(b.latest().unwrap().id(), CheckpointId(1));

    // A goes on as if nothing happened: fenced at its next step, deleting nothing.
    let e = checkpoint(&a, 2, Some(&a1[1])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    assert_eq!(a.check_lease().unwrap_err().kind(), ErrorKind::Fenced);
    // B subsumes chk-1 (and its shared file).
    let next = b.next_checkpoint_id();
    assert!(next.get() >= 2);
    checkpoint(&b, next.get(), None).unwrap();
    assert_every_checkpoint_verifies(&store, "job");
    assert_eq!(store.resolve("job").unwrap().id(), next);
}

/// A writer that begins a checkpoint with an id an older writer reserved (below its own
/// first id) is refused. Before, B's commit of chk-1 succeeded, and the next writer, which
/// read B's view (chk-1 below B's first id and absent when B listed the job), took it for a
/// late publication of a fenced writer and deleted its `_metadata`: a checkpoint reported
/// complete was lost.
#[test]
fn an_id_an_older_writer_reserved_is_refused_and_nothing_is_lost() {
    let store = CheckpointStore::new(memory()).unwrap();
    let a = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    let pending = a.begin_checkpoint(CheckpointId(1)).unwrap();
    let b = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    assert_eq!(b.next_checkpoint_id(), CheckpointId(2));
    let e = b.begin_checkpoint(CheckpointId(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("checkpoint=1") && text.contains("first_id=2"),
        "{text}"
    );
    // A is fenced: its checkpoint 1 never completes.
    assert_eq!(pending.commit().unwrap_err().kind(), ErrorKind::Fenced);
    // B's own ids work, and a later writer finds its checkpoint.
    checkpoint(&b, 2, None).unwrap();
    drop(b);
    let c = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    assert_eq!(c.latest().map(|c| c.id()), Some(CheckpointId(2)));
    assert_every_checkpoint_verifies(&store, "job");
}

/// Defect 6: ids never repeat, not even that of an aborted checkpoint whose directory is
/// gone.
#[test]
fn checkpoint_ids_are_never_reused_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    checkpoint(&job, 1, None).unwrap();
    let p = job.begin_checkpoint(CheckpointId(2)).unwrap();
    write_stream(&*p.stream_factory(), StateScope::Exclusive, b"declined");
    p.abort().unwrap();
    assert!(all_files(&store, "job/chk-2/").is_empty());
    drop(job);
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    assert_eq!(job.next_checkpoint_id(), CheckpointId(3));
}

/// Defect 7: `dispose` deletes only a directory whose `_metadata` decodes as a savepoint;
/// a directory merely named `savepoint-…` is refused, and a dry run deletes nothing.
#[test]
fn dispose_deletes_only_real_savepoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    put(
        &store,
        "archive/savepoint-abc/notes.txt",
        b"not a savepoint".to_vec(),
    );
    let e = store
        .dispose_savepoint("archive/savepoint-abc", false, false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(all_files(&store, "archive/").len(), 1);

    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    let mut p = job.begin_savepoint(CheckpointId(1), "savepoints").unwrap();
    let h = write_stream(&*p.stream_factory(), StateScope::Exclusive, b"sp");
    p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(vec![h]))
        .unwrap();
    let sp = p.commit().unwrap();
    let listed = store.dispose_savepoint(&sp.dir(), false, true).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], sp.metadata_path, "_metadata goes first");
    assert_eq!(
        all_files(&store, &sp.dir()).len(),
        2,
        "a dry run deletes nothing"
    );
    assert_eq!(
        store.dispose_savepoint(&sp.dir(), false, false).unwrap(),
        listed
    );
    assert!(all_files(&store, &sp.dir()).is_empty());
    assert_eq!(all_files(&store, "archive/").len(), 1);
}

/// The lease is visible on storage: one epoch file per writer, the newest writer's view of
/// the job, the reserved ids, and nothing else.
#[test]
fn the_lease_records_epochs_and_reserved_ids() {
    let store = CheckpointStore::new(memory()).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    checkpoint(&job, 5, None).unwrap();
    let state = cornerstone_checkpoint_store::lease::read_state(&store, "job/").unwrap();
    assert_eq!(state.epoch, 1);
    assert_eq!(state.reserved_below, 6);
    assert_eq!(state.views.len(), 1);
    assert_eq!((state.views[0].epoch, state.views[0].first_id), (1, 1));
    assert!(state.views[0].present.is_empty());
    let files = all_files(&store, "job/_lease/");
    assert_eq!(files.len(), 3, "{files:?}");
    // A second writer's view replaces the first's; it saw chk-5.
    drop(job);
    let _job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    let state = cornerstone_checkpoint_store::lease::read_state(&store, "job/").unwrap();
    assert_eq!(state.views.len(), 1);
    assert_eq!(state.views[0].epoch, 2);
    assert_eq!(state.views[0].first_id, 6);
    assert!(state.views[0].present.contains(&5));
}

/// A store over a simulated local disk (names durable only once their directory is synced)
/// behind a fault layer, and a clean view of the same storage.
fn disk_store() -> (
    CheckpointStore,
    CheckpointStore,
    FailNthWrite,
    std::sync::Arc<SimDisk>,
) {
    let base = memory();
    let faults = FailNthWrite::default();
    let disk = std::sync::Arc::new(SimDisk::new(base.clone(), faults.clone()));
    let store = CheckpointStore::new(base.clone().layer(faults.clone()))
        .unwrap()
        .with_dir_sync(disk.clone());
    (store, CheckpointStore::new(base).unwrap(), faults, disk)
}

/// Found by the simulation's power cuts: the `_metadata` write took effect and reported an
/// error; reading it back said "ours" and the commit returned success, but the directory was
/// never synced after, so a power cut took the checkpoint back. Now the read-back syncs.
#[test]
fn a_commit_decided_by_reading_back_survives_a_power_cut() {
    let (store, clean, faults, disk) = disk_store();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    checkpoint(&job, 1, None).unwrap();
    *faults.fail_after_suffix.lock().unwrap() = Some("chk-2/_metadata".into());
    checkpoint(&job, 2, None).expect("the write took effect: the checkpoint is complete");
    drop(job);
    // Nothing that was not synced reached the disk.
    let lost = disk.power_cut(&mut |_| false);
    assert_eq!(
        clean.resolve("job").unwrap().id(),
        CheckpointId(2),
        "lost at the power cut: {lost:?}"
    );
    assert_every_checkpoint_verifies(&clean, "job");
}

/// Found by the simulation: deleting a subsumed checkpoint's `_metadata` failed, the
/// checkpoint was forgotten anyway, and the next subsumption deleted a shared file its
/// `_metadata` (still on storage) referenced. Now it stays live until a later subsumption
/// deletes its `_metadata`.
#[test]
fn a_subsumed_metadata_that_cannot_be_deleted_keeps_its_files() {
    let (store, clean, faults, _disk) = disk_store();
    let config = files_config().num_retained(1);
    let job = CompletedCheckpointStore::open(&store, "job", config).unwrap();
    let first = checkpoint(&job, 1, None).unwrap();
    *faults.fail_deletes_suffix.lock().unwrap() = Some("chk-1/_metadata".into());
    // chk-2 shares chk-1's shared file; subsuming chk-1 cannot delete its _metadata.
    checkpoint(&job, 2, Some(&first[1])).unwrap();
    assert!(all_files(&clean, "job/").contains(&"job/chk-1/_metadata".to_owned()));
    assert_every_checkpoint_verifies(&clean, "job");
    // chk-3 writes a shared file of its own: subsuming chk-2 must not delete the file that
    // chk-1's _metadata still references.
    checkpoint(&job, 3, None).unwrap();
    assert_every_checkpoint_verifies(&clean, "job");
    // Once the delete works again, the next subsumption finishes chk-1's.
    *faults.fail_deletes_suffix.lock().unwrap() = None;
    checkpoint(&job, 4, None).unwrap();
    assert_every_checkpoint_verifies(&clean, "job");
    assert_eq!(
        status::classify_job(&clean, "job", None)
            .unwrap()
            .iter()
            .filter(|(_, _, st)| matches!(st, CheckpointDirStatus::Complete(_)))
            .count(),
        1
    );
}

/// Found by the simulation: a process deleted a subsumed `_metadata`, failed to sync its
/// directory and died. The next writer saw no `_metadata` there and deleted the shared file
/// it referenced; a power cut then brought the `_metadata` back. Now opening syncs the job's
/// directories before acting on what they show.
#[test]
fn a_deletion_a_dead_writer_never_synced_cannot_come_back() {
    let (store, clean, faults, disk) = disk_store();
    let config = files_config().num_retained(1);
    let a = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
    let first = checkpoint(&a, 1, None).unwrap();
    *faults.fail_syncs_suffix.lock().unwrap() = Some("chk-1/".into());
    checkpoint(&a, 2, Some(&first[1])).unwrap();
    // The process dies.
    drop(a);
    *faults.fail_syncs_suffix.lock().unwrap() = None;
    let b = CompletedCheckpointStore::open(&store, "job", config).unwrap();
    let next = b.next_checkpoint_id().get();
    // A checkpoint with a shared file of its own: subsuming chk-2 deletes chk-1's file.
    checkpoint(&b, next, None).unwrap();
    drop(b);
    // The deletions in shared/ reached the disk, nothing else that was not synced did.
    let lost = disk.power_cut(&mut |path| path.starts_with("job/shared/"));
    assert_eq!(
        clean.resolve("job").unwrap().id(),
        CheckpointId(next),
        "lost: {lost:?}"
    );
    assert_every_checkpoint_verifies(&clean, "job");
}
