//! The job's configuration: its backend, shape, pace, checkpointing and failures.

use std::path::PathBuf;
use std::time::Duration;

use cornerstone_backend_api::{Error, Result};
use cornerstone_checkpoint_store::CleanupPolicy;
use cornerstone_coordinator::{
    CheckpointingMode, CoordinatorConfig, OperatorSpec, RestartStrategy,
};

use crate::runtime::{COUNTER_UID, SINK_UID, SOURCE_UIDS, Topology};

/// The job id: checkpoints go to `<dir>/wordcount/chk-N/`.
pub const JOB_ID: &str = "wordcount";
/// The sink's directory under `<dir>`.
pub const OUTPUT_DIR: &str = "wordcount-output";

/// The keyed state backend of the counter. Adding a backend is one variant and one arm in
/// [`run_job`].
///
/// [`run_job`]: crate::run_job
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
    /// Incremental checkpoints of the fs backend (its changelog mode: each checkpoint
    /// uploads the entries changed since the last one). RocksDB checkpoints are always
    /// incremental; the memory backend has none (its snapshots are inline).
    pub incremental: bool,
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
    ///
    /// [`TimerCounts::idle_timeouts`]: crate::TimerCounts::idle_timeouts
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
            incremental: false,
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

    pub(crate) fn topology(&self) -> Topology {
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

    pub(crate) fn operators(&self) -> Vec<OperatorSpec> {
        let p = self.max_parallelism;
        vec![
            OperatorSpec::new(SOURCE_UIDS[0], "Source A", self.splits_per_input, p),
            OperatorSpec::new(SOURCE_UIDS[1], "Source B", self.splits_per_input, p),
            OperatorSpec::new(COUNTER_UID, "Windowed count (two inputs)", self.counters, p),
            OperatorSpec::new(SINK_UID, "Transactional file sink", self.sinks, p),
        ]
    }

    pub(crate) fn validate(&self) -> Result<()> {
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
