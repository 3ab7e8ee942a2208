//! `--checkpoint-dir`: the job's checkpoints in any location the store accepts, its output
//! still in `--dir`.
#![allow(clippy::unwrap_used)]

mod common;

use cornerstone_examples::JOB_ID;

fn run(dir: &std::path::Path, location: &str) -> String {
    common::run_exactly_once(
        common::job(dir, 4_000, 40).args(["--checkpoint-dir", location, "--interval-ms", "10"]),
        location,
    )
}

#[test]
fn checkpoints_go_to_another_directory_or_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    run(dir.path(), elsewhere.path().to_str().unwrap());
    let verified = common::verify_job(elsewhere.path());
    assert!(!verified.complete.is_empty(), "{verified:?}");
    assert!(verified.problems.is_empty(), "{verified:?}");
    assert!(!dir.path().join(JOB_ID).exists(), "no checkpoint in --dir");
    // A second run there without --resume refuses to start from the first one's state...
    let out = common::job(dir.path(), 4_000, 40)
        .args(["--checkpoint-dir", elsewhere.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("checkpoints of an earlier run"), "{stderr}");
    // ... and resumes it when asked.
    let out = common::job(dir.path(), 4_000, 40)
        .args([
            "--checkpoint-dir",
            elsewhere.path().to_str().unwrap(),
            "--resume",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("resumed from checkpoint"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), "memory://");
    assert!(!dir.path().join(JOB_ID).exists(), "no checkpoint in --dir");

    let dir = tempfile::tempdir().unwrap();
    let out = common::job(dir.path(), 4_000, 40)
        .args(["--checkpoint-dir", "gopher://nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gopher"), "{stderr}");
}
