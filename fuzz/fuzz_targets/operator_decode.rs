//! Fuzzes the `CSOP` reader: the preamble check and the element at every offset of the
//! stream (and at offsets past it); every element returned lies inside the stream.
#![no_main]

use cornerstone_backend_api::spi::format::operator::OperatorStream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(stream) = OperatorStream::parse(data, "fuzz") else {
        return;
    };
    let base = data.as_ptr() as usize;
    for offset in (0..data.len() as u64 + 8).chain([u64::MAX, u64::MAX - 3]) {
        if let Ok(element) = stream.element_at(offset) {
            let start = element.as_ptr() as usize - base;
            assert_eq!(start as u64, offset + 4);
            assert!(start + element.len() <= data.len());
        }
    }
});
