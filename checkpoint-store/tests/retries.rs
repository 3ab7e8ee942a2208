//! Retries and timeouts of storage calls (`StoragePolicy`): a brief outage is ridden out, a
//! call that never answers ends, and a retried `_metadata` write that took effect the first
//! time completes its checkpoint instead of being taken for another writer's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, ErrorKind, StateScope};
use cornerstone_checkpoint_store::{
    CheckpointStore, CompletedCheckpointStore, StoragePolicy, inspect,
};
use cornerstone_testkit::checkpoints::commit_streams;
use cornerstone_testkit::faults::FailNthWrite;
use cornerstone_testkit::store::{files_config, memory_operator as memory};

/// Quick retries, so that the tests do not wait for the default backoff.
fn quick() -> StoragePolicy {
    StoragePolicy::default().with_retry_delay(Duration::from_millis(1))
}

/// Commits checkpoint `id` with one exclusive file.
fn checkpoint(job: &CompletedCheckpointStore, id: u64) -> cornerstone_backend_api::Result<()> {
    commit_streams(job, id, &[(StateScope::Exclusive, &[id as u8; 100])], &[]).map(drop)
}

/// A read that fails three times in a row (a brief outage) fails the restore without the
/// policy and succeeds with it.
#[test]
fn a_brief_outage_is_ridden_out() {
    let base = memory();
    let faults = FailNthWrite::default();
    let job_store = CheckpointStore::new(base.clone()).unwrap();
    let job = CompletedCheckpointStore::open(&job_store, "job", files_config()).unwrap();
    checkpoint(&job, 1).unwrap();

    let bare = CheckpointStore::new(base.clone().layer(faults.clone())).unwrap();
    faults.fail_next_reads.store(3, Ordering::SeqCst);
    let e = bare.resolve("job").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");

    let retrying = CheckpointStore::new(quick().apply(base.layer(faults.clone()))).unwrap();
    faults.fail_next_reads.store(3, Ordering::SeqCst);
    let done = retrying
        .resolve("job")
        .expect("three failures are within four retries");
    assert_eq!(done.id(), CheckpointId(1));
    assert_eq!(faults.fail_next_reads.load(Ordering::SeqCst), 0);

    // More failures than retries: the error comes through, still named and kind-mapped.
    faults.fail_next_reads.store(100, Ordering::SeqCst);
    let e = retrying.resolve("job").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("job"), "{e}");
}

/// The `_metadata` write takes effect and its answer is lost (a temporary error): the retry
/// finds `_metadata` present. The store reads it back, recognises its own bytes, and the
/// checkpoint is complete with every file kept.
#[test]
fn a_retried_metadata_write_that_took_effect_completes_the_checkpoint() {
    let base = memory();
    let faults = FailNthWrite::default();
    let store = CheckpointStore::new(quick().apply(base.clone().layer(faults.clone()))).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", files_config()).unwrap();
    checkpoint(&job, 1).unwrap();
    *faults.fail_after_suffix.lock().unwrap() = Some("chk-2/_metadata".into());
    faults.after_is_temporary.store(true, Ordering::SeqCst);
    checkpoint(&job, 2).expect("the first attempt took effect: the checkpoint is complete");
    assert_eq!(job.latest().unwrap().id(), CheckpointId(2));

    let clean = CheckpointStore::new(base).unwrap();
    let done = clean.resolve("job").unwrap();
    assert_eq!(done.id(), CheckpointId(2));
    let report = inspect::verify(&clean, &done.metadata_path, |_, _| {}).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// A server that accepts connections and never answers: each call ends at the policy's
/// timeout (and its retries), with an error that names the location, instead of hanging.
#[cfg(feature = "s3")]
#[test]
fn a_call_that_never_answers_times_out() {
    use std::net::TcpListener;
    use std::time::Instant;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => return,
            }
        }
    });
    let url = format!(
        "s3://silent/job?endpoint=http://127.0.0.1:{port}&region=us-east-1&anonymous\
         &timeout=300ms&io_timeout=300ms&retries=1&retry_delay=10ms"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let store = CheckpointStore::from_url(&url, Vec::<(String, String)>::new()).unwrap();
        let result = store.resolve("job").map(|d| d.id());
        let _ = tx.send((result, started.elapsed()));
    });
    let (result, took) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a call to a server that never answers must end at its timeout");
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// The policy options are checked where the location is parsed.
#[test]
fn policy_options_are_named_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let e = CheckpointStore::from_url(&url, [("timeout", "soon")]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("timeout"), "{e}");
    let e = CheckpointStore::from_url("memory://", [("region", "x")]).unwrap_err();
    assert!(e.to_string().contains("retries"), "{e}");
    CheckpointStore::from_url(&url, [("retries", "0"), ("timeout", "5s")]).unwrap();
}
