//! What a snapshot captures of a heap table (its key groups' maps, shared copy-on-write, and
//! in changelog mode the changes not yet confirmed) and how the asynchronous phase writes
//! it: every entry for a full snapshot, the changed entries or their removals for a delta.

use std::any::Any;
use std::sync::Arc;

use cornerstone_backend_api::spi::table::SnapshotFilter;
use cornerstone_backend_api::{CheckpointId, Error, Result, StateKey, StateValue};
use hashbrown::HashMap;

use crate::changelog::Sealed;
use crate::table::{
    Captured, Groups, HeapListTable, HeapMapTable, HeapValueTable, Lookup, Registered,
    SnapshotWriter,
};

/// Writes the records of one entry ((key, namespace) and what it stores) that `filter`
/// keeps at `now`; returns whether it wrote any.
type WriteEntry<K, N, S, F> =
    fn(Option<&SnapshotFilter<F>>, u16, &K, &N, &S, &mut SnapshotWriter, u64) -> Result<bool>;

/// A table's key groups as a snapshot captured them.
pub(crate) struct TableCapture<K, N, S, F> {
    groups: Groups<K, N, S>,
    filter: Option<SnapshotFilter<F>>,
    /// The changes a delta writes (changelog checkpoints only).
    changes: Option<Sealed<(K, N)>>,
    write: WriteEntry<K, N, S, F>,
    /// Map state: an entry is several records, so a changed one is removed first.
    map: bool,
}

impl<K, N, S, F> Captured for TableCapture<K, N, S, F>
where
    K: StateKey,
    N: StateKey,
    S: Send + Sync + 'static,
    F: 'static,
{
    fn entries(&self, index: usize) -> usize {
        self.groups[index].len()
    }

    fn write_key_group(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        now: u64,
    ) -> Result<()> {
        for ((k, n), stored) in self.groups[index].iter() {
            (self.write)(self.filter.as_ref(), state, k, n, stored, writer, now)?;
        }
        Ok(())
    }

    fn changes(&self, index: usize) -> usize {
        self.changes.as_ref().map_or(0, |c| {
            let whole = if c.whole(index) {
                self.groups[index].len()
            } else {
                0
            };
            whole + c.len(index)
        })
    }

    fn write_changes(
        &self,
        index: usize,
        state: u16,
        writer: &mut SnapshotWriter,
        now: u64,
    ) -> Result<()> {
        let Some(changes) = &self.changes else {
            return Err(Error::internal("a delta of a capture without changes"));
        };
        let group = &self.groups[index];
        if changes.whole(index) {
            // Every entry, then the removals among the items recorded.
            for ((k, n), stored) in group.iter() {
                self.write_changed(state, k, n, stored, writer, now)?;
            }
            return changes.for_each(index, |(k, n)| {
                if group.contains_key(&Lookup(k, n)) {
                    return Ok(());
                }
                writer.removal(state, k, n)
            });
        }
        changes.for_each(index, |(k, n)| match group.get(&Lookup(k, n)) {
            Some(stored) => self.write_changed(state, k, n, stored, writer, now),
            None => writer.removal(state, k, n),
        })
    }
}

impl<K: StateKey, N: StateKey, S, F> TableCapture<K, N, S, F> {
    /// Writes a changed entry to a delta: its records (a map's after a removal of the
    /// entries it had), or a removal when everything it holds has expired.
    fn write_changed(
        &self,
        state: u16,
        k: &K,
        n: &N,
        stored: &S,
        writer: &mut SnapshotWriter,
        now: u64,
    ) -> Result<()> {
        if self.map {
            writer.removal(state, k, n)?;
        }
        let wrote = (self.write)(self.filter.as_ref(), state, k, n, stored, writer, now)?;
        if !wrote && !self.map {
            // Everything it holds has expired: gone, as a full snapshot would have it.
            writer.removal(state, k, n)?;
        }
        Ok(())
    }
}

fn write_value<K: StateKey, N: StateKey, V: StateValue>(
    filter: Option<&SnapshotFilter<V>>,
    state: u16,
    k: &K,
    n: &N,
    v: &V,
    writer: &mut SnapshotWriter,
    now: u64,
) -> Result<bool> {
    if filter.is_none_or(|f| f(v, now)) {
        writer.record(state, k, n, None::<&()>, v)?;
        return Ok(true);
    }
    Ok(false)
}

fn write_list<K: StateKey, N: StateKey, T: StateValue>(
    filter: Option<&SnapshotFilter<T>>,
    state: u16,
    k: &K,
    n: &N,
    list: &Vec<T>,
    writer: &mut SnapshotWriter,
    now: u64,
) -> Result<bool> {
    match filter {
        Some(f) if !list.iter().all(|v| f(v, now)) => {
            let live: Vec<&T> = list.iter().filter(|v| f(v, now)).collect();
            if live.is_empty() {
                return Ok(false);
            }
            writer.record(state, k, n, None::<&()>, &live)?;
        }
        _ => writer.record(state, k, n, None::<&()>, list)?,
    }
    Ok(true)
}

fn write_map<K: StateKey, N: StateKey, UK: StateKey, UV: StateValue>(
    filter: Option<&SnapshotFilter<UV>>,
    state: u16,
    k: &K,
    n: &N,
    map: &HashMap<UK, UV>,
    writer: &mut SnapshotWriter,
    now: u64,
) -> Result<bool> {
    let mut wrote = false;
    for (uk, uv) in map {
        if filter.is_none_or(|f| f(uv, now)) {
            writer.record(state, k, n, Some(uk), uv)?;
            wrote = true;
        }
    }
    Ok(wrote)
}

macro_rules! registered {
    ($ty:ident < $($g:ident),+ >, $write:expr, $map:expr, $($bounds:tt)+) => {
        impl<$($g),+> Registered for $ty<$($g),+>
        where
            $($bounds)+
        {
            fn capture(&self) -> Result<Box<dyn Captured>> {
                Ok(Box::new(TableCapture {
                    groups: self.table.captured_groups()?,
                    filter: self.filter.clone(),
                    changes: None,
                    write: $write,
                    map: $map,
                }))
            }
            fn capture_changes(&self, id: CheckpointId) -> Result<Box<dyn Captured>> {
                let (groups, changes) = self.table.captured_changes(id)?;
                Ok(Box::new(TableCapture {
                    groups,
                    filter: self.filter.clone(),
                    changes: Some(changes),
                    write: $write,
                    map: $map,
                }))
            }
            fn confirm(&self, id: CheckpointId) -> Result<()> {
                self.table.confirm(id)
            }
            fn pending_changes(&self) -> Result<usize> {
                self.table.pending_changes()
            }
            fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
                self
            }
        }
    };
}

registered!(HeapValueTable<K, V, N>, write_value::<K, N, V>, false, K: StateKey, N: StateKey, V: StateValue);
registered!(HeapListTable<K, T, N>, write_list::<K, N, T>, false, K: StateKey, N: StateKey, T: StateValue);
registered!(
    HeapMapTable<K, UK, UV, N>,
    write_map::<K, N, UK, UV>,
    true,
    K: StateKey, N: StateKey, UK: StateKey, UV: StateValue
);
