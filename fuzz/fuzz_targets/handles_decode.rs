//! Fuzzes the explicit decoders of the handles that `_metadata` embeds: a subtask's handles
//! (first byte even) or a list of keyed handles (odd). Whatever decodes re-encodes to exactly
//! the bytes it was decoded from (the encoding is canonical).
#![no_main]

use cornerstone_backend_api::format::{Reader, handles};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut r = Reader::new(rest, "fuzz");
    let mut again = Vec::new();
    if mode & 1 == 0 {
        if let Ok(state) = handles::subtask(&mut r) {
            handles::put_subtask(&mut again, &state);
        } else {
            return;
        }
    } else if let Ok(list) = r.seq(1, "handles", handles::keyed) {
        cornerstone_backend_api::format::put_count(&mut again, list.len());
        for h in &list {
            handles::put_keyed(&mut again, h);
        }
    } else {
        return;
    }
    let used = rest.len() - r.remaining();
    assert_eq!(again, &rest[..used]);
});
