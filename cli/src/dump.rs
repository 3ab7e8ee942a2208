//! `cornerstone dump`: the entries of full (key-group) snapshots and operator-state streams
//! as JSON values.
//!
//! Values are decoded by the type identity recorded in the snapshot (type names of earlier
//! releases are read as identities): primitives, `string`, and `option`, `list`, `set`,
//! `map`, arrays and tuples of them, with [`cornerstone_backend_api::spi::codec::decode`]; a
//! user type is given as `{"hex": "..."}`. A keyed entry has `subtask`, `key_group`,
//! `state`, `kind`, `key`, `namespace`, `user_key` (map state) and `value`; a timer (kind
//! `timers`, states `_timer_state/...`) has `timestamp` instead of `value`.

use cornerstone_backend_api::identity::canonical_identity;
use cornerstone_backend_api::spi::codec;
use cornerstone_backend_api::{Distribution, StateKind, StateMeta};
use serde_json::{Map, Value, json};

/// A type the tool knows how to decode.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    U8,
    U16,
    U32,
    U64,
    U128,
    I8,
    I16,
    I32,
    I64,
    I128,
    Bool,
    F32,
    F64,
    Str,
    Unit,
    Tuple(Vec<Ty>),
    /// `option<T>`: a tag byte, then the value when 1.
    Option(Box<Ty>),
    /// `list<T>` and `set<T>`: a `u64` count, then the elements.
    List(Box<Ty>),
    /// `map<K, V>`: a `u64` count, then the pairs.
    Map(Box<Ty>, Box<Ty>),
    /// `[T; N]`: N elements, no count.
    Array(Box<Ty>, usize),
}

/// Splits `a, (b, c), d` at top-level commas.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

fn parse_ty(name: &str) -> Option<Ty> {
    let name = canonical_identity(name.trim());
    let name = name.trim();
    let generic = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('<'))
            .and_then(|rest| rest.strip_suffix('>'))
    };
    Some(match name {
        "u8" => Ty::U8,
        "u16" => Ty::U16,
        "u32" => Ty::U32,
        "u64" | "usize" => Ty::U64,
        "u128" => Ty::U128,
        "i8" => Ty::I8,
        "i16" => Ty::I16,
        "i32" => Ty::I32,
        "i64" | "isize" => Ty::I64,
        "i128" => Ty::I128,
        "bool" => Ty::Bool,
        "f32" => Ty::F32,
        "f64" => Ty::F64,
        "string" | "String" => Ty::Str,
        "()" => Ty::Unit,
        _ => {
            if let Some(inner) = generic("option") {
                return Some(Ty::Option(Box::new(parse_ty(inner)?)));
            }
            if let Some(inner) = generic("list").or_else(|| generic("set")) {
                return Some(Ty::List(Box::new(parse_ty(inner)?)));
            }
            if let Some(inner) = generic("map") {
                let [k, v] = split_top_level(inner)[..] else {
                    return None;
                };
                return Some(Ty::Map(Box::new(parse_ty(k)?), Box::new(parse_ty(v)?)));
            }
            if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
                let (elem, len) = inner.rsplit_once(';')?;
                return Some(Ty::Array(
                    Box::new(parse_ty(elem)?),
                    len.trim().parse().ok()?,
                ));
            }
            let inner = name.strip_prefix('(')?.strip_suffix(')')?;
            let parts = split_top_level(inner);
            if parts.is_empty() {
                return None;
            }
            Ty::Tuple(parts.into_iter().map(parse_ty).collect::<Option<_>>()?)
        }
    })
}

/// Reads a value of `ty` from the front of `bytes`, returning it and the rest.
fn read<'a>(ty: &Ty, bytes: &'a [u8]) -> Option<(Value, &'a [u8])> {
    fn fixed<T>(bytes: &[u8], n: usize) -> Option<(T, &[u8])>
    where
        T: serde::de::DeserializeOwned,
    {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        codec::decode::<T>(head).ok().map(|v| (v, rest))
    }
    Some(match ty {
        Ty::U8 => fixed::<u8>(bytes, 1).map(|(v, r)| (json!(v), r))?,
        Ty::U16 => fixed::<u16>(bytes, 2).map(|(v, r)| (json!(v), r))?,
        Ty::U32 => fixed::<u32>(bytes, 4).map(|(v, r)| (json!(v), r))?,
        Ty::U64 => fixed::<u64>(bytes, 8).map(|(v, r)| (json!(v), r))?,
        // Beyond JSON's safe integers: a string.
        Ty::U128 => fixed::<u128>(bytes, 16).map(|(v, r)| (json!(v.to_string()), r))?,
        Ty::I8 => fixed::<i8>(bytes, 1).map(|(v, r)| (json!(v), r))?,
        Ty::I16 => fixed::<i16>(bytes, 2).map(|(v, r)| (json!(v), r))?,
        Ty::I32 => fixed::<i32>(bytes, 4).map(|(v, r)| (json!(v), r))?,
        Ty::I64 => fixed::<i64>(bytes, 8).map(|(v, r)| (json!(v), r))?,
        Ty::I128 => fixed::<i128>(bytes, 16).map(|(v, r)| (json!(v.to_string()), r))?,
        Ty::Bool => fixed::<bool>(bytes, 1).map(|(v, r)| (json!(v), r))?,
        Ty::F32 => fixed::<f32>(bytes, 4).map(|(v, r)| (json!(v), r))?,
        Ty::F64 => fixed::<f64>(bytes, 8).map(|(v, r)| (json!(v), r))?,
        Ty::Unit => (Value::Null, bytes),
        Ty::Str => {
            let (len, _) = fixed::<u64>(bytes, 8)?;
            let n = usize::try_from(len).ok()?.checked_add(8)?;
            fixed::<String>(bytes, n).map(|(v, r)| (json!(v), r))?
        }
        Ty::Tuple(items) => {
            let mut rest = bytes;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let (v, r) = read(item, rest)?;
                out.push(v);
                rest = r;
            }
            (Value::Array(out), rest)
        }
        Ty::Option(inner) => match bytes.split_first()? {
            (0, rest) => (Value::Null, rest),
            (1, rest) => read(inner, rest)?,
            _ => return None,
        },
        Ty::Array(elem, n) => read_elements(elem, *n as u64, bytes)?,
        Ty::List(elem) => {
            let (n, rest) = fixed::<u64>(bytes, 8)?;
            read_elements(elem, n, rest)?
        }
        Ty::Map(k, v) => {
            let (n, mut rest) = fixed::<u64>(bytes, 8)?;
            // A count beyond the bytes left is refused, as in `read_elements`.
            if n > rest.len() as u64 {
                return None;
            }
            let mut out = Vec::new();
            for _ in 0..n {
                let (key, r) = read(k, rest)?;
                let (value, r) = read(v, r)?;
                out.push(json!([key, value]));
                rest = r;
            }
            (Value::Array(out), rest)
        }
    })
}

/// Reads `n` elements of `elem`, refusing a count beyond the bytes left (an element takes
/// at least one byte unless it is `()`, and a list of more `()` than bytes is given as hex),
/// so a corrupted count allocates nothing.
fn read_elements<'a>(elem: &Ty, n: u64, bytes: &'a [u8]) -> Option<(Value, &'a [u8])> {
    if n > bytes.len() as u64 {
        return None;
    }
    let mut rest = bytes;
    let mut out = Vec::new();
    for _ in 0..n {
        let (v, r) = read(elem, rest)?;
        out.push(v);
        rest = r;
    }
    Some((Value::Array(out), rest))
}

/// How a serialized field wraps its element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The value itself.
    Plain,
    /// A `Vec` of the values (list state).
    List,
}

fn read_ttl<'a>(ty: &Ty, ttl: bool, bytes: &'a [u8]) -> Option<(Value, &'a [u8])> {
    if !ttl {
        return read(ty, bytes);
    }
    let (ts, rest) = read(&Ty::U64, bytes)?;
    let (v, rest) = read(ty, rest)?;
    Some((json!({ "ttl_timestamp": ts, "value": v }), rest))
}

fn read_shaped(ty: &Ty, shape: Shape, ttl: bool, bytes: &[u8]) -> Option<Value> {
    let (value, rest) = match shape {
        Shape::Plain => read_ttl(ty, ttl, bytes)?,
        Shape::List => {
            let (len, mut rest) = read(&Ty::U64, bytes)?;
            let len = len.as_u64()?;
            // Refuse a count beyond the bytes left, as `read_elements` does.
            if len > rest.len() as u64 {
                return None;
            }
            let mut items = Vec::new();
            for _ in 0..len {
                let (v, r) = read_ttl(ty, ttl, rest)?;
                items.push(v);
                rest = r;
            }
            (Value::Array(items), rest)
        }
    };
    rest.is_empty().then_some(value)
}

/// Decodes `bytes` as the type named `type_name`, or gives them as `{"hex": ...}`.
fn decode_named(type_name: &str, shape: Shape, ttl: bool, bytes: &[u8]) -> Value {
    parse_ty(type_name)
        .and_then(|ty| read_shaped(&ty, shape, ttl, bytes))
        .unwrap_or_else(|| json!({ "hex": hex::encode(bytes) }))
}

/// One keyed-state record as a JSON object.
#[allow(clippy::too_many_arguments)]
pub(crate) fn keyed_record(
    subtask: u32,
    key_group: u32,
    key_type: &str,
    meta: &StateMeta,
    key: &[u8],
    namespace: &[u8],
    user_key: Option<&[u8]>,
    value: &[u8],
) -> Value {
    let mut o = Map::new();
    o.insert("subtask".into(), json!(subtask));
    o.insert("key_group".into(), json!(key_group));
    o.insert("state".into(), json!(meta.name));
    o.insert("kind".into(), json!(meta.kind.name()));
    o.insert(
        "key".into(),
        decode_named(key_type, Shape::Plain, false, key),
    );
    o.insert(
        "namespace".into(),
        decode_named(&meta.namespace_type, Shape::Plain, false, namespace),
    );
    if let Some(uk) = user_key {
        let ty = meta.user_key_type.as_deref().unwrap_or("");
        o.insert("user_key".into(), decode_named(ty, Shape::Plain, false, uk));
    }
    let shape = if meta.kind == StateKind::List {
        Shape::List
    } else {
        Shape::Plain
    };
    // A timer's value is when it fires.
    let field = if meta.kind == StateKind::Timers {
        "timestamp"
    } else {
        "value"
    };
    o.insert(
        field.into(),
        decode_named(&meta.value_type, shape, meta.ttl, value),
    );
    Value::Object(o)
}

/// One operator-state element as a JSON object.
pub(crate) fn operator_record(
    subtask: u32,
    state: &str,
    mode: Distribution,
    element_type: &str,
    index: usize,
    element: &[u8],
) -> Value {
    json!({
        "subtask": subtask,
        "state": state,
        "kind": "operator",
        "mode": mode.name(),
        "index": index,
        "value": decode_named(element_type, Shape::Plain, false, element),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decodes_primitives_tuples_lists_and_ttl() {
        let s = codec::encode(&"hi".to_owned()).unwrap();
        assert_eq!(
            decode_named("alloc::string::String", Shape::Plain, false, &s),
            json!("hi")
        );
        let t = codec::encode(&(7u64, "x".to_owned(), true)).unwrap();
        assert_eq!(
            decode_named(
                "(u64, alloc::string::String, bool)",
                Shape::Plain,
                false,
                &t
            ),
            json!([7, "x", true])
        );
        let l = codec::encode(&vec![1i32, -2]).unwrap();
        assert_eq!(decode_named("i32", Shape::List, false, &l), json!([1, -2]));
        let ttl = codec::encode(&(5u64, 9u16)).unwrap();
        assert_eq!(
            decode_named("u16", Shape::Plain, true, &ttl),
            json!({"ttl_timestamp": 5, "value": 9})
        );
        assert_eq!(decode_named("()", Shape::Plain, false, &[]), Value::Null);
        // Unknown type, or bytes that do not fit: hex.
        assert_eq!(
            decode_named("my::Type", Shape::Plain, false, &[1, 2]),
            json!({"hex": "0102"})
        );
        assert_eq!(
            decode_named("u64", Shape::Plain, false, &[1, 2]),
            json!({"hex": "0102"})
        );
    }

    /// Values decode by identity, and by the type names of earlier releases.
    #[test]
    fn decodes_containers_by_identity() {
        use std::collections::BTreeMap;
        let o = codec::encode(&Some(vec![(1u8, "a".to_owned())])).unwrap();
        let expected = json!([[1, "a"]]);
        assert_eq!(
            decode_named("option<list<(u8, string)>>", Shape::Plain, false, &o),
            expected
        );
        assert_eq!(
            decode_named(
                "core::option::Option<alloc::vec::Vec<(u8, alloc::string::String)>>",
                Shape::Plain,
                false,
                &o
            ),
            expected
        );
        let none = codec::encode(&None::<u8>).unwrap();
        assert_eq!(
            decode_named("option<u8>", Shape::Plain, false, &none),
            Value::Null
        );
        let m = codec::encode(&BTreeMap::from([(1u32, "x".to_owned())])).unwrap();
        assert_eq!(
            decode_named("map<u32, string>", Shape::Plain, false, &m),
            json!([[1, "x"]])
        );
        let a = codec::encode(&[3u16, 4]).unwrap();
        assert_eq!(
            decode_named("[u16; 2]", Shape::Plain, false, &a),
            json!([3, 4])
        );
        // A count no bytes can hold is refused without allocating: hex.
        let huge = codec::encode(&u64::MAX).unwrap();
        for ty in ["list<()>", "map<(), ()>", "list<u8>"] {
            assert_eq!(
                decode_named(ty, Shape::Plain, false, &huge),
                json!({"hex": hex::encode(&huge)}),
                "{ty}"
            );
        }
        assert_eq!(
            decode_named("()", Shape::List, false, &huge),
            json!({"hex": hex::encode(&huge)})
        );
    }
}
