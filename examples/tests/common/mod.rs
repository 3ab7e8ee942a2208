//! Helpers shared by the job's tests: for those that run the real `cornerstone-job`
//! binary, the command line, the report's numbers, and a `cornerstone verify` of every
//! complete checkpoint (the CLI's code path, through the library: the `cornerstone` binary
//! belongs to another package); for those that run it in process, the check that a run
//! followed its plan of injected failures.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use cornerstone_backend_api::CheckpointId;
use cornerstone_checkpoint_store::status::{self, CheckpointDirStatus};
use cornerstone_checkpoint_store::{CheckpointStore, inspect};
use cornerstone_examples::{JOB_ID, JobReport};

/// The job binary on `dir` with `events` per split over `keys` keys, no injected failure
/// and a fixed seed; callers add pace, interval, `--resume`, `--progress`. `FAILPOINTS` is
/// removed from its environment (a test that wants a kill point sets it again).
pub(crate) fn job(dir: &Path, events: u64, keys: u64) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cornerstone-job"));
    cmd.arg("--dir")
        .arg(dir)
        .args(["--events", &events.to_string(), "--keys", &keys.to_string()])
        .args(["--failures", "0", "--seed", "1"])
        .env_remove("FAILPOINTS");
    cmd
}

/// Runs the job to its end, asserts that it succeeded and that its output is exactly once,
/// and returns its report (stdout). `what` names the run in failure messages.
#[track_caller]
pub(crate) fn run_exactly_once(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: the job failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("OK: exactly once"), "{what}:\n{report}");
    report
}

/// The ids of the `completed checkpoint N` lines that `--progress` printed.
pub(crate) fn reported_checkpoints(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("completed checkpoint "))
        .map(|id| id.trim().parse().unwrap())
        .collect()
}

/// The (completed, failed) counts of the report's `checkpoints: ...` line.
pub(crate) fn checkpoint_counts(report: &str) -> (u64, u64) {
    let line = report
        .lines()
        .find(|l| l.starts_with("checkpoints: "))
        .unwrap_or_else(|| panic!("no checkpoints line in the report:\n{report}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}

/// What [`verify_job`] found.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    /// The complete checkpoints (a decodable `_metadata`), ascending.
    pub(crate) complete: Vec<CheckpointId>,
    /// `chk-N/` directories without `_metadata` (garbage of a crash, or in progress).
    pub(crate) incomplete: usize,
    /// `chk-N/` whose `_metadata` a fenced writer published late (never restored).
    pub(crate) fenced: usize,
    /// Files read and checked.
    pub(crate) files_checked: usize,
    /// Every problem (missing file, size or CRC mismatch, unreadable `_metadata`).
    pub(crate) problems: Vec<String>,
}

/// `cornerstone verify` of every complete checkpoint of the job in `dir` (the CLI verifies
/// one path; this verifies them all), plus unreadable `_metadata` files as problems.
pub(crate) fn verify_job(dir: &Path) -> Verified {
    let store = CheckpointStore::local(dir).unwrap();
    let mut out = Verified::default();
    for (id, chk, st) in status::classify_job(&store, JOB_ID, None).unwrap() {
        match st {
            CheckpointDirStatus::Complete(_) => {
                let report = inspect::verify(&store, &chk, |_, _| {}).unwrap();
                out.complete.push(id);
                out.files_checked += report.files_checked;
                out.problems.extend(
                    report
                        .problems
                        .iter()
                        .map(|p| format!("{:?} {}: {}", p.kind, p.path, p.detail)),
                );
            }
            CheckpointDirStatus::InProgress | CheckpointDirStatus::Abandoned => {
                out.incomplete += 1;
            }
            // Published by a fenced writer after a newer one took over: never restored.
            CheckpointDirStatus::Fenced(_) => out.fenced += 1,
            other => out
                .problems
                .push(format!("{chk}: {} _metadata", other.as_str())),
        }
    }
    out
}

/// What a run's plan makes certain, whatever the speed of the machine.
#[derive(Debug, Default)]
pub(crate) struct Certain {
    /// Failures that fire: the planned ones up to the first at a record or batch point
    /// (an attempt may run out of input before its countdown does; one at a checkpoint
    /// point always fires, since the attempt checkpoints on until it does).
    pub(crate) fired: usize,
    /// Restarts that restore a checkpoint: those after a failure that came after a commit.
    pub(crate) restored: usize,
}

/// Checks that `report` followed its plan and returns what the plan made certain:
/// - the `i`-th failure is the `i`-th planned one, and a planned failure that did not fire
///   was at a record or batch point;
/// - the restart after a failure that came after a commit restores a checkpoint, and once a
///   restart restored one every later restart restores the same or a newer one.
pub(crate) fn check_plan_followed(report: &JobReport) -> Certain {
    let failures = &report.failures;
    for (failure, plan) in failures.iter().zip(&report.planned) {
        let point = format!("(point={:?}", plan.point);
        assert!(failure.error.contains(&point), "{point}:\n{report}");
    }
    assert!(failures.len() <= report.planned.len(), "{report}");
    if let Some(unfired) = report.planned.get(failures.len()) {
        assert!(
            !unfired.point.at_checkpoints(),
            "{unfired} did not fire:\n{report}"
        );
    }
    let mut last = None;
    for (failure, plan) in failures.iter().zip(&report.planned) {
        if plan.point.after_commit() || last.is_some() {
            assert!(
                failure.restored_from >= last && failure.restored_from.is_some(),
                "{report}"
            );
        }
        last = failure.restored_from.or(last);
    }
    let mut certain = Certain::default();
    let mut restoring = false;
    for plan in report
        .planned
        .iter()
        .take_while(|p| p.point.at_checkpoints())
    {
        certain.fired += 1;
        restoring |= plan.point.after_commit();
        certain.restored += usize::from(restoring);
    }
    certain
}
