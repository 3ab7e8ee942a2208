//! A real `kill -9` of the job's process mid-run, then a resume from the latest checkpoint
//! in the same directory: the output is exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cornerstone_checkpoint_store::CheckpointStore;
use cornerstone_examples::{check_output, expected_counts};

const EVENTS: u64 = 20_000;
const KEYS: u64 = 100;

fn job(dir: &std::path::Path) -> Command {
    let mut cmd = common::job(dir, EVENTS, KEYS);
    cmd.args(["--interval-ms", "10"]);
    cmd
}

#[test]
fn kill_9_mid_run_then_resume_is_exactly_once() {
    kill_9_then_resume(&[], |_| {});
}

/// The same with incremental checkpoints of the fs backend: the job is killed with deltas
/// in its chain, and resumes from base and deltas.
#[test]
fn kill_9_with_incremental_checkpoints_then_resume_is_exactly_once() {
    kill_9_then_resume(&["--incremental"], |dir| {
        let store = CheckpointStore::local(dir).unwrap();
        let listed = cornerstone_checkpoint_store::inspect::list(&store, "wordcount").unwrap();
        assert!(
            listed.iter().any(|s| s.incremental == Some(true)),
            "no incremental checkpoint retained at the kill: {listed:?}"
        );
    });
}

/// Runs the job with `extra` arguments, kills it after its fourth checkpoint, runs
/// `after_kill` on its directory, resumes it and checks its output.
fn kill_9_then_resume(extra: &[&str], after_kill: impl FnOnce(&std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    // Slow: 50 ms between source batches, 40 batches per split (at least two seconds).
    let mut child = job(dir.path())
        .args(["--pace-ms", "50", "--progress"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut completed = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("completed checkpoint") {
            completed += 1;
            if completed == 4 {
                break;
            }
        }
    }
    assert_eq!(completed, 4, "the job ended before its fourth checkpoint");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the job finished before it was killed");

    // Mid-run: some output may be committed, but not all of it.
    let expected = expected_counts(2, EVENTS, KEYS, 5_000);
    let partial = check_output(&dir.path().join("wordcount-output"), &expected).unwrap();
    assert!(
        !partial.exactly_once(),
        "the output was complete before the kill"
    );
    assert!(dir.path().join("wordcount").is_dir());
    after_kill(dir.path());

    let report = common::run_exactly_once(
        job(dir.path())
            .args(["--pace-ms", "1", "--resume"])
            .args(extra),
        "the resumed job",
    );
    assert!(report.contains("resumed from checkpoint"), "{report}");
    let done = check_output(&dir.path().join("wordcount-output"), &expected).unwrap();
    assert!(done.exactly_once(), "{done:?}");
}
