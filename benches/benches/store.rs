//! CommitLog appends of 1 KiB records: into the page cache only (what ASYNC_FLUSH acknowledges),
//! with an fsync per record (SYNC_FLUSH without group commit), and with one fsync per 32 records
//! (a group commit of 32); a ConsumeQueue lookup by queue offset; and the `MessageStore` a broker
//! uses: a put of one and of 32 1 KiB messages (encode, append, dispatch; ASYNC_FLUSH) and a read
//! of 32 (ConsumeQueue range, filter, record copies); and put latency while another thread
//! pulls cold data (its segments dropped from the page cache before every pull), with the
//! CommitLog reads under the put lock (the old locking) and outside it, in one run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_benches::pull_body;
use sextant_store::{CommitLog, ConsumeQueue, CqEntry};

fn appends(c: &mut Criterion) {
    // One 1 KiB record as the store receives it.
    let record = {
        let body = pull_body(1, 1024);
        body[..i32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize].to_vec()
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let (mut log, _) = CommitLog::open(dir.path(), 64 << 20).expect("opens");
    let mut g = c.benchmark_group("commitlog");
    g.throughput(Throughput::Bytes(record.len() as u64));
    let mut r = record.clone();
    g.bench_function(BenchmarkId::new("append_1KiB", "page_cache"), |b| {
        b.iter(|| log.append(&mut r).expect("appends"))
    });
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("append_1KiB", "fsync_each"), |b| {
        b.iter(|| {
            log.append(&mut r).expect("appends");
            log.flush().expect("flushes")
        })
    });
    g.throughput(Throughput::Bytes(32 * record.len() as u64));
    g.bench_function(BenchmarkId::new("append_32x1KiB", "one_fsync"), |b| {
        b.iter(|| {
            for _ in 0..32 {
                log.append(&mut r).expect("appends");
            }
            log.flush().expect("flushes")
        })
    });
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut q = ConsumeQueue::open(dir.path(), 300_000).expect("opens");
    let n = 100_000u64;
    for i in 0..n {
        let e = CqEntry {
            commitlog_offset: i * 1155,
            size: 1155,
            tags_code: 0,
        };
        q.append(i, e).expect("appends");
    }
    let mut g = c.benchmark_group("consumequeue");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("get_100k_entries", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            q.get(i).expect("reads").expect("an entry")
        })
    });
    g.finish();
}

fn message_store(c: &mut Criterion) {
    use sextant_store::{Get, MessageStore, Put, StoreConfig};
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = StoreConfig::new(dir.path());
    config.segment_size = 256 << 20;
    let (store, _) = MessageStore::open(config).expect("opens");
    let body = vec![b'y'; 1024];
    let props = sextant_benches::sample_properties();
    let msg = sextant_benches::sample_message(&body, &props);
    let mut g = c.benchmark_group("message_store");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("put", "1x1KiB"), |b| {
        b.iter(|| {
            let mut p = [Put {
                msg: msg.clone(),
                tags_code: 0,
            }];
            store.put(&mut p).expect("puts")
        })
    });
    g.throughput(Throughput::Elements(32));
    g.bench_function(BenchmarkId::new("put", "32x1KiB"), |b| {
        b.iter(|| {
            let mut p: Vec<Put<'_>> = (0..32)
                .map(|_| Put {
                    msg: msg.clone(),
                    tags_code: 0,
                })
                .collect();
            store.put(&mut p).expect("puts")
        })
    });
    let (_, max) = store.offsets("TopicTest", 1);
    let mut offset = 0u64;
    g.bench_function(BenchmarkId::new("get", "32x1KiB"), |b| {
        b.iter(|| {
            offset = (offset + 32) % (max - 32);
            let get = Get {
                topic: "TopicTest",
                queue_id: 1,
                offset,
                max_msgs: 32,
                max_bytes: 256 * 1024,
                correct: true,
            };
            let r = store.get(&get, &|_| true).expect("reads");
            assert_eq!(r.count, 32);
            r
        })
    });
    g.finish();
}

/// The message index's cost on the put path (the same put with the index on and off, in one
/// run), and a query by unique key among 20 000 distinct keys.
fn message_index(c: &mut Criterion) {
    use sextant_store::{MessageStore, Put, StoreConfig};
    let body = vec![b'y'; 1024];
    let mut g = c.benchmark_group("message_index");
    g.throughput(Throughput::Elements(1));
    for on in [false, true] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = StoreConfig::new(dir.path());
        config.segment_size = 256 << 20;
        config.index.enabled = on;
        let (store, _) = MessageStore::open(config).expect("opens");
        let mut n = 0u64;
        let name = if on { "index_on" } else { "index_off" };
        g.bench_function(BenchmarkId::new("put_1x1KiB", name), |b| {
            b.iter(|| {
                n += 1;
                let props = sextant_remoting::message::encode_properties([
                    ("KEYS", "order-1234"),
                    (
                        "UNIQ_KEY",
                        format!("7F0000010F2A18B4AAC2720E{n:08X}").as_str(),
                    ),
                ]);
                let mut p = [Put {
                    msg: sextant_benches::sample_message(&body, &props),
                    tags_code: 0,
                }];
                store.put(&mut p).expect("puts")
            })
        });
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = StoreConfig::new(dir.path());
    config.segment_size = 256 << 20;
    let (store, _) = MessageStore::open(config).expect("opens");
    let keys: Vec<String> = (0..20_000u32)
        .map(|i| format!("7F0000010F2A18B4AAC2720E{i:08X}"))
        .collect();
    for k in &keys {
        let props = sextant_remoting::message::encode_properties([("UNIQ_KEY", k.as_str())]);
        let mut p = [Put {
            msg: sextant_benches::sample_message(&body, &props),
            tags_code: 0,
        }];
        store.put(&mut p).expect("puts");
    }
    let mut i = 0usize;
    g.bench_function("query_unique_of_20000", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let r = store
                .query_message("TopicTest", &keys[i], 32, 0, i64::MAX)
                .expect("queries");
            assert_eq!(r.count, 1);
            r
        })
    });
    g.finish();
}

/// Put latency (one 1 KiB message, ASYNC_FLUSH) with no reader, and with a thread pulling 32
/// messages at random offsets of a 192 MiB queue whose segments it drops from the page cache
/// (`posix_fadvise(DONTNEED)`) before every pull — so every pull reads the disk — once with
/// the CommitLog read under the store's lock as puts take it (the old locking) and once
/// outside it. Criterion reports the mean; each variant prints p50/p99/p99.9/max from every
/// put timed (warm-up included) and the pulls done.
fn cold_reads(c: &mut Criterion) {
    use sextant_store::{Get, MessageStore, Put, StoreConfig};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const SEG: u64 = 64 << 20;
    // On the disk, not tmpfs: dropping the page cache must mean reading the disk again.
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = StoreConfig::new(dir.path());
    config.segment_size = SEG;
    config.index.enabled = false;
    let (store, _) = MessageStore::open(config).expect("opens");
    let body = vec![b'c'; 1024];
    let props = sextant_benches::sample_properties();
    // The cold queue: three full segments; the puts measured go to a fourth.
    let mut cold = 0u64;
    loop {
        let mut m = sextant_benches::sample_message(&body, &props);
        m.topic = "Cold";
        m.queue_id = 0;
        let r = store
            .put(&mut [Put {
                msg: m,
                tags_code: 0,
            }])
            .expect("puts");
        if r.end > 3 * SEG {
            break;
        }
        cold = r.stored[0].queue_offset + 1;
    }
    store.flush().expect("flushes");
    let segments: Vec<std::fs::File> = (0..3)
        .map(|i| {
            std::fs::File::open(dir.path().join(format!("commitlog/{:020}", i * SEG)))
                .expect("a segment")
        })
        .collect();
    let drop_cache = || {
        for f in &segments {
            rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        }
    };
    let msg = sextant_benches::sample_message(&body, &props);
    let mut g = c.benchmark_group("cold_reads");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for (name, reader) in [
        ("no_reader", None),
        ("cold_reader_reads_under_lock", Some(true)),
        ("cold_reader_reads_unlocked", Some(false)),
    ] {
        store.bench_reads_under_lock(reader.unwrap_or(false));
        let stop = AtomicBool::new(false);
        let (pulls, pull_ns) = (AtomicU64::new(0), AtomicU64::new(0));
        let mut lat: Vec<u64> = Vec::new();
        std::thread::scope(|s| {
            if reader.is_some() {
                s.spawn(|| {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64;
                    while !stop.load(Ordering::Relaxed) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        drop_cache();
                        let get = Get {
                            topic: "Cold",
                            queue_id: 0,
                            offset: x % (cold - 32),
                            max_msgs: 32,
                            max_bytes: 256 * 1024,
                            correct: true,
                        };
                        let t = Instant::now();
                        let r = store.get(&get, &|_| true).expect("reads");
                        pull_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        assert_eq!(r.count, 32);
                        pulls.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            g.bench_function(BenchmarkId::new("put_1x1KiB", name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut p = [Put {
                            msg: msg.clone(),
                            tags_code: 0,
                        }];
                        let t = Instant::now();
                        store.put(&mut p).expect("puts");
                        let d = t.elapsed();
                        total += d;
                        lat.push(d.as_nanos() as u64);
                    }
                    total
                })
            });
            stop.store(true, Ordering::Relaxed);
        });
        lat.sort_unstable();
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
        let n = pulls.load(Ordering::Relaxed).max(1);
        eprintln!(
            "cold_reads/{name}: {} puts, mean {:.2} us, p50 {:.2} us, p99 {:.2} us, \
             p99.9 {:.2} us, max {:.0} us; {} cold pulls of 32, mean {:.0} us each",
            lat.len(),
            lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1000.0,
            q(0.5),
            q(0.99),
            q(0.999),
            q(1.0),
            pulls.load(Ordering::Relaxed),
            pull_ns.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0,
        );
    }
    g.finish();
}

criterion_group!(
    benches,
    appends,
    lookups,
    message_store,
    message_index,
    cold_reads
);
criterion_main!(benches);
