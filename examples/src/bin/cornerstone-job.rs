//! The README's main job: a keyed count on the memory backend at parallelism 2, a
//! checkpoint into a local checkpoint store, and a restore at parallelism 3 that checks
//! every count.
//!
//! Usage: `cornerstone-job [CHECKPOINT_DIR]` (default `cornerstone-data`).

use std::path::PathBuf;
use std::process::ExitCode;

use cornerstone_examples::{JobConfig, run_rescale_job};

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("cornerstone-data"), PathBuf::from);
    match run_rescale_job(&JobConfig::standard(), &dir) {
        Ok(report) => {
            println!("{report}");
            if report.all_counts_survived() {
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
