//! A NameServer route lookup over loopback: one client connection, one GET_ROUTEINFO_BY_TOPIC
//! request at a time from a task of the runtime (request encode, TCP both ways, the server's
//! lookup and route encode, response decode). The figure is the mean round trip.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sextant_model::namesrv::{DataVersion, NamesrvConfig, TopicConfig};
use sextant_remoting::body::RegisterBrokerBody;
use sextant_remoting::code::request;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{GetRouteInfoRequestHeader, RegisterBrokerRequestHeader};
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};

fn route_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (ns, conn) = rt.block_on(async {
        let ns = sextant_namesrv::start(
            "127.0.0.1:0".parse().expect("addr"),
            NamesrvConfig::default(),
        )
        .await
        .expect("a NameServer");
        let conn = Connection::connect(ns.local_addr, FrameCodec::default(), None)
            .await
            .expect("connects");
        let mut body = RegisterBrokerBody {
            data_version: DataVersion::default(),
            ..Default::default()
        };
        for t in ["TopicTest", "TBW102"] {
            body.topic_configs.insert(t.into(), TopicConfig::new(t, 8));
        }
        let header = RegisterBrokerRequestHeader {
            broker_name: "broker-a".into(),
            broker_addr: "127.0.0.1:10911".into(),
            cluster_name: "DefaultCluster".into(),
            ha_server_addr: "127.0.0.1:10912".into(),
            broker_id: 0,
            ..Default::default()
        };
        let reg = RemotingCommand::request(request::REGISTER_BROKER, 0)
            .with_ext(header.to_ext())
            .with_body(body.encode());
        conn.invoke(reg, Duration::from_secs(5))
            .await
            .expect("registers");
        (ns, conn)
    });
    let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
        GetRouteInfoRequestHeader {
            topic: "TopicTest".into(),
            accept_standard_json_only: None,
        }
        .to_ext(),
    );
    let mut g = c.benchmark_group("namesrv");
    g.throughput(Throughput::Elements(1));
    g.bench_function("route_lookup_loopback", |b| {
        // The requests run in a task of the runtime, one after another, as an async client's
        // would; entering the runtime once per batch keeps its cost out of the figure.
        b.iter_custom(|iters| {
            let conn = conn.clone();
            let req = req.clone();
            rt.block_on(async move {
                tokio::spawn(async move {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        conn.invoke(req.clone(), Duration::from_secs(5))
                            .await
                            .expect("answers");
                    }
                    start.elapsed()
                })
                .await
                .expect("the client task")
            })
        })
    });
    g.bench_function("route_lookup_loopback_blocking_caller", |b| {
        // The same request from a thread outside the runtime (`block_on` per request): every
        // answer is a cross-thread wake-up.
        b.iter(|| {
            rt.block_on(conn.invoke(req.clone(), Duration::from_secs(5)))
                .expect("answers")
        })
    });
    g.finish();
    rt.block_on(ns.shutdown());
}

criterion_group!(benches, route_lookup);
criterion_main!(benches);
