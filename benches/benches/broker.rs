//! End to end over loopback: a broker (and its NameServer) in this process, clients on the same
//! runtime, every request encoded, sent over TCP, decoded, stored or read, and answered.
//!
//! - `send_sync/1KiB`: one connection, one send at a time (the mean round trip; the p50 and p99
//!   of 20 000 sends are printed first).
//! - `send_in_flight/{128B,1KiB}`: 64 sends in flight over 4 connections.
//! - `send_batch/32x128B`: batches of 32, 8 batches in flight over 4 connections.
//! - `send_sync_flush/1KiB`: 64 in flight with SYNC_FLUSH (group commit).
//! - `pull/{32,256}x1KiB`: pulls of 32 or 256 1 KiB messages, 4 connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_broker::BrokerConfig;
use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{PullMessageRequestHeader, SendMessageRequestHeaderV2};
use sextant_remoting::message::{BatchItem, encode_send_batch};
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};
use tokio::runtime::Runtime;

const T: Duration = Duration::from_secs(30);

struct Cluster {
    _dir: tempfile::TempDir,
    _ns: sextant_namesrv::Running,
    broker: sextant_broker::Running,
    conns: Vec<Connection>,
}

fn cluster(rt: &Runtime, flush: &str) -> Cluster {
    rt.block_on(async {
        let ns = sextant_namesrv::start(
            "127.0.0.1:0".parse().expect("addr"),
            NamesrvConfig::default(),
        )
        .await
        .expect("a NameServer");
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = BrokerConfig {
            listen_port: 0,
            namesrv_addr: ns.local_addr.to_string(),
            store_path_root_dir: dir.path().to_owned(),
            flush_disk_type: flush.into(),
            ..Default::default()
        };
        let broker = sextant_broker::start(config).await.expect("a broker");
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(connect(broker.local_addr).await);
        }
        Cluster {
            _dir: dir,
            _ns: ns,
            broker,
            conns,
        }
    })
}

async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(addr, FrameCodec::default(), None)
        .await
        .expect("connects")
}

fn send_req(topic: &str, queue: i32, body: Vec<u8>, batch: bool) -> RemotingCommand {
    let h = SendMessageRequestHeaderV2 {
        g: 1_700_000_000_000,
        i: Some("UNIQ_KEY\u{1}7F000001000000000000000000000000\u{2}WAIT\u{1}true\u{2}".into()),
        m: Some(batch),
        n: Some("broker-a".into()),
        ..SendMessageRequestHeaderV2::new("bench", topic, queue)
    };
    let code = if batch {
        request::SEND_BATCH_MESSAGE
    } else {
        request::SEND_MESSAGE_V2
    };
    RemotingCommand::request(code, 0)
        .with_ext(h.to_ext())
        .with_body(body)
}

fn pull_req(topic: &str, queue: i32, offset: i64, max: i32) -> RemotingCommand {
    let h = PullMessageRequestHeader::new("bench", topic, queue, offset, max);
    RemotingCommand::request(request::PULL_MESSAGE, 0).with_ext(h.to_ext())
}

/// Run `tasks` tasks, task `t` on connection `t % 4`, each sending `per_task` copies of its
/// request one after another; returns the wall time.
fn pipelined(
    rt: &Runtime,
    conns: &[Connection],
    tasks: usize,
    per_task: u64,
    req: &RemotingCommand,
) -> Duration {
    let conns = conns.to_vec();
    let req = req.clone();
    rt.block_on(async move {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(tasks);
        for t in 0..tasks {
            let conn = conns[t % conns.len()].clone();
            let mut req = req.clone();
            if let Some(ext) = req.ext_fields.as_mut() {
                ext.insert("e", (t % 4).to_string());
            }
            handles.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    let r = conn.invoke(req.clone(), T).await.expect("answers");
                    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
                }
            }));
        }
        for h in handles {
            h.await.expect("task");
        }
        start.elapsed()
    })
}

/// Whether this is a measuring run (`cargo bench`), not the once-each smoke run of
/// `cargo test --benches`: the fixtures are smaller in a smoke run.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn rt() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn sends(c: &mut Criterion) {
    let rt = rt();
    let cl = cluster(&rt, "ASYNC_FLUSH");
    let one_k = send_req("Bench", 0, vec![b'x'; 1024], false);
    // Percentiles of single sends, printed beside criterion's mean.
    let mut lat: Vec<Duration> = rt.block_on({
        let conn = cl.conns[0].clone();
        let req = one_k.clone();
        async move {
            tokio::spawn(async move {
                let n = if measuring() { 20_000 } else { 100 };
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let s = Instant::now();
                    conn.invoke(req.clone(), T).await.expect("answers");
                    v.push(s.elapsed());
                }
                v
            })
            .await
            .expect("task")
        }
    });
    lat.sort();
    println!(
        "send_sync/1KiB over {} sends: p50 {:?}, p99 {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    let mut g = c.benchmark_group("broker");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("send_sync", "1KiB"), |b| {
        b.iter_custom(|iters| pipelined(&rt, &cl.conns[..1], 1, iters, &one_k))
    });
    for (name, size) in [("128B", 128usize), ("1KiB", 1024)] {
        let req = send_req("Bench", 0, vec![b'x'; size], false);
        g.throughput(Throughput::Elements(64));
        g.bench_function(BenchmarkId::new("send_in_flight", name), |b| {
            b.iter_custom(|iters| pipelined(&rt, &cl.conns, 64, iters, &req))
        });
    }
    let body = vec![b'x'; 128];
    let items: Vec<BatchItem<'_>> = (0..32)
        .map(|_| BatchItem {
            flag: 0,
            body: &body,
            properties: "",
        })
        .collect();
    let mut batch = Vec::new();
    encode_send_batch(&items, &mut batch).expect("encodes");
    let req = send_req("Bench", 0, batch, true);
    g.throughput(Throughput::Elements(8 * 32));
    g.bench_function(BenchmarkId::new("send_batch", "32x128B"), |b| {
        b.iter_custom(|iters| pipelined(&rt, &cl.conns, 8, iters, &req))
    });
    g.finish();
    rt.block_on(cl.broker.shutdown());
}

fn sync_flush(c: &mut Criterion) {
    let rt = rt();
    let cl = cluster(&rt, "SYNC_FLUSH");
    let req = send_req("Bench", 0, vec![b'x'; 1024], false);
    let mut g = c.benchmark_group("broker");
    g.throughput(Throughput::Elements(64));
    g.bench_function(BenchmarkId::new("send_sync_flush", "1KiB"), |b| {
        b.iter_custom(|iters| pipelined(&rt, &cl.conns, 64, iters, &req))
    });
    g.finish();
    rt.block_on(cl.broker.shutdown());
}

fn pulls(c: &mut Criterion) {
    let rt = rt();
    let cl = cluster(&rt, "ASYNC_FLUSH");
    // 4 queues of 20 000 1 KiB messages (1 000 in a smoke run).
    let fill = send_req("Pull", 0, vec![b'x'; 1024], false);
    let per_queue: i64 = if measuring() { 20_000 } else { 1_000 };
    pipelined(&rt, &cl.conns, 64, per_queue as u64 / 16, &fill);
    let mut g = c.benchmark_group("broker");
    for max in [32i32, 256] {
        g.throughput(Throughput::Elements(4 * max as u64));
        g.bench_function(BenchmarkId::new("pull", format!("{max}x1KiB")), |b| {
            b.iter_custom(|iters| {
                let conns = cl.conns.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let mut hs = Vec::new();
                    for (q, conn) in conns.into_iter().enumerate() {
                        hs.push(tokio::spawn(async move {
                            let mut offset = 0i64;
                            for _ in 0..iters {
                                let r = conn
                                    .invoke(pull_req("Pull", q as i32, offset, max), T)
                                    .await
                                    .expect("answers");
                                assert_eq!(r.code, response::SUCCESS);
                                offset += i64::from(max);
                                if offset + i64::from(max) > per_queue {
                                    offset = 0;
                                }
                            }
                        }));
                    }
                    for h in hs {
                        h.await.expect("task");
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
    rt.block_on(cl.broker.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = sends, sync_flush, pulls
}
criterion_main!(benches);
