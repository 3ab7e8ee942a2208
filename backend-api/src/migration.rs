//! Schema migration of restored state: values written as one type read as another.
//!
//! A descriptor registers migrations, each from an old type to a newer one
//! ([`ValueStateDescriptor::migrate_from`](crate::ValueStateDescriptor::migrate_from) for
//! the usual case, old type to the descriptor's, or `migrate::<Old, Next>` for one step of
//! a chain). When a restored state's value type differs from the descriptor's, the backend
//! [resolves](resolve) a chain of registered steps from the stored identity to the
//! descriptor's and rewrites the stored values through it, at registration: the heap
//! backends as they decode the restored records, RocksDB by rewriting the state's column
//! family once (so reads afterwards cost nothing more, and the next snapshot holds the new
//! type). Without such a chain the registration fails with an error naming the state,
//! both identities, and what to register.
//!
//! ```
//! use cornerstone_backend_api::{ValueStateDescriptor, state_type};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct ClickV1 { page: String }
//! state_type!(ClickV1, "com.example.Click");
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct Click { page: String, referrer: Option<String> }
//! state_type!(Click, "com.example.Click", version = 2);
//!
//! let clicks = ValueStateDescriptor::<Click>::new("clicks")
//!     .migrate_from(|old: ClickV1| Click { page: old.page, referrer: None });
//! # let _ = clicks;
//! ```
//!
//! Map keys, keys and namespaces are not migrated: their bytes place entries (key groups,
//! RocksDB's order), so a change to them is a new state.

use std::fmt;
use std::sync::Arc;

use crate::descriptor::{StateKind, StateMeta, StateValue};
use crate::error::{Error, Result};
use crate::identity::split_version;
use crate::spi::codec;

/// Migrates the value at the front of the bytes: its new bytes and the length it took.
type StepFn = dyn Fn(&[u8]) -> Result<(Vec<u8>, usize)> + Send + Sync;

/// One registered step: values of identity `from` become values of identity `to`.
#[derive(Clone)]
struct Step {
    from: String,
    to: String,
    apply: Arc<StepFn>,
}

/// The migrations a descriptor registered (none by default).
#[derive(Clone, Default)]
pub struct Migrations {
    steps: Vec<Step>,
}

impl fmt::Debug for Migrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| format!("{} -> {}", s.from, s.to)))
            .finish()
    }
}

impl Migrations {
    /// Adds the step from `Old` to `New` through `f`.
    pub(crate) fn add<Old: StateValue, New: StateValue>(
        &mut self,
        f: impl Fn(Old) -> New + Send + Sync + 'static,
    ) {
        let from = Old::type_identity().into_owned();
        let to = New::type_identity().into_owned();
        let apply = move |bytes: &[u8]| -> Result<(Vec<u8>, usize)> {
            let (old, len) = codec::decode_prefix::<Old>(bytes)?;
            Ok((codec::encode(&f(old))?, len))
        };
        self.steps.retain(|s| s.from != from);
        self.steps.push(Step {
            from,
            to,
            apply: Arc::new(apply),
        });
    }

    /// Whether no migration is registered.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The chain of steps from identity `from` to identity `to`, if the registered steps
    /// make one (each step's source taken once, so a cycle ends the search).
    fn chain(&self, from: &str, to: &str) -> Option<Vec<Step>> {
        let mut chain: Vec<Step> = Vec::new();
        let mut at = from;
        while at != to {
            let step = self.steps.iter().find(|s| s.from == at)?;
            if chain.iter().any(|s| s.from == step.from) {
                return None;
            }
            chain.push(step.clone());
            at = &chain[chain.len() - 1].to;
        }
        Some(chain)
    }
}

/// A resolved migration of one state's values: the chain of steps from the stored value
/// type to the descriptor's.
#[derive(Clone)]
pub struct Migration {
    chain: Vec<Step>,
    ttl: bool,
    state: String,
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("state", &self.state)
            .field("from", &self.from())
            .field("to", &self.to())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Migration {
    /// The stored value identity.
    pub fn from(&self) -> &str {
        self.chain.first().map_or("", |s| s.from.as_str())
    }

    /// The descriptor's value identity.
    pub fn to(&self) -> &str {
        self.chain.last().map_or("", |s| s.to.as_str())
    }

    fn error(&self, e: Error) -> Error {
        e.with_context("state", &self.state)
            .with_context("migrating_from", self.from())
            .with_context("migrating_to", self.to())
    }

    /// Migrates the one value or list element at the front of `bytes` (after its 8-byte
    /// TTL timestamp, kept as it is, for a TTL state): its new bytes and the length it took.
    ///
    /// # Errors
    /// Decoding errors of the old type, naming the state and both identities.
    pub fn element(&self, bytes: &[u8]) -> Result<(Vec<u8>, usize)> {
        let (prefix, rest) = if self.ttl {
            bytes.split_at_checked(8).ok_or_else(|| {
                self.error(Error::corrupted("TTL value shorter than its timestamp"))
                    .with_context("len", bytes.len())
            })?
        } else {
            (&[][..], bytes)
        };
        let mut current: Vec<u8>;
        let (first, taken) = (self.chain[0].apply)(rest).map_err(|e| self.error(e))?;
        current = first;
        for step in &self.chain[1..] {
            let (next, len) = (step.apply)(&current).map_err(|e| self.error(e))?;
            if len != current.len() {
                return Err(self.error(Error::corrupted(
                    "a migration step left bytes of the value it read",
                )));
            }
            current = next;
        }
        let mut out = Vec::with_capacity(prefix.len() + current.len());
        out.extend_from_slice(prefix);
        out.extend_from_slice(&current);
        Ok((out, prefix.len() + taken))
    }

    /// Migrates a whole stored value (a value, a reducing or aggregating state's value, a
    /// map entry's value).
    ///
    /// # Errors
    /// As [`element`](Self::element), and when bytes are left after the value.
    pub fn value(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let (out, len) = self.element(bytes)?;
        if len != bytes.len() {
            return Err(self
                .error(Error::corrupted("bytes left after a migrated value"))
                .with_context("len", bytes.len())
                .with_context("value_len", len));
        }
        Ok(out)
    }

    /// Migrates elements stored one after the other (RocksDB's list layout).
    ///
    /// # Errors
    /// As [`element`](Self::element).
    pub fn elements(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        self.walk(bytes).map(|(out, _)| out)
    }

    /// The migrated elements of `bytes` and their count.
    fn walk(&self, mut bytes: &[u8]) -> Result<(Vec<u8>, u64)> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut n = 0u64;
        while !bytes.is_empty() {
            let (element, len) = self.element(bytes)?;
            if len == 0 {
                return Err(self.error(Error::corrupted("a list element of no bytes")));
            }
            out.extend_from_slice(&element);
            bytes = &bytes[len..];
            n += 1;
        }
        Ok((out, n))
    }

    /// Migrates a serialized list (a `u64` count, then the elements): the heap backends'
    /// list records.
    ///
    /// # Errors
    /// As [`element`](Self::element), and for a count that differs from the elements.
    pub fn list(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let (count, body) = codec::decode_prefix::<u64>(bytes).map_err(|e| self.error(e))?;
        let (migrated, n) = self.walk(&bytes[body..])?;
        if n != count {
            return Err(self
                .error(Error::corrupted("list count differs from its elements"))
                .with_context("count", count)
                .with_context("elements", n));
        }
        let mut out = codec::encode(&count)?;
        out.extend_from_slice(&migrated);
        Ok(out)
    }
}

/// Resolves how state written as `stored` is read as `requested`: `None` when the value
/// types are the same (and everything else is compatible), the migration when
/// `migrations` chain the stored value type to the requested one.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] naming the state when anything other than the value
/// type differs (see [`StateMeta::check_compatible`]), for a migration of a timer queue,
/// or when no registered chain leads from the stored value type to the requested one: the
/// error names both identities and the migration to register.
pub fn resolve(
    stored: &StateMeta,
    requested: &StateMeta,
    migrations: &Migrations,
) -> Result<Option<Migration>> {
    if stored.value_type == requested.value_type || migrations.is_empty() {
        stored.check_compatible(requested)?;
        return Ok(None);
    }
    // Everything but the value type must match.
    let mut same_value = requested.clone();
    same_value.value_type.clone_from(&stored.value_type);
    stored.check_compatible(&same_value)?;
    if stored.kind == StateKind::Timers {
        return Err(Error::invalid_input("timer queues cannot be migrated")
            .with_context("state", &stored.name));
    }
    match migrations.chain(&stored.value_type, &requested.value_type) {
        Some(chain) => Ok(Some(Migration {
            chain,
            ttl: stored.ttl,
            state: stored.name.clone(),
        })),
        None => {
            let (name, version) = split_version(&stored.value_type);
            Err(Error::invalid_input(format!(
                "state '{}' holds '{}' (schema version {version} of '{name}') and no \
                 registered migration leads from it to '{}': register one on the \
                 descriptor with migrate_from::<T>() for a T whose identity is '{}'",
                stored.name, stored.value_type, requested.value_type, stored.value_type
            ))
            .with_context("stored", &stored.value_type)
            .with_context("requested", &requested.value_type)
            .with_context("registered", format!("{migrations:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(value_type: &str, ttl: bool) -> StateMeta {
        StateMeta {
            name: "s".into(),
            kind: StateKind::Value,
            namespace_type: "()".into(),
            user_key_type: None,
            value_type: value_type.into(),
            ttl,
        }
    }

    #[test]
    fn chains_steps_and_keeps_ttl_timestamps() {
        let mut m = Migrations::default();
        m.add(|v: u8| u16::from(v) * 1000);
        m.add(|v: u16| u64::from(v) + 1);
        let mig = resolve(&meta("u8", true), &meta("u64", true), &m)
            .unwrap()
            .expect("a chain u8 -> u16 -> u64");
        assert_eq!((mig.from(), mig.to()), ("u8", "u64"));
        let mut stored = 42u64.to_be_bytes().to_vec();
        stored.push(7);
        let out = mig.value(&stored).unwrap();
        assert_eq!(&out[..8], &42u64.to_be_bytes());
        assert_eq!(codec::decode::<u64>(&out[8..]).unwrap(), 7001);
        // A list: count, then elements.
        let plain = resolve(&meta("u8", false), &meta("u64", false), &m)
            .unwrap()
            .unwrap();
        let list = codec::encode(&vec![1u8, 2]).unwrap();
        let out = plain.list(&list).unwrap();
        assert_eq!(codec::decode::<Vec<u64>>(&out).unwrap(), [1001, 2001]);
        // A count the elements do not match.
        let mut bad = list.clone();
        bad[7] = 3;
        assert!(plain.list(&bad).is_err());
    }

    #[test]
    fn unresolvable_and_incompatible_are_named() {
        let mut m = Migrations::default();
        m.add(|v: u8| u16::from(v));
        let err = resolve(&meta("u32", false), &meta("u16", false), &m).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("'s'") && text.contains("'u32'") && text.contains("migrate_from"));
        // TTL switched: refused even with a chain.
        assert!(resolve(&meta("u8", true), &meta("u16", false), &m).is_err());
        // No migration registered: the plain compatibility error.
        assert!(
            resolve(
                &meta("u8", false),
                &meta("u16", false),
                &Migrations::default()
            )
            .is_err()
        );
        // Same type: nothing to do.
        assert!(
            resolve(&meta("u8", false), &meta("u8", false), &m)
                .unwrap()
                .is_none()
        );
    }
}
