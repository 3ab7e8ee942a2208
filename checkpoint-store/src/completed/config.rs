//! The configuration of a job's checkpoint store and the policies it applies: how many
//! checkpoints are retained, how streams are written, what happens at termination
//! ([`CleanupPolicy`], [`JobStatus`]) and who owns a restored checkpoint ([`ClaimMode`]).

use cornerstone_backend_api::{SharedClock, clock::system_clock};

use crate::codec::MetadataCompression;
use crate::store::{DEFAULT_INLINE_THRESHOLD, DEFAULT_WRITE_CHUNK_SIZE};

/// What happens to a job's externalized checkpoints when it terminates.
///
/// | policy | finished | cancelled | failed | suspended |
/// |---|---|---|---|---|
/// | `NoExternalized` (default) | delete | delete | delete | delete |
/// | `DeleteOnCancellation` | delete | delete | keep | delete |
/// | `RetainOnCancellation` | delete | keep | keep | keep |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CleanupPolicy {
    /// Checkpoints are not externalized: always deleted.
    #[default]
    NoExternalized,
    /// Kept only when the job failed.
    DeleteOnCancellation,
    /// Deleted only when the job finished.
    RetainOnCancellation,
}

/// How a job terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// It finished.
    Finished,
    /// It was cancelled.
    Cancelled,
    /// It failed for good.
    Failed,
    /// It was suspended (e.g. the cluster lost leadership).
    Suspended,
}

impl CleanupPolicy {
    /// Whether the retained checkpoints are deleted when the job terminates with `status`.
    pub fn deletes_on(self, status: JobStatus) -> bool {
        use CleanupPolicy as P;
        use JobStatus as S;
        match (self, status) {
            (P::NoExternalized, _) => true,
            (P::DeleteOnCancellation, S::Failed) => false,
            (P::DeleteOnCancellation, _) => true,
            (P::RetainOnCancellation, S::Finished) => true,
            (P::RetainOnCancellation, _) => false,
        }
    }
}

/// Restore ownership.
///
/// Which to use: a job restarting from its own job directory (after a failure, or a
/// resubmission with the same job id) claims its checkpoint, `Claim`, so it is subsumed
/// like the job's own; a new job (another job id, an upgrade) starting from another job's
/// checkpoint or from a savepoint uses `NoClaim`, leaving those files to their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClaimMode {
    /// The restored files stay owned by whoever wrote them and are never deleted by this job;
    /// new checkpoints may not reference them (the first new checkpoint is full).
    #[default]
    NoClaim,
    /// The restored checkpoint becomes owned by this job and is subsumed normally.
    /// Savepoints are never deleted automatically, so claiming one is the same as `NoClaim`.
    Claim,
}

/// The configuration of a [`CompletedCheckpointStore`].
///
/// [`CompletedCheckpointStore`]: super::CompletedCheckpointStore
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckpointConfig {
    /// How many completed checkpoints are retained (at least 1; default 1).
    pub num_retained: usize,
    /// Streams smaller than this are kept inline in `_metadata` (default 20 KiB).
    pub inline_threshold: usize,
    /// The chunk size of state-file uploads (default 1 MiB).
    pub write_chunk_size: usize,
    /// What happens to retained checkpoints when the job terminates.
    pub cleanup: CleanupPolicy,
    /// How `_metadata` bodies are stored (default zstd).
    pub compression: MetadataCompression,
    /// Where timestamps come from.
    pub clock: SharedClock,
    /// Whether [`CompletedCheckpointStore::open`] falls back to the newest readable
    /// checkpoint when a newer `_metadata` is unreadable (corrupt, or of a newer format), with
    /// a `tracing` warning. Off by default: then opening fails with an error that names the
    /// file, so that a job never restarts from older state without anyone deciding so.
    ///
    /// [`CompletedCheckpointStore::open`]: super::CompletedCheckpointStore::open
    pub fallback_on_unreadable: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            num_retained: 1,
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            write_chunk_size: DEFAULT_WRITE_CHUNK_SIZE,
            cleanup: CleanupPolicy::default(),
            compression: MetadataCompression::default(),
            clock: system_clock(),
            fallback_on_unreadable: false,
        }
    }
}

impl CheckpointConfig {
    /// Sets `num_retained` (values below 1 mean 1).
    #[must_use]
    pub fn num_retained(mut self, n: usize) -> Self {
        self.num_retained = n.max(1);
        self
    }
    /// Sets the inline threshold.
    #[must_use]
    pub fn inline_threshold(mut self, bytes: usize) -> Self {
        self.inline_threshold = bytes;
        self
    }
    /// Sets the upload chunk size.
    #[must_use]
    pub fn write_chunk_size(mut self, bytes: usize) -> Self {
        self.write_chunk_size = bytes.max(1);
        self
    }
    /// Sets the cleanup policy.
    #[must_use]
    pub fn cleanup(mut self, policy: CleanupPolicy) -> Self {
        self.cleanup = policy;
        self
    }
    /// Sets the `_metadata` compression.
    #[must_use]
    pub fn compression(mut self, compression: MetadataCompression) -> Self {
        self.compression = compression;
        self
    }
    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
    /// Sets [`fallback_on_unreadable`](Self::fallback_on_unreadable).
    #[must_use]
    pub fn fallback_on_unreadable(mut self, fallback: bool) -> Self {
        self.fallback_on_unreadable = fallback;
        self
    }
}
