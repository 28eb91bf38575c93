//! The running implementation judged by the model's invariants: a loopback cluster (one
//! NameServer, brokers a and b, a producer, push consumers) records its trace into one sink while
//! messages flow, broker b stops mid-run and a consumer joins; the trace checker then evaluates
//! `sextant_model::invariants` on what happened. The clean run must hold every invariant it can
//! judge — and judge them many times (a checker that judges nothing passes everything). Each
//! deliberately broken client (a producer that retries the broker that just failed, a consumer
//! that goes on pulling a queue it dropped) must be caught.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_broker::BrokerConfig;
use sextant_checks::trace::{DRAINED, Options, Report, check};
use sextant_client::admin::{Admin, TopicSpec, TopicTarget};
use sextant_client::{
    ClientConfig, ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumer,
};
use sextant_model::namesrv::NamesrvConfig;
use sextant_trace::{Event, Sink, Tracer};

const TOPIC: &str = "CT";

fn broker_config(dir: &Path, name: &str, namesrv: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        broker_name: name.into(),
        namesrv_addr: namesrv.to_string(),
        store_path_root_dir: dir.join(name),
        mapped_file_size_commit_log: 1 << 20,
        flush_consumer_offset_interval: 50,
        register_name_server_period: 1_000,
        channel_expired_timeout: 2_000,
        ..Default::default()
    }
}

fn client(namesrv: SocketAddr, instance: &str, trace: &Tracer) -> ClientConfig {
    ClientConfig {
        namesrv_addr: namesrv.to_string(),
        instance_name: instance.into(),
        poll_name_server_interval: Duration::from_millis(500),
        heartbeat_broker_interval: Duration::from_millis(200),
        persist_consumer_offset_interval: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(500),
        pull_time_delay_when_exception: Duration::from_millis(50),
        trace: trace.clone(),
        ..Default::default()
    }
}

#[derive(Clone, Copy, Default)]
struct Broken {
    retry_same_broker: bool,
    keep_pulling_dropped: bool,
}

async fn consumer(
    ns: SocketAddr,
    name: &str,
    tracer: &Tracer,
    broken: Broken,
    seen: Arc<Mutex<BTreeSet<String>>>,
) -> PushConsumer {
    PushConsumer::builder()
        .consumer_group("cg")
        .client_config(client(ns, name, tracer))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .rebalance_interval(Duration::from_millis(300))
        .broker_suspend_max_time(Duration::from_millis(300))
        .broken_keep_pulling_dropped(broken.keep_pulling_dropped)
        .subscribe(TOPIC, "*")
        .start(move |msgs| {
            let seen = Arc::clone(&seen);
            async move {
                let mut s = seen.lock().unwrap();
                for m in &msgs {
                    s.insert(m.msg_id.clone());
                }
                ConsumeResult::Success
            }
        })
        .await
        .unwrap()
}

async fn send(producer: &Producer, n: usize, acked: &mut BTreeSet<String>) {
    for i in 0..n {
        if let Ok(r) = producer.send(Message::new(TOPIC, format!("m{i}"))).await {
            acked.insert(r.msg_id);
        }
    }
}

/// Run the scenario with `broken` clients and check its trace.
async fn run(broken: Broken) -> Report {
    let sink = Sink::memory();
    let test = sink.tracer("test");
    let dir = tempfile::tempdir().unwrap();
    let ns = sextant_namesrv::start_traced(
        "127.0.0.1:0".parse().unwrap(),
        NamesrvConfig::default(),
        test.clone(),
    )
    .await
    .unwrap();
    let a =
        sextant_broker::start_traced(broker_config(dir.path(), "a", ns.local_addr), test.clone())
            .await
            .unwrap();
    let b =
        sextant_broker::start_traced(broker_config(dir.path(), "b", ns.local_addr), test.clone())
            .await
            .unwrap();
    a.register_now().await;
    b.register_now().await;
    let admin = Admin::start(client(ns.local_addr, "admin", &Tracer::off()))
        .await
        .unwrap();
    let spec = TopicSpec {
        topic: TOPIC.into(),
        queues: 4,
        ..Default::default()
    };
    admin
        .create_topic(&spec, &TopicTarget::Cluster("DefaultCluster".into()))
        .await
        .unwrap();
    admin.shutdown().await;

    let producer = Producer::builder()
        .producer_group("cpg")
        .client_config(client(ns.local_addr, "producer", &test))
        .broken_retry_same_broker(broken.retry_same_broker)
        .start()
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let c1 = consumer(ns.local_addr, "c1", &test, broken, Arc::clone(&seen)).await;
    let mut acked = BTreeSet::new();
    send(&producer, 100, &mut acked).await;
    // A second member joins: c1 drops half its queues.
    let c2 = consumer(ns.local_addr, "c2", &test, broken, Arc::clone(&seen)).await;
    send(&producer, 100, &mut acked).await;
    // Broker b goes while sends go on: attempts against it fail until the route drops it.
    b.shutdown().await;
    send(&producer, 200, &mut acked).await;
    let all = async {
        for _ in 0..500 {
            if acked.is_subset(&seen.lock().unwrap()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(all.await, "not every acknowledged message was consumed");
    // Let the consumers commit what they consumed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    test.emit(|| Event::Mark {
        label: DRAINED.into(),
    });
    c2.shutdown().await;
    c1.shutdown().await;
    producer.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
    let records = sextant_trace::parse(&sink.take()[..]).unwrap();
    check(&records, &Options::default())
}

fn judged(r: &Report, name: &str) -> u64 {
    r.verdict(name).unwrap().judged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_holds_every_invariant_it_judges() {
    let r = run(Broken::default()).await;
    eprintln!("{r}");
    assert!(r.ok(), "{r}");
    assert_eq!(r.measured.acked, 400, "{r}");
    // Teeth: each invariant was judged, most of them many times.
    assert!(judged(&r, "route_integrity") >= 3, "{r}");
    assert!(judged(&r, "expiry_bounded") >= 3, "{r}");
    assert!(judged(&r, "no_send_to_expired_broker") >= 400, "{r}");
    assert!(judged(&r, "slave_read_only") >= 350, "{r}");
    assert!(judged(&r, "queue_owned_once") >= 50, "{r}");
    assert_eq!(judged(&r, "acked_not_lost"), 1, "{r}");
    assert!(judged(&r, "offsets_monotonic") >= 4, "{r}");
    assert!(judged(&r, "offset_not_past_unconsumed") >= 4, "{r}");
    assert!(
        r.measured.failed_attempts >= 1,
        "broker b's stop cost no attempt: {r}"
    );
    assert!(r.measured.rebalances >= 2, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_retries_the_failed_broker_is_caught() {
    let r = run(Broken {
        retry_same_broker: true,
        ..Default::default()
    })
    .await;
    let v = r.verdict("no_send_to_expired_broker").unwrap();
    assert!(v.violations > 0, "{r}");
    assert!(
        v.first
            .as_ref()
            .unwrap()
            .violation
            .detail
            .contains("just failed"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_keeps_pulling_a_dropped_queue_is_caught() {
    let r = run(Broken {
        keep_pulling_dropped: true,
        ..Default::default()
    })
    .await;
    let v = r.verdict("queue_owned_once").unwrap();
    assert!(v.violations > 0, "{r}");
    assert!(
        v.first
            .as_ref()
            .unwrap()
            .violation
            .detail
            .contains("does not own"),
        "{r}"
    );
}
