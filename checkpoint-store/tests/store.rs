//! Commit, recovery, retention, cleanup policies, savepoints, restore and inspection on
//! OpenDAL's fs and memory services and on S3 (SeaweedFS): one suite, each test run per storage.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{
    CheckpointId, CheckpointStreamFactory, ErrorKind, KeyedBackendParams, KeyedStateBackendExt,
    ManualClock, StateBackend, StateReader, StateScope, StreamStateHandle, ValueStateDescriptor,
};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::inspect::{self, GcReason, ProblemKind, SnapshotStatus};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, ClaimMode, CleanupPolicy, CompletedCheckpointStore,
    JobStatus, SnapshotKind,
};
use cornerstone_testkit::checkpoints::{
    HeapFactory, KeyedOperator, assert_race_outcome, commit_streams, put_values,
};
use cornerstone_testkit::s3::runtime;
use cornerstone_testkit::storage_tests;
use cornerstone_testkit::store::{
    TestStore, all_files, files_config, get, put, remove, state_of, write_stream,
};

fn is_random_name(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn layout_names_match_design(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let job = CompletedCheckpointStore::open(&store, "abcdef123456", files_config()).unwrap();
    let mut p = job.begin_checkpoint(CheckpointId(7)).unwrap();
    let f = p.stream_factory();
    let s = vec![
        write_stream(&*f, StateScope::Exclusive, b"exclusive"),
        write_stream(&*f, StateScope::Shared, b"shared"),
        write_stream(&*f, StateScope::TaskOwned, b"taskowned"),
    ];
    p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(s))
        .unwrap();
    let done = p.commit().unwrap();
    assert_eq!(done.metadata_path, "abcdef123456/chk-7/_metadata", "{name}");
    let files = all_files(&store, "");
    assert_eq!(files.len(), 4, "{name}: {files:?}");
    for f in &files {
        let rest = f.strip_prefix("abcdef123456/").unwrap();
        let (dir, file) = rest.split_once('/').unwrap();
        assert!(
            ["chk-7", "shared", "taskowned"].contains(&dir),
            "{name}: {f}"
        );
        assert!(file == "_metadata" || is_random_name(file), "{name}: {f}");
    }

    let mut sp = job.begin_savepoint(CheckpointId(8), "savepoints").unwrap();
    let f = sp.stream_factory();
    let s = vec![write_stream(&*f, StateScope::Shared, b"in the savepoint")];
    sp.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(s))
        .unwrap();
    let done = sp.commit().unwrap();
    let sp_dir = done.dir();
    let seg = sp_dir
        .strip_prefix("savepoints/")
        .unwrap()
        .trim_end_matches('/');
    let (prefix, random) = seg.strip_prefix("savepoint-").unwrap().split_at(6);
    assert_eq!(prefix, "abcdef", "{name}");
    assert_eq!(random.len(), 13, "{name}: {seg}");
    assert_eq!(all_files(&store, &sp_dir).len(), 2, "{name}");
    assert_eq!(done.metadata.kind, SnapshotKind::Savepoint);
}

fn inline_below_threshold_and_files_above(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let job = CompletedCheckpointStore::open(
        &store,
        "job",
        CheckpointConfig::default().inline_threshold(100),
    )
    .unwrap();
    let p = job.begin_checkpoint(CheckpointId(1)).unwrap();
    let f = p.stream_factory();
    assert!(
        matches!(
            write_stream(&*f, StateScope::Exclusive, &[1; 99]),
            StreamStateHandle::Inline(_)
        ),
        "{name}"
    );
    let big = vec![3u8; 300_000];
    let h = write_stream(&*f, StateScope::Exclusive, &big);
    let file = h.file().unwrap();
    assert_eq!(
        (file.size, file.crc32),
        (300_000, crc32fast::hash(&big)),
        "{name}"
    );
    let reader = store.reader(f.base_dir());
    assert_eq!(read_stream(&h, Some(&reader)).unwrap(), big);
    // Range reads.
    let mut part = Vec::new();
    std::io::Read::read_to_end(&mut reader.open_file(file, 10..20).unwrap(), &mut part).unwrap();
    assert_eq!(part, vec![3u8; 10]);
    assert_eq!(
        reader.open_file(file, 0..300_001).err().unwrap().kind(),
        ErrorKind::InvalidInput
    );
    p.abort().unwrap();
    assert!(
        all_files(&store, "job/").is_empty(),
        "{name}: abort leaves nothing"
    );
}

fn commit_with(
    job: &CompletedCheckpointStore,
    id: u64,
    shared: &[StreamStateHandle],
) -> Vec<StreamStateHandle> {
    let exclusive = format!("exclusive {id}");
    let new_shared = format!("shared {id}");
    commit_streams(
        job,
        id,
        &[
            (StateScope::Exclusive, exclusive.as_bytes()),
            (StateScope::Shared, new_shared.as_bytes()),
        ],
        shared,
    )
    .unwrap()
}

fn recovery_sorts_ids_numerically_and_retention_keeps_referenced_shared_files(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let config = files_config().num_retained(2);
    let job = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
    let first = commit_with(&job, 2, &[]);
    let reused = first[1].clone(); // shared file of chk-2, reused by every later one
    commit_with(&job, 9, std::slice::from_ref(&reused));
    commit_with(&job, 10, std::slice::from_ref(&reused));
    assert_eq!(
        job.checkpoint_ids(),
        vec![CheckpointId(9), CheckpointId(10)],
        "{name}"
    );
    assert!(
        !all_files(&store, "job/")
            .iter()
            .any(|f| f.starts_with("job/chk-2/")),
        "{name}"
    );
    let reader = store.reader("job/");
    assert_eq!(
        read_stream(&reused, Some(&reader)).unwrap(),
        b"shared 2",
        "{name}"
    );

    // An incomplete chk-11 (no _metadata) is not restored.
    let p = job.begin_checkpoint(CheckpointId(11)).unwrap();
    write_stream(&*p.stream_factory(), StateScope::Exclusive, b"torn");
    std::mem::forget(p); // a crash: nothing is cleaned up

    let job = CompletedCheckpointStore::open(&store, "job", config).unwrap();
    assert_eq!(
        job.checkpoint_ids(),
        vec![CheckpointId(9), CheckpointId(10)],
        "{name}"
    );
    assert_eq!(
        store.resolve("job").unwrap().id(),
        CheckpointId(10),
        "{name}"
    );
    // Liveness rebuilt from _metadata: the next subsumption keeps the reused file.
    commit_with(&job, 12, std::slice::from_ref(&reused));
    assert_eq!(
        read_stream(&reused, Some(&reader)).unwrap(),
        b"shared 2",
        "{name}"
    );
    let listed = inspect::list(&store, "job").unwrap();
    let ids: Vec<(u64, &str)> = listed
        .iter()
        .map(|l| (l.id.unwrap().0, l.status.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![(10, "complete"), (11, "incomplete"), (12, "complete")],
        "{name}"
    );
    let gc = inspect::gc_candidates(
        &store,
        "job",
        &inspect::GcOptions::new(0).with_min_age_ms(0),
    )
    .unwrap();
    assert_eq!(gc.candidates.len(), 1, "{name}: {gc:?}");
    assert_eq!(gc.candidates[0].reason, GcReason::IncompleteCheckpoint);
    assert_eq!(gc.candidates[0].size, 4);
    assert_eq!(
        inspect::gc_delete(&store, &gc, &inspect::GcOptions::new(0).with_min_age_ms(0)).unwrap(),
        1
    );
    assert!(
        inspect::gc_candidates(
            &store,
            "job",
            &inspect::GcOptions::new(0).with_min_age_ms(0)
        )
        .unwrap()
        .candidates
        .is_empty(),
        "{name}"
    );
    for c in job.checkpoints() {
        assert!(
            inspect::verify(&store, &c.metadata_path, |_, _| {})
                .unwrap()
                .is_ok(),
            "{name}"
        );
    }
}

fn every_cleanup_policy_and_termination_status(s: &TestStore) {
    use CleanupPolicy::*;
    use JobStatus::*;
    let expected_delete = [
        (NoExternalized, [true, true, true, true]),
        (DeleteOnCancellation, [true, true, false, true]),
        (RetainOnCancellation, [true, false, false, false]),
    ];
    let (name, store) = (s.name, s.store.clone());
    for (policy, deletes) in expected_delete {
        for (status, delete) in [Finished, Cancelled, Failed, Suspended]
            .into_iter()
            .zip(deletes)
        {
            assert_eq!(policy.deletes_on(status), delete);
            let job_id = format!("job-{policy:?}-{status:?}");
            let job =
                CompletedCheckpointStore::open(&store, &job_id, files_config().cleanup(policy))
                    .unwrap();
            commit_with(&job, 1, &[]);
            let mut p = job.begin_checkpoint(CheckpointId(2)).unwrap();
            let f = p.stream_factory();
            let s = vec![write_stream(&*f, StateScope::TaskOwned, b"task")];
            p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(s))
                .unwrap();
            p.commit().unwrap();
            let mut sp = job
                .begin_savepoint(CheckpointId(3), &format!("{job_id}-sp"))
                .unwrap();
            let s = vec![write_stream(
                &*sp.stream_factory(),
                StateScope::Exclusive,
                b"sp",
            )];
            sp.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(s))
                .unwrap();
            let sp = sp.commit().unwrap();
            job.terminate(status).unwrap();
            let left = all_files(&store, &format!("{job_id}/"));
            if delete {
                assert!(
                    left.iter().all(|f| f.contains("/taskowned/")),
                    "{name} {policy:?} {status:?}: {left:?}"
                );
                assert_eq!(left.len(), 1, "{name}: task-owned files are never deleted");
                assert!(store.resolve(&job_id).is_err());
            } else {
                assert_eq!(
                    store.resolve(&job_id).unwrap().id(),
                    CheckpointId(2),
                    "{name} {policy:?} {status:?}"
                );
                assert!(inspect::verify(&store, &job_id, |_, _| {}).unwrap().is_ok());
            }
            assert!(
                store.resolve(&sp.metadata_path).is_ok(),
                "savepoints are never deleted"
            );
            assert_eq!(
                job.begin_checkpoint(CheckpointId(4)).unwrap_err().kind(),
                ErrorKind::Closed
            );
        }
    }
}

fn savepoint_is_relocatable_and_dispose_deletes_it(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    let mut sp = job.begin_savepoint(CheckpointId(5), "sps").unwrap();
    let f = sp.stream_factory();
    let streams = vec![
        write_stream(&*f, StateScope::Exclusive, b"one"),
        write_stream(&*f, StateScope::Shared, b"two"),
    ];
    sp.add_subtask_state(
        &OperatorSpec::new("op", "Op", 1, 128),
        0,
        state_of(streams.clone()),
    )
    .unwrap();
    let done = sp.commit().unwrap();
    assert!(
        inspect::verify(&store, &done.dir(), |_, _| {})
            .unwrap()
            .is_ok(),
        "{name}"
    );

    // Copy the directory into another store entirely, delete the original, restore the copy.
    let moved = s.sibling("other");
    for file in all_files(&store, &done.dir()) {
        let base = file.rsplit('/').next().unwrap();
        put(
            &moved,
            &format!("moved/my-savepoint/{base}"),
            get(&store, &file),
        );
    }
    store.dispose_savepoint(&done.dir(), false, false).unwrap();
    assert!(all_files(&store, &done.dir()).is_empty(), "{name}");

    let mut path = "moved/my-savepoint".to_owned();
    let mut moved = moved;
    if let Some(dir) = &s.dir {
        // A local path, as the command-line tool gets it.
        let dst = dir.path().join("other/moved/my-savepoint");
        (moved, path) =
            CheckpointStore::open_location(dst.to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
    }
    let point = moved.resolve(&path).unwrap();
    assert_eq!(point.metadata.kind, SnapshotKind::Savepoint);
    let target = s.sibling("ckpts");
    let new_job = CompletedCheckpointStore::open(&target, "job2", files_config()).unwrap();
    let reader = moved.reader(&point.base_dir);
    assert_eq!(
        new_job
            .restore(&point, ClaimMode::NoClaim)
            .unwrap()
            .base_dir(),
        reader.base_dir()
    );
    let restored = point.metadata.operators[0].subtasks[&0].streams();
    assert_eq!(read_stream(restored[0], Some(&reader)).unwrap(), b"one");
    assert_eq!(read_stream(restored[1], Some(&reader)).unwrap(), b"two");
    assert!(inspect::verify(&moved, &path, |_, _| {}).unwrap().is_ok());

    // Disposing a checkpoint as a savepoint is refused.
    commit_with(&job, 6, &[]);
    assert_eq!(
        store
            .dispose_savepoint("job/chk-6", true, false)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

fn no_claim_restores_never_delete_and_new_checkpoints_cannot_reference_them(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let old = CompletedCheckpointStore::open(&store, "old", files_config()).unwrap();
    let old_streams = commit_with(&old, 1, &[]);
    let point = store.resolve("old").unwrap();
    assert_eq!(point.base_dir, "old/");

    let new =
        CompletedCheckpointStore::open(&store, "new", files_config().num_retained(1)).unwrap();
    let reader = new.restore(&point, ClaimMode::NoClaim).unwrap();
    assert_eq!(
        read_stream(&old_streams[1], Some(&reader)).unwrap(),
        b"shared 1",
        "{name}"
    );
    // Referencing a restored shared file in the new job is refused: the first checkpoint is full.
    let mut p = new.begin_checkpoint(CheckpointId(2)).unwrap();
    p.add_subtask_state(
        &OperatorSpec::new("op", "Op", 1, 128),
        0,
        state_of(vec![old_streams[1].clone()]),
    )
    .unwrap();
    let e = p.commit().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: {e}");
    commit_with(&new, 3, &[]);
    commit_with(&new, 4, &[]);
    assert!(
        inspect::verify(&store, "old", |_, _| {}).unwrap().is_ok(),
        "{name}: NoClaim never deletes"
    );
    // NoClaim of the job's own checkpoint is refused.
    let own = store.resolve("new").unwrap();
    assert_eq!(
        new.restore(&own, ClaimMode::NoClaim).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // Claim: the restored checkpoint is subsumed like our own.
    let claimer = CompletedCheckpointStore::open(&store, "claimer", files_config()).unwrap();
    claimer.restore(&point, ClaimMode::Claim).unwrap();
    commit_with(&claimer, 2, &[]);
    assert!(
        store.resolve("old").is_err(),
        "{name}: claimed checkpoint subsumed"
    );
    assert!(
        all_files(&store, "old/").is_empty(),
        "{name}: {:?}",
        all_files(&store, "old/")
    );
}

fn heap_backend_state_written_through_the_factory_round_trips(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let heap = HeapFactory::streams("fs-test", Compression::None);
    let job = CompletedCheckpointStore::open(
        &store,
        "job",
        CheckpointConfig::default().inline_threshold(64),
    )
    .unwrap();
    let mut pending = job.begin_checkpoint(CheckpointId(1)).unwrap();
    let keyed = KeyedOperator::new("keyed", "Keyed", 2, 128);
    let states = keyed.write(&mut pending, CheckpointId(1), &heap, |range, backend| {
        put_values(backend, "count", keyed.keys_in(range, 0..500), |k| {
            format!("value-{k}")
        });
    });
    for state in &states {
        assert!(
            state.streams().iter().any(|s| s.file().is_some()),
            "{name}: written to files"
        );
    }
    pending.commit().unwrap();

    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    let point = store.resolve("job/chk-1/_metadata").unwrap();
    let reader: Arc<dyn StateReader> = Arc::new(job.restore(&point, ClaimMode::Claim).unwrap());
    let op = point.metadata.operator("keyed").unwrap();
    for subtask in 0..2u32 {
        let range = keyed.range(subtask);
        let params = KeyedBackendParams::new(128, range)
            .restore(op.subtasks[&subtask].keyed.clone(), Some(reader.clone()));
        let backend = heap.create_keyed_backend::<u64>(params).unwrap();
        let counts = backend
            .value_state::<String, ()>(&ValueStateDescriptor::new("count"))
            .unwrap();
        for k in keyed.keys_in(range, 0..500) {
            assert_eq!(
                counts.get(&k, &()).unwrap(),
                Some(format!("value-{k}")),
                "{name}"
            );
        }
    }
    let shown = inspect::show(&store, "job").unwrap();
    assert_eq!(shown.operators[0].subtasks.len(), 2);
    assert_eq!(
        shown.operators[0].subtasks[1].handles[0].key_groups,
        Some((64, 127))
    );
}

fn verify_reports_every_problem_and_diff_compares(s: &TestStore) {
    let store = s.store.clone();
    let clock = ManualClock::new(1_000);
    let job = CompletedCheckpointStore::open(
        &store,
        "job",
        files_config()
            .num_retained(2)
            .clock(Arc::new(clock.clone())),
    )
    .unwrap();
    let a = commit_with(&job, 1, &[]);
    clock.advance(5);
    commit_with(&job, 2, std::slice::from_ref(&a[1]));
    let d = inspect::diff(&store, "job/chk-1", "job/chk-2").unwrap();
    assert_eq!(
        d.files_common,
        vec![(format!("job/{}", a[1].file().unwrap().path), 8)]
    );
    assert_eq!((d.files_added.len(), d.files_removed.len()), (2, 1));
    assert_eq!(d.operators_changed.len(), 1);
    // Per operator: chk-2 wrote two files, dropped chk-1's exclusive one, reused its shared one.
    let op = &d.operators_changed[0];
    assert_eq!(op.subtasks_changed, [0]);
    assert_eq!(
        (op.files_added, op.files_removed, op.files_shared),
        (2, 1, 1),
        "{op:?}"
    );
    assert_eq!(
        op.bytes_added,
        d.files_added.iter().map(|(_, s)| s).sum::<u64>()
    );
    let listed = inspect::list(&store, "job").unwrap();
    assert_eq!(listed[1].completed_timestamp_ms, Some(1_005));
    // chk-2 wrote everything but the 8-byte shared file it reuses from chk-1.
    assert_eq!(listed[0].written_bytes, Some(listed[0].size_bytes));
    assert_eq!(listed[1].written_bytes, Some(listed[1].size_bytes - 8));
    assert_eq!(listed[1].incremental, Some(false));

    // Corrupt one file, truncate another, delete a third.
    let files = inspect::show(&store, "job/chk-2").unwrap().files;
    let paths: Vec<&String> = files.keys().collect();
    let mut bytes = get(&store, paths[0]);
    bytes[0] ^= 1;
    put(&store, paths[0], bytes);
    put(&store, paths[1], b"x".to_vec());
    remove(&store, paths[2]);
    let report = inspect::verify(&store, "job", |_, _| {}).unwrap();
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds.len(), 3, "{report:?}");
    for k in [
        ProblemKind::ChecksumMismatch,
        ProblemKind::SizeMismatch,
        ProblemKind::MissingFile,
    ] {
        assert!(kinds.contains(&k), "{report:?}");
    }
    // A corrupt _metadata is listed as corrupt, reported by verify, and never restored.
    put(
        &store,
        "job/chk-2/_metadata",
        b"CSMD\x00\x01 garbage".to_vec(),
    );
    assert!(matches!(
        inspect::list(&store, "job").unwrap()[1].status,
        SnapshotStatus::Corrupt(_)
    ));
    assert_eq!(
        inspect::verify(&store, "job/chk-2/_metadata", |_, _| {})
            .unwrap()
            .problems[0]
            .kind,
        ProblemKind::Metadata
    );
    // The job directory never falls back silently to chk-1 past an unreadable newest
    // `_metadata`: resolving it is an error naming the file, and `verify` of the job
    // directory reports it.
    let e = store.resolve("job").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert_eq!(e.context("path"), Some("job/chk-2/_metadata"), "{e}");
    let report = inspect::verify(&store, "job", |_, _| {}).unwrap();
    assert!(!report.is_ok(), "{report:?}");
    assert_eq!(report.problems[0].kind, ProblemKind::Metadata);
    assert_eq!(report.metadata_path, "job/chk-2/_metadata");
    // Opening the job fails the same way, unless the caller opts in to falling back.
    let e = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap_err();
    assert_eq!(e.context("path"), Some("job/chk-2/_metadata"), "{e}");
    let job = CompletedCheckpointStore::open(
        &store,
        "job",
        CheckpointConfig::default().fallback_on_unreadable(true),
    )
    .unwrap();
    assert_eq!(job.latest().unwrap().id(), CheckpointId(1));
    // ... and gc keeps the unreadable checkpoint and every shared file.
    let gc = inspect::gc_candidates(
        &store,
        "job",
        &inspect::GcOptions::new(0).with_min_age_ms(0),
    )
    .unwrap();
    assert!(
        gc.candidates
            .iter()
            .all(|c| !c.path.starts_with("job/chk-2/") && !c.path.starts_with("job/shared/")),
        "{gc:?}"
    );
    assert!(gc.kept.iter().any(|k| k.path == "job/chk-2/"), "{gc:?}");
}

/// `show` and `diff` list operators by uid, whatever order their subtasks acknowledged in.
fn operators_are_shown_and_compared_by_uid(s: &TestStore) {
    let store = s.store.clone();
    let job =
        CompletedCheckpointStore::open(&store, "job", files_config().num_retained(2)).unwrap();
    for (id, order) in [(1, ["zeta", "alpha"]), (2, ["alpha", "zeta"])] {
        let mut p = job.begin_checkpoint(CheckpointId(id)).unwrap();
        let f = p.stream_factory();
        for uid in order {
            let stream = write_stream(&*f, StateScope::Exclusive, format!("{uid} {id}").as_bytes());
            p.add_subtask_state(
                &OperatorSpec::new(uid, uid, 1, 128),
                0,
                state_of(vec![stream]),
            )
            .unwrap();
        }
        p.commit().unwrap();
    }
    for path in ["job/chk-1", "job/chk-2"] {
        let uids: Vec<String> = inspect::show(&store, path)
            .unwrap()
            .operators
            .into_iter()
            .map(|o| o.uid)
            .collect();
        assert_eq!(uids, ["alpha", "zeta"], "{path}");
    }
    let d = inspect::diff(&store, "job/chk-1", "job/chk-2").unwrap();
    let changed: Vec<&str> = d.operators_changed.iter().map(|c| c.uid.as_str()).collect();
    assert_eq!(changed, ["alpha", "zeta"]);
}

storage_tests!(
    layout_names_match_design,
    operators_are_shown_and_compared_by_uid,
    inline_below_threshold_and_files_above,
    recovery_sorts_ids_numerically_and_retention_keeps_referenced_shared_files,
    every_cleanup_policy_and_termination_status,
    savepoint_is_relocatable_and_dispose_deletes_it,
    no_claim_restores_never_delete_and_new_checkpoints_cannot_reference_them,
    heap_backend_state_written_through_the_factory_round_trips,
    verify_reports_every_problem_and_diff_compares,
);

/// A state file several times the write chunk size goes up in parts (on S3 a multipart
/// upload: OpenDAL buffers at most one 5 MiB part, the stream one write chunk) and reads back
/// whole and by range with its CRC.
fn large_stream_uploads_in_parts_and_reads_back(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    let job =
        CompletedCheckpointStore::open(&store, "job", files_config().write_chunk_size(1 << 20))
            .unwrap();
    let mut p = job.begin_checkpoint(CheckpointId(1)).unwrap();
    let f = p.stream_factory();
    // 13 MiB of varied bytes in 64 KiB writes: three 5 MiB S3 parts (5 + 5 + 3).
    let total = 13 << 20;
    let big: Vec<u8> = (0..total as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut out = f.create(StateScope::Exclusive).unwrap();
    for piece in big.chunks(64 << 10) {
        std::io::Write::write_all(&mut out, piece).unwrap();
    }
    let h = out.close().unwrap();
    let file = h.file().unwrap().clone();
    assert_eq!(
        (file.size, file.crc32),
        (total as u64, crc32fast::hash(&big)),
        "{name}"
    );
    p.add_subtask_state(
        &OperatorSpec::new("op", "Op", 1, 128),
        0,
        state_of(vec![h.clone()]),
    )
    .unwrap();
    p.commit().unwrap();

    let full = format!("job/{}", file.path);
    if name == "s3" {
        // S3 gives a multipart upload the ETag "<md5 of the part md5s>-<number of parts>".
        let meta = runtime().block_on(store.operator().stat(&full)).unwrap();
        let etag = meta.etag().unwrap_or_default().trim_matches('"').to_owned();
        assert!(
            etag.ends_with("-3"),
            "{name}: expected a 3-part multipart upload, ETag {etag:?}"
        );
    }
    let reader = store.reader("job/");
    let back = read_stream(&h, Some(&reader)).unwrap();
    assert_eq!(back.len(), big.len(), "{name}");
    assert!(back == big, "{name}: content differs");
    let range = (6 << 20) - 7..(6 << 20) + 100_003;
    let mut part = Vec::new();
    std::io::Read::read_to_end(
        &mut reader.open_file(&file, range.clone()).unwrap(),
        &mut part,
    )
    .unwrap();
    assert!(
        part[..] == big[range.start as usize..range.end as usize],
        "{name}"
    );
    assert!(
        inspect::verify(&store, "job", |_, _| {}).unwrap().is_ok(),
        "{name}"
    );
}

/// Two coordinators race to commit the same `chk-N`: the hard link (local filesystem) or
/// the conditional put (`if_not_exists`, enforced by the service) lets at most one of them
/// complete it (none when the later writer's lease fences the earlier one, whose reserved id
/// the later one may not use); the winner's checkpoint restores and nothing is lost
/// ([`assert_race_outcome`]).
fn two_writers_never_both_complete_a_checkpoint(s: &TestStore) {
    let (name, store) = (s.name, s.store.clone());
    // The service itself refuses the second conditional write (no check before it).
    let op = store.operator().clone();
    let rt = runtime();
    let conditional = || cornerstone_checkpoint_store::opendal::options::WriteOptions {
        if_not_exists: true,
        ..Default::default()
    };
    rt.block_on(op.write_options("cond/_metadata", "first", conditional()))
        .unwrap();
    let second = rt
        .block_on(op.write_options("cond/_metadata", "second", conditional()))
        .unwrap_err();
    assert_eq!(
        second.kind(),
        cornerstone_checkpoint_store::opendal::ErrorKind::ConditionNotMatch,
        "{name}: {second}"
    );
    assert_eq!(get(&store, "cond/_metadata"), b"first", "{name}");

    let mut last_winner = None;
    for id in 1..=6u64 {
        let barrier = std::sync::Barrier::new(2);
        let results: Vec<Result<String, cornerstone_backend_api::Error>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = ["a", "b"]
                    .into_iter()
                    .map(|who| {
                        let (store, barrier) = (store.clone(), &barrier);
                        scope.spawn(move || {
                            // Whatever fails before the barrier (the other writer's lease
                            // may fence this one as early as `begin_checkpoint`), both
                            // threads reach it.
                            let prepared = (|| {
                                let job =
                                    CompletedCheckpointStore::open(&store, "race", files_config())?;
                                let mut p = job.begin_checkpoint(CheckpointId(id))?;
                                let f = p.stream_factory();
                                let h = write_stream(&*f, StateScope::Exclusive, who.as_bytes());
                                p.add_subtask_state(
                                    &OperatorSpec::new("op", who, 1, 128),
                                    0,
                                    state_of(vec![h]),
                                )?;
                                Ok::<_, cornerstone_backend_api::Error>(p)
                            })();
                            barrier.wait();
                            prepared.and_then(|p| p.commit()).map(|_| who.to_owned())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
        assert_race_outcome(&store, "race", id, &results, &mut last_winner);
    }
}

storage_tests!(large_stream_uploads_in_parts_and_reads_back);

storage_tests!(two_writers_never_both_complete_a_checkpoint);
