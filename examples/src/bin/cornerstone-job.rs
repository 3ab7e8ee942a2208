//! The README's main job: a keyed count on the memory backend at parallelism 2, a
//! checkpoint, and a restore at parallelism 3 that checks every count.

use std::process::ExitCode;

use cornerstone_examples::{JobConfig, run_rescale_job};

fn main() -> ExitCode {
    match run_rescale_job(&JobConfig::standard()) {
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
