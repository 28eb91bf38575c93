//! The client against real server processes: a NameServer and two SYNC_FLUSH brokers started as
//! `sextant` child processes on 127.0.0.1. One broker is killed with SIGKILL while producers
//! (fault tolerance on and off) keep sending and push consumers keep consuming: every send
//! still succeeds on the other broker within its retry budget, the route drops the dead broker
//! and the consumers rebalance onto the live one; once it restarts, no acknowledged message is
//! lost.

mod common;

use common::spawn;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use sextant_client::admin::{Admin, TopicSpec, TopicTarget};
use sextant_client::{
    ClientConfig, ConsumeFromWhere, ConsumeResult, Message, Producer, PullConsumer, PushConsumer,
};

fn broker(ns: SocketAddr, name: &str, dir: &std::path::Path, listen: &str) -> (Child, SocketAddr) {
    spawn(
        &[
            "broker",
            "--namesrv",
            &ns.to_string(),
            "--listen",
            listen,
            "--name",
            name,
            "--data-dir",
            dir.join(name).to_str().expect("utf8"),
            "--flush",
            "SYNC_FLUSH",
        ],
        "broker",
    )
}

fn client(ns: SocketAddr, name: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: ns.to_string(),
        instance_name: name.into(),
        poll_name_server_interval: Duration::from_millis(200),
        heartbeat_broker_interval: Duration::from_millis(200),
        persist_consumer_offset_interval: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(500),
        pull_time_delay_when_exception: Duration::from_millis(100),
        ..Default::default()
    }
}

async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_costs_no_send_and_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ns_proc, ns) = spawn(
        &[
            "namesrv",
            "--listen",
            "127.0.0.1:0",
            "--scan-interval-ms",
            "200",
        ],
        "NameServer",
    );
    let (mut a, _) = broker(ns, "broker-a", dir.path(), "127.0.0.1:0");
    let (mut b, b_addr) = broker(ns, "broker-b", dir.path(), "127.0.0.1:0");
    let admin = Admin::start(client(ns, "admin")).await.unwrap();
    let spec = TopicSpec {
        topic: "F".into(),
        queues: 2,
        ..Default::default()
    };
    for _ in 0..100 {
        if admin
            .create_topic(&spec, &TopicTarget::Cluster("DefaultCluster".into()))
            .await
            .is_ok_and(|w| w.len() == 2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut routed = false;
    for _ in 0..100 {
        if admin
            .route("F")
            .await
            .is_ok_and(|r| r.broker_datas.len() == 2)
        {
            routed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(routed, "topic F on both brokers");

    let consumed = std::sync::Arc::<std::sync::Mutex<BTreeSet<String>>>::default();
    let mut consumers = Vec::new();
    for i in 0..2 {
        let seen = consumed.clone();
        consumers.push(
            PushConsumer::builder()
                .consumer_group("fg")
                .client_config(client(ns, &format!("fc{i}")))
                .consume_from_where(ConsumeFromWhere::FirstOffset)
                .rebalance_interval(Duration::from_millis(300))
                .subscribe("F", "*")
                .start(move |msgs| {
                    let seen = seen.clone();
                    async move {
                        let mut s = seen.lock().unwrap();
                        for m in msgs {
                            s.insert(String::from_utf8_lossy(&m.body).into_owned());
                        }
                        ConsumeResult::Success
                    }
                })
                .await
                .unwrap(),
        );
    }
    let mut producers = Vec::new();
    for ft in [false, true] {
        producers.push(
            Producer::builder()
                .producer_group(format!("fp-{ft}"))
                .client_config(client(ns, &format!("fp-{ft}")))
                .send_latency_fault_enable(ft)
                .start()
                .await
                .unwrap(),
        );
    }
    let mut acked = BTreeSet::new();
    for i in 0..40 {
        for (k, p) in producers.iter().enumerate() {
            let body = format!("before-{k}-{i}");
            p.send(Message::new("F", body.clone())).await.unwrap();
            acked.insert(body);
        }
    }
    // SIGKILL broker-b: no unregistration, no flush.
    b.kill().unwrap();
    b.wait().unwrap();
    for i in 0..40 {
        for (k, p) in producers.iter().enumerate() {
            let body = format!("after-{k}-{i}");
            let r = p
                .send(Message::new("F", body.clone()))
                .await
                .unwrap_or_else(|e| panic!("fault tolerance {}: {e}", k == 1));
            assert_eq!(
                &*r.queue.broker_name, "broker-a",
                "{body} went to a dead broker"
            );
            acked.insert(body);
        }
    }
    // The NameServer dropped broker-b (its connection closed); the consumers rebalance onto
    // broker-a's queues.
    assert!(
        eventually(Duration::from_secs(15), || {
            let owned: BTreeSet<_> = consumers
                .iter()
                .flat_map(|c| c.owned())
                .filter(|q| &*q.topic == "F")
                .collect();
            owned.len() == 2 && owned.iter().all(|q| &*q.broker_name == "broker-a")
        })
        .await,
        "owned: {:?}",
        consumers.iter().map(|c| c.owned()).collect::<Vec<_>>()
    );
    // The producers' clients forget broker-b's address (`cleanOfflineBroker`).
    assert!(
        eventually(Duration::from_secs(10), || producers.iter().all(|p| p
            .instance()
            .brokers()
            .iter()
            .all(|b| b.broker_name != "broker-b")))
        .await,
        "broker-b still cached"
    );
    let after: BTreeSet<String> = acked
        .iter()
        .filter(|b| b.starts_with("after"))
        .cloned()
        .collect();
    assert!(
        eventually(Duration::from_secs(15), || consumed
            .lock()
            .unwrap()
            .is_superset(&after))
        .await,
        "sends after the kill not consumed"
    );
    // broker-b comes back on its port with its data: every acknowledged message is readable.
    let (mut b2, _) = broker(ns, "broker-b", dir.path(), &b_addr.to_string());
    let drain = PullConsumer::builder()
        .consumer_group("fresh")
        .client_config(client(ns, "drain"))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .rebalance_interval(Duration::from_millis(200))
        .subscribe("F", "*")
        .start()
        .await
        .unwrap();
    let mut got = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !got.is_superset(&acked) && tokio::time::Instant::now() < deadline {
        for m in drain.poll(Duration::from_millis(200)).await {
            got.insert(String::from_utf8_lossy(&m.body).into_owned());
        }
    }
    let lost: Vec<_> = acked.difference(&got).take(5).collect();
    assert!(
        lost.is_empty(),
        "acknowledged and lost: {lost:?} ({} of {})",
        acked.difference(&got).count(),
        acked.len()
    );
    drain.shutdown().await;
    for c in consumers {
        c.shutdown().await;
    }
    for p in producers {
        p.shutdown().await;
    }
    admin.shutdown().await;
    for c in [&mut a, &mut b2, &mut ns_proc] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
