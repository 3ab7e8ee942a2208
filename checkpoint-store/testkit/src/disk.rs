//! A simulated local disk over OpenDAL's memory service, for power cuts: a file's content is
//! durable once written (as OpenDAL's `fs` writer syncs it on close), but a name created or
//! removed in a directory is durable only after the directory is synced; at a power cut each
//! change not durable yet reached the disk or not (any subset, as the test decides), and a
//! file survives only if every directory on its path does. The store syncs directories
//! through [`DirSync`], as it fsyncs them on a real local filesystem.
//!
//! ```
//! use std::sync::Arc;
//! use cornerstone_checkpoint_store::{CheckpointStore, opendal};
//! use cornerstone_testkit::{disk::SimDisk, faults::FailNthWrite};
//!
//! let base = opendal::Operator::new(opendal::services::Memory::default())?;
//! let faults = FailNthWrite::default();
//! let disk = Arc::new(SimDisk::new(base.clone(), faults.clone()));
//! let store = CheckpointStore::new(base.layer(faults))?.with_dir_sync(disk.clone());
//! # let _ = store;
//! // Nothing written yet: a power cut loses nothing.
//! assert!(disk.power_cut(&mut |_| false).is_empty());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use cornerstone_backend_api::{Error, ErrorKind, Result};
use cornerstone_checkpoint_store::DirSync;
use cornerstone_checkpoint_store::opendal;

use crate::faults::FailNthWrite;

/// What survives a power cut.
#[derive(Debug, Default)]
struct Durable {
    /// Files whose name is durable in their directory, with their content.
    files: BTreeMap<String, Vec<u8>>,
    /// Directories whose name is durable in their parent.
    dirs: BTreeSet<String>,
}

/// A local disk simulated over an OpenDAL operator (see the module's documentation).
#[derive(Debug)]
pub struct SimDisk {
    /// The memory service itself (no faults).
    base: opendal::Operator,
    runtime: tokio::runtime::Runtime,
    durable: Mutex<Durable>,
    /// Syncs fail like other operations (randomly, and once the process crashed).
    faults: FailNthWrite,
    /// Directory syncs done.
    pub syncs: std::sync::atomic::AtomicU64,
    /// Changes undone at power cuts (files lost, deleted files back).
    pub lost_at_power_cuts: std::sync::atomic::AtomicU64,
}

fn parent(path: &str) -> &str {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    trimmed.rfind('/').map_or("", |i| &path[..=i])
}

fn io_error(what: &str, e: opendal::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("simulated disk: {what}: {e}"),
    )
}

impl SimDisk {
    /// A disk over `base` (empty), whose syncs fail as `faults` says.
    pub fn new(base: opendal::Operator, faults: FailNthWrite) -> Self {
        SimDisk {
            base,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            durable: Mutex::default(),
            faults,
            syncs: Default::default(),
            lost_at_power_cuts: Default::default(),
        }
    }

    /// Every file now on the disk (durable or not).
    pub fn files(&self) -> Result<BTreeSet<String>> {
        let entries = self
            .runtime
            .block_on(self.base.list_options(
                "",
                opendal::options::ListOptions {
                    recursive: true,
                    ..Default::default()
                },
            ))
            .map_err(|e| io_error("list", e))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.path().ends_with('/'))
            .map(|e| e.path().to_owned())
            .collect())
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.runtime
            .block_on(self.base.read(path))
            .map(|b| b.to_vec())
            .map_err(|e| io_error("read", e))
    }

    /// The power goes out. Every change of a name not made durable (a file or directory
    /// created, a file deleted) either reached the disk or not, as `persists(path)` says
    /// (asked once per change; a file survives only with every directory on its path).
    /// Returns the changes undone: files lost, and deleted files back.
    pub fn power_cut(&self, persists: &mut dyn FnMut(&str) -> bool) -> Vec<String> {
        let mut durable = self.durable.lock().unwrap();
        let now = self.files().unwrap();
        let mut dir_decided: BTreeMap<String, bool> = BTreeMap::new();
        let mut dir_exists = |path: &str, persists: &mut dyn FnMut(&str) -> bool| {
            let mut d = parent(path);
            while !d.is_empty() {
                let exists = durable.dirs.contains(d)
                    || *dir_decided
                        .entry(d.to_owned())
                        .or_insert_with(|| persists(d));
                if !exists {
                    return false;
                }
                d = parent(d);
            }
            true
        };
        let mut after: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut undone = Vec::new();
        for f in now.union(&durable.files.keys().cloned().collect()) {
            let current = now.contains(f).then(|| self.read(f).unwrap());
            let old = durable.files.get(f);
            let kept = match (&current, old) {
                (Some(c), Some(o)) if c == o => Some(c.clone()),
                _ if persists(f) => current.clone(),
                _ => old.cloned(),
            };
            let kept = kept.filter(|_| dir_exists(f, persists));
            if kept != current {
                undone.push(f.clone());
            }
            if let Some(bytes) = kept {
                after.insert(f.clone(), bytes);
            }
        }
        for f in &now {
            if !after.contains_key(f) {
                self.runtime.block_on(self.base.delete(f)).unwrap();
            }
        }
        for f in &undone {
            if let Some(bytes) = after.get(f) {
                self.runtime
                    .block_on(self.base.write(f, bytes.clone()))
                    .unwrap();
            }
        }
        // After the restart, what is on the disk is durable.
        let dirs: BTreeSet<String> = after
            .keys()
            .flat_map(|f| {
                let mut ds = Vec::new();
                let mut d = parent(f);
                while !d.is_empty() {
                    ds.push(d.to_owned());
                    d = parent(d);
                }
                ds
            })
            .collect();
        durable.dirs.extend(dirs);
        durable.files = after;
        self.lost_at_power_cuts
            .fetch_add(undone.len() as u64, std::sync::atomic::Ordering::Relaxed);
        undone
    }
}

impl DirSync for SimDisk {
    fn sync_dir(&self, dir: &str) -> Result<()> {
        self.faults
            .fail_before("sync directory", dir)
            .map_err(|e| io_error("sync directory", e))?;
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.files()?;
        let mut durable = self.durable.lock().unwrap();
        // The names in `dir` now: its files and its subdirectories (those with a file).
        let mut child_dirs = BTreeSet::new();
        for f in now.iter().filter(|f| f.starts_with(dir)) {
            let rest = &f[dir.len()..];
            match rest.find('/') {
                None => {
                    let bytes = self.read(f)?;
                    durable.files.insert(f.clone(), bytes);
                }
                Some(i) => {
                    child_dirs.insert(format!("{dir}{}", &rest[..=i]));
                }
            }
        }
        durable
            .files
            .retain(|f, _| parent(f) != dir || now.contains(f));
        durable
            .dirs
            .retain(|d| parent(d) != dir || child_dirs.contains(d));
        durable.dirs.extend(child_dirs);
        Ok(())
    }
}
