//! A fault layer around real OpenDAL services (no mock: every operation that is not failed
//! goes to the service).
//!
//! ```
//! use std::sync::atomic::Ordering;
//! use cornerstone_checkpoint_store::opendal;
//! use cornerstone_testkit::faults::FailNthWrite;
//!
//! let faults = FailNthWrite::default();
//! faults.fail_at.store(2, Ordering::SeqCst); // the second write fails
//! let op = opendal::Operator::new(opendal::services::Memory::default())?.layer(faults.clone());
//! let rt = cornerstone_testkit::s3::runtime();
//! rt.block_on(op.write("a", "first"))?;
//! assert!(rt.block_on(op.write("b", "second")).is_err());
//! assert_eq!(rt.block_on(op.read("a"))?.to_vec(), b"first");
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cornerstone_checkpoint_store::opendal::raw::*;
use cornerstone_checkpoint_store::opendal::{self, OperationContext};

/// Faults injected into a real OpenDAL service: fails the `fail_at`-th write-like operation
/// before it takes effect (1-based; 0 = never; counts them all); lets writes to paths ending
/// with `fail_after_suffix` take effect and then report an error (an ambiguous outcome, such
/// as a response lost after the server applied a put); fails stats and reads of paths ending
/// with `fail_reads_suffix` (a transient error).
#[derive(Debug, Clone, Default)]
pub struct FailNthWrite {
    /// Write-like operations (writes and renames) seen so far.
    pub count: Arc<AtomicUsize>,
    /// The write-like operation that fails before it takes effect (1-based; 0 = never).
    pub fail_at: Arc<AtomicUsize>,
    /// Writes of paths ending with this take effect and then report an error.
    pub fail_after_suffix: Arc<Mutex<Option<String>>>,
    /// Stats, reads and lists of paths ending with this fail (a temporary error).
    pub fail_reads_suffix: Arc<Mutex<Option<String>>>,
    /// Deletes of paths ending with this fail before they take effect.
    pub fail_deletes_suffix: Arc<Mutex<Option<String>>>,
    /// Directory syncs (see [`SimDisk`](crate::disk::SimDisk)) of directories ending with this fail.
    pub fail_syncs_suffix: Arc<Mutex<Option<String>>>,
    /// When a `fail_after_suffix` write reports its error, reads of that path start failing
    /// too (`fail_reads_suffix`): the writer cannot read back what happened.
    pub hide_after_failure: Arc<std::sync::atomic::AtomicBool>,
    /// The error a `fail_after_suffix` write reports is temporary (a lost response, which a
    /// retry layer above retries) instead of permanent.
    pub after_is_temporary: Arc<std::sync::atomic::AtomicBool>,
    /// The next this-many stats, reads and lists fail with a temporary error before they
    /// reach the service (a brief outage).
    pub fail_next_reads: Arc<AtomicUsize>,
    /// Seeded random faults on every operation (see [`RandomFaults`]), when set, from the
    /// operation numbered `random_from_op` on (counted in `ops`).
    pub random: Arc<Mutex<Option<RandomFaults>>>,
    /// The first operation (counted in `ops`) that random faults may hit.
    pub random_from_op: Arc<AtomicUsize>,
    /// Every operation (writes, deletes, reads, stats, lists, directory syncs), counted for
    /// [`crash_at`](Self::crash_at).
    pub ops: Arc<AtomicUsize>,
    /// The process crashes at this operation (1-based; 0 = never): it and every operation
    /// after it fail before taking effect, until [`revive`](Self::revive).
    pub crash_at: Arc<AtomicUsize>,
    /// Whether the process has crashed (set at `crash_at`, cleared by [`revive`](Self::revive)).
    pub crashed: Arc<std::sync::atomic::AtomicBool>,
}

/// Seeded random faults: each write fails before it takes effect with probability
/// `p_before`, or takes effect and then fails with `p_after` (an ambiguous outcome); each
/// stat or read fails with `p_read` (a transient error). Deterministic for a seed as long
/// as operations come in a deterministic order.
#[derive(Debug)]
pub struct RandomFaults {
    /// The seeded generator the faults are drawn from.
    pub rng: rand::rngs::StdRng,
    /// The probability that a write fails before it takes effect.
    pub p_before: f64,
    /// The probability that a write takes effect and then fails.
    pub p_after: f64,
    /// The probability that a stat, read or list fails (a temporary error).
    pub p_read: f64,
    /// Faults injected: before, after, read.
    pub injected: [u64; 3],
}

impl RandomFaults {
    /// Faults drawn from a generator seeded with `seed`, with these probabilities.
    pub fn new(seed: u64, p_before: f64, p_after: f64, p_read: f64) -> Self {
        use rand::SeedableRng;
        RandomFaults {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            p_before,
            p_after,
            p_read,
            injected: [0; 3],
        }
    }

    fn draw(&mut self, p: f64, kind: usize) -> bool {
        use rand::RngExt;
        let hit = p > 0.0 && self.rng.random_bool(p);
        if hit {
            self.injected[kind] += 1;
        }
        hit
    }
}

impl FailNthWrite {
    /// Arms a crash `after` operations from now.
    pub fn crash_after(&self, after: usize) {
        self.crash_at
            .store(self.ops.load(Ordering::SeqCst) + after, Ordering::SeqCst);
    }

    /// A new process starts: operations reach storage again.
    pub fn revive(&self) {
        self.crash_at.store(0, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// Counts one operation; fails it when the process has crashed.
    pub fn alive(&self, what: &str, path: &str) -> opendal::Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        let at = self.crash_at.load(Ordering::SeqCst);
        if at != 0 && n >= at {
            self.crashed.store(true, Ordering::SeqCst);
        }
        if self.crashed.load(Ordering::SeqCst) {
            return Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("the process crashed before {what} {path}"),
            ));
        }
        Ok(())
    }

    /// A random fault of a write-like operation other than a write (a delete, a directory
    /// sync) before it takes effect.
    pub fn fail_before(&self, what: &str, path: &str) -> opendal::Result<()> {
        self.alive(what, path)?;
        let rule = if what == "delete" {
            &self.fail_deletes_suffix
        } else {
            &self.fail_syncs_suffix
        };
        if Self::matches(rule, path) || self.random_draw(|r| r.p_before, 0) {
            return Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("injected failure of {what} {path}"),
            ));
        }
        Ok(())
    }

    fn matches(rule: &Mutex<Option<String>>, path: &str) -> bool {
        rule.lock()
            .unwrap()
            .as_deref()
            .is_some_and(|suffix| path.ends_with(suffix))
    }

    fn random_draw(&self, p: impl Fn(&RandomFaults) -> f64, kind: usize) -> bool {
        if self.ops.load(Ordering::SeqCst) < self.random_from_op.load(Ordering::SeqCst) {
            return false;
        }
        self.random
            .lock()
            .unwrap()
            .as_mut()
            .is_some_and(|r| r.draw(p(r), kind))
    }

    fn read_fault(&self, path: &str) -> opendal::Result<()> {
        self.alive("read", path)?;
        let outage = self
            .fail_next_reads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if outage
            || Self::matches(&self.fail_reads_suffix, path)
            || self.random_draw(|r| r.p_read, 2)
        {
            return Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("injected read failure: {path}"),
            )
            .set_temporary());
        }
        Ok(())
    }

    fn tick(&self, what: &str, path: &str) -> opendal::Result<()> {
        self.alive(what, path)?;
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) || self.random_draw(|r| r.p_before, 0) {
            return Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("injected failure of write #{n}: {what} {path}"),
            ));
        }
        Ok(())
    }
}

impl Layer for FailNthWrite {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FailService {
            inner,
            plan: self.clone(),
        })
    }
}

#[derive(Debug)]
struct FailService {
    inner: Servicer,
    plan: FailNthWrite,
}

impl Service for FailService {
    type Reader = oio::Reader;
    type Writer = oio::Writer;
    type Lister = oio::Lister;
    type Deleter = oio::Deleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }
    fn capability(&self) -> opendal::Capability {
        self.inner.capability()
    }
    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> opendal::Result<RpCreateDir> {
        self.inner.create_dir(ctx, path, args).await
    }
    async fn stat(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpStat,
    ) -> opendal::Result<RpStat> {
        self.plan.read_fault(path)?;
        self.inner.stat(ctx, path, args).await
    }
    fn read(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRead,
    ) -> opendal::Result<Self::Reader> {
        self.plan.read_fault(path)?;
        self.inner.read(ctx, path, args)
    }
    fn write(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpWrite,
    ) -> opendal::Result<Self::Writer> {
        self.plan.tick("write", path)?;
        let inner = self.inner.write(ctx, path, args)?;
        if FailNthWrite::matches(&self.plan.fail_after_suffix, path)
            || self.plan.random_draw(|r| r.p_after, 1)
        {
            return Ok(Box::new(FailAfterClose {
                inner,
                path: path.to_owned(),
                plan: self.plan.clone(),
            }));
        }
        Ok(inner)
    }
    fn delete(&self, ctx: &OperationContext) -> opendal::Result<Self::Deleter> {
        Ok(Box::new(FaultDeleter {
            inner: self.inner.delete(ctx)?,
            plan: self.plan.clone(),
            fail_after: None,
        }))
    }
    fn list(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpList,
    ) -> opendal::Result<Self::Lister> {
        self.plan.read_fault(path)?;
        self.inner.list(ctx, path, args)
    }
    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> opendal::Result<Self::Copier> {
        self.inner.copy(ctx, from, to, args)
    }
    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> opendal::Result<RpRename> {
        self.plan.tick("rename", to)?;
        self.inner.rename(ctx, from, to, args).await
    }
    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> opendal::Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

/// A writer whose close takes effect and then reports an error.
struct FailAfterClose {
    inner: oio::Writer,
    path: String,
    plan: FailNthWrite,
}

impl oio::Write for FailAfterClose {
    async fn write(&mut self, bs: opendal::Buffer) -> opendal::Result<()> {
        self.inner.write(bs).await
    }
    async fn close(&mut self) -> opendal::Result<opendal::Metadata> {
        self.inner.close().await?;
        if self.plan.hide_after_failure.load(Ordering::SeqCst) {
            *self.plan.fail_reads_suffix.lock().unwrap() = Some(self.path.clone());
        }
        let e = opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            format!(
                "injected failure after the write took effect: {}",
                self.path
            ),
        );
        Err(if self.plan.after_is_temporary.load(Ordering::SeqCst) {
            e.set_temporary()
        } else {
            e
        })
    }
    async fn abort(&mut self) -> opendal::Result<()> {
        self.inner.abort().await
    }
}

/// A deleter whose deletes may fail before they take effect, or take effect and then report
/// an error (random faults), and fail once the process crashed.
struct FaultDeleter {
    inner: oio::Deleter,
    plan: FailNthWrite,
    /// A path whose deletion takes effect and then reports an error at close.
    fail_after: Option<String>,
}

impl oio::Delete for FaultDeleter {
    async fn delete(&mut self, path: &str, args: OpDelete) -> opendal::Result<()> {
        self.plan.fail_before("delete", path)?;
        self.inner.delete(path, args).await?;
        if self.plan.random_draw(|r| r.p_after, 1) {
            self.fail_after = Some(path.to_owned());
        }
        Ok(())
    }
    async fn close(&mut self) -> opendal::Result<()> {
        self.inner.close().await?;
        match self.fail_after.take() {
            Some(path) => Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("injected failure after the delete took effect: {path}"),
            )),
            None => Ok(()),
        }
    }
}
