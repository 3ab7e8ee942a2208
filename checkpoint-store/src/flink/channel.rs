//! Channel state of unaligned checkpoints: the handle types (Flink's
//! `AbstractChannelStateHandle`, `AbstractMergedChannelStateHandle`) and their decoding by
//! `ChannelStateHandleSerializerV1` (versions 3 to 5, untagged) and `V2` (versions 6 and 7,
//! a type code first: 1 input channel, 2 result subpartition, 3 and 4 their merged forms).

use cornerstone_backend_api::Result;
use serde::Serialize;

use super::handles::{counted_longs, required_stream};
use super::input::{Input, corrupt};
use super::model::{InlineBytes, StreamStateHandle};

/// Channel state of an unaligned checkpoint (Flink's `AbstractChannelStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStateHandle<Info> {
    /// The subtask index.
    pub subtask_index: i32,
    /// Which channel.
    pub info: Info,
    /// The offsets of the channel's buffers in the stream.
    pub offsets: Vec<i64>,
    /// The state size.
    pub state_size: i64,
    /// The stream.
    pub delegate: StreamStateHandle,
}

/// Channel state of several channels in one stream (Flink's
/// `AbstractMergedChannelStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergedChannelStateHandle {
    /// The subtask index.
    pub subtask_index: i32,
    /// The state size.
    pub state_size: i64,
    /// The stream.
    pub delegate: StreamStateHandle,
    /// The channels and their offsets, in Flink's own serialized form (kept raw).
    pub serialized_channel_offsets: InlineBytes,
}

/// An input channel (Flink's `InputChannelInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputChannelInfo {
    /// The input gate index.
    pub gate_idx: i32,
    /// The channel index in the gate.
    pub input_channel_idx: i32,
}

/// A result subpartition (Flink's `ResultSubpartitionInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResultSubpartitionInfo {
    /// The partition index.
    pub partition_idx: i32,
    /// The subpartition index.
    pub subpartition_idx: i32,
}

/// Input state of an unaligned checkpoint (Flink's `InputStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum InputStateHandle {
    /// One input channel (`ChannelStateHandleSerializerV2` code 1, the only form before
    /// version 6).
    #[serde(rename = "INPUT_CHANNEL_STATE_HANDLE")]
    Channel(ChannelStateHandle<InputChannelInfo>),
    /// Several input channels in one stream (code 3).
    #[serde(rename = "MERGED_INPUT_CHANNEL_STATE_HANDLE")]
    Merged(MergedChannelStateHandle),
}

/// Output state of an unaligned checkpoint (Flink's `OutputStateHandle`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum OutputStateHandle {
    /// One result subpartition (`ChannelStateHandleSerializerV2` code 2, the only form before
    /// version 6).
    #[serde(rename = "RESULT_SUBPARTITION_STATE_HANDLE")]
    Subpartition(ChannelStateHandle<ResultSubpartitionInfo>),
    /// Several subpartitions in one stream (code 4).
    #[serde(rename = "MERGED_RESULT_SUBPARTITION_STATE_HANDLE")]
    Merged(MergedChannelStateHandle),
}

impl InputStateHandle {
    /// The stream that holds the state.
    pub fn delegate(&self) -> &StreamStateHandle {
        match self {
            InputStateHandle::Channel(h) => &h.delegate,
            InputStateHandle::Merged(h) => &h.delegate,
        }
    }
}

impl OutputStateHandle {
    /// The stream that holds the state.
    pub fn delegate(&self) -> &StreamStateHandle {
        match self {
            OutputStateHandle::Subpartition(h) => &h.delegate,
            OutputStateHandle::Merged(h) => &h.delegate,
        }
    }
}

/// The fields of a channel state handle after its info.
fn channel_rest<Info>(
    r: &mut Input<'_>,
    subtask_index: i32,
    info: Info,
) -> Result<ChannelStateHandle<Info>> {
    let offsets = counted_longs(r, "channel state offset count")?;
    let state_size = r.i64("channel state size")?;
    let delegate = required_stream(r, "channel state stream handle", 0)?;
    Ok(ChannelStateHandle {
        subtask_index,
        info,
        offsets,
        state_size,
        delegate,
    })
}

fn input_channel(r: &mut Input<'_>) -> Result<ChannelStateHandle<InputChannelInfo>> {
    let subtask_index = r.i32("channel state subtask index")?;
    let info = InputChannelInfo {
        gate_idx: r.i32("input gate index")?,
        input_channel_idx: r.i32("input channel index")?,
    };
    channel_rest(r, subtask_index, info)
}

fn result_subpartition(r: &mut Input<'_>) -> Result<ChannelStateHandle<ResultSubpartitionInfo>> {
    let subtask_index = r.i32("channel state subtask index")?;
    let info = ResultSubpartitionInfo {
        partition_idx: r.i32("result partition index")?,
        subpartition_idx: r.i32("result subpartition index")?,
    };
    channel_rest(r, subtask_index, info)
}

fn merged_channel(r: &mut Input<'_>) -> Result<MergedChannelStateHandle> {
    let subtask_index = r.i32("channel state subtask index")?;
    let state_size = r.i64("channel state size")?;
    let delegate = required_stream(r, "merged channel state stream handle", 0)?;
    let offsets = r.int_len_bytes("merged channel state serialized offsets")?;
    Ok(MergedChannelStateHandle {
        subtask_index,
        state_size,
        delegate,
        serialized_channel_offsets: InlineBytes(offsets.to_vec()),
    })
}

/// The smallest encoding of a channel state handle: `ChannelStateHandleSerializerV1`'s
/// subtask index, info, offset count, size and null handle (25 bytes), or `V2`'s merged
/// handle (a code, subtask index, size, null handle and empty offsets: 18 bytes).
pub(crate) const MIN_CHANNEL_HANDLE: usize = 18;

/// An input channel state handle; `tagged`: written by `ChannelStateHandleSerializerV2`
/// (versions 6 and later), with a type code first.
pub(crate) fn input_handle(r: &mut Input<'_>, tagged: bool) -> Result<InputStateHandle> {
    if !tagged {
        return Ok(InputStateHandle::Channel(input_channel(r)?));
    }
    let at = r.offset();
    match r.u8("input state handle type")? {
        1 => Ok(InputStateHandle::Channel(input_channel(r)?)),
        3 => Ok(InputStateHandle::Merged(merged_channel(r)?)),
        code => Err(channel_code(code, "input state handle type", at)),
    }
}

/// A result subpartition state handle; `tagged` as for [`input_handle`].
pub(crate) fn output_handle(r: &mut Input<'_>, tagged: bool) -> Result<OutputStateHandle> {
    if !tagged {
        return Ok(OutputStateHandle::Subpartition(result_subpartition(r)?));
    }
    let at = r.offset();
    match r.u8("output state handle type")? {
        2 => Ok(OutputStateHandle::Subpartition(result_subpartition(r)?)),
        4 => Ok(OutputStateHandle::Merged(merged_channel(r)?)),
        code => Err(channel_code(code, "output state handle type", at)),
    }
}

fn channel_code(code: u8, field: &'static str, at: usize) -> cornerstone_backend_api::Error {
    let name = match code {
        1 => Some("INPUT_CHANNEL_STATE_HANDLE"),
        2 => Some("RESULT_SUBPARTITION_STATE_HANDLE"),
        3 => Some("MERGED_INPUT_CHANNEL_STATE_HANDLE"),
        4 => Some("MERGED_RESULT_SUBPARTITION_STATE_HANDLE"),
        _ => None,
    };
    let message = match name {
        Some(name) => format!(
            "{field}: channel state type code {code} ({name}) at offset {at} is not allowed here"
        ),
        None => format!(
            "{field}: unknown channel state handle type code {code} (0x{code:02x}) at offset {at}"
        ),
    };
    corrupt(message, field, at).with_context("type_code", code)
}
