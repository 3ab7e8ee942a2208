//! The layout above the handles: header, master states, operators and subtasks, as
//! `Checkpoints.loadCheckpointMetadata`, `MetadataV2V3SerializerBase`, `MetadataV3Serializer`
//! and the later serializers read them.

use std::collections::HashSet;

use cornerstone_backend_api::{Error, ErrorKind, Result};

use super::channel::{MIN_CHANNEL_HANDLE, input_handle, output_handle};
use super::handles::{keyed_handle, operator_handle, stream_handle};
use super::input::{Input, corrupt};
use super::model::{
    FlinkMetadata, InlineBytes, JavaSerialized, MasterState, OperatorState, StreamStateHandle,
    SubtaskState, hex,
};
use super::{MAGIC, SUPPORTED_VERSIONS};

/// `MetadataV2V3SerializerBase.MASTER_STATE_MAGIC_NUMBER`.
const MASTER_STATE_MAGIC: u32 = 0xc96b_1696;
/// The header of a Java serialization stream (`STREAM_MAGIC`, `STREAM_VERSION`).
const JAVA_STREAM_HEADER: [u8; 4] = [0xac, 0xed, 0x00, 0x05];
/// The smallest master state: magic, length and a payload of version, empty name, no bytes.
const MIN_MASTER_STATE: usize = 4 + 4 + 4 + 2 + 4;
/// The smallest subtask entry: a (finished) subtask index.
const MIN_SUBTASK: usize = 4;

/// The smallest operator of `version`: id, parallelisms, null coordinator state, subtask
/// count (and two empty strings from version 5).
fn min_operator(version: u32) -> usize {
    let v3 = 16 + 4 + 4 + 1 + 4;
    if version >= 5 { v3 + 2 + 2 } else { v3 }
}

/// Decodes a whole `_metadata` file. See the [module documentation](super).
pub(crate) fn read(bytes: &[u8]) -> Result<FlinkMetadata> {
    let mut r = Input::new(bytes);
    let magic = r.u32("magic number")?;
    if magic != MAGIC {
        return Err(corrupt(
            format!(
                "not a Flink _metadata file: magic number 0x{magic:08x} at offset 0, expected \
                 0x{MAGIC:08x}"
            ),
            "magic number",
            0,
        )
        .with_context("actual", format!("0x{magic:08x}")));
    }
    let version_at = r.offset();
    let raw_version = r.i32("version")?;
    let version = u32::try_from(raw_version)
        .ok()
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "Flink _metadata version {raw_version} at offset {version_at} is not \
                     supported (supported: {}..={})",
                    SUPPORTED_VERSIONS.start(),
                    SUPPORTED_VERSIONS.end()
                ),
            )
            .with_context("format", "flink _metadata")
            .with_context("field", "version")
            .with_context("offset", version_at)
            .with_context("actual", raw_version)
            .with_context(
                "supported",
                format!(
                    "{}..={}",
                    SUPPORTED_VERSIONS.start(),
                    SUPPORTED_VERSIONS.end()
                ),
            )
        })?;

    let id_at = r.offset();
    let id = r.i64("checkpoint id")?;
    let checkpoint_id = u64::try_from(id).map_err(|_| {
        corrupt(
            format!("checkpoint id {id} at offset {id_at} is negative"),
            "checkpoint id",
            id_at,
        )
        .with_context("value", id)
    })?;

    let n = r.count("master state count", MIN_MASTER_STATE)?;
    let mut master_states = Vec::with_capacity(n);
    for _ in 0..n {
        master_states.push(master_state(&mut r)?);
    }

    let n = r.count("operator count", min_operator(version))?;
    let mut operators = Vec::with_capacity(n);
    for _ in 0..n {
        operators.push(operator(&mut r, version)?);
    }

    let (properties, trailing_bytes) = if version >= 4 {
        (Some(properties(&r)?), 0)
    } else {
        // Flink's reader stops after the body and ignores what follows.
        (None, r.remaining() as u64)
    };
    Ok(FlinkMetadata {
        version,
        checkpoint_id,
        master_states,
        operators,
        properties,
        trailing_bytes,
    })
}

/// The Java-serialized `CheckpointProperties` of versions 4 and later: the rest of the file,
/// which must start with a Java serialization stream header (Flink's `ObjectInputStream`
/// fails otherwise).
fn properties(r: &Input<'_>) -> Result<JavaSerialized> {
    let at = r.offset();
    let rest = r.rest();
    if !rest.starts_with(&JAVA_STREAM_HEADER) {
        let head = hex(rest.get(..4).unwrap_or(rest));
        return Err(corrupt(
            format!(
                "checkpoint properties at offset {at} ({} bytes) do not start with the Java \
                 serialization header aced0005 (found {head:?})",
                rest.len()
            ),
            "checkpoint properties",
            at,
        )
        .with_context("remaining", rest.len()));
    }
    Ok(JavaSerialized {
        offset: at as u64,
        len: rest.len() as u64,
        bytes: rest.to_vec(),
    })
}

/// A master state: magic number, length, then (in that many bytes) version, name, payload.
fn master_state(r: &mut Input<'_>) -> Result<MasterState> {
    let at = r.offset();
    let magic = r.u32("master state magic number")?;
    if magic != MASTER_STATE_MAGIC {
        return Err(corrupt(
            format!(
                "master state magic number 0x{magic:08x} at offset {at}, expected \
                 0x{MASTER_STATE_MAGIC:08x}"
            ),
            "master state magic number",
            at,
        )
        .with_context("actual", format!("0x{magic:08x}")));
    }
    let len_at = r.offset();
    let len = r.i32("master state length")?;
    if len <= 0 {
        return Err(corrupt(
            format!("master state length {len} at offset {len_at} is not positive"),
            "master state length",
            len_at,
        )
        .with_context("value", len));
    }
    let base = r.offset();
    let data = r.take(len.unsigned_abs() as usize, "master state")?;
    let mut inner = Input::part(data, base);
    let version = inner.i32("master state version")?;
    let name = inner.utf("master state name")?;
    let bytes = inner.int_len_bytes("master state payload")?;
    if inner.remaining() != 0 {
        let at = inner.offset();
        return Err(corrupt(
            format!(
                "master state {name:?} has {} trailing bytes at offset {at}",
                inner.remaining()
            ),
            "master state",
            at,
        )
        .with_context("trailing", inner.remaining()));
    }
    Ok(MasterState {
        name,
        version,
        bytes: InlineBytes(bytes.to_vec()),
    })
}

/// An operator (`MetadataV3Serializer.deserializeOperatorState`, with the name and uid of
/// `MetadataV5Serializer` first from version 5).
fn operator(r: &mut Input<'_>, version: u32) -> Result<OperatorState> {
    let (name, uid) = if version >= 5 {
        let name = r.utf("operator name")?;
        let uid = r.utf("operator uid")?;
        // Flink writes "" for a missing name or uid.
        (
            Some(name).filter(|s| !s.is_empty()),
            Some(uid).filter(|s| !s.is_empty()),
        )
    } else {
        (None, None)
    };
    let id_at = r.offset();
    let operator_id = hex(r.take(16, "operator id")?);
    let p_at = r.offset();
    let p = r.i32("parallelism")?;
    let max = r.i32("max parallelism")?;
    let (Ok(parallelism), Ok(max_parallelism)) = (u32::try_from(p), u32::try_from(max)) else {
        return Err(corrupt(
            format!(
                "operator {operator_id} (at offset {id_at}): parallelism {p} or max parallelism \
                 {max} at offset {p_at} is negative"
            ),
            "parallelism",
            p_at,
        )
        .with_context("operator_id", &operator_id));
    };
    if parallelism > max_parallelism {
        return Err(corrupt(
            format!(
                "operator {operator_id}: parallelism {p} at offset {p_at} is greater than its \
                 max parallelism {max}"
            ),
            "parallelism",
            p_at,
        )
        .with_context("operator_id", &operator_id));
    }

    let coordinator_at = r.offset();
    let coordinator_state = stream_handle(r, "coordinator state", 0)?;
    if let Some(other) = coordinator_state
        .as_ref()
        .filter(|h| !matches!(h, StreamStateHandle::ByteStream { .. }))
    {
        return Err(corrupt(
            format!(
                "operator {operator_id}: coordinator state at offset {coordinator_at} has type \
                 code {}, where Flink requires BYTE_STREAM_STATE_HANDLE (1)",
                other.type_code()
            ),
            "coordinator state",
            coordinator_at,
        )
        .with_context("operator_id", &operator_id)
        .with_context("type_code", other.type_code()));
    }

    let count_at = r.offset();
    let raw_count = r.i32("subtask count")?;
    let mut op = OperatorState {
        operator_id,
        name,
        uid,
        parallelism,
        max_parallelism,
        coordinator_state,
        fully_finished: raw_count < 0,
        subtasks: Vec::new(),
    };
    if raw_count < 0 {
        if op.coordinator_state.is_some() {
            return Err(corrupt(
                format!(
                    "operator {}: fully finished (subtask count {raw_count} at offset \
                     {count_at}) but has a coordinator state",
                    op.operator_id
                ),
                "subtask count",
                count_at,
            )
            .with_context("operator_id", &op.operator_id));
        }
        return Ok(op);
    }
    let n = r.check_count(raw_count, count_at, "subtask count", MIN_SUBTASK)?;

    let mut seen = HashSet::with_capacity(n);
    op.subtasks = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.offset();
        let stored = r.i32("subtask index")?;
        let finished = stored < 0;
        // A finished subtask is stored as -(index + 1).
        let index = if finished {
            -i64::from(stored) - 1
        } else {
            i64::from(stored)
        };
        let Some(index) = u32::try_from(index).ok().filter(|&i| i < op.parallelism) else {
            return Err(corrupt(
                format!(
                    "operator {}: subtask index {index} (stored {stored}) at offset {at} is not \
                     below the parallelism {}",
                    op.operator_id, op.parallelism
                ),
                "subtask index",
                at,
            )
            .with_context("operator_id", &op.operator_id)
            .with_context("value", index));
        };
        if !seen.insert(index) {
            return Err(corrupt(
                format!(
                    "operator {}: subtask index {index} at offset {at} appears twice",
                    op.operator_id
                ),
                "subtask index",
                at,
            )
            .with_context("operator_id", &op.operator_id));
        }
        let state = if finished {
            SubtaskState::empty(index, true)
        } else {
            subtask(r, index, version)
                .map_err(|e| e.with_context("operator_id", &op.operator_id))?
        };
        op.subtasks.push(state);
    }
    Ok(op)
}

/// The state of a running subtask (`MetadataV2V3SerializerBase.deserializeSubtaskState`,
/// the channel state of `MetadataV3Serializer`, the reference id of `MetadataV7Serializer`).
fn subtask(r: &mut Input<'_>, index: u32, version: u32) -> Result<SubtaskState> {
    let mut s = SubtaskState::empty(index, false);
    if r.i32("managed operator state flag")? != 0 {
        s.managed_operator_state = operator_handle(r, "managed operator state", 0)?.map(Box::new);
    }
    if r.i32("raw operator state flag")? != 0 {
        s.raw_operator_state = operator_handle(r, "raw operator state", 0)?.map(Box::new);
    }
    s.managed_keyed_state = keyed_handle(r, "managed keyed state", 0)?.map(Box::new);
    s.raw_keyed_state = keyed_handle(r, "raw keyed state", 0)?.map(Box::new);
    // Versions 3 to 5 write channel state with ChannelStateHandleSerializerV1 (no type code),
    // versions 6 and 7 with ChannelStateHandleSerializerV2.
    let tagged = version >= 6;
    let n = r.count("input channel state count", MIN_CHANNEL_HANDLE)?;
    s.input_channel_state = Vec::with_capacity(n);
    for _ in 0..n {
        s.input_channel_state.push(input_handle(r, tagged)?);
    }
    let n = r.count("result subpartition state count", MIN_CHANNEL_HANDLE)?;
    s.result_subpartition_state = Vec::with_capacity(n);
    for _ in 0..n {
        s.result_subpartition_state.push(output_handle(r, tagged)?);
    }
    if version >= 7 && r.u8("reference checkpoint id marker")? == 1 {
        // Flink reads the id after a marker of 1 and nothing after any other byte.
        s.ref_checkpoint_id = Some(r.i64("reference checkpoint id")?);
    }
    Ok(s)
}
