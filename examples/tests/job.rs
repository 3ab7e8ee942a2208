//! The end-to-end job under injected failures: exactly once under EXACTLY_ONCE every
//! time, nothing lost under AT_LEAST_ONCE, and the restart strategy in charge.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use cornerstone_backend_api::ErrorKind;
use cornerstone_coordinator::{CheckpointingMode, RestartStrategy};
use cornerstone_examples::{BackendChoice, FailPoint, JobConfig, plan_failures, run_job};

#[test]
fn exactly_once_under_failures_at_many_points() {
    let mut fired = BTreeSet::new();
    let mut certain_points = BTreeSet::new();
    let (mut restored, mut certain_restored) = (0, 0);
    for seed in 0..16 {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig {
            seed,
            failures: 3,
            ..JobConfig::small(dir.path())
        };
        let report = run_job(&config).unwrap();
        assert!(report.output.exactly_once(), "seed {seed}:\n{report}");
        assert_eq!(report.restarts as usize, report.failures.len(), "{report}");
        let certain = common::check_plan_followed(&report);
        assert!(report.failures.len() >= certain.fired, "{report}");
        let planned = &report.planned;
        fired.extend(
            planned
                .iter()
                .take(report.failures.len())
                .map(|p| format!("{:?}", p.point)),
        );
        certain_points.extend(
            planned
                .iter()
                .take(certain.fired)
                .map(|p| format!("{:?}", p.point)),
        );
        restored += report
            .failures
            .iter()
            .filter(|f| f.restored_from.is_some())
            .count();
        certain_restored += certain.restored;
    }
    eprintln!("failures at {fired:?}, {restored} restores");
    // The seeds make it certain that failures fire at many different points and that
    // restores really run: the bounds are what the plans guarantee, met on any machine.
    assert!(
        certain_points.len() >= 5,
        "certain failure points: {certain_points:?}"
    );
    assert!(
        certain_restored >= 10,
        "only {certain_restored} certain restores"
    );
    assert!(fired.is_superset(&certain_points), "{fired:?}");
    assert!(restored >= certain_restored, "only {restored} restores");
}

#[test]
fn exactly_once_on_the_memory_backend_too() {
    for seed in [100, 101, 102] {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig {
            seed,
            failures: 3,
            backend: BackendChoice::Memory,
            ..JobConfig::small(dir.path())
        };
        let report = run_job(&config).unwrap();
        assert!(report.output.exactly_once(), "seed {seed}:\n{report}");
        common::check_plan_followed(&report);
    }
}

#[test]
fn exactly_once_with_incremental_fs_checkpoints() {
    let mut restored = 0;
    for seed in [200, 201, 202, 203] {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig {
            seed,
            failures: 3,
            incremental: true,
            ..JobConfig::small(dir.path())
        };
        let report = run_job(&config).unwrap();
        assert!(report.output.exactly_once(), "seed {seed}:\n{report}");
        assert!(report.stats.completed > 0, "{report}");
        restored += common::check_plan_followed(&report).restored;
    }
    // The plans of these seeds make restores with deltas in the chain certain.
    assert!(
        restored >= 4,
        "only {restored} certain restores from a checkpoint"
    );
}

#[test]
fn the_memory_backend_refuses_incremental_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let config = JobConfig {
        backend: BackendChoice::Memory,
        incremental: true,
        ..JobConfig::small(dir.path())
    };
    let err = run_job(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("--backend fs --incremental"),
        "{err}"
    );
}

#[cfg(feature = "rocksdb")]
#[test]
fn exactly_once_on_the_rocksdb_backend_too() {
    for seed in [300, 301] {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig {
            seed,
            failures: 3,
            backend: BackendChoice::RocksDb,
            ..JobConfig::small(dir.path())
        };
        let report = run_job(&config).unwrap();
        assert!(report.output.exactly_once(), "seed {seed}:\n{report}");
        assert!(report.stats.completed > 0, "{report}");
        common::check_plan_followed(&report);
    }
}

#[cfg(not(feature = "rocksdb"))]
#[test]
fn rocksdb_without_the_feature_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = JobConfig {
        backend: BackendChoice::RocksDb,
        ..JobConfig::small(dir.path())
    };
    let err = run_job(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("--features rocksdb"), "{err}");
}

#[test]
fn at_least_once_never_loses_a_record() {
    for seed in 200..206 {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig {
            seed,
            failures: 3,
            mode: CheckpointingMode::AtLeastOnce,
            ..JobConfig::small(dir.path())
        };
        let report = run_job(&config).unwrap();
        assert!(report.output.nothing_lost(), "seed {seed}:\n{report}");
        common::check_plan_followed(&report);
        assert!(report.to_string().contains("AT_LEAST_ONCE"));
    }
}

#[test]
fn without_restarts_the_first_failure_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    // Seed 2 plans its first failure at a source's 30th batch or earlier, which always
    // comes (each of the 4 splits emits 40 batches).
    let plan = plan_failures(2, 1, 4_000 * 2 * 2);
    assert_eq!(plan[0].point, FailPoint::SourceEmit);
    assert!(plan[0].countdown <= 30);
    let config = JobConfig {
        seed: 2,
        failures: 1,
        restart: RestartStrategy::None,
        ..JobConfig::small(dir.path())
    };
    let err = run_job(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.context("reason").unwrap().contains("none"), "{err}");
    assert!(
        err.context("failure").unwrap().contains("injected failure"),
        "{err}"
    );
}

#[test]
fn fixed_delay_attempts_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = JobConfig {
        seed: 5,
        failures: 3,
        restart: RestartStrategy::fixed_delay(1, std::time::Duration::from_millis(1)),
        ..JobConfig::small(dir.path())
    };
    match run_job(&config) {
        // The second planned failure fired: one restart was all the strategy had.
        Err(err) => assert!(
            err.context("reason")
                .unwrap()
                .contains("1 restart attempts"),
            "{err}"
        ),
        // Or the second attempt finished before its planned failure could fire.
        Ok(report) => {
            assert!(report.failures.len() <= 1, "{report}");
            assert!(report.output.exactly_once(), "{report}");
        }
    }
}

#[test]
fn a_fresh_run_replaces_the_previous_one_and_resume_of_a_finished_job_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let config = JobConfig {
        seed: 9,
        failures: 1,
        ..JobConfig::small(dir.path())
    };
    let first = run_job(&config).unwrap();
    assert!(first.output.exactly_once(), "{first}");
    let again = run_job(&config).unwrap();
    assert!(again.output.exactly_once(), "{again}");
    assert!(dir.path().join("wordcount").is_dir());
    // Resuming a job whose input is through restores the final checkpoint and adds nothing.
    let resumed = run_job(&JobConfig {
        resume: true,
        failures: 0,
        ..config
    })
    .unwrap();
    assert!(resumed.resumed_from.is_some(), "{resumed}");
    assert!(resumed.output.exactly_once(), "{resumed}");
}

#[test]
fn the_output_check_detects_duplicates_losses_and_undercounts() {
    use std::collections::BTreeMap;

    use cornerstone_examples::check_output;

    let dir = tempfile::tempdir().unwrap();
    let expected: BTreeMap<(u64, u64), u64> = [((1, 0), 3), ((2, 0), 4), ((3, 500), 1)].into();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("part-a", "1,0,3\n2,0,4\n");
    write("part-b", "3,500,1\n");
    std::fs::create_dir(dir.path().join(".pending")).unwrap();
    std::fs::write(dir.path().join(".pending/part-c"), "9,9,9\n").unwrap();
    let check = check_output(dir.path(), &expected).unwrap();
    assert!(check.exactly_once() && check.nothing_lost(), "{check:?}");
    // A duplicate (a replay committed twice): not exactly once, nothing lost.
    write("part-d", "2,0,4\n");
    let check = check_output(dir.path(), &expected).unwrap();
    assert!(!check.exactly_once() && check.nothing_lost(), "{check:?}");
    assert_eq!(check.duplicated, 1);
    // An inflated count (replayed records counted again): not exact, nothing lost.
    std::fs::remove_file(dir.path().join("part-d")).unwrap();
    write("part-d", "3,500,2\n");
    let check = check_output(dir.path(), &expected).unwrap();
    assert!(!check.exactly_once() && check.nothing_lost(), "{check:?}");
    // A lost transaction: missing results.
    std::fs::remove_file(dir.path().join("part-b")).unwrap();
    std::fs::remove_file(dir.path().join("part-d")).unwrap();
    let check = check_output(dir.path(), &expected).unwrap();
    assert!(!check.nothing_lost(), "{check:?}");
    assert_eq!(check.missing, vec![(3, 500)]);
    // An undercount (records lost inside a window).
    write("part-b", "3,500,0\n");
    let check = check_output(dir.path(), &expected).unwrap();
    assert_eq!(check.undercounted, vec![(3, 500)]);
    // Garbage is reported, not a panic.
    write("part-e", "not,a number\n");
    assert_eq!(check_output(dir.path(), &expected).unwrap().malformed, 1);
}

#[test]
fn a_failed_asynchronous_phase_declines_and_is_tolerated_up_to_the_limit() {
    // A seed whose first failure is in an asynchronous snapshot phase.
    let seed = (0..1_000)
        .find(|s| plan_failures(*s, 1, 4_000 * 2 * 2)[0].point == FailPoint::AsyncWrite)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tolerant = JobConfig {
        seed,
        failures: 1,
        tolerable_failed: 3,
        ..JobConfig::small(dir.path())
    };
    let report = run_job(&tolerant).unwrap();
    assert!(report.output.exactly_once(), "{report}");
    // The declined checkpoint failed; the job did not restart.
    assert_eq!(report.restarts, 0, "{report}");
    assert!(report.stats.failed >= 1, "{report}");
    // Without tolerance the same decline fails the job over.
    let strict = JobConfig {
        tolerable_failed: 0,
        ..tolerant
    };
    let report = run_job(&strict).unwrap();
    assert!(report.output.exactly_once(), "{report}");
    assert_eq!(report.restarts, 1, "{report}");
    assert!(report.failures[0].error.contains("tolerable"), "{report}");
}
