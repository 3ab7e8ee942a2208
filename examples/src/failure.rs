//! Failure injection: one planned failure per execution attempt, at a random point of the
//! job, from a seeded generator (so a run is reproducible with its seed).

use std::fmt;

use cornerstone_backend_api::{Error, ErrorKind, Result};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Where a failure can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailPoint {
    /// A source subtask, after emitting a batch.
    SourceEmit,
    /// The counting operator, on a record.
    CounterRecord,
    /// The counting operator, at the synchronous phase of its snapshot.
    CounterSnapshot,
    /// The sink, on a record.
    SinkWrite,
    /// The sink, at its pre-commit.
    SinkPreCommit,
    /// The asynchronous phase of any task's snapshot.
    AsyncWrite,
    /// The coordinator, after the checkpoint is committed and before the tasks are
    /// notified.
    BeforeNotify,
    /// The sink, on the checkpoint-complete notification, before committing.
    SinkCommit,
}

impl FailPoint {
    /// Whether every checkpoint passes the point (the snapshot, pre-commit, asynchronous
    /// phase, commit and notification), rather than every record or batch: an attempt
    /// does not end while a failure planned at such a point is still armed, so it always
    /// fires (see [`FailureInjector::armed_at_checkpoints`]).
    pub fn at_checkpoints(self) -> bool {
        !matches!(
            self,
            FailPoint::SourceEmit | FailPoint::CounterRecord | FailPoint::SinkWrite
        )
    }

    /// Whether the point comes after a checkpoint is committed, so the restart that
    /// follows a failure there always restores from a checkpoint.
    pub fn after_commit(self) -> bool {
        matches!(self, FailPoint::BeforeNotify | FailPoint::SinkCommit)
    }
}

/// The largest countdown of a failure planned at a point every checkpoint passes: it fires
/// within this many checkpoints of its attempt.
pub(crate) const MAX_CHECKPOINT_COUNTDOWN: u64 = 4;

const POINTS: [FailPoint; 8] = [
    FailPoint::SourceEmit,
    FailPoint::CounterRecord,
    FailPoint::CounterSnapshot,
    FailPoint::SinkWrite,
    FailPoint::SinkPreCommit,
    FailPoint::AsyncWrite,
    FailPoint::BeforeNotify,
    FailPoint::SinkCommit,
];

/// One planned failure: at the `countdown`-th hit of `point` in the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedFailure {
    /// Where.
    pub point: FailPoint,
    /// At which hit (from 1).
    pub countdown: u64,
}

impl fmt::Display for PlannedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} #{}", self.point, self.countdown)
    }
}

/// The failures of a run: `plans[k]` is armed for attempt `k`.
pub fn plan_failures(seed: u64, failures: u32, records_per_attempt: u64) -> Vec<PlannedFailure> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..failures)
        .map(|_| {
            let point = POINTS[rng.random_range(0..POINTS.len())];
            let max = match point {
                FailPoint::SourceEmit => 30,
                FailPoint::CounterRecord => (records_per_attempt / 3).max(1),
                FailPoint::SinkWrite => (records_per_attempt / 40).max(1),
                _ => MAX_CHECKPOINT_COUNTDOWN,
            };
            PlannedFailure {
                point,
                countdown: rng.random_range(1..=max),
            }
        })
        .collect()
}

/// The armed failure of the current attempt, shared by every task.
#[derive(Debug, Default)]
pub struct FailureInjector {
    armed: Mutex<Option<(PlannedFailure, u64)>>,
    fired: Mutex<Vec<PlannedFailure>>,
}

impl FailureInjector {
    /// Arms `plan` (or nothing) for the next attempt.
    pub fn arm(&self, plan: Option<PlannedFailure>) {
        *self.armed.lock() = plan.map(|p| (p, p.countdown));
    }

    /// A task passes `point`: fails when the armed countdown runs out.
    ///
    /// # Errors
    /// [`ErrorKind::Internal`] "injected failure" naming the point.
    pub fn hit(&self, point: FailPoint) -> Result<()> {
        let mut armed = self.armed.lock();
        let Some((plan, remaining)) = armed.as_mut() else {
            return Ok(());
        };
        if plan.point != point {
            return Ok(());
        }
        *remaining = remaining.saturating_sub(1);
        if *remaining > 0 {
            return Ok(());
        }
        if let Some((fired, _)) = armed.take() {
            self.fired.lock().push(fired);
        }
        Err(Error::new(ErrorKind::Internal, "injected failure")
            .with_context("point", format!("{point:?}")))
    }

    /// Whether the armed failure is at a point every checkpoint passes and has not fired
    /// yet: the attempt goes on checkpointing instead of ending, so that it fires.
    pub fn armed_at_checkpoints(&self) -> bool {
        self.armed
            .lock()
            .is_some_and(|(plan, _)| plan.point.at_checkpoints())
    }

    /// The failures that fired so far.
    pub fn fired(&self) -> Vec<PlannedFailure> {
        self.fired.lock().clone()
    }
}
