//! `cornerstone dump` of the keyed state of an operator in Apache Flink's own snapshots (full
//! key-groups handles: the heap backend's checkpoints and savepoints, canonical savepoints),
//! as JSON lines shaped like the dump of Cornerstone's snapshots.

use std::io::{self, Read, Write};

use anyhow::{Context, Result};
use cornerstone_backend_api::handles::{FileStateHandle, StateScope};
use cornerstone_backend_api::{Error, ErrorKind, StateReader};
use cornerstone_checkpoint_store::CheckpointStore;
use cornerstone_checkpoint_store::flink::{
    self, KeyedRead, KeyedStateHandle, OperatorState, StreamStateHandle,
};
use cornerstone_checkpoint_store::inspect::{self, ResolvedPath};
use serde_json::{Map, Value, json};

use crate::dump_cmd::DumpFilter;
use crate::output;

/// Where `dump` reads a Flink snapshot.
pub(crate) struct FlinkDumpTarget<'a> {
    pub(crate) store: &'a CheckpointStore,
    /// The path in the store.
    pub(crate) path: &'a str,
    /// The location as typed (for `--path-prefix`).
    pub(crate) location: &'a str,
    pub(crate) prefixes: &'a [(String, String)],
}

/// Writes the keyed entries of `operator` (uid, name or hex id) as JSON lines; returns how
/// many.
pub(crate) fn run_flink_dump(
    t: &FlinkDumpTarget<'_>,
    operator: &str,
    filter: &DumpFilter<'_>,
) -> Result<u64> {
    let paths = crate::flink::paths(t.location, t.prefixes)?;
    let details = inspect::flink_show(t.store, t.path, &paths)?;
    let meta_bytes = read_all(t.store, &details.metadata_path, details.metadata_size_bytes)?;
    let metadata = flink::read_flink_metadata(&meta_bytes)
        .with_context(|| format!("reading {}", details.metadata_path))?;
    let op = find_operator(&metadata.operators, operator)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let limit = filter.limit.unwrap_or(u64::MAX);
    let mut count = 0u64;
    let mut subtasks: Vec<_> = op.subtasks.iter().collect();
    subtasks.sort_by_key(|s| s.index);
    for s in subtasks {
        if filter.subtask.is_some_and(|n| n != s.index) {
            continue;
        }
        let Some(handle) = s.managed_keyed_state.as_deref() else {
            continue;
        };
        let kg = match handle {
            KeyedStateHandle::KeyGroups(k)
            | KeyedStateHandle::KeyGroupsV2(k)
            | KeyedStateHandle::SavepointKeyGroups(k) => k,
            _ => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "dump decodes Flink's full key-groups snapshots (heap backend checkpoints \
                     and savepoints, canonical savepoints), not RocksDB incremental or native \
                     snapshots (SST files) nor changelog state",
                )
                .with_context("path", t.location)
                .with_context("subtask", s.index)
                .into());
            }
        };
        if let Some(only) = filter.key_group
            && (only < kg.key_groups.start
                || u64::from(only - kg.key_groups.start) >= u64::from(kg.key_groups.count))
        {
            continue;
        }
        let (bytes, file) = match &kg.stream {
            StreamStateHandle::ByteStream { name, data } => {
                (data.as_slice().to_vec(), name.clone())
            }
            StreamStateHandle::Relative {
                relative_path,
                size,
            } => {
                let p = format!("{}{relative_path}", details.dir);
                (read_all(t.store, &p, *size)?, p)
            }
            StreamStateHandle::File { path, size } => match paths.resolve(path) {
                ResolvedPath::InStore(p) => (read_all(t.store, &p, *size)?, p),
                ResolvedPath::Foreign(uri) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "the key-groups file is outside this store (use --path-prefix)",
                    )
                    .with_context("file", uri)
                    .into());
                }
            },
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("key groups in a {} stream are not read", other.type_name()),
                )
                .into());
            }
        };
        let state = flink::read_keyed_state(
            &bytes,
            handle,
            &KeyedRead {
                file: &file,
                max_parallelism: op.max_parallelism,
                key_group: filter.key_group,
            },
        )
        .with_context(|| format!("dump subtask {}", s.index))?;
        for e in &state.entries {
            if count >= limit {
                break;
            }
            let Some(meta) = state.header.states.get(e.state) else {
                continue;
            };
            if filter.state.is_some_and(|f| f != meta.name) {
                continue;
            }
            if filter.key.is_some_and(|k| *k != e.key) {
                continue;
            }
            let kind = meta.kind();
            let mut o = Map::new();
            o.insert("subtask".into(), json!(s.index));
            o.insert("key_group".into(), json!(e.key_group));
            o.insert("state".into(), json!(meta.name));
            o.insert("kind".into(), json!(kind));
            o.insert("key".into(), e.key.clone());
            o.insert("namespace".into(), e.namespace.clone());
            let field = if kind == "timers" {
                "timestamp"
            } else {
                "value"
            };
            o.insert(field.into(), e.value.clone());
            let mut line = output::versioned(Value::Object(o)).to_string();
            line.push('\n');
            out.write_all(line.as_bytes())?;
            count += 1;
        }
    }
    out.flush()?;
    Ok(count)
}

/// The operator whose uid, name or hex id is `wanted`.
fn find_operator<'m>(ops: &'m [OperatorState], wanted: &str) -> Result<&'m OperatorState> {
    let by = |f: &dyn Fn(&OperatorState) -> bool| ops.iter().find(|o| f(o));
    by(&|o| o.uid.as_deref() == Some(wanted))
        .or_else(|| by(&|o| o.name.as_deref() == Some(wanted)))
        .or_else(|| by(&|o| o.operator_id.eq_ignore_ascii_case(wanted)))
        .ok_or_else(|| {
            let known: Vec<String> = ops
                .iter()
                .map(|o| o.uid.clone().unwrap_or_else(|| o.operator_id.clone()))
                .collect();
            Error::not_found("no operator with this uid, name or id")
                .with_context("operator", wanted)
                .with_context("operators", known.join(", "))
                .into()
        })
}

/// The whole file at `path` in the store.
fn read_all(store: &CheckpointStore, path: &str, size: u64) -> Result<Vec<u8>> {
    let handle = FileStateHandle {
        path: path.to_owned(),
        scope: StateScope::Exclusive,
        size,
        crc32: 0,
    };
    let reader = store.reader("");
    let mut r = reader.open_file(&handle, 0..size)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size.min(1 << 30)).unwrap_or(0));
    r.read_to_end(&mut bytes)
        .with_context(|| format!("reading {path}"))?;
    Ok(bytes)
}
