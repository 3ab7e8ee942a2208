//! Fuzzes the `_metadata` decoder. Half of the inputs get a valid CRC32 patched in, so the
//! fuzzer also explores the section, zstd, handle and validation layers behind the checksum.
#![no_main]

use cornerstone_checkpoint_store::{codec, layout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = rest.to_vec();
    if mode & 1 == 1 && input.len() >= 16 {
        let at = input.len() - 4;
        let crc = crc32fast::hash(&input[..at]);
        input[at..].copy_from_slice(&crc.to_be_bytes());
    }
    if let Ok(metadata) = codec::decode(&input) {
        // Whatever decodes must re-encode and decode to the same value.
        let again = codec::encode(&metadata, codec::MetadataCompression::None)
            .expect("decoded metadata re-encodes");
        assert_eq!(
            codec::decode(&again).expect("re-encoded metadata decodes"),
            metadata
        );
        let _ = metadata.files();
        let _ = metadata.state_size();
    }
    if let Ok(s) = std::str::from_utf8(rest) {
        if let Some(id) = layout::parse_checkpoint_dir(s) {
            assert_eq!(
                layout::parse_checkpoint_dir(&layout::checkpoint_dir_name(id)),
                Some(id)
            );
        }
    }
});
