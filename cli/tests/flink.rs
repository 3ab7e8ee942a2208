//! The `cornerstone` binary on Apache Flink's own job directories: a temp copy of every
//! Flink 2.3 fixture (`testdata/flink-2.3/`), with `--path-prefix /fixtures/flink=<copy>`.
//! Expectations come from each scenario's `MANIFEST.md`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};

use cornerstone_testkit::flink::{FixtureCopy, Header, Manifest, PREFIX, SCENARIOS, key_group};
use serde_json::Value;

/// A temp copy of a scenario, and the binary run on it.
struct Copy {
    fixture: FixtureCopy,
}

impl Copy {
    fn new(scenario: &str) -> Self {
        Copy {
            fixture: FixtureCopy::new(scenario),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.fixture.path(rel)
    }

    fn arg(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_owned()
    }

    fn prefix(&self) -> String {
        format!("{PREFIX}={}", self.fixture.root().to_str().unwrap())
    }

    fn run(&self, args: &[&str]) -> Output {
        let prefix = self.prefix();
        let mut all = args.to_vec();
        all.extend(["--path-prefix", &prefix]);
        Command::new(env!("CARGO_BIN_EXE_cornerstone"))
            .args(&all)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?}: {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["format"], "flink");
        v
    }
}

fn job_of(dir: &str) -> &str {
    dir.rsplit_once('/').unwrap().0
}

#[test]
fn every_fixture_through_the_binary() {
    for scenario in SCENARIOS {
        let m = Manifest::read(scenario);
        let c = Copy::new(scenario);
        let jobs: BTreeSet<&str> = m.headers.keys().map(|d| job_of(d)).collect();
        for job in jobs {
            let list = c.json(&["list", &c.arg(job)]);
            let snaps = list["snapshots"].as_array().unwrap();
            let expected: Vec<(&String, &Header)> =
                m.headers.iter().filter(|(d, _)| job_of(d) == job).collect();
            assert_eq!(snaps.len(), expected.len(), "{scenario}/{job}");
            let by_dir: BTreeMap<String, &Value> = snaps
                .iter()
                .map(|s| {
                    (
                        s["dir"].as_str().unwrap().trim_end_matches('/').to_string(),
                        s,
                    )
                })
                .collect();
            for (dir, header) in &expected {
                let s = by_dir[&c.arg(dir)];
                assert_eq!(s["id"], header.checkpoint_id, "{scenario}/{dir}");
                assert_eq!(s["version"], header.version);
                assert_eq!(s["status"], "complete");
                let savepoint = dir.contains("savepoint-");
                assert_eq!(
                    s["kind"],
                    if savepoint { "savepoint" } else { "checkpoint" }
                );
                let files: u64 = m.files_of(dir).values().sum();
                assert_eq!(
                    s["size_bytes"].as_u64().unwrap(),
                    files + s["inline_bytes"].as_u64().unwrap()
                );
                // show
                let show = c.json(&["show", &c.arg(dir)]);
                assert_eq!(show["checkpoint_id"], header.checkpoint_id);
                let ops = show["operators"].as_array().unwrap();
                assert_eq!(ops.len(), m.operators.len());
                for op in ops {
                    let (name, op_id) = &m.operators[op["uid"].as_str().unwrap()];
                    assert_eq!(op["operator_id"], op_id.as_str());
                    assert!(op["name"].as_str().unwrap().contains(name.as_str()));
                    assert_eq!(op["parallelism"], 2);
                    assert_eq!(op["max_parallelism"], 128);
                }
                let shown: BTreeMap<String, u64> = show["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| {
                        (
                            f["path"].as_str().unwrap().to_string(),
                            f["min_size_bytes"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                let expected_files: BTreeMap<String, u64> = m
                    .files_of(dir)
                    .into_iter()
                    .map(|(f, b)| (c.arg(&f), b))
                    .collect();
                assert_eq!(shown, expected_files, "{scenario}/{dir}");
                // verify of the one snapshot
                let v = c.json(&["verify", &c.arg(dir)]);
                assert_eq!(v["problems"].as_array().unwrap().len(), 0);
                assert_eq!(v["files_checked"], expected_files.len());
            }
            // verify of the job directory: every snapshot, exit code 0, human output
            let out = c.run(&["verify", &c.arg(job)]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: "));
            // gc dry run: nothing
            let gc = c.json(&["gc", &c.arg(job), "--min-age", "0s"]);
            assert_eq!(
                gc["candidates"].as_array().unwrap().len(),
                0,
                "{scenario}/{job}"
            );
            assert_eq!(gc["dry_run"], true);
            assert_eq!(gc["retained"].as_array().unwrap().len(), expected.len());
        }
    }
}

#[test]
fn verify_fails_on_a_deleted_shared_sst_naming_its_checkpoints() {
    let m = Manifest::read("rocksdb-incremental");
    let c = Copy::new("rocksdb-incremental");
    let (file, (bytes, by)) = m
        .files
        .iter()
        .find(|(f, (_, by))| f.contains("/shared/") && by.len() > 1)
        .unwrap();
    std::fs::remove_file(c.path(file)).unwrap();
    let job = job_of(m.headers.keys().next().unwrap()).to_string();
    let out = c.run(&["verify", &c.arg(&job), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["kind"], "missing-file");
    assert_eq!(problems[0]["path"], c.arg(file).as_str());
    assert_eq!(problems[0]["expected_min_size_bytes"], *bytes);
    let dirs: BTreeSet<String> = problems[0]["referenced_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dir"].as_str().unwrap().trim_end_matches('/').to_string())
        .collect();
    let expected: BTreeSet<String> = by.iter().map(|d| c.arg(d)).collect();
    assert_eq!(dirs, expected);
    // The human report names the file, its size and the checkpoints.
    let out = c.run(&["verify", &c.arg(&job)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("FAILED"), "{text}");
    assert!(text.contains(&c.arg(file)) && text.contains(&bytes.to_string()));
    for d in by {
        let out = c.run(&["verify", &c.arg(d)]);
        assert_eq!(out.status.code(), Some(1), "{d}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&c.arg(file)));
    }
}

#[test]
fn gc_lists_deletes_exactly_an_orphan_and_refuses_a_truncated_metadata() {
    let m = Manifest::read("rocksdb-incremental");
    let c = Copy::new("rocksdb-incremental");
    let dirs: Vec<&String> = m.headers.keys().collect();
    let job = job_of(dirs[0]).to_string();
    let orphan = c.path(&format!("{job}/shared/orphan"));
    std::fs::write(&orphan, vec![1u8; 999]).unwrap();
    // Default min age (1h): the fresh orphan is kept.
    let gc = c.json(&["gc", &c.arg(&job)]);
    assert_eq!(gc["candidates"].as_array().unwrap().len(), 0);
    let gc = c.json(&["gc", &c.arg(&job), "--min-age", "0s"]);
    let cands = gc["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 1, "{gc}");
    assert_eq!(cands[0]["path"], orphan.to_str().unwrap());
    assert_eq!(cands[0]["size_bytes"], 999);
    assert_eq!(cands[0]["reason"], "unreferenced-shared");
    assert!(orphan.exists(), "a dry run deletes nothing");
    let before: usize = c.fixture.every_file().len();
    let gc = c.json(&["gc", &c.arg(&job), "--min-age", "0s", "--delete"]);
    assert_eq!(gc["deleted"], 1);
    assert!(!orphan.exists());
    assert_eq!(c.fixture.every_file().len(), before - 1);
    let v = c.json(&["verify", &c.arg(&job)]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    // A truncated _metadata: refused, naming it (exit code 5: unreadable).
    let meta = c.path(&format!("{}/_metadata", dirs[1]));
    let bytes = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, &bytes[..100]).unwrap();
    std::fs::write(&orphan, b"x").unwrap();
    let out = c.run(&["gc", &c.arg(&job), "--min-age", "0s", "--delete"]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(meta.to_str().unwrap()), "{err}");
    assert!(orphan.exists());
}

#[test]
fn diff_shows_shared_and_own_files() {
    let m = Manifest::read("rocksdb-incremental");
    let c = Copy::new("rocksdb-incremental");
    let dirs: Vec<&String> = m.headers.keys().collect();
    let d = c.json(&["diff", &c.arg(dirs[0]), &c.arg(dirs[1])]);
    let paths = |key: &str| -> BTreeSet<String> {
        d[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    let expected = |pred: &dyn Fn(&BTreeSet<String>) -> bool| -> BTreeSet<String> {
        m.files
            .iter()
            .filter(|(_, (_, by))| pred(by))
            .map(|(f, _)| c.arg(f))
            .collect()
    };
    assert_eq!(
        paths("files_common"),
        expected(&|by| by.contains(dirs[0]) && by.contains(dirs[1]))
    );
    assert_eq!(
        paths("files_only_a"),
        expected(&|by| by.contains(dirs[0]) && !by.contains(dirs[1]))
    );
    assert_eq!(
        paths("files_only_b"),
        expected(&|by| !by.contains(dirs[0]) && by.contains(dirs[1]))
    );
}

#[test]
fn dump_and_dispose_refuse_a_flink_snapshot_and_delete_nothing() {
    let m = Manifest::read("heap-savepoints");
    let c = Copy::new("heap-savepoints");
    let before = c.fixture.every_file().len();
    for dir in m.headers.keys() {
        let out = c.run(&["dispose", &c.arg(dir)]);
        assert!(!out.status.success(), "dispose {dir}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Apache Flink _metadata"), "{dir}: {err}");
        assert!(err.contains("unsupported"), "{dir}: {err}");
        // `dump` now decodes the heap savepoint's keyed state (canonical and native).
        let out = c.run(&["dump", &c.arg(dir), "--operator", "keyed-state-fn"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "dump {dir}: {err}");
        let lines = String::from_utf8_lossy(&out.stdout);
        let states: std::collections::BTreeSet<String> = lines
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["state"].as_str().unwrap().to_owned()
            })
            .collect();
        for s in ["count", "profile", "recent-events", "per-id-counts"] {
            assert!(states.contains(s), "{dir}: {states:?}");
        }
    }
    assert_eq!(c.fixture.every_file().len(), before, "nothing deleted");
}

#[test]
fn dump_prints_the_keyed_state_of_a_heap_checkpoint() {
    let m = Manifest::read("heap");
    let c = Copy::new("heap");
    let dir = m.headers.keys().last().unwrap().clone();
    let out = c.run(&[
        "dump",
        &c.arg(&dir),
        "--operator",
        "keyed-state-fn",
        "--state",
        "count",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 100);
    let mut keys: Vec<i64> = Vec::new();
    for l in &lines {
        assert_eq!(l["state"], "count");
        assert_eq!(l["kind"], "value");
        let key = l["key"].as_i64().unwrap();
        assert!(l["value"].as_i64().unwrap() > 0, "{l}");
        let kg = l["key_group"].as_u64().unwrap();
        assert_eq!(kg, u64::from(key_group(key)), "{l}");
        assert_eq!(l["subtask"].as_u64().unwrap(), kg / 64, "{l}");
        keys.push(key);
    }
    keys.sort_unstable();
    assert_eq!(keys, (0..100).collect::<Vec<_>>());

    // The filters: one subtask, one key (by the operator's hex id), a limit.
    let out = c.run(&[
        "dump",
        &c.arg(&dir),
        "--operator",
        "ef4a1a99b7ecfa1e818cee68ba1942f8",
        "--key",
        "39",
        "--state",
        "profile",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["value"].as_str().unwrap().len(), 440);
    let out = c.run(&[
        "dump",
        &c.arg(&dir),
        "--operator",
        "Keyed State Function",
        "--subtask",
        "1",
        "--limit",
        "7",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(text.lines().all(|l| l.contains("\"subtask\":1")), "{text}");
}

#[test]
fn dump_of_rocksdb_incremental_state_is_unsupported() {
    let m = Manifest::read("rocksdb-incremental");
    let c = Copy::new("rocksdb-incremental");
    let dir = m.headers.keys().last().unwrap().clone();
    let out = c.run(&["dump", &c.arg(&dir), "--operator", "keyed-state-fn"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported"), "{err}");
    assert!(err.contains("SST"), "{err}");
}
