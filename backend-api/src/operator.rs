//! Operator (non-keyed) state: list state redistributed by SPLIT or UNION, and broadcast
//! state. One implementation serves every backend, as in Flink.
//!
//! Values are typed objects behind copy-on-write `Arc`s: the synchronous phase of a
//! snapshot clones the `Arc`s, and the asynchronous phase serializes each element with an
//! offset, so that a rescale can hand out elements without rewriting the stream.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::backend::AsyncSnapshot;
use crate::descriptor::{StateKey, StateValue};
use crate::error::{Error, Result};
use crate::handles::{
    CheckpointId, Distribution, OperatorStateHandle, OperatorStateMeta, StateScope, SubtaskState,
};
use crate::identity::StateType;
use crate::spi::codec;
use crate::stream::{CheckpointStreamFactory, StateReader, read_stream, stream_write_error};

pub use crate::spi::format::operator::{MAGIC, VERSION};
use crate::spi::format::operator::{OperatorStream, element_prefix, preamble};

trait Captured: Send {
    fn encode(&self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>;
}

struct TypedCapture<T>(Arc<Vec<T>>);
impl<T: StateValue> Captured for TypedCapture<T> {
    fn encode(&self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut buf = Vec::new();
        for v in self.0.iter() {
            buf.clear();
            codec::encode_into(v, &mut buf)?;
            out(&buf)?;
        }
        Ok(())
    }
}

struct MapCapture<K, V>(Arc<HashMap<K, V>>);
impl<K: StateKey, V: StateValue> Captured for MapCapture<K, V> {
    fn encode(&self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut buf = Vec::new();
        for entry in self.0.iter() {
            buf.clear();
            codec::encode_into(&entry, &mut buf)?;
            out(&buf)?;
        }
        Ok(())
    }
}

struct RawCapture(Arc<Vec<Vec<u8>>>);
impl Captured for RawCapture {
    fn encode(&self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.0.iter().try_for_each(|e| out(e))
    }
}

trait Registered: Send + Sync {
    fn capture(&self) -> Box<dyn Captured>;
    fn as_any(&self) -> &dyn Any;
}

type Cell<T> = Arc<Mutex<Arc<T>>>;

impl<T: StateValue> Registered for Cell<Vec<T>> {
    fn capture(&self) -> Box<dyn Captured> {
        Box::new(TypedCapture(Arc::clone(&self.lock())))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<K: StateKey, V: StateValue> Registered for Cell<HashMap<K, V>> {
    fn capture(&self) -> Box<dyn Captured> {
        Box::new(MapCapture(Arc::clone(&self.lock())))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct Entry {
    mode: Distribution,
    element_type: String,
    state: Box<dyn Registered>,
}

struct Restored {
    mode: Distribution,
    element_type: String,
    elements: Arc<Vec<Vec<u8>>>,
}

/// The operator state of one subtask.
///
/// ```
/// use cornerstone_backend_api::operator::OperatorStateBackend;
/// let backend = OperatorStateBackend::new();
/// let offsets = backend.list_state::<u64>("offsets")?;
/// offsets.add(42);
/// assert_eq!(offsets.get(), vec![42]);
/// # Ok::<_, cornerstone_backend_api::Error>(())
/// ```
#[derive(Default)]
pub struct OperatorStateBackend {
    states: Mutex<BTreeMap<String, Entry>>,
    restored: Mutex<BTreeMap<String, Restored>>,
}

impl fmt::Debug for OperatorStateBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorStateBackend")
            .field("states", &self.states.lock().keys().collect::<Vec<_>>())
            .field("restored", &self.restored.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OperatorStateBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend restored from `handles` (as assigned by
    /// [`crate::rescale::redistribute_operator_state`]).
    ///
    /// # Errors
    /// Read and decoding errors naming the file; [`crate::ErrorKind::Corrupted`] when a
    /// state appears with two distribution modes.
    pub fn restore(
        handles: &[OperatorStateHandle],
        reader: Option<&dyn StateReader>,
    ) -> Result<Self> {
        let mut restored: BTreeMap<String, Restored> = BTreeMap::new();
        for handle in handles {
            let bytes = read_stream(&handle.stream, reader)?;
            let path = crate::spi::format::describe(&handle.stream);
            let stream = OperatorStream::parse(&bytes, &path)?;
            for (name, meta) in &handle.states {
                let entry = restored.entry(name.clone()).or_insert_with(|| Restored {
                    mode: meta.mode,
                    element_type: meta.element_type.clone(),
                    elements: Arc::new(Vec::new()),
                });
                if entry.mode != meta.mode || entry.element_type != meta.element_type {
                    return Err(Error::corrupted(
                        "operator state restored with two different modes or types",
                    )
                    .with_context("state", name)
                    .with_context("path", path));
                }
                if entry.mode == Distribution::Broadcast && !entry.elements.is_empty() {
                    // Every copy of a broadcast state is the same: keep the first.
                    continue;
                }
                let elements = Arc::make_mut(&mut entry.elements);
                elements.extend(stream.elements(name, meta)?.into_iter().map(<[u8]>::to_vec));
            }
        }
        Ok(OperatorStateBackend {
            states: Mutex::new(BTreeMap::new()),
            restored: Mutex::new(restored),
        })
    }

    fn register<S: Registered + Clone + 'static>(
        &self,
        name: &str,
        mode: Distribution,
        element_type: &str,
        fresh: impl FnOnce(Option<&[Vec<u8>]>) -> Result<S>,
    ) -> Result<S> {
        let mut states = self.states.lock();
        if let Some(entry) = states.get(name) {
            if entry.mode != mode || entry.element_type != element_type {
                return Err(Error::invalid_input(
                    "operator state registered again with another mode or type",
                )
                .with_context("state", name)
                .with_context(
                    "registered",
                    format!("{:?} of {}", entry.mode, entry.element_type),
                )
                .with_context("requested", format!("{mode:?} of {element_type}")));
            }
            return entry
                .state
                .as_any()
                .downcast_ref::<S>()
                .cloned()
                .ok_or_else(|| {
                    Error::invalid_input("operator state registered again with another type")
                        .with_context("state", name)
                });
        }
        let mut restored = self.restored.lock();
        let state = match restored.get(name) {
            Some(r) => {
                if r.mode != mode || r.element_type != element_type {
                    return Err(Error::invalid_input(format!(
                        "operator state '{name}' cannot be restored with this descriptor: its mode or element type differs"
                    ))
                    .with_context("stored", format!("{:?} of {}", r.mode, r.element_type))
                    .with_context("requested", format!("{mode:?} of {element_type}")));
                }
                fresh(Some(&r.elements))?
            }
            None => fresh(None)?,
        };
        restored.remove(name);
        states.insert(
            name.to_owned(),
            Entry {
                mode,
                element_type: element_type.to_owned(),
                state: Box::new(state.clone()),
            },
        );
        Ok(state)
    }

    fn list<T: StateValue>(&self, name: &str, mode: Distribution) -> Result<OperatorListState<T>> {
        let cell: Cell<Vec<T>> = self.register(name, mode, &T::type_identity(), |restored| {
            let values = restored
                .unwrap_or_default()
                .iter()
                .map(|e| codec::decode::<T>(e))
                .collect::<Result<Vec<T>>>()
                .map_err(|e| e.with_context("state", name))?;
            Ok(Arc::new(Mutex::new(Arc::new(values))))
        })?;
        Ok(OperatorListState { cell })
    }

    /// A list state redistributed by SPLIT on rescale (Flink's `getListState`).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] when the name is registered or restored with
    /// another mode or type; decoding errors of restored elements.
    pub fn list_state<T: StateValue>(&self, name: &str) -> Result<OperatorListState<T>> {
        self.list(name, Distribution::Split)
    }

    /// A list state of which every subtask gets every element on restore (Flink's
    /// `getUnionListState`).
    ///
    /// # Errors
    /// As [`list_state`](Self::list_state).
    pub fn union_list_state<T: StateValue>(&self, name: &str) -> Result<OperatorListState<T>> {
        self.list(name, Distribution::Union)
    }

    /// A broadcast map state: the same copy on every subtask.
    ///
    /// # Errors
    /// As [`list_state`](Self::list_state).
    pub fn broadcast_state<K: StateKey, V: StateValue>(
        &self,
        name: &str,
    ) -> Result<BroadcastState<K, V>> {
        let cell: Cell<HashMap<K, V>> = self.register(
            name,
            Distribution::Broadcast,
            &<(K, V)>::type_identity(),
            |restored| {
                let map = restored
                    .unwrap_or_default()
                    .iter()
                    .map(|e| codec::decode::<(K, V)>(e))
                    .collect::<Result<HashMap<K, V>>>()
                    .map_err(|e| e.with_context("state", name))?;
                Ok(Arc::new(Mutex::new(Arc::new(map))))
            },
        )?;
        Ok(BroadcastState { cell })
    }

    /// The names of registered and restored states.
    pub fn state_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.states.lock().keys().cloned().collect();
        names.extend(self.restored.lock().keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// The synchronous phase of a snapshot: captures every state without copying it.
    /// Restored states that were not registered again are carried over unchanged.
    pub fn snapshot(&self, checkpoint_id: CheckpointId) -> Box<dyn AsyncSnapshot> {
        let mut captured: Vec<(String, Distribution, String, Box<dyn Captured>)> = self
            .states
            .lock()
            .iter()
            .map(|(name, e)| {
                (
                    name.clone(),
                    e.mode,
                    e.element_type.clone(),
                    e.state.capture(),
                )
            })
            .collect();
        for (name, r) in self.restored.lock().iter() {
            captured.push((
                name.clone(),
                r.mode,
                r.element_type.clone(),
                Box::new(RawCapture(Arc::clone(&r.elements))),
            ));
        }
        Box::new(OperatorSnapshot {
            checkpoint_id,
            captured,
        })
    }
}

struct OperatorSnapshot {
    checkpoint_id: CheckpointId,
    captured: Vec<(String, Distribution, String, Box<dyn Captured>)>,
}

impl fmt::Debug for OperatorSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorSnapshot")
            .field("checkpoint_id", &self.checkpoint_id)
            .field(
                "states",
                &self.captured.iter().map(|c| &c.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AsyncSnapshot for OperatorSnapshot {
    fn checkpoint_id(&self) -> CheckpointId {
        self.checkpoint_id
    }

    fn write(self: Box<Self>, streams: &dyn CheckpointStreamFactory) -> Result<SubtaskState> {
        if self.captured.is_empty() {
            return Ok(SubtaskState::default());
        }
        let mut out = streams.create(StateScope::Exclusive)?;
        let mut position = 0u64;
        let put = |out: &mut dyn Write, bytes: &[u8], position: &mut u64| -> Result<()> {
            out.write_all(bytes)
                .map_err(|e| stream_write_error("write operator state", e))?;
            *position += bytes.len() as u64;
            Ok(())
        };
        put(&mut out, &preamble(), &mut position)?;
        let mut states = BTreeMap::new();
        for (name, mode, element_type, captured) in &self.captured {
            let mut offsets = Vec::new();
            captured.encode(&mut |element| {
                offsets.push(position);
                put(&mut out, &element_prefix(element.len())?, &mut position)?;
                put(&mut out, element, &mut position)
            })?;
            states.insert(
                name.clone(),
                OperatorStateMeta {
                    mode: *mode,
                    element_type: element_type.clone(),
                    offsets,
                },
            );
        }
        let stream = out.close()?;
        Ok(SubtaskState {
            keyed: Vec::new(),
            operator: vec![OperatorStateHandle { states, stream }],
        })
    }
}

/// An operator list state (SPLIT or UNION).
pub struct OperatorListState<T> {
    cell: Cell<Vec<T>>,
}

impl<T> Clone for OperatorListState<T> {
    fn clone(&self) -> Self {
        OperatorListState {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<T> fmt::Debug for OperatorListState<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorListState")
            .field("len", &self.cell.lock().len())
            .finish()
    }
}

impl<T: Clone> OperatorListState<T> {
    /// The elements.
    pub fn get(&self) -> Vec<T> {
        self.cell.lock().as_ref().clone()
    }

    /// Appends an element.
    pub fn add(&self, value: T) {
        Arc::make_mut(&mut self.cell.lock()).push(value);
    }

    /// Appends elements.
    pub fn add_all(&self, values: impl IntoIterator<Item = T>) {
        Arc::make_mut(&mut self.cell.lock()).extend(values);
    }

    /// Replaces the elements.
    pub fn update(&self, values: Vec<T>) {
        *self.cell.lock() = Arc::new(values);
    }

    /// Removes every element.
    pub fn clear(&self) {
        self.update(Vec::new());
    }
}

/// A broadcast map state.
pub struct BroadcastState<K, V> {
    cell: Cell<HashMap<K, V>>,
}

impl<K, V> Clone for BroadcastState<K, V> {
    fn clone(&self) -> Self {
        BroadcastState {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<K, V> fmt::Debug for BroadcastState<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastState")
            .field("len", &self.cell.lock().len())
            .finish()
    }
}

impl<K: StateKey, V: StateValue> BroadcastState<K, V> {
    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        self.cell.lock().get(key).cloned()
    }

    /// Sets the value of `key`.
    pub fn put(&self, key: K, value: V) {
        Arc::make_mut(&mut self.cell.lock()).insert(key, value);
    }

    /// Removes `key`.
    pub fn remove(&self, key: &K) {
        Arc::make_mut(&mut self.cell.lock()).remove(key);
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &K) -> bool {
        self.cell.lock().contains_key(key)
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<(K, V)> {
        self.cell
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        *self.cell.lock() = Arc::new(HashMap::new());
    }
}
