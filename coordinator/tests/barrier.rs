//! Barrier alignment (exactly-once) and tracking (at-least-once).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cornerstone_backend_api::{CheckpointId, ManualClock, SharedClock};
use cornerstone_coordinator::{
    BarrierHandler, CheckpointBarrier, CheckpointingMode, HandlerOutput, InputEvent,
};

fn barrier(id: u64) -> InputEvent<&'static str> {
    InputEvent::Barrier(CheckpointBarrier {
        id: CheckpointId(id),
        timestamp_ms: 0,
    })
}

/// What the handler emits, in a compact form.
fn drain(h: &mut BarrierHandler<&'static str>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(o) = h.poll() {
        out.push(match o {
            HandlerOutput::Record { channel, record } => format!("{channel}:{record}"),
            HandlerOutput::Checkpoint { barrier, alignment } => format!(
                "chk{}({}ms,{})",
                barrier.id,
                alignment.duration.as_millis(),
                alignment.buffered_records
            ),
            HandlerOutput::Aborted { id } => format!("abort{id}"),
            HandlerOutput::EndOfInput => "end".into(),
        });
    }
    out
}

fn handler(
    mode: CheckpointingMode,
    channels: usize,
) -> (ManualClock, BarrierHandler<&'static str>) {
    let clock = ManualClock::new(0);
    let h = BarrierHandler::new(mode, channels, Arc::new(clock.clone()) as SharedClock).unwrap();
    (clock, h)
}

#[test]
fn aligned_blocks_a_channel_until_every_input_delivered_the_barrier() {
    let (clock, mut h) = handler(CheckpointingMode::ExactlyOnce, 2);
    h.push(0, InputEvent::Record("a1")).unwrap();
    h.push(0, barrier(1)).unwrap();
    assert!(h.is_blocked(0) && !h.is_blocked(1));
    // Channel 0 is blocked: its records after the barrier are held back.
    h.push(0, InputEvent::Record("a2")).unwrap();
    h.push(1, InputEvent::Record("b1")).unwrap();
    assert_eq!(drain(&mut h), vec!["0:a1", "1:b1"]);
    clock.advance(5);
    h.push(1, barrier(1)).unwrap();
    h.push(1, InputEvent::Record("b2")).unwrap();
    // Snapshot first, then the held-back record, then the rest.
    assert_eq!(drain(&mut h), vec!["chk1(5ms,1)", "0:a2", "1:b2"]);
    assert!(!h.is_blocked(0));
}

#[test]
fn held_back_elements_may_contain_the_next_barrier() {
    let (_, mut h) = handler(CheckpointingMode::ExactlyOnce, 2);
    h.push(0, barrier(1)).unwrap();
    h.push(0, InputEvent::Record("a")).unwrap();
    h.push(0, barrier(2)).unwrap();
    h.push(0, InputEvent::Record("a-after-2")).unwrap();
    h.push(1, barrier(1)).unwrap();
    // Checkpoint 1, then "a" is released, then barrier 2 blocks channel 0 again.
    assert_eq!(drain(&mut h), vec!["chk1(0ms,2)", "0:a"]);
    assert!(h.is_blocked(0));
    assert_eq!(h.aligning(), Some(CheckpointId(2)));
    h.push(1, InputEvent::Record("b")).unwrap();
    h.push(1, barrier(2)).unwrap();
    assert_eq!(drain(&mut h), vec!["1:b", "chk2(0ms,0)", "0:a-after-2"]);
}

#[test]
fn a_newer_barrier_abandons_the_alignment_and_stale_ones_are_ignored() {
    let (_, mut h) = handler(CheckpointingMode::ExactlyOnce, 3);
    h.push(0, barrier(1)).unwrap();
    h.push(0, InputEvent::Record("x")).unwrap();
    h.push(1, barrier(2)).unwrap();
    assert_eq!(drain(&mut h), vec!["abort1", "0:x"]);
    h.push(0, barrier(2)).unwrap();
    h.push(2, barrier(1)).unwrap(); // stale
    h.push(2, InputEvent::Record("y")).unwrap();
    h.push(2, barrier(2)).unwrap();
    assert_eq!(drain(&mut h), vec!["2:y", "chk2(0ms,0)"]);
}

#[test]
fn ended_channels_do_not_hold_up_alignment() {
    let (_, mut h) = handler(CheckpointingMode::ExactlyOnce, 2);
    h.push(1, InputEvent::Record("last")).unwrap();
    h.push(1, InputEvent::EndOfInput).unwrap();
    h.push(0, barrier(3)).unwrap();
    h.push(0, InputEvent::EndOfInput).unwrap();
    assert_eq!(drain(&mut h), vec!["1:last", "chk3(0ms,0)", "end"]);
    let err = h.push(0, InputEvent::Record("late")).unwrap_err();
    assert_eq!(err.context("channel"), Some("0"));
    let err = h.push(5, InputEvent::Record("?")).unwrap_err();
    assert_eq!(err.context("channels"), Some("2"));
}

#[test]
fn at_least_once_never_blocks_and_snapshots_on_the_last_barrier() {
    let (clock, mut h) = handler(CheckpointingMode::AtLeastOnce, 2);
    h.push(0, barrier(1)).unwrap();
    assert!(!h.is_blocked(0));
    h.push(0, InputEvent::Record("a-after-1")).unwrap();
    h.push(1, InputEvent::Record("b")).unwrap();
    clock.advance(3);
    h.push(1, barrier(1)).unwrap();
    // The snapshot includes "a-after-1": at least once, not exactly once.
    assert_eq!(drain(&mut h), vec!["0:a-after-1", "1:b", "chk1(3ms,0)"]);
    // A checkpoint overtaken by a newer complete one is reported aborted.
    h.push(0, barrier(2)).unwrap();
    h.push(0, barrier(3)).unwrap();
    h.push(1, barrier(3)).unwrap();
    assert_eq!(drain(&mut h), vec!["abort2", "chk3(0ms,0)"]);
    assert_eq!(h.channels(), 2);
    let _ = Duration::ZERO;
}
