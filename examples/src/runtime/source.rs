//! The source task: one split with replayable offsets in operator state, records keyed to
//! the counters.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use cornerstone_backend_api::Result;
use cornerstone_backend_api::keygroup::{key_group_for_key, operator_index_for_key_group};
use cornerstone_coordinator::{InputEvent, RestoredCheckpoint, SubtaskMetrics, TaskId};

use super::{Ctx, JobEvent, Msg, OFFSETS_STATE, SourceElement, broadcast, restore_operator_state};
use crate::data::{event_key, event_time};
use crate::failure::FailPoint;

/// One source split: replayable offsets in operator state, records keyed to the counters.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_source(
    ctx: &Arc<Ctx>,
    task: &TaskId,
    input: u32,
    restored: Option<&RestoredCheckpoint>,
    rx: &Receiver<Msg<()>>,
    out: &[Sender<Msg<SourceElement>>],
    asyncs: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    let t = &ctx.topology;
    let split = task.subtask;
    let op = restore_operator_state(restored, &task.operator, t.splits_per_input, split)?;
    let offsets = op.list_state::<(u32, u32, u64)>(OFFSETS_STATE)?;
    let mut offset = offsets
        .get()
        .iter()
        .find(|(i, s, _)| *i == input && *s == split)
        .map_or(0, |(_, _, o)| *o);
    let channel = (input * t.splits_per_input + split) as usize;
    let end = t.events_per_split;
    let mut exhausted = false;
    loop {
        if !exhausted && offset >= end {
            broadcast(
                out,
                channel,
                &InputEvent::Record(SourceElement::Watermark(u64::MAX)),
            );
            exhausted = true;
            let _ = ctx.events.send(JobEvent::Exhausted);
        }
        let msg = if exhausted {
            rx.recv().ok()
        } else if t.pace.is_zero() {
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        } else {
            match rx.recv_timeout(t.pace) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        };
        match msg {
            Some(Msg::Barrier(barrier)) => {
                let start = Instant::now();
                offsets.update(vec![(input, split, offset)]);
                let snapshot = op.snapshot(barrier.id);
                let metrics = SubtaskMetrics {
                    sync_duration: start.elapsed(),
                    ..SubtaskMetrics::default()
                };
                broadcast(out, channel, &InputEvent::Barrier(barrier));
                asyncs.push(ctx.spawn_async(task, barrier.id, vec![snapshot], metrics)?);
            }
            Some(Msg::Finish) => {
                broadcast(out, channel, &InputEvent::EndOfInput);
                return Ok(());
            }
            Some(Msg::Cancel) => return Ok(()),
            None if exhausted => return Ok(()), // the driver went away
            Some(Msg::Notify(_) | Msg::Data { .. }) => {}
            None => {
                let stop = (offset + t.batch.max(1)).min(end);
                for o in offset..stop {
                    let key = event_key(input, split, o, t.keys);
                    let target = operator_index_for_key_group(
                        t.max_parallelism,
                        t.counters,
                        key_group_for_key(&key, t.max_parallelism)?,
                    ) as usize;
                    if let Some(sender) = out.get(target) {
                        let _ = sender.send(Msg::Data {
                            channel,
                            event: InputEvent::Record(SourceElement::Event {
                                key,
                                ts: event_time(o),
                            }),
                        });
                    }
                }
                offset = stop;
                broadcast(
                    out,
                    channel,
                    &InputEvent::Record(SourceElement::Watermark(event_time(offset))),
                );
                ctx.injector.hit(FailPoint::SourceEmit)?;
            }
        }
    }
}
