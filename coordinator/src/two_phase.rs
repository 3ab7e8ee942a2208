//! Two-phase-commit support for sinks (Flink's `TwoPhaseCommitSinkFunction`): records go
//! into a transaction; the snapshot *pre-commits* it and records it in operator state; the
//! checkpoint-complete notification *commits* it; a restore commits the transactions the
//! restored checkpoint had pre-committed and aborts the one that was open. Commits must be
//! idempotent, because a restore may commit a transaction that was already committed
//! before the failure.
//!
//! [`TransactionalFileSink`] is a real transactional sink over files: each transaction is
//! a temporary file, committed by an atomic rename.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cornerstone_backend_api::operator::{OperatorListState, OperatorStateBackend};
use cornerstone_backend_api::{CheckpointId, Error, ErrorKind, Result, StateValue};
use serde::{Deserialize, Serialize};

/// A sink with transactions (Flink's abstract methods of `TwoPhaseCommitSinkFunction`).
pub trait TransactionalSink: Send {
    /// What the sink writes.
    type Record;
    /// A transaction handle: plain data, kept in operator state across restores.
    type Transaction: StateValue + fmt::Debug;

    /// Opens a new transaction.
    ///
    /// # Errors
    /// I/O errors.
    fn begin_transaction(&mut self) -> Result<Self::Transaction>;

    /// Writes `record` into `txn`.
    ///
    /// # Errors
    /// I/O errors.
    fn write(&mut self, txn: &Self::Transaction, record: Self::Record) -> Result<()>;

    /// Makes `txn` durable so that a later commit cannot fail for lack of data (flush,
    /// fsync); no more records are written into it.
    ///
    /// # Errors
    /// I/O errors: the checkpoint is declined.
    fn pre_commit(&mut self, txn: &Self::Transaction) -> Result<()>;

    /// Commits `txn`. Must be idempotent: committing a committed transaction succeeds.
    ///
    /// # Errors
    /// I/O errors, or a transaction that is neither pending nor committed.
    fn commit(&mut self, txn: &Self::Transaction) -> Result<()>;

    /// Aborts `txn` (discards its records). Aborting an unknown transaction succeeds.
    ///
    /// # Errors
    /// I/O errors.
    fn abort(&mut self, txn: &Self::Transaction) -> Result<()>;
}

/// The operator-state name of the transactions of a [`TwoPhaseCommitSink`].
pub const TRANSACTIONS_STATE: &str = "two-phase-commit-transactions";

/// What a restore did with the transactions of the restored checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Pre-committed transactions committed (again, if they already were).
    pub committed: usize,
    /// Open transactions aborted.
    pub aborted: usize,
}

/// Drives a [`TransactionalSink`] through checkpoints (Flink's
/// `TwoPhaseCommitSinkFunction`).
///
/// - [`invoke`](Self::invoke) writes into the current transaction;
/// - [`snapshot_state`](Self::snapshot_state) (the synchronous phase of the sink's
///   snapshot) pre-commits it, keeps it pending under the checkpoint id, opens the next
///   one, and writes both into operator state — snapshot the operator state backend
///   afterwards;
/// - [`notify_checkpoint_complete`](Self::notify_checkpoint_complete) commits every pending
///   transaction up to that checkpoint;
/// - an aborted checkpoint leaves its transaction pending: the next completed checkpoint
///   commits it (its records are in that checkpoint too), as in Flink;
/// - [`initialize`](Self::initialize) on restore commits the restored pending transactions
///   and aborts the restored open one.
pub struct TwoPhaseCommitSink<S: TransactionalSink> {
    sink: S,
    current: S::Transaction,
    pending: BTreeMap<CheckpointId, S::Transaction>,
    state: OperatorListState<(Option<u64>, S::Transaction)>,
}

impl<S: TransactionalSink + fmt::Debug> fmt::Debug for TwoPhaseCommitSink<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoPhaseCommitSink")
            .field("sink", &self.sink)
            .field("current", &self.current)
            .field("pending", &self.pending)
            .finish()
    }
}

impl<S: TransactionalSink> TwoPhaseCommitSink<S> {
    /// Initializes the sink from `operator_state` (fresh or restored): recovers the restored
    /// transactions, then opens a new one.
    ///
    /// # Errors
    /// Decoding errors of the restored state; errors of the recovery commits and aborts.
    pub fn initialize(
        mut sink: S,
        operator_state: &OperatorStateBackend,
    ) -> Result<(Self, RecoveryReport)> {
        let state =
            operator_state.list_state::<(Option<u64>, S::Transaction)>(TRANSACTIONS_STATE)?;
        let mut report = RecoveryReport::default();
        let mut restored = state.get();
        // Commit in checkpoint order, abort the open ones afterwards.
        restored.sort_by_key(|(checkpoint, _)| checkpoint.map_or(u64::MAX, |c| c));
        for (checkpoint, txn) in &restored {
            match checkpoint {
                Some(id) => {
                    sink.commit(txn)
                        .map_err(|e| e.with_context("recovering transaction of checkpoint", id))?;
                    report.committed += 1;
                }
                None => {
                    sink.abort(txn)?;
                    report.aborted += 1;
                }
            }
        }
        let current = sink.begin_transaction()?;
        state.update(vec![(None, current.clone())]);
        Ok((
            TwoPhaseCommitSink {
                sink,
                current,
                pending: BTreeMap::new(),
                state,
            },
            report,
        ))
    }

    /// Writes `record` into the current transaction.
    ///
    /// # Errors
    /// The sink's write errors.
    pub fn invoke(&mut self, record: S::Record) -> Result<()> {
        self.sink.write(&self.current, record)
    }

    /// Pre-commits the current transaction for checkpoint `id`, opens the next one and
    /// records both in operator state.
    ///
    /// # Errors
    /// Errors of the pre-commit (decline the checkpoint) or of opening the next transaction.
    pub fn snapshot_state(&mut self, id: CheckpointId) -> Result<()> {
        self.sink
            .pre_commit(&self.current)
            .map_err(|e| e.with_context("checkpoint", id))?;
        let next = self.sink.begin_transaction()?;
        let done = std::mem::replace(&mut self.current, next);
        self.pending.insert(id, done);
        let mut entries: Vec<(Option<u64>, S::Transaction)> = self
            .pending
            .iter()
            .map(|(id, txn)| (Some(id.get()), txn.clone()))
            .collect();
        entries.push((None, self.current.clone()));
        self.state.update(entries);
        Ok(())
    }

    /// Commits every pending transaction up to checkpoint `id`, oldest first.
    ///
    /// # Errors
    /// The sink's commit errors (the transaction stays pending and is committed again on
    /// the next notification or restore).
    pub fn notify_checkpoint_complete(&mut self, id: CheckpointId) -> Result<usize> {
        let ready: Vec<CheckpointId> = self.pending.range(..=id).map(|(c, _)| *c).collect();
        for c in &ready {
            if let Some(txn) = self.pending.get(c) {
                self.sink
                    .commit(txn)
                    .map_err(|e| e.with_context("checkpoint", c))?;
                self.pending.remove(c);
            }
        }
        Ok(ready.len())
    }

    /// Checkpoint `id` was aborted: its transaction stays pending (see the type's docs).
    pub fn notify_checkpoint_aborted(&mut self, id: CheckpointId) {
        tracing::debug!(checkpoint = %id, pending = self.pending.len(), "checkpoint aborted; transactions stay pending");
    }

    /// Pre-committed transactions waiting for a checkpoint to complete.
    pub fn pending_transactions(&self) -> Vec<(CheckpointId, S::Transaction)> {
        self.pending.iter().map(|(c, t)| (*c, t.clone())).collect()
    }

    /// The open transaction.
    pub fn current_transaction(&self) -> &S::Transaction {
        &self.current
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, mutably (e.g. for [`TransactionalFileSink::abort_lingering`]).
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Closes the sink: aborts the open transaction (Flink's `close`). Pending
    /// pre-committed transactions are left for the next restore to commit.
    ///
    /// # Errors
    /// The sink's abort errors.
    pub fn close(mut self) -> Result<S> {
        self.sink.abort(&self.current)?;
        Ok(self.sink)
    }
}

/// A transaction of a [`TransactionalFileSink`]: one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileTransaction {
    /// The file name, unique (`part-<prefix>-<uuid>`).
    pub name: String,
}

// The default identity (the type's path), which checkpoints of earlier releases recorded.
cornerstone_backend_api::state_type!(FileTransaction);

/// Where a [`TransactionalFileSink`] keeps transactions in progress, under its directory.
pub const PENDING_DIR: &str = ".pending";

/// A transactional sink of text lines into a directory: each transaction is a file
/// `<dir>/.pending/<name>`, written and fsynced by the pre-commit, and committed by an atomic
/// rename to `<dir>/<name>`. Committing again a committed transaction succeeds; committing
/// a transaction that is neither pending nor committed is a [`ErrorKind::NotFound`] error
/// naming the path (its data is lost).
pub struct TransactionalFileSink {
    dir: PathBuf,
    prefix: String,
    writers: HashMap<String, BufWriter<File>>,
}

impl fmt::Debug for TransactionalFileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionalFileSink")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("open", &self.writers.len())
            .finish()
    }
}

impl TransactionalFileSink {
    /// A sink writing into `dir` (created if missing), naming files `part-<prefix>-<uuid>`.
    ///
    /// # Errors
    /// I/O errors creating the directories, naming the path.
    pub fn open(dir: impl Into<PathBuf>, prefix: &str) -> Result<Self> {
        let dir = dir.into();
        let pending = dir.join(PENDING_DIR);
        fs::create_dir_all(&pending).map_err(|e| {
            Error::io("create the sink directory", e).with_context("path", pending.display())
        })?;
        Ok(TransactionalFileSink {
            dir,
            prefix: prefix.to_owned(),
            writers: HashMap::new(),
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pending_path(&self, txn: &FileTransaction) -> Result<PathBuf> {
        check_name(&txn.name)?;
        Ok(self.dir.join(PENDING_DIR).join(&txn.name))
    }

    fn final_path(&self, txn: &FileTransaction) -> Result<PathBuf> {
        check_name(&txn.name)?;
        Ok(self.dir.join(&txn.name))
    }

    /// Deletes this sink's transaction files (those of its prefix) in `.pending/` other
    /// than `keep`: transactions of failed attempts that no checkpoint recorded, so no
    /// restore will ever commit them. Call it after [`TwoPhaseCommitSink::initialize`]
    /// (which commits or aborts every recorded one), with the open transaction in `keep`,
    /// while no other instance with the same prefix runs. Returns how many it deleted.
    ///
    /// # Errors
    /// I/O errors naming the path.
    pub fn abort_lingering(&mut self, keep: &[FileTransaction]) -> Result<usize> {
        let pending = self.dir.join(PENDING_DIR);
        let own = format!("part-{}-", self.prefix);
        let list_err =
            |e| Error::io("list pending transactions", e).with_context("path", pending.display());
        let mut deleted = 0;
        for entry in fs::read_dir(&pending).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&own) && !keep.iter().any(|t| t.name == name) {
                self.abort(&FileTransaction { name })?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// The committed files of `dir` (not the pending ones), sorted.
    ///
    /// # Errors
    /// I/O errors naming the directory.
    pub fn committed_files(dir: &Path) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| {
            Error::io("list the sink directory", e).with_context("path", dir.display())
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                Error::io("list the sink directory", e).with_context("path", dir.display())
            })?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("part-") && entry.path().is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Error::invalid_input("bad transaction file name").with_context("name", name));
    }
    Ok(())
}

impl TransactionalSink for TransactionalFileSink {
    type Record = String;
    type Transaction = FileTransaction;

    fn begin_transaction(&mut self) -> Result<FileTransaction> {
        let txn = FileTransaction {
            name: format!("part-{}-{}", self.prefix, uuid::Uuid::new_v4().simple()),
        };
        let path = self.pending_path(&txn)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                Error::io("create a transaction file", e).with_context("path", path.display())
            })?;
        self.writers.insert(txn.name.clone(), BufWriter::new(file));
        Ok(txn)
    }

    fn write(&mut self, txn: &FileTransaction, record: String) -> Result<()> {
        let writer = self.writers.get_mut(&txn.name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "write into a transaction that is not open",
            )
            .with_context("transaction", &txn.name)
        })?;
        writer
            .write_all(record.as_bytes())
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(|e| {
                Error::io("write a transaction file", e).with_context("transaction", &txn.name)
            })
    }

    fn pre_commit(&mut self, txn: &FileTransaction) -> Result<()> {
        let path = self.pending_path(txn)?;
        let Some(writer) = self.writers.remove(&txn.name) else {
            // Already pre-committed.
            return Ok(());
        };
        let file = writer.into_inner().map_err(|e| {
            Error::io("flush a transaction file", e.into_error())
                .with_context("path", path.display())
        })?;
        file.sync_all().map_err(|e| {
            Error::io("fsync a transaction file", e).with_context("path", path.display())
        })
    }

    fn commit(&mut self, txn: &FileTransaction) -> Result<()> {
        let from = self.pending_path(txn)?;
        let to = self.final_path(txn)?;
        self.writers.remove(&txn.name);
        match fs::rename(&from, &to) {
            Ok(()) => {
                // Make the rename durable (best effort on platforms without directory fsync).
                if let Ok(d) = File::open(&self.dir) {
                    let _ = d.sync_all();
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if to.is_file() {
                    Ok(()) // committed before: idempotent
                } else {
                    Err(Error::not_found(
                        "transaction is neither pending nor committed: its records are lost",
                    )
                    .with_context("transaction", &txn.name)
                    .with_context("path", from.display()))
                }
            }
            Err(e) => {
                Err(Error::io("commit a transaction file", e).with_context("path", from.display()))
            }
        }
    }

    fn abort(&mut self, txn: &FileTransaction) -> Result<()> {
        let path = self.pending_path(txn)?;
        self.writers.remove(&txn.name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                Err(Error::io("abort a transaction file", e).with_context("path", path.display()))
            }
        }
    }
}
