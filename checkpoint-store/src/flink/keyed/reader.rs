//! The header and the two key-group layouts (see the [module docs](super)).

use cornerstone_backend_api::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use super::serializers::{SerializerSnapshot, map_json};
use super::{KeyGroupsFormat, KeyedEntry, KeyedHeader, KeyedRead, KeyedState, StateMetaInfo};
use crate::flink::KeyGroupsHandle;
use crate::flink::input::{Input, corrupt};

/// `FullSnapshotUtil.END_OF_KEY_GROUP_MARK`.
const END_OF_KEY_GROUP: u16 = 0xffff;
/// `FullSnapshotUtil.FIRST_BIT_IN_BYTE_MASK`: a short follows this key/value pair.
const META_DATA_FOLLOWS: u8 = 0x80;
/// `BackendStateType` by ordinal.
const BACKEND_TYPES: [&str; 4] = ["KEY_VALUE", "OPERATOR", "BROADCAST", "PRIORITY_QUEUE"];

/// Reads the `KeyedBackendSerializationProxy`.
pub(super) fn header(r: &mut Input<'_>) -> Result<KeyedHeader> {
    let at = r.offset();
    let version = r.i32("serialization proxy version")?;
    if version != 6 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("KeyedBackendSerializationProxy version {version} is not 6 (Flink 1.7+)"),
        )
        .with_context("field", "serialization proxy version")
        .with_context("offset", at)
        .with_context("value", version));
    }
    let compression = r.java_bool("key-group compression")?;
    let key_serializer = SerializerSnapshot::read_proxied(r)?;
    let count_at = r.offset();
    let n = i32::from(i16::from_be_bytes([
        r.u8("state count")?,
        r.u8("state count")?,
    ]));
    let n = r.check_count(n, count_at, "state count", 14)?;
    let mut states = Vec::with_capacity(n);
    for _ in 0..n {
        states.push(state_meta(r)?);
    }
    Ok(KeyedHeader {
        version,
        compression,
        key_serializer,
        states,
    })
}

fn state_meta(r: &mut Input<'_>) -> Result<StateMetaInfo> {
    let name = r.utf("state name")?;
    let at = r.offset();
    let t = r.i32("backend state type")?;
    let backend_type = usize::try_from(t)
        .ok()
        .and_then(|i| BACKEND_TYPES.get(i))
        .ok_or_else(|| {
            corrupt(
                format!("backend state type {t} of state {name:?} at offset {at} is not 0 to 3"),
                "backend state type",
                at,
            )
            .with_context("value", t)
        })?;
    let n = r.count("option count", 4)?;
    let mut options = Vec::with_capacity(n);
    for _ in 0..n {
        options.push((r.utf("option key")?, r.utf("option value")?));
    }
    let n = r.count("serializer count", 16)?;
    let mut serializers = Vec::with_capacity(n);
    for _ in 0..n {
        let role = r.utf("serializer role")?;
        let snapshot = SerializerSnapshot::read_proxied(r).map_err(|e| {
            e.with_context("state", &name)
                .with_context("serializer_role", &role)
        })?;
        serializers.push((role, snapshot));
    }
    Ok(StateMetaInfo {
        name,
        backend_type: (*backend_type).to_owned(),
        options,
        serializers,
    })
}

/// Reads the header and the key groups.
pub(super) fn read(
    bytes: &[u8],
    kg: &KeyGroupsHandle,
    canonical: bool,
    read: &KeyedRead<'_>,
) -> Result<KeyedState> {
    let header = header(&mut Input::new(bytes))?;
    if header.compression {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "compressed key groups (snappy) are not decoded",
        ));
    }
    let heap = !canonical && is_heap(bytes, kg);
    let mut entries = Vec::new();
    for (i, &offset) in kg.offsets.iter().enumerate() {
        let group = kg.key_groups.start.saturating_add(i as u32);
        if read.key_group.is_some_and(|only| only != group) {
            continue;
        }
        let in_group = |e: Error| e.with_context("key_group", group);
        if !heap && offset == 0 {
            continue; // An empty key group of the canonical format.
        }
        let start = usize::try_from(offset)
            .ok()
            .filter(|&o| o <= bytes.len())
            .ok_or_else(|| {
                corrupt(
                    format!(
                        "key group {group} offset {offset} is outside the stream of {} bytes",
                        bytes.len()
                    ),
                    "key group offset",
                    0,
                )
                .with_context("value", offset)
            })
            .map_err(in_group)?;
        let mut r = Input::part(bytes.get(start..).unwrap_or(&[]), start);
        if heap {
            heap_group(&mut r, &header, group, &mut entries).map_err(in_group)?;
        } else {
            canonical_group(&mut r, &header, group, read, &mut entries).map_err(in_group)?;
        }
    }
    if !heap {
        for e in &mut entries {
            let is_map = header
                .states
                .get(e.state)
                .is_some_and(|s| s.kind() == "map");
            if is_map && let Value::Array(pairs) = &mut e.value {
                let pairs = std::mem::take(pairs)
                    .into_iter()
                    .map(|p| match p {
                        Value::Array(mut kv) if kv.len() == 2 => {
                            let v = kv.pop().unwrap_or(Value::Null);
                            let k = kv.pop().unwrap_or(Value::Null);
                            (k, v)
                        }
                        other => (other, Value::Null),
                    })
                    .collect();
                e.value = map_json(pairs);
            }
        }
    }
    Ok(KeyedState {
        format: if heap {
            KeyGroupsFormat::Heap
        } else {
            KeyGroupsFormat::Canonical
        },
        header,
        entries,
    })
}

/// Whether a `KEY_GROUPS_HANDLE(_V2)` stream is in the heap layout: every key group has an
/// offset (the canonical writer leaves empty ones at 0) and the first starts with its index.
fn is_heap(bytes: &[u8], kg: &KeyGroupsHandle) -> bool {
    if kg.offsets.contains(&0) {
        return false;
    }
    let Some(first) = kg.offsets.first().and_then(|&o| usize::try_from(o).ok()) else {
        return true;
    };
    let mut r = Input::part(bytes.get(first..).unwrap_or(&[]), first);
    r.i32("key group").ok() == i32::try_from(kg.key_groups.start).ok()
}

fn unsupported(state: &StateMetaInfo, s: &SerializerSnapshot, at: usize) -> Error {
    let class = s.undecodable_class().unwrap_or(&s.class).to_owned();
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "state {:?} has entries whose serializer {class} this reader cannot decode (Flink \
             records no lengths, so the key group cannot be read on)",
            state.name
        ),
    )
    .with_context("state", &state.name)
    .with_context("serializer", class)
    .with_context("offset", at)
}

/// The serializer snapshot with `role`, or a corrupt-error naming it.
fn role<'h>(
    state: &'h StateMetaInfo,
    role: &'static str,
    at: usize,
) -> Result<&'h SerializerSnapshot> {
    state.serializer(role).ok_or_else(|| {
        corrupt(
            format!("state {:?} has no {role} in the header", state.name),
            "state serializers",
            at,
        )
        .with_context("state", &state.name)
    })
}

fn state_at<'h>(header: &'h KeyedHeader, r: &mut Input<'_>) -> Result<(usize, &'h StateMetaInfo)> {
    let at = r.offset();
    let id = usize::from(u16::from_be_bytes([
        r.u8("state index")?,
        r.u8("state index")?,
    ]));
    header.states.get(id).map(|s| (id, s)).ok_or_else(|| {
        corrupt(
            format!(
                "state index {id} at offset {at} is not below the {} states of the header",
                header.states.len()
            ),
            "state index",
            at,
        )
        .with_context("value", id)
    })
}

/// One key group of the heap layout.
fn heap_group(
    r: &mut Input<'_>,
    header: &KeyedHeader,
    group: u32,
    out: &mut Vec<KeyedEntry>,
) -> Result<()> {
    let at = r.offset();
    let read_group = r.i32("key group")?;
    if i64::from(read_group) != i64::from(group) {
        return Err(corrupt(
            format!("key group {read_group} at offset {at} is not the expected {group}"),
            "key group",
            at,
        )
        .with_context("value", read_group));
    }
    for _ in 0..header.states.len() {
        let (id, state) = state_at(header, r)?;
        let at = r.offset();
        let n = r.count("entry count", 1)?;
        if n == 0 {
            continue;
        }
        let in_state = |e: Error| e.with_context("state", &state.name);
        if state.backend_type == "PRIORITY_QUEUE" {
            let ser = role(state, "VALUE_SERIALIZER", at)?;
            if !ser.is_decodable() {
                return Err(unsupported(state, ser, at));
            }
            for _ in 0..n {
                let timer = ser.read_value(r).map_err(in_state)?;
                out.push(timer_entry(id, group, timer));
            }
            continue;
        }
        let ns = role(state, "NAMESPACE_SERIALIZER", at)?;
        let value = role(state, "VALUE_SERIALIZER", at)?;
        for s in [ns, &header.key_serializer, value] {
            if !s.is_decodable() {
                return Err(unsupported(state, s, at));
            }
        }
        for _ in 0..n {
            let namespace = ns.read_value(r).map_err(in_state)?;
            let key = header.key_serializer.read_value(r).map_err(in_state)?;
            let value = value.read_value(r).map_err(in_state)?;
            out.push(KeyedEntry {
                state: id,
                key_group: group,
                key,
                namespace,
                value,
            });
        }
    }
    Ok(())
}

fn timer_entry(state: usize, key_group: u32, timer: Value) -> KeyedEntry {
    let field = |k: &str| timer.get(k).cloned().unwrap_or(Value::Null);
    KeyedEntry {
        state,
        key_group,
        key: field("key"),
        namespace: field("namespace"),
        value: field("timestamp"),
    }
}

/// One key group of the canonical layout.
fn canonical_group(
    r: &mut Input<'_>,
    header: &KeyedHeader,
    group: u32,
    read: &KeyedRead<'_>,
    out: &mut Vec<KeyedEntry>,
) -> Result<()> {
    let prefix_bytes = if read.max_parallelism > 128 { 2 } else { 1 };
    let (mut id, mut state) = state_at(header, r)?;
    loop {
        let key_at = r.offset().saturating_add(4);
        let key = r.int_len_bytes("key")?;
        let value_at = r.offset().saturating_add(4);
        let value = r.int_len_bytes("value")?;
        let Some((&first, rest)) = key.split_first() else {
            return Err(corrupt(
                format!("key at offset {key_at} is empty"),
                "key",
                key_at,
            ));
        };
        let follows = first & META_DATA_FOLLOWS != 0;
        let mut key_bytes = Vec::with_capacity(key.len());
        key_bytes.push(first & !META_DATA_FOLLOWS);
        key_bytes.extend_from_slice(rest);
        let entry = canonical_entry(header, id, state, group, prefix_bytes, &key_bytes, key_at)
            .and_then(|e| canonical_value(state, e, value, value_at))
            .map_err(|e| e.with_context("state", &state.name))?;
        merge(out, entry);
        if follows {
            let at = r.offset();
            let mark = u16::from_be_bytes([r.u8("state index")?, r.u8("state index")?]);
            if mark == END_OF_KEY_GROUP {
                return Ok(());
            }
            (id, state) = header
                .states
                .get(usize::from(mark))
                .map(|s| (usize::from(mark), s))
                .ok_or_else(|| {
                    corrupt(
                        format!(
                            "state index {mark} at offset {at} is not below the {} states",
                            header.states.len()
                        ),
                        "state index",
                        at,
                    )
                    .with_context("value", mark)
                })?;
        }
    }
}

/// Appends `entry`, merging the entries of one map into one.
fn merge(out: &mut Vec<KeyedEntry>, entry: (KeyedEntry, bool)) {
    let (entry, is_map) = entry;
    if is_map
        && let Some(last) = out.last_mut()
        && last.state == entry.state
        && last.key_group == entry.key_group
        && last.key == entry.key
        && last.namespace == entry.namespace
        && let (Value::Array(pairs), Value::Array(new)) = (&mut last.value, entry.value.clone())
    {
        pairs.extend(new);
        return;
    }
    out.push(entry);
}

/// Decodes a canonical key: key group prefix, key, namespace and (map) user key.
fn canonical_entry(
    header: &KeyedHeader,
    id: usize,
    state: &StateMetaInfo,
    group: u32,
    prefix_bytes: usize,
    key: &[u8],
    at: usize,
) -> Result<(KeyedEntry, Option<Value>)> {
    let mut k = Input::part(key, at);
    let prefix = k.take(prefix_bytes, "key group prefix")?;
    let read_group = prefix.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b));
    if read_group != group {
        return Err(corrupt(
            format!("key at offset {at} is of key group {read_group}, not {group}"),
            "key group prefix",
            at,
        )
        .with_context("value", read_group));
    }
    if state.backend_type == "PRIORITY_QUEUE" {
        let ser = role(state, "VALUE_SERIALIZER", at)?;
        if !ser.is_decodable() {
            return Err(unsupported(state, ser, at));
        }
        let timer = ser.read_value(&mut k)?;
        all_read(&k, "timer")?;
        return Ok((timer_entry(id, group, timer), None));
    }
    let ks = &header.key_serializer;
    let ns = role(state, "NAMESPACE_SERIALIZER", at)?;
    let vs = role(state, "VALUE_SERIALIZER", at)?;
    for s in [ks, ns] {
        if !s.is_decodable() {
            return Err(unsupported(state, s, at));
        }
    }
    let before = k.offset();
    let key_value = ks.read_value(&mut k)?;
    let ambiguous = !ks.fixed_length();
    if ambiguous {
        let len = k.offset().saturating_sub(before);
        skip_length(&mut k, len)?;
    }
    let before = k.offset();
    let namespace = ns.read_value(&mut k)?;
    if ambiguous && !ns.fixed_length() {
        let len = k.offset().saturating_sub(before);
        skip_length(&mut k, len)?;
    }
    let user_key = if vs.is_map() {
        let uk = vs.nested_at(0);
        if !uk.is_decodable() {
            return Err(unsupported(state, uk, at));
        }
        Some(uk.read_value(&mut k)?)
    } else {
        None
    };
    all_read(&k, "key")?;
    Ok((
        KeyedEntry {
            state: id,
            key_group: group,
            key: key_value,
            namespace,
            value: Value::Null,
        },
        user_key,
    ))
}

/// Decodes a canonical value into the entry.
fn canonical_value(
    state: &StateMetaInfo,
    (mut entry, user_key): (KeyedEntry, Option<Value>),
    value: &[u8],
    at: usize,
) -> Result<(KeyedEntry, bool)> {
    let mut v = Input::part(value, at);
    if state.backend_type == "PRIORITY_QUEUE" {
        all_read(&v, "timer value")?;
        return Ok((entry, false));
    }
    let vs = role(state, "VALUE_SERIALIZER", at)?;
    if !vs.is_decodable() {
        return Err(unsupported(state, vs, at));
    }
    if let Some(uk) = user_key {
        let null = v.java_bool("map value null flag")?;
        let mv = if null {
            Value::Null
        } else {
            vs.nested_at(1).read_value(&mut v)?
        };
        all_read(&v, "map value")?;
        entry.value = json!([[uk, mv]]);
        return Ok((entry, true));
    }
    if vs.is_list() {
        // `ListDelimitedSerializer`: elements separated by ','.
        let elem = vs.nested_at(0);
        let mut items = Vec::new();
        while v.remaining() > 0 {
            if !items.is_empty() {
                let d_at = v.offset();
                let d = v.u8("list delimiter")?;
                if d != b',' {
                    return Err(corrupt(
                        format!("list delimiter {d:#04x} at offset {d_at} is not ','"),
                        "list delimiter",
                        d_at,
                    ));
                }
            }
            items.push(elem.read_value(&mut v)?);
        }
        entry.value = Value::Array(items);
        return Ok((entry, false));
    }
    entry.value = vs.read_value(&mut v)?;
    all_read(&v, "value")?;
    Ok((entry, false))
}

/// `CompositeKeySerializationUtils.readVariableIntBytes`: one byte per 8 bits of `len`.
fn skip_length(k: &mut Input<'_>, mut len: usize) -> Result<()> {
    loop {
        k.u8("serialized length")?;
        len >>= 8;
        if len == 0 {
            return Ok(());
        }
    }
}

fn all_read(r: &Input<'_>, what: &'static str) -> Result<()> {
    if r.remaining() == 0 {
        Ok(())
    } else {
        Err(corrupt(
            format!(
                "{what} has {} bytes left over at offset {}",
                r.remaining(),
                r.offset()
            ),
            what,
            r.offset(),
        ))
    }
}
