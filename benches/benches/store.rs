//! CommitLog appends of 1 KiB records: into the page cache only (what ASYNC_FLUSH acknowledges),
//! with an fsync per record (SYNC_FLUSH without group commit), and with one fsync per 32 records
//! (a group commit of 32); and a ConsumeQueue lookup by queue offset.

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

criterion_group!(benches, appends, lookups);
criterion_main!(benches);
