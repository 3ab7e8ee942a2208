//! Restart strategies (Flink's `RestartStrategies` and their `RestartBackoffTimeStrategy`):
//! whether a failed job restarts, and after which delay. Time comes from the injected clock.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use cornerstone_backend_api::SharedClock;

/// How a failed job is restarted.
///
/// Defaults ([`RestartStrategy::default_for`]), from both seeds: without checkpointing,
/// **no restart**; with checkpointing and no strategy configured, **fixed delay** with
/// `Integer.MAX_VALUE` attempts ("如果启用了 checkpointing，但没有配置重启策略，则使用固定间隔
/// (fixed-delay) 策略，尝试重启次数默认值是: Integer.MAX_VALUE"). The seeds give no delay for
/// that default; we use Flink's `restart-strategy.fixed-delay.delay` default of 1 s.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// The job fails on its first failure (`restart-strategy: none`).
    None,
    /// Up to `attempts` restarts, each after `delay` (`restart-strategy: fixed-delay`).
    FixedDelay {
        /// Restart attempts before the job fails.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restarts after `delay`, unless `max_failures_per_interval` failures happened within
    /// `interval` (`restart-strategy: failure-rate`). As in Flink's
    /// `FailureRateRestartBackoffTimeStrategy`, the job fails on the failure that makes
    /// `max_failures_per_interval` failures within `interval`.
    FailureRate {
        /// Failures within `interval` that fail the job.
        max_failures_per_interval: u32,
        /// The measuring interval.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restarts without limit, the delay growing by `multiplier` from `initial` up to `max`;
    /// after `reset_threshold` without a failure it starts again from `initial`
    /// (`restart-strategy: exponential-delay`). `jitter` (0 to 1) spreads each delay by up to
    /// that fraction, deterministically from the attempt number.
    ExponentialDelay {
        /// The first delay.
        initial: Duration,
        /// The largest delay.
        max: Duration,
        /// The growth factor (at least 1).
        multiplier: f64,
        /// A failure-free run this long resets the delay.
        reset_threshold: Duration,
        /// The jitter factor, from 0 to 1.
        jitter: f64,
    },
}

/// Flink's `restart-strategy.fixed-delay.delay` default.
pub const DEFAULT_FIXED_DELAY: Duration = Duration::from_secs(1);

impl RestartStrategy {
    /// The default strategy: [`None`](Self::None) without checkpointing, fixed delay with
    /// `i32::MAX` attempts and a 1 s delay with checkpointing (see the type's docs).
    pub fn default_for(checkpointing_enabled: bool) -> Self {
        if checkpointing_enabled {
            RestartStrategy::FixedDelay {
                attempts: i32::MAX as u32,
                delay: DEFAULT_FIXED_DELAY,
            }
        } else {
            RestartStrategy::None
        }
    }

    /// Fixed delay (Flink's `RestartStrategies.fixedDelayRestart(attempts, delay)`).
    pub fn fixed_delay(attempts: u32, delay: Duration) -> Self {
        RestartStrategy::FixedDelay { attempts, delay }
    }

    /// Failure rate (Flink's `RestartStrategies.failureRateRestart(max, interval, delay)`).
    pub fn failure_rate(
        max_failures_per_interval: u32,
        interval: Duration,
        delay: Duration,
    ) -> Self {
        RestartStrategy::FailureRate {
            max_failures_per_interval,
            interval,
            delay,
        }
    }

    /// Exponential delay with Flink's defaults: 1 s initial, 5 min max, multiplier 2, reset
    /// after 1 h without failure, jitter 0.1.
    pub fn exponential_delay() -> Self {
        RestartStrategy::ExponentialDelay {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            multiplier: 2.0,
            reset_threshold: Duration::from_secs(3600),
            jitter: 0.1,
        }
    }

    /// The tracker that applies this strategy to a job's failures.
    pub fn tracker(&self, clock: SharedClock) -> RestartTracker {
        RestartTracker {
            strategy: self.clone(),
            clock,
            attempts: 0,
            failures: VecDeque::new(),
            current_backoff: None,
            last_failure_ms: None,
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after waiting `delay` (this is restart number `attempt`, from 1).
    Restart {
        /// The wait before the restart.
        delay: Duration,
        /// The restart's number.
        attempt: u32,
    },
    /// The job fails for good.
    Fail {
        /// Why the strategy gave up.
        reason: String,
    },
}

/// Applies a [`RestartStrategy`] to a job's failures, with time from the injected clock.
pub struct RestartTracker {
    strategy: RestartStrategy,
    clock: SharedClock,
    attempts: u32,
    failures: VecDeque<u64>,
    current_backoff: Option<Duration>,
    last_failure_ms: Option<u64>,
}

impl fmt::Debug for RestartTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestartTracker")
            .field("strategy", &self.strategy)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl RestartTracker {
    /// The strategy.
    pub fn strategy(&self) -> &RestartStrategy {
        &self.strategy
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> u32 {
        self.attempts
    }

    /// Records a failure now and decides whether and when to restart.
    pub fn on_failure(&mut self) -> RestartDecision {
        let now = self.clock.now_millis();
        let decision = match &self.strategy {
            RestartStrategy::None => RestartDecision::Fail {
                reason: "restart strategy none: the job fails on its first failure".into(),
            },
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.attempts < *attempts {
                    self.grant(*delay)
                } else {
                    RestartDecision::Fail {
                        reason: format!(
                            "fixed-delay restart strategy: all {attempts} restart attempts used"
                        ),
                    }
                }
            }
            RestartStrategy::FailureRate {
                max_failures_per_interval,
                interval,
                delay,
            } => {
                let max = (*max_failures_per_interval).max(1) as usize;
                if self.failures.len() >= max {
                    self.failures.pop_front();
                }
                self.failures.push_back(now);
                let window = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
                let full = self.failures.len() >= max;
                let oldest = self.failures.front().copied().unwrap_or(now);
                if full && now.saturating_sub(oldest) <= window {
                    RestartDecision::Fail {
                        reason: format!(
                            "failure-rate restart strategy: {max} failures within {interval:?}"
                        ),
                    }
                } else {
                    self.grant(*delay)
                }
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                reset_threshold,
                jitter,
            } => {
                let reset = self.last_failure_ms.is_some_and(|last| {
                    Duration::from_millis(now.saturating_sub(last)) >= *reset_threshold
                });
                let backoff = match self.current_backoff {
                    Some(current) if !reset => current.mul_f64(multiplier.max(1.0)).min(*max),
                    _ => (*initial).min(*max),
                };
                self.current_backoff = Some(backoff);
                let delay = apply_jitter(backoff, jitter.clamp(0.0, 1.0), self.attempts);
                self.grant(delay)
            }
        };
        self.last_failure_ms = Some(now);
        decision
    }

    fn grant(&mut self, delay: Duration) -> RestartDecision {
        self.attempts = self.attempts.saturating_add(1);
        RestartDecision::Restart {
            delay,
            attempt: self.attempts,
        }
    }
}

/// Spreads `d` by up to `±jitter·d`, deterministically from `attempt` (splitmix64).
fn apply_jitter(d: Duration, jitter: f64, attempt: u32) -> Duration {
    if jitter == 0.0 {
        return d;
    }
    let mut z = u64::from(attempt).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // In [-1, 1).
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    d.mul_f64((1.0 + unit * jitter).max(0.0))
}
