//! What a job retains and how a checkpoint that is no longer retained is deleted: the
//! in-memory state of the retained checkpoints, the files that must stay (live), and the
//! two deletion steps (unpublish `_metadata`, then delete the files).

use std::collections::BTreeSet;

use cornerstone_backend_api::{ErrorKind, Result, StateScope};
use parking_lot::Mutex;

use super::checkpoint::CompletedCheckpoint;
use crate::metadata::SnapshotKind;
use crate::status::load_completed;
use crate::store::CheckpointStore;

#[derive(Debug, Clone)]
pub(super) struct Retained {
    pub(super) done: CompletedCheckpoint,
    /// Restored from another location in `Claim` mode: deleted on subsumption, but new
    /// checkpoints cannot reference its files.
    pub(super) foreign: bool,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) retained: Vec<Retained>,
    /// Checkpoints whose `_metadata` commit had an unknown outcome: every file they
    /// reference stays live until storage says whether they completed.
    pub(super) doubtful: Vec<CompletedCheckpoint>,
    /// Subsumed checkpoints whose `_metadata` could not be deleted: still on storage, so
    /// every file they reference stays live; the next subsumption tries again.
    pub(super) discarding: Vec<Retained>,
    pub(super) cleanup_failures: Vec<String>,
    pub(super) terminated: bool,
    /// A `_metadata` on storage is unreadable (corrupt, or of a newer format): it may
    /// reference shared files, so none is deleted.
    pub(super) keep_shared: bool,
}

/// The first step of deleting a checkpoint that is no longer retained: its `_metadata`,
/// and its directory synced, so that no crash or power cut leaves a `_metadata` whose files
/// are gone. Savepoints are never deleted. An error leaves the outcome unknown: the
/// `_metadata` may still be there, and every file it references must stay.
pub(super) async fn unpublish(store: &CheckpointStore, done: &CompletedCheckpoint) -> Result<()> {
    if done.metadata.kind == SnapshotKind::Savepoint {
        return Ok(());
    }
    store.delete_async(&done.metadata_path).await?;
    store.sync_dirs_async([done.dir().as_str()]).await
}

/// The second step, once [`unpublish`] succeeded: deletes the checkpoint's files that are
/// not in `live` (never task-owned files, never savepoints' files), then the rest of its own
/// `chk-N/`.
pub(super) async fn delete_files(
    store: &CheckpointStore,
    done: &CompletedCheckpoint,
    live: &BTreeSet<String>,
    own_dir: bool,
    keep_shared: bool,
) -> Result<()> {
    if done.metadata.kind == SnapshotKind::Savepoint {
        return Ok(());
    }
    // Kill point: `_metadata` is deleted, every file is still there (`failpoints`).
    #[cfg(feature = "failpoints")]
    fail_point("discard-after-metadata-delete");
    for (path, scope) in done.file_paths() {
        if scope != StateScope::TaskOwned
            && !(keep_shared && scope == StateScope::Shared)
            && !live.contains(&path)
        {
            store.delete_async(&path).await?;
            // Kill point: after each file deleted (`1*return`: after the first one).
            #[cfg(feature = "failpoints")]
            fail_point("discard-mid-files");
        }
    }
    if own_dir {
        let dir = done.dir();
        for e in store.list_async(&dir, true).await? {
            if !e.is_dir && !live.contains(&e.path) {
                store.delete_async(&e.path).await?;
            }
        }
        store.delete_dir_if_empty_async(&dir).await;
    }
    Ok(())
}

/// Every file that must not be deleted: those of the retained checkpoints and of the
/// checkpoints whose commit had an unknown outcome.
pub(super) fn live_files(state: &State) -> BTreeSet<String> {
    state
        .retained
        .iter()
        .map(|r| &r.done)
        .chain(state.doubtful.iter())
        .chain(state.discarding.iter().map(|r| &r.done))
        .flat_map(CompletedCheckpoint::file_paths)
        .map(|(p, _)| p)
        .collect()
}

/// The fail point `name` (feature `failpoints`): a kill point when the process's
/// `FAILPOINTS` says `return` ([`kill_point`]), or whatever a test configured.
///
/// It runs inside the async core, on a worker of the store's I/O runtime; a test's callback (`fail::cfg_callback`) may call the blocking API
/// (open a newer writer at the kill point), so a configured fail point is evaluated on a
/// thread of its own, outside any runtime, while this one waits (a panic it raises goes on
/// here).
#[cfg(feature = "failpoints")]
pub(super) fn fail_point(name: &'static str) {
    if !fail::list()
        .iter()
        .any(|(configured, _)| configured == name)
    {
        return;
    }
    std::thread::scope(|s| {
        let evaluated = s
            .spawn(|| fail::fail_point!(name, |_| kill_point(name)))
            .join();
        if let Err(panic) = evaluated {
            std::panic::resume_unwind(panic);
        }
    });
}

/// A kill point was reached (feature `failpoints`): says so on stderr and waits, doing
/// nothing more, for the test to kill the process (`SIGKILL`: no destructor, no cleanup).
/// The process's other threads go on meanwhile, as they would when a kill arrives.
#[cfg(feature = "failpoints")]
fn kill_point(name: &str) -> ! {
    eprintln!("kill point {name}: waiting to be killed");
    loop {
        std::thread::park();
    }
}

/// Settles the checkpoints whose commit had an unknown outcome, from what storage says now:
/// complete ones become retained, absent ones are dropped (their files become garbage for
/// `gc`, as this writer can no longer tell them from a retained checkpoint's), unreadable
/// ones stay doubtful. Reads storage without holding `state`; the caller holds the job's
/// writer lock, so nothing else changes the doubtful checkpoints meanwhile.
pub(super) async fn resolve_doubtful(store: &CheckpointStore, state: &Mutex<State>) {
    let doubtful = std::mem::take(&mut state.lock().doubtful);
    if doubtful.is_empty() {
        return;
    }
    let mut complete = Vec::new();
    let mut still = Vec::new();
    for done in doubtful {
        match load_completed(store, &done.metadata_path).await {
            Ok(found) if found.metadata == done.metadata => {
                tracing::info!(path = %done.metadata_path, "a checkpoint whose commit outcome was unknown is complete");
                complete.push(found);
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::info!(path = %done.metadata_path, "a checkpoint whose commit outcome was unknown did not complete");
            }
            Err(_) => still.push(done),
        }
    }
    let mut state = state.lock();
    state
        .retained
        .extend(complete.into_iter().map(|done| Retained {
            done,
            foreign: false,
        }));
    state.retained.sort_by_key(|r| r.done.id());
    state.doubtful.extend(still);
}
