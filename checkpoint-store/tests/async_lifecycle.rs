//! The async core through [`AsyncCheckpointStore`], on OpenDAL's fs and memory services,
//! inside a current-thread and a multi-threaded tokio runtime: a full checkpoint lifecycle
//! (open, begin, state streams written on the blocking pool, commit, retention subsuming
//! the older checkpoints, latest, restore and read back, terminate), and racing commits
//! (two stores of one job committing the same checkpoint id; two commits of one store)
//! that behave as the blocking ones do: one wins, no checkpoint is lost.
#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::sync::Arc;

use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{
    CheckpointId, ErrorKind, OperatorStateHandle, StateScope, StreamStateHandle, SubtaskState,
};
use cornerstone_checkpoint_store::nonblocking::AsyncCheckpointStore;
use cornerstone_checkpoint_store::{
    ClaimMode, JobStatus, OperatorSpec, PendingCheckpoint, inspect,
};
use cornerstone_testkit::checkpoints::assert_race_outcome;
use cornerstone_testkit::store::{TestStore, all_files, files_config, write_stream};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on the blocking pool (state streams and the testkit's helpers block) and
/// awaits it.
async fn on_blocking_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Writes one exclusive and one shared stream of `pending` on the blocking pool, as an
/// engine's asynchronous snapshot phase would, and adds them as operator `name`'s state.
async fn write_state(
    mut pending: PendingCheckpoint,
    name: &str,
    bytes: Vec<u8>,
) -> (PendingCheckpoint, Vec<StreamStateHandle>) {
    let factory = pending.stream_factory();
    let handles = on_blocking_pool(move || {
        vec![
            write_stream(&*factory, StateScope::Exclusive, &bytes),
            write_stream(&*factory, StateScope::Shared, &bytes[..bytes.len() / 2]),
        ]
    })
    .await;
    let state = SubtaskState {
        keyed: vec![],
        operator: handles
            .iter()
            .map(|h| OperatorStateHandle {
                states: Default::default(),
                stream: h.clone(),
            })
            .collect(),
    };
    pending
        .add_subtask_state(&OperatorSpec::new("op", name, 1, 128), 0, state)
        .unwrap();
    (pending, handles)
}

fn state_bytes(id: u64) -> Vec<u8> {
    (0..4096u32).map(|i| (i as u8) ^ (id as u8)).collect()
}

async fn lifecycle(s: Arc<TestStore>) {
    let name = s.name;
    let store = s.store.clone();
    let job = AsyncCheckpointStore::open(store.clone(), "job", files_config().num_retained(2))
        .await
        .unwrap();
    let mut written = Vec::new();
    for id in 1..=4u64 {
        let pending = job.begin_checkpoint(CheckpointId(id)).await.unwrap();
        let (pending, handles) = write_state(pending, "Op", state_bytes(id)).await;
        let done = job.commit(pending).await.unwrap();
        assert_eq!(done.id(), CheckpointId(id), "{name}");
        assert_eq!(job.latest().unwrap().id(), CheckpointId(id), "{name}");
        written.push(handles);
    }
    // Retention: the two newest are retained, the older ones subsumed with their files.
    assert_eq!(
        job.blocking().checkpoint_ids(),
        vec![CheckpointId(3), CheckpointId(4)],
        "{name}"
    );
    let files = {
        let store = store.clone();
        on_blocking_pool(move || all_files(&store, "job/")).await
    };
    for (i, handles) in written.iter().enumerate() {
        for h in handles {
            let path = format!("job/{}", h.file().unwrap().path);
            assert_eq!(files.contains(&path), i >= 2, "{name}: {path} in {files:?}");
        }
    }
    assert!(!files.iter().any(|f| f.starts_with("job/chk-1/")), "{name}");

    // Restore the latest and read its state back.
    let point = job.resolve("job").await.unwrap();
    assert_eq!(point.id(), CheckpointId(4), "{name}");
    let reader = job.restore(point, ClaimMode::Claim).await.unwrap();
    let handle = written[3][0].clone();
    let read = on_blocking_pool(move || read_stream(&handle, Some(&reader)).unwrap()).await;
    assert_eq!(read, state_bytes(4), "{name}");

    // An aborted checkpoint leaves nothing behind; a dropped one neither.
    let pending = job.begin_checkpoint(CheckpointId(5)).await.unwrap();
    let (pending, _) = write_state(pending, "Op", state_bytes(5)).await;
    job.abort(pending).await.unwrap();
    // Dropped inside the runtime, its cleanup runs as a task of its own: soon gone.
    let pending = job.begin_checkpoint(CheckpointId(6)).await.unwrap();
    let (pending, _) = write_state(pending, "Op", state_bytes(6)).await;
    drop(pending);
    let mut left = Vec::new();
    for _ in 0..200 {
        let store = store.clone();
        left = on_blocking_pool(move || all_files(&store, "job/")).await;
        if !left
            .iter()
            .any(|f| f.starts_with("job/chk-5/") || f.starts_with("job/chk-6/"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !left
            .iter()
            .any(|f| f.starts_with("job/chk-5/") || f.starts_with("job/chk-6/")),
        "{name}: {left:?}"
    );
    job.check_lease().await.unwrap();
    job.settle_doubtful().await.unwrap();

    job.terminate(JobStatus::Finished).await.unwrap();
    let e = job.begin_checkpoint(CheckpointId(7)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{name}: {e}");
    let left = on_blocking_pool(move || all_files(&store, "job/")).await;
    assert!(
        left.iter().all(|f| f.starts_with("job/_lease/")),
        "{name}: {left:?}"
    );
}

fn run(rt: tokio::runtime::Runtime, f: impl Future<Output = ()>) {
    rt.block_on(f);
}

#[test]
fn lifecycle_fs_current_thread() {
    run(current_thread(), lifecycle(Arc::new(TestStore::fs())));
}

#[test]
fn lifecycle_memory_current_thread() {
    run(current_thread(), lifecycle(Arc::new(TestStore::memory())));
}

#[test]
fn lifecycle_fs_multi_thread() {
    run(multi_thread(), lifecycle(Arc::new(TestStore::fs())));
}

#[test]
fn lifecycle_memory_multi_thread() {
    run(multi_thread(), lifecycle(Arc::new(TestStore::memory())));
}

/// Two stores of one job (each opening fences the other) race to commit the same
/// checkpoint id, as `two_writers_never_both_complete_a_checkpoint` does with threads: at
/// most one completes it, and nothing reported complete is lost ([`assert_race_outcome`]).
fn two_async_writers_race(s: &TestStore, rt: &tokio::runtime::Runtime) {
    let store = s.store.clone();
    let mut last_winner = None;
    for id in 1..=4u64 {
        let results: Vec<Result<String, cornerstone_backend_api::Error>> = rt.block_on(async {
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let tasks: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|who| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let prepared = async {
                            let job =
                                AsyncCheckpointStore::open(store, "race", files_config()).await?;
                            let pending = job.begin_checkpoint(CheckpointId(id)).await?;
                            let (pending, _) =
                                write_state(pending, who, who.as_bytes().repeat(64)).await;
                            Ok::<_, cornerstone_backend_api::Error>((job, pending))
                        }
                        .await;
                        // Whatever failed before (the other writer's lease may fence this
                        // one as early as `begin_checkpoint`), both tasks get here.
                        barrier.wait().await;
                        let (job, pending) = prepared?;
                        job.commit(pending).await.map(|_| who.to_owned())
                    })
                })
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap());
            }
            results
        });
        assert_race_outcome(&store, "race", id, &results, &mut last_winner);
    }
}

#[test]
fn two_async_writers_race_fs_multi_thread() {
    two_async_writers_race(&TestStore::fs(), &multi_thread());
}

#[test]
fn two_async_writers_race_memory_multi_thread() {
    two_async_writers_race(&TestStore::memory(), &multi_thread());
}

#[test]
fn two_async_writers_race_fs_current_thread() {
    two_async_writers_race(&TestStore::fs(), &current_thread());
}

#[test]
fn two_async_writers_race_memory_current_thread() {
    two_async_writers_race(&TestStore::memory(), &current_thread());
}

/// Two checkpoints of one store with the same id committed at once (the job's writer lock
/// serializes them): one completes, the other is refused as not newer, and the winner is
/// the one retained, whole.
fn two_commits_of_one_store_race(s: &TestStore, rt: &tokio::runtime::Runtime) {
    let (name, store) = (s.name, s.store.clone());
    let results = rt.block_on(async {
        let job = AsyncCheckpointStore::open(store.clone(), "job", files_config())
            .await
            .unwrap();
        let a = job.begin_checkpoint(CheckpointId(7)).await.unwrap();
        let b = job.begin_checkpoint(CheckpointId(7)).await.unwrap();
        let (a, _) = write_state(a, "a", b"a".repeat(64)).await;
        let (b, _) = write_state(b, "b", b"b".repeat(64)).await;
        let (ja, jb) = (job.clone(), job.clone());
        let ta = tokio::spawn(async move { ja.commit(a).await.map(|_| "a") });
        let tb = tokio::spawn(async move { jb.commit(b).await.map(|_| "b") });
        let results = vec![ta.await.unwrap(), tb.await.unwrap()];
        assert_eq!(job.latest().unwrap().id(), CheckpointId(7), "{name}");
        results
    });
    let winners: Vec<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(winners.len(), 1, "{name}: {results:?}");
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(
        matches!(
            loser.kind(),
            ErrorKind::AlreadyExists | ErrorKind::InvalidInput
        ),
        "{name}: {loser}"
    );
    let point = store.resolve("job").unwrap();
    assert_eq!(point.metadata.operators[0].name, winners[0], "{name}");
    assert!(
        inspect::verify(&store, "job/chk-7", |_, _| {})
            .unwrap()
            .is_ok(),
        "{name}"
    );
}

#[test]
fn two_commits_of_one_store_race_fs() {
    two_commits_of_one_store_race(&TestStore::fs(), &multi_thread());
}

#[test]
fn two_commits_of_one_store_race_memory() {
    two_commits_of_one_store_race(&TestStore::memory(), &current_thread());
}
