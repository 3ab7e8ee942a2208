//! `cornerstone dump`: selects an operator's entries and writes them as JSON lines (the
//! records are decoded by [`crate::dump`]).

use std::collections::BTreeSet;
use std::io::{self, Write};

use anyhow::{Context, Result};
use cornerstone_backend_api::handles::{KeyGroupsStateHandle, OperatorStateHandle};
use cornerstone_backend_api::spi::format::describe;
use cornerstone_backend_api::spi::format::operator::OperatorStream;
use cornerstone_backend_api::spi::keyed_format::{
    ChangelogRecord, Fields, KeyedSnapshotHeader, Record, live_records, read_key_groups,
};
use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{
    ChangelogStateHandle, Error, KeyGroupRange, KeyedStateHandle, StateMeta, StateReader,
};

use cornerstone_checkpoint_store::CheckpointStore;

use crate::{Progress, dump, output};

/// Which entries `dump` prints.
pub(crate) struct DumpFilter<'a> {
    pub(crate) state: Option<&'a str>,
    pub(crate) subtask: Option<u32>,
    pub(crate) key_group: Option<u32>,
    pub(crate) key: Option<&'a serde_json::Value>,
    pub(crate) limit: Option<u64>,
}

impl DumpFilter<'_> {
    /// Whether only keyed entries can match.
    fn keyed_only(&self) -> bool {
        self.key_group.is_some() || self.key.is_some()
    }

    /// The key groups of `range` to read: the one asked for (`None` when `range` does not
    /// hold it), or all.
    fn key_groups_in(&self, range: KeyGroupRange) -> Option<KeyGroupRange> {
        match self.key_group {
            Some(kg) if range.contains(kg) => Some(KeyGroupRange::new(kg, kg)),
            Some(_) => None,
            None => Some(range),
        }
    }
}

/// The JSON lines written so far, up to the limit.
struct Lines {
    out: io::BufWriter<io::StdoutLock<'static>>,
    count: u64,
    limit: u64,
    /// The write error that stopped the output (stdout closed).
    error: Option<io::Error>,
}

impl Lines {
    /// Writes one entry; `false` once the limit is reached or stdout failed.
    fn emit(&mut self, value: serde_json::Value) -> bool {
        if self.full() {
            return false;
        }
        let mut line = output::versioned(value).to_string();
        line.push('\n');
        match self.out.write_all(line.as_bytes()) {
            Ok(()) => {
                self.count += 1;
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    fn full(&self) -> bool {
        self.count >= self.limit
    }

    /// The write error, if one stopped the output.
    fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Writes the entries of one operator as JSON lines; returns how many.
pub(crate) fn run_dump(
    store: &CheckpointStore,
    path: &str,
    uid: &str,
    filter: &DumpFilter<'_>,
) -> Result<u64> {
    let snapshot = store.resolve(path)?;
    let m = &snapshot.metadata;
    let op = m.operator(uid).ok_or_else(|| {
        let uids: Vec<&str> = m.operators.iter().map(|o| o.uid.as_str()).collect();
        Error::not_found("no operator with this uid")
            .with_context("uid", uid)
            .with_context("path", &snapshot.metadata_path)
            .with_context("operators", uids.join(","))
    })?;
    #[cfg(not(feature = "rocksdb"))]
    for (subtask, st) in &op.subtasks {
        if st
            .keyed
            .iter()
            .any(|k| matches!(k, KeyedStateHandle::Incremental(_)))
        {
            return Err(Error::new(
                cornerstone_backend_api::ErrorKind::Unsupported,
                "dump needs full snapshots, but this subtask has an incremental (native) \
                 snapshot: dump a savepoint, or use a cornerstone built with the `rocksdb` \
                 feature",
            )
            .with_context("uid", uid)
            .with_context("subtask", subtask)
            .with_context("path", &snapshot.metadata_path)
            .into());
        }
    }
    if let Some(s) = filter.subtask
        && !op.subtasks.contains_key(&s)
    {
        let subtasks: Vec<String> = op.subtasks.keys().map(u32::to_string).collect();
        return Err(Error::not_found("the operator has no such subtask")
            .with_context("uid", uid)
            .with_context("subtask", s)
            .with_context("subtasks", subtasks.join(","))
            .into());
    }
    let reader = store.reader(&snapshot.base_dir);
    let handles: usize = op
        .subtasks
        .values()
        .map(|s| s.keyed.len() + s.operator.len())
        .sum();
    let progress = Progress::new("dumping", Some(handles as u64));
    let mut lines = Lines {
        out: io::BufWriter::new(io::stdout().lock()),
        count: 0,
        limit: filter.limit.unwrap_or(u64::MAX),
        error: None,
    };
    let mut known_states = BTreeSet::new();
    'subtasks: for (&subtask, st) in &op.subtasks {
        if filter.subtask.is_some_and(|s| s != subtask) {
            continue;
        }
        for k in &st.keyed {
            match k {
                KeyedStateHandle::KeyGroups(h) => {
                    dump_keyed(h, &reader, filter, subtask, &mut lines, &mut known_states)?;
                }
                #[cfg(feature = "rocksdb")]
                KeyedStateHandle::Incremental(h) => {
                    let (h, storage) = canonical(h, &reader)
                        .with_context(|| format!("dump subtask {subtask} of operator {uid}"))?;
                    dump_keyed(&h, &storage, filter, subtask, &mut lines, &mut known_states)?;
                }
                #[cfg(not(feature = "rocksdb"))]
                KeyedStateHandle::Incremental(_) => {}
                KeyedStateHandle::Changelog(h) => {
                    dump_changelog(h, &reader, filter, subtask, &mut lines, &mut known_states)?;
                }
            }
            progress.inc();
            if lines.full() {
                break 'subtasks;
            }
        }
        for o in &st.operator {
            if filter.keyed_only() {
                // Still name its states, for the unknown-state check below.
                known_states.extend(o.states.keys().cloned());
                continue;
            }
            dump_operator(
                o,
                &reader,
                filter,
                subtask,
                uid,
                &mut lines,
                &mut known_states,
            )?;
            progress.inc();
            if lines.full() {
                break 'subtasks;
            }
        }
    }
    lines.out.flush()?;
    progress.finish();
    // A limit reached may have stopped before the state's first entry.
    if let Some(f) = filter.state
        && !lines.full()
        && !known_states.contains(f)
    {
        let names: Vec<&str> = known_states.iter().map(String::as_str).collect();
        return Err(Error::not_found("the operator has no state with this name")
            .with_context("uid", uid)
            .with_context("state", f)
            .with_context("states", names.join(","))
            .into());
    }
    Ok(lines.count)
}

/// An incremental (RocksDB native) snapshot rewritten in the canonical key-group format,
/// into memory, by a temporary RocksDB instance: the handle and the storage holding it.
#[cfg(feature = "rocksdb")]
fn canonical(
    h: &cornerstone_backend_api::IncrementalStateHandle,
    reader: &cornerstone_checkpoint_store::StoreStateReader,
) -> Result<(
    KeyGroupsStateHandle,
    cornerstone_backend_api::spi::MemoryCheckpointStorage,
)> {
    let storage = cornerstone_backend_api::spi::MemoryCheckpointStorage::new();
    let reader: std::sync::Arc<dyn StateReader> = std::sync::Arc::new(reader.clone());
    let handle = cornerstone_backend_rocksdb::RocksDbStateBackend::new().canonical_snapshot(
        h,
        Some(reader),
        &storage.stream_factory(h.checkpoint_id),
    )?;
    match handle {
        KeyedStateHandle::KeyGroups(h) => Ok((h, storage)),
        KeyedStateHandle::Incremental(_) | KeyedStateHandle::Changelog(_) => {
            Err(Error::internal("a canonical snapshot is not a full one").into())
        }
    }
}

/// Writes the selected entries of one full keyed snapshot, reading only the key group asked
/// for (through the stream's index) when there is one.
fn dump_keyed(
    h: &KeyGroupsStateHandle,
    reader: &dyn StateReader,
    filter: &DumpFilter<'_>,
    subtask: u32,
    lines: &mut Lines,
    known_states: &mut BTreeSet<String>,
) -> Result<()> {
    let Some(range) = filter.key_groups_in(h.range) else {
        return Ok(());
    };
    let header = read_key_groups(h, Some(reader), range, &mut |header, rec| {
        let meta = state_of(header, &rec)?;
        let key_type = &header.key_type;
        emit_record(
            filter,
            subtask,
            lines,
            key_type,
            meta,
            rec.key_group,
            rec.fields(),
        )
    });
    lines.check()?;
    if lines.full() {
        return Ok(());
    }
    if let Some(header) = header.with_context(|| format!("dump subtask {subtask}"))? {
        known_states.extend(header.states.iter().map(|s| s.name.clone()));
    }
    Ok(())
}

/// The meta of a record's state.
fn state_of<'h>(header: &'h KeyedSnapshotHeader, rec: &Record<'_>) -> Result<&'h StateMeta, Error> {
    header.states.get(usize::from(rec.state)).ok_or_else(|| {
        Error::corrupted("record refers to a state missing from the header")
            .with_context("state_index", rec.state)
            .with_context("key_group", rec.key_group)
    })
}

/// Writes one record if the filter selects it; an error stops the read (stdout closed, or
/// the limit reached).
fn emit_record(
    filter: &DumpFilter<'_>,
    subtask: u32,
    lines: &mut Lines,
    key_type: &str,
    meta: &StateMeta,
    key_group: u32,
    rec: Fields<'_>,
) -> Result<(), Error> {
    if filter.state.is_some_and(|f| f != meta.name) {
        return Ok(());
    }
    let value = dump::keyed_record(
        subtask,
        key_group,
        key_type,
        meta,
        rec.key,
        rec.namespace,
        rec.user_key,
        rec.value,
    );
    if filter.key.is_some_and(|k| value.get("key") != Some(k)) {
        return Ok(());
    }
    if lines.emit(value) {
        Ok(())
    } else {
        Err(Error::corrupted("dump output stopped"))
    }
}

/// One record of a changelog, owned.
struct Owned {
    meta: StateMeta,
    key_type: String,
    key: Vec<u8>,
    namespace: Vec<u8>,
    user_key: Option<Vec<u8>>,
    value: Vec<u8>,
    removed: bool,
}

/// Writes the selected entries of a changelog snapshot: key group by key group, the records
/// its base and deltas leave, applied in order ([`live_records`]).
fn dump_changelog(
    h: &ChangelogStateHandle,
    reader: &dyn StateReader,
    filter: &DumpFilter<'_>,
    subtask: u32,
    lines: &mut Lines,
    known_states: &mut BTreeSet<String>,
) -> Result<()> {
    let Some(range) = filter.key_groups_in(h.range) else {
        return Ok(());
    };
    for kg in range.iter() {
        let mut records: Vec<Owned> = Vec::new();
        for part in h.segments().flat_map(|s| &s.parts) {
            let one = KeyGroupRange::new(kg, kg);
            let header = read_key_groups(part, Some(reader), one, &mut |header, rec| {
                records.push(Owned {
                    meta: state_of(header, &rec)?.clone(),
                    key_type: header.key_type.clone(),
                    key: rec.key.to_vec(),
                    namespace: rec.namespace.to_vec(),
                    user_key: rec.user_key.map(<[u8]>::to_vec),
                    value: rec.value.to_vec(),
                    removed: rec.removed,
                });
                Ok(())
            })
            .with_context(|| format!("dump subtask {subtask}"))?;
            if let Some(header) = header {
                known_states.extend(header.states.iter().map(|s| s.name.clone()));
            }
        }
        // States by name: their indexes differ from one stream's header to the next.
        let live = live_records(records.iter().map(|r| ChangelogRecord {
            state: r.meta.name.as_str(),
            kind: r.meta.kind,
            key: &r.key,
            namespace: &r.namespace,
            value: &r.value,
            removed: r.removed,
        }));
        for (r, _) in records.iter().zip(live).filter(|(_, live)| *live) {
            let rec = Fields {
                key: &r.key,
                namespace: &r.namespace,
                user_key: r.user_key.as_deref(),
                value: &r.value,
            };
            let emitted = emit_record(filter, subtask, lines, &r.key_type, &r.meta, kg, rec);
            if emitted.is_err() {
                lines.check()?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Writes the selected elements of one operator-state stream.
fn dump_operator(
    o: &OperatorStateHandle,
    reader: &dyn StateReader,
    filter: &DumpFilter<'_>,
    subtask: u32,
    uid: &str,
    lines: &mut Lines,
    known_states: &mut BTreeSet<String>,
) -> Result<()> {
    let bytes = read_stream(&o.stream, Some(reader))?;
    let path = describe(&o.stream);
    let stream = OperatorStream::parse(&bytes, &path)
        .with_context(|| format!("dump subtask {subtask} of operator {uid}"))?;
    for (name, meta) in &o.states {
        known_states.insert(name.clone());
        if filter.state.is_some_and(|f| f != name) {
            continue;
        }
        let elements = stream
            .elements(name, meta)
            .with_context(|| format!("dump subtask {subtask} of operator {uid}"))?;
        for (i, element) in elements.into_iter().enumerate() {
            let value =
                dump::operator_record(subtask, name, meta.mode, &meta.element_type, i, element);
            if !lines.emit(value) {
                break;
            }
        }
        lines.check()?;
        if lines.full() {
            return Ok(());
        }
    }
    Ok(())
}
