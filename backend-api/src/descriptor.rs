//! State descriptors: a name, serde types, and for reducing and aggregating state the
//! function that folds values in.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::{StateType, split_version};
use crate::migration::Migrations;
use crate::ttl::StateTtlConfig;

/// What keys, namespaces and map keys need: a stable [identity](StateType), serde,
/// hashing, equality, cloning.
pub trait StateKey:
    StateType + Serialize + DeserializeOwned + Hash + Eq + Clone + Send + Sync + 'static
{
}
impl<T: StateType + Serialize + DeserializeOwned + Hash + Eq + Clone + Send + Sync + 'static>
    StateKey for T
{
}

/// What values need: a stable [identity](StateType), serde and cloning.
pub trait StateValue:
    StateType + Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
}
impl<T: StateType + Serialize + DeserializeOwned + Clone + Send + Sync + 'static> StateValue for T {}

/// The namespace of state that is not scoped by a window: `()`.
pub type VoidNamespace = ();

/// The kinds of keyed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateKind {
    /// One value per key and namespace.
    Value,
    /// A list per key and namespace.
    List,
    /// A map per key and namespace.
    Map,
    /// A value folded with a reduce function.
    Reducing,
    /// An accumulator folded with an aggregate function.
    Aggregating,
    /// The timers of one [`TimeDomain`](crate::timer::TimeDomain) of a timer service: a
    /// key-grouped priority queue (Flink's `PRIORITY_QUEUE` state).
    Timers,
}

impl StateKind {
    /// The kind's lowercase name, as tools print it: `value`, `list`, `map`, `reducing`,
    /// `aggregating`, `timers`.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::Reducing => "reducing",
            StateKind::Aggregating => "aggregating",
            StateKind::Timers => "timers",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateKind::Value => "ValueState",
            StateKind::List => "ListState",
            StateKind::Map => "MapState",
            StateKind::Reducing => "ReducingState",
            StateKind::Aggregating => "AggregatingState",
            StateKind::Timers => "Timers",
        })
    }
}

/// What a snapshot records about each keyed state, so that a restore with an incompatible
/// descriptor fails with a clear error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateMeta {
    /// The state's name, unique within a backend.
    pub name: String,
    /// Its kind.
    pub kind: StateKind,
    /// The namespace type.
    pub namespace_type: String,
    /// The map key type (map state only).
    pub user_key_type: Option<String>,
    /// The value type: the value, the list element, the map value, or the accumulator.
    pub value_type: String,
    /// Whether values carry a TTL timestamp.
    pub ttl: bool,
}

impl StateMeta {
    /// Checks that state written as `self` can be read as `requested`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the state and the first field that differs,
    /// with both values.
    pub fn check_compatible(&self, requested: &StateMeta) -> Result<()> {
        let mismatch = |what: &str, stored: String, asked: String| {
            Err(Error::invalid_input(format!(
                "state '{}' cannot be restored with this descriptor: its {what} differs",
                self.name
            ))
            .with_context("stored", stored)
            .with_context("requested", asked))
        };
        if self.kind != requested.kind {
            return mismatch("kind", self.kind.to_string(), requested.kind.to_string());
        }
        if self.namespace_type != requested.namespace_type {
            return mismatch(
                "namespace type",
                self.namespace_type.clone(),
                requested.namespace_type.clone(),
            );
        }
        if self.user_key_type != requested.user_key_type {
            return mismatch(
                "map key type",
                format!("{:?}", self.user_key_type),
                format!("{:?}", requested.user_key_type),
            );
        }
        if self.value_type != requested.value_type {
            let (stored_name, stored_version) = split_version(&self.value_type);
            let (asked_name, asked_version) = split_version(&requested.value_type);
            if stored_name == asked_name {
                return Err(Error::invalid_input(format!(
                    "state '{}' holds schema version {stored_version} of '{stored_name}'; this \
                     descriptor reads version {asked_version}",
                    self.name
                ))
                .with_context("stored", &self.value_type)
                .with_context("requested", &requested.value_type));
            }
            return mismatch(
                "value type",
                self.value_type.clone(),
                requested.value_type.clone(),
            );
        }
        if self.ttl != requested.ttl {
            return mismatch(
                "TTL setting (TTL cannot be switched on or off for restored state)",
                self.ttl.to_string(),
                requested.ttl.to_string(),
            );
        }
        Ok(())
    }
}

/// The name of a type as recorded in snapshots: its [identity](StateType), unless a
/// descriptor sets another.
fn default_type_name<T: StateType>() -> Cow<'static, str> {
    T::type_identity()
}

macro_rules! descriptor_common {
    ($value:ident) => {
        /// The state's name.
        pub fn name(&self) -> &str {
            &self.name
        }

        /// Enables TTL for this state.
        #[must_use]
        pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
            self.ttl = Some(ttl);
            self
        }

        /// The TTL configuration, if any.
        pub fn ttl(&self) -> Option<&StateTtlConfig> {
            self.ttl.as_ref()
        }

        /// Reads restored state whose values were written as `Old` (another type identity,
        /// or an earlier schema version of this one) by converting each value with `f`.
        /// See [`crate::migration`].
        #[must_use]
        pub fn migrate_from<Old: StateValue>(
            self,
            f: impl Fn(Old) -> $value + Send + Sync + 'static,
        ) -> Self {
            self.migrate::<Old, $value>(f)
        }

        /// One step of a migration chain: values written as `Old` become `New`, which
        /// further steps (or nothing, when `New` is this state's type) carry on. A second
        /// step from `Old` replaces the first.
        #[must_use]
        pub fn migrate<Old: StateValue, New: StateValue>(
            mut self,
            f: impl Fn(Old) -> New + Send + Sync + 'static,
        ) -> Self {
            self.migrations.add(f);
            self
        }

        /// Records `name` as the value type in snapshots instead of the type's
        /// [identity](StateType).
        #[must_use]
        pub fn with_type_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
            self.value_type = name.into();
            self
        }
    };
}

/// Declares a [`crate::ValueState`].
pub struct ValueStateDescriptor<V> {
    pub(crate) name: String,
    pub(crate) ttl: Option<StateTtlConfig>,
    pub(crate) migrations: Migrations,
    pub(crate) value_type: Cow<'static, str>,
    _v: PhantomData<fn() -> V>,
}

impl<V: StateValue> ValueStateDescriptor<V> {
    /// A value state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ValueStateDescriptor {
            name: name.into(),
            ttl: None,
            migrations: Migrations::default(),
            value_type: default_type_name::<V>(),
            _v: PhantomData,
        }
    }
    descriptor_common!(V);
}

/// Declares a [`crate::ListState`] of elements `T`.
pub struct ListStateDescriptor<T> {
    pub(crate) name: String,
    pub(crate) ttl: Option<StateTtlConfig>,
    pub(crate) migrations: Migrations,
    pub(crate) value_type: Cow<'static, str>,
    _t: PhantomData<fn() -> T>,
}

impl<T: StateValue> ListStateDescriptor<T> {
    /// A list state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ListStateDescriptor {
            name: name.into(),
            ttl: None,
            migrations: Migrations::default(),
            value_type: default_type_name::<T>(),
            _t: PhantomData,
        }
    }
    descriptor_common!(T);
}

/// Declares a [`crate::MapState`] from `UK` to `UV`.
pub struct MapStateDescriptor<UK, UV> {
    pub(crate) name: String,
    pub(crate) ttl: Option<StateTtlConfig>,
    pub(crate) migrations: Migrations,
    pub(crate) user_key_type: Cow<'static, str>,
    pub(crate) value_type: Cow<'static, str>,
    _t: PhantomData<fn() -> (UK, UV)>,
}

impl<UK: StateKey, UV: StateValue> MapStateDescriptor<UK, UV> {
    /// A map state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MapStateDescriptor {
            name: name.into(),
            ttl: None,
            migrations: Migrations::default(),
            user_key_type: default_type_name::<UK>(),
            value_type: default_type_name::<UV>(),
            _t: PhantomData,
        }
    }
    descriptor_common!(UV);

    /// Records `name` as the map key type in snapshots instead of the type's
    /// [identity](StateType).
    #[must_use]
    pub fn with_key_type_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.user_key_type = name.into();
        self
    }
}

/// The reduce function of a reducing state: folds a new value into the current one.
pub type ReduceFn<V> = Arc<dyn Fn(V, V) -> V + Send + Sync>;

/// Declares a [`crate::ReducingState`].
pub struct ReducingStateDescriptor<V> {
    pub(crate) name: String,
    pub(crate) ttl: Option<StateTtlConfig>,
    pub(crate) migrations: Migrations,
    pub(crate) value_type: Cow<'static, str>,
    pub(crate) reduce: ReduceFn<V>,
}

impl<V: StateValue> ReducingStateDescriptor<V> {
    /// A reducing state named `name` that folds values with `reduce(current, new)`.
    pub fn new(
        name: impl Into<String>,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            ttl: None,
            migrations: Migrations::default(),
            value_type: default_type_name::<V>(),
            reduce: Arc::new(reduce),
        }
    }
    descriptor_common!(V);
}

/// An aggregate function: folds inputs `IN` into an accumulator `ACC` and reads a result
/// `OUT` from it, like Flink's `AggregateFunction`.
pub trait AggregateFunction<IN, ACC, OUT>: Send + Sync {
    /// A fresh accumulator.
    fn create_accumulator(&self) -> ACC;
    /// Folds `value` into `acc`.
    fn add(&self, value: IN, acc: ACC) -> ACC;
    /// The result of an accumulator.
    fn result(&self, acc: &ACC) -> OUT;
    /// Merges two accumulators (used when namespaces merge, as session windows do).
    fn merge(&self, a: ACC, b: ACC) -> ACC;
}

/// Declares a [`crate::AggregatingState`].
pub struct AggregatingStateDescriptor<IN, ACC, OUT> {
    pub(crate) name: String,
    pub(crate) ttl: Option<StateTtlConfig>,
    pub(crate) migrations: Migrations,
    pub(crate) value_type: Cow<'static, str>,
    pub(crate) function: Arc<dyn AggregateFunction<IN, ACC, OUT>>,
}

impl<IN, ACC: StateValue, OUT> AggregatingStateDescriptor<IN, ACC, OUT> {
    /// An aggregating state named `name` with accumulator type `ACC`.
    pub fn new(
        name: impl Into<String>,
        function: impl AggregateFunction<IN, ACC, OUT> + 'static,
    ) -> Self {
        AggregatingStateDescriptor {
            name: name.into(),
            ttl: None,
            migrations: Migrations::default(),
            value_type: default_type_name::<ACC>(),
            function: Arc::new(function),
        }
    }
    descriptor_common!(ACC);
}

macro_rules! debug_descriptor {
    ($ty:ident < $($g:ident),+ >) => {
        impl<$($g),+> fmt::Debug for $ty<$($g),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &self.name)
                    .field("value_type", &self.value_type)
                    .field("ttl", &self.ttl)
                    .finish_non_exhaustive()
            }
        }
    };
}
debug_descriptor!(ValueStateDescriptor<V>);
debug_descriptor!(ListStateDescriptor<T>);
debug_descriptor!(MapStateDescriptor<UK, UV>);
debug_descriptor!(ReducingStateDescriptor<V>);
debug_descriptor!(AggregatingStateDescriptor<IN, ACC, OUT>);

/// The type name recorded for the namespace type `N`: its identity.
pub(crate) fn namespace_type_name<N: StateType>() -> String {
    N::type_identity().into_owned()
}
