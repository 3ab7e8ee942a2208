//! Flink's serializer snapshots (`TypeSerializerSnapshot.writeVersionedSnapshot`, nested ones
//! of `CompositeTypeSerializerSnapshot`) and the values of the built-in serializers they name.

use cornerstone_backend_api::{Error, ErrorKind, Result};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::flink::input::{Input, corrupt};

/// `CompositeTypeSerializerSnapshot.MAGIC_NUMBER`.
const COMPOSITE_MAGIC: i32 = 911_108;
/// `NestedSerializersSnapshotDelegate.MAGIC_NUMBER`.
const NESTED_MAGIC: i32 = 1_333_245;
/// How deep serializer snapshots may nest (a list of maps of lists ...).
const MAX_DEPTH: u32 = 16;

const BASE: &str = "org.apache.flink.api.common.typeutils.base.";

/// A serializer snapshot as Flink wrote it: the snapshot class, its version and, for the
/// composite serializers this reader knows, the nested snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerializerSnapshot {
    /// The snapshot class, such as
    /// `org.apache.flink.api.common.typeutils.base.LongSerializer$LongSerializerSnapshot`.
    pub class: String,
    /// The snapshot's version.
    pub version: i32,
    /// The nested serializer snapshots of a composite serializer (list, map, timer, TTL).
    pub nested: Vec<SerializerSnapshot>,
}

/// What a serializer snapshot says about the bytes of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Long,
    Int,
    Double,
    Boolean,
    String,
    Bytes,
    Void,
    List,
    Map,
    Timer,
    Ttl,
    Unknown,
}

fn kind_of(class: &str) -> Kind {
    let simple = |name: &str| class == format!("{BASE}{name}Serializer${name}SerializerSnapshot");
    if simple("Long") {
        Kind::Long
    } else if simple("Int") {
        Kind::Int
    } else if simple("Double") {
        Kind::Double
    } else if simple("Boolean") {
        Kind::Boolean
    } else if simple("String") {
        Kind::String
    } else if class
        == format!("{BASE}array.BytePrimitiveArraySerializer$BytePrimitiveArraySerializerSnapshot")
    {
        Kind::Bytes
    } else if class
        == "org.apache.flink.runtime.state.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot"
    {
        Kind::Void
    } else if class == format!("{BASE}ListSerializerSnapshot") {
        Kind::List
    } else if class == format!("{BASE}MapSerializerSnapshot") {
        Kind::Map
    } else if class == "org.apache.flink.streaming.api.operators.TimerSerializerSnapshot" {
        Kind::Timer
    } else if class == "org.apache.flink.runtime.state.ttl.TtlStateFactory$TtlSerializerSnapshot" {
        Kind::Ttl
    } else {
        Kind::Unknown
    }
}

/// The number of nested snapshots a composite kind has.
fn arity(kind: Kind) -> Option<usize> {
    match kind {
        Kind::List => Some(1),
        Kind::Map | Kind::Timer | Kind::Ttl => Some(2),
        Kind::Unknown => None,
        _ => Some(0),
    }
}

impl SerializerSnapshot {
    /// Reads what `TypeSerializerSnapshotSerializationUtil.writeSerializerSnapshot` wrote: the
    /// proxy's version (2), then a versioned snapshot.
    pub(crate) fn read_proxied(r: &mut Input<'_>) -> Result<Self> {
        let at = r.offset();
        let v = r.i32("serializer snapshot proxy version")?;
        if v != 2 {
            return Err(corrupt(
                format!("serializer snapshot proxy version {v} at offset {at} is not 2"),
                "serializer snapshot proxy version",
                at,
            )
            .with_context("value", v));
        }
        Self::read_versioned(r, 0)
    }

    /// Reads `TypeSerializerSnapshot.writeVersionedSnapshot`: UTF class name, int version,
    /// then the snapshot's own data, which this reader knows for the built-in serializers.
    fn read_versioned(r: &mut Input<'_>, depth: u32) -> Result<Self> {
        let at = r.offset();
        if depth > MAX_DEPTH {
            return Err(corrupt(
                format!("serializer snapshots nest deeper than {MAX_DEPTH} at offset {at}"),
                "serializer snapshot",
                at,
            ));
        }
        let class = r.utf("serializer snapshot class")?;
        let version = r.i32("serializer snapshot version")?;
        let kind = kind_of(&class);
        let Some(n) = arity(kind) else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "serializer snapshot {class} at offset {at} is not one this reader knows: \
                     its data has no recorded length"
                ),
            )
            .with_context("field", "serializer snapshot class")
            .with_context("offset", at)
            .with_context("serializer", &class));
        };
        let mut nested = Vec::new();
        if n > 0 {
            // CompositeTypeSerializerSnapshot: magic, outer version, outer snapshot (none
            // for these), then NestedSerializersSnapshotDelegate: magic, version, count, and
            // each nested snapshot versioned.
            expect(r, COMPOSITE_MAGIC, "composite serializer snapshot magic")?;
            r.i32("outer snapshot version")?;
            expect(r, NESTED_MAGIC, "nested serializer snapshots magic")?;
            r.i32("nested serializer snapshots version")?;
            let count_at = r.offset();
            let count = r.count("nested serializer snapshot count", 6)?;
            if count != n {
                return Err(corrupt(
                    format!("{class} at offset {at} has {count} nested snapshots, not {n}"),
                    "nested serializer snapshot count",
                    count_at,
                )
                .with_context("value", count));
            }
            nested.reserve_exact(n);
            for _ in 0..n {
                nested.push(Self::read_versioned(r, depth + 1)?);
            }
        }
        Ok(SerializerSnapshot {
            class,
            version,
            nested,
        })
    }

    fn kind(&self) -> Kind {
        kind_of(&self.class)
    }

    fn child(&self, i: usize) -> &SerializerSnapshot {
        self.nested.get(i).unwrap_or(self)
    }

    /// Whether every value of this serializer has the same length (Flink's
    /// `TypeSerializer.getLength() >= 0`).
    pub(crate) fn fixed_length(&self) -> bool {
        match self.kind() {
            Kind::Long | Kind::Int | Kind::Double | Kind::Boolean | Kind::Void => true,
            Kind::Timer => self.child(0).fixed_length() && self.child(1).fixed_length(),
            _ => false,
        }
    }

    /// Whether this reader can decode (and so delimit) this serializer's values.
    pub fn is_decodable(&self) -> bool {
        match self.kind() {
            Kind::Unknown => false,
            k => arity(k).is_some_and(|n| (0..n).all(|i| self.child(i).is_decodable())),
        }
    }

    /// The first class in this snapshot this reader cannot decode.
    pub(crate) fn undecodable_class(&self) -> Option<&str> {
        if self.kind() == Kind::Unknown {
            return Some(&self.class);
        }
        self.nested.iter().find_map(|n| n.undecodable_class())
    }

    /// Whether this is a list serializer.
    pub(crate) fn is_list(&self) -> bool {
        self.kind() == Kind::List
    }

    /// Whether this is a map serializer.
    pub(crate) fn is_map(&self) -> bool {
        self.kind() == Kind::Map
    }

    /// The nested snapshot `i` (itself when there is none).
    pub(crate) fn nested_at(&self, i: usize) -> &SerializerSnapshot {
        self.child(i)
    }

    /// Reads one value as this serializer wrote it.
    pub(crate) fn read_value(&self, r: &mut Input<'_>) -> Result<Value> {
        self.value(r)
    }

    fn value(&self, r: &mut Input<'_>) -> Result<Value> {
        Ok(match self.kind() {
            Kind::Long => json!(r.i64("Long value")?),
            Kind::Int => json!(r.i32("Integer value")?),
            Kind::Double => {
                let bits = r.i64("Double value")?;
                let d = f64::from_bits(bits as u64);
                serde_json::Number::from_f64(d).map_or_else(|| json!(d.to_string()), Value::Number)
            }
            Kind::Boolean => json!(r.java_bool("Boolean value")?),
            Kind::String => read_string(r)?.map_or(Value::Null, Value::String),
            Kind::Bytes => json!({ "hex": hex(r.int_len_bytes("byte[] value")?) }),
            Kind::Void => {
                r.u8("VoidNamespace")?;
                Value::Null
            }
            Kind::List => {
                let n = r.count("list size", 1)?;
                let elem = self.child(0);
                let mut out = Vec::new();
                for _ in 0..n {
                    out.push(elem.value(r)?);
                }
                Value::Array(out)
            }
            Kind::Map => {
                let n = r.count("map size", 2)?;
                let (ks, vs) = (self.child(0), self.child(1));
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = ks.value(r)?;
                    let null = r.java_bool("map value null flag")?;
                    let v = if null { Value::Null } else { vs.value(r)? };
                    pairs.push((k, v));
                }
                map_json(pairs)
            }
            Kind::Timer => {
                let ts = r.i64("timer timestamp")? ^ i64::MIN;
                let key = self.child(0).value(r)?;
                let namespace = self.child(1).value(r)?;
                json!({ "timestamp": ts, "key": key, "namespace": namespace })
            }
            Kind::Ttl => {
                let ts = self.child(0).value(r)?;
                let value = self.child(1).value(r)?;
                json!({ "last_access_timestamp": ts, "value": value })
            }
            Kind::Unknown => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "values of serializer {} cannot be decoded (Flink records no length)",
                        self.class
                    ),
                )
                .with_context("serializer", &self.class)
                .with_context("offset", r.offset()));
            }
        })
    }
}

/// A map as a JSON object when its keys are distinct strings, else a list of `[key, value]`.
pub(crate) fn map_json(pairs: Vec<(Value, Value)>) -> Value {
    if pairs.iter().all(|(k, _)| k.is_string()) {
        let mut o = Map::new();
        for (k, v) in &pairs {
            if let Value::String(s) = k {
                o.insert(s.clone(), v.clone());
            }
        }
        if o.len() == pairs.len() {
            return Value::Object(o);
        }
    }
    Value::Array(pairs.into_iter().map(|(k, v)| json!([k, v])).collect())
}

fn expect(r: &mut Input<'_>, want: i32, field: &'static str) -> Result<()> {
    let at = r.offset();
    let v = r.i32(field)?;
    if v == want {
        Ok(())
    } else {
        Err(corrupt(
            format!("{field} {v} at offset {at} is not {want}"),
            field,
            at,
        )
        .with_context("value", v))
    }
}

/// Flink's variable-length int of `StringValue` (7 bits a byte, low bits first).
fn varint(r: &mut Input<'_>, field: &'static str) -> Result<u32> {
    let at = r.offset();
    let mut v: u32 = 0;
    for shift in [0u32, 7, 14, 21, 28] {
        let b = r.u8(field)?;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(corrupt(
        format!("{field} at offset {at} is longer than 5 bytes"),
        field,
        at,
    ))
}

/// `StringValue.readString`: a varint of length + 1 (0: null), then each UTF-16 unit as a
/// varint.
fn read_string(r: &mut Input<'_>) -> Result<Option<String>> {
    let at = r.offset();
    let len = varint(r, "string length")?;
    let Some(n) = len.checked_sub(1) else {
        return Ok(None);
    };
    let n = n as usize;
    if n > r.remaining() {
        return Err(corrupt(
            format!(
                "string length {n} at offset {at} exceeds the {} bytes that remain",
                r.remaining()
            ),
            "string length",
            at,
        )
        .with_context("value", n));
    }
    let mut units = Vec::with_capacity(n);
    for _ in 0..n {
        let c = varint(r, "string character")?;
        // Java keeps the low 16 bits of the decoded character.
        units.push(c as u16);
    }
    String::from_utf16(&units).map(Some).map_err(|_| {
        corrupt(
            format!("string at offset {at} holds an unpaired UTF-16 surrogate"),
            "string",
            at,
        )
    })
}

/// Lowercase hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(D[usize::from(b >> 4)]));
        s.push(char::from(D[usize::from(b & 15)]));
    }
    s
}
