//! What tracing costs on the send path (issue 13 §1): whole sync sends through an in-process
//! NameServer, broker and producer with tracing off (no sink: `Tracer::off`), compiled in but
//! disabled (a file sink switched off), and on to a file, side by side in one run; and the cost
//! of recording one `send_attempt` event by itself.
//!
//! - `trace/send_sync/{off,disabled,file}`: `Producer::send` of 128 B, one at a time. With the
//!   file on, each send records the producer's attempt and the broker's `stored`.
//! - `trace/emit_send_attempt/{off,disabled,file}`: one `Tracer::emit` of a send attempt.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sextant_broker::BrokerConfig;
use sextant_client::{ClientConfig, Message, Producer};
use sextant_model::namesrv::NamesrvConfig;
use sextant_trace::{Event, Queue, SendOutcome, Sink, Tracer};
use tokio::runtime::Runtime;

struct Cluster {
    _dir: tempfile::TempDir,
    _ns: sextant_namesrv::Running,
    _broker: sextant_broker::Running,
    producer: Producer,
}

fn cluster(rt: &Runtime, tracer: &Tracer) -> Cluster {
    rt.block_on(async {
        let ns = sextant_namesrv::start_traced(
            "127.0.0.1:0".parse().expect("addr"),
            NamesrvConfig::default(),
            tracer.clone(),
        )
        .await
        .expect("a NameServer");
        let dir = tempfile::tempdir().expect("a temp dir");
        let broker = sextant_broker::start_traced(
            BrokerConfig {
                listen_port: 0,
                namesrv_addr: ns.local_addr.to_string(),
                store_path_root_dir: dir.path().to_owned(),
                ..Default::default()
            },
            tracer.clone(),
        )
        .await
        .expect("a broker");
        broker.register_now().await;
        let producer = Producer::builder()
            .producer_group("bench")
            .client_config(ClientConfig {
                namesrv_addr: ns.local_addr.to_string(),
                instance_name: "bench".into(),
                trace: tracer.clone(),
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

fn attempt() -> Event {
    Event::SendAttempt {
        group: "bench".into(),
        send: 1,
        attempt: 1,
        msg_id: "7F0000010001000000000000000000AB".into(),
        queue: Queue {
            topic: "TopicTest".into(),
            broker: "broker-a".into(),
            id: 3,
        },
        addr: "127.0.0.1:10911".into(),
        route_version: 1,
        outcome: SendOutcome::Ok,
        offset: Some(12_345),
        code: None,
        latency_us: 31,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let sink: Arc<Sink> = Sink::file(&dir.path().join("trace.jsonl")).expect("a trace file");
    let off = cluster(&rt, &Tracer::off());
    let traced = cluster(&rt, &sink.tracer("bench"));

    let mut g = c.benchmark_group("trace/send_sync");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    let body = bytes::Bytes::from(vec![b'x'; 128]);
    for (name, producer, on) in [
        ("off", &off.producer, false),
        ("disabled", &traced.producer, false),
        ("file", &traced.producer, true),
    ] {
        g.bench_function(name, |b| {
            sink.set_enabled(on);
            b.iter_custom(|iters| {
                let p = producer.clone();
                let body = body.clone();
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
    }
    g.finish();

    let mut g = c.benchmark_group("trace/emit_send_attempt");
    g.throughput(Throughput::Elements(1));
    let off_tracer = Tracer::off();
    let on_tracer = sink.tracer("bench-emit");
    for (name, tracer, on) in [
        ("off", &off_tracer, false),
        ("disabled", &on_tracer, false),
        ("file", &on_tracer, true),
    ] {
        g.bench_function(name, |b| {
            sink.set_enabled(on);
            b.iter(|| tracer.emit(attempt))
        });
    }
    g.finish();
    sink.set_enabled(false);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
