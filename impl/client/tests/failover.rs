//! Master/slave failover end to end, in-process servers on 127.0.0.1: a NameServer, broker-a's
//! master and its slave (replicating over the HA port, syncing topics and offsets). While the
//! master is down, sends to broker-a fail with a clear error and a push consumer reads
//! broker-a from the slave; when the master is back the consumer reads it again, continuing
//! from its own offsets: nothing skipped, nothing read twice, and the master holds the offsets
//! the consumer committed.

mod common;

use std::time::Duration;

use common::*;
use sextant_broker::BrokerConfig;
use sextant_client::admin::Admin;
use sextant_client::{ConsumeFromWhere, ConsumeResult, Error, Message, Producer, PushConsumer};

const WAIT: Duration = Duration::from_secs(30);

fn master_config(dir: &std::path::Path, ns: std::net::SocketAddr) -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        ha_listen_port: Some(0),
        ha_send_heartbeat_interval: 100,
        register_name_server_period: 200,
        slave_synchronize_interval: 200,
        ..broker_config(dir, "broker-a", ns)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_read_the_slave_while_the_master_is_down_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let mc = master_config(dir.path(), ns.local_addr);
    let master = broker(mc.clone()).await;
    let slave = broker(BrokerConfig {
        broker_id: 1,
        broker_role: "SLAVE".into(),
        ha_listen_port: None,
        store_path_root_dir: dir.path().join("broker-a-slave"),
        ..mc.clone()
    })
    .await;
    create_topic(ns.local_addr, "F", 4).await;
    let producer = Producer::builder()
        .producer_group("fpg")
        .client_config(client(ns.local_addr, "producer"))
        .retry_times_when_send_failed(0)
        .start()
        .await
        .unwrap();
    for i in 0..100 {
        producer
            .send(Message::new("F", format!("a{i}")))
            .await
            .unwrap();
    }
    // The slave has every message (and learns the topic from the master within 200 ms).
    let end = master.broker.store().log_offsets().1;
    assert!(eventually(WAIT, || slave.broker.store().replica_end() == end).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The master goes: sends to broker-a fail clearly; a new consumer reads the slave.
    master.shutdown().await;
    let admin = Admin::start(client(ns.local_addr, "admin")).await.unwrap();
    let mut gone = false;
    for _ in 0..250 {
        let r = admin.route("F").await.unwrap();
        if r.broker_datas
            .iter()
            .all(|b| !b.broker_addrs.contains_key(&0))
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the route still lists the master");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let refused = producer.send(Message::new("F", "while down")).await;
    assert!(
        matches!(&refused, Err(Error::NoMaster { brokers, .. }) if brokers == &["broker-a"]),
        "{refused:?}"
    );
    let received = Received::default();
    let r = received.clone();
    let consumer = PushConsumer::builder()
        .consumer_group("fg")
        .client_config(client(ns.local_addr, "consumer"))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .rebalance_interval(Duration::from_millis(300))
        .subscribe("F", "*")
        .start(move |msgs| {
            let r = r.clone();
            async move {
                r.add("c", &msgs);
                ConsumeResult::Success
            }
        })
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || received.distinct().len() == 100).await,
        "consumed {} of 100 from the slave",
        received.distinct().len()
    );
    // Its commits went to the slave meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The master is back: new messages are consumed from it, from where the consumer was.
    let master = broker(mc).await;
    let mut sent = false;
    for _ in 0..250 {
        if producer.send(Message::new("F", "b0")).await.is_ok() {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sent, "no send reached the returned master");
    for i in 1..100 {
        producer
            .send(Message::new("F", format!("b{i}")))
            .await
            .unwrap();
    }
    assert!(
        eventually(WAIT, || received.distinct().len() == 200).await,
        "consumed {} of 200",
        received.distinct().len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let twice: Vec<_> = received
        .bodies()
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "read twice: {twice:?}");
    // The master holds the consumer's offsets: 200 messages over 4 queues, all consumed.
    let committed = || async {
        admin
            .consumer_progress("fg", &["F".into()])
            .await
            .map(|p| p.iter().filter_map(|q| q.consumer_offset).sum::<u64>())
            .unwrap_or(0)
    };
    let mut total = 0;
    for _ in 0..250 {
        total = committed().await;
        if total == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(total, 200, "offsets on the master");
    consumer.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    slave.shutdown().await;
    master.shutdown().await;
    ns.shutdown().await;
}
