//! `cornerstone gc --delete` looped beside the running job binary (issue 13): with the
//! default min age it deletes nothing of the live job, causes no failed checkpoint, and
//! every complete checkpoint verifies. The loop runs as long as the job, sized for
//! `CORNERSTONE_GC_LOOP_SECS` seconds (default 20; 300 for the 5-minute soak).
//!
//! An old orphan file is planted in the job's `shared/` (what a crash leaves behind), so
//! that every round has a candidate and `gc --delete` reaches its lease check: it must
//! refuse (`Unavailable`, a live writer holds the lease), never delete.
//!
//! Two races of the library are tolerated here, counted and printed (issue 13 follow-ups):
//! - `gc_delete` fails with `NotFound` when the job supersedes its `_lease/ids-…` file
//!   between the lease directory's listing and its stat (`lease::read_state`);
//! - `gc_candidates` lists files of a checkpoint in progress as `IncompleteCheckpoint`
//!   when its `chk-N/` was listed empty (just created): an empty directory classifies as
//!   abandoned whatever the min age, and its files, listed again, are not aged one by one.
//!   The lease check keeps them; a candidate of any other reason fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant, UNIX_EPOCH};

use cornerstone_backend_api::ErrorKind;
use cornerstone_backend_api::clock::system_clock;
use cornerstone_checkpoint_store::CheckpointStore;
use cornerstone_checkpoint_store::inspect::{self, GcOptions, GcReason};
use cornerstone_examples::JOB_ID;

use common::{checkpoint_counts, job, verify_job};

/// Events per split and second of the job below in a debug build (measured: 15k to 17k).
const EVENTS_PER_SEC: u64 = 17_500;
const KEYS: u64 = 2_000;

/// Waits `d` without `thread::sleep` (banned in this project): a timed wait on a channel
/// that never receives.
fn pause(d: Duration) {
    let (_keep, rx) = std::sync::mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

#[test]
fn gc_delete_beside_the_live_job_deletes_nothing_and_fails_no_checkpoint() {
    let secs: u64 = std::env::var("CORNERSTONE_GC_LOOP_SECS")
        .ok()
        .map_or(20, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stdout_path = dir.path().join("job.out");
    let stderr_path = dir.path().join("job.err");
    let mut child = job(&data, secs * EVENTS_PER_SEC, KEYS)
        .args(["--pace-ms", "20", "--interval-ms", "100"])
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();

    // Wait for the job's lease: its epoch file, not only the `_lease/` directory (a fresh
    // run first removes an earlier job directory). Between the two, the job is not live
    // yet, and a gc that takes the lease then fences the starting job, which exits.
    let job_dir = data.join(JOB_ID);
    let started = Instant::now();
    let has_epoch = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("_lease")).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("epoch-"))
        })
    };
    while !has_epoch(&job_dir) {
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        assert!(started.elapsed() < Duration::from_secs(30), "no lease");
        pause(Duration::from_millis(10));
    }
    let clock = system_clock();
    let orphan = job_dir.join("shared").join("orphan-of-an-earlier-crash");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, [0u8; 1024]).unwrap();
    let two_hours_ago = clock.now_millis() - 2 * 60 * 60 * 1000;
    File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_millis(two_hours_ago))
        .unwrap();
    let orphan_path = format!("{JOB_ID}/shared/orphan-of-an-earlier-crash");

    let store = CheckpointStore::local(&data).unwrap();
    let (mut rounds, mut refused, mut deleted, mut nothing) = (0u64, 0u64, 0usize, 0u64);
    // Candidates other than the orphan: (reason, path).
    let mut others: Vec<(GcReason, String)> = Vec::new();
    // Errors by step and kind: (count, the first message).
    let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let loop_start = Instant::now();
    let limit = Duration::from_secs(secs * 3 + 60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if loop_start.elapsed() > limit {
            child.kill().unwrap();
            panic!("the job ran longer than {limit:?}");
        }
        rounds += 1;
        // `cornerstone gc wordcount --delete`, default min age (one hour).
        let options = GcOptions::new(clock.now_millis());
        let result = inspect::gc_candidates(&store, JOB_ID, &options)
            .map_err(|e| ("candidates", e))
            .and_then(|report| {
                others.extend(
                    report
                        .candidates
                        .iter()
                        .filter(|c| c.path != orphan_path)
                        .map(|c| (c.reason, c.path.clone())),
                );
                inspect::gc_delete(&store, &report, &options).map_err(|e| ("delete", e))
            });
        match result {
            Ok(0) => nothing += 1,
            Ok(n) => deleted += n,
            Err((_, e)) if e.kind() == ErrorKind::Unavailable => refused += 1,
            Err((step, e)) => {
                let message = e.to_string();
                let lease = message.contains("/_lease/");
                let entry = errors
                    .entry(format!("{step}: {:?} (lease file: {lease})", e.kind()))
                    .or_insert_with(|| (0, message));
                entry.0 += 1;
            }
        }
        pause(Duration::from_millis(20));
    };
    let looped = loop_start.elapsed();
    let report = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        status.success(),
        "{status}\n{report}\n{stderr}\nerrors of gc: {errors:?}"
    );
    let (completed, failed) = checkpoint_counts(&report);
    let verified = verify_job(&data);
    let in_progress = others
        .iter()
        .filter(|(r, _)| *r == GcReason::IncompleteCheckpoint)
        .count();
    eprintln!(
        "gc --delete beside the job for {looped:.1?}: {rounds} rounds, {refused} refused (live lease), \
         {nothing} with nothing to delete, {deleted} files deleted, {in_progress} files of a checkpoint \
         in progress listed as candidates {:?}, errors {errors:#?}; \
         the job: {completed} checkpoints completed, {failed} failed, exit {status}; \
         verify: {} complete, {} files, {} problems",
        others.iter().map(|(_, p)| p).collect::<Vec<_>>(),
        verified.complete.len(),
        verified.files_checked,
        verified.problems.len()
    );
    assert!(report.contains("OK: exactly once"), "{report}");
    assert_eq!(failed, 0, "checkpoints failed beside gc:\n{report}");
    assert!(completed > 0, "{report}");
    assert_eq!(deleted, 0, "gc deleted files of the live job");
    assert!(
        others.is_empty(),
        "gc saw live files as garbage: {others:?}"
    );
    assert!(orphan.exists(), "gc deleted the orphan beside the live job");
    assert!(refused > 0, "gc --delete never reached its lease check");
    assert!(verified.problems.is_empty(), "{:#?}", verified.problems);
    assert!(errors.is_empty(), "gc failed beside the job: {errors:#?}");
}
