//! The bytes of a value that serializes as one integer, without the general encoder: the
//! fast path of [`super::with_encoded`], which computes the key group of every state access.
//!
//! [`super::CONFIG`] writes an integer big-endian at its width and a newtype struct as its
//! field, so for such a value these bytes are exactly what the encoder would write (the
//! tests compare both). Any other value makes [`IntBytes::of`] answer `None`, and the
//! caller encodes it in full.

use std::fmt;

use serde::ser::{Error, Impossible, Serialize, Serializer};

/// The encoding of one integer of up to 64 bits.
pub(super) struct IntBytes {
    bytes: [u8; 8],
    len: usize,
}

impl IntBytes {
    /// The bytes of `value` when it serializes as one integer of up to 64 bits (directly or
    /// through newtype structs); `None` for anything else.
    #[inline]
    pub(super) fn of<T: Serialize + ?Sized>(value: &T) -> Option<Self> {
        value.serialize(Capture).ok()
    }

    /// The encoded bytes.
    #[inline]
    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    #[inline]
    fn new<const N: usize>(be: [u8; N]) -> Result<Self, NotInt> {
        let mut bytes = [0u8; 8];
        bytes[..N].copy_from_slice(&be);
        Ok(IntBytes { bytes, len: N })
    }
}

/// The value is not one integer (or a newtype of one).
#[derive(Debug)]
pub(super) struct NotInt;

impl fmt::Display for NotInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a single integer")
    }
}

impl std::error::Error for NotInt {}

impl Error for NotInt {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotInt
    }
}

/// A serializer that accepts one integer and refuses everything else.
struct Capture;

/// Refuses a value the capture does not take.
macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(
            #[inline]
            fn $name(self, $(_: $arg),*) -> Result<IntBytes, NotInt> {
                Err(NotInt)
            }
        )*
    };
}

/// Takes an integer as its big-endian bytes.
macro_rules! take {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(
            #[inline]
            fn $name(self, v: $ty) -> Result<IntBytes, NotInt> {
                IntBytes::new(v.to_be_bytes())
            }
        )*
    };
}

impl Serializer for Capture {
    type Ok = IntBytes;
    type Error = NotInt;
    type SerializeSeq = Impossible<IntBytes, NotInt>;
    type SerializeTuple = Impossible<IntBytes, NotInt>;
    type SerializeTupleStruct = Impossible<IntBytes, NotInt>;
    type SerializeTupleVariant = Impossible<IntBytes, NotInt>;
    type SerializeMap = Impossible<IntBytes, NotInt>;
    type SerializeStruct = Impossible<IntBytes, NotInt>;
    type SerializeStructVariant = Impossible<IntBytes, NotInt>;

    take!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
    );

    refuse!(
        serialize_bool(bool),
        serialize_i128(i128),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    /// Like the encoder, a newtype struct is its field.
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<IntBytes, NotInt> {
        value.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<IntBytes, NotInt> {
        Err(NotInt)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<IntBytes, NotInt> {
        Err(NotInt)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, NotInt> {
        Err(NotInt)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, NotInt> {
        Err(NotInt)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, NotInt> {
        Err(NotInt)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, NotInt> {
        Err(NotInt)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, NotInt> {
        Err(NotInt)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, NotInt> {
        Err(NotInt)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, NotInt> {
        Err(NotInt)
    }

    /// The encoder is not human readable: types that serialize differently for people (as
    /// text) must take their binary form here too.
    fn is_human_readable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;
    use serde::Serialize;

    use super::IntBytes;
    use crate::spi::codec::encode;

    /// The captured bytes, or `None`, and the encoder's bytes.
    fn both<T: Serialize>(v: &T) -> (Option<Vec<u8>>, Vec<u8>) {
        (
            IntBytes::of(v).map(|b| b.as_slice().to_vec()),
            encode(v).unwrap(),
        )
    }

    #[derive(Serialize)]
    struct Id(u64);
    #[derive(Serialize)]
    struct Nested(Id);
    #[derive(Serialize)]
    struct Pair(u32, u32);
    #[derive(Serialize)]
    enum E {
        A(u64),
    }

    proptest! {
        #[test]
        fn integers_and_their_newtypes_are_the_encoders_bytes(
            a in any::<u64>(), b in any::<i64>(), c in any::<u32>(), d in any::<i32>(),
            e in any::<u16>(), f in any::<i16>(), g in any::<u8>(), h in any::<i8>(),
        ) {
            for (captured, encoded) in [
                both(&a), both(&b), both(&c), both(&d), both(&e), both(&f), both(&g), both(&h),
                both(&Id(a)), both(&Nested(Id(a))),
            ] {
                prop_assert_eq!(captured, Some(encoded));
            }
        }

        #[test]
        fn anything_else_is_left_to_the_encoder(a in any::<u64>(), s in ".{0,12}") {
            for captured in [
                both(&u128::from(a)).0, both(&i128::from(a)).0, both(&(a, a)).0,
                both(&Pair(1, 2)).0, both(&E::A(a)).0, both(&Some(a)).0, both(&s).0,
                both(&vec![a]).0, both(&(a % 2 == 0)).0, both(&()).0, both(&(a as f64)).0,
                both(&'x').0,
            ] {
                prop_assert_eq!(captured, None);
            }
        }
    }
}
