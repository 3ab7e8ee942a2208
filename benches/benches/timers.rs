//! Timers: register, delete and fire-in-order throughput of 100k keys × 10 event-time
//! timers on the memory backend beside a raw `BinaryHeap` + `HashSet` (`raw_heap`), and,
//! with the `rocksdb` feature, on the RocksDB backend beside direct `rocksdb` calls with the
//! same key layout and options (`raw_rocksdb`).
//!
//! ```sh
//! cargo bench -p cornerstone-benches --bench timers
//! cargo bench -p cornerstone-benches --features rocksdb --bench timers
//! ```

use cornerstone_backend_memory::MemoryStateBackend;
use cornerstone_benches::{criterion_config, raw_heap_timer_ops, timer_ops};
use criterion::{Criterion, criterion_group, criterion_main};

fn memory(c: &mut Criterion) {
    timer_ops(c, "memory", &MemoryStateBackend::new());
}

fn raw_heap(c: &mut Criterion) {
    raw_heap_timer_ops(c);
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::hint::black_box;
    use std::path::Path;
    use std::sync::Arc;

    use cornerstone_backend_api::keygroup::key_group_for_key;
    use cornerstone_backend_api::timer::Timer;
    use cornerstone_backend_rocksdb::RocksDbStateBackend;
    use cornerstone_backend_rocksdb::rocksdb::{
        BoundColumnFamily, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, DBWithThreadMode,
        MultiThreaded, ReadOptions, WriteOptions,
    };
    use cornerstone_benches::{
        BenchTimer, MAX_PARALLELISM, TimerBench, TimerWorkload, timer_groups, timer_ops,
    };
    use criterion::Criterion;

    type Db = DBWithThreadMode<MultiThreaded>;

    fn factory(dir: &Path) -> RocksDbStateBackend {
        RocksDbStateBackend::new().working_dir(dir)
    }

    /// The backend with its default options.
    pub(crate) fn backend(c: &mut Criterion) {
        let dir = tempfile::tempdir().expect("a temp dir");
        timer_ops(c, "rocksdb", &factory(dir.path()));
    }

    /// The stored form of a timestamp: big-endian with the sign bit flipped.
    fn sortable(ts: i64) -> [u8; 8] {
        ((ts as u64) ^ (1 << 63)).to_be_bytes()
    }

    fn be_u64(bytes: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        u64::from_be_bytes(b)
    }

    /// The backend's timer key: key group (1 byte at max parallelism 128) | sortable
    /// timestamp | entry (`varint(8) | key | namespace`, big-endian).
    #[inline]
    fn timer_key(t: &BenchTimer, out: &mut Vec<u8>) {
        out.clear();
        let kg = key_group_for_key(&t.key, MAX_PARALLELISM).expect("key group of a u64");
        out.push(kg as u8);
        out.extend_from_slice(&sortable(t.timestamp));
        out.push(8);
        out.extend_from_slice(&t.key.to_be_bytes());
        out.extend_from_slice(&t.namespace.to_be_bytes());
    }

    /// Timers with direct `rocksdb` calls: a put per registration, a delete per deletion;
    /// firing merges one iterator per key group in (timestamp, key group) order and deletes
    /// each timer it fires. The iterators (and the merge's heads) are kept from one
    /// `fire` to the next and dropped at the next registration or deletion: the cheapest
    /// direct use when nothing is registered between firings, as in this workload, and so a
    /// lower bound for a queue that must see timers registered at any time.
    struct RawRocksTimers<'a> {
        db: &'a Db,
        cf: Arc<BoundColumnFamily<'a>>,
        write: WriteOptions,
        key: Vec<u8>,
        /// Every timer at or below this has fired (or was never registered).
        fired_up_to: i64,
        /// One iterator per key group, positioned at its next timer; empty when stale.
        iters: Vec<DBRawIteratorWithThreadMode<'a, Db>>,
        /// The (sortable timestamp, key group) of each positioned iterator's timer.
        heads: BinaryHeap<Reverse<(u64, u32)>>,
    }

    impl TimerBench for RawRocksTimers<'_> {
        fn register(&mut self, t: &BenchTimer) {
            self.iters.clear();
            timer_key(t, &mut self.key);
            self.db
                .put_cf_opt(&self.cf, &self.key, [], &self.write)
                .expect("put");
        }

        fn delete(&mut self, t: &BenchTimer) {
            self.iters.clear();
            timer_key(t, &mut self.key);
            self.db
                .delete_cf_opt(&self.cf, &self.key, &self.write)
                .expect("delete");
        }

        fn fire(&mut self, up_to: i64) -> u64 {
            if self.iters.is_empty() {
                self.position();
            }
            let limit = u64::from_be_bytes(sortable(up_to));
            let mut fired = 0;
            while let Some(&Reverse((ts, kg))) = self.heads.peek() {
                if ts > limit {
                    break;
                }
                self.heads.pop();
                let it = &mut self.iters[kg as usize];
                let k = it.key().expect("a head");
                let timer = Timer {
                    timestamp: (ts ^ (1 << 63)) as i64,
                    key: be_u64(&k[10..18]),
                    namespace: be_u64(&k[18..26]),
                };
                self.db
                    .delete_cf_opt(&self.cf, k, &self.write)
                    .expect("delete fired");
                black_box(timer);
                fired += 1;
                it.next();
                if let Some(k) = it.key() {
                    self.heads.push(Reverse((be_u64(&k[1..9]), kg)));
                } else {
                    it.status().expect("iterate");
                }
            }
            self.fired_up_to = self.fired_up_to.max(up_to);
            fired
        }
    }

    impl RawRocksTimers<'_> {
        /// Positions one iterator per key group at its first timer after `fired_up_to`.
        fn position(&mut self) {
            self.heads.clear();
            let from = self.fired_up_to.saturating_add(1);
            for kg in 0..MAX_PARALLELISM {
                let mut ro = ReadOptions::default();
                ro.set_iterate_upper_bound(vec![kg as u8 + 1]);
                let mut it = self.db.raw_iterator_cf_opt(&self.cf, ro);
                let mut start = vec![kg as u8];
                start.extend_from_slice(&sortable(from));
                it.seek(start);
                if let Some(k) = it.key() {
                    self.heads.push(Reverse((be_u64(&k[1..9]), kg)));
                }
                self.iters.push(it);
            }
        }
    }

    /// The timer workloads with direct `rocksdb` calls on a column family with the
    /// backend's options (`db_options`, `column_family_options`: a timer column family
    /// gets the same as a state's without hash-indexed memtables), write options (no WAL)
    /// and key layout, the same timers in the same order: backend `raw_rocksdb`.
    pub(crate) fn raw(c: &mut Criterion) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let f = factory(dir.path());
        let db = Db::open_cf_descriptors(
            &f.db_options(),
            dir.path().join("db"),
            [ColumnFamilyDescriptor::new(
                "timers",
                f.column_family_options(MAX_PARALLELISM),
            )],
        )
        .expect("open raw db");
        let raw = RawRocksTimers {
            db: &db,
            cf: db.cf_handle("timers").expect("cf"),
            write: RocksDbStateBackend::write_options(),
            key: Vec::with_capacity(32),
            fired_up_to: i64::MIN,
            iters: Vec::new(),
            heads: BinaryHeap::new(),
        };
        timer_groups(c, "raw_rocksdb", &TimerWorkload::new(), raw);
    }
}

#[cfg(feature = "rocksdb")]
criterion_group! {
    name = benches;
    config = criterion_config();
    targets = memory, raw_heap, rocks::backend, rocks::raw
}

#[cfg(not(feature = "rocksdb"))]
criterion_group! {
    name = benches;
    config = criterion_config();
    targets = memory, raw_heap
}

criterion_main!(benches);
