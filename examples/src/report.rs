//! What a run did: its failures, checkpoint statistics, timers and the check of its output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, Error, Result};
use cornerstone_coordinator::{
    CheckpointStats, CheckpointStatus, CheckpointingMode, JobCheckpointStats, TaskId,
    TransactionalFileSink,
};

use crate::config::{JOB_ID, JobConfig};
use crate::failure::PlannedFailure;
use crate::runtime::{TimerCounts, task_count};

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
