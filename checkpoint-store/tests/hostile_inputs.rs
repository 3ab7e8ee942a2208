//! Crafted inputs of every stored format (`CSMD` `_metadata`, `CSKG`, `CSOP`, `CSRI`): huge
//! length prefixes and counts, decompression bombs, sizes whose sums overflow. Each is refused
//! as [`ErrorKind::Corrupted`], naming the file and offset, while the memory the decoder
//! allocates stays under a stated bound.
//!
//! Memory is measured by counting the bytes allocated through Rust's global allocator
//! (`peak_alloc`) above what was allocated before the decoder ran. zstd's own context is
//! allocated by its C library, not counted here: it has a fixed size (about 100 KiB), since
//! decompression goes straight into the output buffer without a window buffer. The bound of
//! a decompression is its declared size (itself capped), and 1 MiB when the data does not
//! really produce more. Tests run one
//! at a time (a lock), so that the peak is the decoder's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;

use cornerstone_backend_api::operator::OperatorStateBackend;
use cornerstone_backend_api::spi::format::incremental;
use cornerstone_backend_api::spi::format::{self, handles};
use cornerstone_backend_api::spi::keyed_format::{
    self, Compression, KeyedSnapshotHeader, KeyedSnapshotWriter, MAX_BLOCK_LEN,
};
use cornerstone_backend_api::{
    Distribution, Error, ErrorKind, FileStateHandle, KeyGroupRange, KeyGroupsStateHandle,
    OperatorStateHandle, OperatorStateMeta, Result, StateKind, StateMeta, StateReader, StateScope,
    StreamStateHandle,
};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::codec;
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the lock that runs the tests one at a time (a failed test does not fail the others).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The bound of every crafted input that declares no large size: 1 MiB above the input.
const SMALL: usize = 1 << 20;

/// Runs `f`, returning its result and the peak of bytes allocated above the start.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let out = f();
    (out, ALLOCATOR.peak_usage().saturating_sub(before))
}

/// Asserts that `f` fails with `Corrupted` and allocates at most `bound` bytes.
fn refused<T: std::fmt::Debug>(what: &str, bound: usize, f: impl FnOnce() -> Result<T>) -> Error {
    let (result, peak) = measure(f);
    let e = result.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{what}: {e}");
    assert!(
        e.context("offset").is_some(),
        "{what} names the offset: {e}"
    );
    assert!(
        peak <= bound,
        "{what}: allocated {peak} bytes, bound {bound}: {e}"
    );
    println!("{what}: peak {peak} bytes (bound {bound}): {e}");
    e
}

/// 1 GiB of zeros in one zstd frame (32 KiB), without or with its size recorded.
fn bomb(sized: bool) -> Vec<u8> {
    let name = if sized {
        "zeros-1gib-sized.zst"
    } else {
        "zeros-1gib.zst"
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/hostile")
        .join(name);
    std::fs::read(path).unwrap()
}

fn header() -> KeyedSnapshotHeader {
    KeyedSnapshotHeader {
        backend: "hostile".into(),
        key_type: "u64".into(),
        states: vec![StateMeta {
            name: "v".into(),
            kind: StateKind::Value,
            namespace_type: "()".into(),
            user_key_type: None,
            value_type: "u64".into(),
            ttl: false,
        }],
    }
}

/// A valid stream of one key group without blocks, to which crafted blocks are appended.
fn preamble() -> Vec<u8> {
    let w = KeyedSnapshotWriter::new(
        Vec::new(),
        &header(),
        KeyGroupRange::all(1),
        Compression::None,
    )
    .unwrap();
    w.finish().unwrap().0
}

fn block(kg: u32, flags: u8, stored: &[u8], stored_len: u32, raw_len: u32) -> Vec<u8> {
    let mut b = Vec::new();
    format::put_u32(&mut b, kg);
    format::put_u32(&mut b, stored_len);
    b.push(flags);
    format::put_u32(&mut b, crc32fast::hash(stored));
    format::put_u32(&mut b, raw_len);
    b.extend_from_slice(stored);
    b
}

fn read_inline(bytes: Vec<u8>, first_offset: u64) -> Result<usize> {
    let handle = KeyGroupsStateHandle {
        range: KeyGroupRange::all(1),
        offsets: vec![first_offset],
        stream: StreamStateHandle::Inline(bytes),
    };
    let mut n = 0;
    keyed_format::read_key_groups(&handle, None, handle.range, &mut |_, _| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

#[test]
fn cskg_decompression_bombs() {
    let _one = one_at_a_time();
    let bomb = bomb(false);
    let pre = preamble();
    let at = pre.len() as u64;
    for declared in [64u32 << 10, 16 << 20] {
        let mut s = pre.clone();
        s.extend(block(0, 1, &bomb, bomb.len() as u32, declared));
        // The stream's copy, the block read, and the declared output.
        let bound = 2 * s.len() + declared as usize + SMALL;
        let e = refused("CSKG 1 GiB bomb, small declared size", bound, move || {
            read_inline(s, at)
        });
        assert_eq!(e.context("key_group"), Some("0"));
    }
    // Data that declares the cap but is not zstd past its magic number: the output buffer
    // starts at 1 MiB and never grows.
    let mut garbage = bomb[..4].to_vec();
    garbage.extend_from_slice(&[0xff; 64]);
    let mut s = pre.clone();
    s.extend(block(0, 1, &garbage, garbage.len() as u32, MAX_BLOCK_LEN));
    refused("CSKG garbage declaring 256 MiB", 2 * SMALL, move || {
        read_inline(s, at)
    });
    for declared in [MAX_BLOCK_LEN + 1, u32::MAX] {
        let mut s = pre.clone();
        s.extend(block(0, 1, &bomb, bomb.len() as u32, declared));
        let bound = 2 * s.len() + SMALL;
        refused("CSKG bomb declaring more than the cap", bound, move || {
            read_inline(s, at)
        });
    }
}

#[test]
fn cskg_huge_lengths() {
    let _one = one_at_a_time();
    let pre = preamble();
    let at = pre.len() as u64;
    // A block that claims 4 GiB of stored bytes.
    let mut s = pre.clone();
    s.extend(block(0, 0, b"abc", u32::MAX, 3));
    refused("CSKG block stored length", SMALL, move || {
        read_inline(s, at)
    });
    // A record whose value length is u32::MAX (a varint) in a small block.
    let mut records = vec![0u8, 1, 7, 0];
    format::put_varint(&mut records, u64::from(u32::MAX));
    records.extend_from_slice(b"tiny");
    let mut s = pre.clone();
    s.extend(block(
        0,
        0,
        &records,
        records.len() as u32,
        records.len() as u32,
    ));
    let e = refused("CSKG record length", SMALL, move || read_inline(s, at));
    assert_eq!(e.context("field"), Some("value"), "{e}");
    // A header whose string claims u64::MAX bytes and one whose state count cannot fit.
    for header in [
        {
            let mut h = Vec::new();
            format::put_u64(&mut h, u64::MAX);
            h
        },
        {
            let mut h = Vec::new();
            format::put_str(&mut h, "b");
            format::put_str(&mut h, "u64");
            format::put_u64(&mut h, 1 << 60);
            h.extend_from_slice(&[0; 64]);
            h
        },
    ] {
        let mut s = b"CSKG\0\x02".to_vec();
        format::put_u32(&mut s, header.len() as u32);
        format::put_u32(&mut s, crc32fast::hash(&header));
        s.extend_from_slice(&header);
        let first = s.len() as u64;
        refused("CSKG header field", SMALL, move || read_inline(s, first));
    }
}

/// A file store that serves the bytes it has for a range's start, and nothing else: the
/// handles claim huge files, storage holds a few bytes.
#[derive(Debug)]
struct Served(Vec<(u64, Vec<u8>)>);

impl StateReader for Served {
    fn open_file(
        &self,
        _file: &FileStateHandle,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send + '_>> {
        let bytes = self
            .0
            .iter()
            .find(|(start, _)| *start == range.start)
            .map_or(&[][..], |(_, b)| &b[..]);
        Ok(Box::new(bytes))
    }
}

fn huge_file(offsets: Vec<u64>, size: u64) -> KeyGroupsStateHandle {
    KeyGroupsStateHandle {
        range: KeyGroupRange::all(offsets.len() as u32),
        offsets,
        stream: StreamStateHandle::File(FileStateHandle {
            path: "chk-1/huge".into(),
            scope: StateScope::Exclusive,
            size,
            crc32: 0,
        }),
    }
}

#[test]
fn cskg_huge_files_and_overflowing_offsets() {
    let _one = one_at_a_time();
    let read = |h: KeyGroupsStateHandle, served: Served, range: KeyGroupRange| {
        keyed_format::read_key_groups(&h, Some(&served), range, &mut |_, _| Ok(())).map(|_| ())
    };
    // A header length of 4 GiB (the handle agrees; storage does not): refused before reading.
    let mut pre = b"CSKG\0\x02".to_vec();
    format::put_u32(&mut pre, u32::MAX);
    format::put_u32(&mut pre, 0);
    let h = huge_file(vec![14 + u64::from(u32::MAX)], 1 << 40);
    let served = Served(vec![(0, pre)]);
    let e = refused("CSKG 4 GiB header", SMALL, || {
        read(h, served, KeyGroupRange::all(1))
    });
    assert_eq!(e.context("path"), Some("chk-1/huge"), "{e}");
    // A header of 16 MiB (the cap) of which storage has 100 bytes: the buffer grows with what
    // arrives.
    let mut pre = b"CSKG\0\x02".to_vec();
    format::put_u32(&mut pre, 16 << 20);
    format::put_u32(&mut pre, 0);
    pre.extend_from_slice(&[0; 100]);
    let h = huge_file(vec![14 + (16 << 20)], 1 << 40);
    let served = Served(vec![(0, pre)]);
    let (result, peak) = measure(|| read(h, served, KeyGroupRange::all(1)));
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(peak <= SMALL, "truncated 16 MiB header: {peak} bytes");
    // A block near the end of u64: its end overflows.
    let pre = preamble();
    let at = u64::MAX - 30;
    let h = huge_file(vec![pre.len() as u64, at], u64::MAX);
    let served = Served(vec![(0, pre), (at, block(1, 0, b"", 1000, 1000))]);
    let e = refused("CSKG block end overflows u64", SMALL, || {
        read(h, served, KeyGroupRange::new(1, 1))
    });
    assert_eq!(e.context("offset"), Some(&*at.to_string()), "{e}");
}

#[test]
fn csop_offsets_and_lengths() {
    let _one = one_at_a_time();
    let mut stream = format::operator::preamble().to_vec();
    stream.extend_from_slice(&u32::MAX.to_be_bytes());
    stream.extend_from_slice(b"short");
    for offsets in [
        vec![6],
        vec![u64::MAX],
        vec![u64::MAX - 3],
        vec![2],
        vec![100],
    ] {
        let handle = OperatorStateHandle {
            states: [(
                "s".to_owned(),
                OperatorStateMeta {
                    mode: Distribution::Split,
                    element_type: "u64".into(),
                    offsets: offsets.clone(),
                },
            )]
            .into(),
            stream: StreamStateHandle::Inline(stream.clone()),
        };
        let e = refused("CSOP element", SMALL, || {
            OperatorStateBackend::restore(std::slice::from_ref(&handle), None)
        });
        assert_eq!(e.context("path"), Some("<inline>"), "{offsets:?}: {e}");
        assert_eq!(e.context("state"), Some("s"), "{offsets:?}: {e}");
    }
}

#[test]
fn csri_huge_lengths_and_counts() {
    let _one = one_at_a_time();
    let meta = incremental::IncrementalMeta {
        key_type: "u64".into(),
        max_parallelism: 128,
        states: vec![incremental::IncrementalState {
            meta: header().states[0].clone(),
            column_family: "cf".into(),
        }],
    };
    let good = incremental::encode(&meta);
    assert_eq!(incremental::decode(&good, "m").unwrap(), meta);
    let with_body = |body: &[u8]| {
        let mut s = good[..6].to_vec();
        format::put_u32(&mut s, crc32fast::hash(body));
        s.extend_from_slice(body);
        s
    };
    let mut huge_string = Vec::new();
    format::put_u64(&mut huge_string, u64::MAX - 1);
    let mut huge_count = Vec::new();
    format::put_str(&mut huge_count, "u64");
    format::put_u32(&mut huge_count, 128);
    format::put_u64(&mut huge_count, u64::MAX / 2);
    huge_count.extend_from_slice(&[0; 100]);
    let mut huge_meta = huge_count[..15].to_vec();
    format::put_u64(&mut huge_meta, 1);
    format::put_u64(&mut huge_meta, 1 << 40);
    huge_meta.extend_from_slice(&[0; handles::MIN_STATE_META + 8]);
    for (what, body) in [
        ("CSRI key type length", huge_string),
        ("CSRI state count", huge_count),
        ("CSRI state name length", huge_meta),
    ] {
        let bytes = with_body(&body);
        let e = refused(what, SMALL, || incremental::decode(&bytes, "chk-1/meta"));
        assert_eq!(e.context("path"), Some("chk-1/meta"), "{e}");
    }
}

/// A `_metadata` file of `body`, stored with `flags`, with a valid CRC.
fn csmd(flags: u8, stored: &[u8]) -> Vec<u8> {
    let mut out = codec::MAGIC.to_vec();
    format::put_u16(&mut out, 1);
    out.push(flags);
    out.push(0);
    format::put_u32(&mut out, stored.len() as u32);
    out.extend_from_slice(stored);
    let crc = crc32fast::hash(&out);
    format::put_u32(&mut out, crc);
    out
}

fn section(body: &mut Vec<u8>, tag: u16, payload: &[u8]) {
    format::put_u16(body, tag);
    format::put_u32(body, payload.len() as u32);
    body.extend_from_slice(payload);
}

fn header_section(body: &mut Vec<u8>) {
    let mut p = Vec::new();
    format::put_u64(&mut p, 1);
    format::put_str(&mut p, "job");
    format::put_u32(&mut p, 0);
    format::put_u64(&mut p, 1);
    format::put_u64(&mut p, 2);
    section(body, 1, &p);
}

/// The start of an operators section of one operator, up to its subtask count.
fn one_operator() -> Vec<u8> {
    let mut ops = Vec::new();
    format::put_u64(&mut ops, 1);
    format::put_str(&mut ops, "u");
    format::put_str(&mut ops, "n");
    format::put_u32(&mut ops, 1);
    format::put_u32(&mut ops, 128);
    ops
}

#[test]
fn csmd_decompression_bombs() {
    let _one = one_at_a_time();
    // The frame records 1 GiB: refused before allocating.
    let file = csmd(1, &bomb(true));
    let e = refused("CSMD bomb recording 1 GiB", 2 * file.len() + SMALL, || {
        codec::decode(&file)
    });
    assert_eq!(e.context("recorded"), Some("1073741824"), "{e}");
    // The frame records nothing (no writer makes that): refused.
    let file = csmd(1, &bomb(false));
    refused(
        "CSMD bomb recording no size",
        2 * file.len() + SMALL,
        || codec::decode(&file),
    );
    // A first frame that records 12 bytes, followed by the 1 GiB frame: the output buffer
    // has 12 bytes, and decompression stops when it is full.
    let mut stored = zstd::bulk::compress(b"twelve bytes", 3).unwrap();
    stored.extend_from_slice(&bomb(false));
    let file = csmd(1, &stored);
    refused(
        "CSMD small frame then a bomb",
        2 * file.len() + SMALL,
        || codec::decode(&file),
    );
}

#[test]
fn csmd_huge_lengths_counts_and_sizes() {
    let _one = one_at_a_time();
    // A section that claims 4 GiB.
    let mut body = Vec::new();
    header_section(&mut body);
    format::put_u16(&mut body, 2);
    format::put_u32(&mut body, u32::MAX);
    body.extend_from_slice(&[0; 16]);
    let file = csmd(0, &body);
    refused("CSMD section length", SMALL, || codec::decode(&file));
    // Operator, subtask and handle counts, and a string, that cannot fit.
    let mut huge_operators = Vec::new();
    format::put_u64(&mut huge_operators, u64::MAX / 32);
    let mut huge_subtasks = one_operator();
    let mut huge_handles = huge_subtasks.clone();
    format::put_u64(&mut huge_subtasks, 1 << 50);
    format::put_u64(&mut huge_handles, 1);
    format::put_u32(&mut huge_handles, 0);
    format::put_u64(&mut huge_handles, 1 << 40);
    huge_handles.extend_from_slice(&[0; 8]);
    let mut huge_string = Vec::new();
    format::put_u64(&mut huge_string, 1);
    format::put_u64(&mut huge_string, u64::MAX);
    huge_string.extend_from_slice(&[0; 32]);
    for (what, field, ops) in [
        ("CSMD operator count", "operators", huge_operators),
        ("CSMD subtask count", "subtasks", huge_subtasks),
        (
            "CSMD keyed handle count",
            "keyed state handles",
            huge_handles,
        ),
        ("CSMD operator uid length", "operator uid", huge_string),
    ] {
        let mut body = Vec::new();
        header_section(&mut body);
        section(&mut body, 2, &ops);
        let file = csmd(0, &body);
        let e = refused(what, SMALL, || codec::decode(&file));
        assert_eq!(e.context("file"), Some("_metadata body"), "{e}");
        assert_eq!(e.context("field"), Some(field), "{e}");
    }
    // Stream sizes whose sum overflows u64: refused by validation, naming the sum.
    let mut ops = one_operator();
    format::put_u64(&mut ops, 1);
    format::put_u32(&mut ops, 0);
    let half = StreamStateHandle::File(FileStateHandle {
        path: "chk-1/a".into(),
        scope: StateScope::Exclusive,
        size: u64::MAX / 2 + 1,
        crc32: 0,
    });
    handles::put_subtask(
        &mut ops,
        &cornerstone_backend_api::SubtaskState {
            keyed: vec![],
            operator: vec![
                OperatorStateHandle {
                    states: Default::default(),
                    stream: half.clone(),
                },
                OperatorStateHandle {
                    states: Default::default(),
                    stream: half,
                },
            ],
        },
    );
    let mut body = Vec::new();
    header_section(&mut body);
    section(&mut body, 2, &ops);
    let file = csmd(0, &body);
    let (result, peak) = measure(|| codec::decode(&file));
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.context("sum").is_some(), "{e}");
    assert!(peak <= SMALL, "CSMD overflowing sizes: {peak} bytes");
    // The same body decodes when the sizes fit: the crafted encoding is the real one.
    let ok = ops.len() - 8 - 4;
    let mut fits = ops.clone();
    fits[ok..ok + 8].copy_from_slice(&1u64.to_be_bytes());
    let mut body = Vec::new();
    header_section(&mut body);
    section(&mut body, 2, &fits);
    codec::decode(&csmd(0, &body)).unwrap();
}

/// `verify` reads every referenced file to check its size and CRC32: streamed, so a large
/// state file costs one chunk of memory, not its size.
#[test]
fn verify_streams_large_files() {
    use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, SubtaskState};
    use cornerstone_checkpoint_store::{
        CheckpointConfig, CheckpointStore, CompletedCheckpointStore, inspect,
    };
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let job = CompletedCheckpointStore::open(&store, "job", CheckpointConfig::default()).unwrap();
    let mut p = job.begin_checkpoint(CheckpointId(1)).unwrap();
    let f = p.stream_factory();
    let mut out = f.create(StateScope::Exclusive).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..64 {
        std::io::Write::write_all(&mut out, &chunk).unwrap();
    }
    let handle = out.close().unwrap();
    let state = SubtaskState {
        keyed: vec![],
        operator: vec![OperatorStateHandle {
            states: Default::default(),
            stream: handle,
        }],
    };
    p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state)
        .unwrap();
    let done = p.commit().unwrap();
    drop(chunk);
    let (report, peak) = measure(|| inspect::verify(&store, &done.metadata_path, |_, _| {}));
    let report = report.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.bytes_read, 64 << 20);
    eprintln!("verify of a 64 MiB file: peak {peak} bytes allocated");
    assert!(
        peak < 8 << 20,
        "verify allocated {peak} bytes for a 64 MiB file"
    );
}
