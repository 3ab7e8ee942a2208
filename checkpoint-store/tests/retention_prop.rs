//! Retention property test: random sequences of complete / abort / subsume / restart with
//! shared files reused across checkpoints never delete a referenced file and leave no orphan,
//! in memory and on S3 (SeaweedFS).
#![allow(clippy::unwrap_used, clippy::explicit_counter_loop, missing_docs)]

use std::collections::BTreeSet;

use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{CheckpointId, StateScope, StreamStateHandle};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, inspect, layout,
};
use cornerstone_testkit::s3::{SeaweedFs, unique_prefix};
use cornerstone_testkit::store::{all_files, memory_store, state_of, write_stream};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

#[derive(Debug, Clone)]
enum Op {
    /// Complete a checkpoint with `new_shared` new shared files, reusing the shared files of
    /// the latest retained checkpoint selected by `reuse` (bit mask).
    Complete { new_shared: u8, reuse: u8 },
    /// Write files, then abort.
    Abort,
    /// Write files, then drop without commit or abort (a failed checkpoint).
    Drop,
    /// Restart: reopen the store from storage.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, any::<u8>()).prop_map(|(new_shared, reuse)| Op::Complete { new_shared, reuse }),
        1 => Just(Op::Abort),
        1 => Just(Op::Drop),
        1 => Just(Op::Restart),
    ]
}

/// The property, on one (empty) store.
fn check(store: &CheckpointStore, num_retained: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = CheckpointConfig::default()
        .inline_threshold(0)
        .num_retained(num_retained);
    let mut job = CompletedCheckpointStore::open(store, "job", config.clone()).unwrap();
    let mut next_id = 1u64;
    for op in ops {
        match op {
            Op::Complete { new_shared, reuse } => {
                let reusable: Vec<StreamStateHandle> = job
                    .latest()
                    .map(|c| {
                        c.metadata
                            .streams()
                            .into_iter()
                            .filter(|s| s.file().is_some_and(|f| f.scope == StateScope::Shared))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let mut p = job.begin_checkpoint(CheckpointId(next_id)).unwrap();
                let f = p.stream_factory();
                let mut streams = vec![write_stream(
                    &*f,
                    StateScope::Exclusive,
                    &next_id.to_be_bytes(),
                )];
                for i in 0..new_shared {
                    streams.push(write_stream(&*f, StateScope::Shared, &[i; 3]));
                }
                streams.extend(
                    reusable
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| reuse >> (i % 8) & 1 == 1)
                        .map(|(_, s)| s),
                );
                // An unreferenced upload (a dropped stream) must not survive either.
                write_stream(&*f, StateScope::Shared, b"unreferenced");
                p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(streams))
                    .unwrap();
                p.commit().unwrap();
            }
            Op::Abort | Op::Drop => {
                let p = job.begin_checkpoint(CheckpointId(next_id)).unwrap();
                let f = p.stream_factory();
                write_stream(&*f, StateScope::Exclusive, b"x");
                write_stream(&*f, StateScope::Shared, b"y");
                if matches!(op, Op::Abort) {
                    p.abort().unwrap()
                } else {
                    drop(p)
                }
            }
            Op::Restart => {
                job = CompletedCheckpointStore::open(store, "job", config.clone()).unwrap();
            }
        }
        next_id += 1;

        // Invariant: every file of every retained checkpoint is intact.
        let retained = job.checkpoints();
        prop_assert!(retained.len() <= num_retained);
        for c in &retained {
            let reader = store.reader(&c.base_dir);
            for s in c.metadata.streams() {
                prop_assert!(
                    read_stream(s, Some(&reader)).is_ok(),
                    "lost {:?} of checkpoint {}",
                    s,
                    c.id()
                );
            }
        }
        // Invariant: no orphan — every file in the job dir is _metadata or referenced.
        let referenced: BTreeSet<String> = retained
            .iter()
            .flat_map(|c| {
                c.metadata
                    .files()
                    .into_iter()
                    .map(|f| format!("{}{}", c.base_dir, f.path))
                    .collect::<Vec<_>>()
            })
            .chain(retained.iter().map(|c| c.metadata_path.clone()))
            .collect();
        // The lease (`_lease/`) is the writer's, not a checkpoint's.
        let lease_dir = cornerstone_checkpoint_store::lease::lease_dir("job/");
        for f in all_files(store, "job/") {
            if f.starts_with(&lease_dir) {
                continue;
            }
            prop_assert!(referenced.contains(&f), "orphan {f}");
        }
        prop_assert!(
            inspect::gc_candidates(store, "job", &inspect::GcOptions::new(0).with_min_age_ms(0))
                .unwrap()
                .candidates
                .is_empty()
        );
        prop_assert_eq!(
            store.resolve("job").ok().map(|c| c.id()),
            retained.last().map(|c| c.id())
        );
        let _ = layout::METADATA_FILE;
    }
    Ok(())
}

fn case() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (1usize..4, proptest::collection::vec(op(), 1..25))
}

#[test]
fn retention_never_deletes_referenced_files_and_leaves_no_orphans_memory() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&case(), |(num_retained, ops)| {
            check(&memory_store(), num_retained, ops)
        })
        .unwrap();
}

/// Fewer cases than in memory: each costs a few hundred requests to the server.
#[test]
fn retention_never_deletes_referenced_files_and_leaves_no_orphans_s3() {
    let test = "retention_prop::s3";
    let Some(server) = SeaweedFs::shared(test) else {
        return;
    };
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 8,
        ..ProptestConfig::default()
    });
    runner
        .run(&case(), |(num_retained, ops)| {
            check(&server.store(&unique_prefix(test)), num_retained, ops)
        })
        .unwrap();
}
