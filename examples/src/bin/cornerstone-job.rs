//! The README's main job: an exactly-once windowed count with injected failures, restarts
//! from checkpoints in a local checkpoint store, and a check of the sink's output.
//!
//! `cornerstone-job [--dir DIR] [--backend fs|memory|rocksdb] [--incremental]
//! [--mode exactly-once|at-least-once]
//! [--seed N] [--failures N] [--resume] ...` (see `--help`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use cornerstone_checkpoint_store::CheckpointStore;
use cornerstone_coordinator::{CheckpointingMode, RestartStrategy};
use cornerstone_examples::{BackendChoice, JobConfig, run_job, run_job_on};
use rand::RngExt;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Fs,
    Memory,
    /// Needs the crate feature `rocksdb`.
    Rocksdb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    ExactlyOnce,
    AtLeastOnce,
}

/// Runs the end-to-end exactly-once job and prints a report.
#[derive(Debug, Parser)]
#[command(name = "cornerstone-job", version)]
struct Args {
    /// The checkpoint store's root directory (checkpoints in DIR/wordcount, output in
    /// DIR/wordcount-output).
    #[arg(long, default_value = "cornerstone-data")]
    dir: PathBuf,
    /// Where the checkpoints go instead of DIR: any location the checkpoint store accepts
    /// (a path, `file://`, `memory://`, or with the features of the same names
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `azblob://container/prefix`), options in
    /// its query (`?region=us-east-1&retries=8`) and credentials from the service's usual
    /// environment variables and files. The sink's output stays in DIR.
    #[arg(long, value_name = "LOCATION")]
    checkpoint_dir: Option<String>,
    /// The keyed state backend of the windowed count.
    #[arg(long, value_enum, default_value = "fs")]
    backend: Backend,
    /// Incremental checkpoints with the fs backend (its changelog mode: a checkpoint
    /// uploads the entries changed since the last one, over a full snapshot taken now and
    /// then). RocksDB checkpoints are always incremental; the memory backend has none.
    #[arg(long)]
    incremental: bool,
    /// The checkpointing mode.
    #[arg(long, value_enum, default_value = "exactly-once")]
    mode: Mode,
    /// The seed of the failure plan (random when absent; printed in the report).
    #[arg(long)]
    seed: Option<u64>,
    /// Failures to inject.
    #[arg(long, default_value_t = 3)]
    failures: u32,
    /// Events per source split.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000)]
    keys: u64,
    /// Milliseconds a source waits between batches (larger: a slower job).
    #[arg(long, default_value_t = 2)]
    pace_ms: u64,
    /// Milliseconds of processing time without records after which a key counts as idle
    /// (the counter's processing-time timers; the report counts the timeouts).
    #[arg(long, default_value_t = 1_000)]
    idle_timeout_ms: u64,
    /// The checkpoint interval in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Restart attempts of the fixed-delay restart strategy (0: restart strategy none).
    #[arg(long, default_value_t = 10)]
    restart_attempts: u32,
    /// Resume from the latest checkpoint in DIR (after a crash) instead of starting fresh.
    #[arg(long)]
    resume: bool,
    /// Print a line per completed checkpoint.
    #[arg(long)]
    progress: bool,
}

fn main() -> ExitCode {
    // Crash testing (feature `failpoints`): the checkpoint store's kill points, armed from
    // `FAILPOINTS` (`FAILPOINTS=commit-after-metadata=return` aborts at its first hit).
    #[cfg(feature = "failpoints")]
    let _kill_points = fail::FailScenario::setup();
    let args = Args::parse();
    // Logs on stderr (the report is on stdout): warnings by default, RUST_LOG=info shows
    // every checkpoint, restore and failover.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let seed = args
        .seed
        .unwrap_or_else(|| rand::rng().random_range(0..1_000_000));
    let config = JobConfig {
        backend: match args.backend {
            Backend::Fs => BackendChoice::Fs,
            Backend::Memory => BackendChoice::Memory,
            Backend::Rocksdb => BackendChoice::RocksDb,
        },
        incremental: args.incremental,
        mode: match args.mode {
            Mode::ExactlyOnce => CheckpointingMode::ExactlyOnce,
            Mode::AtLeastOnce => CheckpointingMode::AtLeastOnce,
        },
        seed,
        failures: args.failures,
        events_per_split: args.events,
        keys: args.keys,
        pace: Duration::from_millis(args.pace_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        checkpoint_interval: Duration::from_millis(args.interval_ms),
        restart: if args.restart_attempts == 0 {
            RestartStrategy::None
        } else {
            RestartStrategy::fixed_delay(args.restart_attempts, Duration::from_millis(20))
        },
        resume: args.resume,
        progress: args.progress,
        ..JobConfig::standard(args.dir)
    };
    let ran = match &args.checkpoint_dir {
        None => run_job(&config),
        Some(location) => CheckpointStore::from_url(location, Vec::<(String, String)>::new())
            .and_then(|store| run_job_on(&config, &store)),
    };
    match ran {
        Ok(report) => {
            // Not println!: a closed stdout (`| head`) must not panic.
            let _ = writeln!(std::io::stdout(), "{report}");
            if report.guarantee_met() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
