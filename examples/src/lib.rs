//! The end-to-end job of the README: an exactly-once windowed count that survives injected
//! failures.
//!
//! Two sources (`source-a`, `source-b`, each with replayable offsets in operator state)
//! feed a two-input operator (`counter`) that counts events per key and tumbling event-time
//! window in keyed state — on the filesystem, memory or RocksDB backend — with aligned
//! barriers. Windows fire from event-time timers: the first record of a (key, window)
//! registers a timer at the window's last millisecond, and the watermark (the smallest of
//! all input channels) fires it, emitting the window's count; the timers are keyed state,
//! checkpointed and restored with the counts. Processing-time timers time out idle keys
//! ([`JobConfig::idle_timeout`]); the report counts the timers of both kinds that fired
//! ([`TimerCounts`]). The window results go to a transactional file sink (`sink`, two-phase commit: a file per
//! transaction, pre-committed in the snapshot, renamed into place when the checkpoint
//! completes). A [`CheckpointCoordinator`]
//! checkpoints the job into a checkpoint store on the local filesystem. Failures are
//! injected at random points (seeded); every failure restarts the job by its restart
//! strategy from the latest checkpoint. At the end the output is checked: under
//! exactly-once every expected (key, window, count) is there exactly once.
//!
//! ```
//! use cornerstone_examples::{BackendChoice, JobConfig, run_job};
//! # let dir = tempfile::tempdir()?;
//! let config = JobConfig { failures: 2, seed: 7, ..JobConfig::small(dir.path()) };
//! let report = run_job(&config)?;
//! assert!(report.output.exactly_once(), "{report}");
//! assert_eq!(report.failures.len(), report.restarts as usize);
//! // Every window result came from an event-time timer (some twice, across a restore).
//! assert!(report.timers.event_time_fired >= report.output.lines as u64);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

mod config;
mod data;
mod failure;
mod report;
mod runtime;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cornerstone_backend_api::{Error, ErrorKind, Result, SharedClock, StateBackend};
use cornerstone_backend_fs::{ChangelogOptions, FsStateBackend};
use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_checkpoint_store::{CheckpointStore, JobStatus};
use cornerstone_coordinator::{CheckpointCoordinator, RestartDecision, TaskId};

pub use config::{BackendChoice, JOB_ID, JobConfig, OUTPUT_DIR};
pub use data::{event_key, expected_counts, window_start};
pub use failure::{FailPoint, FailureInjector, PlannedFailure, plan_failures};
pub use report::{FailureRecord, JobReport, OutputCheck, check_output};
pub use runtime::{
    COUNT_STATE, COUNTER_UID, IDLE_TIMERS, LAST_SEEN_STATE, OFFSETS_STATE, SINK_UID, SOURCE_UIDS,
    TimerCounts, WINDOW_TIMERS,
};

use crate::runtime::TimerCounters;
use crate::runtime::attempt::{AttemptEnd, run_attempt};

/// Runs the job with the backend of `config.backend`, its checkpoints in `config.dir` on the
/// local filesystem (the embedded default).
///
/// # Errors
/// As [`run_job_with`].
pub fn run_job(config: &JobConfig) -> Result<JobReport> {
    run_job_on(config, &CheckpointStore::local(&config.dir)?)
}

/// Runs the job with the backend of `config.backend` (the one place that maps the choice
/// to a backend factory), its checkpoints in `store` (any OpenDAL service, with any layers:
/// the tests put faults around it). The sink's output and the backends' working files stay
/// in `config.dir`; a run that does not resume clears `config.dir`'s job directory on the
/// local filesystem, so in another store it starts from an empty job directory.
///
/// # Errors
/// As [`run_job_with`].
pub fn run_job_on(config: &JobConfig, store: &CheckpointStore) -> Result<JobReport> {
    match config.backend {
        BackendChoice::Fs if config.incremental => run_job_with(
            config,
            store,
            FsStateBackend::new().incremental(ChangelogOptions::new()),
        ),
        BackendChoice::Fs => run_job_with(config, store, FsStateBackend::new()),
        BackendChoice::Memory if config.incremental => Err(Error::invalid_input(
            "the memory backend has no incremental checkpoints (its snapshots are inline in \
             _metadata): use --backend fs --incremental",
        )),
        BackendChoice::Memory => run_job_with(config, store, MemoryStateBackend::new()),
        #[cfg(feature = "rocksdb")]
        BackendChoice::RocksDb => run_job_with(
            config,
            store,
            cornerstone_backend_rocksdb::RocksDbStateBackend::new(),
        ),
        #[cfg(not(feature = "rocksdb"))]
        BackendChoice::RocksDb => Err(Error::new(
            cornerstone_backend_api::ErrorKind::Unsupported,
            "this build has no RocksDB backend: build with `--features rocksdb` \
             (cargo run --release -p cornerstone-examples --features rocksdb --bin cornerstone-job -- --backend rocksdb)",
        )),
    }
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove the previous run", e).with_context("path", path.display())),
    }
}

/// Runs the job with the keyed state backend `factory`: attempts until it finishes, each
/// failure restarting from the latest checkpoint as the restart strategy allows; then
/// checks the output.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a bad configuration; an error naming the last failure
/// when the restart strategy gives up (the job failed; its checkpoints are kept);
/// [`ErrorKind::Fenced`] when another instance of the job took over its checkpoint
/// directory (this one stops at once, deleting nothing); storage errors of the coordinator.
pub fn run_job_with<F: StateBackend + 'static>(
    config: &JobConfig,
    store: &CheckpointStore,
    factory: F,
) -> Result<JobReport> {
    config.validate()?;
    let started = Instant::now();
    if !config.resume {
        remove_dir(&config.job_dir())?;
    }
    let clock: SharedClock = cornerstone_backend_api::clock::system_clock();
    let coordinator = CheckpointCoordinator::open(
        store,
        JOB_ID,
        config.checkpointing(),
        config.operators(),
        clock.clone(),
    )?;
    if !config.resume
        && let Some(existing) = coordinator.checkpoint_store().latest()
    {
        // A new run starts from no state (its output directory was just cleared):
        // restoring someone's checkpoint would break the exactly-once check.
        return Err(Error::invalid_input(
            "the checkpoint location holds checkpoints of an earlier run; resume it or use an empty location",
        )
        .with_context("checkpoint", existing.metadata_path));
    }
    if !config.resume {
        remove_dir(&config.output_dir())?;
    }
    let mut tracker = config.restart.tracker(clock.clone());
    let injector = Arc::new(FailureInjector::default());
    let timers = Arc::new(TimerCounters::default());
    let topology = config.topology();
    let per_attempt = config.events_per_split * u64::from(config.splits_per_input) * 2;
    let planned = plan_failures(config.seed, config.failures, per_attempt);
    let factory = Arc::new(factory);
    let mut failures: Vec<FailureRecord> = Vec::new();
    let mut resumed_from = None;
    let mut attempt = 0usize;
    let latest_path = loop {
        // A restore or a deployment that fails (storage failing under it) is a failed
        // attempt like a task's failure: the restart strategy decides.
        let end = coordinator.restore_latest().and_then(|restored| {
            let restored_id = restored.as_ref().map(|r| r.checkpoint.id());
            if attempt == 0 {
                resumed_from = restored_id;
            } else if let Some(last) = failures.last_mut() {
                last.restored_from = restored_id;
            }
            injector.arm(planned.get(attempt).copied());
            run_attempt(
                &topology,
                &factory,
                &coordinator,
                restored,
                &injector,
                &timers,
                &clock,
            )
            .map(|(end, _)| end)
        });
        let end = end.unwrap_or_else(|error| AttemptEnd::Failed {
            task: TaskId::new("coordinator", 0),
            error,
        });
        match end {
            AttemptEnd::Finished => {
                let latest = coordinator
                    .checkpoint_store()
                    .latest()
                    .map(|c| c.metadata_path);
                // The bounded input is through and committed: stop the job as a cancel, so
                // that RetainOnCancellation keeps its checkpoints for inspection.
                coordinator.shutdown(JobStatus::Cancelled)?;
                break latest;
            }
            AttemptEnd::Failed { task, error } if error.kind() == ErrorKind::Fenced => {
                // Another instance of the job took over the checkpoint directory: a restart
                // would fail the same way, and a restore would touch the other instance's
                // sink transactions. Stop here, deleting nothing.
                coordinator.abort_pending("fenced by another instance of the job");
                return Err(Error::new(
                    ErrorKind::Fenced,
                    "another instance of the job took over its checkpoint directory; this one stops without restarting",
                )
                .with_context("task", task)
                .with_context("cause", error));
            }
            AttemptEnd::Failed { task, error } => {
                coordinator.abort_pending(&format!("failover: {task} failed"));
                tracing::info!(%task, %error, "task failed; failing over");
                failures.push(FailureRecord {
                    task: task.clone(),
                    error: error.to_string(),
                    restored_from: None,
                });
                match tracker.on_failure() {
                    RestartDecision::Restart { delay, .. } => {
                        wait(delay);
                        attempt += 1;
                    }
                    RestartDecision::Fail { reason } => {
                        coordinator.shutdown(JobStatus::Failed)?;
                        return Err(Error::new(
                            ErrorKind::Unavailable,
                            "the job failed: the restart strategy gave up",
                        )
                        .with_context("reason", reason)
                        .with_context("task", task)
                        .with_context("failure", error));
                    }
                }
            }
        }
    };
    let expected = expected_counts(
        config.splits_per_input,
        config.events_per_split,
        config.keys,
        config.window_ms,
    );
    let output = check_output(&config.output_dir(), &expected)?;
    Ok(JobReport {
        config: config.clone(),
        failures,
        planned,
        restarts: tracker.restarts(),
        resumed_from,
        stats: coordinator.stats(),
        latest_checkpoint: latest_path,
        checkpoint_location: checkpoint_location(config, store),
        output,
        timers: timers.totals(),
        elapsed: started.elapsed(),
    })
}

/// The job's directory in `store`, as `cornerstone` takes it: `config.dir`'s job directory
/// for the local store there (as the user typed it), else the store's location.
fn checkpoint_location(config: &JobConfig, store: &CheckpointStore) -> String {
    let info = store.operator().info();
    let default_root = std::fs::canonicalize(&config.dir)
        .ok()
        .map(|p| p.display().to_string());
    if info.scheme() == cornerstone_checkpoint_store::opendal::services::FS_SCHEME
        && default_root
            .is_some_and(|d| info.root().trim_end_matches('/') == d.trim_end_matches('/'))
    {
        return config.job_dir().display().to_string();
    }
    match info.scheme() {
        s if s == cornerstone_checkpoint_store::opendal::services::FS_SCHEME => {
            format!("{}/{JOB_ID}", info.root().trim_end_matches('/'))
        }
        scheme => format!("{scheme}://{}/{JOB_ID}", info.root().trim_matches('/')),
    }
}

/// Waits `delay` (the restart delay) without sleeping the thread through the std API the
/// project bans: a timed wait on a channel that never receives.
fn wait(delay: Duration) {
    let (_keep, rx) = std::sync::mpsc::channel::<()>();
    let _ = rx.recv_timeout(delay);
}

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
