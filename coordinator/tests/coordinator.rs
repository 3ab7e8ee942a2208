//! The checkpoint coordinator on a manual clock, over a real local checkpoint store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::{
    CheckpointId, CheckpointStreamFactory, ErrorKind, ManualClock, SharedClock, StateScope,
    StreamStateHandle, SubtaskState,
};
use cornerstone_checkpoint_store::{CheckpointStore, ClaimMode, CleanupPolicy, JobStatus};
use cornerstone_coordinator::{
    AckOutcome, CheckpointCoordinator, CheckpointListener, CheckpointStatus, CoordinatorConfig,
    OperatorSpec, RestoredCheckpoint, SkipReason, SubtaskMetrics, TaskId, TriggerResult,
    TriggeredCheckpoint,
};
use parking_lot::Mutex;

#[derive(Debug, Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl CheckpointListener for Recorder {
    fn notify_checkpoint_complete(&self, id: CheckpointId) {
        self.events.lock().push(format!("complete {id}"));
    }
    fn notify_checkpoint_aborted(&self, id: CheckpointId, _reason: &str) {
        self.events.lock().push(format!("aborted {id}"));
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    coordinator: CheckpointCoordinator,
    recorder: Arc<Recorder>,
}

fn operators() -> Vec<OperatorSpec> {
    vec![
        OperatorSpec::new("source", "Source", 2, 128),
        OperatorSpec::new("sink", "Sink", 1, 128),
    ]
}

fn fixture(config: CoordinatorConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let clock = ManualClock::new(1_000);
    let coordinator = CheckpointCoordinator::open(
        &store,
        "job",
        config,
        operators(),
        Arc::new(clock.clone()) as SharedClock,
    )
    .unwrap();
    let recorder = Arc::new(Recorder::default());
    coordinator.set_listeners(vec![recorder.clone() as Arc<dyn CheckpointListener>]);
    Fixture {
        dir,
        clock,
        coordinator,
        recorder,
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn tasks() -> Vec<TaskId> {
    vec![
        TaskId::new("source", 0),
        TaskId::new("source", 1),
        TaskId::new("sink", 0),
    ]
}

/// Real operator state written through the checkpoint's streams.
fn state_of(t: &TriggeredCheckpoint, value: u64) -> SubtaskState {
    let backend = OperatorStateBackend::new();
    backend
        .list_state::<u64>("offsets")
        .unwrap()
        .add_all((0..5_000).map(|i| i + value));
    backend.snapshot(t.id).write(&*t.streams).unwrap()
}

/// The `offsets` operator state of one subtask in a restored checkpoint.
fn offsets(restored: &RestoredCheckpoint, operator: &str, subtask: u32) -> Vec<u64> {
    let handles = &restored
        .checkpoint
        .metadata
        .operator(operator)
        .unwrap()
        .subtasks[&subtask]
        .operator;
    let op = OperatorStateBackend::restore(handles, Some(&*restored.reader)).unwrap();
    op.list_state::<u64>("offsets").unwrap().get()
}

fn ack_all(f: &Fixture, t: &TriggeredCheckpoint) -> AckOutcome {
    let mut last = None;
    for (i, task) in tasks().iter().enumerate() {
        last = Some(
            f.coordinator
                .acknowledge(t.id, task, state_of(t, i as u64), SubtaskMetrics::default())
                .unwrap(),
        );
    }
    last.unwrap()
}

fn trigger(f: &Fixture) -> TriggeredCheckpoint {
    trigger_on(&f.coordinator)
}

fn trigger_on(coordinator: &CheckpointCoordinator) -> TriggeredCheckpoint {
    match coordinator.trigger().unwrap() {
        TriggerResult::Triggered(t) => t,
        TriggerResult::Skipped(r) => panic!("skipped: {r}"),
        TriggerResult::Failed { id, error } => panic!("{id} could not begin: {error}"),
    }
}

#[test]
fn triggers_periodically_collects_acks_commits_and_notifies() {
    let f = fixture(CoordinatorConfig::every(Duration::from_millis(500)).num_retained(2));
    assert!(matches!(
        f.coordinator.trigger_if_due().unwrap(),
        TriggerResult::Skipped(SkipReason::NotDue { .. })
    ));
    f.clock.advance(500);
    let t = f.coordinator.trigger_if_due().unwrap().triggered().unwrap();
    assert_eq!(t.id, CheckpointId(1));
    // Not complete until every task acknowledged.
    let first = f
        .coordinator
        .acknowledge(
            t.id,
            &TaskId::new("source", 0),
            state_of(&t, 0),
            SubtaskMetrics::default(),
        )
        .unwrap();
    assert!(matches!(first, AckOutcome::Pending { remaining: 2 }));
    assert!(f.recorder.events.lock().is_empty());
    // A duplicate acknowledgement is discarded.
    assert!(matches!(
        f.coordinator
            .acknowledge(
                t.id,
                &TaskId::new("source", 0),
                SubtaskState::default(),
                SubtaskMetrics::default()
            )
            .unwrap(),
        AckOutcome::Discarded
    ));
    f.clock.advance(7);
    for task in &tasks()[1..] {
        let outcome = f
            .coordinator
            .acknowledge(
                t.id,
                task,
                state_of(&t, 1),
                SubtaskMetrics {
                    sync_duration: Duration::from_micros(3),
                    ..SubtaskMetrics::default()
                },
            )
            .unwrap();
        if task.operator == "sink" {
            let AckOutcome::Completed(done) = outcome else {
                panic!("expected completion, got {outcome:?}")
            };
            assert_eq!(done.metadata_path, "job/chk-1/_metadata");
            assert_eq!(done.metadata.operators.len(), 2);
        }
    }
    assert_eq!(*f.recorder.events.lock(), vec!["complete 1".to_string()]);
    let stats = f.coordinator.stats();
    assert_eq!(
        (stats.completed, stats.failed, stats.in_progress),
        (1, 0, 0)
    );
    let c = stats.latest_completed().unwrap();
    assert_eq!(c.subtasks.len(), 3);
    assert_eq!(c.end_to_end_duration, Duration::from_millis(7));
    assert!(c.state_size > 3 * 5_000);
    assert_eq!(c.max_sync_duration(), Duration::from_micros(3));
    // The checkpoint is in the store, and the next periodic one is an interval later.
    assert!(f.dir.path().join("job/chk-1/_metadata").is_file());
    f.clock.advance(499);
    assert!(
        f.coordinator
            .trigger_if_due()
            .unwrap()
            .triggered()
            .is_some()
    );
}

#[test]
fn an_unknown_task_is_an_error_naming_it() {
    let f = fixture(CoordinatorConfig::default());
    let t = trigger(&f);
    let err = f
        .coordinator
        .acknowledge(
            t.id,
            &TaskId::new("nope", 3),
            SubtaskState::default(),
            SubtaskMetrics::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.context("task"), Some("nope#3"));
    let err = f
        .coordinator
        .acknowledge(
            t.id,
            &TaskId::new("sink", 1),
            SubtaskState::default(),
            SubtaskMetrics::default(),
        )
        .unwrap_err();
    assert_eq!(err.context("task"), Some("sink#1"));
}

#[test]
fn timeout_aborts_the_checkpoint_and_deletes_its_files() {
    let f = fixture(
        CoordinatorConfig::every(Duration::from_millis(100))
            .timeout(Duration::from_millis(1_000))
            .tolerable_failed(5),
    );
    let t = trigger(&f);
    // Two of three tasks write and acknowledge; the sink never does.
    for task in &tasks()[..2] {
        f.coordinator
            .acknowledge(t.id, task, state_of(&t, 0), SubtaskMetrics::default())
            .unwrap();
    }
    f.clock.advance(999);
    assert!(f.coordinator.check_timeouts().unwrap().is_empty());
    f.clock.advance(1);
    assert_eq!(f.coordinator.check_timeouts().unwrap(), vec![t.id]);
    assert_eq!(*f.recorder.events.lock(), vec!["aborted 1".to_string()]);
    let stats = f.coordinator.stats();
    assert_eq!(
        (stats.completed, stats.failed, stats.in_progress),
        (0, 1, 0)
    );
    let CheckpointStatus::Failed { reason } = &stats.history[0].status else {
        panic!("not failed")
    };
    assert!(
        reason.contains("expired") && reason.contains("sink#0"),
        "{reason}"
    );
    // The aborted checkpoint left no files; a late acknowledgement is discarded.
    let leftovers = files_under(&f.dir.path().join("job/chk-1"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(matches!(
        f.coordinator
            .acknowledge(
                t.id,
                &TaskId::new("sink", 0),
                SubtaskState::default(),
                SubtaskMetrics::default()
            )
            .unwrap(),
        AckOutcome::Discarded
    ));
    // The next checkpoint gets the next id and completes.
    let t2 = trigger(&f);
    assert_eq!(t2.id, CheckpointId(2));
    assert!(matches!(ack_all(&f, &t2), AckOutcome::Completed(_)));
}

#[test]
fn min_pause_is_measured_from_the_last_completion() {
    let f = fixture(
        CoordinatorConfig::every(Duration::from_millis(100))
            .min_pause(Duration::from_millis(500))
            .max_concurrent(4),
    );
    assert_eq!(f.coordinator.config().effective_max_concurrent(), 1);
    let t = trigger(&f);
    f.clock.advance(50);
    assert!(matches!(ack_all(&f, &t), AckOutcome::Completed(_)));
    f.clock.advance(100); // the interval has passed, the pause has not
    match f.coordinator.trigger_if_due().unwrap() {
        TriggerResult::Skipped(SkipReason::MinPause { remaining }) => {
            assert_eq!(remaining, Duration::from_millis(400));
        }
        other => panic!("expected a min-pause skip, got {other:?}"),
    }
    f.clock.advance(399);
    assert!(
        f.coordinator
            .trigger_if_due()
            .unwrap()
            .triggered()
            .is_none()
    );
    f.clock.advance(1);
    assert!(
        f.coordinator
            .trigger_if_due()
            .unwrap()
            .triggered()
            .is_some()
    );
}

#[test]
fn max_concurrent_limits_checkpoints_in_progress() {
    let f = fixture(CoordinatorConfig::every(Duration::from_millis(10)).max_concurrent(2));
    let a = trigger(&f);
    let b = trigger(&f);
    match f.coordinator.trigger().unwrap() {
        TriggerResult::Skipped(SkipReason::TooManyConcurrent { in_progress, max }) => {
            assert_eq!((in_progress, max), (2, 2));
        }
        other => panic!("expected a skip, got {other:?}"),
    }
    assert_eq!(f.coordinator.pending_ids(), vec![a.id, b.id]);
    assert_eq!(f.coordinator.stats().in_progress, 2);
    // Completing the newer one first is fine; then there is room again.
    assert!(matches!(ack_all(&f, &b), AckOutcome::Completed(_)));
    assert!(f.coordinator.trigger().unwrap().triggered().is_some());
}

#[test]
fn tolerable_failures_then_the_job_fails() {
    let f = fixture(
        CoordinatorConfig::every(Duration::from_millis(10))
            .timeout(Duration::from_millis(100))
            .tolerable_failed(2),
    );
    let task = TaskId::new("source", 1);
    // Two declines are tolerated...
    for _ in 0..2 {
        let t = trigger(&f);
        f.coordinator
            .decline(t.id, &task, "snapshot failed")
            .unwrap();
    }
    // ...a success resets the count...
    let t = trigger(&f);
    assert!(matches!(ack_all(&f, &t), AckOutcome::Completed(_)));
    for _ in 0..2 {
        let t = trigger(&f);
        f.coordinator
            .decline(t.id, &task, "snapshot failed")
            .unwrap();
    }
    // ...and the third failure in a row (here a timeout) fails the job.
    let t = trigger(&f);
    f.clock.advance(100);
    let err = f.coordinator.check_timeouts().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    assert_eq!(err.context("tolerable"), Some("2"));
    assert_eq!(err.context("checkpoint"), Some(t.id.to_string().as_str()));
    let stats = f.coordinator.stats();
    assert_eq!((stats.completed, stats.failed), (1, 5));
    // Aborts of a failover do not count.
    for _ in 0..5 {
        trigger(&f);
        f.coordinator.abort_pending("failover");
    }
    let t = trigger(&f);
    f.coordinator.decline(t.id, &task, "one").unwrap();
}

#[test]
fn restore_continues_ids_and_shutdown_applies_the_cleanup_policy() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(0));
    let config = CoordinatorConfig::every(Duration::from_millis(10))
        .num_retained(2)
        .cleanup(CleanupPolicy::RetainOnCancellation);
    {
        let f = Fixture {
            coordinator: CheckpointCoordinator::open(
                &store,
                "job",
                config.clone(),
                operators(),
                clock.clone(),
            )
            .unwrap(),
            dir: tempfile::tempdir().unwrap(),
            clock: ManualClock::new(0),
            recorder: Arc::new(Recorder::default()),
        };
        for _ in 0..3 {
            let t = trigger(&f);
            assert!(matches!(ack_all(&f, &t), AckOutcome::Completed(_)));
        }
        // A fourth checkpoint has written state when the process dies (no cleanup runs).
        let t = trigger(&f);
        state_of(&t, 9);
        let Fixture { coordinator, .. } = f;
        std::mem::forget(coordinator);
    }
    assert!(dir.path().join("job/chk-4").is_dir());
    assert!(!dir.path().join("job/chk-4/_metadata").exists());
    // A new process: recovers checkpoints 2 and 3, restores 3, continues after chk-4/.
    let coordinator =
        CheckpointCoordinator::open(&store, "job", config, operators(), clock).unwrap();
    let restored = coordinator.restore_latest().unwrap().unwrap();
    assert_eq!(restored.checkpoint.id(), CheckpointId(3));
    assert_eq!(coordinator.stats().restored, 1);
    assert_eq!(offsets(&restored, "sink", 0).len(), 5_000);
    // Checkpoint 4 was in progress (its directory may exist): the next id is above it.
    let t = coordinator.trigger().unwrap().triggered().unwrap();
    assert_eq!(t.id, CheckpointId(5));
    coordinator.shutdown(JobStatus::Cancelled).unwrap();
    assert!(matches!(
        coordinator.trigger().unwrap(),
        TriggerResult::Skipped(SkipReason::ShutDown)
    ));
    // RetainOnCancellation kept the retained checkpoints.
    assert!(dir.path().join("job/chk-3/_metadata").is_file());
    assert!(dir.path().join("job/chk-2/_metadata").is_file());
    assert!(!dir.path().join("job/chk-1/_metadata").exists());
}

#[test]
fn bad_configuration_is_rejected_naming_the_knob() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(0));
    let err = CheckpointCoordinator::open(
        &store,
        "job",
        CoordinatorConfig::every(Duration::ZERO),
        operators(),
        clock.clone(),
    )
    .unwrap_err();
    assert_eq!(err.context("knob"), Some("interval"));
    let err = CheckpointCoordinator::open(
        &store,
        "job",
        CoordinatorConfig::default().max_concurrent(0),
        operators(),
        clock.clone(),
    )
    .unwrap_err();
    assert_eq!(err.context("knob"), Some("max_concurrent"));
    let err =
        CheckpointCoordinator::open(&store, "job", CoordinatorConfig::default(), vec![], clock)
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn works_on_the_opendal_memory_service_too() {
    let store = CheckpointStore::from_url("memory://", std::iter::empty::<(&str, &str)>()).unwrap();
    let clock = ManualClock::new(0);
    let coordinator = CheckpointCoordinator::open(
        &store,
        "job",
        CoordinatorConfig::every(Duration::from_millis(10)).num_retained(2),
        operators(),
        Arc::new(clock.clone()) as SharedClock,
    )
    .unwrap();
    for round in 1..=3u64 {
        clock.advance(10);
        let t = coordinator.trigger_if_due().unwrap().triggered().unwrap();
        for task in tasks() {
            coordinator
                .acknowledge(t.id, &task, state_of(&t, round), SubtaskMetrics::default())
                .unwrap();
        }
    }
    assert_eq!(
        coordinator.checkpoint_store().checkpoint_ids(),
        vec![CheckpointId(2), CheckpointId(3)]
    );
    let restored = coordinator.restore_latest().unwrap().unwrap();
    // The state of the third round (its first element is the round).
    assert_eq!(offsets(&restored, "source", 1)[0], 3);
}

/// Writes a 30 KiB exclusive file (above the 20 KiB inline threshold) through the
/// checkpoint's streams; returns its path on disk.
fn write_big_file(f: &Fixture, t: &TriggeredCheckpoint) -> std::path::PathBuf {
    use std::io::Write as _;
    let mut out = t.streams.create(StateScope::Exclusive).unwrap();
    out.write_all(&[7u8; 30 * 1024]).unwrap();
    let StreamStateHandle::File(file) = out.close().unwrap() else {
        panic!("expected a file handle")
    };
    let path = f.dir.path().join("job").join(&file.path);
    assert!(path.is_file(), "{path:?}");
    path
}

#[test]
fn completing_a_checkpoint_aborts_older_pending_ones_without_counting_a_failure() {
    // No failure tolerated: a subsumed checkpoint counted as a failure would fail the job.
    let f = fixture(
        CoordinatorConfig::every(Duration::from_millis(10))
            .max_concurrent(3)
            .tolerable_failed(0),
    );
    let t1 = trigger(&f);
    let t2 = trigger(&f);
    let t3 = trigger(&f);
    let big = write_big_file(&f, &t1);
    // One task of checkpoint 1 acknowledged (its state is in files of chk-1/ too).
    assert!(matches!(
        f.coordinator
            .acknowledge(
                t1.id,
                &TaskId::new("source", 0),
                state_of(&t1, 0),
                SubtaskMetrics::default()
            )
            .unwrap(),
        AckOutcome::Pending { remaining: 2 }
    ));
    assert!(!files_under(&f.dir.path().join("job/chk-1")).is_empty());

    assert!(matches!(ack_all(&f, &t2), AckOutcome::Completed(_)));
    assert_eq!(
        *f.recorder.events.lock(),
        vec!["aborted 1".to_string(), "complete 2".to_string()],
        "checkpoint 1 must be aborted (before 2's completion is notified)"
    );
    // Checkpoint 3 is newer: still pending.
    assert_eq!(f.coordinator.pending_ids(), vec![t3.id]);
    // Checkpoint 1's files are gone.
    assert!(!big.exists(), "{big:?} of the subsumed checkpoint is left");
    let leftovers = files_under(&f.dir.path().join("job/chk-1"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Late acknowledgements of checkpoint 1 are discarded; it never completes.
    for task in &tasks()[1..] {
        let outcome = f
            .coordinator
            .acknowledge(t1.id, task, state_of(&t1, 1), SubtaskMetrics::default())
            .unwrap();
        assert!(matches!(outcome, AckOutcome::Discarded), "{outcome:?}");
    }
    // Subsumed, not failed: the statistics say so.
    let stats = f.coordinator.stats();
    let s1 = stats.history.iter().find(|c| c.id == t1.id).unwrap();
    let CheckpointStatus::Failed { reason } = &s1.status else {
        panic!("checkpoint 1 is {:?}", s1.status)
    };
    assert!(
        reason.contains("subsumed") && reason.contains('2'),
        "{reason}"
    );
    assert_eq!(stats.completed, 1);
    // Then 3 completes normally, once.
    assert!(matches!(ack_all(&f, &t3), AckOutcome::Completed(_)));
    assert_eq!(
        *f.recorder.events.lock(),
        vec![
            "aborted 1".to_string(),
            "complete 2".to_string(),
            "complete 3".to_string()
        ]
    );
    // The latest checkpoint restores.
    let restored = f.coordinator.restore_latest().unwrap().unwrap();
    assert_eq!(restored.checkpoint.id(), t3.id);
    assert_eq!(offsets(&restored, "source", 0).len(), 5_000);
}

#[test]
fn subsumed_checkpoint_leaves_the_completed_one_restorable() {
    let f = fixture(CoordinatorConfig::every(Duration::from_millis(10)).max_concurrent(2));
    let t1 = trigger(&f);
    let t2 = trigger(&f);
    write_big_file(&f, &t1);
    assert!(matches!(ack_all(&f, &t2), AckOutcome::Completed(_)));
    // Acknowledging all of checkpoint 1 afterwards neither completes it nor errs.
    for task in tasks() {
        let outcome = f
            .coordinator
            .acknowledge(
                t1.id,
                &task,
                SubtaskState::default(),
                SubtaskMetrics::default(),
            )
            .unwrap();
        assert!(matches!(outcome, AckOutcome::Discarded), "{outcome:?}");
    }
    assert!(!f.dir.path().join("job/chk-1").exists());
    assert!(f.dir.path().join("job/chk-2/_metadata").is_file());
    let restored = f.coordinator.restore_latest().unwrap().unwrap();
    assert_eq!(restored.checkpoint.id(), t2.id);
    assert_eq!(offsets(&restored, "sink", 0)[0], 2);
    assert_eq!(*f.recorder.events.lock(), vec!["aborted 1", "complete 2"]);
}

#[test]
fn racing_completions_notify_in_id_order_once() {
    for round in 0..40 {
        let f = fixture(CoordinatorConfig::every(Duration::from_millis(10)).max_concurrent(2));
        let t1 = trigger(&f);
        let t2 = trigger(&f);
        let (last, others) = tasks()
            .split_last()
            .map(|(l, o)| (l.clone(), o.to_vec()))
            .unwrap();
        for t in [&t1, &t2] {
            for task in &others {
                f.coordinator
                    .acknowledge(
                        t.id,
                        task,
                        state_of(t, t.id.get()),
                        SubtaskMetrics::default(),
                    )
                    .unwrap();
            }
        }
        let start = std::sync::Barrier::new(2);
        let outcomes: Vec<AckOutcome> = std::thread::scope(|s| {
            let handles: Vec<_> = [&t2, &t1]
                .into_iter()
                .map(|t| {
                    let (f, last, start) = (&f, &last, &start);
                    let state = state_of(t, t.id.get());
                    s.spawn(move || {
                        start.wait();
                        f.coordinator
                            .acknowledge(t.id, last, state, SubtaskMetrics::default())
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let events = f.recorder.events.lock().clone();
        let completes: Vec<u64> = events
            .iter()
            .filter_map(|e| e.strip_prefix("complete "))
            .map(|id| id.parse().unwrap())
            .collect();
        assert!(
            completes.windows(2).all(|w| w[0] < w[1]),
            "round {round}: completions out of order: {events:?}"
        );
        // The newest always completes; each id is notified exactly once.
        assert_eq!(completes.last(), Some(&2), "round {round}: {events:?}");
        assert_eq!(events.len(), 2, "round {round}: {events:?}");
        let one_completed = completes.contains(&1);
        assert_eq!(
            events.contains(&"aborted 1".to_string()),
            !one_completed,
            "round {round}: {events:?}"
        );
        assert!(matches!(outcomes[0], AckOutcome::Completed(_)));
        assert_eq!(
            matches!(outcomes[1], AckOutcome::Completed(_)),
            one_completed,
            "round {round}: {outcomes:?}"
        );
        assert!(f.dir.path().join("job/chk-2/_metadata").is_file());
        if !one_completed {
            assert!(!f.dir.path().join("job/chk-1").exists(), "round {round}");
        }
    }
}

/// A second coordinator on the same job directory (a zombie after failover, or a job
/// resubmitted beside the old one) fences the first: the first's in-flight checkpoint fails
/// with `Fenced` and its listeners are told nothing (a sink keeps its pre-committed
/// transaction for whoever restores), its next trigger fails, and the second one restores
/// the latest checkpoint and continues with ids the first never used.
#[test]
fn a_second_coordinator_fences_the_first_and_no_side_effect_is_discarded() {
    let a = fixture(CoordinatorConfig::default().max_concurrent(2));
    let first = trigger(&a);
    assert!(matches!(ack_all(&a, &first), AckOutcome::Completed(_)));
    let in_flight = trigger(&a);

    let store = CheckpointStore::local(a.dir.path()).unwrap();
    let b = CheckpointCoordinator::open(
        &store,
        "job",
        CoordinatorConfig::default(),
        operators(),
        Arc::new(a.clock.clone()) as SharedClock,
    )
    .unwrap();

    let events_before = a.recorder.events.lock().clone();
    let tasks = tasks();
    let (last, rest) = tasks.split_last().unwrap();
    for (i, task) in rest.iter().enumerate() {
        a.coordinator
            .acknowledge(
                in_flight.id,
                task,
                state_of(&in_flight, i as u64),
                SubtaskMetrics::default(),
            )
            .unwrap();
    }
    let e = a
        .coordinator
        .acknowledge(
            in_flight.id,
            last,
            state_of(&in_flight, 9),
            SubtaskMetrics::default(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    assert_eq!(
        *a.recorder.events.lock(),
        events_before,
        "no abort was notified"
    );
    assert_eq!(
        a.coordinator.trigger().unwrap_err().kind(),
        ErrorKind::Fenced
    );
    assert_eq!(
        a.coordinator.restore_latest().unwrap_err().kind(),
        ErrorKind::Fenced
    );

    let restored = b.restore_latest().unwrap().unwrap();
    assert_eq!(restored.checkpoint.id(), first.id);
    let next = trigger_on(&b);
    assert!(next.id > in_flight.id, "{} after {}", next.id, in_flight.id);
}

/// A new job restores another job's checkpoint: state is matched by operator uid; the state
/// of an operator the new job lacks is refused, naming it, unless non-restored state is
/// allowed; a new operator starts empty; ids continue after the restored checkpoint.
#[test]
fn restore_from_maps_operators_by_uid() {
    let f = fixture(CoordinatorConfig::every(Duration::from_millis(10)));
    let t = trigger(&f);
    assert!(matches!(ack_all(&f, &t), AckOutcome::Completed(_)));
    let store = CheckpointStore::local(f.dir.path()).unwrap();
    let point = store.resolve("job/chk-1").unwrap();

    // Version 2 of the job: "sink" is gone, "counter" is new.
    let v2 = vec![
        OperatorSpec::new("source", "Source", 3, 128),
        OperatorSpec::new("counter", "Counter", 2, 128),
    ];
    let clock: SharedClock = Arc::new(ManualClock::new(5_000));
    let open = |config: CoordinatorConfig, job: &str| {
        CheckpointCoordinator::open(&store, job, config, v2.clone(), clock.clone()).unwrap()
    };
    let strict = open(CoordinatorConfig::default(), "job-v2");
    let err = strict
        .restore_from(point.clone(), ClaimMode::NoClaim)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.context("operators"), Some("sink"));
    assert_eq!(err.context("path"), Some("job/chk-1/_metadata"));
    assert_eq!(strict.stats().restored, 0);

    let lenient = open(
        CoordinatorConfig::default().allow_non_restored_state(true),
        "job-v2b",
    );
    let restored = lenient.restore_from(point, ClaimMode::NoClaim).unwrap();
    assert_eq!(restored.mapping.restored, ["source"]);
    assert_eq!(restored.mapping.fresh, ["counter"]);
    assert_eq!(restored.mapping.not_restored, ["sink"]);
    assert_eq!(offsets(&restored, "source", 1).len(), 5_000);
    assert_eq!(lenient.stats().last_restored, Some(CheckpointId(1)));
    let t = lenient.trigger().unwrap().triggered().unwrap();
    assert_eq!(t.id, CheckpointId(2));
}
