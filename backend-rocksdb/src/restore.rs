//! Restores: full (key-group-indexed) handles of any backend and incremental handles of
//! this one, at any parallelism.
//!
//! - one incremental handle covering the backend's key groups: its files are downloaded
//!   into the working directory and opened, and key groups outside the range are deleted
//!   (delete-range);
//! - otherwise every handle's records of the backend's key groups are inserted into a
//!   fresh database (incremental handles are downloaded into a temporary directory and
//!   opened read-only for that).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cornerstone_backend_api::keygroup::KeyGroupAssigner;
use cornerstone_backend_api::spi::copy_stream;
use cornerstone_backend_api::spi::format::describe;
use cornerstone_backend_api::spi::format::incremental::{self, IncrementalMeta};
use cornerstone_backend_api::spi::keyed_format::{KeyedSnapshotHeader, Record, read_key_groups};
use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::timer::{TimerEntry, decode_timestamp};
use cornerstone_backend_api::{
    Error, IncrementalStateHandle, KeyGroupRange, KeyGroupsStateHandle, KeyedBackendParams,
    KeyedStateHandle, Result, StateKind, StateMeta, StateReader,
};
use rocksdb::WriteBatch;
use tempfile::TempDir;

use crate::db::{CfSpec, Instance, Resources, open_read_only, working_dir};
use crate::error::{from_rocksdb, local_io};
use crate::keys::{key_group_bound, prefix_len, push_field, push_key_group};
use crate::states::{StateEntry, cf_name};
use crate::table::{Seek, scan};
use crate::timers::timer_key;

/// Writes are applied in batches of about this many bytes.
const BATCH_BYTES: usize = 4 << 20;

/// Reads and checks the meta stream of an incremental handle.
fn read_meta(
    h: &IncrementalStateHandle,
    reader: Option<&dyn StateReader>,
    params: &KeyedBackendParams,
    key_type: &str,
) -> Result<IncrementalMeta> {
    let what = describe(&h.meta);
    let meta = incremental::decode(&read_stream(&h.meta, reader)?, &what)?;
    if meta.key_type != key_type {
        return Err(Error::invalid_input(
            "the snapshot was written with another key type than the backend restoring it",
        )
        .with_context("stored", &meta.key_type)
        .with_context("requested", key_type));
    }
    if meta.max_parallelism != params.max_parallelism {
        return Err(Error::invalid_input(
            "the snapshot was written with another max parallelism than the backend restoring it",
        )
        .with_context("stored", meta.max_parallelism)
        .with_context("requested", params.max_parallelism)
        .with_context("path", what));
    }
    Ok(meta)
}

/// Downloads the files of `h` into `dir`, checking each file's size and checksum.
fn download(
    h: &IncrementalStateHandle,
    reader: Option<&dyn StateReader>,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| local_io("create restore directory", dir, e))?;
    for file in h.shared.iter().chain(&h.private) {
        let name = &file.local_name;
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\'])
            && !name.contains('\0');
        if !plain {
            return Err(
                Error::corrupted("incremental handle names a file with a bad local name")
                    .with_context("local_name", name)
                    .with_context("path", describe(&file.handle)),
            );
        }
        let path = dir.join(name);
        if path.exists() {
            return Err(
                Error::corrupted("incremental handle names a local file twice")
                    .with_context("local_name", name),
            );
        }
        // Streamed to the local file with its size and CRC32 checked on the way: an SST of
        // any size costs one chunk of memory.
        let mut out =
            std::fs::File::create(&path).map_err(|e| local_io("create restored file", &path, e))?;
        copy_stream(&file.handle, reader, &mut out)
            .map_err(|e| e.with_context("local_path", path.display()))?;
    }
    Ok(())
}

/// Adds `meta` to the known states, checking that handles agree; returns its column family.
fn add_state(states: &mut BTreeMap<String, StateEntry>, meta: &StateMeta) -> Result<CfSpec> {
    if let Some(e) = states.get(&meta.name) {
        if e.meta != *meta {
            return Err(Error::invalid_input(
                "restored handles disagree about a state's kind or types",
            )
            .with_context("state", &meta.name));
        }
        return Ok(CfSpec::of(e.cf.clone(), meta));
    }
    let cf = cf_name(&meta.name);
    states.insert(
        meta.name.clone(),
        StateEntry {
            meta: meta.clone(),
            cf: cf.clone(),
            filter: None,
            registered: false,
        },
    );
    Ok(CfSpec::of(cf, meta))
}

/// A write batch that is applied when it grows large.
struct Loader<'a> {
    inst: &'a Instance,
    batch: WriteBatch,
}

impl Loader<'_> {
    fn put(&mut self, cf: &str, k: &[u8], v: &[u8]) -> Result<()> {
        let handle = self.inst.cf(cf)?;
        self.batch.put_cf(&handle, k, v);
        drop(handle);
        if self.batch.size_in_bytes() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Deletes `k` (a changelog's removal of a value, list or timer).
    fn delete(&mut self, cf: &str, k: &[u8]) -> Result<()> {
        let handle = self.inst.cf(cf)?;
        self.batch.delete_cf(&handle, k);
        Ok(())
    }

    /// Deletes every key that starts with `prefix` (a changelog's removal of a map).
    fn delete_prefix(&mut self, cf: &str, prefix: &[u8]) -> Result<()> {
        let handle = self.inst.cf(cf)?;
        let mut end = prefix.to_vec();
        // The first key after every key with the prefix: the prefix with its last byte
        // below 0xff incremented (a prefix starts with the key group, never all 0xff).
        while end.last() == Some(&0xff) {
            end.pop();
        }
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        self.batch.delete_range_cf(&handle, prefix, &end);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.inst
            .db
            .write_opt(batch, &self.inst.write)
            .map_err(|e| from_rocksdb("restore write", e))
    }
}

/// Opens the working database of a new backend, restoring `params.restore`.
pub(crate) fn restore(
    params: &KeyedBackendParams,
    root: &Path,
    resources: Resources,
    key_type: &str,
) -> Result<(Instance, BTreeMap<String, StateEntry>)> {
    let range = params.key_group_range;
    let plen = prefix_len(params.max_parallelism);
    let dir = working_dir(root)?;

    // One incremental handle covering our range: open its files directly.
    // (Renamed or dropped states take the general path below, which writes each state
    // into the column family of its new name.)
    if let [KeyedStateHandle::Incremental(h)] = params.restore.as_slice()
        && h.range.intersection(&range) == range
        && params.state_mapping.is_empty()
    {
        return open_incremental(h, params, dir, resources, key_type);
    }

    let inst = Instance::open(dir, resources, plen, &[])?;
    let states = load(&inst, params, key_type)?;
    Ok((inst, states))
}

/// The direct path of [`restore`]: downloads the files of the one incremental handle `h`,
/// which covers the backend's key groups, into the working directory `dir` and opens them
/// there, deleting the key groups outside the backend's range.
fn open_incremental(
    h: &IncrementalStateHandle,
    params: &KeyedBackendParams,
    dir: TempDir,
    resources: Resources,
    key_type: &str,
) -> Result<(Instance, BTreeMap<String, StateEntry>)> {
    let range = params.key_group_range;
    let reader = params.reader.as_deref();
    let plen = prefix_len(params.max_parallelism);
    let mut states: BTreeMap<String, StateEntry> = BTreeMap::new();
    let meta = read_meta(h, reader, params, key_type)?;
    download(h, reader, &dir.path().join("db"))?;
    let mut cfs = Vec::new();
    for s in &meta.states {
        let cf = add_state(&mut states, &s.meta)?;
        if cf.name != s.column_family {
            return Err(
                Error::corrupted("snapshot meta names an unexpected column family")
                    .with_context("state", &s.meta.name)
                    .with_context("column_family", &s.column_family),
            );
        }
        cfs.push(cf);
    }
    let inst = Instance::open(dir, resources, plen, &cfs)?;
    if h.range != range {
        clip(&inst, &cfs, range, params.max_parallelism, plen)?;
    }
    Ok((inst, states))
}

/// The general path of [`restore`]: inserts every handle's records of the backend's key
/// groups into the fresh database `inst`, and returns the states the handles hold (after
/// renames and drops).
fn load(
    inst: &Instance,
    params: &KeyedBackendParams,
    key_type: &str,
) -> Result<BTreeMap<String, StateEntry>> {
    let mut states: BTreeMap<String, StateEntry> = BTreeMap::new();
    // The state names the restored snapshots hold, before renames and drops.
    let mut stored = BTreeSet::new();
    let mut loader = Loader {
        inst,
        batch: WriteBatch::default(),
    };
    for (n, handle) in params.restore.iter().enumerate() {
        match handle {
            KeyedStateHandle::KeyGroups(h) => {
                load_key_groups(h, params, key_type, &mut loader, &mut states, &mut stored)?;
            }
            // A heap backend's changelog: its base, then each delta in order.
            KeyedStateHandle::Changelog(h) => {
                for part in h.segments().flat_map(|s| &s.parts) {
                    load_key_groups(
                        part,
                        params,
                        key_type,
                        &mut loader,
                        &mut states,
                        &mut stored,
                    )?;
                }
            }
            KeyedStateHandle::Incremental(h) => {
                load_incremental(
                    n,
                    h,
                    params,
                    key_type,
                    &mut loader,
                    &mut states,
                    &mut stored,
                )?;
            }
        }
    }
    loader.flush()?;
    drop(loader);
    if !stored.is_empty() {
        params.state_mapping.check_used(&stored)?;
    }
    Ok(states)
}

/// Loads the records of the backend's key groups from the full handle `h` (timers
/// re-encoded as keys of their queue's column family), adding its states to `states` and
/// their stored names to `stored`.
fn load_key_groups(
    h: &KeyGroupsStateHandle,
    params: &KeyedBackendParams,
    key_type: &str,
    loader: &mut Loader<'_>,
    states: &mut BTreeMap<String, StateEntry>,
    stored: &mut BTreeSet<String>,
) -> Result<()> {
    let range = params.key_group_range;
    let reader = params.reader.as_deref();
    let plen = prefix_len(params.max_parallelism);
    let key_groups = KeyGroupAssigner::new(params.max_parallelism)?;
    let inst = loader.inst;
    // Per state index of the header: its column family and kind (`None`: dropped).
    let mut names: Vec<Option<(String, StateKind)>> = Vec::new();
    let mut key = Vec::new();
    let mut visit = |header: &KeyedSnapshotHeader, record: Record<'_>| -> Result<()> {
        if names.is_empty() && !header.states.is_empty() {
            header.check_key_type(key_type)?;
            for meta in params.state_mapping.apply(&header.states)? {
                names.push(match meta {
                    Some(meta) => {
                        let cf = add_state(states, &meta)?;
                        inst.ensure_cf(&cf)?;
                        Some((cf.name, meta.kind))
                    }
                    None => None,
                });
            }
        }
        record.check_key_group(key_groups)?;
        let Some(name) = names.get(record.state as usize) else {
            return Err(Error::corrupted("snapshot record out of place")
                .with_context("key_group", record.key_group));
        };
        let Some((cf, kind)) = name else {
            return Ok(());
        };
        if *kind == StateKind::Timers {
            let entry = TimerEntry::from_parts(record.key, record.namespace);
            timer_key(
                &mut key,
                record.key_group,
                plen,
                decode_timestamp(record.value)?,
                entry.as_bytes(),
            );
            if record.removed {
                return loader.delete(cf, &key);
            }
            return loader.put(cf, &key, &[]);
        }
        key.clear();
        push_key_group(&mut key, record.key_group, plen);
        push_field(&mut key, record.key);
        push_field(&mut key, record.namespace);
        if record.removed {
            // Of a map: all its entries, whose keys continue after the namespace.
            return if *kind == StateKind::Map {
                loader.delete_prefix(cf, &key)
            } else {
                loader.delete(cf, &key)
            };
        }
        if let Some(uk) = record.user_key {
            key.extend_from_slice(uk);
        }
        loader.put(cf, &key, record.value)
    };
    let header = read_key_groups(h, reader, range, &mut visit)?;
    if let Some(header) = header {
        header.check_key_type(key_type)?;
        stored.extend(header.states.iter().map(|m| m.name.clone()));
        for meta in params
            .state_mapping
            .apply(&header.states)?
            .into_iter()
            .flatten()
        {
            let cf = add_state(states, &meta)?;
            inst.ensure_cf(&cf)?;
        }
    }
    Ok(())
}

/// Loads the records of the backend's key groups from the incremental handle `h` (at
/// index `n` of the restored handles): downloads its files into a temporary directory,
/// opens them read-only and copies each state's key groups into the column family of its
/// (new) name, adding the states to `states` and their stored names to `stored`.
fn load_incremental(
    n: usize,
    h: &IncrementalStateHandle,
    params: &KeyedBackendParams,
    key_type: &str,
    loader: &mut Loader<'_>,
    states: &mut BTreeMap<String, StateEntry>,
    stored: &mut BTreeSet<String>,
) -> Result<()> {
    let range = params.key_group_range;
    let reader = params.reader.as_deref();
    let plen = prefix_len(params.max_parallelism);
    let inst = loader.inst;
    let wanted = h.range.intersection(&range);
    if wanted.is_empty() {
        return Ok(());
    }
    let meta = read_meta(h, reader, params, key_type)?;
    let tmp = inst.dir.path().join(format!("restore-{n}"));
    download(h, reader, &tmp)?;
    let cfs: Vec<String> = meta
        .states
        .iter()
        .map(|s| s.column_family.clone())
        .collect();
    {
        let db = open_read_only(&inst.resources, &tmp, &cfs)?;
        let lower = key_group_bound(wanted.first(), plen);
        let upper = key_group_bound(wanted.last() + 1, plen);
        let metas: Vec<StateMeta> = meta.states.iter().map(|s| s.meta.clone()).collect();
        stored.extend(metas.iter().map(|m| m.name.clone()));
        let mapped = params.state_mapping.apply(&metas)?;
        for (s, renamed) in meta.states.iter().zip(mapped) {
            let Some(renamed) = renamed else {
                continue;
            };
            let cf = add_state(states, &renamed)?;
            inst.ensure_cf(&cf)?;
            let source = db.cf_handle(&s.column_family).ok_or_else(|| {
                Error::corrupted("a state's column family is missing from the snapshot")
                    .with_context("state", &s.meta.name)
            })?;
            scan(
                &db,
                &source,
                &lower,
                Some(upper.clone()),
                Seek::Total,
                &mut |k, v| {
                    loader.put(&cf.name, k, v)?;
                    Ok(true)
                },
            )?;
        }
    }
    std::fs::remove_dir_all(&tmp).map_err(|e| local_io("remove restore directory", &tmp, e))?;
    Ok(())
}

/// Deletes the key groups outside `range` from every column family.
fn clip(
    inst: &Instance,
    cfs: &[CfSpec],
    range: KeyGroupRange,
    max_parallelism: u32,
    plen: usize,
) -> Result<()> {
    for cf in cfs {
        let handle = inst.cf(&cf.name)?;
        if range.first() > 0 {
            inst.db
                .delete_range_cf_opt(
                    &handle,
                    key_group_bound(0, plen),
                    key_group_bound(range.first(), plen),
                    &inst.write,
                )
                .map_err(|e| from_rocksdb("delete range", e))?;
        }
        if range.last() + 1 < max_parallelism {
            inst.db
                .delete_range_cf_opt(
                    &handle,
                    key_group_bound(range.last() + 1, plen),
                    key_group_bound(max_parallelism, plen),
                    &inst.write,
                )
                .map_err(|e| from_rocksdb("delete range", e))?;
        }
    }
    Ok(())
}
