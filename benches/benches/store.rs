//! CommitLog appends of 1 KiB records: into the page cache only (what ASYNC_FLUSH acknowledges),
//! with an fsync per record (SYNC_FLUSH without group commit), and with one fsync per 32 records
//! (a group commit of 32); a ConsumeQueue lookup by queue offset; and the `MessageStore` a broker
//! uses: a put of one and of 32 1 KiB messages (encode, append, dispatch; ASYNC_FLUSH) and a read
//! of 32 (ConsumeQueue range, filter, record copies).

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

criterion_group!(benches, appends, lookups, message_store, message_index);
criterion_main!(benches);
