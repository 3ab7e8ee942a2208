//! Fuzzes the `CSKG` reader (header, blocks, zstd, records of versions 1 and 2) over an
//! inline stream. The first byte chooses the number of key groups (bits 0-1: 1, 2, 4 or
//! 128) and, in bit 7,
//! whether the header's and each block's CRC32 are patched in, so the fuzzer also gets
//! behind the checksums.
#![no_main]

use cornerstone_backend_api::spi::keyed_format::read_key_groups;
use cornerstone_backend_api::{KeyGroupRange, KeyGroupsStateHandle, StreamStateHandle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut stream = rest.to_vec();
    let header_end = stream
        .get(6..10)
        .map(|b| 14 + u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .filter(|&end| end <= stream.len() as u64)
        .unwrap_or(stream.len() as u64);
    if mode & 0x80 != 0 {
        patch_crcs(&mut stream, header_end as usize);
    }
    let key_groups = [1, 2, 4, 128][usize::from(mode & 3)];
    let range = KeyGroupRange::all(key_groups);
    let handle = KeyGroupsStateHandle {
        range,
        offsets: vec![header_end; key_groups as usize],
        stream: StreamStateHandle::Inline(stream),
    };
    let result = read_key_groups(&handle, None, range, &mut |header, r| {
        assert!(usize::from(r.state) < header.states.len());
        assert!(range.contains(r.key_group));
        Ok(())
    });
    if let Err(e) = result {
        let _ = e.to_string();
    }
});

/// Writes the right CRC32 into the header and into every block that the block lengths
/// reach.
fn patch_crcs(s: &mut [u8], header_end: usize) {
    if header_end < 14 || header_end > s.len() {
        return;
    }
    let crc = crc32fast::hash(&s[14..header_end]);
    s[10..14].copy_from_slice(&crc.to_be_bytes());
    let mut at = header_end;
    while at + 17 <= s.len() {
        let len = u32::from_be_bytes([s[at + 4], s[at + 5], s[at + 6], s[at + 7]]) as usize;
        let Some(end) = (at + 17).checked_add(len).filter(|&e| e <= s.len()) else {
            return;
        };
        let crc = crc32fast::hash(&s[at + 17..end]);
        s[at + 9..at + 13].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}
