//! The backend traits: [`CheckpointableBackend`] (object-safe: snapshots and lifecycle),
//! [`KeyedStateBackend`] (the three table primitives), [`KeyedStateBackendExt`] (typed
//! states, TTL) and [`StateBackend`] (creates a subtask's backend, restoring it).

use std::fmt::Debug;
use std::sync::Arc;

use crate::clock::{SharedClock, system_clock};
use crate::descriptor::{
    AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    StateKey, StateKind, StateMeta, StateValue, ValueStateDescriptor, namespace_type_name,
};
use crate::error::{Error, Result};
use crate::handles::{CheckpointId, KeyedStateHandle, SubtaskState};
use crate::keygroup::{KeyGroupAssigner, KeyGroupRange, check_max_parallelism};
use crate::migration::Migrations;
use crate::rescale::StateMapping;
use crate::spi::table::{ListTable, MapTable, TableOptions, ValueTable};
use crate::state::{AggregatingState, ListState, MapState, ReducingState, ValueState};
use crate::stream::{CheckpointStreamFactory, StateReader};
use crate::timer::{TIMER_STATE_PREFIX, TIMESTAMP_TYPE, TimeDomain, TimerQueue, TimerService};
use crate::ttl::TtlValue;
use crate::ttl_table::{TtlListTable, TtlMapTable, TtlValueTable, snapshot_filter};

/// The asynchronous phase of a snapshot: writes the view captured by
/// [`CheckpointableBackend::snapshot`] while processing goes on.
pub trait AsyncSnapshot: Send + Debug {
    /// The checkpoint being written.
    fn checkpoint_id(&self) -> CheckpointId;

    /// Writes the snapshot through `streams` and returns its handles. Runs on any thread.
    ///
    /// # Errors
    /// Storage errors, or [`crate::ErrorKind::LimitExceeded`] when a cap is exceeded. A
    /// failed write fails this checkpoint only: the backend keeps working.
    fn write(self: Box<Self>, streams: &dyn CheckpointStreamFactory) -> Result<SubtaskState>;
}

/// What every keyed state backend offers whatever its key type: snapshots and lifecycle
/// (Flink's `Snapshotable` and `CheckpointListener`). Object-safe, so a coordinator can hold
/// `Arc<dyn CheckpointableBackend>`.
///
/// # Contract
/// - [`snapshot`](Self::snapshot) is the synchronous phase: it captures a view that holds
///   every write made before the call and none made after, and is short (it must not copy
///   or serialize the state);
/// - the returned [`AsyncSnapshot`] may run on another thread while writes go on;
/// - a failed snapshot leaves the backend working;
/// - a backend may bind its states to the thread that created it (the task thread, as
///   Flink runs a subtask; the heap backends do so by default, to take no lock per access):
///   then the states and the synchronous phase are used on that thread, and a use from
///   another thread is an error, never a data race.
pub trait CheckpointableBackend: Send + Sync + Debug {
    /// The backend's `NAME`, e.g. `"memory"`.
    fn name(&self) -> &'static str;

    /// The number of key groups of the job.
    fn max_parallelism(&self) -> u32;

    /// The key groups this backend owns.
    fn key_group_range(&self) -> KeyGroupRange;

    /// Every keyed state registered (or restored and not yet registered), by name order.
    fn registered_states(&self) -> Vec<StateMeta>;

    /// The synchronous phase of a snapshot.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Closed`] after close; engine errors.
    fn snapshot(&self, checkpoint_id: CheckpointId) -> Result<Box<dyn AsyncSnapshot>>;

    /// The synchronous phase of a savepoint: a self-contained snapshot in the canonical
    /// full format (key-group-indexed records, [`KeyedStateHandle::KeyGroups`]), which
    /// every backend restores, whatever backend wrote it (Flink's canonical savepoint).
    /// Backends whose checkpoints are native or incremental override it; for the others
    /// it is [`snapshot`](Self::snapshot).
    ///
    /// # Errors
    /// As [`snapshot`](Self::snapshot).
    fn savepoint(&self, checkpoint_id: CheckpointId) -> Result<Box<dyn AsyncSnapshot>> {
        self.snapshot(checkpoint_id)
    }

    /// The checkpoint completed: the backend may release what it kept for it.
    ///
    /// A confirmation may arrive late: after the synchronous phase of a newer checkpoint,
    /// which the store retains instead once it completes, deleting the shared files only
    /// the confirmed one referenced. An incremental backend must then not build its next
    /// checkpoints on those files (the conformance case
    /// `late_confirmation_references_no_file_the_newer_checkpoint_dropped`).
    ///
    /// # Errors
    /// Engine errors.
    fn notify_checkpoint_complete(&self, checkpoint_id: CheckpointId) -> Result<()>;

    /// The checkpoint was aborted.
    ///
    /// # Errors
    /// Engine errors.
    fn notify_checkpoint_aborted(&self, checkpoint_id: CheckpointId) -> Result<()>;
}

/// The storage primitives of a keyed backend for keys `K`. Engine code uses the typed
/// states of [`KeyedStateBackendExt`] instead.
///
/// Registering a name again with the same [`StateMeta`] returns the same table; with a
/// different one, an [`crate::ErrorKind::InvalidInput`] error. Restored state is checked
/// against the meta when its name is first registered.
pub trait KeyedStateBackend<K: StateKey>: CheckpointableBackend {
    /// A value table (also used by reducing and aggregating state).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when `meta` conflicts with a registered or
    /// restored state of that name.
    fn value_table<V: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<V>,
    ) -> Result<Arc<dyn ValueTable<K, V, N>>>;

    /// A list table.
    ///
    /// # Errors
    /// As [`value_table`](Self::value_table).
    fn list_table<T: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<T>,
    ) -> Result<Arc<dyn ListTable<K, T, N>>>;

    /// A map table.
    ///
    /// # Errors
    /// As [`value_table`](Self::value_table).
    fn map_table<UK: StateKey, UV: StateValue, N: StateKey>(
        &self,
        meta: StateMeta,
        options: TableOptions<UV>,
    ) -> Result<Arc<dyn MapTable<K, UK, UV, N>>>;

    /// The timer queue of `meta` (kind [`StateKind::Timers`]): what a
    /// [`TimerService`] keeps one domain's timers in. Registered, restored and snapshotted
    /// like the tables, under `meta.name`.
    ///
    /// # Errors
    /// As [`value_table`](Self::value_table).
    fn timer_queue(&self, meta: StateMeta) -> Result<Arc<dyn TimerQueue>>;

    /// The clock of TTL and of processing-time timers.
    fn clock(&self) -> SharedClock;
}

fn meta(
    name: &str,
    kind: StateKind,
    namespace_type: String,
    user_key_type: Option<String>,
    value_type: &str,
    ttl: bool,
) -> Result<StateMeta> {
    if name.is_empty() {
        return Err(Error::invalid_input("a state name must not be empty"));
    }
    if name.starts_with(TIMER_STATE_PREFIX) {
        return Err(Error::invalid_input(
            "state names starting with the timer prefix are kept for timer services",
        )
        .with_context("state", name)
        .with_context("prefix", TIMER_STATE_PREFIX));
    }
    Ok(StateMeta {
        name: name.to_owned(),
        kind,
        namespace_type,
        user_key_type,
        value_type: value_type.to_owned(),
        ttl,
    })
}

/// Table options without TTL, with the descriptor's `migrations`.
fn options<S>(migrations: &Migrations) -> TableOptions<S> {
    TableOptions {
        migrations: migrations.clone(),
        ..TableOptions::default()
    }
}

/// Typed keyed state, for every [`KeyedStateBackend`]: what operator code calls.
///
/// ```
/// use cornerstone_backend_api::{KeyedStateBackendExt, ValueStateDescriptor};
/// # fn demo<B: KeyedStateBackendExt<String>>(backend: &B) -> cornerstone_backend_api::Result<()> {
/// let counts = backend.value_state::<u64, ()>(&ValueStateDescriptor::new("count"))?;
/// let key = "alice".to_string();
/// let n = counts.get(&key, &())?.unwrap_or(0);
/// counts.update(&key, &(), n + 1)?;
/// # Ok(()) }
/// ```
pub trait KeyedStateBackendExt<K: StateKey>: KeyedStateBackend<K> {
    /// A [`ValueState`] in namespace type `N`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when the descriptor conflicts with the registered
    /// or restored state of that name.
    fn value_state<V: StateValue, N: StateKey>(
        &self,
        descriptor: &ValueStateDescriptor<V>,
    ) -> Result<ValueState<K, V, N>> {
        let table = value_table_for::<K, V, N, Self>(
            self,
            &descriptor.name,
            StateKind::Value,
            &descriptor.value_type,
            descriptor.ttl.as_ref(),
            &descriptor.migrations,
        )?;
        Ok(ValueState::new(&descriptor.name, table))
    }

    /// A [`ListState`].
    ///
    /// # Errors
    /// As [`value_state`](Self::value_state).
    fn list_state<T: StateValue, N: StateKey>(
        &self,
        descriptor: &ListStateDescriptor<T>,
    ) -> Result<ListState<K, T, N>> {
        let ttl = descriptor.ttl.as_ref();
        let m = meta(
            &descriptor.name,
            StateKind::List,
            namespace_type_name::<N>(),
            None,
            &descriptor.value_type,
            ttl.is_some(),
        )?;
        let table: Arc<dyn ListTable<K, T, N>> = match ttl {
            None => self.list_table::<T, N>(m, options(&descriptor.migrations))?,
            Some(config) => {
                let inner = self.list_table::<TtlValue<T>, N>(
                    m,
                    TableOptions {
                        snapshot_filter: snapshot_filter::<T>(config),
                        ttl: Some(config.clone()),
                        migrations: descriptor.migrations.clone(),
                    },
                )?;
                Arc::new(TtlListTable::new(inner, config.clone(), self.clock()))
            }
        };
        Ok(ListState::new(&descriptor.name, table))
    }

    /// A [`MapState`].
    ///
    /// # Errors
    /// As [`value_state`](Self::value_state).
    fn map_state<UK: StateKey, UV: StateValue, N: StateKey>(
        &self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<MapState<K, UK, UV, N>> {
        let ttl = descriptor.ttl.as_ref();
        let m = meta(
            &descriptor.name,
            StateKind::Map,
            namespace_type_name::<N>(),
            Some(descriptor.user_key_type.to_string()),
            &descriptor.value_type,
            ttl.is_some(),
        )?;
        let table: Arc<dyn MapTable<K, UK, UV, N>> = match ttl {
            None => self.map_table::<UK, UV, N>(m, options(&descriptor.migrations))?,
            Some(config) => {
                let inner = self.map_table::<UK, TtlValue<UV>, N>(
                    m,
                    TableOptions {
                        snapshot_filter: snapshot_filter::<UV>(config),
                        ttl: Some(config.clone()),
                        migrations: descriptor.migrations.clone(),
                    },
                )?;
                Arc::new(TtlMapTable::new(inner, config.clone(), self.clock()))
            }
        };
        Ok(MapState::new(&descriptor.name, table))
    }

    /// A [`ReducingState`].
    ///
    /// # Errors
    /// As [`value_state`](Self::value_state).
    fn reducing_state<V: StateValue, N: StateKey>(
        &self,
        descriptor: &ReducingStateDescriptor<V>,
    ) -> Result<ReducingState<K, V, N>> {
        let table = value_table_for::<K, V, N, Self>(
            self,
            &descriptor.name,
            StateKind::Reducing,
            &descriptor.value_type,
            descriptor.ttl.as_ref(),
            &descriptor.migrations,
        )?;
        Ok(ReducingState::new(
            &descriptor.name,
            table,
            Arc::clone(&descriptor.reduce),
        ))
    }

    /// An [`AggregatingState`].
    ///
    /// # Errors
    /// As [`value_state`](Self::value_state).
    fn aggregating_state<IN, ACC: StateValue, OUT, N: StateKey>(
        &self,
        descriptor: &AggregatingStateDescriptor<IN, ACC, OUT>,
    ) -> Result<AggregatingState<K, IN, ACC, OUT, N>> {
        let table = value_table_for::<K, ACC, N, Self>(
            self,
            &descriptor.name,
            StateKind::Aggregating,
            &descriptor.value_type,
            descriptor.ttl.as_ref(),
            &descriptor.migrations,
        )?;
        Ok(AggregatingState::new(
            &descriptor.name,
            table,
            Arc::clone(&descriptor.function),
        ))
    }

    /// The timer service `name`, with namespaces of type `N` (a window type, or `()`): its
    /// event-time and processing-time timers are the states `_timer_state/event_<name>` and
    /// `_timer_state/processing_<name>`, snapshotted and rescaled with the keyed state.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for an empty name, or when the service was
    /// registered or restored with another namespace type.
    fn timer_service<N: StateKey>(&self, name: &str) -> Result<TimerService<K, N>> {
        if name.is_empty() {
            return Err(Error::invalid_input(
                "a timer service name must not be empty",
            ));
        }
        let queue = |domain: TimeDomain| {
            self.timer_queue(StateMeta {
                name: domain.queue_name(name),
                kind: StateKind::Timers,
                namespace_type: namespace_type_name::<N>(),
                user_key_type: None,
                value_type: TIMESTAMP_TYPE.to_owned(),
                ttl: false,
            })
        };
        Ok(TimerService::new(
            name,
            queue(TimeDomain::EventTime)?,
            queue(TimeDomain::ProcessingTime)?,
            KeyGroupAssigner::new(self.max_parallelism())?,
            self.clock(),
        ))
    }
}

impl<K: StateKey, B: KeyedStateBackend<K> + ?Sized> KeyedStateBackendExt<K> for B {}

fn value_table_for<K: StateKey, V: StateValue, N: StateKey, B: KeyedStateBackend<K> + ?Sized>(
    backend: &B,
    name: &str,
    kind: StateKind,
    value_type: &str,
    ttl: Option<&crate::ttl::StateTtlConfig>,
    migrations: &Migrations,
) -> Result<Arc<dyn ValueTable<K, V, N>>> {
    let m = meta(
        name,
        kind,
        namespace_type_name::<N>(),
        None,
        value_type,
        ttl.is_some(),
    )?;
    Ok(match ttl {
        None => backend.value_table::<V, N>(m, options(migrations))?,
        Some(config) => {
            let inner = backend.value_table::<TtlValue<V>, N>(
                m,
                TableOptions {
                    snapshot_filter: snapshot_filter::<V>(config),
                    ttl: Some(config.clone()),
                    migrations: migrations.clone(),
                },
            )?;
            Arc::new(TtlValueTable::new(inner, config.clone(), backend.clock()))
        }
    })
}

/// Everything a factory needs to create (and restore) the keyed backend of one subtask.
#[derive(Debug, Clone)]
pub struct KeyedBackendParams {
    /// The job's number of key groups.
    pub max_parallelism: u32,
    /// The key groups this subtask owns.
    pub key_group_range: KeyGroupRange,
    /// The clock of TTL.
    pub clock: SharedClock,
    /// Handles to restore from: every handle of the previous run whose range overlaps (see
    /// [`crate::rescale::keyed_handles_for`]); keys outside the range are skipped.
    pub restore: Vec<KeyedStateHandle>,
    /// Reads file handles; `None` when every handle is inline.
    pub reader: Option<Arc<dyn StateReader>>,
    /// Restored states to rename or drop (after an upgrade that renamed or removed them).
    pub state_mapping: StateMapping,
}

impl KeyedBackendParams {
    /// A fresh backend owning `key_group_range` of `max_parallelism` key groups.
    pub fn new(max_parallelism: u32, key_group_range: KeyGroupRange) -> Self {
        KeyedBackendParams {
            max_parallelism,
            key_group_range,
            clock: system_clock(),
            restore: Vec::new(),
            reader: None,
            state_mapping: StateMapping::default(),
        }
    }

    /// Restores the state stored as `old` under the name `new` (see [`StateMapping`]).
    #[must_use]
    pub fn rename_state(mut self, old: impl Into<String>, new: impl Into<String>) -> Self {
        self.state_mapping = self.state_mapping.rename(old, new);
        self
    }

    /// Leaves the state stored as `name` out of the restore (see [`StateMapping`]).
    #[must_use]
    pub fn drop_state(mut self, name: impl Into<String>) -> Self {
        self.state_mapping = self.state_mapping.drop_state(name);
        self
    }

    /// Uses `clock` for TTL.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Restores from `handles`, reading files through `reader`.
    #[must_use]
    pub fn restore(
        mut self,
        handles: Vec<KeyedStateHandle>,
        reader: Option<Arc<dyn StateReader>>,
    ) -> Self {
        self.restore = handles;
        self.reader = reader;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when the max parallelism is out of bounds or the
    /// range is empty or not inside it.
    pub fn validate(&self) -> Result<()> {
        check_max_parallelism(self.max_parallelism)?;
        if self.key_group_range.is_empty() || self.key_group_range.last() >= self.max_parallelism {
            return Err(Error::invalid_input(
                "the key-group range must be non-empty and inside the max parallelism",
            )
            .with_context("range", self.key_group_range)
            .with_context("max_parallelism", self.max_parallelism));
        }
        Ok(())
    }
}

/// A state backend: the configuration a job is given (`MemoryStateBackend`,
/// `FsStateBackend`, `RocksDbStateBackend`), which creates the keyed backend of each
/// subtask, as Flink's `StateBackend.createKeyedStateBackend`.
///
/// Names: a *state backend* (this trait) is the factory; a *keyed state backend*
/// ([`KeyedStateBackend`]) is one subtask's instance, and its key-type-independent side,
/// snapshots and lifecycle, is the [`CheckpointableBackend`].
pub trait StateBackend: Send + Sync + Debug {
    /// The backend for keys `K`.
    type Backend<K: StateKey>: KeyedStateBackend<K>;

    /// The backend's `NAME`.
    fn name(&self) -> &'static str;

    /// Creates the keyed backend of one subtask, restoring the handles of `params`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for bad parameters; read and decoding errors of the
    /// restore, naming the file and key group.
    fn create_keyed_backend<K: StateKey>(
        &self,
        params: KeyedBackendParams,
    ) -> Result<Self::Backend<K>>;
}
