//! Damaged snapshots are detected: a restore returns an error, never panics, never
//! restores garbage.

use std::sync::Arc;

use super::faults::{Damage, DamagingReader};
use super::{Harness, MAX_P, checkpoint, clock, create, fresh, keyed_streams_mut, params};
use crate::backend::KeyedStateBackendExt;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use crate::error::{ErrorKind, Result};
use crate::handles::{KeyedStateHandle, StreamStateHandle};
use crate::keygroup::KeyGroupRange;
use crate::stream::StateReader;

const KEYS: u64 = 30;

/// Snapshots a backend with value, list and map state.
fn written<H: Harness>(h: &H) -> Vec<KeyedStateHandle> {
    let clock = clock();
    let backend = fresh::<H, u64>(h, &clock);
    let v = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("v"))
        .unwrap();
    let l = backend
        .list_state::<String, ()>(&ListStateDescriptor::new("l"))
        .unwrap();
    let m = backend
        .map_state::<u32, u64, ()>(&MapStateDescriptor::new("m"))
        .unwrap();
    for k in 0..KEYS {
        v.update(&k, &(), k * 1_000_003).unwrap();
        l.add_all(&k, &(), vec![format!("a{k}"), format!("b{k}")])
            .unwrap();
        m.put(&k, &(), k as u32, k).unwrap();
    }
    let keyed = checkpoint(h, &backend, 1).keyed;
    assert!(
        !keyed.is_empty(),
        "a snapshot of a backend with state wrote no keyed handle"
    );
    keyed
}

/// The handles with stream `stream` of handle `handle` damaged, and the reader to use.
fn damaged<H: Harness>(
    h: &H,
    handles: &[KeyedStateHandle],
    handle: usize,
    stream: usize,
    damage: Damage,
) -> (Vec<KeyedStateHandle>, Option<Arc<dyn StateReader>>) {
    let mut handles = handles.to_vec();
    let mut reader = h.reader();
    match keyed_streams_mut(&mut handles[handle]).swap_remove(stream) {
        StreamStateHandle::Inline(bytes) => damage.apply(bytes),
        StreamStateHandle::File(file) => {
            reader = Some(Arc::new(DamagingReader {
                inner: h
                    .reader()
                    .expect("a harness that writes files has a reader"),
                path: file.path.clone(),
                damage,
            }));
        }
    }
    (handles, reader)
}

/// Restores from `handles` and reads everything back.
fn restore_and_read<H: Harness>(
    h: &H,
    handles: Vec<KeyedStateHandle>,
    reader: Option<Arc<dyn StateReader>>,
) -> Result<()> {
    let clock = clock();
    let backend = create::<H, u64>(
        h,
        params(&clock, MAX_P, KeyGroupRange::all(MAX_P)).restore(handles, reader),
    )?;
    let v = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("v"))?;
    let l = backend.list_state::<String, ()>(&ListStateDescriptor::new("l"))?;
    let m = backend.map_state::<u32, u64, ()>(&MapStateDescriptor::new("m"))?;
    for k in 0..KEYS {
        v.get(&k, &())?;
        l.get(&k, &())?;
        m.entries(&k, &())?;
    }
    v.state_keys(&())?;
    Ok(())
}

/// Every position to damage in a stream of `size` bytes (a sample of large streams).
fn positions(size: u64) -> Vec<u64> {
    let step = (size / 2_048).max(1);
    let mut out: Vec<u64> = (0..size).step_by(step as usize).collect();
    if size > 0 && out.last() != Some(&(size - 1)) {
        out.push(size - 1);
    }
    out
}

/// Flipping any byte of a snapshot stream (inline or file) makes the restore fail with
/// `Corrupted` (or `Unsupported`, for the format version), never panic or succeed.
pub fn corrupted_snapshot_byte_is_detected<H: Harness>(h: &H) {
    let handles = written(h);
    restore_and_read(h, handles.clone(), h.reader()).expect("the undamaged snapshot restores");
    for (i, handle) in handles.iter().enumerate() {
        for (j, stream) in handle.streams().iter().enumerate() {
            let size = stream.size();
            for at in positions(size) {
                let (damaged_handles, reader) = damaged(h, &handles, i, j, Damage::Flip(at));
                match restore_and_read(h, damaged_handles, reader) {
                    Ok(()) => panic!(
                        "a flipped byte at {at} of {size} in stream {j} of handle {i} was not detected"
                    ),
                    Err(e) => {
                        assert!(
                            matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported),
                            "byte {at} of {size}: unexpected error kind: {e}"
                        );
                        if at == size - 1 || at == 0 {
                            assert_eq!(e.kind(), ErrorKind::Corrupted, "byte {at} of {size}: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// A truncated snapshot stream makes the restore fail with `Corrupted`.
pub fn truncated_snapshot_is_detected<H: Harness>(h: &H) {
    let handles = written(h);
    for (i, handle) in handles.iter().enumerate() {
        for (j, stream) in handle.streams().iter().enumerate() {
            let size = stream.size();
            let mut lengths = vec![
                0,
                1,
                5,
                size / 3,
                size / 2,
                size.saturating_sub(20),
                size.saturating_sub(1),
            ];
            lengths.retain(|&l| l < size);
            lengths.dedup();
            for len in lengths {
                let (damaged_handles, reader) = damaged(h, &handles, i, j, Damage::Truncate(len));
                match restore_and_read(h, damaged_handles, reader) {
                    Ok(()) => panic!(
                        "stream {j} of handle {i} truncated to {len} of {size} bytes was not detected"
                    ),
                    Err(e) => assert_eq!(
                        e.kind(),
                        ErrorKind::Corrupted,
                        "truncated to {len} of {size}: {e}"
                    ),
                }
            }
        }
    }
}
