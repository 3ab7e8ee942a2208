//! The real job, on every backend, with its checkpoint storage failing under it: OpenDAL's
//! `fs` service behind a seeded fault layer (every write may fail before it takes effect or
//! take effect and then report an error, every delete may fail, every stat, read and list
//! may fail). Checkpoints fail, tasks fail over and restore through the same faults, and
//! still: the sink's output is exactly once, every `_metadata` left on storage verifies, and
//! the job finishes.
//!
//! `CORNERSTONE_JOB_FAULT_SEEDS` (default 3 per backend) sets the seeds; a soak:
//! `CORNERSTONE_JOB_FAULT_SEEDS=50 cargo test --release -p cornerstone-examples --all-features --test storage_faults -- --nocapture`
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cornerstone_checkpoint_store::opendal;
use cornerstone_checkpoint_store::status::{self, CheckpointDirStatus};
use cornerstone_checkpoint_store::{CheckpointStore, inspect};
use cornerstone_coordinator::RestartStrategy;
use cornerstone_examples::{BackendChoice, JOB_ID, JobConfig, run_job_on};
use cornerstone_testkit::faults::{FailNthWrite, RandomFaults};

fn seeds() -> u64 {
    std::env::var("CORNERSTONE_JOB_FAULT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[derive(Debug, Default)]
struct Totals {
    runs: u64,
    faults: [u64; 3],
    checkpoints_completed: u64,
    checkpoints_failed: u64,
    restarts: u64,
    restores: u64,
    verified: u64,
}

fn run(backend: BackendChoice, seed: u64, totals: &mut Totals) {
    let dir = tempfile::tempdir().unwrap();
    let config = JobConfig {
        seed,
        backend,
        // One injected task failure on top of the storage faults.
        failures: 1,
        // A failed checkpoint is not a job failure (Flink's tolerable failed checkpoints):
        // with storage failing this often, most failures are checkpoints'.
        tolerable_failed: 1_000,
        restart: RestartStrategy::fixed_delay(1_000, Duration::from_millis(1)),
        // Long enough for a few dozen checkpoints (a few seconds in a debug build).
        events_per_split: 40_000,
        pace: Duration::from_millis(3),
        keys: 400,
        ..JobConfig::small(dir.path())
    };
    let root = dir.path().to_str().unwrap();
    let faults = FailNthWrite::default();
    // The job opens its coordinator without faults, then every operation may fail.
    faults
        .random_from_op
        .store(40, std::sync::atomic::Ordering::SeqCst);
    *faults.random.lock().unwrap() = Some(RandomFaults::new(seed, 0.04, 0.04, 0.04));
    let op = opendal::Operator::new(opendal::services::Fs::default().root(root))
        .unwrap()
        .layer(faults.clone());
    let store = CheckpointStore::new(op).unwrap();
    let report = run_job_on(&config, &store)
        .unwrap_or_else(|e| panic!("{backend:?} seed {seed}: the job failed: {e}"));
    assert!(
        report.output.exactly_once(),
        "{backend:?} seed {seed}:\n{report}"
    );
    let clean = CheckpointStore::local(dir.path()).unwrap();
    for (id, _, st) in status::classify_job(&clean, JOB_ID, None).unwrap() {
        match st {
            CheckpointDirStatus::Complete(done) => {
                let v = inspect::verify(&clean, &done.metadata_path, |_, _| {}).unwrap();
                assert!(v.is_ok(), "{backend:?} seed {seed}: chk-{id}: {v:?}");
                totals.verified += 1;
            }
            CheckpointDirStatus::Corrupt(e) | CheckpointDirStatus::NewerFormat(e) => {
                panic!("{backend:?} seed {seed}: chk-{id} unreadable: {e}")
            }
            CheckpointDirStatus::InProgress
            | CheckpointDirStatus::Abandoned
            | CheckpointDirStatus::Fenced(_) => {}
        }
    }
    let injected = faults.random.lock().unwrap().as_ref().unwrap().injected;
    eprintln!(
        "{backend:?} seed {seed}: faults {injected:?}, checkpoints {} completed / {} failed, {} restarts, {} restores: exactly once",
        report.stats.completed, report.stats.failed, report.restarts, report.stats.restored
    );
    totals.runs += 1;
    for (t, i) in totals.faults.iter_mut().zip(injected) {
        *t += i;
    }
    totals.checkpoints_completed += report.stats.completed;
    totals.checkpoints_failed += report.stats.failed;
    totals.restarts += u64::from(report.restarts);
    totals.restores += report.stats.restored;
}

fn backend_under_faults(backend: BackendChoice) {
    let mut totals = Totals::default();
    for seed in 0..seeds() {
        run(backend, seed, &mut totals);
    }
    eprintln!("{backend:?}: {totals:#?}");
    // The faults really hit the job: checkpoints failed and completed.
    assert!(totals.faults.iter().sum::<u64>() > 0, "{totals:?}");
    assert!(
        totals.checkpoints_failed > 0 && totals.checkpoints_completed > 0,
        "{totals:?}"
    );
}

#[test]
fn exactly_once_on_the_fs_backend_with_storage_failing() {
    backend_under_faults(BackendChoice::Fs);
}

#[test]
fn exactly_once_on_the_memory_backend_with_storage_failing() {
    backend_under_faults(BackendChoice::Memory);
}

#[cfg(feature = "rocksdb")]
#[test]
fn exactly_once_on_the_rocksdb_backend_with_storage_failing() {
    backend_under_faults(BackendChoice::RocksDb);
}
