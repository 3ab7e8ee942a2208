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

mod data;
mod failure;
mod runtime;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cornerstone_backend_api::{
    CheckpointId, Error, ErrorKind, Result, SharedClock, StateBackendFactory,
};
use cornerstone_backend_fs::FsStateBackend;
use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_checkpoint_store::{CheckpointStore, CleanupPolicy, JobStatus};
use cornerstone_coordinator::{
    CheckpointCoordinator, CheckpointStats, CheckpointStatus, CheckpointingMode, CoordinatorConfig,
    JobCheckpointStats, OperatorSpec, RestartDecision, RestartStrategy, TaskId,
    TransactionalFileSink,
};

pub use data::{event_key, expected_counts, window_start};
pub use failure::{FailPoint, FailureInjector, PlannedFailure, plan_failures};
pub use runtime::{
    COUNT_STATE, COUNTER_UID, IDLE_TIMERS, LAST_SEEN_STATE, OFFSETS_STATE, SINK_UID, SOURCE_UIDS,
    WINDOW_TIMERS,
};

use crate::runtime::{AttemptEnd, TimerCounters, Topology, run_attempt, task_count};

/// The job id: checkpoints go to `<dir>/wordcount/chk-N/`.
pub const JOB_ID: &str = "wordcount";
/// The sink's directory under `<dir>`.
pub const OUTPUT_DIR: &str = "wordcount-output";

/// The keyed state backend of the counter. Adding a backend is one variant and one arm in
/// [`run_job`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// `cornerstone_backend_fs::FsStateBackend`: snapshots as files in `chk-N/`.
    #[default]
    Fs,
    /// `cornerstone_backend_memory::MemoryStateBackend`: snapshots inline in `_metadata`.
    Memory,
    /// `cornerstone_backend_rocksdb::RocksDbStateBackend` (incremental checkpoints: SSTs in
    /// `shared/`); needs the crate feature `rocksdb`.
    RocksDb,
}

impl BackendChoice {
    /// The backend's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Fs => "fs",
            BackendChoice::Memory => "memory",
            BackendChoice::RocksDb => "rocksdb",
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fs" | "filesystem" => Ok(BackendChoice::Fs),
            "memory" => Ok(BackendChoice::Memory),
            "rocksdb" => Ok(BackendChoice::RocksDb),
            other => Err(Error::invalid_input(
                "unknown state backend (expected fs, memory or rocksdb)",
            )
            .with_context("backend", other)),
        }
    }
}

/// Everything about a run.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The checkpoint store's root (checkpoints in `<dir>/wordcount/`, output in
    /// `<dir>/wordcount-output/`).
    pub dir: PathBuf,
    /// The counter's keyed state backend.
    pub backend: BackendChoice,
    /// Exactly-once (aligned) or at-least-once barriers.
    pub mode: CheckpointingMode,
    /// Source splits per input (the parallelism of each source).
    pub splits_per_input: u32,
    /// The counter's parallelism.
    pub counters: u32,
    /// The sink's parallelism.
    pub sinks: u32,
    /// Key groups.
    pub max_parallelism: u32,
    /// Events per source split (event time = offset in ms).
    pub events_per_split: u64,
    /// Distinct keys.
    pub keys: u64,
    /// The tumbling window size in ms of event time.
    pub window_ms: u64,
    /// Processing time (the job's clock) after which a key without records counts as idle:
    /// the counter's processing-time timers ([`TimerCounts::idle_timeouts`]). Zero times a
    /// key out as soon as the counter is between messages.
    pub idle_timeout: Duration,
    /// Events a source emits per poll.
    pub batch: u64,
    /// A source's wait between polls (the job's speed).
    pub pace: Duration,
    /// The checkpoint interval.
    pub checkpoint_interval: Duration,
    /// The checkpoint timeout.
    pub checkpoint_timeout: Duration,
    /// Completed checkpoints retained.
    pub num_retained: usize,
    /// Checkpoint failures in a row tolerated before the job fails over (a failed
    /// asynchronous phase declines its checkpoint).
    pub tolerable_failed: u32,
    /// Failures to inject (one per attempt, at a random point).
    pub failures: u32,
    /// The seed of the failure plan.
    pub seed: u64,
    /// The restart strategy.
    pub restart: RestartStrategy,
    /// Resume from the latest checkpoint in `dir` (after a crash) instead of starting fresh
    /// (which deletes earlier checkpoints and output of this job).
    pub resume: bool,
    /// Print a line per completed checkpoint.
    pub progress: bool,
}

impl JobConfig {
    /// The README's job: 2 inputs × 2 splits × 100k events over 1000 keys, 20 windows,
    /// parallelism 2 everywhere, a checkpoint every 20 ms, 3 failures, keys idle after
    /// 1 s.
    pub fn standard(dir: impl Into<PathBuf>) -> Self {
        JobConfig {
            dir: dir.into(),
            backend: BackendChoice::Fs,
            mode: CheckpointingMode::ExactlyOnce,
            splits_per_input: 2,
            counters: 2,
            sinks: 2,
            max_parallelism: 128,
            events_per_split: 100_000,
            keys: 1_000,
            window_ms: 5_000,
            idle_timeout: Duration::from_secs(1),
            batch: 500,
            pace: Duration::from_millis(2),
            checkpoint_interval: Duration::from_millis(20),
            checkpoint_timeout: Duration::from_secs(10),
            num_retained: 3,
            tolerable_failed: 0,
            failures: 3,
            seed: 42,
            restart: RestartStrategy::fixed_delay(10, Duration::from_millis(20)),
            resume: false,
            progress: false,
        }
    }

    /// A small job for tests and docs (debug builds): 2 × 2 × 4000 events, 40 keys.
    pub fn small(dir: impl Into<PathBuf>) -> Self {
        JobConfig {
            events_per_split: 4_000,
            keys: 40,
            window_ms: 500,
            batch: 100,
            pace: Duration::from_millis(1),
            checkpoint_interval: Duration::from_millis(5),
            restart: RestartStrategy::fixed_delay(10, Duration::from_millis(1)),
            ..Self::standard(dir)
        }
    }

    /// The checkpointing configuration.
    pub fn checkpointing(&self) -> CoordinatorConfig {
        CoordinatorConfig::every(self.checkpoint_interval)
            .mode(self.mode)
            .timeout(self.checkpoint_timeout)
            .num_retained(self.num_retained)
            .tolerable_failed(self.tolerable_failed)
            .cleanup(CleanupPolicy::RetainOnCancellation)
    }

    /// Where the sink writes.
    pub fn output_dir(&self) -> PathBuf {
        self.dir.join(OUTPUT_DIR)
    }

    /// The job directory of the checkpoints.
    pub fn job_dir(&self) -> PathBuf {
        self.dir.join(JOB_ID)
    }

    fn topology(&self) -> Topology {
        Topology {
            splits_per_input: self.splits_per_input,
            counters: self.counters,
            sinks: self.sinks,
            max_parallelism: self.max_parallelism,
            events_per_split: self.events_per_split,
            keys: self.keys,
            window_ms: self.window_ms,
            idle_timeout: self.idle_timeout,
            batch: self.batch,
            pace: self.pace,
            mode: self.mode,
            output_dir: self.output_dir(),
            progress: self.progress,
        }
    }

    fn operators(&self) -> Vec<OperatorSpec> {
        let p = self.max_parallelism;
        vec![
            OperatorSpec::new(SOURCE_UIDS[0], "Source A", self.splits_per_input, p),
            OperatorSpec::new(SOURCE_UIDS[1], "Source B", self.splits_per_input, p),
            OperatorSpec::new(COUNTER_UID, "Windowed count (two inputs)", self.counters, p),
            OperatorSpec::new(SINK_UID, "Transactional file sink", self.sinks, p),
        ]
    }

    fn validate(&self) -> Result<()> {
        let positive = [
            ("splits_per_input", u64::from(self.splits_per_input)),
            ("counters", u64::from(self.counters)),
            ("sinks", u64::from(self.sinks)),
            ("events_per_split", self.events_per_split),
            ("keys", self.keys),
            ("window_ms", self.window_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::invalid_input("job setting must be at least 1")
                    .with_context("setting", name));
            }
        }
        Ok(())
    }
}

/// One failure the job went through.
#[derive(Debug, Clone)]
pub struct FailureRecord {
    /// Which task failed.
    pub task: TaskId,
    /// The error.
    pub error: String,
    /// The checkpoint the restart restored (`None`: started from scratch).
    pub restored_from: Option<CheckpointId>,
}

/// The check of the sink's committed output.
#[derive(Debug, Clone, Default)]
pub struct OutputCheck {
    /// Committed lines.
    pub lines: usize,
    /// Committed files.
    pub files: usize,
    /// Expected (key, window, count) results.
    pub expected: usize,
    /// Expected results found exactly once with the right count.
    pub exact: usize,
    /// (key, window) with no line at all.
    pub missing: Vec<(u64, u64)>,
    /// (key, window) whose every line has a count below the expected one (records lost).
    pub undercounted: Vec<(u64, u64)>,
    /// Lines beyond the first for one (key, window) (duplicates).
    pub duplicated: usize,
    /// Lines whose count differs from the expected one, or unexpected (key, window).
    pub wrong: usize,
    /// Lines that do not parse.
    pub malformed: usize,
}

impl OutputCheck {
    /// Every expected result exactly once, nothing else.
    pub fn exactly_once(&self) -> bool {
        self.exact == self.expected && self.lines == self.expected && self.malformed == 0
    }

    /// No record lost: every (key, window) has a line counting at least the expected
    /// records (at-least-once may count replayed records again and duplicate lines).
    pub fn nothing_lost(&self) -> bool {
        self.missing.is_empty() && self.undercounted.is_empty() && self.malformed == 0
    }
}

/// Checks the committed output in `output_dir` against `expected`.
///
/// # Errors
/// I/O errors naming the file.
pub fn check_output(
    output_dir: &Path,
    expected: &BTreeMap<(u64, u64), u64>,
) -> Result<OutputCheck> {
    let files = TransactionalFileSink::committed_files(output_dir)?;
    let mut seen: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    let mut check = OutputCheck {
        files: files.len(),
        expected: expected.len(),
        ..OutputCheck::default()
    };
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::io("read the sink output", e).with_context("path", file.display())
        })?;
        for line in text.lines() {
            check.lines += 1;
            let parsed: Option<Vec<u64>> = line.split(',').map(|f| f.parse().ok()).collect();
            match parsed.as_deref() {
                Some(&[key, window, count]) => seen.entry((key, window)).or_default().push(count),
                _ => check.malformed += 1,
            }
        }
    }
    for (kw, want) in expected {
        match seen.get(kw) {
            None => check.missing.push(*kw),
            Some(counts) => {
                if counts.len() == 1 && counts[0] == *want {
                    check.exact += 1;
                }
                if counts.iter().all(|c| c < want) {
                    check.undercounted.push(*kw);
                }
            }
        }
    }
    for (kw, counts) in &seen {
        check.duplicated += counts.len().saturating_sub(1);
        let want = expected.get(kw);
        check.wrong += counts.iter().filter(|c| Some(*c) != want).count();
    }
    Ok(check)
}

/// The timers the counter's subtasks fired, summed over every subtask of every attempt
/// (failed ones included: a window fired after the last checkpoint of an attempt that then
/// failed fires again after the restore, and both count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerCounts {
    /// Event-time timers fired: one per (key, window) emitted to the sink. Without failures
    /// it is the number of output lines; with failures at least that.
    pub event_time_fired: u64,
    /// Processing-time timers fired: the idle-key timers, those that found a newer record
    /// (and set the next deadline) included.
    pub processing_time_fired: u64,
    /// Of the processing-time timers fired, those that found their key idle: no record for
    /// [`JobConfig::idle_timeout`].
    pub idle_timeouts: u64,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The configuration.
    pub config: JobConfig,
    /// The failures, in order.
    pub failures: Vec<FailureRecord>,
    /// The failure plan (one per attempt; a plan may not fire if its attempt finished).
    pub planned: Vec<PlannedFailure>,
    /// Restarts granted by the restart strategy.
    pub restarts: u32,
    /// The checkpoint the first attempt resumed from (`--resume`).
    pub resumed_from: Option<CheckpointId>,
    /// Checkpoint statistics.
    pub stats: JobCheckpointStats,
    /// The latest completed checkpoint's `_metadata` path, relative to `dir`.
    pub latest_checkpoint: Option<String>,
    /// Where the job's checkpoints are: its directory in the checkpoint store (a local path
    /// for a local store, else the store's URL and the job id).
    pub checkpoint_location: String,
    /// The check of the output.
    pub output: OutputCheck,
    /// The timers the counter fired.
    pub timers: TimerCounts,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl JobReport {
    /// Whether the output meets the guarantee of the mode.
    pub fn guarantee_met(&self) -> bool {
        match self.config.mode {
            CheckpointingMode::ExactlyOnce => self.output.exactly_once(),
            CheckpointingMode::AtLeastOnce => self.output.nothing_lost(),
        }
    }
}

fn mode_name(mode: CheckpointingMode) -> &'static str {
    match mode {
        CheckpointingMode::ExactlyOnce => "EXACTLY_ONCE",
        CheckpointingMode::AtLeastOnce => "AT_LEAST_ONCE",
    }
}

impl fmt::Display for JobReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "job `{JOB_ID}`: 2 sources x {} splits x {} events over {} keys -> two-input windowed count ({} windows of {} ms) -> transactional file sink",
            c.splits_per_input,
            c.events_per_split,
            c.keys,
            c.events_per_split.div_ceil(c.window_ms),
            c.window_ms
        )?;
        writeln!(
            f,
            "backend {}, {}, checkpoint every {:?}, restart strategy {:?}, {} tasks, {:.2?}",
            c.backend.name(),
            mode_name(c.mode),
            c.checkpoint_interval,
            c.restart,
            task_count(&c.topology()),
            self.elapsed
        )?;
        if let Some(id) = self.resumed_from {
            writeln!(f, "resumed from checkpoint {id}")?;
        }
        writeln!(
            f,
            "seed {}: {} failures injected (reproduce with --seed {}), {} restarts",
            c.seed,
            self.failures.len(),
            c.seed,
            self.restarts
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            let from = failure
                .restored_from
                .map_or_else(|| "from scratch".to_string(), |id| format!("from chk-{id}"));
            writeln!(
                f,
                "  failure {}: {} ({}) -> restarted {from}",
                i + 1,
                failure.task,
                failure.error
            )?;
        }
        let s = &self.stats;
        writeln!(
            f,
            "checkpoints: {} completed, {} failed, {} in progress, {} restored",
            s.completed, s.failed, s.in_progress, s.restored
        )?;
        let completed: Vec<_> = s
            .history
            .iter()
            .filter(|c| matches!(c.status, CheckpointStatus::Completed { .. }))
            .collect();
        if !completed.is_empty() {
            let max = |g: &dyn Fn(&CheckpointStats) -> Duration| {
                completed.iter().map(|c| g(c)).max().unwrap_or_default()
            };
            let sizes: Vec<u64> = completed.iter().map(|c| c.state_size).collect();
            writeln!(
                f,
                "  last {} completed: state {}..{} bytes, end-to-end up to {:?}; per subtask: sync phase up to {:?}, async phase up to {:?}, alignment up to {:?} holding back up to {} records",
                completed.len(),
                sizes.iter().min().unwrap_or(&0),
                sizes.iter().max().unwrap_or(&0),
                max(&|c| c.end_to_end_duration),
                max(&CheckpointStats::max_sync_duration),
                max(&CheckpointStats::max_async_duration),
                max(&CheckpointStats::max_alignment_duration),
                completed
                    .iter()
                    .map(|c| c.max_buffered_records())
                    .max()
                    .unwrap_or(0),
            )?;
        }
        let tm = &self.timers;
        writeln!(
            f,
            "timers: {} event-time fired (a window of a key each), {} processing-time fired ({} idle-key timeouts after {:?} without records); all attempts",
            tm.event_time_fired, tm.processing_time_fired, tm.idle_timeouts, c.idle_timeout
        )?;
        let o = &self.output;
        writeln!(
            f,
            "output: {} lines in {} committed files in {}",
            o.lines,
            o.files,
            c.output_dir().display()
        )?;
        let at = &self.checkpoint_location;
        writeln!(
            f,
            "checkpoints kept (RetainOnCancellation) in {at}: try `cornerstone list {at}`"
        )?;
        if let Some(path) = &self.latest_checkpoint {
            let name = path.strip_prefix(&format!("{JOB_ID}/")).unwrap_or(path);
            writeln!(f, "  and `cornerstone show {at}/{name}`")?;
        }
        match (c.mode, self.guarantee_met()) {
            (CheckpointingMode::ExactlyOnce, true) => write!(
                f,
                "OK: exactly once: all {} (key, window, count) results once each, nothing else",
                o.expected
            ),
            (CheckpointingMode::AtLeastOnce, true) => write!(
                f,
                "OK: at least once: no result lost ({} of {} exact, {} duplicate lines, {} counts above the exact one)",
                o.exact, o.expected, o.duplicated, o.wrong
            ),
            (_, false) => write!(
                f,
                "FAILED: {} of {} exact, {} missing, {} undercounted, {} duplicate lines, {} wrong, {} malformed (first missing: {:?})",
                o.exact,
                o.expected,
                o.missing.len(),
                o.undercounted.len(),
                o.duplicated,
                o.wrong,
                o.malformed,
                o.missing.first()
            ),
        }
    }
}

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
        BackendChoice::Fs => run_job_with(config, store, FsStateBackend::new()),
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
pub fn run_job_with<F: StateBackendFactory + 'static>(
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
