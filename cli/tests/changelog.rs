//! The `cornerstone` binary on the fs backend's changelog checkpoints: `list` calls a delta
//! incremental, `show` gives the chain, `dump` prints the state with the deltas applied
//! (updates, removals, changed maps, timers), `verify` checks every file of the chain.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::process::Command;

use cornerstone_backend_api::{
    CheckpointId, CheckpointableBackend, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt,
    MapStateDescriptor, StateBackend, ValueStateDescriptor,
};
use cornerstone_backend_fs::{ChangelogOptions, FsStateBackend};
use cornerstone_checkpoint_store::{
    CheckpointConfig, CheckpointStore, CompletedCheckpointStore, OperatorSpec,
};
use serde_json::Value;

const MAX_P: u32 = 128;

fn cornerstone(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cornerstone"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn list_show_dump_and_verify_read_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let config = CheckpointConfig::default()
        .inline_threshold(0)
        .num_retained(3);
    let checkpoints = CompletedCheckpointStore::open(&store, "job", config).unwrap();
    let backend = FsStateBackend::new()
        .incremental(ChangelogOptions::new())
        .create_keyed_backend::<u64>(KeyedBackendParams::new(MAX_P, KeyGroupRange::all(MAX_P)))
        .unwrap();
    let values = backend
        .value_state::<u64, ()>(&ValueStateDescriptor::new("count"))
        .unwrap();
    let maps = backend
        .map_state::<u32, String, ()>(&MapStateDescriptor::new("tags"))
        .unwrap();
    let timers = backend.timer_service::<u64>("window").unwrap();
    let checkpoint = |id: u64| {
        let id = CheckpointId(id);
        let snapshot = backend.snapshot(id).unwrap();
        let mut pending = checkpoints.begin_checkpoint(id).unwrap();
        let state = snapshot.write(&*pending.stream_factory()).unwrap();
        let spec = OperatorSpec::new("keyed-uid", "Keyed", 1, MAX_P);
        pending.add_subtask_state(&spec, 0, state).unwrap();
        pending.commit().unwrap();
        backend.notify_checkpoint_complete(id).unwrap();
    };
    // The model of what a dump of checkpoint 2 prints.
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    let mut tags: BTreeMap<(u64, u32), String> = BTreeMap::new();
    for k in 0..50u64 {
        values.update(&k, &(), k).unwrap();
        counts.insert(k, k);
        for t in 0..2u32 {
            maps.put(&k, &(), t, format!("t{t}")).unwrap();
            tags.insert((k, t), format!("t{t}"));
        }
        timers.register_event_time_timer(&k, &0, 100).unwrap();
    }
    checkpoint(1);
    for k in (0..50u64).step_by(5) {
        values.update(&k, &(), k + 1_000).unwrap();
        counts.insert(k, k + 1_000);
    }
    for k in (1..50u64).step_by(7) {
        values.clear(&k, &()).unwrap();
        counts.remove(&k);
        maps.remove(&k, &(), &0).unwrap();
        tags.remove(&(k, 0));
        maps.put(&k, &(), 5, "new".into()).unwrap();
        tags.insert((k, 5), "new".into());
        timers.delete_event_time_timer(&k, &0, 100).unwrap();
    }
    checkpoint(2);

    let root = dir.path().to_str().unwrap();
    let job = format!("{root}/job");
    let listed: Value = serde_json::from_str(&cornerstone(&["--json", "list", &job])).unwrap();
    let kinds: Vec<(u64, bool)> = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_u64().unwrap(),
                s["incremental"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [(1, false), (2, true)], "{listed}");

    let chk2 = format!("{job}/chk-2");
    let shown: Value = serde_json::from_str(&cornerstone(&["--json", "show", &chk2])).unwrap();
    let handle = &shown["operators"][0]["subtasks"][0]["handles"][0];
    assert_eq!(handle["kind"], "changelog", "{shown}");
    assert_eq!(handle["chain"]["base_checkpoint"], 1, "{shown}");
    assert_eq!(handle["chain"]["deltas"], 1, "{shown}");
    let human = cornerstone(&["show", &chk2]);
    assert!(
        human.contains("changelog: base chk-1 + 1 deltas"),
        "{human}"
    );

    let lines: Vec<Value> = cornerstone(&["dump", &chk2, "--operator", "keyed-uid"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut dumped_counts = BTreeMap::new();
    let mut dumped_tags = BTreeMap::new();
    let mut dumped_timers = 0;
    for l in &lines {
        let key = l["key"].as_u64().unwrap();
        match l["state"].as_str().unwrap() {
            "count" => {
                assert!(
                    dumped_counts
                        .insert(key, l["value"].as_u64().unwrap())
                        .is_none()
                );
            }
            "tags" => {
                let uk = l["user_key"].as_u64().unwrap() as u32;
                let v = l["value"].as_str().unwrap().to_owned();
                assert!(dumped_tags.insert((key, uk), v).is_none(), "{l}");
            }
            "_timer_state/event_window" => dumped_timers += 1,
            other => panic!("unexpected state {other}"),
        }
    }
    assert_eq!(dumped_counts, counts);
    assert_eq!(dumped_tags, tags);
    assert_eq!(dumped_timers, 50 - (1..50).step_by(7).count());

    assert!(cornerstone(&["verify", &chk2]).starts_with("OK"));
}
