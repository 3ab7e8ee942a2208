//! Crash tests with real processes: the job binary stops at a kill point inside the
//! checkpoint store's commit or discard (`FAILPOINTS=<point>=N*off->return`: at the point's
//! (N+1)th hit it says so on stderr and waits) and the test kills it with `SIGKILL` (no
//! destructor, no cleanup; its other threads were still running), then every
//! complete checkpoint left on disk verifies (`cornerstone verify`), the latest one the job
//! reported complete is among them (nothing lost), and `--resume` from the latest finishes
//! exactly once. Needs the `failpoints` feature (`cargo test --all-features` has it).
#![cfg(feature = "failpoints")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{job, reported_checkpoints, run_exactly_once, verify_job};

/// 2 inputs x 2 splits x 60k events over 5000 keys, 20 ms between source batches and a
/// checkpoint every 30 ms: about 6 s and 30 checkpoints in a debug build (the latest kill
/// point needs 6 commits, which a faster pace did not always reach on a loaded 2-core
/// machine), whose keyed state is large enough (above the 20 KiB inline threshold) to be
/// written as files in `chk-N/`.
const EVENTS: u64 = 60_000;
const KEYS: u64 = 5_000;

/// How long a kill point may take to be reached (a debug build, a loaded machine).
const REACH_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the job until it reaches `point`'s `(skip + 1)`th hit, kills it there with
/// `SIGKILL`, checks what it left, resumes it, and checks again.
fn kill_at(point: &str, skip: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = job(dir.path(), EVENTS, KEYS)
        .args(["--pace-ms", "20", "--interval-ms", "30", "--progress"])
        .env("FAILPOINTS", format!("{point}={skip}*off->return"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let (reached_tx, reached) = mpsc::channel();
    let marker = format!("kill point {point}: waiting to be killed");
    let err = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(std::io::Result::ok) {
            if line.contains(&marker) {
                let _ = reached_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let was_reached = reached.recv_timeout(REACH_TIMEOUT).is_ok();
    // SIGKILL, whether the point was reached or not (a job that is still running after the
    // timeout is stopped too).
    let _ = child.kill();
    let status = child.wait().unwrap();
    let stdout = stdout_reader.join().unwrap();
    let stderr = stderr_reader.join().unwrap();
    assert!(
        was_reached,
        "the job did not reach {point} ({status}):\n{stdout}\n{stderr}"
    );
    assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
    let reported = reported_checkpoints(&stdout);
    let last_reported = *reported
        .last()
        .unwrap_or_else(|| panic!("no checkpoint completed before the kill at {point}:\n{stdout}"));

    let after_kill = verified(
        point,
        &format!(
            "hit {}: {} checkpoints reported complete before the kill (last chk-{last_reported})",
            skip + 1,
            reported.len()
        ),
        dir.path(),
    );
    // Nothing lost: the latest checkpoint the job reported complete is still complete.
    assert!(
        after_kill
            .complete
            .iter()
            .any(|id| id.get() == last_reported),
        "{point}: chk-{last_reported} was reported complete but is gone: {after_kill:?}"
    );
    let latest = after_kill.complete.last().unwrap().get();

    let report = run_exactly_once(
        job(dir.path(), EVENTS, KEYS).args(["--pace-ms", "1", "--interval-ms", "30", "--resume"]),
        &format!("{point}: the resumed job"),
    );
    assert!(
        report.contains(&format!("resumed from checkpoint {latest}\n")),
        "{point}: not resumed from the latest complete chk-{latest}:\n{report}"
    );
    verified(
        point,
        &format!("resumed from chk-{latest}, exactly once"),
        dir.path(),
    );
}

/// Every complete checkpoint in `dir` verifies (`cornerstone verify`); says what is on
/// disk after `when`.
#[track_caller]
fn verified(point: &str, when: &str, dir: &std::path::Path) -> common::Verified {
    let v = verify_job(dir);
    eprintln!(
        "{point} ({when}): on disk: complete {:?}, {} without _metadata; verify: {} files, {} problems",
        v.complete,
        v.incomplete,
        v.files_checked,
        v.problems.len()
    );
    assert!(v.problems.is_empty(), "{point} ({when}): {:#?}", v.problems);
    v
}

/// The 4th commit dies with its files written and synced, before `_metadata`.
#[test]
fn killed_before_metadata_is_published() {
    kill_at("commit-before-metadata", 3);
}

/// The 5th commit dies right after publishing `_metadata`, before the checkpoint is
/// registered (so before it is reported, and before the oldest one is subsumed).
#[test]
fn killed_after_metadata_is_published() {
    kill_at("commit-after-metadata", 4);
}

/// The 3rd subsumption (the 6th commit, num_retained 3) dies after deleting the subsumed
/// checkpoint's `_metadata`, before any of its files.
#[test]
fn killed_after_a_discarded_metadata_is_deleted() {
    kill_at("discard-after-metadata-delete", 2);
}

/// A subsumption dies after deleting the 2nd file of subsumed checkpoints.
#[test]
fn killed_in_the_middle_of_a_discard() {
    kill_at("discard-mid-files", 1);
}
