//! The per-state-operation workloads (value, list and map state) on a backend, and their raw
//! `hashbrown` baselines.

use std::cell::LazyCell;
use std::hint::black_box;

use cornerstone_backend_api::StateBackend;
use cornerstone_backend_api::spi::MemoryCheckpointStorage;
use criterion::Criterion;
use hashbrown::HashMap;

use crate::support::{
    Cycle, ListBuild, MAX_PARALLELISM, SEED, checkpoint_into, count_label, key_group,
    keyed_backend, map_ops, per_op_group, populate_lists, populate_maps, populate_values,
    shuffled_keys, timed_in_chunks,
};

/// Keys of the value-state workloads.
pub const VALUE_KEYS: u64 = 100_000;
/// Keys of the list-state workloads.
pub const LIST_KEYS: u64 = 100_000;
/// Elements per list in the list-read workloads (and at most in `list_add`).
pub const LIST_LEN: u64 = 10;
/// Keys of the map-state workloads (fewer than the others to keep memory small).
pub const MAP_KEYS: u64 = 10_000;
/// Entries per map in the map-state workloads.
pub const MAP_ENTRIES: u64 = 100;

/// How many (key, user key) pairs the map workloads cycle through.
const MAP_OPS: usize = 1 << 20;

/// The per-state-operation workloads on one backend, named `name` in the bench ids:
///
/// - `value_get`, `value_update`, `value_get_update` (a get, then an update of the same
///   key, as most keyed operators do): `ValueState<u64>` over [`VALUE_KEYS`] populated
///   keys, visited in a shuffled order; `value_update_checkpointed`: the updates with a
///   checkpoint (untimed) after every quarter of the keys;
/// - `list_add`: appends to lists of [`LIST_KEYS`] keys, cleared (untimed) once they
///   hold [`LIST_LEN`] elements on average;
/// - `list_get` (a copy as a `Vec`, then summed), `list_for_each` (summed in place, one
///   call per element) and `list_view` (summed from the borrowed slice of
///   `ListState::with_elements`): lists of [`LIST_LEN`] elements preloaded with one
///   `update` each, as the Flink harness does, and the same three with the suffix `_adds`
///   on lists built with one `add` per element (merge operands in RocksDB);
/// - `map_put` (overwrites), `map_get`, `map_iterate` (all entries of one map per op):
///   [`MAP_KEYS`] keys with [`MAP_ENTRIES`] entries each.
///
/// Each working set is built the first time a bench that uses it runs, so that a filtered
/// run builds only what it measures: a state built on a heap that earlier setups filled
/// and freed can be much slower to access (`value_update` of the changelog fs backend
/// measured 2x slower built after the memory backend's states than in a process of its
/// own). Compare backends each in a process of its own (one filter per run).
///
/// # Panics
/// When the backend fails, naming the operation.
pub fn state_ops<F: StateBackend>(c: &mut Criterion, name: &str, factory: &F) {
    value_ops(c, name, factory);
    list_ops(c, name, factory);
    map_ops_bench(c, name, factory);
}

fn value_ops<F: StateBackend>(c: &mut Criterion, name: &str, factory: &F) {
    let keys = shuffled_keys(VALUE_KEYS, SEED);
    let label = count_label(VALUE_KEYS);
    let setup = LazyCell::new(|| {
        let backend = keyed_backend(factory).expect("create the keyed backend");
        let state = populate_values(&backend, &keys).expect("populate value state");
        (backend, state)
    });

    let mut group = per_op_group(c, "value_get");
    group.bench_function(format!("{name}/{label}"), |b| {
        let (_, state) = &*setup;
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            let key = cycle.next_item();
            black_box(state.get(&key, &()).expect("value_get"))
        });
    });
    group.finish();

    let mut group = per_op_group(c, "value_update");
    group.bench_function(format!("{name}/{label}"), |b| {
        let (_, state) = &*setup;
        let mut cycle = Cycle::new(&keys);
        let mut n = 0u64;
        b.iter(|| {
            let key = cycle.next_item();
            n += 1;
            state.update(&key, &(), n).expect("value_update");
        });
    });
    group.finish();

    // Updates with a checkpoint (untimed) after every quarter of the keys: the change logs
    // of changelog mode then stay below the half of a key group that makes it whole, so
    // that each write is recorded one by one, its cost in a job checkpointing often. After
    // each checkpoint a walk over more memory than the caches hold leaves them as cold for
    // every backend: a full snapshot reads the whole table and a delta a quarter of it,
    // which would otherwise warm one backend's next updates more than another's.
    let mut group = per_op_group(c, "value_update_checkpointed");
    group.bench_function(format!("{name}/{label}"), |b| {
        let (backend, state) = &*setup;
        let storage = MemoryCheckpointStorage::new();
        let mut evict = vec![0u8; 64 << 20];
        let mut cycle = Cycle::new(&keys);
        let (mut done, mut n, mut id) = (0, 0u64, 0u64);
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                VALUE_KEYS / 4,
                &mut done,
                || {
                    let key = cycle.next_item();
                    n += 1;
                    state.update(&key, &(), n).expect("value_update");
                },
                || {
                    id += 1;
                    checkpoint_into(backend, id, &storage);
                    for path in storage.paths() {
                        storage.delete(&path);
                    }
                    for line in evict.chunks_mut(64) {
                        line[0] = line[0].wrapping_add(1);
                    }
                    black_box(&evict);
                },
            )
        });
    });
    group.finish();

    // The pattern of most keyed operators: read a key's value, write the next one.
    let mut group = per_op_group(c, "value_get_update");
    group.bench_function(format!("{name}/{label}"), |b| {
        let (_, state) = &*setup;
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            let key = cycle.next_item();
            let next = state.get(&key, &()).expect("value_get").unwrap_or(0) + 1;
            state.update(&key, &(), next).expect("value_update");
        });
    });
    group.finish();
}

fn list_ops<F: StateBackend>(c: &mut Criterion, name: &str, factory: &F) {
    let keys = shuffled_keys(LIST_KEYS, SEED);
    let label = count_label(LIST_KEYS);
    {
        let setup = LazyCell::new(|| {
            let backend = keyed_backend(factory).expect("create the keyed backend");
            let state =
                populate_lists(&backend, &keys, 0, ListBuild::Update).expect("register list state");
            (backend, state)
        });
        let mut group = per_op_group(c, "list_add");
        group.bench_function(format!("{name}/{label}"), |b| {
            let (_, state) = &*setup;
            let mut cycle = Cycle::new(&keys);
            let mut done = 0;
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    LIST_KEYS * LIST_LEN,
                    &mut done,
                    || {
                        let key = cycle.next_item();
                        state.add(&key, &(), key).expect("list_add");
                    },
                    || {
                        for key in &keys {
                            state.clear(key, &()).expect("list clear");
                        }
                    },
                )
            });
        });
        group.finish();
    }

    // Lists preloaded with one `update` each, as the Flink harness does (the ids without a
    // suffix), then built with one `add` per element (`_adds`: merge operands in RocksDB).
    for (build, suffix) in [(ListBuild::Update, ""), (ListBuild::Adds, "_adds")] {
        let setup = LazyCell::new(|| {
            let backend = keyed_backend(factory).expect("create the keyed backend");
            let state =
                populate_lists(&backend, &keys, LIST_LEN, build).expect("populate list state");
            (backend, state)
        });
        let detail = format!("{label}x{LIST_LEN}");

        let mut group = per_op_group(c, &format!("list_get{suffix}"));
        group.bench_function(format!("{name}/{detail}"), |b| {
            let (_, state) = &*setup;
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                let list = state.get(&key, &()).expect("list_get");
                black_box(list.iter().sum::<u64>())
            });
        });
        group.finish();

        let mut group = per_op_group(c, &format!("list_for_each{suffix}"));
        group.bench_function(format!("{name}/{detail}"), |b| {
            let (_, state) = &*setup;
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                let mut sum = 0u64;
                state
                    .for_each(&key, &(), |v| sum += *v)
                    .expect("list_for_each");
                black_box(sum)
            });
        });
        group.finish();

        let mut group = per_op_group(c, &format!("list_view{suffix}"));
        group.bench_function(format!("{name}/{detail}"), |b| {
            let (_, state) = &*setup;
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                let sum = state
                    .with_elements(&key, &(), |list| list.iter().sum::<u64>())
                    .expect("list_view");
                black_box(sum)
            });
        });
        group.finish();
    }
}

fn map_ops_bench<F: StateBackend>(c: &mut Criterion, name: &str, factory: &F) {
    let keys = shuffled_keys(MAP_KEYS, SEED);
    let ops = map_ops(&keys, MAP_ENTRIES, MAP_OPS, SEED);
    let detail = format!("{}x{MAP_ENTRIES}", count_label(MAP_KEYS));
    let setup = LazyCell::new(|| {
        let backend = keyed_backend(factory).expect("create the keyed backend");
        let state = populate_maps(&backend, &keys, MAP_ENTRIES).expect("populate map state");
        (backend, state)
    });

    let mut group = per_op_group(c, "map_put");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let (_, state) = &*setup;
        let mut cycle = Cycle::new(&ops);
        let mut n = 0u64;
        b.iter(|| {
            let (key, user_key) = cycle.next_item();
            n += 1;
            state.put(&key, &(), user_key, n).expect("map_put");
        });
    });
    group.finish();

    let mut group = per_op_group(c, "map_get");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let (_, state) = &*setup;
        let mut cycle = Cycle::new(&ops);
        b.iter(|| {
            let (key, user_key) = cycle.next_item();
            black_box(state.get(&key, &(), &user_key).expect("map_get"))
        });
    });
    group.finish();

    let mut group = per_op_group(c, "map_iterate");
    group.bench_function(format!("{name}/{detail}"), |b| {
        let (_, state) = &*setup;
        let mut cycle = Cycle::new(&keys);
        b.iter(|| {
            let key = cycle.next_item();
            let mut sum = 0u64;
            state
                .for_each(&key, &(), |uk, uv| sum = sum.wrapping_add(uk ^ uv))
                .expect("map_iterate");
            black_box(sum)
        });
    });
    group.finish();
}

/// The workloads of [`state_ops`] on plain `hashbrown` maps (same hasher as the heap
/// backends), each access also computing the key group of its key: the bar for the
/// overhead of a backend. Backend name `raw_hashmap`.
///
/// `list_get/raw_hashmap` clones the `Vec` as `ListState::get` does; `list_for_each`
/// sums it in place. `key_group/raw/100k` times the key-group computation alone.
/// `value_get` and `value_update` also run as `raw_hashmap_per_key_group`: a map per key
/// group, reached through the key group of the key (the layout of the heap backends,
/// without their checks).
///
/// # Panics
/// Never, except on a bug in the key-group computation.
pub fn raw_state_ops(c: &mut Criterion) {
    const NAME: &str = "raw_hashmap";
    // The key-group computation alone: a fixed cost of every access, in every backend.
    {
        let keys = shuffled_keys(VALUE_KEYS, SEED);
        let mut group = per_op_group(c, "key_group");
        group.bench_function(format!("raw/{}", count_label(VALUE_KEYS)), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| key_group(cycle.next_item()));
        });
        group.finish();
    }
    // Values.
    {
        let keys = shuffled_keys(VALUE_KEYS, SEED);
        let label = count_label(VALUE_KEYS);
        let mut map: HashMap<u64, u64> = keys.iter().map(|&k| (k, k)).collect();

        let mut group = per_op_group(c, "value_get");
        group.bench_function(format!("{NAME}/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                black_box(map.get(&key).copied())
            });
        });
        group.finish();

        let mut group = per_op_group(c, "value_update");
        group.bench_function(format!("{NAME}/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            let mut n = 0u64;
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                n += 1;
                map.insert(key, n);
            });
        });
        group.finish();
        drop(map);

        // The same entries in a map per key group, found through the key group as a heap
        // backend finds them: the key-group hash is then on the way to the map, where the
        // baseline above computes it beside the lookup.
        let mut maps: Vec<HashMap<u64, u64>> = vec![HashMap::new(); MAX_PARALLELISM as usize];
        for &k in &keys {
            maps[key_group(k) as usize].insert(k, k);
        }
        let mut group = per_op_group(c, "value_get");
        group.bench_function(format!("{NAME}_per_key_group/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(maps[key_group(key) as usize].get(&key).copied())
            });
        });
        group.finish();
        let mut group = per_op_group(c, "value_update");
        group.bench_function(format!("{NAME}_per_key_group/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            let mut n = 0u64;
            b.iter(|| {
                let key = cycle.next_item();
                n += 1;
                maps[key_group(key) as usize].insert(key, n);
            });
        });
        group.finish();
    }
    // Lists.
    {
        let keys = shuffled_keys(LIST_KEYS, SEED);
        let label = count_label(LIST_KEYS);
        let mut map: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut group = per_op_group(c, "list_add");
        group.bench_function(format!("{NAME}/{label}"), |b| {
            let mut cycle = Cycle::new(&keys);
            let mut done = 0;
            let map = std::cell::RefCell::new(&mut map);
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    LIST_KEYS * LIST_LEN,
                    &mut done,
                    || {
                        let key = cycle.next_item();
                        black_box(key_group(key));
                        map.borrow_mut().entry(key).or_default().push(key);
                    },
                    || {
                        let mut map = map.borrow_mut();
                        for key in &keys {
                            map.remove(key);
                        }
                    },
                )
            });
        });
        group.finish();
        drop(map);

        let map: HashMap<u64, Vec<u64>> = keys
            .iter()
            .map(|&k| (k, (k..k + LIST_LEN).collect()))
            .collect();
        let detail = format!("{label}x{LIST_LEN}");
        let mut group = per_op_group(c, "list_get");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                let list = map.get(&key).cloned().unwrap_or_default();
                black_box(list.iter().sum::<u64>())
            });
        });
        group.finish();

        let mut group = per_op_group(c, "list_for_each");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                black_box(map.get(&key).map_or(0, |l| l.iter().sum::<u64>()))
            });
        });
        group.finish();
    }
    // Maps.
    {
        let keys = shuffled_keys(MAP_KEYS, SEED);
        let ops = map_ops(&keys, MAP_ENTRIES, MAP_OPS, SEED);
        let detail = format!("{}x{MAP_ENTRIES}", count_label(MAP_KEYS));
        let mut map: HashMap<u64, HashMap<u64, u64>> = keys
            .iter()
            .map(|&k| (k, (0..MAP_ENTRIES).map(|uk| (uk, k ^ uk)).collect()))
            .collect();

        let mut group = per_op_group(c, "map_put");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&ops);
            let mut n = 0u64;
            b.iter(|| {
                let (key, user_key) = cycle.next_item();
                black_box(key_group(key));
                n += 1;
                map.entry(key).or_default().insert(user_key, n);
            });
        });
        group.finish();

        let mut group = per_op_group(c, "map_get");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&ops);
            b.iter(|| {
                let (key, user_key) = cycle.next_item();
                black_box(key_group(key));
                black_box(map.get(&key).and_then(|m| m.get(&user_key)).copied())
            });
        });
        group.finish();

        let mut group = per_op_group(c, "map_iterate");
        group.bench_function(format!("{NAME}/{detail}"), |b| {
            let mut cycle = Cycle::new(&keys);
            b.iter(|| {
                let key = cycle.next_item();
                black_box(key_group(key));
                let mut sum = 0u64;
                if let Some(m) = map.get(&key) {
                    for (uk, uv) in m {
                        sum = sum.wrapping_add(uk ^ uv);
                    }
                }
                black_box(sum)
            });
        });
        group.finish();
    }
}
