//! Two-phase commit with the real file sink, operator state snapshotted into a real local
//! checkpoint store and restored from it.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::{CheckpointId, ErrorKind, OperatorStateHandle};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore, CompletedCheckpointStore};
use cornerstone_coordinator::two_phase::PENDING_DIR;
use cornerstone_coordinator::{
    FileTransaction, TransactionalFileSink, TransactionalSink, TwoPhaseCommitSink,
};

fn committed_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = TransactionalFileSink::committed_files(dir)
        .unwrap()
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

fn pending_files(dir: &Path) -> usize {
    fs::read_dir(dir.join(PENDING_DIR)).unwrap().count()
}

/// Snapshots `op` as checkpoint `id` into `job` and commits it; returns the handles.
fn checkpoint(
    job: &CompletedCheckpointStore,
    op: &OperatorStateBackend,
    id: u64,
) -> Vec<OperatorStateHandle> {
    let mut pending = job.begin_checkpoint(CheckpointId(id)).unwrap();
    let state = op
        .snapshot(CheckpointId(id))
        .write(&*pending.stream_factory())
        .unwrap();
    let handles = state.operator.clone();
    pending
        .add_subtask_state(&OperatorSpec::new("sink", "Sink", 1, 128), 0, state)
        .unwrap();
    pending.commit().unwrap();
    handles
}

#[test]
fn records_are_visible_only_after_the_checkpoint_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let store = CheckpointStore::local(dir.path().join("chk")).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    let op = OperatorStateBackend::new();
    let (mut sink, report) =
        TwoPhaseCommitSink::initialize(TransactionalFileSink::open(&out, "s0").unwrap(), &op)
            .unwrap();
    assert_eq!((report.committed, report.aborted), (0, 0));
    sink.invoke("a".into()).unwrap();
    sink.invoke("b".into()).unwrap();
    sink.snapshot_state(CheckpointId(1)).unwrap();
    checkpoint(&job, &op, 1);
    sink.invoke("c".into()).unwrap();
    assert!(
        committed_lines(&out).is_empty(),
        "visible before the notification"
    );
    assert_eq!(sink.notify_checkpoint_complete(CheckpointId(1)).unwrap(), 1);
    assert_eq!(committed_lines(&out), vec!["a", "b"]);
    // Checkpoint 2 is aborted: its transaction stays pending; checkpoint 3 commits both.
    sink.snapshot_state(CheckpointId(2)).unwrap();
    sink.notify_checkpoint_aborted(CheckpointId(2));
    sink.invoke("d".into()).unwrap();
    sink.snapshot_state(CheckpointId(3)).unwrap();
    assert_eq!(sink.pending_transactions().len(), 2);
    assert_eq!(sink.notify_checkpoint_complete(CheckpointId(3)).unwrap(), 2);
    assert_eq!(committed_lines(&out), vec!["a", "b", "c", "d"]);
    sink.close().unwrap();
    assert_eq!(pending_files(&out), 0);
}

#[test]
fn restore_commits_pre_committed_transactions_and_aborts_the_open_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let store = CheckpointStore::local(dir.path().join("chk")).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    let op = OperatorStateBackend::new();
    let (mut sink, _) =
        TwoPhaseCommitSink::initialize(TransactionalFileSink::open(&out, "s0").unwrap(), &op)
            .unwrap();
    sink.invoke("before-1".into()).unwrap();
    sink.snapshot_state(CheckpointId(1)).unwrap();
    let handles = checkpoint(&job, &op, 1);
    // The process dies after checkpoint 1 completed but before the sink was notified, with
    // records written into the next transaction.
    sink.invoke("after-1".into()).unwrap();
    drop(sink);
    assert!(committed_lines(&out).is_empty());
    assert_eq!(pending_files(&out), 2);

    // Restore from checkpoint 1 twice (a failure during the first recovery): the commit
    // is idempotent and nothing is duplicated.
    let reader = store.reader("job/");
    for round in 0..2 {
        let op = OperatorStateBackend::restore(&handles, Some(&reader)).unwrap();
        let (sink, report) =
            TwoPhaseCommitSink::initialize(TransactionalFileSink::open(&out, "s0").unwrap(), &op)
                .unwrap();
        assert_eq!((report.committed, report.aborted), (1, 1), "round {round}");
        assert_eq!(committed_lines(&out), vec!["before-1"]);
        sink.close().unwrap();
    }
    assert_eq!(pending_files(&out), 0, "the open transaction was aborted");
}

#[test]
fn lingering_transactions_of_failed_attempts_are_aborted_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut s1 = TransactionalFileSink::open(dir.path(), "s1").unwrap();
    let mut s10 = TransactionalFileSink::open(dir.path(), "s10").unwrap();
    // Two attempts of subtask 1 opened transactions that no checkpoint recorded.
    let lost_a = s1.begin_transaction().unwrap();
    let lost_b = s1.begin_transaction().unwrap();
    let other = s10.begin_transaction().unwrap();
    s1.write(&lost_a, "never committed".into()).unwrap();
    let op = OperatorStateBackend::new();
    let (mut sink, _) =
        TwoPhaseCommitSink::initialize(TransactionalFileSink::open(dir.path(), "s1").unwrap(), &op)
            .unwrap();
    let current = sink.current_transaction().clone();
    assert_eq!(sink.sink_mut().abort_lingering(&[current]).unwrap(), 2);
    assert_eq!(
        pending_files(dir.path()),
        2,
        "the open one and subtask 10's stay"
    );
    assert!(dir.path().join(PENDING_DIR).join(&other.name).is_file());
    assert!(!dir.path().join(PENDING_DIR).join(&lost_b.name).exists());
    sink.invoke("kept".into()).unwrap();
    sink.snapshot_state(CheckpointId(1)).unwrap();
    sink.notify_checkpoint_complete(CheckpointId(1)).unwrap();
    assert_eq!(committed_lines(dir.path()), vec!["kept"]);
}

#[test]
fn the_file_sink_commit_is_idempotent_and_a_lost_transaction_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = TransactionalFileSink::open(dir.path(), "p").unwrap();
    let txn = sink.begin_transaction().unwrap();
    sink.write(&txn, "x".into()).unwrap();
    sink.pre_commit(&txn).unwrap();
    sink.commit(&txn).unwrap();
    sink.commit(&txn).unwrap();
    sink.abort(&txn).unwrap();
    assert_eq!(committed_lines(dir.path()), vec!["x"]);
    let lost = FileTransaction {
        name: "part-p-gone".into(),
    };
    let err = sink.commit(&lost).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.context("transaction"), Some("part-p-gone"));
    let err = sink
        .commit(&FileTransaction {
            name: "../escape".into(),
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
