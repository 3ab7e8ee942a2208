//! Fuzzes the `CSRI` decoder. Inputs whose first byte is odd get a valid CRC32 patched in, so
//! the fuzzer also explores the body; whatever decodes re-encodes to the same bytes (the
//! encoding is canonical).
#![no_main]

use cornerstone_backend_api::format::incremental;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = rest.to_vec();
    if mode & 1 == 1 && input.len() >= 10 {
        let crc = crc32fast::hash(&input[10..]);
        input[6..10].copy_from_slice(&crc.to_be_bytes());
    }
    if let Ok(meta) = incremental::decode(&input, "fuzz") {
        assert_eq!(incremental::encode(&meta), input);
    }
});
