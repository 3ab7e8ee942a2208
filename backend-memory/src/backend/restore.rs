//! Restores: the records of full snapshots, kept serialized per key group until their state
//! is registered.

use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cornerstone_backend_api::keygroup::key_group_for_bytes;
use cornerstone_backend_api::spi::keyed_format::{KeyedSnapshotHeader, Record, read_key_groups};
use cornerstone_backend_api::{Error, KeyGroupsStateHandle, KeyedBackendParams, Result, StateMeta};

/// One restored record, still serialized: slices of its key group's [`RawGroup`] bytes.
#[derive(Clone, Copy)]
pub(super) struct RawRecord<'a> {
    pub(super) key: &'a [u8],
    pub(super) namespace: &'a [u8],
    pub(super) user_key: Option<&'a [u8]>,
    pub(super) value: &'a [u8],
}

/// Where one record's parts are in [`RawGroup::bytes`]: they follow each other in the order
/// key, namespace, user key, value.
#[derive(Clone, Copy)]
struct RawSpan {
    start: usize,
    key: u32,
    namespace: u32,
    /// `u32::MAX` for records without a user key.
    user_key: u32,
    value: u32,
}

/// The restored records of one key group, still serialized, in one buffer (a restore
/// allocates per key group, not per record).
#[derive(Clone, Default)]
pub(super) struct RawGroup {
    bytes: Vec<u8>,
    spans: Vec<RawSpan>,
}

impl RawGroup {
    fn push(&mut self, record: &Record<'_>) -> Result<()> {
        let len = |part: &[u8]| {
            u32::try_from(part.len())
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| {
                    Error::corrupted("restored record part over 4 GiB")
                        .with_context("key_group", record.key_group)
                })
        };
        let span = RawSpan {
            start: self.bytes.len(),
            key: len(record.key)?,
            namespace: len(record.namespace)?,
            user_key: match record.user_key {
                Some(uk) => len(uk)?,
                None => u32::MAX,
            },
            value: len(record.value)?,
        };
        self.bytes.extend_from_slice(record.key);
        self.bytes.extend_from_slice(record.namespace);
        if let Some(uk) = record.user_key {
            self.bytes.extend_from_slice(uk);
        }
        self.bytes.extend_from_slice(record.value);
        self.spans.push(span);
        Ok(())
    }

    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Moves the records of `other` after those of `self`.
    fn append(&mut self, mut other: RawGroup) {
        if self.spans.is_empty() {
            *self = other;
            return;
        }
        let shift = self.bytes.len();
        self.bytes.append(&mut other.bytes);
        self.spans
            .extend(other.spans.into_iter().map(|span| RawSpan {
                start: span.start + shift,
                ..span
            }));
    }

    pub(super) fn records(&self) -> impl Iterator<Item = RawRecord<'_>> {
        self.spans.iter().map(|span| {
            let mut at = span.start;
            let mut take = |n: u32| {
                let part = &self.bytes[at..at + n as usize];
                at += n as usize;
                part
            };
            let key = take(span.key);
            let namespace = take(span.namespace);
            let user_key = (span.user_key != u32::MAX).then(|| take(span.user_key));
            let value = take(span.value);
            RawRecord {
                key,
                namespace,
                user_key,
                value,
            }
        })
    }
}

pub(super) struct Restored {
    pub(super) meta: StateMeta,
    /// Per key-group index in the backend's range; shared with snapshots that carry the
    /// state over unregistered.
    pub(super) groups: Arc<Vec<RawGroup>>,
}

pub(super) fn restore_handle(
    handle: &KeyGroupsStateHandle,
    params: &KeyedBackendParams,
    key_type: &str,
    restored: &mut BTreeMap<String, Restored>,
    stored: &mut BTreeSet<String>,
) -> Result<()> {
    let range = params.key_group_range;
    let max_parallelism = params.max_parallelism;
    let groups = range.len() as usize;
    // This handle's records, per state index of its header, then per key-group index.
    let mut local: Vec<Vec<RawGroup>> = Vec::new();
    let mut visit = |header: &KeyedSnapshotHeader, record: Record<'_>| -> Result<()> {
        if local.is_empty() {
            header.check_key_type(key_type)?;
            local = vec![vec![RawGroup::default(); groups]; header.states.len()];
        }
        if key_group_for_bytes(record.key, max_parallelism) != record.key_group {
            return Err(Error::corrupted(
                "a restored key does not hash to its key group (was the max parallelism changed?)",
            )
            .with_context("key_group", record.key_group)
            .with_context("max_parallelism", max_parallelism));
        }
        let (Some(state_groups), Some(index)) = (
            local.get_mut(record.state as usize),
            range.index_of(record.key_group),
        ) else {
            return Err(Error::corrupted("snapshot record out of place")
                .with_context("key_group", record.key_group));
        };
        state_groups[index].push(&record)
    };
    let Some(header) = read_key_groups(handle, params.reader.as_deref(), range, &mut visit)? else {
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
