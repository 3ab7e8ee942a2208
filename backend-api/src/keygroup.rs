//! Key groups: the unit of keyed-state partitioning and rescaling.
//!
//! A job has `max_parallelism` key groups (default [`DEFAULT_MAX_PARALLELISM`], at most
//! [`MAX_PARALLELISM_UPPER_BOUND`]). A key's group is `murmur3_32(serialized key) %
//! max_parallelism`; subtask `i` of `p` owns the contiguous range
//! `[(i*maxP + p - 1) / p, ((i+1)*maxP - 1) / p]`, and key group `kg` belongs to subtask
//! `kg * p / maxP`. These formulas are a contract: they are stable across processes,
//! platforms and releases.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use strength_reduce::StrengthReducedU32;

use crate::error::{Error, Result};
use crate::spi::codec;

/// The default number of key groups.
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;
/// The largest allowed number of key groups.
pub const MAX_PARALLELISM_UPPER_BOUND: u32 = 32_768;

/// The seed of the murmur3 hash of serialized keys. Part of the on-storage contract.
pub const KEY_GROUP_HASH_SEED: u32 = 0;

/// Checks that `max_parallelism` is in `1..=32768`.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] naming the value and the bounds.
pub fn check_max_parallelism(max_parallelism: u32) -> Result<()> {
    if max_parallelism == 0 || max_parallelism > MAX_PARALLELISM_UPPER_BOUND {
        return Err(Error::invalid_input(format!(
            "max parallelism must be in 1..={MAX_PARALLELISM_UPPER_BOUND}"
        ))
        .with_context("max_parallelism", max_parallelism));
    }
    Ok(())
}

/// Checks that `1 <= parallelism <= max_parallelism`.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] naming both values.
pub fn check_parallelism(parallelism: u32, max_parallelism: u32) -> Result<()> {
    check_max_parallelism(max_parallelism)?;
    if parallelism == 0 || parallelism > max_parallelism {
        return Err(
            Error::invalid_input("parallelism must be in 1..=max_parallelism")
                .with_context("parallelism", parallelism)
                .with_context("max_parallelism", max_parallelism),
        );
    }
    Ok(())
}

/// The key group of already serialized key bytes.
#[inline]
pub fn key_group_for_bytes(key_bytes: &[u8], max_parallelism: u32) -> u32 {
    key_hash(key_bytes) % max_parallelism
}

/// The murmur3 hash of serialized key bytes that their key group is the remainder of.
#[inline]
fn key_hash(key_bytes: &[u8]) -> u32 {
    match key_bytes.len() {
        // The encoding of a 32- or 64-bit integer key: inlined, and unrolled once the
        // length is known, where the general function loops over the blocks.
        4 | 8 => murmur3_x86_32_of_blocks(key_bytes, KEY_GROUP_HASH_SEED),
        _ => mur3::murmurhash3_x86_32(key_bytes, KEY_GROUP_HASH_SEED),
    }
}

/// The key groups of one maximum parallelism, for the paths that assign many keys:
/// [`key_group_for_bytes`] and [`key_group_for_key`] with the remainder by the maximum
/// parallelism computed by two multiplications prepared once, instead of a division
/// (tens of cycles, on the way of every state access to its key group's map).
///
/// ```
/// use cornerstone_backend_api::keygroup::{KeyGroupAssigner, key_group_for_key};
///
/// let groups = KeyGroupAssigner::new(128)?;
/// assert_eq!(groups.of_key(&42u64)?, key_group_for_key(&42u64, 128)?);
/// assert!(KeyGroupAssigner::new(0).is_err());
/// # Ok::<(), cornerstone_backend_api::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct KeyGroupAssigner {
    max_parallelism: StrengthReducedU32,
}

impl KeyGroupAssigner {
    /// The key groups of `max_parallelism`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when `max_parallelism` is not in `1..=32768`.
    pub fn new(max_parallelism: u32) -> Result<Self> {
        check_max_parallelism(max_parallelism)?;
        Ok(KeyGroupAssigner {
            max_parallelism: StrengthReducedU32::new(max_parallelism),
        })
    }

    /// The number of key groups.
    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism.get()
    }

    /// The key group of serialized key bytes: [`key_group_for_bytes`].
    #[inline]
    pub fn of_bytes(&self, key_bytes: &[u8]) -> u32 {
        key_hash(key_bytes) % self.max_parallelism
    }

    /// The key group of a key: [`key_group_for_key`].
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when the key cannot be serialized.
    #[inline]
    pub fn of_key<K: Serialize + ?Sized>(&self, key: &K) -> Result<u32> {
        codec::with_encoded(key, |bytes| self.of_bytes(bytes))
    }
}

impl fmt::Debug for KeyGroupAssigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyGroupAssigner")
            .field("max_parallelism", &self.max_parallelism())
            .finish()
    }
}

impl PartialEq for KeyGroupAssigner {
    fn eq(&self, other: &Self) -> bool {
        self.max_parallelism() == other.max_parallelism()
    }
}

impl Eq for KeyGroupAssigner {}

/// `mur3::murmurhash3_x86_32(bytes, seed)` for bytes whose length is a multiple of 4 (no
/// tail), which the tests check for every such length up to 64.
#[inline]
fn murmur3_x86_32_of_blocks(bytes: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    for block in bytes.chunks_exact(4) {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]])
            .wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593);
        h = (h ^ k)
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    h ^= bytes.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The key group of a key, serialized with the key encoding of [`crate::spi::codec`].
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] when the key cannot be serialized.
#[inline]
pub fn key_group_for_key<K: Serialize + ?Sized>(key: &K, max_parallelism: u32) -> Result<u32> {
    codec::with_encoded(key, |bytes| key_group_for_bytes(bytes, max_parallelism))
}

/// The subtask (operator index) that owns key group `key_group` at `parallelism`.
#[inline]
pub fn operator_index_for_key_group(max_parallelism: u32, parallelism: u32, key_group: u32) -> u32 {
    ((u64::from(key_group) * u64::from(parallelism)) / u64::from(max_parallelism)) as u32
}

/// A contiguous, inclusive range of key groups, possibly empty.
///
/// Deserializing checks that the range is well formed, so a range read from storage never
/// has its end before its start.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RangeRepr", into = "RangeRepr")]
pub struct KeyGroupRange {
    start: u32,
    /// Exclusive end; `start == end` is the empty range.
    end: u32,
}

impl KeyGroupRange {
    /// The range `first..=last`. An empty range when `last < first`.
    pub fn new(first: u32, last: u32) -> Self {
        if last < first {
            Self::EMPTY
        } else {
            KeyGroupRange {
                start: first,
                end: last + 1,
            }
        }
    }

    /// The range `start..end` (exclusive end) as stored: `None` when the end is before the
    /// start or beyond [`MAX_PARALLELISM_UPPER_BOUND`].
    pub fn from_bounds(start: u32, end: u32) -> Option<Self> {
        (start <= end && end <= MAX_PARALLELISM_UPPER_BOUND).then_some(KeyGroupRange { start, end })
    }

    /// The empty range.
    pub const EMPTY: KeyGroupRange = KeyGroupRange { start: 0, end: 0 };

    /// All key groups of a job: `0..=max_parallelism-1`.
    pub fn all(max_parallelism: u32) -> Self {
        KeyGroupRange::new(0, max_parallelism.saturating_sub(1))
    }

    /// The range that subtask `index` of `parallelism` owns.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when the parallelism, max parallelism or index is
    /// out of bounds.
    pub fn for_subtask(max_parallelism: u32, parallelism: u32, index: u32) -> Result<Self> {
        check_parallelism(parallelism, max_parallelism)?;
        if index >= parallelism {
            return Err(
                Error::invalid_input("subtask index must be below the parallelism")
                    .with_context("index", index)
                    .with_context("parallelism", parallelism),
            );
        }
        let (max_p, p, i) = (
            u64::from(max_parallelism),
            u64::from(parallelism),
            u64::from(index),
        );
        let first = (i * max_p).div_ceil(p);
        let last = ((i + 1) * max_p - 1) / p;
        Ok(KeyGroupRange::new(first as u32, last as u32))
    }

    /// The first key group; meaningless for an empty range.
    pub fn first(&self) -> u32 {
        self.start
    }

    /// The last key group; meaningless for an empty range.
    pub fn last(&self) -> u32 {
        self.end.saturating_sub(1)
    }

    /// How many key groups the range holds.
    pub fn len(&self) -> u32 {
        self.end - self.start
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether `key_group` is in the range.
    #[inline]
    pub fn contains(&self, key_group: u32) -> bool {
        key_group >= self.start && key_group < self.end
    }

    /// The position of `key_group` inside the range, if it is in it.
    #[inline]
    pub fn index_of(&self, key_group: u32) -> Option<usize> {
        self.contains(key_group)
            .then(|| (key_group - self.start) as usize)
    }

    /// The key groups that are in both ranges.
    pub fn intersection(&self, other: &KeyGroupRange) -> KeyGroupRange {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        if end <= start {
            Self::EMPTY
        } else {
            KeyGroupRange { start, end }
        }
    }

    /// Iterates over the key groups in ascending order.
    pub fn iter(&self) -> std::ops::Range<u32> {
        self.start..self.end
    }

    /// The range as an inclusive `RangeInclusive`; `None` when empty.
    pub fn as_inclusive(&self) -> Option<RangeInclusive<u32>> {
        (!self.is_empty()).then(|| self.start..=self.end - 1)
    }
}

/// The stored form of a [`KeyGroupRange`]: start and exclusive end.
#[derive(Serialize, Deserialize)]
struct RangeRepr {
    start: u32,
    end: u32,
}

impl TryFrom<RangeRepr> for KeyGroupRange {
    type Error = String;
    fn try_from(r: RangeRepr) -> std::result::Result<Self, String> {
        KeyGroupRange::from_bounds(r.start, r.end)
            .ok_or_else(|| format!("invalid key-group range {}..{}", r.start, r.end))
    }
}

impl From<KeyGroupRange> for RangeRepr {
    fn from(r: KeyGroupRange) -> Self {
        RangeRepr {
            start: r.start,
            end: r.end,
        }
    }
}

impl fmt::Debug for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            f.write_str("[]")
        } else {
            write!(f, "[{}, {}]", self.start, self.end - 1)
        }
    }
}

impl IntoIterator for KeyGroupRange {
    type Item = u32;
    type IntoIter = std::ops::Range<u32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The inlined murmur3 of whole blocks is the crate's, at every length it takes.
        #[test]
        fn block_murmur3_is_the_crates(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 64),
            seed in proptest::prelude::any::<u32>(),
        ) {
            for len in (0..=64).step_by(4) {
                proptest::prop_assert_eq!(
                    murmur3_x86_32_of_blocks(&bytes[..len], seed),
                    mur3::murmurhash3_x86_32(&bytes[..len], seed)
                );
            }
        }

        /// The assigner's remainder by multiplications is the division's, for any hash and
        /// at every allowed max parallelism (powers of two and others).
        #[test]
        fn the_assigner_is_the_division(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
            hash in proptest::prelude::any::<u32>(),
            max_parallelism in 1..=MAX_PARALLELISM_UPPER_BOUND,
        ) {
            let groups = KeyGroupAssigner::new(max_parallelism).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(e.to_string())
            })?;
            proptest::prop_assert_eq!(groups.max_parallelism(), max_parallelism);
            proptest::prop_assert_eq!(
                groups.of_bytes(&key),
                key_group_for_bytes(&key, max_parallelism)
            );
            proptest::prop_assert_eq!(hash % groups.max_parallelism, hash % max_parallelism);
        }
    }

    #[test]
    fn the_assigner_refuses_what_max_parallelism_refuses() {
        for bad in [0, MAX_PARALLELISM_UPPER_BOUND + 1, u32::MAX] {
            let e = KeyGroupAssigner::new(bad).unwrap_err();
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
        }
        for edge in [1, 2, 3, 127, 128, 129, MAX_PARALLELISM_UPPER_BOUND] {
            let groups = KeyGroupAssigner::new(edge).unwrap();
            for hash in [0, 1, edge - 1, edge, u32::MAX - 1, u32::MAX] {
                assert_eq!(
                    hash % groups.max_parallelism,
                    hash % edge,
                    "{hash} % {edge}"
                );
            }
        }
    }

    #[test]
    fn ranges_partition_all_key_groups_and_match_assignment() {
        for max_p in [1u32, 7, 128, 1000, 32_768] {
            for p in [1u32, 2, 3, 4, 6, 7, 128] {
                if p > max_p {
                    continue;
                }
                let mut next = 0;
                for i in 0..p {
                    let r = KeyGroupRange::for_subtask(max_p, p, i).unwrap();
                    assert_eq!(r.first(), next, "max_p={max_p} p={p} i={i}");
                    for kg in r {
                        assert_eq!(operator_index_for_key_group(max_p, p, kg), i);
                    }
                    next = r.last() + 1;
                }
                assert_eq!(next, max_p);
            }
        }
    }

    #[test]
    fn bounds_are_checked() {
        assert!(check_max_parallelism(0).is_err());
        assert!(check_max_parallelism(32_769).is_err());
        assert!(KeyGroupRange::for_subtask(128, 0, 0).is_err());
        assert!(KeyGroupRange::for_subtask(128, 2, 2).is_err());
        assert!(KeyGroupRange::for_subtask(4, 5, 0).is_err());
    }

    #[test]
    fn key_groups_are_stable() {
        // Pinned values: changing them breaks every stored snapshot.
        assert_eq!(mur3::murmurhash3_x86_32(b"", 0), 0);
        assert_eq!(mur3::murmurhash3_x86_32(b"hello", 0), 0x248b_fa47);
        let kg = key_group_for_key(&42u64, 128).unwrap();
        assert_eq!(kg, key_group_for_bytes(&42u64.to_be_bytes(), 128));
    }

    #[test]
    fn malformed_ranges_do_not_deserialize() {
        let bytes = crate::spi::codec::encode(&(10u32, 5u32)).unwrap();
        assert!(crate::spi::codec::decode::<KeyGroupRange>(&bytes).is_err());
        let bytes = crate::spi::codec::encode(&(0u32, 40_000u32)).unwrap();
        assert!(crate::spi::codec::decode::<KeyGroupRange>(&bytes).is_err());
        let r = KeyGroupRange::new(3, 9);
        let back: KeyGroupRange =
            crate::spi::codec::decode(&crate::spi::codec::encode(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            crate::spi::codec::encode(&r).unwrap(),
            crate::spi::codec::encode(&(3u32, 10u32)).unwrap()
        );
    }

    #[test]
    fn intersection_and_display() {
        let a = KeyGroupRange::new(0, 63);
        let b = KeyGroupRange::new(32, 127);
        assert_eq!(a.intersection(&b), KeyGroupRange::new(32, 63));
        assert!(a.intersection(&KeyGroupRange::new(64, 70)).is_empty());
        assert_eq!(a.to_string(), "[0, 63]");
        assert_eq!(KeyGroupRange::EMPTY.to_string(), "[]");
        assert_eq!(b.index_of(32), Some(0));
        assert_eq!(b.index_of(31), None);
    }
}
