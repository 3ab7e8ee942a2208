//! Unit tests of timer entries, timestamps and key-group heads.

#![allow(clippy::unwrap_used)]

use super::service::with_entry;
use super::*;
use crate::spi::codec;

#[test]
fn entries_split_back_into_key_and_namespace() {
    for key_len in [0usize, 1, 127, 128, 300] {
        let key = vec![7u8; key_len];
        let entry = TimerEntry::from_parts(&key, b"ns");
        assert_eq!(entry.split().unwrap(), (&key[..], &b"ns"[..]));
        assert_eq!(TimerEntry::from_bytes(entry.as_bytes()), entry);
    }
    for bad in [&[][..], &[5, 1, 2][..], &[0x80][..], &[0xff; 11][..]] {
        assert_eq!(
            split_entry(bad).unwrap_err().kind(),
            crate::ErrorKind::Corrupted
        );
    }
    assert_eq!(decode_timestamp(&encode_timestamp(-5)).unwrap(), -5);
    assert_eq!(codec::encode(&-5i64).unwrap(), encode_timestamp(-5));
    assert!(decode_timestamp(&[1, 2]).is_err());
}

/// The heads agree with a scan of every key group, whatever the order of changes.
#[test]
fn heads_find_the_earliest_key_group() {
    for groups in [1usize, 2, 3, 7, 128, 129] {
        let mut heads = KeyGroupHeads::new(groups);
        let mut model = vec![None; groups];
        assert_eq!(heads.first(), None);
        let mut x: u64 = 17;
        for _ in 0..2_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let index = (x >> 33) as usize % groups;
            let head = if (x >> 20).is_multiple_of(4) {
                None
            } else {
                Some(((x >> 40) % 50) as i64 - 25)
            };
            heads.set(index, head);
            model[index] = head;
            let expected = model
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|t| (t, i)))
                .min();
            assert_eq!(heads.first(), expected, "{groups} groups");
        }
    }
}

/// Keys of 128 bytes or more get a wider length prefix, and the key group is computed
/// from the key's bytes alone.
#[test]
fn long_keys_make_entries_with_wide_prefixes() {
    for len in [1usize, 119, 120, 200] {
        let key = "k".repeat(len);
        with_entry(
            &key,
            &9u32,
            crate::keygroup::KeyGroupAssigner::new(128).unwrap(),
            |kg, entry| {
                let (k, ns) = split_entry(entry)?;
                assert_eq!(k, codec::encode(&key)?);
                assert_eq!(ns, 9u32.to_be_bytes());
                assert_eq!(kg, crate::keygroup::key_group_for_key(&key, 128)?);
                Ok(())
            },
        )
        .unwrap();
    }
}
