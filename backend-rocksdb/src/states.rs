//! The states a keyed backend knows (registered, or restored and not registered yet), the
//! column family of each, and the snapshot filters of their stored bytes: shared by the
//! backend, its restores and its snapshots.

use std::sync::Arc;

use cornerstone_backend_api::{Result, StateMeta};

/// What a full snapshot does with a stored value (TTL's cleanup in full snapshots).
pub(crate) enum Filtered {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// A snapshot filter over stored bytes, built from the typed filter of a table.
pub(crate) type RawFilter = Arc<dyn Fn(&[u8], u64) -> Result<Filtered> + Send + Sync>;

/// A state known to the backend: registered, or restored and not registered yet.
#[derive(Clone)]
pub(crate) struct StateEntry {
    pub(crate) meta: StateMeta,
    pub(crate) cf: String,
    pub(crate) filter: Option<RawFilter>,
    pub(crate) registered: bool,
}

/// The column family of state `name`.
pub(crate) fn cf_name(name: &str) -> String {
    format!("state/{name}")
}
