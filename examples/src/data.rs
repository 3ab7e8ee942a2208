//! The job's input, deterministic per (input, split, offset), and its expected output.

use std::collections::BTreeMap;

/// The number of inputs of the two-input operator.
pub(crate) const INPUTS: u32 = 2;

/// splitmix64: a fixed, well-mixed sequence.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of the event at `offset` of split `split` of input `input`.
pub fn event_key(input: u32, split: u32, offset: u64, keys: u64) -> u64 {
    mix(mix(u64::from(input) << 32 | u64::from(split)) ^ offset) % keys.max(1)
}

/// The event time of the event at `offset` (milliseconds): its offset.
pub(crate) fn event_time(offset: u64) -> u64 {
    offset
}

/// The start of the tumbling window of `ts`.
pub fn window_start(ts: u64, window_ms: u64) -> u64 {
    ts - ts % window_ms.max(1)
}

/// The exact (key, window start) → count that the job must output once each.
pub fn expected_counts(
    splits_per_input: u32,
    events_per_split: u64,
    keys: u64,
    window_ms: u64,
) -> BTreeMap<(u64, u64), u64> {
    let mut expected = BTreeMap::new();
    for input in 0..INPUTS {
        for split in 0..splits_per_input {
            for offset in 0..events_per_split {
                let key = event_key(input, split, offset, keys);
                let window = window_start(event_time(offset), window_ms);
                *expected.entry((key, window)).or_insert(0) += 1;
            }
        }
    }
    expected
}
