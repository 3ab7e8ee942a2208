//! The README job, small, as a test.
#![allow(clippy::unwrap_used)]

use cornerstone_examples::{JobConfig, run_rescale_job};

#[test]
fn every_count_survives_rescale_2_to_3() {
    let report = run_rescale_job(&JobConfig::small()).unwrap();
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
    let report = run_rescale_job(&config).unwrap();
    assert!(report.all_counts_survived(), "{report}");
    assert_eq!(report.restored_offsets.len(), 4);
}
