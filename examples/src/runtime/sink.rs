//! The sink task: two-phase commit into transactional files.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Instant;

use cornerstone_backend_api::Result;
use cornerstone_coordinator::{
    BarrierHandler, HandlerOutput, RestoredCheckpoint, SubtaskMetrics, TaskId,
    TransactionalFileSink, TwoPhaseCommitSink,
};

use super::{Ctx, Msg, SINK_UID, WindowCount, restore_operator_state};
use crate::failure::FailPoint;

/// The transactional file sink: a transaction per checkpoint interval, pre-committed in the
/// snapshot, committed on the notification.
pub(super) fn run_sink(
    ctx: &Arc<Ctx>,
    task: &TaskId,
    restored: Option<&RestoredCheckpoint>,
    rx: &Receiver<Msg<WindowCount>>,
    asyncs: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    let t = &ctx.topology;
    let op = restore_operator_state(restored, SINK_UID, t.sinks, task.subtask)?;
    let files = TransactionalFileSink::open(&t.output_dir, &format!("s{}", task.subtask))?;
    let (mut sink, recovery) = TwoPhaseCommitSink::initialize(files, &op)?;
    // Transactions of failed attempts that no checkpoint recorded are garbage.
    let current = sink.current_transaction().clone();
    let lingering = sink.sink_mut().abort_lingering(&[current])?;
    if recovery.committed + recovery.aborted + lingering > 0 {
        tracing::debug!(task = %task, ?recovery, lingering, "recovered transactions");
    }
    let mut handler = BarrierHandler::new(t.mode, t.counters as usize, ctx.clock.clone())?;
    loop {
        let msg = match rx.recv() {
            Ok(m) => m,
            Err(_) => return Ok(()),
        };
        match msg {
            Msg::Data { channel, event } => {
                handler.push(channel, event)?;
                while let Some(output) = handler.poll() {
                    match output {
                        HandlerOutput::Record { record, .. } => {
                            ctx.injector.hit(FailPoint::SinkWrite)?;
                            sink.invoke(format!(
                                "{},{},{}",
                                record.key, record.window, record.count
                            ))?;
                        }
                        HandlerOutput::Checkpoint { barrier, alignment } => {
                            ctx.injector.hit(FailPoint::SinkPreCommit)?;
                            let start = Instant::now();
                            sink.snapshot_state(barrier.id)?;
                            let snapshot = op.snapshot(barrier.id);
                            let metrics = SubtaskMetrics {
                                sync_duration: start.elapsed(),
                                alignment_duration: alignment.duration,
                                buffered_records: alignment.buffered_records,
                                ..SubtaskMetrics::default()
                            };
                            asyncs.push(ctx.spawn_async(
                                task,
                                barrier.id,
                                vec![snapshot],
                                metrics,
                            )?);
                        }
                        HandlerOutput::Aborted { .. } => {}
                        HandlerOutput::EndOfInput => {
                            sink.close()?;
                            return Ok(());
                        }
                    }
                }
            }
            Msg::Notify(id) => {
                ctx.injector.hit(FailPoint::SinkCommit)?;
                sink.notify_checkpoint_complete(id)?;
            }
            Msg::Cancel => return Ok(()),
            Msg::Barrier(_) | Msg::Finish => {}
        }
    }
}
