//! Restores: the records of full snapshots, kept serialized per key group until their state
//! is registered.

use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cornerstone_backend_api::keygroup::KeyGroupAssigner;
use cornerstone_backend_api::migration::Migration;
use cornerstone_backend_api::spi::keyed_format::{
    Fields, KeyedSnapshotHeader, Record, Span, read_key_groups, unshare,
};
use cornerstone_backend_api::{
    Error, KeyGroupRange, KeyGroupsStateHandle, KeyedBackendParams, Result, StateKind, StateMeta,
};

use crate::parallel;

/// The restored records of one state in one key group, kept as the stream stored them:
/// spans of the blocks read, in the order they were read; shared with the blocks where a
/// span covers a whole block, copied where a block also holds other records ([`unshare`]).
///
/// Records of a changelog's deltas follow those of its base, in the order they apply; a
/// record says itself whether it is a removal.
#[derive(Clone, Default)]
pub(super) struct RawGroup {
    spans: Vec<Span>,
    removals: bool,
}

impl RawGroup {
    /// Appends `record`; whether it started a span.
    fn push(&mut self, record: &Record<'_>) -> bool {
        self.removals |= record.removed;
        if let Some(last) = self.spans.last_mut()
            && last.extend(record.stored)
        {
            return false;
        }
        self.spans.push(Span::new(record.stored));
        true
    }

    /// Copies the spans that cover part of a block ([`unshare`]), once the block is parsed.
    fn unshare(&mut self) {
        self.spans = unshare(std::mem::take(&mut self.spans));
    }

    pub(super) fn len(&self) -> usize {
        self.spans.iter().map(Span::len).sum()
    }

    /// Moves the records of `other` after those of `self`.
    fn append(&mut self, mut other: RawGroup) {
        self.spans.append(&mut other.spans);
        self.removals |= other.removals;
    }

    /// Whether any record is a removal (records of a changelog's deltas).
    pub(super) fn has_removals(&self) -> bool {
        self.removals
    }

    /// The records, each with whether it is a removal; an error means that memory was
    /// damaged (the records were parsed when read), and is reported, not ignored.
    pub(super) fn records(&self) -> impl Iterator<Item = Result<(Fields<'_>, bool)>> {
        self.spans.iter().flat_map(Span::records)
    }
}

pub(super) struct Restored {
    pub(super) meta: StateMeta,
    /// Per key-group index in the backend's range; shared with snapshots that carry the
    /// state over unregistered.
    pub(super) groups: Arc<Vec<RawGroup>>,
}

/// Bytes of a handle below which its key groups are read by one thread.
const MIN_BYTES_PER_PART: u64 = 4 * 1024 * 1024;

/// The key-group ranges of `wanted` (inside the handle's) read in parallel: contiguous, with
/// about the same number of bytes, at least [`MIN_BYTES_PER_PART`] each, at most `threads`.
fn read_parts(
    handle: &KeyGroupsStateHandle,
    wanted: KeyGroupRange,
    threads: usize,
) -> Vec<KeyGroupRange> {
    let offset = |kg: u32| {
        handle
            .offsets
            .get((kg - handle.range.first()) as usize)
            .copied()
            .unwrap_or_else(|| handle.stream.size())
    };
    let end = |kg: u32| {
        if kg < handle.range.last() {
            offset(kg + 1)
        } else {
            handle.stream.size()
        }
    };
    let bytes: Vec<u64> = wanted
        .iter()
        .map(|kg| end(kg).saturating_sub(offset(kg)))
        .collect();
    parallel::split(wanted, &bytes, MIN_BYTES_PER_PART, threads)
}

/// The records of `handle` in `part`, per state index of its header, then per key-group
/// index of the backend's range (only the indexes of `part` filled), and the header.
fn read_part(
    handle: &KeyGroupsStateHandle,
    params: &KeyedBackendParams,
    key_type: &str,
    part: KeyGroupRange,
) -> Result<Option<(KeyedSnapshotHeader, Vec<Vec<RawGroup>>)>> {
    let range = params.key_group_range;
    let key_groups = KeyGroupAssigner::new(params.max_parallelism)?;
    let groups = range.len() as usize;
    let mut local: Vec<Vec<RawGroup>> = Vec::new();
    // A span of the block being parsed, and the groups (state, index) with spans in it.
    let mut block: Option<Span> = None;
    let mut in_block: Vec<(usize, usize)> = Vec::new();
    let unshare_block = |local: &mut Vec<Vec<RawGroup>>, in_block: &mut Vec<(usize, usize)>| {
        for (state, index) in in_block.drain(..) {
            local[state][index].unshare();
        }
    };
    let mut visit = |header: &KeyedSnapshotHeader, record: Record<'_>| -> Result<()> {
        if local.is_empty() {
            header.check_key_type(key_type)?;
            local = vec![vec![RawGroup::default(); groups]; header.states.len()];
        }
        record.check_key_group(key_groups)?;
        if !block.as_ref().is_some_and(|b| b.same_block(record.stored)) {
            unshare_block(&mut local, &mut in_block);
            block = Some(Span::new(record.stored));
        }
        let state = record.state as usize;
        let (Some(state_groups), Some(index)) =
            (local.get_mut(state), range.index_of(record.key_group))
        else {
            return Err(Error::corrupted("snapshot record out of place")
                .with_context("key_group", record.key_group));
        };
        if state_groups[index].push(&record) {
            in_block.push((state, index));
        }
        Ok(())
    };
    let header = read_key_groups(handle, params.reader.as_deref(), part, &mut visit)?;
    unshare_block(&mut local, &mut in_block);
    Ok(header.map(|h| (h, local)))
}

pub(super) fn restore_handle(
    handle: &KeyGroupsStateHandle,
    params: &KeyedBackendParams,
    key_type: &str,
    threads: usize,
    restored: &mut BTreeMap<String, Restored>,
    stored: &mut BTreeSet<String>,
) -> Result<()> {
    let range = params.key_group_range;
    let groups = range.len() as usize;
    let wanted = handle.range.intersection(&range);
    if wanted.is_empty() {
        return Ok(());
    }
    // Large handles are read in parts, each by its own thread (range reads of one file).
    let parts = read_parts(handle, wanted, threads);
    let read = parallel::run_each(parts, "restore reader", |part| {
        read_part(handle, params, key_type, part)
    })?;
    let mut header = None;
    let mut local: Vec<Vec<RawGroup>> = Vec::new();
    for (h, part) in read.into_iter().flatten() {
        if local.is_empty() {
            local = part;
        } else {
            for (into, from) in local.iter_mut().zip(part) {
                for (into, from) in into.iter_mut().zip(from) {
                    into.append(from);
                }
            }
        }
        header.get_or_insert(h);
    }
    let Some(header) = header else {
        return Ok(());
    };
    header.check_key_type(key_type)?;
    stored.extend(header.states.iter().map(|m| m.name.clone()));
    let mapped = params.state_mapping.apply(&header.states)?;
    // Every state of the header is registered, also those without a record in our key
    // groups, so they are known (and type checked) all the same; dropped ones are not.
    let mut local = local.into_iter();
    for meta in mapped {
        let state_groups = local.next();
        let Some(meta) = meta else {
            continue;
        };
        match restored.entry(meta.name.clone()) {
            btree_map::Entry::Occupied(mut known) => {
                if known.get().meta != meta {
                    return Err(Error::invalid_input(
                        "restored handles disagree about a state's kind or types",
                    )
                    .with_context("state", &meta.name));
                }
                if let Some(state_groups) = state_groups {
                    let target = Arc::make_mut(&mut known.get_mut().groups);
                    for (into, from) in target.iter_mut().zip(state_groups) {
                        into.append(from);
                    }
                }
            }
            btree_map::Entry::Vacant(vacant) => {
                vacant.insert(Restored {
                    meta,
                    groups: Arc::new(
                        state_groups.unwrap_or_else(|| vec![RawGroup::default(); groups]),
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Records below which a restored state is decoded by one thread.
const MIN_RECORDS_PER_THREAD: u64 = 64 * 1024;

/// How the restored records of one state are decoded into a table's key groups: `fill`
/// decodes one record into its key group, after the value is migrated when `migration`
/// says so; `remove` applies a removal (of a changelog's delta).
pub(super) struct Fill<'a, G, F> {
    pub(super) state: &'a StateMeta,
    pub(super) migration: Option<&'a Migration>,
    pub(super) first_key_group: u32,
    pub(super) reserve: fn(&mut G, usize),
    pub(super) remove: fn(&mut G, Fields<'_>) -> Result<()>,
    pub(super) fill: F,
}

impl<G: Send, F: Fn(&mut G, Fields<'_>) -> Result<()> + Sync> Fill<'_, G, F> {
    /// Decodes `sources` (the restored records per key-group index) into `targets` (the
    /// table's key groups, same indexes), split by key-group ranges between up to
    /// `threads` threads when there are many records.
    pub(super) fn run(
        &self,
        mut targets: Vec<&mut G>,
        sources: &[RawGroup],
        threads: usize,
    ) -> Result<()> {
        let Some(last) = (targets.len() as u32).checked_sub(1) else {
            return Ok(());
        };
        let range = KeyGroupRange::new(self.first_key_group, self.first_key_group + last);
        let records: Vec<u64> = sources.iter().map(|g| g.len() as u64).collect();
        let parts = parallel::split(range, &records, MIN_RECORDS_PER_THREAD, threads);
        // The targets and sources of each part.
        let mut rest = &mut targets[..];
        let mut items = Vec::with_capacity(parts.len());
        for part in parts {
            let first = (part.first() - self.first_key_group) as usize;
            let len = part.len() as usize;
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
            items.push((head, &sources[first..first + len], first));
            rest = tail;
        }
        parallel::run_each(items, "restore decoder", |(targets, sources, first)| {
            self.range(targets, sources, first)
        })
        .map(drop)
    }

    /// Decodes the key groups from index `first` on.
    fn range(&self, targets: &mut [&mut G], sources: &[RawGroup], first: usize) -> Result<()> {
        let mut migrated: Vec<u8>;
        for (offset, (group, records)) in targets.iter_mut().zip(sources).enumerate() {
            let key_group = self.first_key_group + (first + offset) as u32;
            (self.reserve)(group, records.len());
            for record in records.records() {
                let (mut record, removed) = record?;
                if removed {
                    (self.remove)(group, record).map_err(|e| {
                        e.with_context("state", &self.state.name)
                            .with_context("key_group", key_group)
                    })?;
                    continue;
                }
                if let Some(m) = self.migration {
                    migrated = if self.state.kind == StateKind::List {
                        m.list(record.value)
                    } else {
                        m.value(record.value)
                    }
                    .map_err(|e| e.with_context("key_group", key_group))?;
                    record.value = &migrated;
                }
                (self.fill)(group, record).map_err(|e| {
                    e.with_context("state", &self.state.name)
                        .with_context("key_group", key_group)
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cornerstone_backend_api::{FileStateHandle, StateScope, StreamStateHandle};

    /// A handle of key groups 0..=7, 2 MiB each.
    fn handle() -> KeyGroupsStateHandle {
        const MIB: u64 = 1024 * 1024;
        KeyGroupsStateHandle {
            range: KeyGroupRange::new(0, 7),
            offsets: (0..8).map(|i| i * 2 * MIB).collect(),
            stream: StreamStateHandle::File(FileStateHandle {
                path: "chk-1/f".into(),
                scope: StateScope::Exclusive,
                size: 16 * MIB,
                crc32: 0,
            }),
        }
    }

    #[test]
    fn large_handles_are_read_in_parts_of_about_equal_bytes() {
        let h = handle();
        let all = KeyGroupRange::new(0, 7);
        // 16 MiB: at most 4 parts of 4 MiB.
        assert_eq!(
            read_parts(&h, all, 8),
            [(0, 1), (2, 3), (4, 5), (6, 7)].map(|(a, b)| KeyGroupRange::new(a, b))
        );
        assert_eq!(
            read_parts(&h, all, 2),
            [KeyGroupRange::new(0, 3), KeyGroupRange::new(4, 7)]
        );
        assert_eq!(read_parts(&h, all, 1), [all]);
        // 6 MiB wanted: one part.
        let some = KeyGroupRange::new(5, 7);
        assert_eq!(read_parts(&h, some, 8), [some]);
    }
}
