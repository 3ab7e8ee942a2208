//! Decoding of the state handles, as `MetadataV2V3SerializerBase` reads them (channel state
//! handles: [`super::channel`]).

use std::collections::HashSet;

use cornerstone_backend_api::Result;

use super::input::{Input, corrupt};
use super::model::{
    ChangelogBytesHandle, ChangelogFileHandle, ChangelogHandle, DistributionMode,
    HandleAndLocalPath, IncrementalHandle, InlineBytes, KeyGroupRange, KeyGroupsHandle,
    KeyedStateHandle, NamedOperatorState, OffsetHandle, OperatorStateHandle, SegmentScope,
    StateChange, StreamStateHandle,
};
use super::{MAX_NESTING, type_code_name};

/// The smallest encoding of a stream handle: its type code (`NULL_HANDLE`).
const MIN_STREAM_HANDLE: usize = 1;
/// The smallest encoding of a local path and its handle: an empty string, a type code.
const MIN_HANDLE_AND_PATH: usize = 2 + MIN_STREAM_HANDLE;
/// The smallest encoding of a named operator state: an empty name, the mode, no offsets.
const MIN_NAMED_STATE: usize = 2 + 1 + 4;

/// What is wrong with a type code at `at`: unknown, or known but not allowed where it is.
fn bad_code(
    code: u8,
    kind: &'static str,
    field: &'static str,
    at: usize,
) -> cornerstone_backend_api::Error {
    let e = match type_code_name(code) {
        Some(name) => corrupt(
            format!("{field}: type code {code} ({name}) at offset {at} is not a {kind}"),
            field,
            at,
        )
        .with_context("type_name", name),
        None => corrupt(
            format!("{field}: unknown {kind} type code {code} (0x{code:02x}) at offset {at}"),
            field,
            at,
        ),
    };
    e.with_context("type_code", code)
}

/// Refuses nesting deeper than [`MAX_NESTING`] (Flink would overflow its stack).
fn nest(depth: u32, field: &'static str, at: usize) -> Result<u32> {
    if depth >= MAX_NESTING {
        return Err(corrupt(
            format!("{field} at offset {at} is nested deeper than {MAX_NESTING} handles"),
            field,
            at,
        )
        .with_context("max_nesting", MAX_NESTING));
    }
    Ok(depth + 1)
}

/// A stream handle, or `None` for `NULL_HANDLE`.
pub(crate) fn stream_handle(
    r: &mut Input<'_>,
    field: &'static str,
    depth: u32,
) -> Result<Option<StreamStateHandle>> {
    let at = r.offset();
    let code = r.u8(field)?;
    let handle = match code {
        0 => return Ok(None),
        1 => {
            let name = r.utf("byte stream handle name")?;
            let data = r.int_len_bytes("byte stream handle data")?;
            StreamStateHandle::ByteStream {
                name,
                data: InlineBytes(data.to_vec()),
            }
        }
        2 => {
            let size = r.size("file handle size")?;
            let path = r.utf("file handle path")?;
            StreamStateHandle::File { path, size }
        }
        3 => {
            let depth = nest(depth, field, at)?;
            StreamStateHandle::KeyGroups(Box::new(key_groups(r, None, depth)?))
        }
        6 => {
            let relative_path = r.utf("relative file handle path")?;
            let size = r.size("relative file handle size")?;
            StreamStateHandle::Relative {
                relative_path,
                size,
            }
        }
        15 => {
            let start_pos = r.size("segment start position")?;
            let size = r.size("segment size")?;
            let scope_at = r.offset();
            let scope = match r.i32("segment scope")? {
                0 => SegmentScope::Exclusive,
                1 => SegmentScope::Shared,
                other => {
                    return Err(corrupt(
                        format!(
                            "segment scope ordinal {other} at offset {scope_at} is neither \
                             EXCLUSIVE (0) nor SHARED (1)"
                        ),
                        "segment scope",
                        scope_at,
                    )
                    .with_context("value", other));
                }
            };
            let physical_path = r.utf("segment physical file path")?;
            let logical_file_id = r.utf("segment logical file id")?;
            StreamStateHandle::Segment {
                physical_path,
                start_pos,
                size,
                scope,
                logical_file_id,
            }
        }
        16 => StreamStateHandle::EmptySegment,
        _ => return Err(bad_code(code, "stream state handle", field, at)),
    };
    Ok(Some(handle))
}

/// A stream handle that Flink requires (a null one would fail its constructors).
pub(crate) fn required_stream(
    r: &mut Input<'_>,
    field: &'static str,
    depth: u32,
) -> Result<StreamStateHandle> {
    let at = r.offset();
    stream_handle(r, field, depth)?.ok_or_else(|| {
        corrupt(
            format!(
                "{field} at offset {at} is a null handle (NULL_HANDLE, 0), which Flink refuses"
            ),
            field,
            at,
        )
    })
}

/// A key-group range: the first key group and the number of key groups (Java `int`s).
fn key_group_range(r: &mut Input<'_>) -> Result<KeyGroupRange> {
    let at = r.offset();
    let start = r.i32("first key group")?;
    let count = r.i32("number of key groups")?;
    let fits = u32::try_from(start)
        .ok()
        .zip(u32::try_from(count).ok())
        .filter(|&(s, c)| {
            // The last key group (start + count - 1) must be a Java int.
            u64::from(s) + u64::from(c) <= 1u64 << 31
        });
    match fits {
        Some((start, count)) => Ok(KeyGroupRange { start, count }),
        None => Err(corrupt(
            format!(
                "key group range at offset {at} (first {start}, count {count}) is not a range \
                 of key groups 0..=2147483647"
            ),
            "key group range",
            at,
        )
        .with_context("start", start)
        .with_context("count", count)),
    }
}

/// `count` Java `long`s.
fn longs(r: &mut Input<'_>, count: usize, field: &'static str) -> Result<Vec<i64>> {
    let at = r.offset();
    let needed = (count as u64).saturating_mul(8);
    if needed > r.remaining() as u64 {
        return Err(corrupt(
            format!(
                "{field}: {count} offsets need {needed} bytes, {} remain at offset {at}",
                r.remaining()
            ),
            field,
            at,
        )
        .with_context("value", count)
        .with_context("needed", needed)
        .with_context("remaining", r.remaining()));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(r.i64(field)?);
    }
    Ok(out)
}

/// A count of `long`s and the `long`s.
pub(crate) fn counted_longs(r: &mut Input<'_>, field: &'static str) -> Result<Vec<i64>> {
    let n = r.count(field, 8)?;
    longs(r, n, field)
}

/// The body of a key-groups handle (after its type code); `state_handle_id` reads the id of
/// `KEY_GROUPS_HANDLE_V2`.
fn key_groups(
    r: &mut Input<'_>,
    state_handle_id: Option<&'static str>,
    depth: u32,
) -> Result<KeyGroupsHandle> {
    let key_groups = key_group_range(r)?;
    let offsets = longs(r, key_groups.count as usize, "key group offsets")?;
    let stream = required_stream(r, "key groups stream handle", depth)?;
    let state_handle_id = match state_handle_id {
        Some(field) => Some(r.utf(field)?),
        None => None,
    };
    Ok(KeyGroupsHandle {
        key_groups,
        offsets,
        stream,
        state_handle_id,
    })
}

/// A list of local paths and their (non-null) stream handles.
fn handle_and_path_list(
    r: &mut Input<'_>,
    field: &'static str,
    depth: u32,
) -> Result<Vec<HandleAndLocalPath>> {
    let n = r.count(field, MIN_HANDLE_AND_PATH)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let local_path = r.utf("incremental state local path")?;
        let handle = required_stream(r, "incremental state file handle", depth)?;
        out.push(HandleAndLocalPath { local_path, handle });
    }
    Ok(out)
}

/// The body of an incremental handle (codes 5 and 11).
fn incremental(r: &mut Input<'_>, v2: bool, depth: u32) -> Result<IncrementalHandle> {
    let checkpoint_id = r.i64("incremental handle checkpoint id")?;
    let backend_id = r.utf("incremental handle backend id")?;
    let key_groups = key_group_range(r)?;
    let checkpointed_size = if v2 {
        Some(r.i64("incremental handle checkpointed size")?)
    } else {
        None
    };
    let meta = required_stream(r, "incremental handle meta data stream", depth)?;
    let shared = handle_and_path_list(r, "shared state count", depth)?;
    let private = handle_and_path_list(r, "private state count", depth)?;
    let state_handle_id = if v2 {
        Some(r.utf("incremental handle state handle id")?)
    } else {
        None
    };
    Ok(IncrementalHandle {
        checkpoint_id,
        backend_id,
        key_groups,
        checkpointed_size,
        meta,
        shared,
        private,
        state_handle_id,
    })
}

/// The smallest encoding of a keyed handle other than `NULL_HANDLE`: a key-groups handle
/// of no key groups around an empty segment (code, range, stream code).
const MIN_NON_NULL_KEYED_HANDLE: usize = 1 + 8 + 1;

/// The capacity for the non-null ones of `n` keyed handles (null ones take 1 byte and are
/// dropped): no more than the bytes left can hold, so the vector never grows.
fn non_null_capacity(n: usize, r: &Input<'_>) -> usize {
    n.min(r.remaining() / MIN_NON_NULL_KEYED_HANDLE)
}

/// The body of a changelog backend handle (codes 8 and 14).
fn changelog(r: &mut Input<'_>, v2: bool, depth: u32) -> Result<ChangelogHandle> {
    let key_groups = key_group_range(r)?;
    let checkpointed_size = r.i64("changelog handle checkpointed size")?;
    let n = r.count("changelog materialized handle count", 1)?;
    let mut materialized = Vec::with_capacity(non_null_capacity(n, r));
    for _ in 0..n {
        // Flink drops (and logs) null materialized handles.
        if let Some(h) = keyed_handle(r, "changelog materialized handle", depth)? {
            materialized.push(h);
        }
    }
    let n = r.count("changelog non-materialized handle count", 1)?;
    let mut non_materialized = Vec::with_capacity(non_null_capacity(n, r));
    for _ in 0..n {
        let at = r.offset();
        match keyed_handle(r, "changelog non-materialized handle", depth)? {
            None => {}
            Some(
                h @ (KeyedStateHandle::ChangelogByteIncrement(_)
                | KeyedStateHandle::ChangelogFileIncrement(_)
                | KeyedStateHandle::ChangelogFileIncrementV2(_)),
            ) => non_materialized.push(h),
            Some(other) => {
                return Err(corrupt(
                    format!(
                        "changelog non-materialized handle at offset {at} is a {} ({}), not a \
                         changelog increment handle",
                        other.type_name(),
                        other.type_code()
                    ),
                    "changelog non-materialized handle",
                    at,
                )
                .with_context("type_code", other.type_code()));
            }
        }
    }
    let materialization_id = r.i64("changelog materialization id")?;
    let checkpoint_id = if v2 {
        Some(r.i64("changelog checkpoint id")?)
    } else {
        None
    };
    let state_handle_id = r.utf("changelog state handle id")?;
    Ok(ChangelogHandle {
        key_groups,
        checkpointed_size,
        materialized,
        non_materialized,
        materialization_id,
        checkpoint_id,
        state_handle_id,
    })
}

/// The body of an inline changelog increment (code 9).
fn changelog_bytes(r: &mut Input<'_>) -> Result<ChangelogBytesHandle> {
    let key_groups = key_group_range(r)?;
    let from = r.i64("changelog sequence number from")?;
    let to = r.i64("changelog sequence number to")?;
    let n = r.count("changelog change count", 8)?;
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        let key_group = r.i32("changelog change key group")?;
        let data = r.int_len_bytes("changelog change bytes")?;
        changes.push(StateChange {
            key_group,
            data: InlineBytes(data.to_vec()),
        });
    }
    let state_handle_id = r.utf("changelog state handle id")?;
    Ok(ChangelogBytesHandle {
        key_groups,
        from,
        to,
        changes,
        state_handle_id,
    })
}

/// The body of a changelog file increment (codes 10 and 13).
fn changelog_file(r: &mut Input<'_>, v2: bool, depth: u32) -> Result<ChangelogFileHandle> {
    let key_groups = key_group_range(r)?;
    let n = r.count("changelog stream handle count", 8 + MIN_STREAM_HANDLE)?;
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let offset = r.i64("changelog stream offset")?;
        let handle = required_stream(r, "changelog stream handle", depth)?;
        handles.push(OffsetHandle { offset, handle });
    }
    let state_size = r.i64("changelog state size")?;
    let checkpointed_size = r.i64("changelog checkpointed size")?;
    let state_handle_id = r.utf("changelog state handle id")?;
    let storage_identifier = if v2 {
        Some(r.utf("changelog storage identifier")?)
    } else {
        None
    };
    Ok(ChangelogFileHandle {
        key_groups,
        handles,
        state_size,
        checkpointed_size,
        state_handle_id,
        storage_identifier,
    })
}

/// A keyed state handle, or `None` for `NULL_HANDLE`.
pub(crate) fn keyed_handle(
    r: &mut Input<'_>,
    field: &'static str,
    depth: u32,
) -> Result<Option<KeyedStateHandle>> {
    let at = r.offset();
    let code = r.u8(field)?;
    let handle = match code {
        0 => return Ok(None),
        3 => KeyedStateHandle::KeyGroups(key_groups(r, None, depth)?),
        12 => {
            KeyedStateHandle::KeyGroupsV2(key_groups(r, Some("key groups state handle id"), depth)?)
        }
        7 => KeyedStateHandle::SavepointKeyGroups(key_groups(r, None, depth)?),
        5 => KeyedStateHandle::Incremental(incremental(r, false, depth)?),
        11 => KeyedStateHandle::IncrementalV2(incremental(r, true, depth)?),
        8 => KeyedStateHandle::Changelog(changelog(r, false, nest(depth, field, at)?)?),
        14 => KeyedStateHandle::ChangelogV2(changelog(r, true, nest(depth, field, at)?)?),
        9 => KeyedStateHandle::ChangelogByteIncrement(changelog_bytes(r)?),
        10 => KeyedStateHandle::ChangelogFileIncrement(changelog_file(r, false, depth)?),
        13 => KeyedStateHandle::ChangelogFileIncrementV2(changelog_file(r, true, depth)?),
        _ => return Err(bad_code(code, "keyed state handle", field, at)),
    };
    Ok(Some(handle))
}

/// The distribution mode of a named operator state (a byte: the enum ordinal).
fn distribution_mode(r: &mut Input<'_>) -> Result<DistributionMode> {
    let at = r.offset();
    match r.u8("operator state distribution mode")? {
        0 => Ok(DistributionMode::SplitDistribute),
        1 => Ok(DistributionMode::Union),
        2 => Ok(DistributionMode::Broadcast),
        other => Err(corrupt(
            format!(
                "operator state distribution mode {other} at offset {at} is not \
                 SPLIT_DISTRIBUTE (0), UNION (1) or BROADCAST (2)"
            ),
            "operator state distribution mode",
            at,
        )
        .with_context("value", other)),
    }
}

/// An operator state handle, or `None` for `NULL_HANDLE`.
pub(crate) fn operator_handle(
    r: &mut Input<'_>,
    field: &'static str,
    depth: u32,
) -> Result<Option<OperatorStateHandle>> {
    let at = r.offset();
    let code = r.u8(field)?;
    if code == 0 {
        return Ok(None);
    }
    if code != 4 && code != 17 {
        return Err(bad_code(code, "operator state handle", field, at));
    }
    let n = r.count("operator state count", MIN_NAMED_STATE)?;
    let mut states = Vec::with_capacity(n);
    let mut names = HashSet::with_capacity(n);
    for _ in 0..n {
        let name_at = r.offset();
        let name = r.utf("operator state name")?;
        let mode = distribution_mode(r)?;
        let offsets = counted_longs(r, "operator state offset count")?;
        if !names.insert(name.clone()) {
            return Err(corrupt(
                format!("operator state name {name:?} at offset {name_at} appears twice"),
                "operator state name",
                name_at,
            ));
        }
        states.push(NamedOperatorState {
            name,
            mode,
            offsets,
        });
    }
    if code == 4 {
        let stream = required_stream(r, "operator state stream handle", depth)?;
        return Ok(Some(OperatorStateHandle::Partitionable { states, stream }));
    }
    let task_owned_dir = r.utf("file merging task-owned directory")?;
    let shared_dir = r.utf("file merging shared directory")?;
    let empty = r.java_bool("file merging empty flag")?;
    let stream_at = r.offset();
    let stream = required_stream(r, "file merging operator state stream handle", depth)?;
    if !matches!(
        stream,
        StreamStateHandle::Segment { .. } | StreamStateHandle::EmptySegment
    ) {
        return Err(corrupt(
            format!(
                "file merging operator state stream handle at offset {stream_at} has type code \
                 {} where Flink requires a segment (15 or 16)",
                stream.type_code()
            ),
            "file merging operator state stream handle",
            stream_at,
        )
        .with_context("type_code", stream.type_code()));
    }
    Ok(Some(OperatorStateHandle::FileMerging {
        states,
        task_owned_dir,
        shared_dir,
        empty,
        stream,
    }))
}
