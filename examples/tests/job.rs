//! The README job, small, as a test.
#![allow(clippy::unwrap_used)]

use cornerstone_examples::{JobConfig, run_rescale_job};

#[test]
fn every_count_survives_rescale_2_to_3() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_rescale_job(&JobConfig::small(), dir.path()).unwrap();
    assert!(report.all_counts_survived(), "{report}");
    assert_eq!(report.keys_per_subtask.len(), 3);
    assert_eq!(report.keys_per_subtask.iter().sum::<usize>(), 500);
    assert_eq!(report.restored_offsets, vec![(0, 10_000), (1, 10_000)]);
}

#[test]
fn every_count_survives_rescale_4_to_1() {
    let config = JobConfig {
        parallelism_before: 4,
        parallelism_after: 1,
        ..JobConfig::small()
    };
    let dir = tempfile::tempdir().unwrap();
    let report = run_rescale_job(&config, dir.path()).unwrap();
    // A second run in the same directory replaces the first.
    let again = run_rescale_job(&config, dir.path()).unwrap();
    assert!(again.all_counts_survived(), "{again}");
    assert!(dir.path().join("wordcount/chk-1/_metadata").is_file());
    assert!(report.all_counts_survived(), "{report}");
    assert_eq!(report.restored_offsets.len(), 4);
}
