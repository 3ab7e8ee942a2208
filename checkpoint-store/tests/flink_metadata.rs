//! The reader of Flink's own `_metadata` files against real checkpoints and savepoints
//! written by Flink 2.3.0 (`testdata/flink-2.3/`, copied from the fixture generator's
//! output): every file parses, and what it holds is what each scenario's `MANIFEST.md`
//! records (which Flink's own reader produced). Then hostile inputs: every single-byte
//! change and every truncation of a heap and a RocksDB incremental `_metadata` is an error
//! or a value (never a panic), as are random structural mutations; crafted huge counts and
//! deep nesting are refused quickly, naming what was wrong; and the memory the reader
//! allocates stays within a stated multiple of the input's size.
//!
//! Memory is measured by counting the bytes allocated through Rust's global allocator
//! (`peak_alloc`) above what was allocated before the reader ran; tests run one at a time (a
//! lock), so that the peak is the reader's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cornerstone_backend_api::ErrorKind;
use cornerstone_checkpoint_store::flink::{
    self, DistributionMode, FlinkMetadata, KeyedStateHandle, OperatorStateHandle, StreamStateHandle,
};
use cornerstone_testkit::flink::{Header, Manifest, PREFIX, SCENARIOS, fixtures, local};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the lock that runs the tests one at a time (a failed test does not fail the others).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap()
}

fn parse(bytes: &[u8]) -> FlinkMetadata {
    flink::read_flink_metadata(bytes).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------
// Rendering a decoded _metadata the way the manifests print Flink's view
// ---------------------------------------------------------------------------------------

fn unprefix(s: &str) -> String {
    s.replace(&format!("file:{PREFIX}"), "file:<prefix>")
}

fn stream(h: &StreamStateHandle) -> String {
    match h {
        StreamStateHandle::ByteStream { name, data } => format!(
            "BYTE_STREAM_STATE_HANDLE(1) inline name=\"{}\" {} bytes",
            unprefix(name),
            data.len()
        ),
        StreamStateHandle::File { path, size } => {
            format!(
                "FILE_STREAM_STATE_HANDLE(2) path=\"{}\" size={size}",
                unprefix(path)
            )
        }
        StreamStateHandle::Relative {
            relative_path,
            size,
        } => {
            format!("RELATIVE_STREAM_STATE_HANDLE(6) relativePath=\"{relative_path}\" size={size}")
        }
        other => format!("{other:?}"),
    }
}

fn offsets(o: &[i64]) -> String {
    let items: Vec<String> = o.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn mode(m: DistributionMode) -> &'static str {
    match m {
        DistributionMode::SplitDistribute => "SPLIT_DISTRIBUTE",
        DistributionMode::Union => "UNION",
        DistributionMode::Broadcast => "BROADCAST",
    }
}

fn render(m: &FlinkMetadata) -> Vec<String> {
    let mut out = Vec::new();
    for op in &m.operators {
        out.push(format!(
            "operator {} uid={} parallelism={} maxParallelism={} fullyFinished={}",
            op.operator_id,
            op.uid.as_deref().unwrap_or("null"),
            op.parallelism,
            op.max_parallelism,
            op.fully_finished
        ));
        out.push(match &op.coordinator_state {
            Some(StreamStateHandle::ByteStream { name, data }) => format!(
                "  coordinatorState: BYTE_STREAM_STATE_HANDLE(1) name={name} {} bytes",
                data.len()
            ),
            None => "  coordinatorState: none".into(),
            Some(other) => format!("  coordinatorState: {other:?}"),
        });
        for s in &op.subtasks {
            out.push(format!("  subtask {}", s.index));
            if let Some(h) = s.managed_operator_state.as_deref() {
                out.push(format!(
                    "    managedOperatorState: {}({})",
                    h.type_name(),
                    h.type_code()
                ));
                for st in h.states() {
                    out.push(format!(
                        "      state \"{}\" mode={} offsets={}",
                        st.name,
                        mode(st.mode),
                        offsets(&st.offsets)
                    ));
                }
                out.push(format!("      -> {}", stream(h.stream())));
            }
            if let Some(k) = s.managed_keyed_state.as_deref() {
                let head = format!(
                    "    managedKeyedState: {}({})",
                    k.type_name(),
                    k.type_code()
                );
                let r = k.key_groups();
                let range = format!("keyGroups={}-{}", r.start, r.end_inclusive().unwrap());
                match k {
                    KeyedStateHandle::KeyGroupsV2(h) | KeyedStateHandle::SavepointKeyGroups(h) => {
                        out.push(match &h.state_handle_id {
                            Some(id) => format!("{head} {range} stateHandleId={id}"),
                            None => format!("{head} {range} (no stateHandleId in the file)"),
                        });
                        out.push(format!("      offsets={}", offsets(&h.offsets)));
                        out.push(format!("      -> {}", stream(&h.stream)));
                    }
                    KeyedStateHandle::IncrementalV2(h) => {
                        out.push(format!(
                            "{head} {range} checkpointId={} backendId={} checkpointedSize={} \
                             stateHandleId={}",
                            h.checkpoint_id,
                            h.backend_id,
                            h.checkpointed_size.unwrap(),
                            h.state_handle_id.as_deref().unwrap()
                        ));
                        out.push(format!("      meta: {}", stream(&h.meta)));
                        for (what, list) in [("shared", &h.shared), ("private", &h.private)] {
                            out.push(format!("      {what} ({}):", list.len()));
                            for f in list {
                                out.push(format!(
                                    "        {} -> {}",
                                    f.local_path,
                                    stream(&f.handle)
                                ));
                            }
                        }
                    }
                    other => out.push(format!("{head} {other:?}")),
                }
            }
            for (what, present) in [
                ("rawOperatorState", s.raw_operator_state.is_some()),
                ("rawKeyedState", s.raw_keyed_state.is_some()),
                ("inputChannelState", !s.input_channel_state.is_empty()),
                (
                    "resultSubpartitionState",
                    !s.result_subpartition_state.is_empty(),
                ),
                ("finished", s.finished),
            ] {
                if present {
                    out.push(format!("    {what}: (not in the fixtures)"));
                }
            }
        }
    }
    out
}

/// Sorts each run of `state "..."` lines (Flink prints a hash map's order).
fn normalized(mut lines: Vec<String>) -> Vec<String> {
    let mut i = 0;
    while i < lines.len() {
        let mut j = i;
        while j < lines.len() && lines[j].trim_start().starts_with("state \"") {
            j += 1;
        }
        lines[i..j].sort();
        i = j.max(i + 1);
    }
    lines
}

/// Every type code in a decoded `_metadata`, by name.
fn codes(m: &FlinkMetadata) -> BTreeSet<(String, u8)> {
    fn s(out: &mut BTreeSet<(String, u8)>, h: &StreamStateHandle) {
        out.insert((h.type_name().into(), h.type_code()));
    }
    let mut out = BTreeSet::new();
    for op in &m.operators {
        if let Some(h) = &op.coordinator_state {
            s(&mut out, h);
        }
        for st in &op.subtasks {
            if let Some(h) = st.managed_operator_state.as_deref() {
                out.insert((h.type_name().into(), h.type_code()));
                s(&mut out, h.stream());
            }
            if let Some(k) = st.managed_keyed_state.as_deref() {
                out.insert((k.type_name().into(), k.type_code()));
                match k {
                    KeyedStateHandle::KeyGroupsV2(h) | KeyedStateHandle::SavepointKeyGroups(h) => {
                        s(&mut out, &h.stream)
                    }
                    KeyedStateHandle::IncrementalV2(h) => {
                        s(&mut out, &h.meta);
                        for f in h.shared.iter().chain(&h.private) {
                            s(&mut out, &f.handle);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn first_difference(expected: &[String], actual: &[String]) -> String {
    let at = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    format!(
        "line {at}:\n  manifest: {:?}\n  decoded:  {:?}\n({} vs {} lines)",
        expected.get(at),
        actual.get(at),
        expected.len(),
        actual.len()
    )
}

#[test]
fn every_fixture_holds_what_its_manifest_records() {
    let _one = one_at_a_time();
    let mut seen = 0;
    for scenario in SCENARIOS {
        let m = Manifest::read(scenario);
        assert!(
            !m.details.is_empty(),
            "{scenario}: no details in the manifest"
        );
        let mut found_codes = BTreeSet::new();
        for e in &m.details {
            let rel = format!("{scenario}/{}/_metadata", e.dir);
            let bytes = read(&rel);
            assert!(flink::is_flink_metadata(&bytes), "{rel}");
            let md = parse(&bytes);
            seen += 1;

            // The header table and the details list.
            let Header {
                size,
                version,
                checkpoint_id: id,
            } = m.headers[&e.dir];
            assert_eq!(bytes.len() as u64, size, "{rel}");
            assert_eq!(md.version, version, "{rel}");
            assert_eq!(md.checkpoint_id, id, "{rel}");
            assert_eq!(md.checkpoint_id, e.checkpoint_id, "{rel}");
            assert_eq!(md.master_states.len(), e.master_states, "{rel}");
            assert_eq!(md.operators.len(), e.operators, "{rel}");
            assert_eq!(md.trailing_bytes, 0, "{rel}");

            // Flink's view, line by line.
            assert!(e.block.len() >= 20, "{rel}: {} lines", e.block.len());
            let expected = normalized(e.block.clone());
            let actual = normalized(render(&md));
            assert!(
                expected == actual,
                "{rel}: {}",
                first_difference(&expected, &actual)
            );

            // Operators: ids, names and uids of the operators table; 2 / 128 everywhere.
            for op in &md.operators {
                let uid = op.uid.as_deref().unwrap();
                let (name, id) = &m.operators[uid];
                assert_eq!(&op.operator_id, id, "{rel} {uid}");
                let recorded = op.name.as_deref().unwrap();
                assert!(
                    recorded.contains(name.as_str()),
                    "{rel}: {recorded:?} vs {name:?}"
                );
                assert_eq!(
                    (op.parallelism, op.max_parallelism),
                    (2, 128),
                    "{rel} {uid}"
                );
                assert!(!op.fully_finished);
                let indices: Vec<u32> = op.subtasks.iter().map(|s| s.index).collect();
                assert_eq!(indices, vec![0, 1], "{rel} {uid}");
            }

            // The keyed function's key groups and the map's operator state, explicitly.
            let op = |uid: &str| {
                md.operators
                    .iter()
                    .find(|o| o.uid.as_deref() == Some(uid))
                    .unwrap()
            };
            for (s, (start, end)) in op("keyed-state-fn")
                .subtasks
                .iter()
                .zip([(0, 63), (64, 127)])
            {
                let k = s.managed_keyed_state.as_deref().unwrap();
                assert_eq!(k.key_groups().start, start, "{rel}");
                assert_eq!(k.key_groups().end_inclusive(), Some(end), "{rel}");
                // Canonical savepoints: SAVEPOINT_KEY_GROUPS_HANDLE; RocksDB native
                // snapshots: INCREMENTAL_KEY_GROUPS_HANDLE_V2; heap: KEY_GROUPS_HANDLE_V2.
                let expected_code = if e.dir.starts_with("canonical/") {
                    7
                } else if scenario.starts_with("rocksdb") {
                    11
                } else {
                    12
                };
                assert_eq!(k.type_code(), expected_code, "{rel}");
            }
            for s in &op("counting-map").subtasks {
                let h = s.managed_operator_state.as_deref().unwrap();
                assert!(matches!(h, OperatorStateHandle::Partitionable { .. }));
                let modes: BTreeMap<&str, DistributionMode> = h
                    .states()
                    .iter()
                    .map(|st| (st.name.as_str(), st.mode))
                    .collect();
                assert_eq!(
                    modes["seen-ids"],
                    DistributionMode::SplitDistribute,
                    "{rel}"
                );
                assert_eq!(
                    modes["subtask-record-counts"],
                    DistributionMode::Union,
                    "{rel}"
                );
                assert!(
                    matches!(h.stream(), StreamStateHandle::ByteStream { .. }),
                    "{rel}"
                );
            }
            assert!(
                op("discarding-sink")
                    .subtasks
                    .iter()
                    .all(|s| s.managed_keyed_state.is_none() && s.managed_operator_state.is_none())
            );

            // The Java-serialized properties are kept raw, and are what Flink printed.
            let props = md.properties.as_ref().unwrap();
            assert!(props.bytes.starts_with(&[0xac, 0xed, 0x00, 0x05]), "{rel}");
            assert_eq!(props.offset + props.len, bytes.len() as u64, "{rel}");
            let savepoint = e.properties.contains("SavepointType");
            let has = |needle: &[u8]| props.bytes.windows(needle.len()).any(|w| w == needle);
            assert_eq!(has(b"SavepointType"), savepoint, "{rel}");

            // Serializable for the command-line tool.
            let json = serde_json::to_string(&md).unwrap();
            assert!(
                json.contains("\"type\":\"BYTE_STREAM_STATE_HANDLE\""),
                "{rel}"
            );
            found_codes.extend(codes(&md));
        }
        // The type codes Flink re-serialized from these files, and only those.
        assert_eq!(found_codes, m.codes, "{scenario}");
    }
    assert_eq!(seen, 13);
}

/// Every referenced file exists with at least the recorded size, the manifests' "Files and
/// references" tables match the listing, and every file in a scenario is referenced.
#[test]
fn referenced_files_exist_and_match_the_manifests() {
    let _one = one_at_a_time();
    for scenario in SCENARIOS {
        let m = Manifest::read(scenario);
        let mut referenced: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in &m.details {
            let rel = format!("{scenario}/{}/_metadata", e.dir);
            let md = parse(&read(&rel));
            let dir_rel = e.dir.as_str();
            let dir = fixtures().join(scenario).join(dir_rel);
            for f in md.referenced_files(dir.to_str().unwrap()).unwrap() {
                let path = if f.relative_path.is_some() {
                    PathBuf::from(&f.path)
                } else {
                    local(&f.path)
                };
                let len = std::fs::metadata(&path)
                    .unwrap_or_else(|e| panic!("{rel}: {}: {e}", path.display()))
                    .len();
                assert!(
                    len >= f.min_size,
                    "{rel}: {} is {len} < {}",
                    f.path,
                    f.min_size
                );
                let key = path
                    .canonicalize()
                    .unwrap()
                    .strip_prefix(fixtures().join(scenario).canonicalize().unwrap())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                let (bytes, _) = &m.files[&key];
                assert_eq!(f.min_size, *bytes, "{rel}: {key}");
                referenced
                    .entry(key)
                    .or_default()
                    .insert(dir_rel.to_string());
            }
        }
        let listed: BTreeMap<String, BTreeSet<String>> = m
            .files
            .iter()
            .filter(|(f, _)| !f.ends_with("_metadata"))
            .map(|(f, (_, by))| (f.clone(), by.iter().cloned().collect()))
            .collect();
        assert_eq!(referenced, listed, "{scenario}");
    }
}

/// RocksDB incremental: shared SSTs (inline and in files) recur across chk-7, 8 and 9.
#[test]
fn incremental_checkpoints_share_sst_files() {
    let _one = one_at_a_time();
    let dir = "rocksdb-incremental/c42e0b21da1ecb3ede0fcdc7a99dc982";
    let mut shared_files: Vec<BTreeSet<String>> = Vec::new();
    let mut shared_names: Vec<BTreeSet<String>> = Vec::new();
    for chk in ["chk-7", "chk-8", "chk-9"] {
        let md = parse(&read(&format!("{dir}/{chk}/_metadata")));
        let files = md.referenced_files(chk).unwrap();
        shared_files.push(
            files
                .iter()
                .filter(|f| f.shared)
                .map(|f| f.path.clone())
                .collect(),
        );
        let mut names = BTreeSet::new();
        for op in &md.operators {
            for s in &op.subtasks {
                if let Some(KeyedStateHandle::IncrementalV2(h)) = s.managed_keyed_state.as_deref() {
                    assert!(h.shared.iter().all(|f| f.local_path.ends_with(".sst")));
                    let private: BTreeSet<&str> =
                        h.private.iter().map(|f| f.local_path.as_str()).collect();
                    assert_eq!(
                        private,
                        BTreeSet::from(["CURRENT", "MANIFEST-000005", "OPTIONS-000019"])
                    );
                    for f in &h.shared {
                        names.insert(format!("{}:{}", h.backend_id, stream(&f.handle)));
                    }
                }
            }
        }
        shared_names.push(names);
    }
    let in_all = |sets: &[BTreeSet<String>]| -> BTreeSet<String> {
        sets[1..].iter().fold(sets[0].clone(), |acc, s| {
            acc.intersection(s).cloned().collect()
        })
    };
    let files = in_all(&shared_files);
    assert_eq!(
        files,
        BTreeSet::from([
            format!("file:{PREFIX}/flink-2.3/{dir}/shared/31b44a84-b69b-4f62-a4c6-ad97007d6570"),
            format!("file:{PREFIX}/flink-2.3/{dir}/shared/f2ea8399-ab7f-4d7c-849a-f0e9070aeecf"),
        ])
    );
    assert!(
        in_all(&shared_names).len() >= 2,
        "{:?}",
        in_all(&shared_names)
    );
}

// ---------------------------------------------------------------------------------------
// Hostile inputs
// ---------------------------------------------------------------------------------------

const HEAP: &str = "heap/8b29583a859a4767d5e5626ff6b1fd5b/chk-6/_metadata";
const ROCKSDB: &str = "rocksdb-incremental/c42e0b21da1ecb3ede0fcdc7a99dc982/chk-9/_metadata";

/// Decodes `input`: a value (whose files can be listed, and which serializes when
/// `json`), or an error that says where.
fn decode_or_error(input: &[u8], json: bool) {
    match flink::read_flink_metadata(input) {
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported),
                "{e}"
            );
            assert!(e.context("offset").is_some(), "no offset: {e}");
        }
        Ok(m) => {
            let _ = m.referenced_files("file:/x/chk-1");
            if json {
                serde_json::to_string(&m).unwrap();
            }
        }
    }
}

/// Runs `check` on every mutation index of `len` in two threads.
fn each_index(len: usize, check: impl Fn(usize) + Sync) {
    std::thread::scope(|s| {
        for part in 0..2 {
            let check = &check;
            s.spawn(move || {
                for i in (part..len).step_by(2) {
                    check(i);
                }
            });
        }
    });
}

#[test]
fn every_byte_flip_is_a_value_or_an_error() {
    let _one = one_at_a_time();
    for rel in [HEAP, ROCKSDB] {
        let original = read(rel);
        each_index(original.len(), |i| {
            let mut input = original.clone();
            for mask in [0xff, 0x01, 0x80, 0x7f] {
                input[i] = original[i] ^ mask;
                decode_or_error(&input, false);
            }
        });
    }
}

/// Every truncation of the body is an error; a truncation inside the Java-serialized
/// properties (which are kept raw, not parsed) may decode.
#[test]
fn every_truncation_is_an_error_or_a_value() {
    let _one = one_at_a_time();
    for rel in [HEAP, ROCKSDB] {
        let original = read(rel);
        let properties_at = parse(&original).properties.unwrap().offset as usize;
        each_index(original.len(), |len| {
            match flink::read_flink_metadata(&original[..len]) {
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Corrupted, "{len}: {e}");
                    assert!(e.context("offset").is_some(), "{len}: {e}");
                }
                Ok(md) => {
                    assert!(len >= properties_at + 4, "{len}: decoded a truncated body");
                    assert_eq!(md.properties.unwrap().len as usize, len - properties_at);
                }
            }
        });
    }
}

/// The header of a version 6 `_metadata` with checkpoint id 1 and no master states.
fn header() -> Vec<u8> {
    let mut v = flink::MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&6i32.to_be_bytes());
    v.extend_from_slice(&1i64.to_be_bytes());
    v.extend_from_slice(&0i32.to_be_bytes());
    v
}

fn quickly_refused(input: &[u8], field: &str, value: &str) -> String {
    let start = Instant::now();
    let e = flink::read_flink_metadata(input).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1), "{e}");
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert_eq!(e.context("field"), Some(field), "{e}");
    assert_eq!(e.context("value"), Some(value), "{e}");
    e.to_string()
}

#[test]
fn huge_counts_are_refused_before_allocation() {
    let _one = one_at_a_time();
    let mut input = header();
    input.extend_from_slice(&i32::MAX.to_be_bytes());
    input.extend_from_slice(&[0; 100]);
    let e = quickly_refused(&input, "operator count", "2147483647");
    assert!(
        e.contains(
            "operator count 2147483647 at offset 20 needs at least 70866960351 bytes, 100 remain"
        ),
        "{e}"
    );

    // A master state count, in a 100-byte file.
    let mut input = header();
    input.truncate(16);
    input.extend_from_slice(&0x4000_0000i32.to_be_bytes());
    input.resize(100, 0);
    quickly_refused(&input, "master state count", "1073741824");

    // Inside a real file: the first operator's first subtask count.
    let mut input = read(HEAP);
    let md = parse(&input);
    let coordinator = md.operators[0].coordinator_state.as_ref().unwrap();
    // name, uid, id, parallelism, max parallelism, coordinator state (code, name, len, data).
    let StreamStateHandle::ByteStream { name, data } = coordinator else {
        panic!()
    };
    let at = 24
        + 2
        + md.operators[0].name.as_ref().unwrap().len()
        + 2
        + 14
        + 16
        + 8
        + 1
        + 2
        + name.len()
        + 4
        + data.len();
    assert_eq!(&input[at..at + 4], &2i32.to_be_bytes());
    input[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    quickly_refused(&input, "subtask count", "2147483647");
}

#[test]
fn deep_nesting_is_refused() {
    let _one = one_at_a_time();
    // An operator whose coordinator state is KEY_GROUPS_HANDLE streams nested 100000 deep.
    let mut input = header();
    input.extend_from_slice(&1i32.to_be_bytes());
    input.extend_from_slice(&[0, 0]); // name
    input.extend_from_slice(&[0, 0]); // uid
    input.extend_from_slice(&[7; 16]);
    input.extend_from_slice(&1i32.to_be_bytes());
    input.extend_from_slice(&1i32.to_be_bytes());
    for _ in 0..100_000 {
        input.push(3);
        input.extend_from_slice(&0i32.to_be_bytes());
        input.extend_from_slice(&0i32.to_be_bytes());
    }
    let e = flink::read_flink_metadata(&input).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted);
    assert!(e.to_string().contains("nested deeper than 16"), "{e}");
}

#[test]
fn magic_and_versions() {
    let _one = one_at_a_time();
    assert!(!flink::is_flink_metadata(b""));
    assert!(!flink::is_flink_metadata(&[0x49, 0x60, 0x67]));
    let cornerstone = std::fs::read(fixtures().join("../metadata-v1.csmd")).unwrap();
    assert!(!flink::is_flink_metadata(&cornerstone));
    let e = flink::read_flink_metadata(&cornerstone).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted);
    assert!(e.to_string().contains("magic number"), "{e}");

    let mut input = read(HEAP);
    for version in [1i32, 2, 8, -1] {
        input[4..8].copy_from_slice(&version.to_be_bytes());
        let e = flink::read_flink_metadata(&input).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert_eq!(e.context("actual"), Some(version.to_string().as_str()));
        assert_eq!(e.context("supported"), Some("3..=7"));
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Several structural mutations at once: interesting ints and longs over fields, random
/// bytes, deleted and duplicated ranges. `FLINK_MUTATIONS` sets the rounds per fixture.
#[test]
fn random_structural_mutations_are_values_or_errors() {
    let _one = one_at_a_time();
    let rounds: usize = std::env::var("FLINK_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2500);
    let ints: [i64; 10] = [
        0,
        1,
        -1,
        2,
        0x7f,
        0xffff,
        0x1_0000,
        i32::MAX as i64,
        i32::MIN as i64,
        64,
    ];
    let fixtures: Vec<Vec<u8>> = [HEAP, ROCKSDB]
        .iter()
        .map(|r| read(r))
        .chain(std::iter::once(read(
            "rocksdb-savepoints/native/savepoint-c42e0b-a03ab0a2bf6f/_metadata",
        )))
        .chain(std::iter::once(read(
            "heap-savepoints/canonical/savepoint-8b2958-e676c567a47a/_metadata",
        )))
        .collect();
    each_index(fixtures.len() * rounds, |i| {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
        let mut input = fixtures[i % fixtures.len()].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(input.len());
            match rng.below(5) {
                0 => {
                    let v = (ints[rng.below(ints.len())] as i32).to_be_bytes();
                    for (k, b) in v.iter().enumerate() {
                        if let Some(x) = input.get_mut(at + k) {
                            *x = *b;
                        }
                    }
                }
                1 => {
                    let v = ints[rng.below(ints.len())].to_be_bytes();
                    for (k, b) in v.iter().enumerate() {
                        if let Some(x) = input.get_mut(at + k) {
                            *x = *b;
                        }
                    }
                }
                2 => input[at] = rng.next() as u8,
                3 => {
                    let end = (at + 1 + rng.below(64)).min(input.len());
                    input.drain(at..end);
                }
                _ => {
                    let end = (at + 1 + rng.below(256)).min(input.len());
                    let copy = input[at..end].to_vec();
                    let to = rng.below(input.len());
                    input.splice(to..to, copy);
                }
            }
            if input.is_empty() {
                break;
            }
        }
        decode_or_error(&input, i % 16 == 0);
    });
}

/// Runs `f`, returning its result and the peak of bytes allocated above the start.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let out = f();
    (out, ALLOCATOR.peak_usage().saturating_sub(before))
}

/// A version 6 file whose one operator (parallelism 1) has one subtask with `keyed` as its
/// managed keyed state.
fn with_keyed(keyed: &[u8]) -> Vec<u8> {
    let mut v = header();
    v.extend_from_slice(&1i32.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]); // name, uid
    v.extend_from_slice(&[7; 16]);
    for n in [1i32, 1] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v.push(0);
    for n in [1i32, 0, 0, 0] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v.extend_from_slice(keyed);
    v.push(0);
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&[0xac, 0xed, 0x00, 0x05]);
    v
}

/// The reader allocates at most [`MEMORY_FACTOR`] times the input's size (plus 64 KiB): for
/// the fixtures, and for crafted files of the smallest encodings of the items with the
/// largest decoded form (the worst cases).
#[test]
fn memory_stays_within_a_multiple_of_the_input() {
    let _one = one_at_a_time();
    const MEMORY_FACTOR: usize = 48;
    const N: usize = 1 << 16;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for e in SCENARIOS.into_iter().flat_map(|s| {
        Manifest::read(s)
            .details
            .into_iter()
            .map(move |e| format!("{s}/{}/_metadata", e.dir))
    }) {
        cases.push((e.clone(), read(&e)));
    }
    // N finished subtasks: 4 bytes each.
    let mut v = header();
    v.extend_from_slice(&1i32.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&[7; 16]);
    for n in [i32::MAX, i32::MAX] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v.push(0);
    v.extend_from_slice(&(N as i32).to_be_bytes());
    for i in 0..N as i32 {
        v.extend_from_slice(&(-(i + 1)).to_be_bytes());
    }
    v.extend_from_slice(&[0xac, 0xed, 0x00, 0x05]);
    cases.push(("finished subtasks".into(), v));
    // An incremental handle with N shared files of 3 bytes: "" and an empty segment.
    let mut k = vec![5];
    k.extend_from_slice(&[0; 8 + 2 + 8]); // checkpoint id, backend id, key groups
    k.push(16);
    k.extend_from_slice(&(N as i32).to_be_bytes());
    for _ in 0..N {
        k.extend_from_slice(&[0, 0, 16]);
    }
    k.extend_from_slice(&0i32.to_be_bytes());
    cases.push(("shared files".into(), with_keyed(&k)));
    // A changelog handle with N + 1 materialized key-group handles of 10 bytes (one past a
    // power of two, where a growing vector would double), and one with N null handles.
    for (what, n, handle) in [
        (
            "changelog handles",
            N + 1,
            &[3, 0, 0, 0, 0, 0, 0, 0, 0, 16][..],
        ),
        ("null changelog handles", N, &[0][..]),
    ] {
        let mut k = vec![8];
        k.extend_from_slice(&[0; 8 + 8]);
        k.extend_from_slice(&(n as i32).to_be_bytes());
        for _ in 0..n {
            k.extend_from_slice(handle);
        }
        k.extend_from_slice(&[0; 4 + 8 + 2]);
        cases.push((what.into(), with_keyed(&k)));
    }
    // N operators of 33 bytes.
    let mut v = header();
    v.extend_from_slice(&(N as i32).to_be_bytes());
    for _ in 0..N {
        v.extend_from_slice(&[0; 4 + 16]);
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    }
    v.extend_from_slice(&[0xac, 0xed, 0x00, 0x05]);
    cases.push(("operators".into(), v));

    for (what, input) in &cases {
        let (result, peak) = measure(|| flink::read_flink_metadata(input));
        let md = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let bound = MEMORY_FACTOR * input.len() + (64 << 10);
        println!(
            "{what}: {} bytes in, peak {peak} bytes ({:.1}x)",
            input.len(),
            peak as f64 / input.len() as f64
        );
        assert!(
            peak <= bound,
            "{what}: allocated {peak} bytes for {} (bound {bound})",
            input.len()
        );
        drop(md);
    }

    // Refusals allocate almost nothing.
    let mut input = header();
    input.extend_from_slice(&i32::MAX.to_be_bytes());
    input.resize(1 << 20, 0);
    let (result, peak) = measure(|| flink::read_flink_metadata(&input));
    assert!(result.is_err());
    assert!(peak < 4096, "a refused count allocated {peak} bytes");
}
