//! One writer per job directory: the lease, with an epoch that fences older writers and the
//! checkpoint ids it has reserved, so that ids never repeat.
//!
//! ```text
//! <job>/_lease/epoch-<E>          created once, with create-new, by the writer of epoch E
//! <job>/_lease/ids-<E>-<N>        epoch E reserved every checkpoint id below N
//! ```
//!
//! A writer takes the lease by creating `epoch-<E+1>` for the highest existing `E`: the
//! create is conditional (a hard link on the local filesystem, `If-None-Match` on object
//! storage), so of two writers racing for one epoch exactly one gets it. The writer of epoch
//! `E` is fenced as soon as `epoch-<E+1>` exists; it checks that before every commit and every
//! deletion, and a fenced writer commits and deletes nothing ([`ErrorKind::Fenced`]).
//! Epoch files are never deleted, so that check stays one `stat`.
//!
//! Before a checkpoint id is used, its writer reserves it (`ids-<E>-<N>`, N = id + 1), and a
//! new epoch starts above every reservation and every `chk-N/` on storage: an aborted
//! checkpoint whose directory was removed still never gives its id to a later checkpoint.
//!
//! What fencing cannot close: a writer that passed its check an instant before another took
//! the lease can still publish one `_metadata` (no object store offers a commit conditional
//! on another object). The new writer takes the lease before it lists the checkpoints, so
//! such a `_metadata` can only appear after that listing; the old writer re-checks after
//! publishing and reports [`ErrorKind::Fenced`] instead of success, so the checkpoint's
//! side effects (a sink's transaction) are never committed by it, and its files are its
//! own. The new writer does not know that checkpoint and may later delete a shared file it
//! references; it is never the newest checkpoint the new writer restores from.

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};
use parking_lot::Mutex;

use crate::layout;
use crate::store::{CheckpointStore, Created};

/// The directory of the lease files in a job directory.
pub const LEASE_DIR: &str = "_lease";
const EPOCH_PREFIX: &str = "epoch-";
const IDS_PREFIX: &str = "ids-";
/// How often a writer tries the next epoch when others take epochs at the same time.
const MAX_ATTEMPTS: usize = 32;

/// What the `_lease/` directory of a job holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// The highest epoch taken (0: the lease was never taken).
    pub epoch: u64,
    /// Every checkpoint id below this was reserved by some epoch.
    pub reserved_below: u64,
    /// The newest modification time of a lease file (ms since the epoch), when the service
    /// records one: when the lease was last taken or an id last reserved.
    pub last_activity_ms: Option<u64>,
}

/// `<job_dir>_lease/`.
pub fn lease_dir(job_dir: &str) -> String {
    format!("{job_dir}{LEASE_DIR}/")
}

fn epoch_path(job_dir: &str, epoch: u64) -> String {
    format!("{}{EPOCH_PREFIX}{epoch:020}", lease_dir(job_dir))
}

fn ids_path(job_dir: &str, epoch: u64, below: u64) -> String {
    format!("{}{IDS_PREFIX}{epoch:020}-{below:020}", lease_dir(job_dir))
}

fn parse_u64(digits: &str) -> Option<u64> {
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Reads the lease state of a job directory (no lease files: the default).
///
/// # Errors
/// Storage errors while listing.
pub fn read_state(store: &CheckpointStore, job_dir: &str) -> Result<LeaseState> {
    let mut state = LeaseState::default();
    for e in store.list(&lease_dir(job_dir), false)? {
        if e.is_dir {
            continue;
        }
        let name = layout::file_name(&e.path);
        if let Some(epoch) = name.strip_prefix(EPOCH_PREFIX).and_then(parse_u64) {
            state.epoch = state.epoch.max(epoch);
        } else if let Some((_, below)) = name
            .strip_prefix(IDS_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(e, n)| Some((parse_u64(e)?, parse_u64(n)?)))
        {
            state.reserved_below = state.reserved_below.max(below);
        } else {
            continue;
        }
        match store.modified_ms(&e.path) {
            Ok(Some(ms)) => {
                state.last_activity_ms = Some(state.last_activity_ms.map_or(ms, |m| m.max(ms)));
            }
            Ok(None) => {}
            // A superseded reservation deleted since the listing: its successor counts.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(state)
}

/// The lease of one writer: its epoch and the ids it has reserved.
#[derive(Debug)]
pub(crate) struct Lease {
    store: CheckpointStore,
    job_dir: String,
    epoch: u64,
    reserved_below: Mutex<u64>,
}

impl Lease {
    /// Takes the lease of `job_dir` with a new epoch, fencing every earlier writer. Ids at
    /// or above the returned lease's [`first_id`](Self::first_id) were never reserved;
    /// `min_first_id` raises that floor (the highest `chk-N/` on storage plus one).
    pub(crate) fn acquire(
        store: &CheckpointStore,
        job_dir: &str,
        min_first_id: u64,
        owner: &str,
    ) -> Result<Lease> {
        for _ in 0..MAX_ATTEMPTS {
            let state = read_state(store, job_dir)?;
            let epoch = state.epoch.checked_add(1).ok_or_else(|| {
                Error::corrupted("lease epoch overflows").with_context("path", lease_dir(job_dir))
            })?;
            let first_id = state.reserved_below.max(min_first_id);
            let record = format!("epoch={epoch}\nfirst_id={first_id}\nowner={owner}\n");
            match store.create_new(&epoch_path(job_dir, epoch), record.into_bytes())? {
                Created::Created => {
                    tracing::info!(job_dir, epoch, first_id, "took the job directory's lease");
                    return Ok(Lease {
                        store: store.clone(),
                        job_dir: job_dir.to_owned(),
                        epoch,
                        reserved_below: Mutex::new(first_id),
                    });
                }
                // Another writer took this epoch first: try the next one.
                Created::Existed => {}
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "could not take the job directory's lease: other writers keep taking it",
        )
        .with_context("path", lease_dir(job_dir))
        .with_context("attempts", MAX_ATTEMPTS))
    }

    /// This writer's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The lowest id this writer has not reserved yet.
    pub(crate) fn first_id(&self) -> u64 {
        *self.reserved_below.lock()
    }

    /// Fails with [`ErrorKind::Fenced`] when a newer epoch holds the lease.
    pub(crate) fn check(&self, what: &str) -> Result<()> {
        let next = epoch_path(&self.job_dir, self.epoch + 1);
        if self.store.exists(&next)? {
            return Err(Error::new(
                ErrorKind::Fenced,
                "another writer took over the job directory; this writer must stop",
            )
            .with_context("operation", what)
            .with_context("epoch", self.epoch)
            .with_context("newer", &next));
        }
        Ok(())
    }

    /// Reserves checkpoint id `id` (and every id below it) before anything is written for
    /// it, so that no later writer uses it again.
    pub(crate) fn reserve(&self, id: CheckpointId) -> Result<()> {
        let mut below = self.reserved_below.lock();
        // A fenced writer begins nothing, also with an id it reserved before.
        self.check("begin a checkpoint")?;
        if id.get() < *below {
            return Ok(());
        }
        let new_below = id.get().checked_add(1).ok_or_else(|| {
            Error::invalid_input("checkpoint id overflows").with_context("checkpoint", id)
        })?;
        let path = ids_path(&self.job_dir, self.epoch, new_below);
        self.store.create_new(&path, Vec::new())?;
        // The previous reservation of this epoch is superseded (the highest one counts).
        if *below > 0 {
            let _ = self
                .store
                .delete(&ids_path(&self.job_dir, self.epoch, *below));
        }
        *below = new_below;
        Ok(())
    }
}
