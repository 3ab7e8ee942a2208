//! Restart strategies on a manual clock.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cornerstone_backend_api::{ManualClock, SharedClock};
use cornerstone_coordinator::{RestartDecision, RestartStrategy};

fn clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(1_000_000);
    (c.clone(), Arc::new(c))
}

fn delay(d: RestartDecision) -> Duration {
    match d {
        RestartDecision::Restart { delay, .. } => delay,
        RestartDecision::Fail { reason } => panic!("failed: {reason}"),
    }
}

#[test]
fn defaults_come_from_the_seeds() {
    assert_eq!(RestartStrategy::default_for(false), RestartStrategy::None);
    assert_eq!(
        RestartStrategy::default_for(true),
        RestartStrategy::FixedDelay {
            attempts: 2_147_483_647,
            delay: Duration::from_secs(1)
        }
    );
}

#[test]
fn none_fails_on_the_first_failure() {
    let (_, c) = clock();
    let mut t = RestartStrategy::None.tracker(c);
    assert!(matches!(t.on_failure(), RestartDecision::Fail { .. }));
    assert_eq!(t.restarts(), 0);
}

#[test]
fn fixed_delay_grants_exactly_the_attempts() {
    let (_, c) = clock();
    let mut t = RestartStrategy::fixed_delay(3, Duration::from_secs(10)).tracker(c);
    for attempt in 1..=3 {
        assert_eq!(
            t.on_failure(),
            RestartDecision::Restart {
                delay: Duration::from_secs(10),
                attempt
            }
        );
    }
    let RestartDecision::Fail { reason } = t.on_failure() else {
        panic!("a fourth restart")
    };
    assert!(reason.contains("3 restart attempts"), "{reason}");
}

#[test]
fn failure_rate_counts_failures_within_the_interval() {
    // The seeds' example: 3 failures per 5 min, 10 s delay.
    let (manual, c) = clock();
    let mut t = RestartStrategy::failure_rate(3, Duration::from_secs(300), Duration::from_secs(10))
        .tracker(c);
    assert_eq!(delay(t.on_failure()), Duration::from_secs(10));
    manual.advance(60_000);
    assert_eq!(delay(t.on_failure()), Duration::from_secs(10));
    // Failures at +0 s, +60 s, +301 s: never three within 5 minutes.
    manual.advance(241_000);
    assert_eq!(delay(t.on_failure()), Duration::from_secs(10));
    // +361 s: the last three are +60 s, +301 s, +361 s, 301 s apart.
    manual.advance(60_000);
    assert_eq!(delay(t.on_failure()), Duration::from_secs(10));
    // +362 s: +301 s, +361 s, +362 s are within 5 minutes: the job fails.
    manual.advance(1_000);
    let RestartDecision::Fail { reason } = t.on_failure() else {
        panic!("a restart at the third failure within the interval")
    };
    assert!(reason.contains("3 failures within 300s"), "{reason}");
    assert_eq!(t.restarts(), 4);
}

#[test]
fn exponential_delay_grows_caps_and_resets() {
    let (manual, c) = clock();
    let mut t = RestartStrategy::ExponentialDelay {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(1_000),
        multiplier: 2.0,
        reset_threshold: Duration::from_secs(60),
        jitter: 0.0,
    }
    .tracker(c);
    let delays: Vec<u128> = (0..6)
        .map(|_| {
            manual.advance(10);
            delay(t.on_failure()).as_millis()
        })
        .collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
    manual.advance(60_000);
    assert_eq!(delay(t.on_failure()), Duration::from_millis(100));
    assert_eq!(t.restarts(), 7);
}

#[test]
fn exponential_jitter_stays_within_its_factor_and_is_reproducible() {
    let strategy = RestartStrategy::exponential_delay();
    let run = || {
        let (_, c) = clock();
        let mut t = strategy.tracker(c);
        (0..4).map(|_| delay(t.on_failure())).collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    for (i, d) in a.iter().enumerate() {
        let base = 1_000.0 * 2f64.powi(i as i32);
        let ms = d.as_secs_f64() * 1_000.0;
        assert!(
            ms >= base * 0.9 - 1.0 && ms <= base * 1.1 + 1.0,
            "{i}: {ms} vs {base}"
        );
    }
}
