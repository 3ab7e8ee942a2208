//! The keyed state of Flink 2.3's heap-backend snapshots (`testdata/flink-2.3`), checked
//! against the facts of each scenario's `MANIFEST.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cornerstone_backend_api::ErrorKind;
use cornerstone_checkpoint_store::flink::keyed::{KeyGroupsFormat, SerializerSnapshot};
use cornerstone_checkpoint_store::flink::{
    self, KeyedRead, KeyedState, KeyedStateHandle, StreamStateHandle,
};
use cornerstone_testkit::flink::{fixtures, key_group, local, manifest_text};
use serde_json::Value;

const UID: &str = "keyed-state-fn";
const STATES: [&str; 4] = ["count", "profile", "recent-events", "per-id-counts"];
const TIMERS: [&str; 2] = [
    "_timer_state/processing_user-timers",
    "_timer_state/event_user-timers",
];

/// The subtask's keyed stream bytes, handle and file name, for each subtask of the operator.
fn streams(dir: &Path) -> Vec<(u32, KeyedStateHandle, Vec<u8>, String)> {
    let meta = flink::read_flink_metadata(&std::fs::read(dir.join("_metadata")).unwrap()).unwrap();
    let op = meta
        .operators
        .iter()
        .find(|o| o.uid.as_deref() == Some(UID))
        .unwrap();
    assert_eq!(op.max_parallelism, 128);
    let mut out = Vec::new();
    for s in &op.subtasks {
        let h = s.managed_keyed_state.as_deref().unwrap().clone();
        let kg = match &h {
            KeyedStateHandle::KeyGroups(k)
            | KeyedStateHandle::KeyGroupsV2(k)
            | KeyedStateHandle::SavepointKeyGroups(k) => k,
            other => panic!("{other:?}"),
        };
        let file = match &kg.stream {
            StreamStateHandle::Relative { relative_path, .. } => dir.join(relative_path),
            StreamStateHandle::File { path, .. } => local(path),
            other => panic!("{other:?}"),
        };
        let bytes = std::fs::read(&file).unwrap();
        out.push((s.index, h, bytes, file.display().to_string()));
    }
    out
}

fn read(bytes: &[u8], h: &KeyedStateHandle, file: &str) -> flink::keyed::KeyedState {
    flink::read_keyed_state(
        bytes,
        h,
        &KeyedRead {
            file,
            max_parallelism: 128,
            key_group: None,
        },
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn render(s: &SerializerSnapshot) -> String {
    let mut out = format!("`{}` v{}", s.class, s.version);
    if !s.nested.is_empty() {
        let nested: Vec<String> = s.nested.iter().map(render).collect();
        out.push_str(&format!(" [{}]", nested.join(", ")));
    }
    out
}

/// The header as the manifest's "State meta info" lines of the operator.
fn meta_lines(state: &KeyedState) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &state.header.states {
        let opts: Vec<String> = s.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(format!(
            "  - `{}` {} {{{}}}",
            s.name,
            s.backend_type,
            opts.join(", ")
        ));
        for (role, snap) in &s.serializers {
            lines.push(format!("    - {role}: {}", render(snap)));
        }
    }
    lines
}

/// Meta info lines as (state line, sorted serializer lines): Flink keeps the serializers in
/// a hash map, so their order is not part of the format.
fn grouped(lines: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for l in lines {
        if l.starts_with("    ") {
            if let Some((_, s)) = out.last_mut() {
                s.push(l.clone());
                s.sort();
            }
        } else {
            out.push((l.clone(), Vec::new()));
        }
    }
    out
}

/// The manifest's blocks of state meta info of the keyed operator: (key serializer, lines).
fn manifest_blocks(scenario: &str) -> Vec<(String, Vec<String>)> {
    let text = manifest_text(scenario);
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        if (line.starts_with("- operator ") || !line.starts_with("  "))
            && let Some(b) = current.take()
        {
            blocks.push(b);
        }
        if line.starts_with(&format!("- operator `{UID}` (managedKeyedState")) {
            let key = line.split("key serializer ").nth(1).unwrap().to_owned();
            current = Some((key, Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_owned());
        }
    }
    blocks.extend(current);
    assert!(!blocks.is_empty(), "{scenario}: no keyed meta info");
    blocks
}

/// Every fact of the manifest about one snapshot directory.
fn check_snapshot(scenario: &str, dir: &Path, ttl: bool, want: KeyGroupsFormat) {
    let blocks = manifest_blocks(scenario);
    let mut keys: BTreeMap<String, Vec<(u32, i64)>> = BTreeMap::new();
    let streams = streams(dir);
    assert_eq!(streams.len(), 2);
    for (subtask, h, bytes, file) in &streams {
        let state = read(bytes, h, file);
        assert_eq!(state.format, want, "{file}");
        assert_eq!(state.header.version, 6);
        assert!(!state.header.compression);
        let key_ser = render(&state.header.key_serializer);
        let lines = grouped(&meta_lines(&state));
        assert!(
            blocks
                .iter()
                .any(|(k, l)| *k == key_ser && grouped(l) == lines),
            "{file}: {lines:#?} not in {blocks:#?}"
        );
        for e in &state.entries {
            let name = state.header.states[e.state].name.as_str();
            let key = e.key.as_i64().unwrap_or_else(|| panic!("{name}: {e:?}"));
            assert!((0..100).contains(&key), "{name}: key {key}");
            assert_eq!(e.key_group, key_group(key), "{name}: key {key}");
            assert_eq!(*subtask, e.key_group / 64, "{name}: key {key}");
            assert_eq!(e.namespace, Value::Null);
            match name {
                "count" => assert!(e.value.as_i64().unwrap() > 0, "{e:?}"),
                "profile" => {
                    let s = e.value.as_str().unwrap();
                    assert_eq!(s.len(), 440);
                    assert!(s.bytes().all(|b| b.is_ascii_hexdigit()), "{s}");
                }
                "recent-events" => {
                    // The last 6 events: fewer for a key seen fewer times so far.
                    let n = e.value.as_array().unwrap().len();
                    assert!((1..=6).contains(&n), "{e:?}");
                }
                "per-id-counts" => {
                    let m = e.value.as_object().unwrap();
                    // 10 ids per key, once the source has sent each.
                    assert!((1..=10).contains(&m.len()), "{e:?}");
                    for (k, v) in m {
                        let id: u64 = k.strip_prefix("id-").unwrap().parse().unwrap();
                        assert_eq!(id % 100, key as u64, "{k}");
                        let count = if ttl {
                            assert!(v["last_access_timestamp"].as_i64().unwrap() > 0, "{v}");
                            &v["value"]
                        } else {
                            v
                        };
                        assert!(count.as_i64().unwrap() > 0, "{v}");
                    }
                }
                t if TIMERS.contains(&t) => assert!(e.value.is_i64(), "{e:?}"),
                other => panic!("unexpected state {other}"),
            }
            keys.entry(name.to_owned())
                .or_default()
                .push((*subtask, key));
        }
    }
    let per_state = keys;
    for name in STATES {
        let mut got: Vec<i64> = per_state[name].iter().map(|(_, k)| *k).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            (0..100).collect::<Vec<_>>(),
            "{}: {name}",
            dir.display()
        );
        let groups: BTreeSet<u32> = per_state[name].iter().map(|(_, k)| key_group(*k)).collect();
        assert_eq!(groups.len(), 67, "{name}");
        let sub0: BTreeSet<u32> = groups.iter().copied().filter(|g| *g < 64).collect();
        assert_eq!(sub0.len(), 35, "{name}");
        assert_eq!(per_state[name].iter().filter(|(s, _)| *s == 0).count(), 50);
    }
    let timers: usize = TIMERS
        .iter()
        .map(|t| per_state.get(*t).map_or(0, Vec::len))
        .sum();
    assert!(timers > 0, "{}: no timers", dir.display());
}

fn job_dirs(scenario: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for job in std::fs::read_dir(fixtures().join(scenario)).unwrap() {
        let job = job.unwrap().path();
        if job.join("_metadata").exists() {
            out.push(job);
            continue;
        }
        if !job.is_dir() {
            continue;
        }
        for d in std::fs::read_dir(&job).unwrap() {
            let d = d.unwrap().path();
            if d.join("_metadata").exists() {
                out.push(d);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn heap_checkpoints_hold_every_key_once_per_state() {
    let dirs = job_dirs("heap");
    assert_eq!(dirs.len(), 3);
    for d in dirs {
        check_snapshot("heap", &d, false, KeyGroupsFormat::Heap);
    }
}

#[test]
fn heap_ttl_checkpoints_decode_ttl_values() {
    let dirs = job_dirs("heap-ttl");
    assert_eq!(dirs.len(), 3);
    for d in dirs {
        check_snapshot("heap-ttl", &d, true, KeyGroupsFormat::Heap);
    }
}

#[test]
fn heap_savepoints_canonical_and_native() {
    let canonical = job_dirs("heap-savepoints/canonical");
    let native = job_dirs("heap-savepoints/native");
    assert_eq!((canonical.len(), native.len()), (1, 1));
    check_snapshot(
        "heap-savepoints",
        &canonical[0],
        false,
        KeyGroupsFormat::Canonical,
    );
    check_snapshot("heap-savepoints", &native[0], false, KeyGroupsFormat::Heap);
}

#[test]
fn one_key_group_reads_only_that_group() {
    let dir = &job_dirs("heap")[2];
    let (_, h, bytes, file) = &streams(dir)[1];
    let kg = key_group(39);
    let state = flink::read_keyed_state(
        bytes,
        h,
        &KeyedRead {
            file,
            max_parallelism: 128,
            key_group: Some(kg),
        },
    );
    // Key 39 is in a key group of subtask 0 or 1: read it from the right stream.
    let state = if kg >= 64 {
        state.unwrap()
    } else {
        let (_, h, bytes, file) = &streams(dir)[0];
        flink::read_keyed_state(
            bytes,
            h,
            &KeyedRead {
                file,
                max_parallelism: 128,
                key_group: Some(kg),
            },
        )
        .unwrap()
    };
    assert!(state.entries.iter().all(|e| e.key_group == kg));
    assert!(state.entries.iter().any(|e| e.key == 39));
}

/// The key group whose bytes hold `pos` (the first one for the header).
fn group_at(h: &KeyedStateHandle, pos: usize) -> u32 {
    let k = match h {
        KeyedStateHandle::KeyGroups(k)
        | KeyedStateHandle::KeyGroupsV2(k)
        | KeyedStateHandle::SavepointKeyGroups(k) => k,
        other => panic!("{other:?}"),
    };
    let mut best = (0i64, k.key_groups.start);
    for (i, &o) in k.offsets.iter().enumerate() {
        if o != 0 && o as usize <= pos && o >= best.0 {
            best = (o, k.key_groups.start + i as u32);
        }
    }
    best.1
}

/// Every single-byte flip and every truncation gives an error or a reading, never a panic:
/// each is read through the key group whose bytes it changed (and the header), and a
/// sample of them through the whole stream.
#[test]
fn flips_and_truncations_never_panic() {
    let dirs = [
        job_dirs("heap")[0].clone(),
        job_dirs("heap-savepoints/canonical")[0].clone(),
    ];
    for dir in dirs {
        let (_, h, bytes, file) = &streams(&dir)[0];
        let opts = |key_group| KeyedRead {
            file,
            max_parallelism: 128,
            key_group,
        };
        let good = flink::read_keyed_state(bytes, h, &opts(None)).unwrap();
        assert!(!good.entries.is_empty());
        let mut errors = 0usize;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let kg = group_at(h, i);
            let mut results = vec![flink::read_keyed_state(&b, h, &opts(Some(kg)))];
            if i % 241 == 0 {
                results.push(flink::read_keyed_state(&b, h, &opts(None)));
            }
            for r in results {
                if let Err(e) = r {
                    errors += 1;
                    assert!(
                        matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Unsupported),
                        "{e}"
                    );
                    assert_eq!(e.context("file"), Some(file.as_str()), "{e}");
                }
            }
        }
        assert!(errors > 0);
        for len in 0..bytes.len() {
            let kg = group_at(h, len.saturating_sub(1));
            let r = flink::read_keyed_state(&bytes[..len], h, &opts(Some(kg)));
            if let Err(e) = r {
                assert!(e.context("offset").is_some(), "{e}");
            }
            if len % 241 == 0 {
                let e = flink::read_keyed_state(&bytes[..len], h, &opts(None))
                    .expect_err("a truncated stream cannot be read whole");
                assert!(e.context("offset").is_some(), "{e}");
            }
        }
    }
}

#[test]
fn unknown_serializers_and_incremental_handles_are_unsupported() {
    let dir = &job_dirs("heap")[0];
    let (_, h, bytes, file) = &streams(dir)[0];
    // Rename the value serializer of `count` to a class this reader does not know (same
    // length: the header still parses).
    let from = b"base.LongSerializer$LongSerializerSnapshot\x00\x00\x00\x03\x00\x14NAMESPACE";
    let pos = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("count's value serializer");
    let mut b = bytes.clone();
    b[pos + 5] = b'X';
    let e = flink::read_keyed_state(
        &b,
        h,
        &KeyedRead {
            file,
            max_parallelism: 128,
            key_group: None,
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        e.message().contains("Xong") || e.to_string().contains("Xong"),
        "{e}"
    );
    assert!(
        e.context("key_group").is_some() || e.context("state").is_some(),
        "{e}"
    );
}
