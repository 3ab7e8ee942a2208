//! The checkpointing configuration: Flink's `CheckpointConfig` knobs and their defaults.

use std::time::Duration;

use cornerstone_backend_api::{Error, Result, SharedClock};
use cornerstone_checkpoint_store::{CheckpointConfig, CleanupPolicy};

/// The guarantee checkpoints give (Flink's `CheckpointingMode`).
///
/// Default [`ExactlyOnce`](Self::ExactlyOnce): both seeds ("the default checkpoint mode is
/// exactly once"; "默认的检查PointMode是Exactly-once").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CheckpointingMode {
    /// Barriers are aligned: an operator with several inputs blocks every input that
    /// delivered barrier N until all inputs have, so the snapshot reflects exactly the
    /// records before the barrier.
    #[default]
    ExactlyOnce,
    /// Barriers are tracked but not aligned: no input is blocked, so a snapshot may include
    /// records after the barrier and a restore may replay them (duplicates, never losses).
    AtLeastOnce,
}

/// The checkpointing configuration of a job (Flink's `CheckpointConfig`): the coordinator's
/// knobs, and the checkpoint store's configuration ([`CheckpointConfig`]: `num_retained`,
/// the externalized cleanup policy, inline threshold, ...) that the coordinator opens the
/// job's store with. Each setting lives in one place: [`cleanup`](Self::cleanup) and
/// [`num_retained`](Self::num_retained) set the store's.
///
/// | knob | default | from |
/// |---|---|---|
/// | `interval` | `None` (checkpointing disabled) | both seeds: "the default checkpoint function is disabled" / "默认checkpoint功能是disabled的" |
/// | `mode` | exactly-once | both seeds |
/// | `timeout` | 10 min | Flink's `execution.checkpointing.timeout` (the seeds show 60 s as an example setting) |
/// | `min_pause` | 0 | Flink's `execution.checkpointing.min-pause` (the seeds set 500 ms as an example) |
/// | `max_concurrent` | 1 | Flink's default; the seeds set 1 |
/// | `tolerable_failed` | 0 | Flink's default; the English seed: "fail the task when the checkpoint is abnormal: the default value is true" |
/// | `store.cleanup` | [`CleanupPolicy::NoExternalized`] | the English seed: "by default, checkpoints are not reserved" |
/// | `store.num_retained` | 1 | the Chinese seed: "Flink只保留最近成功生成的1个Checkpoint" |
///
/// A `min_pause` above zero implies at most one concurrent checkpoint (the English seed:
/// "when this parameter is specified, the value of maxConcurrentCheckpoints is 1").
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The interval of periodic checkpoints; `None` disables periodic checkpointing.
    pub interval: Option<Duration>,
    /// Exactly-once (aligned) or at-least-once (unaligned, tracked) barriers.
    pub mode: CheckpointingMode,
    /// A checkpoint not complete this long after its trigger is aborted.
    pub timeout: Duration,
    /// The least time between the end of one checkpoint and the trigger of the next.
    pub min_pause: Duration,
    /// How many checkpoints may be in progress at once (at least 1).
    pub max_concurrent: usize,
    /// How many checkpoint failures in a row are tolerated before the job fails.
    pub tolerable_failed: u32,
    /// The configuration of the job's checkpoint store (retention, cleanup policy, inline
    /// threshold, `_metadata` compression); its clock is replaced by the coordinator's.
    pub store: CheckpointConfig,
    /// Whether a restore may skip the state of operators the job does not have (Flink's
    /// `--allowNonRestoredState`); without it, such a restore fails naming them.
    pub allow_non_restored_state: bool,
}

/// Flink's default checkpoint timeout (10 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            interval: None,
            mode: CheckpointingMode::default(),
            timeout: DEFAULT_TIMEOUT,
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failed: 0,
            store: CheckpointConfig::default(),
            allow_non_restored_state: false,
        }
    }
}

impl CoordinatorConfig {
    /// Checkpointing every `interval` with the other defaults (Flink's
    /// `env.enableCheckpointing(interval)`).
    pub fn every(interval: Duration) -> Self {
        CoordinatorConfig {
            interval: Some(interval),
            ..Self::default()
        }
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(mut self, mode: CheckpointingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the minimum pause between checkpoints.
    #[must_use]
    pub fn min_pause(mut self, pause: Duration) -> Self {
        self.min_pause = pause;
        self
    }

    /// Sets the maximum of concurrent checkpoints.
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Sets the number of tolerable checkpoint failures in a row.
    #[must_use]
    pub fn tolerable_failed(mut self, n: u32) -> Self {
        self.tolerable_failed = n;
        self
    }

    /// Sets the externalized cleanup policy.
    #[must_use]
    pub fn cleanup(mut self, policy: CleanupPolicy) -> Self {
        self.store.cleanup = policy;
        self
    }

    /// Sets how many completed checkpoints are retained.
    #[must_use]
    pub fn num_retained(mut self, n: usize) -> Self {
        self.store.num_retained = n;
        self
    }

    /// Sets the checkpoint store's configuration (its clock is replaced by the
    /// coordinator's).
    #[must_use]
    pub fn store(mut self, store: CheckpointConfig) -> Self {
        self.store = store;
        self
    }

    /// Lets restores skip the state of operators the job does not have.
    #[must_use]
    pub fn allow_non_restored_state(mut self, allow: bool) -> Self {
        self.allow_non_restored_state = allow;
        self
    }

    /// Whether periodic checkpointing is enabled.
    pub fn checkpointing_enabled(&self) -> bool {
        self.interval.is_some()
    }

    /// The effective maximum of concurrent checkpoints: 1 when a minimum pause is set.
    pub fn effective_max_concurrent(&self) -> usize {
        if self.min_pause > Duration::ZERO {
            1
        } else {
            self.max_concurrent
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::InvalidInput`] for a zero interval, timeout,
    /// `max_concurrent` or `num_retained`, naming the knob.
    pub fn validate(&self) -> Result<()> {
        let bad = |knob: &'static str, value: String| {
            Err(Error::invalid_input("invalid checkpoint configuration")
                .with_context("knob", knob)
                .with_context("value", value))
        };
        if self.interval == Some(Duration::ZERO) {
            return bad("interval", "0 ms".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout", "0 ms".into());
        }
        if self.max_concurrent == 0 {
            return bad("max_concurrent", "0".into());
        }
        if self.store.num_retained == 0 {
            return bad("num_retained", "0".into());
        }
        Ok(())
    }

    /// The configuration of the checkpoint store that finalizes this job's checkpoints:
    /// [`store`](Self::store) with `clock`.
    pub fn store_config(&self, clock: SharedClock) -> CheckpointConfig {
        self.store.clone().clock(clock)
    }
}
