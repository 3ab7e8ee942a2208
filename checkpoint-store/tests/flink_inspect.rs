//! The inspection API on Apache Flink's own job directories (`inspect::flink_*`), over a temp
//! copy of every Flink 2.3 fixture in `testdata/flink-2.3/`, with the absolute paths Flink
//! wrote (under `/fixtures/flink`) remapped to the copy. Every expectation comes from the
//! scenario's `MANIFEST.md` (what Flink's own reader saw), not from this crate's output.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cornerstone_backend_api::ErrorKind;
use cornerstone_checkpoint_store::inspect::{
    self, FlinkGcReason, FlinkKind, FlinkPaths, FlinkProblemKind, FlinkStatus, GcOptions,
    MetadataFormat,
};
use cornerstone_checkpoint_store::{CheckpointStore, Location};
use cornerstone_testkit::flink::{self, FixtureCopy, SCENARIOS};

// ---------------------------------------------------------------------------------------
// MANIFEST.md
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct Subtask {
    index: u32,
    /// (managed/raw, type name, "a-b")
    keyed: Vec<(String, String, String)>,
    /// shared and private file counts of incremental handles
    shared: Vec<usize>,
    private: Vec<usize>,
    /// (state name, mode)
    op_states: BTreeSet<(String, String)>,
}

#[derive(Debug, Default, Clone)]
struct Operator {
    id: String,
    uid: String,
    parallelism: u32,
    max_parallelism: u32,
    coordinator_bytes: Option<u64>,
    subtasks: Vec<Subtask>,
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    /// Relative to the scenario: `<job>/chk-7`.
    dir: String,
    checkpoint_id: u64,
    version: u32,
    properties: String,
    operators: Vec<Operator>,
    inline_bytes: u64,
}

/// A scenario's manifest, and its snapshots as these tests read them.
#[derive(Debug)]
struct Manifest {
    fixture: flink::Manifest,
    snapshots: Vec<Snapshot>,
}

impl std::ops::Deref for Manifest {
    type Target = flink::Manifest;

    fn deref(&self) -> &flink::Manifest {
        &self.fixture
    }
}

impl Manifest {
    fn snapshot(&self, dir: &str) -> &Snapshot {
        self.snapshots.iter().find(|s| s.dir == dir).unwrap()
    }

    fn size_of(&self, dir: &str) -> u64 {
        self.files_of(dir).values().sum::<u64>() + self.snapshot(dir).inline_bytes
    }
}

fn word<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[at..].split_whitespace().next().unwrap()
}

fn manifest(scenario: &str) -> Manifest {
    let fixture = flink::Manifest::read(scenario);
    let snapshots = fixture
        .details
        .iter()
        .map(|d| {
            let header = fixture.headers[&d.dir];
            let mut s = Snapshot {
                dir: d.dir.clone(),
                checkpoint_id: header.checkpoint_id,
                version: header.version,
                properties: d.properties.clone(),
                ..Snapshot::default()
            };
            for line in &d.block {
                block_line(&mut s, line);
            }
            s
        })
        .collect();
    Manifest { fixture, snapshots }
}

fn block_line(s: &mut Snapshot, line: &str) {
    let t = line.trim();
    if line.contains("BYTE_STREAM_STATE_HANDLE(1)") && t.ends_with(" bytes") {
        let n: u64 = t
            .trim_end_matches(" bytes")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        s.inline_bytes += n;
        if t.starts_with("coordinatorState:") {
            s.operators.last_mut().unwrap().coordinator_bytes = Some(n);
        }
    }
    if let Some(rest) = line.strip_prefix("operator ") {
        s.operators.push(Operator {
            id: rest.split_whitespace().next().unwrap().to_string(),
            uid: word(line, "uid=").to_string(),
            parallelism: word(line, "parallelism=").parse().unwrap(),
            max_parallelism: word(line, "maxParallelism=").parse().unwrap(),
            ..Operator::default()
        });
        return;
    }
    let op = match s.operators.last_mut() {
        Some(op) => op,
        None => return,
    };
    if let Some(i) = t.strip_prefix("subtask ") {
        op.subtasks.push(Subtask {
            index: i.parse().unwrap(),
            ..Subtask::default()
        });
        return;
    }
    let Some(st) = op.subtasks.last_mut() else {
        return;
    };
    for which in ["managed", "raw"] {
        if let Some(rest) = t.strip_prefix(&format!("{which}KeyedState: ")) {
            let ty = rest.split('(').next().unwrap().to_string();
            st.keyed
                .push((which.to_string(), ty, word(rest, "keyGroups=").to_string()));
        }
    }
    if let Some(rest) = t.strip_prefix("shared (") {
        st.shared.push(rest.trim_end_matches("):").parse().unwrap());
    }
    if let Some(rest) = t.strip_prefix("private (") {
        st.private
            .push(rest.trim_end_matches("):").parse().unwrap());
    }
    if let Some(rest) = t.strip_prefix("state \"") {
        let (name, rest) = rest.split_once('"').unwrap();
        st.op_states
            .insert((name.to_string(), word(rest, "mode=").to_string()));
    }
}

// ---------------------------------------------------------------------------------------
// A temp copy of a scenario
// ---------------------------------------------------------------------------------------

struct Copy {
    fixture: FixtureCopy,
    store: CheckpointStore,
    paths: FlinkPaths,
}

impl Copy {
    fn new(scenario: &str) -> Self {
        let fixture = FixtureCopy::new(scenario);
        let root = fixture.root().to_str().unwrap();
        let location = Location::parse(root).unwrap();
        let store = location.open(Vec::<(String, String)>::new()).unwrap();
        let paths = FlinkPaths::new(location.store_key())
            .with_prefix(flink::PREFIX, root)
            .unwrap();
        Copy {
            fixture,
            store,
            paths,
        }
    }

    /// The local path of `rel` (relative to the scenario).
    fn local(&self, rel: &str) -> PathBuf {
        self.fixture.path(rel)
    }

    /// The store path of `rel` (relative to the scenario).
    fn store_path(&self, rel: &str) -> String {
        let p = self.local(rel);
        p.to_str().unwrap().trim_start_matches('/').to_string()
    }

    fn store_dir(&self, rel: &str) -> String {
        format!("{}/", self.store_path(rel))
    }
}

fn options(min_age_ms: u64) -> GcOptions {
    let now = cornerstone_backend_api::clock::system_clock().now_millis();
    GcOptions::new(now).with_min_age_ms(min_age_ms)
}

/// The job directories of a scenario (the parents of its snapshot directories).
fn job_dirs(m: &Manifest) -> BTreeSet<String> {
    m.snapshots
        .iter()
        .map(|s| s.dir.rsplit_once('/').unwrap().0.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Every scenario
// ---------------------------------------------------------------------------------------

#[test]
fn every_fixture_lists_shows_verifies_and_has_no_garbage() {
    for scenario in SCENARIOS {
        let m = manifest(scenario);
        let c = Copy::new(scenario);
        assert!(!m.snapshots.is_empty(), "{scenario}");
        for job in job_dirs(&m) {
            let job_path = c.store_path(&job);
            assert_eq!(
                inspect::detect_format(&c.store, &job_path).unwrap(),
                MetadataFormat::Flink
            );
            // list
            let listed = inspect::flink_list(&c.store, &job_path, &c.paths).unwrap();
            let expected: Vec<&Snapshot> = m
                .snapshots
                .iter()
                .filter(|s| s.dir.rsplit_once('/').unwrap().0 == job)
                .collect();
            assert_eq!(listed.len(), expected.len(), "{scenario}/{job}");
            let mut previous: Option<&str> = None;
            for (e, s) in listed.iter().zip(&expected) {
                let what = format!("{scenario}/{}", s.dir);
                assert_eq!(e.dir, c.store_dir(&s.dir), "{what}");
                assert_eq!(e.status, FlinkStatus::Complete, "{what}");
                assert_eq!(e.id, Some(s.checkpoint_id), "{what}");
                assert_eq!(e.version, Some(s.version), "{what}");
                assert_eq!(e.size_bytes, m.size_of(&s.dir), "{what}");
                assert_eq!(e.inline_bytes, Some(s.inline_bytes), "{what}");
                let savepoint = s.properties.contains("SavepointType");
                let kind = if savepoint {
                    FlinkKind::Savepoint
                } else {
                    FlinkKind::Checkpoint
                };
                assert_eq!(e.kind, kind, "{what}");
                assert_eq!(e.snapshot_type, Some(kind), "{what}");
                let format = ["CANONICAL", "NATIVE"]
                    .into_iter()
                    .find(|f| s.properties.contains(&format!("formatType={f}")));
                assert_eq!(e.savepoint_format.as_deref(), format, "{what}");
                let incremental = s.operators.iter().any(|o| {
                    o.subtasks
                        .iter()
                        .any(|st| st.keyed.iter().any(|k| k.1.starts_with("INCREMENTAL")))
                });
                assert_eq!(e.incremental, Some(incremental), "{what}");
                if !savepoint {
                    let shared: u64 = previous.map_or(0, |p| {
                        let before = m.files_of(p);
                        m.files_of(&s.dir)
                            .iter()
                            .filter(|(f, _)| before.contains_key(*f))
                            .map(|(_, b)| b)
                            .sum()
                    });
                    assert_eq!(e.written_bytes, Some(e.size_bytes - shared), "{what}");
                    previous = Some(&s.dir);
                }
            }
            // verify: every snapshot of the job directory
            let report = inspect::flink_verify(&c.store, &job_path, &c.paths, |_, _| {}).unwrap();
            assert!(report.is_ok(), "{scenario}/{job}: {:?}", report.problems);
            let all: BTreeSet<String> = expected
                .iter()
                .flat_map(|s| m.files_of(&s.dir).into_keys())
                .collect();
            assert_eq!(report.files_checked, all.len(), "{scenario}/{job}");
            assert_eq!(report.verified.len(), expected.len());
            // gc: nothing to collect
            let gc =
                inspect::flink_gc_candidates(&c.store, &job_path, &c.paths, &options(0)).unwrap();
            assert!(
                gc.candidates.is_empty(),
                "{scenario}/{job}: {:?}",
                gc.candidates
            );
            assert_eq!(gc.referenced_files, all.len());
            let retained: BTreeSet<u64> = gc.retained.iter().map(|r| r.checkpoint_id).collect();
            let ids: BTreeSet<u64> = expected.iter().map(|s| s.checkpoint_id).collect();
            assert_eq!(retained, ids);
        }
        for s in &m.snapshots {
            show_matches(&c, &m, s);
        }
    }
}

fn show_matches(c: &Copy, m: &Manifest, s: &Snapshot) {
    let what = format!("{}/{}", c.fixture.scenario(), s.dir);
    let d = inspect::flink_show(&c.store, &c.store_path(&s.dir), &c.paths).unwrap();
    assert_eq!(d.checkpoint_id, s.checkpoint_id, "{what}");
    assert_eq!(d.version, s.version, "{what}");
    assert_eq!(d.state_size_bytes, m.size_of(&s.dir), "{what}");
    assert!(d.master_states.is_empty());
    // Operators: sorted by id, with the manifest's uids, names, parallelism.
    let mut ops = s.operators.clone();
    ops.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(d.operators.len(), ops.len(), "{what}");
    for (o, e) in d.operators.iter().zip(&ops) {
        assert_eq!(o.operator_id, e.id, "{what}");
        assert_eq!(o.uid.as_deref(), Some(e.uid.as_str()), "{what}");
        let (name, id) = &m.operators[&e.uid];
        assert_eq!(&o.operator_id, id, "{what}");
        assert!(
            o.name.as_deref().unwrap().contains(name.as_str()),
            "{what}: {:?}",
            o.name
        );
        assert_eq!((o.parallelism, o.max_parallelism), (2, 128), "{what}");
        assert_eq!((e.parallelism, e.max_parallelism), (2, 128), "{what}");
        assert_eq!(o.coordinator_state_bytes, e.coordinator_bytes, "{what}");
        assert_eq!(o.subtasks.len(), e.subtasks.len(), "{what}");
        for (st, es) in o.subtasks.iter().zip(&e.subtasks) {
            assert_eq!(st.index, es.index);
            let keyed: Vec<(String, String, String)> = st
                .keyed
                .iter()
                .map(|k| {
                    let (a, b) = k.key_groups.unwrap();
                    (
                        k.state.to_string(),
                        k.type_name.to_string(),
                        format!("{a}-{b}"),
                    )
                })
                .collect();
            assert_eq!(keyed, es.keyed, "{what} {}", e.uid);
            let shared: Vec<usize> = st
                .keyed
                .iter()
                .filter_map(|k| k.incremental.as_ref().map(|i| i.shared.len()))
                .collect();
            let private: Vec<usize> = st
                .keyed
                .iter()
                .filter_map(|k| k.incremental.as_ref().map(|i| i.private.len()))
                .collect();
            assert_eq!(shared, es.shared, "{what}");
            assert_eq!(private, es.private, "{what}");
            let states: BTreeSet<(String, String)> = st
                .operator
                .iter()
                .flat_map(|h| &h.states)
                .map(|n| {
                    let mode = serde_json::to_value(n.mode).unwrap();
                    (n.name.clone(), mode.as_str().unwrap().to_string())
                })
                .collect();
            assert_eq!(states, es.op_states, "{what}");
        }
    }
    // Files: exactly the manifest's, at its sizes.
    let files: BTreeMap<String, u64> = d
        .files
        .iter()
        .map(|f| {
            assert!(f.in_store);
            (f.path.clone(), f.min_size_bytes)
        })
        .collect();
    let expected: BTreeMap<String, u64> = m
        .files_of(&s.dir)
        .into_iter()
        .map(|(f, b)| (c.store_path(&f), b))
        .collect();
    assert_eq!(files, expected, "{what}");
    // JSON carries the same facts.
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["checkpoint_id"], s.checkpoint_id);
    assert_eq!(json["operators"].as_array().unwrap().len(), ops.len());
    assert_eq!(json["operators"][0]["operator_id"], ops[0].id.as_str());
    assert_eq!(json["files"].as_array().unwrap().len(), expected.len());
}

/// The SSTs several RocksDB incremental checkpoints share: listed as shared by each, the
/// same paths, as the manifest says.
#[test]
fn incremental_checkpoints_share_their_ssts() {
    let m = manifest("rocksdb-incremental");
    let c = Copy::new("rocksdb-incremental");
    let several: BTreeSet<String> = m
        .files
        .iter()
        .filter(|(_, (_, by))| by.len() > 1)
        .map(|(f, _)| c.store_path(f))
        .collect();
    assert_eq!(several.len(), 2);
    let mut per_checkpoint = Vec::new();
    for s in &m.snapshots {
        let d = inspect::flink_show(&c.store, &c.store_path(&s.dir), &c.paths).unwrap();
        let shared: BTreeSet<String> = d
            .files
            .iter()
            .filter(|f| f.shared)
            .map(|f| f.path.clone())
            .collect();
        assert!(shared.is_superset(&several), "{}", s.dir);
        per_checkpoint.push(d);
    }
    let a = &per_checkpoint[0];
    let b = &per_checkpoint[1];
    let diff = inspect::flink_diff(&c.store, &a.dir, &b.dir, &c.paths).unwrap();
    let common: BTreeSet<String> = diff.files_common.iter().map(|f| f.path.clone()).collect();
    let expected_common: BTreeSet<String> = m
        .files
        .iter()
        .filter(|(_, (_, by))| by.contains(&m.snapshots[0].dir) && by.contains(&m.snapshots[1].dir))
        .map(|(f, _)| c.store_path(f))
        .collect();
    assert_eq!(common, expected_common);
    let only_a: BTreeSet<String> = diff.files_only_a.iter().map(|f| f.path.clone()).collect();
    let expected_only_a: BTreeSet<String> = m
        .files_of(&m.snapshots[0].dir)
        .into_keys()
        .map(|f| c.store_path(&f))
        .filter(|p| !common.contains(p))
        .collect();
    assert_eq!(only_a, expected_only_a);
    assert_eq!(
        diff.bytes_common,
        m.files_of(&m.snapshots[0].dir)
            .iter()
            .filter(|(f, _)| expected_common.contains(&c.store_path(f)))
            .map(|(_, b)| b)
            .sum::<u64>()
    );
}

/// A deleted shared SST: verify names it, its expected size and every checkpoint that
/// references it (the job directory), or the one checkpoint verified.
#[test]
fn verify_names_a_missing_shared_sst_and_its_checkpoints() {
    let m = manifest("rocksdb-incremental");
    let c = Copy::new("rocksdb-incremental");
    let (file, (bytes, by)) = m
        .files
        .iter()
        .find(|(f, (_, by))| f.contains("/shared/") && by.len() == 3)
        .unwrap();
    std::fs::remove_file(c.local(file)).unwrap();
    let job = c.store_path(m.snapshots[0].dir.rsplit_once('/').unwrap().0);
    let report = inspect::flink_verify(&c.store, &job, &c.paths, |_, _| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.kind, FlinkProblemKind::MissingFile);
    assert_eq!(p.path, c.store_path(file));
    assert_eq!(p.expected_min_size_bytes, Some(*bytes));
    assert!(p.detail.contains(&bytes.to_string()), "{}", p.detail);
    let dirs: BTreeSet<String> = p.referenced_by.iter().map(|r| r.dir.clone()).collect();
    let expected: BTreeSet<String> = by.iter().map(|d| c.store_dir(d)).collect();
    assert_eq!(dirs, expected);
    // Each checkpoint on its own names the file too.
    for d in by {
        let r = inspect::flink_verify(&c.store, &c.store_path(d), &c.paths, |_, _| {}).unwrap();
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].path, c.store_path(file));
        assert_eq!(r.problems[0].referenced_by[0].dir, c.store_dir(d));
    }
    // Without the remapping, every absolute path is missing.
    let unmapped = FlinkPaths::new("file://");
    let r = inspect::flink_verify(&c.store, &job, &unmapped, |_, _| {}).unwrap();
    assert_eq!(r.problems.len(), m.files.len());
    // gc refuses while a referenced file is missing.
    let e = inspect::flink_gc_candidates(&c.store, &job, &c.paths, &options(0)).unwrap_err();
    assert!(e.to_string().contains(&c.store_path(file)), "{e}");
}

#[test]
fn gc_collects_exactly_an_unreferenced_shared_file_and_refuses_unreadable_metadata() {
    let m = manifest("rocksdb-incremental");
    let c = Copy::new("rocksdb-incremental");
    let job_rel = m.snapshots[0].dir.rsplit_once('/').unwrap().0.to_string();
    let job = c.store_path(&job_rel);
    let orphan = c.local(&format!("{job_rel}/shared/orphan-sst"));
    std::fs::write(&orphan, vec![7u8; 4321]).unwrap();
    // Task-owned state belongs to the task managers: never a candidate, whatever its age.
    let task_owned = c.local(&format!("{job_rel}/taskowned"));
    std::fs::create_dir_all(&task_owned).unwrap();
    std::fs::write(task_owned.join("merged-file"), b"task manager's").unwrap();
    // Too young for the default min age: kept.
    let young =
        inspect::flink_gc_candidates(&c.store, &job, &c.paths, &options(3_600_000)).unwrap();
    assert!(young.candidates.is_empty());
    assert!(
        young.kept.iter().any(|k| k.why.contains("min age")),
        "{:?}",
        young.kept
    );
    // Any age: exactly the orphan.
    let report = inspect::flink_gc_candidates(&c.store, &job, &c.paths, &options(0)).unwrap();
    assert_eq!(report.candidates.len(), 1, "{:?}", report.candidates);
    let cand = &report.candidates[0];
    assert_eq!(
        cand.path,
        c.store_path(&format!("{job_rel}/shared/orphan-sst"))
    );
    assert_eq!(cand.size_bytes, 4321);
    assert_eq!(cand.reason, FlinkGcReason::UnreferencedShared);
    assert!(
        report
            .kept
            .iter()
            .any(|k| k.path.ends_with("taskowned/") && k.why.contains("task managers")),
        "{:?}",
        report.kept
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["candidates"][0]["reason"], "unreferenced-shared");
    assert_eq!(json["candidates"][0]["size_bytes"], 4321);
    // Delete: the orphan goes, nothing else.
    let before = c.fixture.every_file();
    let n = inspect::flink_gc_delete(&c.store, &report, &c.paths, &options(0)).unwrap();
    assert_eq!(n, 1);
    let after = c.fixture.every_file();
    let gone: Vec<&PathBuf> = before.difference(&after).collect();
    assert_eq!(gone, vec![&orphan]);
    assert!(after.is_subset(&before));
    assert!(c.local(&format!("{job_rel}/shared")).is_dir());
    let report = inspect::flink_verify(&c.store, &job, &c.paths, |_, _| {}).unwrap();
    assert!(report.is_ok());
    // A truncated _metadata: gc refuses, naming it.
    let meta = c.local(&format!("{}/_metadata", m.snapshots[1].dir));
    let bytes = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(&orphan, b"x").unwrap();
    let e = inspect::flink_gc_candidates(&c.store, &job, &c.paths, &options(0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted);
    let meta_path = c.store_path(&format!("{}/_metadata", m.snapshots[1].dir));
    assert!(e.to_string().contains(&meta_path), "{e}");
    assert!(orphan.exists());
    // list reports it as corrupt, verify as a metadata problem.
    let listed = inspect::flink_list(&c.store, &job, &c.paths).unwrap();
    assert_eq!(listed[1].status, FlinkStatus::Corrupt);
    let r = inspect::flink_verify(&c.store, &job, &c.paths, |_, _| {}).unwrap();
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].kind, FlinkProblemKind::Metadata);
    assert_eq!(r.problems[0].path, meta_path);
}

/// Absolute paths outside the store make gc refuse (it cannot tell what they reference).
#[test]
fn gc_refuses_references_outside_the_store() {
    let c = Copy::new("rocksdb-incremental");
    let m = manifest("rocksdb-incremental");
    let job = c.store_path(m.snapshots[0].dir.rsplit_once('/').unwrap().0);
    let s3 = FlinkPaths::new("s3://bucket");
    let e = inspect::flink_gc_candidates(&c.store, &job, &s3, &options(0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("outside this store"), "{e}");
}
