//! The two-input windowed count: windows fired by event-time timers, idle keys timed out by
//! processing-time timers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cornerstone_backend_api::rescale::keyed_handles_for;
use cornerstone_backend_api::{
    CheckpointableBackend, Error, KeyGroupRange, KeyedBackendParams, KeyedStateBackendExt, Result,
    StateBackend, StateReader, TimeDomain, Timer, ValueStateDescriptor,
};
use cornerstone_coordinator::{
    BarrierHandler, HandlerOutput, InputEvent, RestoredCheckpoint, SubtaskMetrics, TaskId,
};

use super::{
    COUNT_STATE, COUNTER_UID, Ctx, IDLE_TIMERS, LAST_SEEN_STATE, Msg, SourceElement, WINDOW_TIMERS,
    WindowCount, broadcast,
};
use crate::data::{INPUTS, window_start};
use crate::failure::FailPoint;

/// The timestamp of the event-time timer of the window starting at `window`: its last
/// millisecond (Flink's `TimeWindow::maxTimestamp`).
fn window_timer(window: u64, window_ms: u64) -> i64 {
    let last = window.saturating_add(window_ms.max(1)) - 1;
    i64::try_from(last).unwrap_or(i64::MAX)
}

/// The timer services' watermark for this job's watermark `low`. A source's watermark `w`
/// says that every record with a timestamp below `w` came; the timer service's (Flink's)
/// says that every record at or below it did: `w - 1`. So the timer of a window, at its
/// last millisecond `start + window_ms - 1`, fires once `start + window_ms <= low`. The end
/// of input (`u64::MAX`) fires every timer.
fn timer_watermark(low: u64) -> i64 {
    i64::try_from(low).map_or(i64::MAX, |low| low - 1)
}

/// The two-input windowed count: keyed state "count" per (key, window start), the smallest
/// watermark of all input channels as its event time.
///
/// - **Windows fire from event-time timers.** The first record of a (key, window) registers
///   a timer of the service [`WINDOW_TIMERS`] for that key, namespace the window start, at
///   the window's last millisecond. Each watermark advances the service to the low
///   watermark ([`timer_watermark`]); every timer it fires emits that (key, window)'s count
///   to the sink and clears the count. Timers are keyed state: a snapshot holds them with
///   the counts, a restore (at any parallelism) brings back the pending ones, and as the
///   restored service's watermark starts at the bottom, the first watermark after a restore
///   fires what is due.
/// - **Idle keys time out on processing-time timers.** Each record sets the key's
///   [`LAST_SEEN_STATE`] to the processing time (the job's clock, the backend's); a key
///   with no pending timer gets one of the service [`IDLE_TIMERS`] at `last seen +
///   idle_timeout`. The counter waits for its next message no longer than its next
///   processing-time timer is due and fires the due ones between messages (as Flink's
///   mailbox does). A fired timer whose key had a record since re-registers at `last seen +
///   idle_timeout`; otherwise the key went idle: it is counted and its last-seen state
///   cleared (its next record starts over). Idle timeouts change no output: they are
///   counted in the report ([`TimerCounts`]), as are the timers fired in both domains.
///
/// [`TimerCounts`]: crate::TimerCounts
pub(super) fn run_counter<F: StateBackend>(
    ctx: &Arc<Ctx>,
    task: &TaskId,
    factory: &F,
    restored: Option<&RestoredCheckpoint>,
    rx: &Receiver<Msg<SourceElement>>,
    out: &[Sender<Msg<WindowCount>>],
    asyncs: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    let t = &ctx.topology;
    let range = KeyGroupRange::for_subtask(t.max_parallelism, t.counters, task.subtask)?;
    let mut params = KeyedBackendParams::new(t.max_parallelism, range).clock(ctx.clock.clone());
    if let Some(r) = restored {
        let op = r.checkpoint.metadata.operator(COUNTER_UID).ok_or_else(|| {
            Error::not_found("the restored checkpoint has no state of the counter")
                .with_context("checkpoint", r.checkpoint.id())
        })?;
        let all = op.subtasks.values().flat_map(|s| s.keyed.iter());
        let reader: Arc<dyn StateReader> = r.reader.clone();
        params = params.restore(keyed_handles_for(all, range), Some(reader));
    }
    let backend = factory.create_keyed_backend::<u64>(params)?;
    let counts = backend.value_state::<u64, u64>(&ValueStateDescriptor::new(COUNT_STATE))?;
    let last_seen = backend.value_state::<i64, ()>(&ValueStateDescriptor::new(LAST_SEEN_STATE))?;
    let windows = backend.timer_service::<u64>(WINDOW_TIMERS)?;
    let idle = backend.timer_service::<()>(IDLE_TIMERS)?;
    let idle_timeout = i64::try_from(t.idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let fire_idle = || -> Result<()> {
        let mut timeouts = 0u64;
        let fired = idle.fire_due_processing_timers(&mut |timer: Timer<u64, ()>| {
            match last_seen.get(&timer.key, &())? {
                // A record came after the timer was set: wait for the new deadline.
                Some(seen) if seen.saturating_add(idle_timeout) > timer.timestamp => idle
                    .register_processing_time_timer(
                        &timer.key,
                        &(),
                        seen.saturating_add(idle_timeout),
                    ),
                Some(_) => {
                    timeouts += 1;
                    last_seen.clear(&timer.key, &())
                }
                None => Ok(()),
            }
        })?;
        ctx.timers
            .processing_time_fired
            .fetch_add(fired, Ordering::AcqRel);
        ctx.timers
            .idle_timeouts
            .fetch_add(timeouts, Ordering::AcqRel);
        Ok(())
    };
    let channels = (INPUTS * t.splits_per_input) as usize;
    let mut handler = BarrierHandler::new(t.mode, channels, ctx.clock.clone())?;
    let mut watermarks = vec![0u64; channels];
    let me = task.subtask as usize;
    loop {
        let msg = match idle.next_timer(TimeDomain::ProcessingTime)? {
            None => rx.recv().ok(),
            Some(due) => match u64::try_from(due.saturating_sub(idle.current_processing_time())) {
                Ok(wait) if wait > 0 => match rx.recv_timeout(Duration::from_millis(wait)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => None,
                },
                // Due: fire before the next message.
                _ => {
                    fire_idle()?;
                    continue;
                }
            },
        };
        let Some(msg) = msg else {
            return Ok(());
        };
        match msg {
            Msg::Data { channel, event } => {
                handler.push(channel, event)?;
                while let Some(output) = handler.poll() {
                    match output {
                        HandlerOutput::Record {
                            record: SourceElement::Event { key, ts },
                            ..
                        } => {
                            ctx.injector.hit(FailPoint::CounterRecord)?;
                            let window = window_start(ts, t.window_ms);
                            let n = counts.get(&key, &window)?;
                            if n.is_none() {
                                // A (key, window) has a timer exactly while it has a count:
                                // both are set here and cleared when the timer fires.
                                windows.register_event_time_timer(
                                    &key,
                                    &window,
                                    window_timer(window, t.window_ms),
                                )?;
                            }
                            counts.update(&key, &window, n.unwrap_or(0) + 1)?;
                            let now = idle.current_processing_time();
                            match last_seen.get(&key, &())? {
                                None => {
                                    last_seen.update(&key, &(), now)?;
                                    idle.register_processing_time_timer(
                                        &key,
                                        &(),
                                        now.saturating_add(idle_timeout),
                                    )?;
                                }
                                Some(seen) if seen < now => last_seen.update(&key, &(), now)?,
                                Some(_) => {}
                            }
                        }
                        HandlerOutput::Record {
                            channel,
                            record: SourceElement::Watermark(w),
                        } => {
                            if let Some(slot) = watermarks.get_mut(channel) {
                                *slot = (*slot).max(w);
                            }
                            let low = watermarks.iter().copied().min().unwrap_or(0);
                            let fired = windows.advance_watermark(
                                timer_watermark(low),
                                &mut |timer: Timer<u64, u64>| {
                                    let (key, window) = (timer.key, timer.namespace);
                                    if let Some(count) = counts.get(&key, &window)? {
                                        let target = (key % u64::from(t.sinks)) as usize;
                                        if let Some(sender) = out.get(target) {
                                            let _ = sender.send(Msg::Data {
                                                channel: me,
                                                event: InputEvent::Record(WindowCount {
                                                    key,
                                                    window,
                                                    count,
                                                }),
                                            });
                                        }
                                    }
                                    counts.clear(&key, &window)
                                },
                            )?;
                            ctx.timers
                                .event_time_fired
                                .fetch_add(fired, Ordering::AcqRel);
                        }
                        HandlerOutput::Checkpoint { barrier, alignment } => {
                            ctx.injector.hit(FailPoint::CounterSnapshot)?;
                            let start = Instant::now();
                            let snapshot = backend.snapshot(barrier.id)?;
                            let metrics = SubtaskMetrics {
                                sync_duration: start.elapsed(),
                                alignment_duration: alignment.duration,
                                buffered_records: alignment.buffered_records,
                                ..SubtaskMetrics::default()
                            };
                            broadcast(out, me, &InputEvent::Barrier(barrier));
                            asyncs.push(ctx.spawn_async(
                                task,
                                barrier.id,
                                vec![snapshot],
                                metrics,
                            )?);
                        }
                        HandlerOutput::Aborted { id } => {
                            tracing::debug!(task = %task, checkpoint = %id, "alignment abandoned");
                        }
                        HandlerOutput::EndOfInput => {
                            broadcast(out, me, &InputEvent::EndOfInput);
                            return Ok(());
                        }
                    }
                }
            }
            Msg::Notify(id) => backend.notify_checkpoint_complete(id)?,
            Msg::Cancel => return Ok(()),
            Msg::Barrier(_) | Msg::Finish => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window's timer fires (its timestamp is at or below the timer watermark) exactly
    /// when the job's low watermark reaches the window's end, as the key scan fired it.
    #[test]
    fn window_timers_fire_when_the_low_watermark_reaches_the_window_end() {
        for window_ms in [1u64, 7, 500] {
            for window in (0..5).map(|i| i * window_ms) {
                for low in 0..6 * window_ms {
                    assert_eq!(
                        window_timer(window, window_ms) <= timer_watermark(low),
                        window + window_ms <= low,
                        "window {window} of {window_ms} ms at low watermark {low}"
                    );
                }
            }
        }
        // The end of input fires every window.
        assert!(window_timer(u64::MAX - 10, 500) <= timer_watermark(u64::MAX));
    }
}
