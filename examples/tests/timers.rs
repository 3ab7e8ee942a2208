//! The counter's timers: windows fire from event-time timers (one per (key, window)
//! emitted), idle keys time out on processing-time timers, and the timers come back with
//! the keyed state on a restore, at another parallelism too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cornerstone_coordinator::RestartStrategy;
use cornerstone_examples::{
    BackendChoice, FailPoint, JobConfig, check_output, expected_counts, plan_failures, run_job,
};

#[test]
fn every_window_of_a_clean_run_fires_from_one_event_time_timer() {
    let backends = [
        BackendChoice::Fs,
        BackendChoice::Memory,
        #[cfg(feature = "rocksdb")]
        BackendChoice::RocksDb,
    ];
    for backend in backends {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig {
            failures: 0,
            backend,
            ..JobConfig::small(dir.path())
        };
        let report = run_job(&config).unwrap();
        assert!(report.output.exactly_once(), "{report}");
        // One timer per (key, window) result: no window fired another way, none twice.
        assert_eq!(
            report.timers.event_time_fired, report.output.expected as u64,
            "{report}"
        );
        assert_eq!(report.output.lines, report.output.expected, "{report}");
    }
}

#[test]
fn windows_fired_again_after_a_restore_are_committed_once() {
    let mut restored = 0;
    // Seed 14 plans its first failures after commits: its restores are certain.
    for seed in [5, 6, 14] {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig {
            seed,
            failures: 3,
            ..JobConfig::small(dir.path())
        };
        let report = run_job(&config).unwrap();
        assert!(report.output.exactly_once(), "seed {seed}:\n{report}");
        // Windows fired after an attempt's last checkpoint fire again after its restore:
        // the count is of every attempt.
        assert!(
            report.timers.event_time_fired >= report.output.lines as u64,
            "seed {seed}:\n{report}"
        );
        restored += common::check_plan_followed(&report).restored;
    }
    // Restores from a checkpoint really ran (the check of the plan asserts the certain
    // ones): their pending windows fired from restored timers (a count restored without
    // its timer would never be emitted).
    assert!(restored > 0, "no certain restore from a checkpoint");
}

#[test]
fn idle_keys_time_out_on_processing_time_timers() {
    let dir = tempfile::tempdir().unwrap();
    // A zero timeout: every key with records is idle as soon as the counter is between
    // messages, so processing-time timers fire whatever the machine's speed.
    let eager = JobConfig {
        failures: 0,
        idle_timeout: Duration::ZERO,
        ..JobConfig::small(dir.path())
    };
    let report = run_job(&eager).unwrap();
    assert!(report.output.exactly_once(), "{report}");
    let t = report.timers;
    assert!(t.idle_timeouts > 0, "{report}");
    assert!(t.processing_time_fired >= t.idle_timeouts, "{report}");
    // A key times out at most once per record.
    let records = eager.events_per_split * u64::from(eager.splits_per_input) * 2;
    assert!(t.idle_timeouts <= records, "{report}");
    assert_eq!(
        t.event_time_fired, report.output.expected as u64,
        "{report}"
    );

    // An hour: the run is over long before any key's timer is due.
    let patient = JobConfig {
        idle_timeout: Duration::from_secs(3_600),
        ..eager
    };
    let report = run_job(&patient).unwrap();
    assert!(report.output.exactly_once(), "{report}");
    assert_eq!(report.timers.processing_time_fired, 0, "{report}");
    assert_eq!(report.timers.idle_timeouts, 0, "{report}");
    assert_eq!(
        report.timers.event_time_fired, report.output.expected as u64,
        "{report}"
    );
}

#[test]
fn pending_window_timers_are_restored_at_another_parallelism() {
    // A failure at the sink's 120th to 250th of 320 results: some windows are through, the
    // checkpoint restored has others pending.
    let events = JobConfig::small("").events_per_split;
    let seed = (0..1_000)
        .find(|s| {
            let plan = plan_failures(*s, 1, events * 2 * 2)[0];
            plan.point == FailPoint::SinkWrite && (120..=250).contains(&plan.countdown)
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = JobConfig {
        seed,
        failures: 1,
        restart: RestartStrategy::None,
        ..JobConfig::small(dir.path())
    };
    run_job(&first).unwrap_err();
    let expected = expected_counts(
        first.splits_per_input,
        first.events_per_split,
        first.keys,
        first.window_ms,
    );
    let before = check_output(&first.output_dir(), &expected).unwrap();
    assert!(before.lines < before.expected, "{before:?}");

    // Resumed with three counters instead of two: each restores the timers of its key
    // groups. Windows counted before the checkpoint have no new first record to register a
    // timer again: only restored timers fire them.
    let resumed = run_job(&JobConfig {
        resume: true,
        failures: 0,
        counters: 3,
        ..first
    })
    .unwrap();
    assert!(resumed.resumed_from.is_some(), "{resumed}");
    assert!(resumed.output.exactly_once(), "{resumed}");
    let fired = resumed.timers.event_time_fired;
    assert!(fired > 0, "{resumed}");
    assert!(
        fired + before.lines as u64 <= before.expected as u64,
        "{fired} fired after the restore, {} lines were committed before:\n{resumed}",
        before.lines
    );
}

/// The numbers of the report's `timers:` line.
fn timer_line(report: &str) -> Vec<u64> {
    let line = report
        .lines()
        .find(|l| l.starts_with("timers: "))
        .unwrap_or_else(|| panic!("no timers line in the report:\n{report}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn the_binary_reports_the_timers_that_fired() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::run_exactly_once(
        common::job(dir.path(), 4_000, 40).args(["--idle-timeout-ms", "0"]),
        "a run with idle timeouts",
    );
    let numbers = timer_line(&report);
    let (event, processing, idle) = (numbers[0], numbers[1], numbers[2]);
    // 40 keys, one 5 s window: 40 results, each from its timer.
    assert_eq!(event, 40, "{report}");
    assert!(report.contains("output: 40 lines"), "{report}");
    assert!(idle > 0 && processing >= idle, "{report}");
}
