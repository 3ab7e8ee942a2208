//! A seeded fault simulation of the checkpoint store, FoundationDB-style: deterministic per
//! seed, many seeds.
//!
//! Over a simulated local disk (OpenDAL's memory service where a created or removed name is
//! durable only once its directory is synced, see `common/disk.rs`) behind a fault layer
//! (every write, delete and directory sync may fail before it takes effect, or a write or
//! delete take effect and then fail; every stat, read and list may fail), one job
//! checkpoints (sharing files between checkpoints as incremental backends do), aborts
//! checkpoints, crashes between operations and in the middle of a commit (every operation
//! from a random one on fails, and the process is gone), loses power (any subset of the
//! changes of names not synced yet is undone), gets a second writer beside it (a zombie
//! after failover), and runs `gc` (with and without min age, sometimes forced) beside it.
//! After every step an oracle reads storage without faults and checks:
//! - every complete `_metadata` on storage verifies (every referenced file present, sizes
//!   and checksums right);
//! - the latest restorable checkpoint is never older than the newest one whose commit
//!   returned success, and never goes backwards (a power cut may take back one whose
//!   commit did not return success);
//! - the latest checkpoint's state is exactly what its writer wrote for it;
//! - a two-phase-commit sink (Flink's `TwoPhaseCommitSinkFunction` over an external store
//!   that survives crashes and power cuts) is exactly once: each checkpoint pre-commits a
//!   transaction of the records read since the last one; a successful commit commits every
//!   pending transaction of its writer; a restore commits the restored checkpoint's
//!   transactions (one already aborted is a violation: its records are lost) and aborts every
//!   other pending one; after every restore the committed records are exactly the restored
//!   position's prefix of the input (a gap is a loss, a record beyond it a duplicate).
//!
//! `CORNERSTONE_SIM_SEEDS` (default 100) and `CORNERSTONE_SIM_FIRST_SEED` (default 0) choose
//! the seeds; a soak:
//! `CORNERSTONE_SIM_SEEDS=10000 cargo test --release -p cornerstone-checkpoint-store --test simulation -- --nocapture`
#![allow(clippy::unwrap_used, missing_docs)]

use std::fmt::Write as _;

use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{CheckpointId, ErrorKind, StateScope, StreamStateHandle};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::inspect::{self, GcOptions};
use cornerstone_checkpoint_store::status::{self, CheckpointDirStatus};
use cornerstone_checkpoint_store::{CheckpointConfig, CheckpointStore, CompletedCheckpointStore};
use cornerstone_testkit::disk::SimDisk;
use cornerstone_testkit::faults::{FailNthWrite, RandomFaults};
use cornerstone_testkit::store::{memory_operator, state_of, try_write_stream};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const STEPS: usize = 40;
const JOB: &str = "job";

#[derive(Debug, Default)]
struct Totals {
    seeds: u64,
    steps: u64,
    faults_before: u64,
    faults_after: u64,
    faults_read: u64,
    commits_ok: u64,
    commits_outcome_unknown: u64,
    commits_fenced: u64,
    commits_failed_other: u64,
    aborts: u64,
    restarts: u64,
    second_writers: u64,
    gc_runs: u64,
    gc_deleted: u64,
    gc_refused: u64,
    crashes_mid_commit: u64,
    power_cuts: u64,
    changes_undone_at_power_cuts: u64,
    dir_syncs: u64,
    checkpoints_verified: u64,
    lost: u64,
    sink_restores: u64,
    sink_transactions_committed: u64,
    sink_transactions_aborted: u64,
    exactly_once_violations: u64,
}

/// The external system of a two-phase-commit sink: transactions of input records (offset
/// ranges), pending (pre-committed) or committed. It survives crashes and power cuts.
#[derive(Debug, Default)]
struct Sink {
    next_txn: u64,
    pending: std::collections::BTreeMap<u64, std::ops::Range<u64>>,
    committed: std::collections::BTreeMap<u64, std::ops::Range<u64>>,
    aborted: std::collections::BTreeSet<u64>,
    /// Transactions committed by a checkpoint-complete notification.
    committed_on_notify: u64,
}

impl Sink {
    /// Commits `txn`; committing a committed one is a no-op. `Err` when it was aborted.
    fn commit(&mut self, txn: u64) -> Result<bool, String> {
        if let Some(r) = self.pending.remove(&txn) {
            self.committed.insert(txn, r);
            return Ok(true);
        }
        if self.committed.contains_key(&txn) {
            return Ok(false);
        }
        Err(format!(
            "transaction {txn} was aborted: its records are lost"
        ))
    }

    /// The committed records are exactly `0..pos`, each once.
    fn check_prefix(&self, pos: u64) -> Result<(), String> {
        let mut ranges: Vec<_> = self.committed.values().cloned().collect();
        ranges.sort_by_key(|r| r.start);
        let mut next = 0;
        for r in ranges {
            if r.start != next {
                return Err(format!(
                    "committed output is not 0..{pos}: {} at {next}",
                    if r.start < next {
                        "duplicates"
                    } else {
                        "a gap"
                    }
                ));
            }
            next = r.end;
        }
        if next != pos {
            return Err(format!(
                "committed output ends at {next}, the restored position is {pos}"
            ));
        }
        Ok(())
    }
}

/// What a checkpoint's exclusive state holds: the input position and the writer's pending
/// transactions.
fn encode_state(seed: u64, id: u64, pos: u64, txns: &[u64]) -> Vec<u8> {
    let txns: Vec<String> = txns.iter().map(u64::to_string).collect();
    format!(
        "seed {seed} checkpoint {id} pos {pos} txns {}",
        txns.join(",")
    )
    .into_bytes()
}

fn decode_state(bytes: &[u8]) -> (u64, Vec<u64>) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let words: Vec<&str> = text.split(' ').collect();
    let pos = words[5].parse().unwrap();
    let txns = words
        .get(7)
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect()
        })
        .unwrap_or_default();
    (pos, txns)
}

struct Writer {
    job: CompletedCheckpointStore,
    /// The input position (records `0..pos` were read).
    pos: u64,
    /// This writer's pre-committed transactions, not committed yet.
    pending: Vec<u64>,
    /// The shared file the next checkpoint may reuse (from this writer's last commit).
    shared: Option<StreamStateHandle>,
}

fn config(rng: &mut StdRng) -> CheckpointConfig {
    CheckpointConfig::default()
        .inline_threshold(0)
        .num_retained(rng.random_range(1..=3))
}

/// A new process opens the job and restores its sink from the latest checkpoint: commits the
/// checkpoint's transactions, aborts every other pending one. `None` when storage does not
/// let it (20 attempts).
fn open(
    store: &CheckpointStore,
    config: &CheckpointConfig,
    sink: &mut Sink,
    totals: &mut Totals,
    seed: u64,
) -> Option<Writer> {
    for _ in 0..20 {
        let Ok(job) = CompletedCheckpointStore::open(store, JOB, config.clone()) else {
            continue;
        };
        let (pos, txns) = match job.latest() {
            None => (0, Vec::new()),
            Some(done) => {
                let reader = store.reader(&done.base_dir);
                let streams = done.metadata.operators[0].subtasks[&0].streams();
                match read_stream(streams[0], Some(&reader)) {
                    Ok(bytes) => decode_state(&bytes),
                    // The restore failed: the process tries again.
                    Err(_) => continue,
                }
            }
        };
        totals.sink_restores += 1;
        for txn in &txns {
            match sink.commit(*txn) {
                Ok(true) => totals.sink_transactions_committed += 1,
                Ok(false) => {}
                Err(e) => {
                    totals.exactly_once_violations += 1;
                    panic!("seed {seed}: restoring at {pos}: {e}");
                }
            }
        }
        let lingering: Vec<u64> = sink.pending.keys().copied().collect();
        for txn in lingering {
            sink.pending.remove(&txn);
            sink.aborted.insert(txn);
            totals.sink_transactions_aborted += 1;
        }
        if let Err(e) = sink.check_prefix(pos) {
            totals.exactly_once_violations += 1;
            panic!("seed {seed}: after restoring at {pos}: {e}");
        }
        return Some(Writer {
            job,
            pos,
            pending: Vec::new(),
            shared: None,
        });
    }
    None
}

/// One checkpoint attempt by `w`. Returns the id and the outcome.
fn checkpoint(
    w: &mut Writer,
    sink: &mut Sink,
    seed: u64,
    rng: &mut StdRng,
) -> Option<(u64, cornerstone_backend_api::Result<()>)> {
    // Records read since the last checkpoint, pre-committed in a transaction of their own.
    let read = rng.random_range(1..5);
    let txn = sink.next_txn;
    sink.next_txn += 1;
    sink.pending.insert(txn, w.pos..w.pos + read);
    w.pos += read;
    w.pending.push(txn);
    let id = w.job.next_checkpoint_id().get();
    let mut p = match w.job.begin_checkpoint(CheckpointId(id)) {
        Ok(p) => p,
        Err(e) => return Some((id, Err(e))),
    };
    let f = p.stream_factory();
    let write = |scope, bytes: &[u8]| try_write_stream(&*f, scope, bytes);
    let exclusive = match write(
        StateScope::Exclusive,
        &encode_state(seed, id, w.pos, &w.pending),
    ) {
        Ok(h) => h,
        Err(e) => return Some((id, Err(e))),
    };
    let shared = match (&w.shared, rng.random_bool(0.6)) {
        (Some(h), true) => h.clone(),
        _ => match write(StateScope::Shared, format!("shared of {id}").as_bytes()) {
            Ok(h) => h,
            Err(e) => return Some((id, Err(e))),
        },
    };
    let state = state_of(vec![exclusive, shared.clone()]);
    if let Err(e) = p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state) {
        return Some((id, Err(e)));
    }
    let result = p.commit().map(|_| ());
    if result.is_ok() {
        w.shared = Some(shared);
        // notifyCheckpointComplete: every pending transaction of this writer commits. One
        // aborted meanwhile (by a newer writer's restore) means this commit should not have
        // succeeded.
        for txn in std::mem::take(&mut w.pending) {
            match sink.commit(txn) {
                Ok(_) => sink.committed_on_notify += 1,
                Err(e) => panic!("seed {seed}: checkpoint {id} completed: {e}"),
            }
        }
    }
    Some((id, result))
}

/// Checks storage without faults; returns the latest restorable id.
fn oracle(
    clean: &CheckpointStore,
    seed: u64,
    max_committed: u64,
    previous_latest: u64,
    totals: &mut Totals,
    log: &str,
) -> u64 {
    for (id, _, st) in status::classify_job(clean, JOB, None).unwrap() {
        match st {
            CheckpointDirStatus::Complete(done) => {
                let report = inspect::verify(clean, &done.metadata_path, |_, _| {}).unwrap();
                if !report.is_ok() {
                    totals.lost += 1;
                    panic!("seed {seed}: chk-{id} does not verify: {report:?}\n{log}");
                }
                totals.checkpoints_verified += 1;
            }
            CheckpointDirStatus::Corrupt(e) | CheckpointDirStatus::NewerFormat(e) => {
                panic!("seed {seed}: chk-{id} unreadable: {e}\n{log}");
            }
            CheckpointDirStatus::InProgress
            | CheckpointDirStatus::Abandoned
            | CheckpointDirStatus::Fenced(_) => {}
        }
    }
    let latest = match clean.resolve(JOB) {
        Ok(done) => {
            let id = done.id().get();
            // Its exclusive state is exactly what was written for it.
            let reader = clean.reader(&done.base_dir);
            let streams = done.metadata.operators[0].subtasks[&0].streams();
            let got = read_stream(streams[0], Some(&reader)).unwrap();
            assert!(
                got.starts_with(format!("seed {seed} checkpoint {id} pos ").as_bytes()),
                "seed {seed}: chk-{id}'s state\n{log}"
            );
            id
        }
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => panic!("seed {seed}: resolving the job failed: {e}\n{log}"),
    };
    if latest < max_committed || latest < previous_latest {
        totals.lost += 1;
        panic!(
            "seed {seed}: latest restorable is chk-{latest}, but chk-{max_committed} was committed \
             and chk-{previous_latest} was restorable before\n{log}"
        );
    }
    latest
}

fn run_seed(seed: u64, totals: &mut Totals) {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = memory_operator();
    let faults = FailNthWrite::default();
    let disk = std::sync::Arc::new(SimDisk::new(base.clone(), faults.clone()));
    let store = CheckpointStore::new(base.clone().layer(faults.clone()))
        .unwrap()
        .with_dir_sync(disk.clone());
    let clean = CheckpointStore::new(base).unwrap();
    let config = config(&mut rng);
    // No faults while the first writer opens: the job starts.
    let mut sink = Sink::default();
    let mut writers: Vec<Writer> = open(&store, &config, &mut sink, totals, seed)
        .into_iter()
        .collect();
    *faults.random.lock().unwrap() = Some(RandomFaults::new(
        seed ^ 0x5eed,
        rng.random_range(0.0..0.08),
        rng.random_range(0.0..0.08),
        rng.random_range(0.0..0.05),
    ));
    let (mut max_committed, mut latest) = (0u64, 0u64);
    let mut log = String::new();
    // The process dies (its writers are gone, nothing they do reaches storage), maybe the
    // power goes out with it, and a new process opens the job.
    // A power cut's seed decides which changes not made durable reach the disk anyway.
    let die = |writers: &mut Vec<Writer>, power_cut: Option<u64>| -> Option<Vec<String>> {
        faults.crash_after(1);
        writers.clear();
        let lost = power_cut.map(|seed| {
            let mut coin = StdRng::seed_from_u64(seed);
            disk.power_cut(&mut |_| coin.random_bool(0.5))
        });
        faults.revive();
        lost
    };
    let after_death = |lost: Option<Vec<String>>,
                       latest: &mut u64,
                       max_committed: u64,
                       totals: &mut Totals,
                       log: &mut String| {
        if let Some(lost) = lost {
            totals.power_cuts += 1;
            totals.changes_undone_at_power_cuts += lost.len() as u64;
            // Only what a successful commit made durable must survive.
            *latest = max_committed;
            let _ = writeln!(log, "power cut: undone {lost:?}");
        }
    };
    for step in 0..STEPS {
        totals.steps += 1;
        let roll = rng.random_range(0..100);
        match roll {
            0..=54 if !writers.is_empty() => {
                // Mostly the newest writer; sometimes an older (fenced) one.
                let i = if rng.random_bool(0.85) {
                    writers.len() - 1
                } else {
                    rng.random_range(0..writers.len())
                };
                let newest = i == writers.len() - 1;
                if let Some((id, result)) = checkpoint(&mut writers[i], &mut sink, seed, &mut rng) {
                    let _ = writeln!(log, "{step}: writer {i} chk-{id}: {result:?}");
                    match result {
                        Ok(()) => {
                            totals.commits_ok += 1;
                            assert!(
                                newest,
                                "seed {seed}: a fenced writer committed chk-{id}\n{log}"
                            );
                            max_committed = max_committed.max(id);
                        }
                        Err(e) if e.kind() == ErrorKind::OutcomeUnknown => {
                            totals.commits_outcome_unknown += 1;
                        }
                        Err(e) if e.kind() == ErrorKind::Fenced => totals.commits_fenced += 1,
                        Err(_) => totals.commits_failed_other += 1,
                    }
                }
            }
            55..=64 => {
                totals.gc_runs += 1;
                let min_age = if rng.random_bool(0.5) {
                    0
                } else {
                    GcOptions::DEFAULT_MIN_AGE_MS
                };
                let now = cornerstone_backend_api::clock::system_clock().now_millis();
                let options = GcOptions::new(now)
                    .with_min_age_ms(min_age)
                    .with_force(rng.random_bool(0.3));
                let outcome = inspect::gc_candidates(&store, JOB, &options)
                    .and_then(|r| inspect::gc_delete(&store, &r, &options));
                let _ = writeln!(log, "{step}: gc {options:?}: {outcome:?}");
                match outcome {
                    Ok(n) => totals.gc_deleted += n as u64,
                    Err(e) if e.kind() == ErrorKind::Unavailable => totals.gc_refused += 1,
                    Err(_) => {}
                }
            }
            65..=72 => {
                // A crash between operations and a restart: every writer of the process is
                // gone.
                totals.restarts += 1;
                die(&mut writers, None);
                writers.extend(open(&store, &config, &mut sink, totals, seed));
                let _ = writeln!(log, "{step}: restart: {}", writers.len());
            }
            73..=78 if !writers.is_empty() => {
                // A crash in the middle of a checkpoint: from a random operation on, nothing
                // reaches storage; maybe the power goes out too.
                totals.crashes_mid_commit += 1;
                let after = rng.random_range(1..40);
                faults.crash_after(after);
                let w = writers.len() - 1;
                let outcome = checkpoint(&mut writers[w], &mut sink, seed, &mut rng);
                let power_cut = rng.random_bool(0.5);
                let _ = writeln!(
                    log,
                    "{step}: crash after {after} operations in {outcome:?}, power cut: {power_cut}"
                );
                if let Some((id, Ok(()))) = outcome {
                    // The crash came after the commit returned.
                    max_committed = max_committed.max(id);
                    totals.commits_ok += 1;
                }
                let lost = die(&mut writers, power_cut.then(|| rng.random()));
                after_death(lost, &mut latest, max_committed, totals, &mut log);
                writers.extend(open(&store, &config, &mut sink, totals, seed));
            }
            79..=84 => {
                let lost = die(&mut writers, Some(rng.random()));
                after_death(lost, &mut latest, max_committed, totals, &mut log);
                writers.extend(open(&store, &config, &mut sink, totals, seed));
                let _ = writeln!(log, "{step}: power cut and restart: {}", writers.len());
            }
            85..=92 => {
                // A second writer appears; the first keeps running (a zombie).
                totals.second_writers += 1;
                writers.extend(open(&store, &config, &mut sink, totals, seed));
                let _ = writeln!(log, "{step}: second writer: {}", writers.len());
            }
            _ if !writers.is_empty() => {
                totals.aborts += 1;
                let w = writers.last().unwrap();
                let id = w.job.next_checkpoint_id();
                if let Ok(p) = w.job.begin_checkpoint(id) {
                    let _ =
                        try_write_stream(&*p.stream_factory(), StateScope::Exclusive, b"aborted");
                    let _ = p.abort();
                }
                let _ = writeln!(log, "{step}: abort chk-{id}");
            }
            _ => {
                writers.extend(open(&store, &config, &mut sink, totals, seed));
            }
        }
        if std::env::var_os("CORNERSTONE_SIM_TRACE").is_some() {
            let files = disk.files().unwrap();
            let _ = writeln!(log, "   files: {files:?}");
        }
        latest = oracle(&clean, seed, max_committed, latest, totals, &log);
    }
    if let Some(r) = faults.random.lock().unwrap().as_ref() {
        totals.faults_before += r.injected[0];
        totals.faults_after += r.injected[1];
        totals.faults_read += r.injected[2];
    }
    totals.dir_syncs += disk.syncs.load(std::sync::atomic::Ordering::Relaxed);
    totals.sink_transactions_committed += sink.committed_on_notify;
    totals.seeds += 1;
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_completed_checkpoint_is_lost_under_seeded_faults() {
    let seeds = env_u64("CORNERSTONE_SIM_SEEDS", 100);
    let first = env_u64("CORNERSTONE_SIM_FIRST_SEED", 0);
    let mut totals = Totals::default();
    for seed in first..first + seeds {
        run_seed(seed, &mut totals);
    }
    eprintln!("simulation: {totals:#?}");
    assert_eq!(totals.lost, 0);
    assert_eq!(totals.exactly_once_violations, 0);
    assert!(totals.sink_transactions_committed > 0 && totals.sink_transactions_aborted > 0);
    assert_eq!(totals.seeds, seeds);
    // The faults and the races really happened.
    assert!(totals.faults_before > 0 && totals.faults_after > 0 && totals.faults_read > 0);
    assert!(totals.commits_ok > 0 && totals.commits_fenced > 0 && totals.gc_deleted > 0);
    assert!(totals.crashes_mid_commit > 0 && totals.power_cuts > 0);
    assert!(totals.changes_undone_at_power_cuts > 0 && totals.dir_syncs > 0);
}
