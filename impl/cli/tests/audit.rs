//! `sextant audit` against live clusters on 127.0.0.1 (servers and consumers in this process, the
//! binary as a child): a clean cluster is reported clean (exit 0) with its queues judged; two
//! members of one group allocating with different strategies (a misconfiguration RocketMQ
//! allows) are reported as queues with two owners and none; two NameServers that see different
//! brokers are reported as a split view, with the queues that view would give two owners; a
//! member only one of two masters knows is reported as consumers on different views; orderly
//! members' locks are read from their running info and judged.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use sextant_broker::BrokerConfig;
use sextant_client::admin::{Admin, TopicSpec, TopicTarget};
use sextant_client::{
    ClientConfig, ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumer,
};
use sextant_model::consumer::{AllocateStrategy, Averagely, AveragelyByCircle};
use sextant_model::namesrv::NamesrvConfig;

async fn namesrv() -> sextant_namesrv::Running {
    sextant_namesrv::start("127.0.0.1:0".parse().unwrap(), NamesrvConfig::default())
        .await
        .unwrap()
}

async fn broker(dir: &Path, name: &str, namesrvs: &str) -> sextant_broker::Running {
    let b = sextant_broker::start(BrokerConfig {
        listen_port: 0,
        broker_name: name.into(),
        namesrv_addr: namesrvs.into(),
        store_path_root_dir: dir.join(name),
        mapped_file_size_commit_log: 1 << 20,
        flush_consumer_offset_interval: 50,
        register_name_server_period: 1_000,
        ..Default::default()
    })
    .await
    .unwrap();
    b.register_now().await;
    b
}

fn client(namesrvs: &str, instance: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: namesrvs.into(),
        instance_name: instance.into(),
        poll_name_server_interval: Duration::from_millis(200),
        heartbeat_broker_interval: Duration::from_millis(200),
        persist_consumer_offset_interval: Duration::from_millis(100),
        ..Default::default()
    }
}

async fn topic(namesrvs: &str, name: &str) {
    let admin = Admin::start(client(namesrvs, "admin")).await.unwrap();
    let spec = TopicSpec {
        topic: name.into(),
        queues: 4,
        ..Default::default()
    };
    admin
        .create_topic(&spec, &TopicTarget::Cluster("DefaultCluster".into()))
        .await
        .unwrap();
    admin.shutdown().await;
}

async fn consumer(
    namesrvs: &str,
    group: &str,
    name: &str,
    topic: &str,
    strategy: Box<dyn AllocateStrategy>,
) -> PushConsumer {
    PushConsumer::builder()
        .consumer_group(group)
        .client_config(client(namesrvs, name))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .rebalance_interval(Duration::from_millis(300))
        .broker_suspend_max_time(Duration::from_millis(300))
        .allocate_strategy(strategy)
        .subscribe(topic, "*")
        .start(|_| async { ConsumeResult::Success })
        .await
        .unwrap()
}

async fn send(namesrvs: &str, topic: &str, n: usize) {
    let p = Producer::builder()
        .producer_group("audit-pg")
        .client_config(client(namesrvs, "producer"))
        .start()
        .await
        .unwrap();
    for i in 0..n {
        p.send(Message::new(topic, format!("m{i}"))).await.unwrap();
    }
    p.shutdown().await;
}

/// Run `sextant audit` (off the runtime's threads) and return its output and report.
async fn audit(namesrvs: &str) -> (Output, String) {
    let ns = namesrvs.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["audit", "--namesrv", &ns])
            .env("RUST_LOG", "error")
            .env_remove("SEXTANT_TRACE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// Wait for the consumers to settle and commit.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_cluster_is_clean_and_mixed_strategies_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let addr = ns.local_addr.to_string();
    let _a = broker(dir.path(), "a", &addr).await;
    topic(&addr, "AuT").await;
    let c1 = consumer(&addr, "ag", "c1", "AuT", Box::new(Averagely)).await;
    let c2 = consumer(&addr, "ag", "c2", "AuT", Box::new(Averagely)).await;
    send(&addr, "AuT", 40).await;
    settle().await;
    let (out, report) = audit(&addr).await;
    eprintln!("{report}");
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("clean: nothing found"), "{report}");
    assert!(report.contains("1 groups"), "{report}");
    assert!(
        !report.contains(" 0 queue ownerships"),
        "no queue was judged: {report}"
    );

    // The same group, its members allocating differently: with 4 queues and 2 members,
    // averagely gives c1 q0 q1 and by circle gives c3 (sorted after c1) q1 q3.
    c2.shutdown().await;
    let c3 = consumer(&addr, "ag", "c3", "AuT", Box::new(AveragelyByCircle)).await;
    settle().await;
    let (out, report) = audit(&addr).await;
    eprintln!("{report}");
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("queue_two_owners"), "{report}");
    assert!(report.contains("AuT:a:1 is held by"), "{report}");
    assert!(report.contains("queue_no_owner"), "{report}");
    assert!(report.contains("AuT:a:2 is held by no member"), "{report}");
    c1.shutdown().await;
    c3.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namesrvs_with_different_views_are_a_split_view() {
    let dir = tempfile::tempdir().unwrap();
    let (n1, n2) = (namesrv().await, namesrv().await);
    let (a1, a2) = (n1.local_addr.to_string(), n2.local_addr.to_string());
    let both = format!("{a1};{a2}");
    // Broker a registers with both NameServers, broker b only with the second.
    let _a = broker(dir.path(), "a", &both).await;
    let _b = broker(dir.path(), "b", &a2).await;
    topic(&a2, "SpT").await;
    let c1 = consumer(&a2, "sg", "c1", "SpT", Box::new(Averagely)).await;
    let c2 = consumer(&a2, "sg", "c2", "SpT", Box::new(Averagely)).await;
    send(&a2, "SpT", 40).await;
    settle().await;
    // Each NameServer alone is consistent.
    let (out, report) = audit(&a2).await;
    assert_eq!(out.status.code(), Some(0), "{report}");
    let (out, report) = audit(&both).await;
    eprintln!("{report}");
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("namesrv_split_view"), "{report}");
    assert!(report.contains("SpT:"), "{report}");
    // Under the first view (a's 4 queues) c1 takes a0 a1, c2 a2 a3; under the second (8
    // queues) c1 takes all of a: a2 and a3 would have two owners.
    assert!(report.contains("split_view_double_owner"), "{report}");
    assert!(report.contains("SpT:a:2 would be owned by"), "{report}");
    c1.shutdown().await;
    c2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_only_one_master_knows_is_a_consumer_view_split() {
    use sextant_remoting::body::{ConsumerData, HeartbeatData, SubscriptionData, encode};
    use sextant_remoting::code::{request, response};
    use sextant_remoting::transport::Connection;
    use sextant_remoting::{FrameCodec, RemotingCommand};

    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let addr = ns.local_addr.to_string();
    let _a = broker(dir.path(), "a", &addr).await;
    let b = broker(dir.path(), "b", &addr).await;
    topic(&addr, "VwT").await;
    let c1 = consumer(&addr, "vg", "c1", "VwT", Box::new(Averagely)).await;
    let c2 = consumer(&addr, "vg", "c2", "VwT", Box::new(Averagely)).await;
    send(&addr, "VwT", 40).await;
    settle().await;
    let (out, report) = audit(&addr).await;
    assert_eq!(out.status.code(), Some(0), "{report}");

    // A third member of vg that reaches broker b only (a partition, or a client that knows
    // only b's route): b lists three members, a two. Its connection stays open.
    let ghost = HeartbeatData {
        client_id: "127.0.0.9@ghost".into(),
        consumer_data_set: vec![ConsumerData {
            group_name: "vg".into(),
            consume_type: "CONSUME_PASSIVELY".into(),
            message_model: "CLUSTERING".into(),
            consume_from_where: "CONSUME_FROM_FIRST_OFFSET".into(),
            subscription_data_set: vec![SubscriptionData {
                topic: "VwT".into(),
                sub_string: "*".into(),
                expression_type: "TAG".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let conn = Connection::connect(b.local_addr, FrameCodec::default(), None)
        .await
        .unwrap();
    let r = conn
        .invoke(
            RemotingCommand::request(request::HEART_BEAT, 0).with_body(encode(&ghost)),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let (out, report) = audit(&addr).await;
    eprintln!("{report}");
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("consumer_views_differ"), "{report}");
    assert!(
        report.contains("group vg: the masters list different members"),
        "{report}"
    );
    assert!(report.contains("127.0.0.9@ghost"), "{report}");
    drop(conn);
    c1.shutdown().await;
    c2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_locks_are_read_from_the_members_and_judged() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let addr = ns.local_addr.to_string();
    let _a = broker(dir.path(), "a", &addr).await;
    topic(&addr, "OrT").await;
    let mut members = Vec::new();
    for name in ["c1", "c2"] {
        members.push(
            PushConsumer::builder()
                .consumer_group("og")
                .client_config(client(&addr, name))
                .consume_from_where(ConsumeFromWhere::FirstOffset)
                .rebalance_interval(Duration::from_millis(300))
                .orderly(true)
                .subscribe("OrT", "*")
                .start(|_| async { ConsumeResult::Success })
                .await
                .unwrap(),
        );
    }
    send(&addr, "OrT", 40).await;
    settle().await;
    // Each of the topic's 4 queues and the group's retry queue (orderly members lock it too)
    // is locked by the one member that holds it, once the members have settled: on a slow
    // machine that can take a few more audits.
    let mut report = String::new();
    for _ in 0..10 {
        let (out, r) = audit(&addr).await;
        assert_eq!(out.status.code(), Some(0), "{r}");
        report = r;
        if report.contains(" 5 orderly locks") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("{report}");
    assert!(report.contains(" 5 orderly locks"), "{report}");
    for m in members {
        m.shutdown().await;
    }
}

#[test]
fn a_clean_standalone_cluster_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, ns) = common::standalone(dir.path(), &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["audit", "--namesrv", &ns.to_string()])
        .env("RUST_LOG", "error")
        .env_remove("SEXTANT_TRACE")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("clean: nothing found"), "{report}");
    assert!(report.contains("brokers 1/1 answered"), "{report}");
}
