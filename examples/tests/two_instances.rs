//! Two instances of the job on one directory: an old one left running beside a `--resume`
//! (a resubmitted job, a zombie after failover). The new one takes the checkpoint
//! directory's lease; the old one is fenced: it stops at once with a clear error, deleting
//! nothing and touching no sink transaction, and the new one finishes exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{job, run_exactly_once, verify_job};
use cornerstone_examples::{JobConfig, check_output, expected_counts};

const EVENTS: u64 = 60_000;
const KEYS: u64 = 500;

#[test]
fn a_resumed_instance_fences_the_old_one_and_the_output_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // The old instance, slow: 20 ms between batches (about 25 s alone).
    let mut old = job(dir.path(), EVENTS, KEYS)
        .args(["--pace-ms", "20", "--interval-ms", "20", "--progress"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = old.stdout.take().unwrap();
    let (tx, completed) = mpsc::channel();
    let old_stdout = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines().map_while(std::io::Result::ok) {
            if line.starts_with("completed checkpoint ") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut err = old.stderr.take().unwrap();
    let old_stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    for _ in 0..3 {
        completed
            .recv_timeout(Duration::from_secs(120))
            .expect("the old instance completed no checkpoint");
    }

    // The new instance resumes beside it.
    run_exactly_once(
        job(dir.path(), EVENTS, KEYS).args(["--pace-ms", "1", "--interval-ms", "20", "--resume"]),
        "the new instance",
    );

    // The old one stops by itself: its stdout closes (bounded: killed after two minutes).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match completed.recv_timeout(left) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = old.kill();
                panic!("the fenced instance did not stop");
            }
        }
    }
    let status = old.wait().unwrap();
    let old_out = old_stdout.join().unwrap();
    let old_err = old_stderr.join().unwrap();
    assert!(
        !status.success(),
        "the fenced instance succeeded:\n{old_out}"
    );
    assert!(
        old_err.contains("another instance of the job took over its checkpoint directory"),
        "{old_err}"
    );

    // Whatever the old one did meanwhile, the output is still exactly once and every
    // checkpoint verifies.
    let config = JobConfig {
        events_per_split: EVENTS,
        keys: KEYS,
        ..JobConfig::standard(dir.path())
    };
    let expected = expected_counts(config.splits_per_input, EVENTS, KEYS, config.window_ms);
    let output = check_output(&config.output_dir(), &expected).unwrap();
    assert!(output.exactly_once(), "{output:?}");
    let verified = verify_job(dir.path());
    assert!(verified.problems.is_empty(), "{verified:?}");
    eprintln!(
        "old instance: {} checkpoints reported, stopped with: {}; new: exactly once; {} complete checkpoints verify",
        old_out.matches("completed checkpoint ").count(),
        old_err.lines().last().unwrap_or(""),
        verified.complete.len()
    );
}
