//! The client's own cost per send, and whole sends through it.
//!
//! - `client/next_request/{128B,1KiB}`: what `Producer::next_request` does for one message —
//!   the model's queue selection, a `UNIQ_KEY`, the properties string, the SEND_MESSAGE_V2 header
//!   — plus encoding the frame as the transport writes it. No I/O: the issue's "client cost per
//!   send" (target ≤ 2 µs).
//! - `client/send_sync/128B`: `Producer::send` to an in-process broker over loopback, one at a
//!   time (the round trip a user sees).
//! - `client/send_async/128B`: 1024 `send_async` in flight through the window, awaited.

use std::time::Duration;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_broker::BrokerConfig;
use sextant_client::{ClientConfig, Message, Producer};
use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::FrameCodec;
use tokio::runtime::Runtime;
use tokio_util::codec::Encoder;

struct Cluster {
    _dir: tempfile::TempDir,
    _ns: sextant_namesrv::Running,
    _broker: sextant_broker::Running,
    producer: Producer,
}

fn cluster(rt: &Runtime) -> Cluster {
    rt.block_on(async {
        let ns = sextant_namesrv::start(
            "127.0.0.1:0".parse().expect("addr"),
            NamesrvConfig::default(),
        )
        .await
        .expect("a NameServer");
        let dir = tempfile::tempdir().expect("a temp dir");
        let broker = sextant_broker::start(BrokerConfig {
            listen_port: 0,
            namesrv_addr: ns.local_addr.to_string(),
            store_path_root_dir: dir.path().to_owned(),
            ..Default::default()
        })
        .await
        .expect("a broker");
        broker.register_now().await;
        let producer = Producer::builder()
            .producer_group("bench")
            .client_config(ClientConfig {
                namesrv_addr: ns.local_addr.to_string(),
                instance_name: "bench".into(),
                ..Default::default()
            })
            .start()
            .await
            .expect("a producer");
        producer
            .send(Message::new("TopicTest", "warm-up"))
            .await
            .expect("the warm-up send");
        Cluster {
            _dir: dir,
            _ns: ns,
            _broker: broker,
            producer,
        }
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let cl = cluster(&rt);
    let mut g = c.benchmark_group("client/next_request");
    g.throughput(Throughput::Elements(1));
    for size in [128usize, 1024] {
        let body = bytes::Bytes::from(vec![b'x'; size]);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::with_capacity(4096);
        g.bench_function(BenchmarkId::from_parameter(format!("{size}B")), |b| {
            b.iter(|| {
                let msg = Message::new("TopicTest", body.clone())
                    .with_tags("TagA")
                    .with_keys(["order-1234"]);
                let (_mq, req) = cl.producer.next_request(msg).expect("a request");
                buf.clear();
                codec.encode(&req, &mut buf).expect("encodes");
                buf.len()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("client");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    let body = bytes::Bytes::from(vec![b'x'; 128]);
    // Each measurement runs inside a task of the runtime (as an application's sends do), not
    // through `block_on` from outside it, which adds a cross-thread wake-up per call.
    let producer = cl.producer.clone();
    let sync_body = body.clone();
    g.bench_function("send_sync/128B", |b| {
        b.iter_custom(|iters| {
            let p = producer.clone();
            let body = sync_body.clone();
            rt.block_on(async move {
                tokio::spawn(async move {
                    let t0 = std::time::Instant::now();
                    for _ in 0..iters {
                        p.send(Message::new("TopicTest", body.clone()))
                            .await
                            .expect("sent");
                    }
                    t0.elapsed()
                })
                .await
                .expect("the task")
            })
        })
    });
    g.throughput(Throughput::Elements(1024));
    g.bench_function("send_async/128B", |b| {
        b.iter_custom(|iters| {
            let p = producer.clone();
            let body = body.clone();
            rt.block_on(async move {
                tokio::spawn(async move {
                    let t0 = std::time::Instant::now();
                    for _ in 0..iters {
                        let mut handles = Vec::with_capacity(1024);
                        for _ in 0..1024 {
                            handles.push(
                                p.send_async(Message::new("TopicTest", body.clone()))
                                    .await
                                    .expect("queued"),
                            );
                        }
                        for h in handles {
                            h.await.expect("sent");
                        }
                    }
                    t0.elapsed()
                })
                .await
                .expect("the task")
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
