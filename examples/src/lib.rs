//! The end-to-end job of the README: a keyed word count on the memory backend at
//! parallelism 2, a checkpoint into a checkpoint store on the local filesystem, then a
//! restore at parallelism 3 from that store that checks every count.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! let report = cornerstone_examples::run_rescale_job(&cornerstone_examples::JobConfig::small(), dir.path())?;
//! assert!(report.all_counts_survived());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cornerstone_backend_api::keygroup::{key_group_for_key, operator_index_for_key_group};
use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::rescale::{keyed_handles_for, redistribute_operator_state};
use cornerstone_backend_api::{
    CheckpointId, Error, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt, Result,
    StateBackend, StateBackendFactory, StateReader, SubtaskState, ValueStateDescriptor,
};
use cornerstone_backend_memory::{HeapKeyedStateBackend, MemoryStateBackend};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, ClaimMode, CleanupPolicy, CompletedCheckpointStore,
    JobStatus,
};

/// The size of the job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Events processed before the checkpoint.
    pub events: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Parallelism before the checkpoint.
    pub parallelism_before: u32,
    /// Parallelism after the restore.
    pub parallelism_after: u32,
    /// Key groups.
    pub max_parallelism: u32,
}

impl JobConfig {
    /// The README's job: 1M events over 10k keys, parallelism 2 → 3.
    pub fn standard() -> Self {
        JobConfig {
            events: 1_000_000,
            keys: 10_000,
            parallelism_before: 2,
            parallelism_after: 3,
            max_parallelism: 128,
        }
    }

    /// A small job for tests and docs.
    pub fn small() -> Self {
        JobConfig {
            events: 20_000,
            keys: 500,
            ..Self::standard()
        }
    }
}

/// What the job saw.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The configuration.
    pub config: JobConfig,
    /// Keys restored per new subtask.
    pub keys_per_subtask: Vec<usize>,
    /// Keys whose restored count matched.
    pub matching: usize,
    /// Keys whose count was missing or wrong, with (expected, found).
    pub mismatches: Vec<(String, u64, Option<u64>)>,
    /// Keys restored by more than one subtask.
    pub duplicates: usize,
    /// Source offsets restored (one per source split).
    pub restored_offsets: Vec<(u32, u64)>,
    /// The largest synchronous snapshot phase.
    pub max_sync_phase: Duration,
    /// Bytes of the checkpoint's state.
    pub checkpoint_bytes: u64,
    /// The job directory of the checkpoint, for `cornerstone list` / `show`.
    pub job_dir: PathBuf,
    /// The checkpoint's `_metadata`, relative to the checkpoint directory.
    pub metadata_path: String,
}

impl JobReport {
    /// Whether every key was restored exactly once with its count.
    pub fn all_counts_survived(&self) -> bool {
        self.mismatches.is_empty()
            && self.duplicates == 0
            && self.matching as u64 == self.config.keys
    }
}

impl fmt::Display for JobReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "processed {} events over {} keys at parallelism {} (memory backend, {} key groups)",
            c.events, c.keys, c.parallelism_before, c.max_parallelism
        )?;
        writeln!(
            f,
            "checkpoint 1: {} bytes of state, longest synchronous phase {:?}, committed as {}",
            self.checkpoint_bytes, self.max_sync_phase, self.metadata_path
        )?;
        writeln!(
            f,
            "checkpoints kept (RetainOnCancellation) in {}: try `cornerstone list {}`",
            self.job_dir.display(),
            self.job_dir.display()
        )?;
        writeln!(
            f,
            "restored at parallelism {}: keys per subtask {:?}, source offsets {:?}",
            c.parallelism_after, self.keys_per_subtask, self.restored_offsets
        )?;
        if self.all_counts_survived() {
            write!(
                f,
                "OK: all {} counts survived the rescale, each key exactly once",
                self.matching
            )
        } else {
            write!(
                f,
                "FAILED: {} matching, {} duplicated, {} wrong or missing (first: {:?})",
                self.matching,
                self.duplicates,
                self.mismatches.len(),
                self.mismatches.first()
            )
        }
    }
}

/// The uid of the counting operator in checkpoint metadata.
pub const OPERATOR_UID: &str = "counter";

fn word(i: u64) -> String {
    format!("word-{i:05}")
}

/// A deterministic stream: event `i` has key `word(hash(i) % keys)`.
fn event_key(i: u64, keys: u64) -> u64 {
    // splitmix64: a fixed, well-mixed sequence.
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % keys
}

/// The id of the job that counts, and of the job that restores its checkpoint.
pub const JOB_ID: &str = "wordcount";
/// The id of the rescaled job.
pub const RESCALED_JOB_ID: &str = "wordcount-rescaled";

/// Runs the job: count, checkpoint into a local checkpoint store under `checkpoint_dir`,
/// cancel (keeping the checkpoint), restore from the store at another parallelism, verify.
/// Earlier runs' job directories under `checkpoint_dir` are replaced.
///
/// # Errors
/// Any backend or storage error; a report with mismatches is not an error (check
/// [`JobReport::all_counts_survived`]).
pub fn run_rescale_job(config: &JobConfig, checkpoint_dir: &Path) -> Result<JobReport> {
    for job in [JOB_ID, RESCALED_JOB_ID] {
        let dir = checkpoint_dir.join(job);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                Error::io("remove the previous run", e).with_context("path", dir.display())
            })?;
        }
    }
    let store = CheckpointStore::local(checkpoint_dir)?;
    let checkpoints = CheckpointConfig::default().cleanup(CleanupPolicy::RetainOnCancellation);
    let job = CompletedCheckpointStore::open(&store, JOB_ID, checkpoints.clone())?;
    let factory = MemoryStateBackend::new().max_state_size(64 << 20);
    let counts = ValueStateDescriptor::<u64>::new("count");
    let max_p = config.max_parallelism;

    // Parallelism `before`: keyed backends plus one source split per subtask.
    let mut subtasks: Vec<(HeapKeyedStateBackend<String>, OperatorStateBackend)> = Vec::new();
    for i in 0..config.parallelism_before {
        let range = KeyGroupRange::for_subtask(max_p, config.parallelism_before, i)?;
        subtasks.push((
            factory.create_keyed_backend::<String>(KeyedBackendParams::new(max_p, range))?,
            OperatorStateBackend::new(),
        ));
    }
    let states = subtasks
        .iter()
        .map(|(backend, _)| backend.value_state::<u64, ()>(&counts))
        .collect::<Result<Vec<_>>>()?;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..config.events {
        let key = word(event_key(i, config.keys));
        let kg = key_group_for_key(&key, max_p)?;
        let state =
            &states[operator_index_for_key_group(max_p, config.parallelism_before, kg) as usize];
        let n = state.get(&key, &())?.unwrap_or(0);
        state.update(&key, &(), n + 1)?;
        *expected.entry(key).or_default() += 1;
    }
    for (i, (_, operator)) in subtasks.iter().enumerate() {
        // Source split i read up to this offset.
        operator
            .list_state::<(u32, u64)>("source-offsets")?
            .update(vec![(
                i as u32,
                config.events / u64::from(config.parallelism_before),
            )]);
    }

    // Checkpoint 1: synchronous phases on the task, asynchronous phases on other threads,
    // writing through the checkpoint store's stream factory.
    let id = CheckpointId(1);
    let mut pending_checkpoint = job.begin_checkpoint(id)?;
    let mut max_sync = Duration::ZERO;
    let mut pending = Vec::new();
    for (backend, operator) in &subtasks {
        let start = Instant::now();
        let keyed = backend.snapshot(id)?;
        let op = operator.snapshot(id);
        max_sync = max_sync.max(start.elapsed());
        let streams = pending_checkpoint.stream_factory();
        pending.push(thread::spawn(move || -> Result<SubtaskState> {
            let mut state = keyed.write(&*streams)?;
            state.merge(op.write(&*streams)?);
            Ok(state)
        }));
    }
    // Processing goes on during the asynchronous phase; these writes are not in checkpoint 1.
    for state in &states {
        for key in state.state_keys(&())? {
            state.update(&key, &(), u64::MAX)?;
        }
    }
    for (index, handle) in pending.into_iter().enumerate() {
        let state = handle
            .join()
            .map_err(|_| Error::internal("asynchronous snapshot thread panicked"))??;
        pending_checkpoint.add_subtask_state(
            OPERATOR_UID,
            "keyed count",
            config.parallelism_before,
            max_p,
            index as u32,
            state,
        )?;
    }
    let completed = pending_checkpoint.commit()?;
    let checkpoint_bytes = completed.metadata.state_size();
    // The job is cancelled; RetainOnCancellation keeps its checkpoint.
    job.terminate(JobStatus::Cancelled)?;
    drop((states, subtasks, job));

    // Restore at parallelism `after`, as a new job, from the latest checkpoint of the old one.
    let point = store.resolve(JOB_ID)?;
    let rescaled = CompletedCheckpointStore::open(&store, RESCALED_JOB_ID, checkpoints)?;
    let reader: Arc<dyn StateReader> = Arc::new(rescaled.restore(&point, ClaimMode::NoClaim)?);
    let operator = point.metadata.operator(OPERATOR_UID).ok_or_else(|| {
        Error::not_found("the checkpoint has no state of the counting operator")
            .with_context("operator", OPERATOR_UID)
    })?;
    let all_keyed: Vec<_> = operator
        .subtasks
        .values()
        .flat_map(|s| s.keyed.iter())
        .collect();
    let operator_old: Vec<_> = operator
        .subtasks
        .values()
        .map(|s| s.operator.clone())
        .collect();
    let operator_new = redistribute_operator_state(&operator_old, config.parallelism_after)?;
    let mut found: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    let mut keys_per_subtask = Vec::new();
    let mut restored_offsets = Vec::new();
    for i in 0..config.parallelism_after {
        let range = KeyGroupRange::for_subtask(max_p, config.parallelism_after, i)?;
        let backend = factory.create_keyed_backend::<String>(
            KeyedBackendParams::new(max_p, range).restore(
                keyed_handles_for(all_keyed.iter().copied(), range),
                Some(Arc::clone(&reader)),
            ),
        )?;
        let state = backend.value_state::<u64, ()>(&counts)?;
        let keys = state.state_keys(&())?;
        keys_per_subtask.push(keys.len());
        for key in keys {
            let n = state.get(&key, &())?.unwrap_or(0);
            let entry = found.entry(key).or_insert((n, 0));
            entry.1 += 1;
        }
        let operator = OperatorStateBackend::restore(&operator_new[i as usize], Some(&*reader))?;
        restored_offsets.extend(operator.list_state::<(u32, u64)>("source-offsets")?.get());
    }
    restored_offsets.sort_unstable();

    let mut matching = 0;
    let mut mismatches = Vec::new();
    for (key, want) in &expected {
        match found.get(key) {
            Some((n, _)) if n == want => matching += 1,
            other => mismatches.push((key.clone(), *want, other.map(|(n, _)| *n))),
        }
    }
    let duplicates = found.values().filter(|(_, times)| *times > 1).count();
    Ok(JobReport {
        config: config.clone(),
        keys_per_subtask,
        matching,
        mismatches,
        duplicates,
        restored_offsets,
        max_sync_phase: max_sync,
        checkpoint_bytes,
        job_dir: checkpoint_dir.join(JOB_ID),
        metadata_path: completed.metadata_path,
    })
}

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
