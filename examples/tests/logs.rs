//! The main job logs on stderr through `tracing`: warnings by default, every completed
//! checkpoint at `RUST_LOG=info`; the report stays alone on stdout.
#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn rust_log_info_shows_every_completed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::job(dir.path(), 4_000, 40)
        .args(["--interval-ms", "10", "--pace-ms", "2"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let completed = stderr
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("completed checkpoint"))
        .count();
    let (reported, _) = common::checkpoint_counts(&stdout);
    assert!(completed > 0, "{stderr}");
    assert_eq!(
        completed as u64, reported,
        "one log line per completed checkpoint"
    );
    assert!(!stdout.contains("INFO"), "logs stay off stdout:\n{stdout}");

    // By default, no info lines.
    let dir = tempfile::tempdir().unwrap();
    let out = common::job(dir.path(), 4_000, 40)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("INFO"), "{stderr}");
}
