//! One writer per job directory: the lease, with an epoch that fences older writers and the
//! checkpoint ids it has reserved, so that ids never repeat.
//!
//! ```text
//! <job>/_lease/epoch-<E>          created once, with create-new, by the writer of epoch E
//! <job>/_lease/ids-<E>-<N>        epoch E reserved every checkpoint id below N
//! <job>/_lease/view-<E>           what epoch E saw when it listed the job (see below)
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
//! A reservation is created first and the lease checked after, and a new epoch reads the
//! reservations again once its epoch file exists: so every id a fenced writer can still use
//! lies below the new epoch's first id.
//!
//! What fencing alone cannot close: a writer that passed its check an instant before another
//! took the lease can still publish one `_metadata` (no object store offers a commit
//! conditional on another object). Its writer re-checks after publishing and reports
//! [`ErrorKind::Fenced`] instead of success, so nothing was told the checkpoint completed
//! (no sink committed its transactions), but a later restore must not pick it up either:
//! the new writer may have aborted those transactions and deleted shared files it
//! references. So the new writer records what it saw:
//!
//! ```text
//! <job>/_lease/view-<E>           first_id=F, present=<ids>: the chk-N with a _metadata
//!                                 when epoch E listed the job (written after the listing)
//! ```
//!
//! A `chk-N/` with `N < F` that is not in `present` was published after epoch E took the
//! lease (by a writer it fenced): it is [`Fenced`](crate::status::CheckpointDirStatus::Fenced),
//! never restorable, and the next writer deletes its `_metadata`; `gc` collects its files.
//! A writer that dies before writing its view restored nothing, aborted no transaction and
//! constrains nothing.

use std::collections::BTreeSet;

use std::sync::atomic::{AtomicU64, Ordering};

use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result};

use crate::layout;
use crate::store::{CheckpointStore, Created};

/// The directory of the lease files in a job directory.
pub const LEASE_DIR: &str = "_lease";
const EPOCH_PREFIX: &str = "epoch-";
const IDS_PREFIX: &str = "ids-";
const VIEW_PREFIX: &str = "view-";
/// The largest view file read (a view lists the checkpoint ids present at one listing).
const MAX_VIEW_FILE: u64 = 16 << 20;
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
    /// What the epochs that wrote a view saw, ascending by epoch.
    pub views: Vec<LeaseView>,
}

/// What the writer of one epoch saw when it listed the job directory (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseView {
    /// The epoch.
    pub epoch: u64,
    /// Every id below this was reserved by an older epoch.
    pub first_id: u64,
    /// The ids of the `chk-N/` directories that had a `_metadata` at the listing.
    pub present: BTreeSet<u64>,
}

impl LeaseState {
    /// Whether the `_metadata` of checkpoint `id` was published by a fenced writer after a
    /// newer writer listed the job: below a view's first id and not present in it.
    pub fn is_late(&self, id: CheckpointId) -> bool {
        self.views
            .iter()
            .any(|v| id.get() < v.first_id && !v.present.contains(&id.get()))
    }
}

fn view_path(job_dir: &str, epoch: u64) -> String {
    format!("{}{VIEW_PREFIX}{epoch:020}", lease_dir(job_dir))
}

fn parse_view(path: &str, epoch: u64, bytes: &[u8]) -> Result<LeaseView> {
    let bad = |what: &str| {
        Error::corrupted("unreadable lease view")
            .with_context("path", path)
            .with_context("problem", what)
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let mut view = LeaseView {
        epoch,
        ..LeaseView::default()
    };
    let mut first_id = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("first_id", v)) => first_id = Some(parse_u64(v).ok_or_else(|| bad("first_id"))?),
            Some(("present", v)) => {
                for id in v.split(',').filter(|s| !s.is_empty()) {
                    view.present
                        .insert(parse_u64(id).ok_or_else(|| bad("present"))?);
                }
            }
            _ => {}
        }
    }
    view.first_id = first_id.ok_or_else(|| bad("no first_id"))?;
    Ok(view)
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
/// Storage errors while listing; [`ErrorKind::Unsupported`] inside a tokio runtime (see
/// [`CheckpointStore`]'s "Blocking").
pub fn read_state(store: &CheckpointStore, job_dir: &str) -> Result<LeaseState> {
    store.block_on(read_state_async(store, job_dir))
}

/// [`read_state`], async.
pub(crate) async fn read_state_async(store: &CheckpointStore, job_dir: &str) -> Result<LeaseState> {
    // A file deleted between the listing and its read (a superseded reservation, a pruned
    // view) means the lease moved on meanwhile: list again.
    let mut attempts = 0;
    loop {
        match read_state_once(store, job_dir).await {
            Err(e) if e.kind() == ErrorKind::NotFound && attempts < MAX_ATTEMPTS => attempts += 1,
            other => return other,
        }
    }
}

/// One listing of `_lease/`: its epochs and reservations by name; the views read; the
/// modification times of the newest epoch file and the newest reservation only (every older
/// one is older activity), so the cost does not grow with the number of epochs.
async fn read_state_once(store: &CheckpointStore, job_dir: &str) -> Result<LeaseState> {
    let mut state = LeaseState::default();
    let mut newest_epoch_file = None::<String>;
    let mut newest_ids = None::<((u64, u64), String)>;
    for e in store.list_async(&lease_dir(job_dir), false).await? {
        if e.is_dir {
            continue;
        }
        let name = layout::file_name(&e.path);
        if let Some(epoch) = name.strip_prefix(EPOCH_PREFIX).and_then(parse_u64) {
            if epoch >= state.epoch {
                state.epoch = epoch;
                newest_epoch_file = Some(e.path.clone());
            }
        } else if let Some(epoch) = name.strip_prefix(VIEW_PREFIX).and_then(parse_u64) {
            let bytes = store.read_small_async(&e.path, MAX_VIEW_FILE).await?;
            state.views.push(parse_view(&e.path, epoch, &bytes)?);
        } else if let Some(key) = name
            .strip_prefix(IDS_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(e, n)| Some((parse_u64(e)?, parse_u64(n)?)))
        {
            state.reserved_below = state.reserved_below.max(key.1);
            if newest_ids.as_ref().is_none_or(|(k, _)| key > *k) {
                newest_ids = Some((key, e.path.clone()));
            }
        }
    }
    for path in newest_epoch_file
        .iter()
        .chain(newest_ids.as_ref().map(|(_, p)| p))
    {
        if let Some(ms) = store.modified_ms_async(path).await? {
            state.last_activity_ms = Some(state.last_activity_ms.map_or(ms, |m| m.max(ms)));
        }
    }
    state.views.sort_by_key(|v| v.epoch);
    Ok(state)
}

/// The lease of one writer: its epoch and the ids it has reserved.
#[derive(Debug)]
pub(crate) struct Lease {
    store: CheckpointStore,
    job_dir: String,
    epoch: u64,
    /// The first id of this epoch: every id below it was reserved by an older one.
    start_id: u64,
    /// Every id below this is reserved by this epoch (or an older one).
    reserved_below: AtomicU64,
    /// Held by a reservation across its storage I/O: reservations run one at a time.
    reserving: tokio::sync::Mutex<()>,
}

impl Lease {
    /// Takes the lease of `job_dir` with a new epoch, fencing every earlier writer. Ids at
    /// or above the returned lease's [`first_id`](Self::first_id) were never reserved;
    /// `min_first_id` raises that floor (the highest `chk-N/` on storage plus one).
    pub(crate) async fn acquire(
        store: &CheckpointStore,
        job_dir: &str,
        min_first_id: u64,
        owner: &str,
    ) -> Result<Lease> {
        for _ in 0..MAX_ATTEMPTS {
            let state = read_state_async(store, job_dir).await?;
            let epoch = state.epoch.checked_add(1).ok_or_else(|| {
                Error::corrupted("lease epoch overflows").with_context("path", lease_dir(job_dir))
            })?;
            let first_id = state.reserved_below.max(min_first_id);
            let record = format!("epoch={epoch}\nfirst_id={first_id}\nowner={owner}\n");
            match store
                .create_new_async(&epoch_path(job_dir, epoch), record.into_bytes())
                .await?
            {
                Created::Created => {
                    // A fenced writer may have reserved an id between the read above and the
                    // epoch's creation; it checks the lease after reserving, so it either
                    // saw this epoch (and stopped) or reserved before it: read again.
                    let first_id =
                        first_id.max(read_state_async(store, job_dir).await?.reserved_below);
                    tracing::info!(job_dir, epoch, first_id, "took the job directory's lease");
                    return Ok(Lease {
                        store: store.clone(),
                        job_dir: job_dir.to_owned(),
                        epoch,
                        start_id: first_id,
                        reserved_below: AtomicU64::new(first_id),
                        reserving: tokio::sync::Mutex::new(()),
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
        self.reserved_below.load(Ordering::SeqCst)
    }

    /// Fails with [`ErrorKind::Fenced`] when a newer epoch holds the lease.
    pub(crate) async fn check(&self, what: &str) -> Result<()> {
        let next = epoch_path(&self.job_dir, self.epoch + 1);
        if self.store.exists_async(&next).await? {
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

    /// Records what this writer saw when it listed the job directory: `present`, the ids of
    /// the `chk-N/` with a `_metadata` (see the module docs). Then the views of older epochs
    /// are redundant once the caller has dealt with the checkpoints they make late
    /// ([`prune_views`](Self::prune_views)).
    pub(crate) async fn publish_view(&self, present: &BTreeSet<u64>) -> Result<()> {
        let ids: Vec<String> = present.iter().map(u64::to_string).collect();
        let record = format!("first_id={}\npresent={}\n", self.start_id, ids.join(","));
        let path = view_path(&self.job_dir, self.epoch);
        match self
            .store
            .create_new_async(&path, record.into_bytes())
            .await?
        {
            Created::Created => Ok(()),
            Created::Existed => {
                Err(Error::internal("this epoch's view exists already").with_context("path", path))
            }
        }
    }

    /// Deletes the views of older epochs: everything they make late was dealt with by this
    /// writer, and every later publication by a fenced writer is late by this writer's view.
    /// `state` is the lease state the caller classified the job with. Best effort: a view
    /// left behind only costs a read.
    pub(crate) async fn prune_views(&self, state: &LeaseState) {
        for v in state.views.iter().filter(|v| v.epoch < self.epoch) {
            let _ = self
                .store
                .delete_async(&view_path(&self.job_dir, v.epoch))
                .await;
        }
    }

    /// Reserves checkpoint id `id` (and every id below it) before anything is written for
    /// it, so that no later writer uses it again.
    pub(crate) async fn reserve(&self, id: CheckpointId) -> Result<()> {
        let _reserving = self.reserving.lock().await;
        let below = self.reserved_below.load(Ordering::SeqCst);
        // A fenced writer begins nothing, also with an id it reserved before.
        self.check("begin a checkpoint").await?;
        if id.get() < self.start_id {
            // Reserved by an older writer: a checkpoint of this writer there would be below
            // its own view's first id and absent from it, i.e. taken for a fenced writer's
            // late publication and deleted by the next writer.
            return Err(Error::invalid_input(
                "checkpoint id below this writer's first id: older writers of the job \
                 reserved it (use next_checkpoint_id)",
            )
            .with_context("checkpoint", id)
            .with_context("first_id", self.start_id)
            .with_context("job_dir", &self.job_dir));
        }
        if id.get() < below {
            return Ok(());
        }
        let new_below = id.get().checked_add(1).ok_or_else(|| {
            Error::invalid_input("checkpoint id overflows").with_context("checkpoint", id)
        })?;
        let path = ids_path(&self.job_dir, self.epoch, new_below);
        self.store.create_new_async(&path, Vec::new()).await?;
        // After the reservation, not only before: a newer epoch that this check does not
        // see yet reads the reservations after creating its epoch, so it starts above it.
        self.check("reserve a checkpoint id").await?;
        // The previous reservation of this epoch is superseded (the highest one counts).
        if below > 0 {
            let _ = self
                .store
                .delete_async(&ids_path(&self.job_dir, self.epoch, below))
                .await;
        }
        self.reserved_below.store(new_below, Ordering::SeqCst);
        Ok(())
    }
}
