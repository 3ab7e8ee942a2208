//! Read-only inspection of checkpoint storage, for the `cornerstone` command-line tool:
//! [`list`], [`show`], [`verify`], [`gc_candidates`] (and [`gc_delete`], the one call here
//! that deletes), [`diff`].
//!
//! Every function takes a [`CheckpointStore`] and a path inside it (`""` is the store's
//! root); see [`CheckpointStore::open_location`] to turn a local path or URL into both.
//! The returned types are plain data with public fields, ready to print or serialize.

use std::collections::{BTreeMap, BTreeSet};

use cornerstone_backend_api::format::{self, incremental};
use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{
    CheckpointId, Error, ErrorKind, FileStateHandle, KeyedStateHandle, Result, StateMeta,
    StateScope, StreamStateHandle, SubtaskState,
};

use crate::completed::{CompletedCheckpoint, checkpoint_dirs};
use crate::layout;
use crate::lease;
use crate::metadata::{CheckpointMetadata, SnapshotKind};
use crate::status::{self, AgeGuard, CheckpointDirStatus};
use crate::store::{CheckpointStore, StoreStateReader};
use cornerstone_backend_api::keyed_format::read_header;

/// Whether a `chk-N/` or savepoint directory can be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// `_metadata` exists and decodes.
    Complete,
    /// No `_metadata`: never committed (or being written); garbage for `gc`.
    Incomplete,
    /// `_metadata` exists but does not decode; the message says why.
    Corrupt(String),
    /// `_metadata` was written by a newer format version; the message says which.
    NewerFormat(String),
    /// `_metadata` decodes, but a fenced writer published it after a newer writer took
    /// over: never restored (see [`lease`]); garbage for `gc`.
    Fenced,
}

impl SnapshotStatus {
    /// `"complete"`, `"incomplete"`, `"corrupt"`, `"newer-format"` or `"fenced"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SnapshotStatus::Complete => "complete",
            SnapshotStatus::Incomplete => "incomplete",
            SnapshotStatus::Corrupt(_) => "corrupt",
            SnapshotStatus::NewerFormat(_) => "newer-format",
            SnapshotStatus::Fenced => "fenced",
        }
    }
}

/// One checkpoint or savepoint found by [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSnapshot {
    /// Checkpoint or savepoint (by directory name when the metadata is unreadable).
    pub kind: SnapshotKind,
    /// The checkpoint id: from the directory name for `chk-N/`, from `_metadata` for
    /// savepoints (`None` when unreadable).
    pub id: Option<CheckpointId>,
    /// The directory (inside the store).
    pub dir: String,
    /// Complete, incomplete or corrupt.
    pub status: SnapshotStatus,
    /// When it was triggered (ms since the epoch), if known.
    pub trigger_timestamp_ms: Option<u64>,
    /// When it completed (ms since the epoch), if known.
    pub completed_timestamp_ms: Option<u64>,
    /// The referenced state size (inline and files) for complete ones; otherwise the bytes
    /// in the directory.
    pub size_bytes: u64,
    /// For complete ones: whether keyed state is incremental (native snapshots that share
    /// files with earlier checkpoints) rather than full.
    pub incremental: Option<bool>,
    /// For complete checkpoints: what this one wrote, its state size minus the files it
    /// shares with the complete checkpoint listed before it.
    pub written_bytes: Option<u64>,
}

/// Lists the checkpoints (`chk-N/`, sorted by id as numbers) and savepoints
/// (`savepoint-*/`) directly in `dir` (a job directory, or a directory of savepoints).
///
/// # Errors
/// Storage errors while listing; unreadable snapshots are reported as entries, not errors.
pub fn list(store: &CheckpointStore, dir: &str) -> Result<Vec<ListedSnapshot>> {
    let dir = layout::normalize_dir(dir)?;
    let mut out = Vec::new();
    let chks = checkpoint_dirs(store, &dir)?;
    let lease = if chks.is_empty() {
        lease::LeaseState::default()
    } else {
        lease::read_state(store, &dir)?
    };
    // The files of the complete checkpoint listed last: what the next one may share.
    let mut previous: BTreeMap<String, u64> = BTreeMap::new();
    for (id, chk) in chks {
        let (mut entry, files) = describe(store, &chk, SnapshotKind::Checkpoint, Some(id), &lease)?;
        if let Some(files) = files {
            let shared: u64 = files
                .iter()
                .filter(|(p, _)| previous.contains_key(*p))
                .map(|(_, s)| s)
                .sum();
            entry.written_bytes = Some(entry.size_bytes.saturating_sub(shared));
            previous = files;
        }
        out.push(entry);
    }
    let mut savepoints: Vec<String> = store
        .list(&dir, false)?
        .into_iter()
        .filter(|e| e.is_dir && layout::is_savepoint_dir(layout::file_name(&e.path)))
        .map(|e| e.path)
        .collect();
    savepoints.sort();
    for sp in savepoints {
        let sp = layout::normalize_dir(&sp)?;
        let (entry, _) = describe(
            store,
            &sp,
            SnapshotKind::Savepoint,
            None,
            &lease::LeaseState::default(),
        )?;
        out.push(entry);
    }
    Ok(out)
}

fn dir_size(store: &CheckpointStore, dir: &str) -> Result<u64> {
    let mut total = 0;
    for e in store.list(dir, true)? {
        if !e.is_dir {
            total = u64::saturating_add(total, store.size(&e.path).unwrap_or(0));
        }
    }
    Ok(total)
}

fn describe(
    store: &CheckpointStore,
    dir: &str,
    kind: SnapshotKind,
    id: Option<CheckpointId>,
    lease: &lease::LeaseState,
) -> Result<(ListedSnapshot, Option<BTreeMap<String, u64>>)> {
    let meta = layout::metadata_path(dir);
    let mut entry = ListedSnapshot {
        kind,
        id,
        dir: dir.to_owned(),
        status: SnapshotStatus::Incomplete,
        trigger_timestamp_ms: None,
        completed_timestamp_ms: None,
        size_bytes: 0,
        incremental: None,
        written_bytes: None,
    };
    let mut files = None;
    let status = match id {
        Some(id) => status::with_lease(status::classify(store, dir, id, None)?, id, lease),
        None => status::metadata_status(store, &meta)?.unwrap_or(CheckpointDirStatus::InProgress),
    };
    match status {
        CheckpointDirStatus::Complete(done) => {
            let m = &done.metadata;
            entry.kind = m.kind;
            entry.id = Some(id.unwrap_or(m.checkpoint_id));
            entry.status = SnapshotStatus::Complete;
            entry.trigger_timestamp_ms = Some(m.trigger_timestamp_ms);
            entry.completed_timestamp_ms = Some(m.completed_timestamp_ms);
            entry.size_bytes = m.state_size();
            entry.incremental = Some(m.operators.iter().any(|op| {
                op.subtasks.values().any(|st| {
                    st.keyed
                        .iter()
                        .any(|k| matches!(k, KeyedStateHandle::Incremental(_)))
                })
            }));
            files = Some(
                m.files()
                    .into_iter()
                    .map(|f| (layout::join(&done.base_dir, &f.path), f.size))
                    .collect(),
            );
        }
        CheckpointDirStatus::InProgress | CheckpointDirStatus::Abandoned => {
            entry.size_bytes = dir_size(store, dir)?;
        }
        CheckpointDirStatus::Fenced(done) => {
            entry.status = SnapshotStatus::Fenced;
            entry.trigger_timestamp_ms = Some(done.metadata.trigger_timestamp_ms);
            entry.completed_timestamp_ms = Some(done.metadata.completed_timestamp_ms);
            entry.size_bytes = dir_size(store, dir)?;
        }
        CheckpointDirStatus::Corrupt(e) => {
            entry.status = SnapshotStatus::Corrupt(e.to_string());
            entry.size_bytes = dir_size(store, dir)?;
        }
        CheckpointDirStatus::NewerFormat(e) => {
            entry.status = SnapshotStatus::NewerFormat(e.to_string());
            entry.size_bytes = dir_size(store, dir)?;
        }
    }
    Ok((entry, files))
}

/// Where one stream of a handle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamLocation {
    /// Inline in `_metadata`, with its size.
    Inline {
        /// Bytes.
        size: u64,
    },
    /// A file.
    File {
        /// The path in the store.
        path: String,
        /// Who owns it.
        scope: StateScope,
        /// Bytes, as recorded in the handle.
        size: u64,
        /// The CRC32 recorded in the handle.
        crc32: u32,
    },
}

/// One state handle of a subtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleSummary {
    /// `"keyed"`, `"incremental"` or `"operator"`.
    pub kind: &'static str,
    /// The key groups of a keyed handle (inclusive), `None` for operator state or an
    /// empty range.
    pub key_groups: Option<(u32, u32)>,
    /// The operator-state names of an operator handle.
    pub state_names: Vec<String>,
    /// The streams it references.
    pub streams: Vec<StreamLocation>,
}

/// One subtask of an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtaskSummary {
    /// The subtask index.
    pub index: u32,
    /// Its handles.
    pub handles: Vec<HandleSummary>,
    /// Total referenced bytes.
    pub state_size: u64,
}

/// One state of an operator, as the snapshot's own headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSummary {
    /// The state's name.
    pub name: String,
    /// Its kind: `value`, `list`, `map`, `reducing`, `aggregating`, `timers` (keyed), or
    /// `split`, `union`, `broadcast` (operator state).
    pub kind: String,
    /// The key type (keyed state).
    pub key_type: Option<String>,
    /// The namespace type (keyed state).
    pub namespace_type: Option<String>,
    /// The map key type (map state).
    pub user_key_type: Option<String>,
    /// The value type; the element type of list and operator state; `i64` (the timestamp)
    /// for timers.
    pub value_type: String,
    /// Whether it has a time-to-live.
    pub ttl: bool,
}

/// One operator of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSummary {
    /// Stable uid.
    pub uid: String,
    /// Name.
    pub name: String,
    /// Parallelism.
    pub parallelism: u32,
    /// Max parallelism (number of key groups).
    pub max_parallelism: u32,
    /// The subtasks that have state.
    pub subtasks: Vec<SubtaskSummary>,
    /// Its states by name, from the headers of its keyed snapshots (full and incremental)
    /// and its operator-state handles; a header that cannot be read adds none (`verify`
    /// says why).
    pub states: Vec<StateSummary>,
    /// Total referenced bytes.
    pub state_size: u64,
}

/// What [`show`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotDetails {
    /// The decoded metadata and its location.
    pub snapshot: CompletedCheckpoint,
    /// The size of the `_metadata` file.
    pub metadata_size: u64,
    /// Per operator.
    pub operators: Vec<OperatorSummary>,
    /// Every referenced file (path in the store → size recorded in the handle).
    pub files: BTreeMap<String, u64>,
    /// Total referenced bytes (inline and files).
    pub state_size: u64,
}

fn locate(base: &str, s: &StreamStateHandle) -> StreamLocation {
    match s {
        StreamStateHandle::Inline(b) => StreamLocation::Inline {
            size: b.len() as u64,
        },
        StreamStateHandle::File(f) => StreamLocation::File {
            path: layout::join(base, &f.path),
            scope: f.scope,
            size: f.size,
            crc32: f.crc32,
        },
    }
}

/// The state names of a full keyed snapshot, from its stream's header (a small range read);
/// a header that cannot be read is named as such (`verify` says why).
fn keyed_state_names(reader: &StoreStateReader, handle: &KeyedStateHandle) -> Vec<String> {
    match handle {
        KeyedStateHandle::KeyGroups(h) => match read_header(h, Some(reader)) {
            Ok(header) => header.states.into_iter().map(|s| s.name).collect(),
            Err(e) => vec![format!("<header unreadable: {}>", e.kind())],
        },
        KeyedStateHandle::Incremental(_) => Vec::new(),
    }
}

/// The states an operator's handles describe, by name (each once: the first handle that
/// names a state describes it).
fn operator_states(
    reader: &StoreStateReader,
    op: &crate::metadata::OperatorState,
) -> Vec<StateSummary> {
    let mut states: BTreeMap<String, StateSummary> = BTreeMap::new();
    let keyed =
        |states: &mut BTreeMap<String, StateSummary>, key_type: &str, metas: Vec<StateMeta>| {
            for m in metas {
                states
                    .entry(m.name.clone())
                    .or_insert_with(|| StateSummary {
                        kind: m.kind.name().to_owned(),
                        key_type: Some(key_type.to_owned()),
                        namespace_type: Some(m.namespace_type),
                        user_key_type: m.user_key_type,
                        value_type: m.value_type,
                        ttl: m.ttl,
                        name: m.name,
                    });
            }
        };
    // One header per distinct stream is enough: every subtask writes the same states.
    let mut seen_full = false;
    let mut seen_incremental = false;
    for st in op.subtasks.values() {
        for handle in &st.keyed {
            match handle {
                KeyedStateHandle::KeyGroups(h) if !seen_full => {
                    if let Ok(header) = read_header(h, Some(reader)) {
                        keyed(&mut states, &header.key_type, header.states);
                        seen_full = true;
                    }
                }
                KeyedStateHandle::Incremental(h) if !seen_incremental => {
                    let what = format::describe(&h.meta);
                    let meta = read_stream(&h.meta, Some(reader))
                        .and_then(|bytes| incremental::decode(&bytes, &what));
                    if let Ok(meta) = meta {
                        keyed(
                            &mut states,
                            &meta.key_type,
                            meta.states.into_iter().map(|s| s.meta).collect(),
                        );
                        seen_incremental = true;
                    }
                }
                _ => {}
            }
        }
        for handle in &st.operator {
            for (name, meta) in &handle.states {
                states.entry(name.clone()).or_insert_with(|| StateSummary {
                    name: name.clone(),
                    kind: meta.mode.name().to_owned(),
                    key_type: None,
                    namespace_type: None,
                    user_key_type: None,
                    value_type: meta.element_type.clone(),
                    ttl: false,
                });
            }
        }
    }
    states.into_values().collect()
}

/// Shows a checkpoint or savepoint (any location [`CheckpointStore::resolve`] accepts):
/// operators, parallelism, max parallelism, per-subtask key-group ranges, handles, files and
/// sizes.
///
/// # Errors
/// Resolution and decoding errors.
pub fn show(store: &CheckpointStore, path: &str) -> Result<SnapshotDetails> {
    let snapshot = store.resolve(path)?;
    let base = snapshot.base_dir.clone();
    let metadata_size = store.size(&snapshot.metadata_path)?;
    let m: &CheckpointMetadata = &snapshot.metadata;
    let reader = store.reader(&base);
    let mut sorted: Vec<&crate::metadata::OperatorState> = m.operators.iter().collect();
    // By uid: the same order for every checkpoint of a job, whatever order wrote them.
    sorted.sort_by(|a, b| a.uid.cmp(&b.uid));
    let operators = sorted
        .into_iter()
        .map(|op| OperatorSummary {
            uid: op.uid.clone(),
            name: op.name.clone(),
            parallelism: op.parallelism,
            max_parallelism: op.max_parallelism,
            state_size: op.state_size(),
            states: operator_states(&reader, op),
            subtasks: op
                .subtasks
                .iter()
                .map(|(&index, st)| SubtaskSummary {
                    index,
                    state_size: st.state_size(),
                    handles: st
                        .keyed
                        .iter()
                        .map(|k| HandleSummary {
                            kind: match k {
                                KeyedStateHandle::KeyGroups(_) => "keyed",
                                KeyedStateHandle::Incremental(_) => "incremental",
                            },
                            key_groups: k
                                .key_group_range()
                                .as_inclusive()
                                .map(|r| (*r.start(), *r.end())),
                            state_names: keyed_state_names(&reader, k),
                            streams: k.streams().into_iter().map(|s| locate(&base, s)).collect(),
                        })
                        .chain(st.operator.iter().map(|o| HandleSummary {
                            kind: "operator",
                            key_groups: None,
                            state_names: o.states.keys().cloned().collect(),
                            streams: vec![locate(&base, &o.stream)],
                        }))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let files = m
        .files()
        .into_iter()
        .map(|f| (layout::join(&base, &f.path), f.size))
        .collect();
    Ok(SnapshotDetails {
        state_size: m.state_size(),
        snapshot,
        metadata_size,
        operators,
        files,
    })
}

/// What kind of problem [`verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// `_metadata` is missing, unreadable or does not decode.
    Metadata,
    /// A referenced file does not exist.
    MissingFile,
    /// A referenced file has another size than its handle says.
    SizeMismatch,
    /// A referenced file's CRC32 differs from its handle's.
    ChecksumMismatch,
    /// A referenced file could not be read.
    Unreadable,
    /// A savepoint references a file outside its directory (it would not be relocatable).
    NotSelfContained,
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The path in the store.
    pub path: String,
    /// Details: expected and actual sizes or checksums, the error.
    pub detail: String,
}

/// What [`verify`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// The `_metadata` that was verified (empty if none was found).
    pub metadata_path: String,
    /// The checkpoint id, if `_metadata` decoded.
    pub checkpoint_id: Option<CheckpointId>,
    /// How many files were checked.
    pub files_checked: usize,
    /// How many bytes were read.
    pub bytes_read: u64,
    /// Every problem found; empty when the snapshot is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies a checkpoint or savepoint: decodes `_metadata`, then reads every referenced file
/// in full and checks its size and CRC32. Every problem is reported, not just the first.
/// `progress` is called after each file with (files done, files total).
///
/// # Errors
/// Only when the location cannot be resolved at all ([`ErrorKind::NotFound`]); a corrupt
/// `_metadata` named explicitly is a [`ProblemKind::Metadata`] problem.
pub fn verify(
    store: &CheckpointStore,
    path: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let snapshot = match store.resolve(path) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported) => {
            report.metadata_path = e.context("path").unwrap_or(path).to_owned();
            report.problems.push(Problem {
                kind: ProblemKind::Metadata,
                path: report.metadata_path.clone(),
                detail: e.to_string(),
            });
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    report.metadata_path = snapshot.metadata_path.clone();
    report.checkpoint_id = Some(snapshot.id());
    let files: Vec<&FileStateHandle> = snapshot.metadata.files();
    let total = files.len();
    for (i, f) in files.into_iter().enumerate() {
        let full = layout::join(&snapshot.base_dir, &f.path);
        if snapshot.metadata.kind == SnapshotKind::Savepoint && f.path.contains('/') {
            report.problems.push(Problem {
                kind: ProblemKind::NotSelfContained,
                path: full.clone(),
                detail: "savepoint file is not directly in the savepoint directory".into(),
            });
        }
        // Streamed: a file of any size costs one chunk of memory.
        match store.size_and_crc32(&full) {
            Ok((size, crc)) => {
                report.bytes_read += size;
                if size != f.size {
                    report.problems.push(Problem {
                        kind: ProblemKind::SizeMismatch,
                        path: full.clone(),
                        detail: format!("expected {} bytes, found {size}", f.size),
                    });
                } else if crc != f.crc32 {
                    report.problems.push(Problem {
                        kind: ProblemKind::ChecksumMismatch,
                        path: full.clone(),
                        detail: format!("expected crc32 {:08x}, found {crc:08x}", f.crc32),
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => report.problems.push(Problem {
                kind: ProblemKind::MissingFile,
                path: full.clone(),
                detail: format!("referenced file does not exist (expected {} bytes)", f.size),
            }),
            Err(e) => report.problems.push(Problem {
                kind: ProblemKind::Unreadable,
                path: full.clone(),
                detail: e.to_string(),
            }),
        }
        report.files_checked += 1;
        progress(i + 1, total);
    }
    Ok(report)
}

/// Why a file is a garbage-collection candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GcReason {
    /// In `shared/`, referenced by no complete checkpoint.
    UnreferencedShared,
    /// In a complete `chk-N/`, but not referenced by it or any other complete checkpoint.
    UnreferencedExclusive,
    /// In an abandoned `chk-N/` (no `_metadata`, nothing changed for the min age).
    IncompleteCheckpoint,
    /// In a `chk-N/` whose `_metadata` a fenced writer published after a newer writer took
    /// over (never restorable; see [`lease`]), `_metadata` included.
    FencedCheckpoint,
}

/// One garbage-collection candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcCandidate {
    /// The path in the store.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Why it is garbage.
    pub reason: GcReason,
}

/// What garbage collection keeps although nothing references it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcKept {
    /// A directory or file in the store.
    pub path: String,
    /// Why it is kept.
    pub why: String,
}

/// How [`gc_candidates`] and [`gc_delete`] decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Nothing modified more recently than this is a candidate, and a writer whose lease
    /// shows activity within it is live. Keep it above the checkpoint timeout: an upload
    /// in progress is never older than that. Default: one hour.
    pub min_age_ms: u64,
    /// Now, in milliseconds since the epoch (from the caller's clock).
    pub now_ms: u64,
    /// Delete even while the job directory's lease shows a live writer. The writer is
    /// fenced by the deletion (its next commit fails with [`ErrorKind::Fenced`]).
    pub force: bool,
}

impl GcOptions {
    /// The default min age: one hour.
    pub const DEFAULT_MIN_AGE_MS: u64 = 60 * 60 * 1000;

    /// Options with the default min age at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        GcOptions {
            min_age_ms: Self::DEFAULT_MIN_AGE_MS,
            now_ms,
            force: false,
        }
    }

    /// Sets the min age.
    #[must_use]
    pub fn with_min_age_ms(mut self, min_age_ms: u64) -> Self {
        self.min_age_ms = min_age_ms;
        self
    }

    /// Sets [`force`](Self::force).
    #[must_use]
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    fn age(&self) -> AgeGuard {
        AgeGuard {
            now_ms: self.now_ms,
            min_age_ms: self.min_age_ms,
        }
    }
}

/// What [`gc_candidates`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcReport {
    /// The job directory.
    pub job_dir: String,
    /// The complete checkpoints whose references were kept.
    pub retained: Vec<CheckpointId>,
    /// The files no complete checkpoint references.
    pub candidates: Vec<GcCandidate>,
    /// What is kept although unreferenced (in-progress checkpoints, unreadable ones,
    /// `shared/` while a `_metadata` is unreadable, files younger than the min age).
    pub kept: Vec<GcKept>,
}

impl GcReport {
    /// The total size of the candidates.
    pub fn total_size(&self) -> u64 {
        self.candidates
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.size))
    }
}

/// Finds the files under `shared/` and `chk-*/` of a job directory that no complete
/// checkpoint in it references and that are safe to delete beside a live job: nothing
/// modified within the min age, nothing of a checkpoint in progress, nothing of a checkpoint
/// whose `_metadata` is unreadable (corrupt, or of a newer format) and, while such a
/// `_metadata` exists, no `shared/` file (it may reference them). `taskowned/` is the task's
/// and never a candidate. [`GcReport::kept`] says what was kept and why.
///
/// # Errors
/// Storage errors (transient ones included: nothing is a candidate by default).
pub fn gc_candidates(
    store: &CheckpointStore,
    job_dir: &str,
    options: &GcOptions,
) -> Result<GcReport> {
    let job_dir = layout::normalize_dir(job_dir)?;
    let age = options.age();
    let mut complete = Vec::new();
    let mut dirs = Vec::new();
    let mut kept = Vec::new();
    let mut unreadable = Vec::new();
    for (_, dir, st) in status::classify_job(store, &job_dir, Some(age))? {
        match st {
            CheckpointDirStatus::Complete(done) => {
                complete.push(done);
                dirs.push((dir, GcReason::UnreferencedExclusive));
            }
            CheckpointDirStatus::Abandoned => dirs.push((dir, GcReason::IncompleteCheckpoint)),
            CheckpointDirStatus::Fenced(_) => dirs.push((dir, GcReason::FencedCheckpoint)),
            CheckpointDirStatus::InProgress => kept.push(GcKept {
                path: dir,
                why: format!(
                    "no _metadata, but a file changed within the min age ({} ms): a checkpoint may be in progress",
                    options.min_age_ms
                ),
            }),
            CheckpointDirStatus::Corrupt(e) | CheckpointDirStatus::NewerFormat(e) => {
                kept.push(GcKept {
                    path: dir.clone(),
                    why: format!("_metadata is unreadable ({e}): never garbage"),
                });
                unreadable.push(layout::metadata_path(&dir));
            }
        }
    }
    let referenced: BTreeSet<String> = complete
        .iter()
        .flat_map(CompletedCheckpoint::file_paths)
        .map(|(p, _)| p)
        .collect();
    let metadata_paths: BTreeSet<&str> =
        complete.iter().map(|c| c.metadata_path.as_str()).collect();
    let mut candidates = Vec::new();
    let mut young = 0usize;
    let mut consider = |path: String, reason: GcReason| -> Result<()> {
        if referenced.contains(&path) || metadata_paths.contains(path.as_str()) {
            return Ok(());
        }
        // Every file is aged, also in an abandoned directory: a writer may have started
        // uploading into it since it was classified.
        let modified = match store.modified_ms(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !age.is_old(modified) {
            young += 1;
            return Ok(());
        }
        let size = store.size(&path).unwrap_or(0);
        candidates.push(GcCandidate { path, size, reason });
        Ok(())
    };
    for (dir, reason) in dirs {
        for e in store.list(&dir, true)? {
            if !e.is_dir {
                consider(e.path, reason)?;
            }
        }
    }
    let shared = layout::shared_dir(&job_dir);
    if unreadable.is_empty() {
        for e in store.list(&shared, true)? {
            if !e.is_dir {
                consider(e.path, GcReason::UnreferencedShared)?;
            }
        }
    } else {
        kept.push(GcKept {
            path: shared,
            why: format!(
                "no shared file is collected while a _metadata is unreadable (it may reference them): {}",
                unreadable.join(", ")
            ),
        });
    }
    if young > 0 {
        kept.push(GcKept {
            path: job_dir.clone(),
            why: format!(
                "{young} unreferenced file(s) changed within the min age ({} ms)",
                options.min_age_ms
            ),
        });
    }
    Ok(GcReport {
        job_dir,
        retained: complete.iter().map(CompletedCheckpoint::id).collect(),
        candidates,
        kept,
    })
}

/// Deletes the candidates of a [`gc_candidates`] report. First it takes the job
/// directory's lease (so no writer that might reference them commits afterwards), unless a
/// live writer holds it: one whose lease shows activity within the min age, which is refused
/// unless [`GcOptions::force`]. Then it re-checks every candidate against storage as it is
/// now (a checkpoint may have completed since). Returns the number of files deleted.
///
/// Taking the lease fences the job's current writer: a job that is running must be
/// restarted afterwards (it restores from its latest checkpoint).
///
/// # Errors
/// [`ErrorKind::Unavailable`] when a live writer holds the lease (the message says since
/// when) and `force` is not set; storage errors.
pub fn gc_delete(store: &CheckpointStore, report: &GcReport, options: &GcOptions) -> Result<usize> {
    if report.candidates.is_empty() {
        return Ok(0);
    }
    let lease_state = lease::read_state(store, &report.job_dir)?;
    if let Some(last) = lease_state.last_activity_ms
        && !options.force
        && !options.age().is_old(Some(last))
    {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "a live writer holds the job directory's lease; stop the job first, wait for the min age, or force",
        )
        .with_context("path", lease::lease_dir(&report.job_dir))
        .with_context("epoch", lease_state.epoch)
        .with_context("last activity", format!("{} ms ago", options.now_ms.saturating_sub(last))));
    }
    let first_id = checkpoint_dirs(store, &report.job_dir)?
        .last()
        .map_or(1, |(id, _)| id.get().saturating_add(1));
    let taken = lease::Lease::acquire(store, &report.job_dir, first_id, "cornerstone gc")?;
    crate::completed::sync_job_dirs(
        store,
        &report.job_dir,
        &checkpoint_dirs(store, &report.job_dir)?,
    )?;
    let fresh = gc_candidates(store, &report.job_dir, options)?;
    let still: BTreeSet<&str> = fresh.candidates.iter().map(|c| c.path.as_str()).collect();
    let mut deleted = 0;
    let mut dirs = BTreeSet::new();
    for c in &report.candidates {
        if still.contains(c.path.as_str()) {
            taken.check("gc delete")?;
            store.delete(&c.path)?;
            dirs.insert(layout::parent_dir(&c.path));
            deleted += 1;
        }
    }
    for d in dirs {
        if d != layout::shared_dir(&report.job_dir) {
            store.delete_dir_if_empty(&d);
        }
    }
    Ok(deleted)
}

/// How an operator changed between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorChange {
    /// The uid.
    pub uid: String,
    /// Parallelism in a and b.
    pub parallelism: (u32, u32),
    /// Max parallelism in a and b.
    pub max_parallelism: (u32, u32),
    /// Referenced state size in a and b.
    pub state_size: (u64, u64),
    /// Subtasks whose handles differ (present in one only, or with other handles).
    pub subtasks_changed: Vec<u32>,
    /// Files the operator references only in b: written since a.
    pub files_added: u64,
    /// Files it references only in a: no longer needed by b.
    pub files_removed: u64,
    /// Files it references in both: state b reuses (incremental checkpoints).
    pub files_shared: u64,
    /// Bytes of the files only in b.
    pub bytes_added: u64,
}

/// What [`diff`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotDiff {
    /// Operator uids only in a.
    pub operators_removed: Vec<String>,
    /// Operator uids only in b.
    pub operators_added: Vec<String>,
    /// Operators in both whose parallelism, max parallelism or size differ.
    pub operators_changed: Vec<OperatorChange>,
    /// Files (path in the store, size) only referenced by a.
    pub files_removed: Vec<(String, u64)>,
    /// Files only referenced by b.
    pub files_added: Vec<(String, u64)>,
    /// Files referenced by both (shared state reused by b).
    pub files_common: Vec<(String, u64)>,
    /// Total referenced size of a and b.
    pub state_size: (u64, u64),
}

/// The files (path in the store, size) that operator `op` of `c` references.
fn operator_files(
    c: &CompletedCheckpoint,
    op: &crate::metadata::OperatorState,
) -> BTreeMap<String, u64> {
    op.subtasks
        .values()
        .flat_map(SubtaskState::streams)
        .filter_map(|s| match s {
            StreamStateHandle::File(f) => Some((layout::join(&c.base_dir, &f.path), f.size)),
            StreamStateHandle::Inline(_) => None,
        })
        .collect()
}

/// Compares two checkpoints or savepoints: operators, files and sizes.
///
/// # Errors
/// Resolution and decoding errors of either.
pub fn diff(store: &CheckpointStore, a: &str, b: &str) -> Result<SnapshotDiff> {
    let a = store.resolve(a)?;
    let b = store.resolve(b)?;
    let (ma, mb) = (&a.metadata, &b.metadata);
    let mut out = SnapshotDiff {
        state_size: (ma.state_size(), mb.state_size()),
        ..SnapshotDiff::default()
    };
    // By uid: the same order whatever order the checkpoints list their operators in.
    let mut ops_a: Vec<&crate::metadata::OperatorState> = ma.operators.iter().collect();
    ops_a.sort_by(|x, y| x.uid.cmp(&y.uid));
    let mut ops_b: Vec<&crate::metadata::OperatorState> = mb.operators.iter().collect();
    ops_b.sort_by(|x, y| x.uid.cmp(&y.uid));
    for op in ops_a {
        match mb.operator(&op.uid) {
            None => out.operators_removed.push(op.uid.clone()),
            Some(other) => {
                let (fa, fb) = (operator_files(&a, op), operator_files(&b, other));
                let subtasks: BTreeSet<u32> = op
                    .subtasks
                    .keys()
                    .chain(other.subtasks.keys())
                    .copied()
                    .collect();
                let change = OperatorChange {
                    uid: op.uid.clone(),
                    parallelism: (op.parallelism, other.parallelism),
                    max_parallelism: (op.max_parallelism, other.max_parallelism),
                    state_size: (op.state_size(), other.state_size()),
                    subtasks_changed: subtasks
                        .into_iter()
                        .filter(|i| op.subtasks.get(i) != other.subtasks.get(i))
                        .collect(),
                    files_added: fb.keys().filter(|p| !fa.contains_key(*p)).count() as u64,
                    files_removed: fa.keys().filter(|p| !fb.contains_key(*p)).count() as u64,
                    files_shared: fa.keys().filter(|p| fb.contains_key(*p)).count() as u64,
                    bytes_added: fb
                        .iter()
                        .filter(|(p, _)| !fa.contains_key(*p))
                        .map(|(_, s)| s)
                        .sum(),
                };
                if change.parallelism.0 != change.parallelism.1
                    || change.max_parallelism.0 != change.max_parallelism.1
                    || change.state_size.0 != change.state_size.1
                    || op.subtasks != other.subtasks
                {
                    out.operators_changed.push(change);
                }
            }
        }
    }
    for op in ops_b {
        if ma.operator(&op.uid).is_none() {
            out.operators_added.push(op.uid.clone());
        }
    }
    let files = |c: &CompletedCheckpoint| -> BTreeMap<String, u64> {
        c.metadata
            .files()
            .into_iter()
            .map(|f| (layout::join(&c.base_dir, &f.path), f.size))
            .collect()
    };
    let (fa, fb) = (files(&a), files(&b));
    for (p, s) in &fa {
        if fb.contains_key(p) {
            out.files_common.push((p.clone(), *s));
        } else {
            out.files_removed.push((p.clone(), *s));
        }
    }
    for (p, s) in &fb {
        if !fa.contains_key(p) {
            out.files_added.push((p.clone(), *s));
        }
    }
    Ok(out)
}
