//! Storage I/O never runs under the job's state lock: while a commit waits for storage (here:
//! the directory sync of a subsumed checkpoint, held by a gate), `latest`, `checkpoint_ids`,
//! `Debug` and `begin_checkpoint` answer at once.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, Result};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, DirSync, opendal,
};

/// Once armed, syncs of one directory wait for the gate to open; the first one says so on
/// `entered`.
#[derive(Debug)]
struct GatedSync {
    dir: String,
    armed: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
    entered: Mutex<Option<mpsc::Sender<()>>>,
}

impl GatedSync {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl DirSync for GatedSync {
    fn sync_dir(&self, dir: &str) -> Result<()> {
        if dir == self.dir && self.armed.load(Ordering::SeqCst) {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                let _ = tx.send(());
            }
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
        Ok(())
    }
}

/// Runs `f` on another thread and gives its result if it finishes within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn readers_do_not_wait_for_storage_during_a_commit() {
    let (entered_tx, entered) = mpsc::channel();
    let gate = Arc::new(GatedSync {
        dir: "job/chk-1/".to_owned(),
        armed: AtomicBool::new(false),
        open: Mutex::new(false),
        opened: Condvar::new(),
        entered: Mutex::new(Some(entered_tx)),
    });
    let op = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
    let store = CheckpointStore::new(op)
        .unwrap()
        .with_dir_sync(gate.clone());
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    job.begin_checkpoint(CheckpointId(1))
        .unwrap()
        .commit()
        .unwrap();

    gate.armed.store(true, Ordering::SeqCst);
    // Checkpoint 2 subsumes checkpoint 1 (num_retained 1): unpublishing it syncs `job/chk-1/`,
    // which waits at the gate.
    let pending = job.begin_checkpoint(CheckpointId(2)).unwrap();
    let committer = std::thread::spawn(move || pending.commit());
    entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the commit reaches the subsumed checkpoint's directory sync");

    let reader = job.clone();
    let answered = within(Duration::from_secs(5), move || {
        let latest = reader.latest().map(|c| c.id());
        let ids = reader.checkpoint_ids();
        let debug = format!("{reader:?}");
        let next = reader.begin_checkpoint(CheckpointId(3)).map(|p| p.id());
        (latest, ids, debug, next.is_ok())
    });
    // Open the gate before asserting, so that a failure does not leave the commit hanging.
    gate.release();
    let done = committer.join().unwrap().unwrap();
    assert_eq!(done.id(), CheckpointId(2));

    let (latest, ids, debug, began) =
        answered.expect("latest, checkpoint_ids, Debug and begin_checkpoint waited for storage");
    // Checkpoint 2 is published and registered before its subsumption's storage I/O.
    assert_eq!(latest, Some(CheckpointId(2)));
    assert_eq!(ids, vec![CheckpointId(2)]);
    assert!(debug.contains("CompletedCheckpointStore"), "{debug}");
    assert!(began);
    assert_eq!(job.checkpoint_ids(), vec![CheckpointId(2)]);
}
