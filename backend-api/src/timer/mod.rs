//! Timers: Flink's `InternalTimerService`, over a key-grouped priority queue that every
//! backend implements.
//!
//! ```
//! use cornerstone_backend_api::{KeyedBackendParams, KeyedStateBackendExt, KeyGroupRange, Result};
//! use cornerstone_backend_api::timer::Timer;
//! # fn demo<B: KeyedStateBackendExt<String>>(backend: &B) -> Result<()> {
//! // Windows are namespaces; a timer fires the window of one key at its end.
//! let timers = backend.timer_service::<u64>("window")?;
//! let key = "alice".to_string();
//! timers.register_event_time_timer(&key, &1_000, 999)?;
//! timers.register_event_time_timer(&key, &1_000, 999)?; // deduplicated
//! let mut fired = Vec::new();
//! timers.advance_watermark(999, &mut |timer: Timer<String, u64>| {
//!     fired.push((timer.key, timer.namespace, timer.timestamp));
//!     Ok(())
//! })?;
//! assert_eq!(fired, [("alice".to_string(), 1_000, 999)]);
//! # Ok(()) }
//! ```
//!
//! # Semantics
//! - a timer is a (key, namespace, timestamp) in one of two [`TimeDomain`]s; registering
//!   it again is a no-op, deleting an absent one too;
//! - [`TimerService::advance_watermark`] moves the watermark up (never down) and fires every
//!   event-time timer at or below it, each once, in the order below. The callback may
//!   register and delete timers: one registered at or below the watermark fires in the same
//!   call, one deleted before its turn does not fire;
//! - processing-time timers fire from [`TimerService::advance_processing_time`], or from the
//!   backend's [`Clock`](crate::Clock) with [`TimerService::fire_due_processing_timers`];
//! - the order of firing is by timestamp; timers of one timestamp fire in key-group order,
//!   and within a key group by their [`TimerEntry`] bytes: the length of the serialized key,
//!   then the serialized key, then the serialized namespace. Integer keys and namespaces
//!   serialize big-endian, so they fire in numeric order; string keys shorter first;
//! - timers are keyed state: they are written with the key groups of a snapshot and restored
//!   (at any parallelism) into the subtask owning their key group. The watermark is not:
//!   a restored service starts at [`i64::MIN`], as Flink's does, and the next watermark
//!   fires what is due.
//!
//! # For backend implementors
//! A backend implements [`TimerQueue`] (through
//! [`KeyedStateBackend::timer_queue`](crate::KeyedStateBackend::timer_queue)): a set of
//! `(key group, timestamp, entry)` ordered as above, where an entry is the serialized key
//! and namespace ([`TimerEntry`]). A queue's state meta has kind
//! [`StateKind::Timers`](crate::StateKind::Timers); each timer is one record of the keyed
//! snapshot stream whose key and namespace are the entry's parts and whose value is the
//! timestamp ([`encode_timestamp`]). [`KeyGroupHeads`] finds the earliest key group.

mod queue;
mod service;
#[cfg(test)]
mod tests;
mod types;

pub use queue::{KeyGroupHeads, RawTimer, TimerQueue, TimerVisit, check_queue_meta};
pub use service::TimerService;
pub use types::{
    TIMER_STATE_PREFIX, TIMESTAMP_TYPE, TimeDomain, Timer, TimerEntry, decode_timestamp,
    encode_timestamp, split_entry,
};
