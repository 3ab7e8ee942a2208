//! [`CompletedCheckpointStore`]: opening a job's checkpoint store (taking the lease and
//! recovering the complete checkpoints), what it retains, and the cleanup on termination.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};
use parking_lot::Mutex;

use super::checkpoint::{CompletedCheckpoint, checkpoint_dirs_async, sync_job_dirs_async};
use super::config::{CheckpointConfig, JobStatus};
use super::retention::{Retained, State, delete_files, resolve_doubtful, unpublish};
use crate::layout;
use crate::lease::Lease;
use crate::status::{self, CheckpointDirStatus};
use crate::store::CheckpointStore;

pub(super) struct JobInner {
    pub(super) store: CheckpointStore,
    pub(super) job_id: String,
    pub(super) job_dir: String,
    pub(super) config: CheckpointConfig,
    pub(super) lease: Lease,
    /// Held by whatever changes the retained checkpoints together with storage (a commit
    /// and its subsumption, settling doubtful commits, a Claim restore, termination), for
    /// the whole of that storage I/O: such changes run one at a time. An async mutex: it is
    /// held across the awaits of that I/O.
    pub(super) writer: tokio::sync::Mutex<()>,
    /// The retained checkpoints and their bookkeeping, only ever held for in-memory steps,
    /// never across storage I/O: readers ([`CompletedCheckpointStore::latest`], `Debug`)
    /// never wait for storage.
    pub(super) state: Mutex<State>,
}

/// The completed checkpoints of one job, in `<job-id>/` of a [`CheckpointStore`].
///
/// Opening it takes the job directory's lease with a new epoch (fencing any earlier writer,
/// see [`lease`](crate::lease)) and recovers the complete checkpoints from storage (ids
/// sorted as numbers; a `chk-N/` without `_metadata` is ignored and left for garbage
/// collection; an unreadable `_metadata` newer than every complete checkpoint is an error,
/// see [`CheckpointConfig::fallback_on_unreadable`]).
/// [`begin_checkpoint`](Self::begin_checkpoint) returns a [`PendingCheckpoint`] whose stream
/// factory backends write through; [`PendingCheckpoint::commit`] writes `_metadata` last and
/// atomically, then subsumes checkpoints beyond `num_retained`, deleting only files that no
/// retained checkpoint references. Savepoint and task-owned files are never deleted.
///
/// Clones share the same state.
///
/// [`PendingCheckpoint`]: super::PendingCheckpoint
/// [`PendingCheckpoint::commit`]: super::PendingCheckpoint::commit
#[derive(Clone)]
pub struct CompletedCheckpointStore {
    pub(super) inner: Arc<JobInner>,
}

impl fmt::Debug for CompletedCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletedCheckpointStore")
            .field("job_dir", &self.inner.job_dir)
            .field("epoch", &self.inner.lease.epoch())
            .field("retained", &self.checkpoint_ids())
            .finish_non_exhaustive()
    }
}

impl CompletedCheckpointStore {
    /// Takes the lease of `job_id`'s directory in `store` and recovers its completed
    /// checkpoints.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad job id; [`ErrorKind::Corrupted`] or
    /// [`ErrorKind::Unsupported`] naming the file when a `_metadata` newer than every
    /// complete checkpoint is unreadable (unless
    /// [`fallback_on_unreadable`](CheckpointConfig::fallback_on_unreadable)); storage errors
    /// while listing or reading, transient ones included. Inside a tokio runtime, prefer
    /// [`AsyncCheckpointStore`](crate::nonblocking::AsyncCheckpointStore) (see
    /// [`CheckpointStore`]'s "Blocking").
    pub fn open(store: &CheckpointStore, job_id: &str, config: CheckpointConfig) -> Result<Self> {
        store.block_on(Self::open_async(store, job_id, config))
    }

    /// [`open`](Self::open), async.
    pub(crate) async fn open_async(
        store: &CheckpointStore,
        job_id: &str,
        config: CheckpointConfig,
    ) -> Result<Self> {
        let job_dir = layout::job_dir(job_id)?;
        // The lease first, then the checkpoints: a writer fenced by this epoch can publish
        // nothing after the listing below without finding out (it re-checks after
        // publishing), so this writer knows every checkpoint it could subsume.
        let highest_dir = checkpoint_dirs_async(store, &job_dir)
            .await?
            .last()
            .map_or(0, |(id, _)| id.get());
        let first_id = highest_dir.checked_add(1).ok_or_else(|| {
            Error::corrupted("checkpoint id overflows").with_context("job", job_id)
        })?;
        let owner = format!(
            "pid {} at {}",
            std::process::id(),
            config.clock.now_millis()
        );
        let lease = Lease::acquire(store, &job_dir, first_id, &owner).await?;
        let dirs = checkpoint_dirs_async(store, &job_dir).await?;
        sync_job_dirs_async(store, &job_dir, &dirs).await?;
        let lease_state = crate::lease::read_state_async(store, &job_dir).await?;
        let classified = status::classify_listed(store, dirs, None, &lease_state).await?;
        let mut retained = Vec::new();
        let keep_shared = classified.iter().any(|(_, _, st)| st.is_unreadable());
        for (id, dir, st) in &classified {
            match st {
                CheckpointDirStatus::Complete(done) => retained.push(Retained {
                    done: done.clone(),
                    foreign: false,
                }),
                CheckpointDirStatus::Corrupt(e) | CheckpointDirStatus::NewerFormat(e) => {
                    let newest_complete = retained.last().map_or(0, |r| r.done.id().get());
                    let newer_than_complete = classified.iter().all(|(other, _, s)| {
                        !matches!(s, CheckpointDirStatus::Complete(_)) || other < id
                    });
                    if newer_than_complete && !config.fallback_on_unreadable {
                        return Err(status::unreadable_newest(st, dir));
                    }
                    tracing::warn!(
                        path = %layout::metadata_path(dir),
                        error = %e,
                        newest_complete,
                        "skipping a checkpoint whose _metadata is unreadable; it is kept on storage"
                    );
                }
                CheckpointDirStatus::InProgress
                | CheckpointDirStatus::Abandoned
                | CheckpointDirStatus::Fenced(_) => {}
            }
        }
        // What this writer saw, before it restores anything (and so before any sink aborts
        // a transaction): a `_metadata` a fenced writer publishes from now on is late.
        let present: BTreeSet<u64> = classified
            .iter()
            .filter(|(_, _, st)| {
                matches!(st, CheckpointDirStatus::Complete(_)) || st.is_unreadable()
            })
            .map(|(id, _, _)| id.get())
            .collect();
        lease.publish_view(&present).await?;
        for (_, _, st) in &classified {
            if let CheckpointDirStatus::Fenced(done) = st {
                tracing::warn!(path = %done.metadata_path, "deleting the _metadata of a checkpoint a fenced writer published after a newer writer took over; it was never reported complete");
                unpublish(store, done).await?;
            }
        }
        lease.prune_views(&lease_state).await;
        Ok(CompletedCheckpointStore {
            inner: Arc::new(JobInner {
                store: store.clone(),
                job_id: job_id.to_owned(),
                job_dir,
                config,
                lease,
                writer: tokio::sync::Mutex::new(()),
                state: Mutex::new(State {
                    retained,
                    keep_shared,
                    ..State::default()
                }),
            }),
        })
    }

    /// The epoch of this writer's lease on the job directory.
    pub fn epoch(&self) -> u64 {
        self.inner.lease.epoch()
    }

    /// The lowest checkpoint id no writer of this job directory has used or reserved: the
    /// id to continue with after a restart. Ids never repeat, not even those of checkpoints
    /// that were aborted and whose directories are gone.
    pub fn next_checkpoint_id(&self) -> CheckpointId {
        let latest = self.latest().map_or(0, |c| c.id().get().saturating_add(1));
        CheckpointId(self.inner.lease.first_id().max(latest))
    }

    /// Settles the checkpoints whose commit had an unknown outcome from what storage says
    /// now: complete ones become retained (so [`latest`](Self::latest) is never older than
    /// a checkpoint that did complete), absent ones are dropped.
    ///
    /// # Errors
    /// [`ErrorKind::OutcomeUnknown`] naming the `_metadata` that storage still cannot
    /// read; [`ErrorKind::Fenced`].
    pub fn settle_doubtful(&self) -> Result<()> {
        self.inner.store.block_on(self.settle_doubtful_async())
    }

    /// [`settle_doubtful`](Self::settle_doubtful), async.
    pub(crate) async fn settle_doubtful_async(&self) -> Result<()> {
        let _writer = self.inner.writer.lock().await;
        self.inner.lease.check("settle doubtful commits").await?;
        resolve_doubtful(&self.inner.store, &self.inner.state).await;
        let state = self.inner.state.lock();
        match state.doubtful.first() {
            Some(d) => Err(Error::new(
                ErrorKind::OutcomeUnknown,
                "storage cannot tell yet whether a checkpoint completed",
            )
            .with_context("path", &d.metadata_path)),
            None => Ok(()),
        }
    }

    /// Fails with [`ErrorKind::Fenced`] when another writer took the job directory's lease.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`]; storage errors.
    pub fn check_lease(&self) -> Result<()> {
        self.inner.store.block_on(self.check_lease_async())
    }

    /// [`check_lease`](Self::check_lease), async.
    pub(crate) async fn check_lease_async(&self) -> Result<()> {
        self.inner.lease.check("check the lease").await
    }

    /// The job directory (`<job-id>/`).
    pub fn job_dir(&self) -> &str {
        &self.inner.job_dir
    }

    /// The ids of the retained checkpoints, ascending.
    pub fn checkpoint_ids(&self) -> Vec<CheckpointId> {
        self.inner
            .state
            .lock()
            .retained
            .iter()
            .map(|r| r.done.id())
            .collect()
    }

    /// The retained checkpoints, oldest first.
    pub fn checkpoints(&self) -> Vec<CompletedCheckpoint> {
        self.inner
            .state
            .lock()
            .retained
            .iter()
            .map(|r| r.done.clone())
            .collect()
    }

    /// The latest retained checkpoint.
    pub fn latest(&self) -> Option<CompletedCheckpoint> {
        self.inner
            .state
            .lock()
            .retained
            .last()
            .map(|r| r.done.clone())
    }

    /// Cleanup steps that failed (their files are left for garbage collection).
    pub fn cleanup_failures(&self) -> Vec<String> {
        self.inner.state.lock().cleanup_failures.clone()
    }

    /// The job terminated: applies the cleanup policy ([`CleanupPolicy::deletes_on`]). When
    /// it deletes, every retained checkpoint goes (`_metadata` first), then what is left in
    /// `shared/` and in `chk-*/`; `taskowned/` and savepoints are never touched, and neither
    /// is a `chk-N/` whose `_metadata` is unreadable (corrupt, or of a newer format) nor, while
    /// one exists, `shared/`. A fenced writer deletes nothing. Afterwards no new checkpoint
    /// can begin.
    ///
    /// # Errors
    /// [`ErrorKind::Fenced`]; storage errors of the deletion (what is left is garbage for
    /// `gc`).
    ///
    /// [`CleanupPolicy::deletes_on`]: super::CleanupPolicy::deletes_on
    pub fn terminate(&self, status: JobStatus) -> Result<()> {
        self.inner.store.block_on(self.terminate_async(status))
    }

    /// [`terminate`](Self::terminate), async.
    pub(crate) async fn terminate_async(&self, status: JobStatus) -> Result<()> {
        let inner = &self.inner;
        let _writer = inner.writer.lock().await;
        inner.state.lock().terminated = true;
        if !inner.config.cleanup.deletes_on(status) {
            return Ok(());
        }
        inner.lease.check("clean up on termination").await?;
        let (retained, doubtful) = {
            let mut state = inner.state.lock();
            let mut retained = std::mem::take(&mut state.retained);
            retained.append(&mut state.discarding);
            (retained, std::mem::take(&mut state.doubtful))
        };
        let classified = status::classify_job_async(&inner.store, &inner.job_dir, None).await?;
        let retained_dirs: BTreeSet<String> = retained.iter().map(|r| r.done.dir()).collect();
        // Anything on storage this job cannot account for may reference shared files.
        let unreadable = classified.iter().any(|(_, dir, st)| {
            st.is_unreadable()
                || matches!(st, CheckpointDirStatus::Complete(_)) && !retained_dirs.contains(dir)
        });
        // A checkpoint whose commit had an unknown outcome may be complete: keep its files.
        let keep: BTreeSet<String> = doubtful
            .iter()
            .flat_map(CompletedCheckpoint::file_paths)
            .map(|(p, _)| p)
            .collect();
        for r in &retained {
            inner.store.delete_async(&r.done.metadata_path).await?;
        }
        let retained_dir_list: Vec<String> = retained.iter().map(|r| r.done.dir()).collect();
        inner
            .store
            .sync_dirs_async(retained_dir_list.iter().map(String::as_str))
            .await?;
        for r in &retained {
            delete_files(&inner.store, &r.done, &keep, !r.foreign, unreadable).await?;
        }
        for (_, dir, st) in classified {
            match st {
                CheckpointDirStatus::Corrupt(_) | CheckpointDirStatus::NewerFormat(_) => {}
                CheckpointDirStatus::Complete(done) => {
                    if !retained_dirs.contains(&dir) {
                        // Not this job's (a doubtful commit that completed, or another writer's).
                        tracing::warn!(path = %done.metadata_path, "keeping a complete checkpoint this job did not retain");
                    }
                }
                CheckpointDirStatus::InProgress
                | CheckpointDirStatus::Abandoned
                | CheckpointDirStatus::Fenced(_) => {
                    for e in inner.store.list_async(&dir, true).await? {
                        if !e.is_dir && !keep.contains(&e.path) {
                            inner.store.delete_async(&e.path).await?;
                        }
                    }
                    inner.store.delete_dir_if_empty_async(&dir).await;
                }
            }
        }
        let shared = layout::shared_dir(&inner.job_dir);
        if !unreadable {
            for e in inner.store.list_async(&shared, true).await? {
                if !e.is_dir && !keep.contains(&e.path) {
                    inner.store.delete_async(&e.path).await?;
                }
            }
            inner.store.delete_dir_if_empty_async(&shared).await;
        }
        inner.store.delete_dir_if_empty_async(&inner.job_dir).await;
        Ok(())
    }
}
