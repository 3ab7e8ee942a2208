//! Fuzzes the explicit decoders of the handles that `_metadata` embeds: a subtask's handles
//! (first byte even) or a list of keyed handles (odd). Whatever decodes re-encodes to exactly
//! the bytes it was decoded from (the encoding is canonical), but for type names of release
//! 0.1 (Rust paths, with `::`), which decode as identities; the re-encoding always decodes to
//! the same value.
#![no_main]

use cornerstone_backend_api::handles::{KeyedStateHandle, SubtaskState};
use cornerstone_backend_api::spi::format::{Reader, handles, put_count};
use libfuzzer_sys::fuzz_target;

/// What one input decodes to.
#[derive(Debug, PartialEq)]
enum Decoded {
    Subtask(SubtaskState),
    Keyed(Vec<KeyedStateHandle>),
}

/// Decodes `bytes` as `mode` says; the value and the bytes it used.
fn decode(mode: u8, bytes: &[u8]) -> Option<(Decoded, usize)> {
    let mut r = Reader::new(bytes, "fuzz");
    let decoded = if mode & 1 == 0 {
        Decoded::Subtask(handles::subtask(&mut r).ok()?)
    } else {
        Decoded::Keyed(r.seq(1, "handles", handles::keyed).ok()?)
    };
    Some((decoded, bytes.len() - r.remaining()))
}

fn encode(decoded: &Decoded) -> Vec<u8> {
    let mut out = Vec::new();
    match decoded {
        Decoded::Subtask(state) => handles::put_subtask(&mut out, state),
        Decoded::Keyed(list) => {
            put_count(&mut out, list.len());
            for h in list {
                handles::put_keyed(&mut out, h);
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((decoded, used)) = decode(mode, rest) else {
        return;
    };
    let again = encode(&decoded);
    if again != rest[..used] {
        assert!(rest[..used].windows(2).any(|w| w == b"::"));
    }
    let (twice, len) = decode(mode, &again).expect("the re-encoding decodes");
    assert_eq!(len, again.len());
    assert_eq!(twice, decoded);
});
