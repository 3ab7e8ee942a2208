//! The committed fixtures of `testdata/` (at the repository's root) that this crate's formats
//! own: each is decoded, and each writer's output for the fixture's fixed input must equal
//! the committed bytes, so a writer cannot change a format without a version bump.
//!
//! Regenerate with `CORNERSTONE_REGENERATE_FIXTURES=1 cargo test -p cornerstone-backend-api
//! --test fixtures` (then review the diff: a changed fixture of a released version is a
//! format change and needs a new version).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::path::PathBuf;

use cornerstone_backend_api::identity::canonical_identity;
use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::spi::codec;
use cornerstone_backend_api::spi::format::incremental::{self, IncrementalMeta, IncrementalState};
use cornerstone_backend_api::spi::format::{Reader, handles};
use cornerstone_backend_api::spi::keyed_format::{
    self, Compression, KeyedSnapshotHeader, KeyedSnapshotWriter, read_key_groups,
};
use cornerstone_backend_api::stream::InlineStreamFactory;
use cornerstone_backend_api::{
    CheckpointId, KeyGroupRange, KeyGroupsStateHandle, KeyedStateHandle, StateKind, StateMeta,
    StreamStateHandle,
};

/// The path of a file in `testdata/`.
fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata")
        .join(name)
}

/// Compares `bytes` with the committed fixture `name`, writing it first when regenerating.
fn check_fixture(name: &str, bytes: &[u8]) {
    let path = testdata(name);
    if regenerate() {
        std::fs::write(&path, bytes).unwrap();
    }
    let committed = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate the fixtures)", path.display()));
    assert!(
        committed == bytes,
        "{name}: the writer's output for the fixture's input changed: bump the format's \
         version and keep reading this one (or, for an unreleased change, regenerate)"
    );
}

fn regenerate() -> bool {
    std::env::var_os("CORNERSTONE_REGENERATE_FIXTURES").is_some()
}

/// 1 GiB of zeros as one zstd frame: without its size (as a streaming writer makes it), and
/// with its size recorded, for the hostile-input tests and the fuzz corpora. Generated only
/// when regenerating (zstd's output may differ between zstd releases); the committed files are
/// checked to be what their names say.
#[test]
fn decompression_bombs() {
    for (name, pledged) in [
        ("hostile/zeros-1gib.zst", None),
        ("hostile/zeros-1gib-sized.zst", Some(1u64 << 30)),
    ] {
        if regenerate() {
            let mut enc = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
            enc.set_pledged_src_size(pledged).unwrap();
            enc.include_contentsize(pledged.is_some()).unwrap();
            std::io::copy(&mut std::io::repeat(0).take(1 << 30), &mut enc).unwrap();
            std::fs::write(testdata(name), enc.finish().unwrap()).unwrap();
        }
        let bomb = std::fs::read(testdata(name)).unwrap();
        assert!(bomb.len() < 64 << 10, "{name}: {} bytes", bomb.len());
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&bomb).unwrap(),
            pledged,
            "{name}"
        );
        let mut dec = zstd::stream::Decoder::new(&bomb[..]).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = dec.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 0), "{name}");
            total += n as u64;
        }
        assert_eq!(total, 1 << 30, "{name}");
    }
}

fn meta(name: &str, kind: StateKind, ns: &str, user_key: Option<&str>, value: &str) -> StateMeta {
    StateMeta {
        name: name.into(),
        kind,
        namespace_type: ns.into(),
        user_key_type: user_key.map(str::to_owned),
        value_type: value.into(),
        ttl: kind == StateKind::List,
    }
}

/// `header` as it reads back: each type name as its identity (the fixtures hold the
/// `std::any::type_name` output earlier releases recorded, `alloc::string::String` read as
/// `string`).
fn identities(mut header: KeyedSnapshotHeader) -> KeyedSnapshotHeader {
    header.key_type = canonical_identity(&header.key_type).into_owned();
    for meta in &mut header.states {
        meta.namespace_type = canonical_identity(&meta.namespace_type).into_owned();
        meta.value_type = canonical_identity(&meta.value_type).into_owned();
        if let Some(t) = &mut meta.user_key_type {
            *t = canonical_identity(t).into_owned();
        }
    }
    header
}

/// A record read back: (key group, state, key, namespace, user key, value).
type OwnedRecord = (u32, u16, Vec<u8>, Vec<u8>, Option<Vec<u8>>, Vec<u8>);

fn keyed_header() -> KeyedSnapshotHeader {
    KeyedSnapshotHeader {
        backend: "fixture".into(),
        key_type: "u64".into(),
        states: vec![
            meta("value", StateKind::Value, "()", None, "u64"),
            meta(
                "list",
                StateKind::List,
                "u32",
                None,
                "alloc::string::String",
            ),
            meta("map", StateKind::Map, "()", Some("u32"), "u64"),
        ],
    }
}

/// The records of the `CSKG` v2 fixture: (key group, state, key, namespace, user key,
/// value), serialized. Key group 1 is empty; key group 3 spans records of every state.
fn keyed_records() -> Vec<OwnedRecord> {
    let enc = |v: &dyn erased::Enc| v.bytes();
    let mut out = Vec::new();
    for (kg, keys) in [(0u32, 0..3u64), (2, 3..4), (3, 4..200)] {
        for k in keys {
            out.push((kg, 0, enc(&k), vec![], None, enc(&(k * 7))));
            let list = vec![format!("a{k}"), format!("b{k}")];
            out.push((kg, 1, enc(&k), enc(&((k % 3) as u32)), None, enc(&list)));
            out.push((
                kg,
                2,
                enc(&k),
                vec![],
                Some(enc(&((k % 10) as u32))),
                enc(&(k + 1)),
            ));
        }
    }
    out
}

/// Serializes values of different types through one closure.
mod erased {
    pub(crate) trait Enc {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Enc for T {
        fn bytes(&self) -> Vec<u8> {
            cornerstone_backend_api::spi::codec::encode(self).unwrap()
        }
    }
}

/// Reads every record of a `CSKG` stream (a full read needs only the first offset).
fn read_all_records(
    stream: Vec<u8>,
    range: KeyGroupRange,
) -> (KeyedSnapshotHeader, Vec<OwnedRecord>) {
    let header_end = 14 + u64::from(u32::from_be_bytes(stream[6..10].try_into().unwrap()));
    let handle = KeyGroupsStateHandle {
        range,
        offsets: vec![header_end; range.len() as usize],
        stream: StreamStateHandle::Inline(stream),
    };
    let mut records = Vec::new();
    let header = read_key_groups(&handle, None, range, &mut |_, r| {
        records.push((
            r.key_group,
            r.state,
            r.key.to_vec(),
            r.namespace.to_vec(),
            r.user_key.map(<[u8]>::to_vec),
            r.value.to_vec(),
        ));
        Ok(())
    })
    .unwrap()
    .unwrap();
    (header, records)
}

#[test]
fn keyed_v2_fixtures() {
    assert_eq!(
        keyed_format::VERSION,
        2,
        "a new CSKG version needs its own fixture; keep decoding keyed-v2*.cskg"
    );
    let range = KeyGroupRange::all(4);
    for (name, compression) in [
        ("keyed-v2.cskg", Compression::None),
        ("keyed-v2-zstd.cskg", Compression::Zstd(3)),
    ] {
        let mut w =
            KeyedSnapshotWriter::new(Vec::new(), &keyed_header(), range, compression).unwrap();
        let mut current = None;
        for (kg, state, key, ns, uk, value) in keyed_records() {
            if current != Some(kg) {
                w.begin_key_group(kg).unwrap();
                current = Some(kg);
            }
            w.raw_record(state, &key, &ns, uk.as_deref(), &value)
                .unwrap();
        }
        let (bytes, offsets) = w.finish().unwrap();
        assert_eq!(offsets.len(), 4);
        if compression == Compression::None {
            check_fixture(name, &bytes);
        } else if regenerate() {
            // zstd's output may differ between zstd releases: only decoding is required.
            std::fs::write(testdata(name), &bytes).unwrap();
        }
        let committed = std::fs::read(testdata(name)).unwrap();
        assert_eq!(&committed[..6], b"CSKG\0\x02", "{name}");
        let (header, records) = read_all_records(committed, range);
        assert_eq!(header, identities(keyed_header()), "{name}");
        assert_eq!(header.states[1].value_type, "string", "{name}");
        assert_eq!(records, keyed_records(), "{name}");
    }
}

/// `keyed-v1*.bin` (written by the release that introduced `CSKG`, see
/// `cornerstone-backend-memory`'s `format_v1` test) hold the handles of one inline snapshot:
/// the handles decode with the explicit decoder, and the version 1 records with the reader
/// of today.
#[test]
fn keyed_v1_fixtures() {
    for name in ["keyed-v1.bin", "keyed-v1-zstd.bin"] {
        let bytes = std::fs::read(testdata(name)).unwrap();
        let mut r = Reader::new(&bytes, name);
        let handles = r.seq(1, "handles", handles::keyed).unwrap();
        r.finish("handles").unwrap();
        let [KeyedStateHandle::KeyGroups(h)] = &handles[..] else {
            panic!("{name}: one full snapshot")
        };
        let StreamStateHandle::Inline(stream) = &h.stream else {
            panic!("{name}: inline")
        };
        assert_eq!(&stream[..6], b"CSKG\0\x01", "{name}");
        let (header, records) = read_all_records(stream.clone(), h.range);
        assert_eq!(header.states.len(), 3, "{name}");
        let value_state = header
            .states
            .iter()
            .position(|s| s.name == "value")
            .unwrap();
        let values: Vec<_> = records
            .iter()
            .filter(|r| usize::from(r.1) == value_state)
            .collect();
        assert_eq!(values.len(), 1000, "{name}");
        for (_, _, key, _, _, value) in values {
            let k: u64 = codec::decode(key).unwrap();
            assert_eq!(codec::decode::<u64>(value).unwrap(), k * 7, "{name}");
        }
        // 1,000 lists and 1,000 map entries.
        assert_eq!(records.len(), 3000, "{name}");
    }
}

#[test]
fn operator_v1_fixture() {
    let backend = OperatorStateBackend::new();
    backend
        .list_state::<u64>("offsets")
        .unwrap()
        .add_all([1, 2, u64::MAX]);
    backend
        .union_list_state::<String>("names")
        .unwrap()
        .add_all(["a".to_owned(), "bc".to_owned()]);
    backend
        .broadcast_state::<u32, String>("rules")
        .unwrap()
        .put(7, "seven".into());
    let streams = InlineStreamFactory::new(CheckpointId(1), 1 << 20);
    let state = backend.snapshot(CheckpointId(1)).write(&streams).unwrap();
    let [handle] = &state.operator[..] else {
        panic!("one operator handle")
    };
    let StreamStateHandle::Inline(bytes) = &handle.stream else {
        panic!("inline")
    };
    assert_eq!(
        cornerstone_backend_api::operator::VERSION,
        1,
        "a new CSOP version needs its own fixture; keep decoding operator-v1.csop"
    );
    check_fixture("operator-v1.csop", bytes);
    let mut committed = handle.clone();
    committed.stream =
        StreamStateHandle::Inline(std::fs::read(testdata("operator-v1.csop")).unwrap());
    let restored = OperatorStateBackend::restore(&[committed], None).unwrap();
    assert_eq!(
        restored.list_state::<u64>("offsets").unwrap().get(),
        vec![1, 2, u64::MAX]
    );
    assert_eq!(
        restored.union_list_state::<String>("names").unwrap().get(),
        vec!["a".to_owned(), "bc".to_owned()]
    );
    assert_eq!(
        restored
            .broadcast_state::<u32, String>("rules")
            .unwrap()
            .entries(),
        vec![(7, "seven".to_owned())]
    );
}

#[test]
fn incremental_v1_fixture() {
    let meta = IncrementalMeta {
        key_type: "u64".into(),
        max_parallelism: 128,
        states: keyed_header()
            .states
            .into_iter()
            .enumerate()
            .map(|(i, meta)| IncrementalState {
                meta,
                column_family: format!("cf-{i}"),
            })
            .collect(),
    };
    let bytes = incremental::encode(&meta);
    assert_eq!(
        incremental::VERSION,
        1,
        "a new CSRI version needs its own fixture; keep decoding incremental-v1.csri"
    );
    check_fixture("incremental-v1.csri", &bytes);
    // The body is what serde + bincode wrote for the same fields (how version 1 was first
    // written): a tuple encodes as the struct did.
    let serde_body = codec::encode(&(
        &meta.key_type,
        meta.max_parallelism,
        meta.states
            .iter()
            .map(|s| (&s.meta, &s.column_family))
            .collect::<Vec<_>>(),
    ))
    .unwrap();
    assert_eq!(&bytes[10..], &serde_body[..]);
    let committed = std::fs::read(testdata("incremental-v1.csri")).unwrap();
    let mut read = meta.clone();
    for (state, canonical) in read
        .states
        .iter_mut()
        .zip(identities(keyed_header()).states)
    {
        state.meta = canonical;
    }
    assert_eq!(
        incremental::decode(&committed, "incremental-v1.csri").unwrap(),
        read
    );
}

/// The header of the timers fixture: a value state and the two queues of timer service `t`
/// (namespace `u32`), keys `u64`.
fn timers_header() -> KeyedSnapshotHeader {
    let queue = |name: &str| meta(name, StateKind::Timers, "u32", None, "i64");
    KeyedSnapshotHeader {
        backend: "fixture".into(),
        key_type: "u64".into(),
        states: vec![
            queue("_timer_state/event_t"),
            queue("_timer_state/processing_t"),
            meta("value", StateKind::Value, "()", None, "u64"),
        ],
    }
}

/// The timers of the fixture, at max parallelism 4: (key group, state, key, namespace,
/// timestamp). Keys are those that hash to each key group; timestamps span the sign.
fn timer_records() -> Vec<(u32, u16, u64, u32, i64)> {
    let mut out = Vec::new();
    for kg in 0..4u32 {
        let keys = (0u64..)
            .filter(|k| cornerstone_backend_api::keygroup::key_group_for_key(k, 4).unwrap() == kg)
            .take(3);
        for key in keys {
            out.push((kg, 0, key, (key % 2) as u32, key as i64 - 5));
            out.push((kg, 0, key, 7, i64::MAX - key as i64));
            out.push((kg, 1, key, 0, i64::MIN + key as i64));
        }
    }
    out
}

/// `keyed-v2-timers.cskg`: timers are records of kind-5 states whose value is the
/// big-endian `i64` timestamp. The writer's bytes are pinned and read back.
#[test]
fn keyed_v2_timers_fixture() {
    let range = KeyGroupRange::all(4);
    let mut w =
        KeyedSnapshotWriter::new(Vec::new(), &timers_header(), range, Compression::None).unwrap();
    let mut current = None;
    for (kg, state, key, ns, ts) in timer_records() {
        if current != Some(kg) {
            w.begin_key_group(kg).unwrap();
            current = Some(kg);
        }
        w.raw_record(
            state,
            &codec::encode(&key).unwrap(),
            &codec::encode(&ns).unwrap(),
            None,
            &ts.to_be_bytes(),
        )
        .unwrap();
    }
    let (bytes, _) = w.finish().unwrap();
    check_fixture("keyed-v2-timers.cskg", &bytes);
    let (header, records) = read_all_records(
        std::fs::read(testdata("keyed-v2-timers.cskg")).unwrap(),
        range,
    );
    assert_eq!(header, timers_header());
    let decoded: Vec<(u32, u16, u64, u32, i64)> = records
        .iter()
        .map(|(kg, state, key, ns, uk, value)| {
            assert!(uk.is_none());
            (
                *kg,
                *state,
                codec::decode(key).unwrap(),
                codec::decode(ns).unwrap(),
                cornerstone_backend_api::timer::decode_timestamp(value).unwrap(),
            )
        })
        .collect();
    assert_eq!(decoded, timer_records());
}
