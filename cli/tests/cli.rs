//! The `cornerstone` binary, run for real on checkpoints that the library wrote to a temp dir.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use cornerstone_backend_api::keygroup::key_group_for_key;
use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::{
    CheckpointId, CheckpointStreamFactory, IncrementalStateHandle, KeyGroupRange,
    KeyedStateBackendExt, KeyedStateHandle, ListStateDescriptor, ManualClock, StateScope,
    SubtaskState,
};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, PendingCheckpoint,
};
use cornerstone_testkit::checkpoints::{HeapFactory, KeyedOperator, put_values};
use serde_json::Value;

const KEYS: u64 = 100;
const LIST_KEYS: u64 = 10;
const TIMER_KEYS: u64 = 5;
const T0: u64 = 1_700_000_000_000;

/// Writes the keyed operator (2 subtasks, heap backend, value state `count` u64 -> String
/// and list state `hist` of u64) and the source operator (operator list state `offsets`).
fn write_state(pending: &mut PendingCheckpoint, id: u64) {
    let keyed = KeyedOperator::new("keyed-uid", "Keyed", 2, 128);
    let heap = HeapFactory::streams("heap", Compression::None);
    keyed.write(pending, CheckpointId(id), &heap, |range, backend| {
        put_values(backend, "count", keyed.keys_in(range, 0..KEYS), |k| {
            format!("value-{k}-{id}")
        });
        let hist = backend
            .list_state::<u64, ()>(&ListStateDescriptor::new("hist"))
            .unwrap();
        for k in keyed.keys_in(range, 0..LIST_KEYS) {
            hist.update(&k, &(), vec![k, k * 10]).unwrap();
        }
        let timers = backend.timer_service::<u64>("window").unwrap();
        for k in keyed.keys_in(range, 0..TIMER_KEYS) {
            let window = k * 1_000;
            timers
                .register_event_time_timer(&k, &window, window as i64 + 999)
                .unwrap();
        }
    });
    let factory = pending.stream_factory();
    let source = OperatorStateBackend::new();
    source
        .list_state::<u64>("offsets")
        .unwrap()
        .add_all([11, 22, 33 + id]);
    let state = source.snapshot(CheckpointId(id)).write(&*factory).unwrap();
    pending
        .add_subtask_state(&OperatorSpec::new("source-uid", "Source", 1, 128), 0, state)
        .unwrap();
}

struct Fixture {
    dir: tempfile::TempDir,
    job: CompletedCheckpointStore,
    savepoint: String,
}

impl Fixture {
    /// Checkpoints 2 and 10 (ids that sort differently as strings), a savepoint, an
    /// incomplete `chk-11/` and an orphan file in `shared/`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::local(dir.path()).unwrap();
        let clock = ManualClock::new(T0);
        let job = CompletedCheckpointStore::open(
            &store,
            "job",
            CheckpointConfig::default()
                .inline_threshold(0)
                .num_retained(5)
                .clock(Arc::new(clock.clone())),
        )
        .unwrap();
        for id in [2, 10] {
            clock.advance(1_000);
            let mut p = job.begin_checkpoint(CheckpointId(id)).unwrap();
            write_state(&mut p, id);
            p.commit().unwrap();
        }
        let mut sp = job.begin_savepoint(CheckpointId(10), "job").unwrap();
        write_state(&mut sp, 10);
        let savepoint = sp.commit().unwrap().dir();

        // chk-11 never committed: a state file but no _metadata.
        let p = job.begin_checkpoint(CheckpointId(11)).unwrap();
        let mut out = p.stream_factory().create(StateScope::Exclusive).unwrap();
        out.write_all(b"half-written").unwrap();
        out.close().unwrap();
        std::mem::forget(p); // dropping would abort (and delete) it
        let fx = Fixture {
            dir,
            job,
            savepoint,
        };
        std::fs::create_dir_all(fx.path("job/shared")).unwrap();
        std::fs::write(fx.path("job/shared/orphan.sst"), vec![1u8; 1234]).unwrap();
        fx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn arg(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_owned()
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cornerstone"))
        .args(args)
        .env_remove("AWS_REGION")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn ok_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&args)).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn dump_lines(args: &[&str]) -> Vec<Value> {
    ok(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn help_works_and_documents_exit_codes() {
    let help = ok(&["--help"]);
    for cmd in [
        "list", "show", "verify", "dump", "gc", "diff", "dispose", "--json",
    ] {
        assert!(help.contains(cmd), "{cmd}: {help}");
    }
    assert!(help.contains("EXIT CODES"), "{help}");
    assert!(ok(&["dump", "--help"]).contains("--operator"));
}

#[test]
fn list_sorts_numerically_and_shows_every_status() {
    let fx = Fixture::new();
    // A corrupt _metadata in a directory that looks like a checkpoint.
    std::fs::create_dir_all(fx.path("job/chk-9")).unwrap();
    std::fs::write(fx.path("job/chk-9/_metadata"), b"CSMD\x00\x01not really").unwrap();

    let json = ok_json(&["list", &fx.arg("job")]);
    let snaps = json["snapshots"].as_array().unwrap();
    let rows: Vec<(String, Option<u64>, String)> = snaps
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_owned(),
                s["id"].as_u64(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |k: &str, id: u64, st: &str| (k.to_owned(), Some(id), st.to_owned());
    assert_eq!(
        rows,
        vec![
            row("checkpoint", 2, "complete"),
            row("checkpoint", 9, "corrupt"),
            row("checkpoint", 10, "complete"),
            row("checkpoint", 11, "incomplete"),
            row("savepoint", 10, "complete"),
        ]
    );
    assert_eq!(snaps[0]["completed_timestamp_ms"], T0 + 1_000);
    assert_eq!(snaps[0]["completed"], "2023-11-14T22:13:21.000Z");
    assert!(snaps[0]["size_bytes"].as_u64().unwrap() > 0);
    assert!(!snaps[1]["status_detail"].as_str().unwrap().is_empty());
    assert_eq!(snaps[4]["dir"], fx.arg(&fx.savepoint));

    let human = ok(&["list", &fx.arg("job")]);
    let lines: Vec<&str> = human.lines().collect();
    assert!(lines[0].starts_with("KIND"), "{human}");
    let ids: Vec<&str> = lines[1..6]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(ids, ["2", "9", "10", "11", "10"], "{human}");
    assert!(lines[1].contains("2023-11-14T22:13:21.000Z"), "{human}");
    assert!(lines[2].contains("corrupt") && lines[4].contains("incomplete"));
    assert!(human.contains("KiB") || human.contains(" B "), "{human}");
    // Columns are aligned: the STATUS column starts at the same offset on every row.
    let col = lines[0].find("STATUS").unwrap();
    for l in &lines[1..6] {
        let status = &l[col..];
        assert!(
            ["complete", "corrupt", "incomplete"]
                .iter()
                .any(|s| status.starts_with(s)),
            "{human}"
        );
    }
    // The same through a file:// URL.
    let url = format!("file://{}", fx.arg("job"));
    assert_eq!(ok_json(&["list", &url])["snapshots"], json["snapshots"]);
}

#[test]
fn show_lists_operators_ranges_and_files() {
    let fx = Fixture::new();
    let json = ok_json(&["show", &fx.arg("job/chk-2")]);
    assert_eq!(json["kind"], "checkpoint");
    assert_eq!(json["id"], 2);
    let ops = json["operators"].as_array().unwrap();
    let keyed = ops.iter().find(|o| o["uid"] == "keyed-uid").unwrap();
    assert_eq!(keyed["name"], "Keyed");
    assert_eq!(keyed["parallelism"], 2);
    assert_eq!(keyed["max_parallelism"], 128);
    let ranges: Vec<Value> = keyed["subtasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["handles"][0]["key_groups"].clone())
        .collect();
    assert_eq!(
        ranges,
        vec![serde_json::json!([0, 63]), serde_json::json!([64, 127])]
    );
    // Every state with its kind and types, from the snapshot's headers, by name.
    let states: Vec<(String, String, String, String, String)> = keyed["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or("-").to_owned();
            (
                text("name"),
                text("kind"),
                text("key_type"),
                text("namespace_type"),
                text("value_type"),
            )
        })
        .collect();
    let row = |n: &str, k: &str, key: &str, ns: &str, v: &str| {
        (
            n.to_owned(),
            k.to_owned(),
            key.to_owned(),
            ns.to_owned(),
            v.to_owned(),
        )
    };
    assert_eq!(
        states,
        vec![
            row("_timer_state/event_window", "timers", "u64", "u64", "i64"),
            row(
                "_timer_state/processing_window",
                "timers",
                "u64",
                "u64",
                "i64"
            ),
            row("count", "value", "u64", "()", "string"),
            row("hist", "list", "u64", "()", "u64"),
        ]
    );
    assert!(
        keyed["states"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ttl"] == false)
    );
    let source = ops.iter().find(|o| o["uid"] == "source-uid").unwrap();
    assert_eq!(
        source["subtasks"][0]["handles"][0]["state_names"],
        serde_json::json!(["offsets"])
    );
    assert_eq!(source["states"][0]["kind"], "split");
    assert_eq!(source["states"][0]["value_type"], "u64");
    assert_eq!(source["states"][0]["key_type"], Value::Null);
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        let p = f["path"].as_str().unwrap();
        assert_eq!(
            std::fs::metadata(p).unwrap().len(),
            f["size_bytes"].as_u64().unwrap()
        );
    }

    let human = ok(&["show", &fx.arg("job/chk-10/_metadata")]);
    assert!(human.starts_with("checkpoint 10 of job job"), "{human}");
    assert!(
        human.contains("operator keyed-uid (Keyed): parallelism 2, max parallelism 128"),
        "{human}"
    );
    assert!(
        human.contains("64..=127") && human.contains("offsets"),
        "{human}"
    );
    let count_row = human
        .lines()
        .find(|l| l.trim_start().starts_with("count "))
        .unwrap_or_else(|| panic!("a row of state count: {human}"));
    let cells: Vec<&str> = count_row.split_whitespace().collect();
    assert_eq!(cells, ["count", "value", "u64", "()", "string", "-"]);
    // A job directory shows its latest complete checkpoint.
    assert_eq!(ok_json(&["show", &fx.arg("job")])["id"], 10);
    // And a savepoint.
    assert_eq!(
        ok_json(&["show", &fx.arg(&fx.savepoint)])["kind"],
        "savepoint"
    );
}

#[test]
fn verify_passes_then_fails_naming_the_corrupted_file() {
    let fx = Fixture::new();
    let out = ok(&["verify", &fx.arg("job/chk-10")]);
    assert!(out.starts_with("OK"), "{out}");
    let json = ok_json(&["verify", &fx.arg(&fx.savepoint)]);
    assert_eq!(json["ok"], true);
    assert_eq!(json["files_checked"], 3);

    let files = ok_json(&["show", &fx.arg("job/chk-10")])["files"].clone();
    let victim = files[0]["path"].as_str().unwrap().to_owned();
    let abs = PathBuf::from(&victim);
    let mut bytes = std::fs::read(&abs).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&abs, bytes).unwrap();

    let out = run(&["verify", &fx.arg("job/chk-10")]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("FAILED"), "{text}");
    assert!(
        text.contains(&victim) && text.contains("checksum-mismatch"),
        "{text}"
    );
    let out = run(&["verify", &fx.arg("job/chk-10"), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["problems"][0]["path"], victim);
    assert_eq!(json["problems"][0]["kind"], "checksum-mismatch");
    // The other checkpoint is untouched.
    assert!(ok(&["verify", &fx.arg("job/chk-2")]).starts_with("OK"));
}

#[test]
fn dump_decodes_keyed_and_operator_state() {
    let fx = Fixture::new();
    let path = fx.arg("job/chk-10");
    let all = dump_lines(&["dump", &path, "--operator", "keyed-uid"]);
    let count: Vec<&Value> = all.iter().filter(|l| l["state"] == "count").collect();
    let hist: Vec<&Value> = all.iter().filter(|l| l["state"] == "hist").collect();
    assert_eq!(count.len() as u64, KEYS);
    assert_eq!(hist.len() as u64, LIST_KEYS);
    let timers: Vec<&Value> = all
        .iter()
        .filter(|l| l["state"] == "_timer_state/event_window")
        .collect();
    assert_eq!(timers.len() as u64, TIMER_KEYS);
    assert_eq!(all.len(), count.len() + hist.len() + timers.len());
    for l in &timers {
        let k = l["key"].as_u64().unwrap();
        assert_eq!(l["kind"], "timers");
        assert_eq!(l["namespace"], k * 1_000);
        assert_eq!(l["timestamp"], k * 1_000 + 999);
        assert!(l.get("value").is_none());
    }
    let mut keys: Vec<u64> = count.iter().map(|l| l["key"].as_u64().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, (0..KEYS).collect::<Vec<_>>());
    for l in &count {
        let k = l["key"].as_u64().unwrap();
        assert_eq!(l["value"], format!("value-{k}-10"));
        assert_eq!(l["kind"], "value");
        assert_eq!(l["namespace"], Value::Null);
        let kg = key_group_for_key(&k, 128).unwrap();
        assert_eq!(l["key_group"], kg);
        assert_eq!(l["subtask"], u32::from(kg >= 64));
        assert!(l.get("user_key").is_none());
    }
    for l in &hist {
        let k = l["key"].as_u64().unwrap();
        assert_eq!(l["kind"], "list");
        assert_eq!(l["value"], serde_json::json!([k, k * 10]));
    }

    let only = dump_lines(&["dump", &path, "--operator", "keyed-uid", "--state", "hist"]);
    assert_eq!(only.len() as u64, LIST_KEYS);
    assert!(only.iter().all(|l| l["state"] == "hist"));

    let ops = dump_lines(&["dump", &path, "--operator", "source-uid", "--json"]);
    let values: Vec<&Value> = ops.iter().map(|l| &l["value"]).collect();
    assert_eq!(
        values,
        [&Value::from(11), &Value::from(22), &Value::from(43)]
    );
    assert!(
        ops.iter()
            .all(|l| l["state"] == "offsets" && l["mode"] == "split" && l["kind"] == "operator")
    );

    // Savepoints dump the same way.
    let sp = dump_lines(&["dump", &fx.arg(&fx.savepoint), "--operator", "keyed-uid"]);
    assert_eq!(sp.len(), all.len());

    // Unknown operator or state: one-line error, exit 3 (not found).
    for args in [
        vec!["dump", &path, "--operator", "nope"],
        vec!["dump", &path, "--operator", "keyed-uid", "--state", "nope"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(3));
        let err = stderr(&out);
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(err.contains("nope"), "{err}");
    }
}

#[test]
fn dump_of_an_unreadable_incremental_snapshot_fails_clearly() {
    let fx = Fixture::new();
    let mut p = fx.job.begin_checkpoint(CheckpointId(20)).unwrap();
    let factory = p.stream_factory();
    let mut out = factory.create(StateScope::Exclusive).unwrap();
    out.write_all(b"meta").unwrap();
    let meta = out.close().unwrap();
    let state = SubtaskState {
        keyed: vec![KeyedStateHandle::Incremental(IncrementalStateHandle {
            range: KeyGroupRange::new(0, 127),
            checkpoint_id: CheckpointId(20),
            backend_id: "rocks-1".into(),
            shared: vec![],
            private: vec![],
            meta,
        })],
        operator: vec![],
    };
    p.add_subtask_state(&OperatorSpec::new("rocks-uid", "Rocks", 1, 128), 0, state)
        .unwrap();
    p.commit().unwrap();
    let out = run(&["dump", &fx.arg("job/chk-20"), "--operator", "rocks-uid"]);
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    if cfg!(feature = "rocksdb") {
        // Rewritten through RocksDB: this handle's meta stream is not one.
        assert!(
            err.contains("dump subtask 0 of operator rocks-uid"),
            "{err}"
        );
    } else {
        assert!(
            err.contains("dump needs full snapshots") && err.contains("incremental"),
            "{err}"
        );
    }
    assert_eq!(err.lines().count(), 1, "{err}");
    // `list` calls it incremental.
    let json = ok_json(&["list", &fx.arg("job")]);
    let chk20 = json["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 20 && s["kind"] == "checkpoint")
        .unwrap();
    assert_eq!(chk20["incremental"], true, "{chk20}");
}

#[test]
fn gc_dry_run_then_delete_then_nothing() {
    let fx = Fixture::new();
    let job = fx.arg("job");
    // By default nothing younger than an hour is collected: everything here was just written.
    let young = ok_json(&["gc", &job]);
    assert_eq!(young["candidates"], serde_json::json!([]), "{young}");
    assert!(!young["kept"].as_array().unwrap().is_empty(), "{young}");
    let json = ok_json(&["gc", &job, "--min-age", "0s"]);
    assert_eq!(json["dry_run"], true);
    let cands = json["candidates"].as_array().unwrap();
    let orphan = fx.arg("job/shared/orphan.sst");
    let o = cands
        .iter()
        .find(|c| c["path"] == orphan.as_str())
        .unwrap_or_else(|| panic!("{orphan} in {json}"));
    assert_eq!(o["size_bytes"], 1234);
    assert_eq!(o["reason"], "unreferenced-shared");
    assert!(
        cands.iter().any(|c| c["reason"] == "incomplete-checkpoint"
            && c["path"].as_str().unwrap().contains("/chk-11/")),
        "{json}"
    );
    assert_eq!(json["retained"], serde_json::json!([2, 10]));
    let human = ok(&["gc", &job, "--min-age", "0s"]);
    assert!(
        human.contains("orphan.sst") && human.contains("1234") && human.contains("1.21 KiB"),
        "{human}"
    );
    assert!(human.contains("dry run"), "{human}");
    assert!(
        fx.path("job/shared/orphan.sst").exists(),
        "dry run deletes nothing"
    );

    let json = ok_json(&["gc", &job, "--delete", "--min-age", "0s"]);
    assert_eq!(json["deleted"].as_u64().unwrap() as usize, cands.len());
    assert!(!fx.path("job/shared/orphan.sst").exists());
    assert!(!fx.path("job/chk-11").exists());

    let again = ok_json(&["gc", &job, "--min-age", "0s"]);
    assert_eq!(again["candidates"], serde_json::json!([]));
    assert!(ok(&["gc", &job, "--min-age", "0s"]).contains("no unreferenced files"));
    // Everything still verifies after gc.
    assert!(ok(&["verify", &fx.arg("job/chk-2")]).starts_with("OK"));
    assert!(ok(&["verify", &fx.arg("job/chk-10")]).starts_with("OK"));
}

#[test]
fn diff_shows_changed_operators_and_files() {
    let fx = Fixture::new();
    let (a, b) = (fx.arg("job/chk-2"), fx.arg("job/chk-10"));
    let json = ok_json(&["diff", &a, &b]);
    assert_eq!(json["operators_added"], serde_json::json!([]));
    assert_eq!(json["operators_removed"], serde_json::json!([]));
    let changed: Vec<&str> = json["operators_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uid"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["keyed-uid", "source-uid"]);
    assert_eq!(json["files_added"].as_array().unwrap().len(), 3);
    assert_eq!(json["files_removed"].as_array().unwrap().len(), 3);
    assert_eq!(json["files_common"].as_array().unwrap().len(), 0);
    for f in json["files_added"].as_array().unwrap() {
        assert!(f["path"].as_str().unwrap().contains("/chk-10/"), "{f}");
    }
    // What changed, per operator: its two subtasks wrote new files (one each), none reused.
    let keyed = &json["operators_changed"][0];
    assert_eq!(
        keyed["subtasks_changed"],
        serde_json::json!([0, 1]),
        "{keyed}"
    );
    assert_eq!(keyed["files_added"], 2, "{keyed}");
    assert_eq!(keyed["files_removed"], 2, "{keyed}");
    assert_eq!(keyed["files_shared"], 0, "{keyed}");
    assert!(keyed["bytes_added"].as_u64().unwrap() > 0, "{keyed}");
    let human = ok(&["diff", &a, &b]);
    assert!(human.contains("~ keyed-uid") && human.contains("files: 3 added, 3 removed"));
    assert!(
        human.contains("state of subtasks 0,1 changed, files: 2 new ("),
        "{human}"
    );
    // A snapshot against itself: nothing changed.
    let same = ok_json(&["diff", &b, &b]);
    assert_eq!(same["operators_changed"], serde_json::json!([]));
    assert_eq!(same["files_common"].as_array().unwrap().len(), 3);
}

#[test]
fn dispose_removes_the_savepoint_and_refuses_checkpoints() {
    let fx = Fixture::new();
    let sp = fx.arg(&fx.savepoint);
    let json = ok_json(&["dispose", &sp]);
    assert_eq!(json["disposed"], sp.as_str());
    assert!(!Path::new(&sp).exists());
    let listed = ok_json(&["list", &fx.arg("job")]);
    assert!(
        listed["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["kind"] == "checkpoint"),
        "{listed}"
    );
    let out = run(&["dispose", &fx.arg("job/chk-2")]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
    assert!(fx.path("job/chk-2/_metadata").exists());
}

#[test]
fn errors_are_one_line_with_an_exit_code_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-job");
    let missing = missing.to_str().unwrap();
    // An s3:// URL without the `s3` feature is an unsupported scheme.
    let unreachable = if cfg!(feature = "s3") { 4 } else { 5 };
    for (args, code) in [
        (vec!["list", missing], 3),
        (vec!["show", missing], 3),
        (vec!["verify", missing], 3),
        (vec!["gc", missing], 3),
        (vec!["diff", missing, missing], 3),
        (vec!["list", "ftp://host/x"], 5),
        (vec!["list", missing, "--region", "eu-west-1"], 3),
        // S3 URLs parse; nothing listens on this endpoint.
        (
            vec![
                "list",
                "s3://bucket/job",
                "--endpoint",
                "http://127.0.0.1:9",
                "--region",
                "us-east-1",
                "--access-key-id",
                "a",
                "--secret-access-key",
                "b",
            ],
            unreachable,
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // With --json, an error is one JSON object on stderr, with the same exit code.
    let out = run(&["show", missing, "--json"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let json: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(json["error"]["kind"], "not found", "{json}");
    assert_eq!(json["error"]["exit_code"], 3, "{json}");
    assert_eq!(
        json["error"]["message"], "no complete checkpoint or savepoint to restore",
        "{json}"
    );
    // The path as the user gave it, leading slash included.
    assert_eq!(json["error"]["context"]["path"], missing, "{json}");
    assert!(
        json["error"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("not found: "),
        "{json}"
    );
    // Usage errors exit with 2; help succeeds.
    assert_eq!(run(&["show"]).status.code(), Some(2));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    // memory:// parses (it is simply empty in a new process).
    let out = ok(&["list", "memory://", "--json"]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["snapshots"], serde_json::json!([]));
}

/// Logs go to stderr, warnings only by default; `-v` shows the store's info events (here:
/// `gc --delete` taking the job directory's lease), `-q` hides warnings, and stdout keeps
/// only the result.
#[test]
fn logs_go_to_stderr_at_the_level_asked_for() {
    let gc = |fx: &Fixture, flag: Option<&str>| {
        let job = fx.arg("job");
        let mut args: Vec<&str> = flag.into_iter().collect();
        args.extend(["gc", &job, "--delete", "--min-age", "0s", "--json"]);
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(json["deleted"].as_u64().unwrap() > 0, "{json}");
        stderr(&out)
    };
    let quiet = gc(&Fixture::new(), None);
    assert!(!quiet.contains("lease"), "{quiet}");
    let verbose = gc(&Fixture::new(), Some("-v"));
    assert!(
        verbose.contains("INFO") && verbose.contains("took the job directory's lease"),
        "{verbose}"
    );
    let silent = gc(&Fixture::new(), Some("-q"));
    assert!(silent.is_empty(), "{silent}");
    let both = run(&["-q", "-v", "list", "."]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

#[test]
fn dump_filters_by_subtask_key_group_key_and_limit() {
    let fx = Fixture::new();
    let job = fx.arg("job");
    // --id picks chk-N in a job directory.
    let all = dump_lines(&["dump", &job, "--id", "10", "--operator", "keyed-uid"]);
    assert!(all.iter().all(|l| l["schema_version"] == 1));
    let total = all.len();

    let sub1 = dump_lines(&[
        "dump",
        &job,
        "--id",
        "10",
        "--operator",
        "keyed-uid",
        "--subtask",
        "1",
    ]);
    assert!(!sub1.is_empty() && sub1.iter().all(|l| l["subtask"] == 1));
    let sub0 = dump_lines(&[
        "dump",
        &job,
        "--id",
        "10",
        "--operator",
        "keyed-uid",
        "--subtask",
        "0",
    ]);
    assert_eq!(sub0.len() + sub1.len(), total);

    let group_of_7 = key_group_for_key(&7u64, 128).unwrap();
    let kg = group_of_7.to_string();
    let group = dump_lines(&["dump", &job, "--operator", "keyed-uid", "--key-group", &kg]);
    assert!(!group.is_empty());
    assert!(group.iter().all(|l| l["key_group"] == group_of_7));
    assert_eq!(
        group.len(),
        all.iter().filter(|l| l["key_group"] == group_of_7).count()
    );

    let key7 = dump_lines(&["dump", &job, "--operator", "keyed-uid", "--key", "7"]);
    let mut states: Vec<&str> = key7.iter().map(|l| l["state"].as_str().unwrap()).collect();
    states.sort_unstable();
    // Key 7 has a count and a history (keys below 10), and no timer (keys below 5).
    assert_eq!(states, ["count", "hist"], "{key7:?}");
    assert!(key7.iter().all(|l| l["key"] == 7));

    let limited = dump_lines(&["dump", &job, "--operator", "keyed-uid", "--limit", "5"]);
    assert_eq!(limited.len(), 5);
    assert_eq!(limited[..], all[..5]);

    // Keyed filters leave operator state out.
    let none = dump_lines(&["dump", &job, "--operator", "source-uid", "--key-group", &kg]);
    assert!(none.is_empty());

    // A subtask the operator does not have: not found, listing those it has.
    let out = run(&["dump", &job, "--operator", "keyed-uid", "--subtask", "9"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("subtasks=0,1"), "{}", stderr(&out));
}

#[test]
fn list_selects_ids_and_every_json_document_is_versioned() {
    let fx = Fixture::new();
    let job = fx.arg("job");
    let ids = |json: &Value| -> Vec<Value> {
        json["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].clone())
            .collect()
    };
    let all = ok_json(&["list", &job]);
    assert_eq!(all["schema_version"], 1);
    let first = &all["snapshots"][0];
    assert_eq!(first["id"], 2);
    assert!(first["duration_ms"].is_u64(), "{first}");
    assert_eq!(first["incremental"], false, "{first}");
    assert_eq!(first["written_bytes"], first["size_bytes"], "{first}");
    assert_eq!(
        ids(&ok_json(&["list", &job, "--from", "10"])).len(),
        ids(&all).len() - 1
    );
    assert_eq!(
        ids(&ok_json(&["list", &job, "--to", "2"])),
        [Value::from(2)]
    );
    assert_eq!(ids(&ok_json(&["list", &job, "--limit", "1"])).len(), 1);
    let human = ok(&["list", &job]);
    assert!(
        human.contains("DURATION") && human.contains("WRITTEN"),
        "{human}"
    );
    assert!(human.contains(" full "), "{human}");

    let show = ok_json(&["show", &job, "--id", "2"]);
    assert_eq!(show["schema_version"], 1);
    assert_eq!(show["id"], 2, "{show}");
    let verify = ok_json(&["verify", &job, "--id", "2"]);
    assert_eq!(verify["schema_version"], 1);
    // Errors too.
    let out = run(&["show", &job, "--id", "99", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let err: Value = serde_json::from_str(&stderr(&out)).unwrap();
    assert_eq!(err["schema_version"], 1);
}

#[test]
fn a_missing_checkpoint_names_those_the_job_has() {
    let fx = Fixture::new();
    let chk99 = fx.arg("job/chk-99");
    for args in [
        vec!["show".to_owned(), chk99.clone()],
        vec!["show".to_owned(), fx.arg("job"), "--id".into(), "99".into()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("chk-99 is not a complete checkpoint"), "{err}");
        assert!(
            err.contains("checkpoint directories=chk-2, chk-10, chk-11"),
            "{err}"
        );
        assert!(err.contains(&format!("path={chk99}")), "{err}");
    }
}

#[test]
fn dispose_of_nothing_and_show_of_a_file_say_what_is_wrong() {
    let fx = Fixture::new();
    // A typo'd savepoint: not found, without storage internals.
    let out = run(&["dispose", &fx.arg("job/chk-99")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("nothing to dispose of"), "{err}");
    assert!(!err.contains("service: fs"), "{err}");
    // A state file is not a checkpoint: a usage problem (exit 6), not storage trouble.
    let file = fx.arg("job/shared/orphan.sst");
    let out = run(&["show", &file]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("goes through a file where a directory is expected"),
        "{err}"
    );
    assert!(
        !err.contains("temporary") && !err.contains("unavailable"),
        "{err}"
    );
}

/// With the `rocksdb` feature, `dump` reads a RocksDB incremental checkpoint through a
/// temporary RocksDB instance, as it reads full snapshots.
#[cfg(feature = "rocksdb")]
#[test]
fn dump_reads_rocksdb_incremental_checkpoints() {
    use cornerstone_backend_rocksdb::RocksDbStateBackend;
    let fx = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let rocks = RocksDbStateBackend::new()
        .working_dir(work.path())
        .incremental(true);
    let mut p = fx.job.begin_checkpoint(CheckpointId(30)).unwrap();
    let op = KeyedOperator::new("rocks-uid", "Rocks", 2, 128);
    let states = op.write(&mut p, CheckpointId(30), &rocks, |range, backend| {
        put_values(backend, "count", op.keys_in(range, 0..KEYS), |k| {
            format!("rocks-{k}")
        });
    });
    for state in &states {
        assert!(matches!(state.keyed[0], KeyedStateHandle::Incremental(_)));
    }
    p.commit().unwrap();
    let lines = dump_lines(&["dump", &fx.arg("job/chk-30"), "--operator", "rocks-uid"]);
    assert_eq!(lines.len() as u64, KEYS);
    for l in &lines {
        let k = l["key"].as_u64().unwrap();
        assert_eq!(l["value"], format!("rocks-{k}"));
        assert_eq!(
            l["subtask"],
            u32::from(key_group_for_key(&k, 128).unwrap() >= 64)
        );
    }
    let one = dump_lines(&[
        "dump",
        &fx.arg("job/chk-30"),
        "--operator",
        "rocks-uid",
        "--key",
        "7",
    ]);
    assert_eq!(one.len(), 1);
}
