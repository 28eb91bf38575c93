//! The producer's API against a real in-process broker: batches, async sends under a bounded
//! window, oneway, compression, a chosen queue, topics created by their first send (the TBW102
//! route), typed errors (message too large, bad topic, broker refused), and a membership change
//! under sustained sends (queues move, nothing is skipped, duplicates are counted).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sextant_client::{
    ConsumeFromWhere, ConsumeResult, Error, Message, MessageQueue, Producer, PullConsumer,
    PushConsumer, SendStatus,
};

const WAIT: Duration = Duration::from_secs(30);

async fn drain(
    ns: std::net::SocketAddr,
    topic: &str,
    group: &str,
    want: usize,
) -> Vec<sextant_client::MessageExt> {
    let c = PullConsumer::builder()
        .consumer_group(group)
        .client_config(client(ns, group))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .subscribe(topic, "*")
        .rebalance_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < want && tokio::time::Instant::now() < deadline {
        out.extend(c.poll(Duration::from_millis(200)).await);
    }
    c.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_async_oneway_compression_and_chosen_queues() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(client(ns.local_addr, "p"))
        .back_pressure_for_async_send_num(8)
        .start()
        .await
        .unwrap();
    // A topic nobody created: the first send goes by TBW102's route and creates it.
    let first = p.send(Message::new("Fresh", "one")).await.unwrap();
    assert_eq!(first.status, SendStatus::SendOk);
    assert!(eventually(WAIT, || a.broker.topic("Fresh").is_some()).await);

    let batch: Vec<Message> = (0..10)
        .map(|i| Message::new("Fresh", format!("b{i}")))
        .collect();
    let r = p.send_batch(batch).await.unwrap();
    let ids: Vec<&str> = r.msg_id.split(',').collect();
    assert_eq!(ids.len(), 10);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        10,
        "each message its own UNIQ_KEY"
    );

    let mut handles = Vec::new();
    for i in 0..50 {
        handles.push(
            p.send_async(Message::new("Fresh", format!("a{i}")))
                .await
                .unwrap(),
        );
    }
    for h in handles {
        assert_eq!(h.await.unwrap().status, SendStatus::SendOk);
    }
    p.send_oneway(Message::new("Fresh", "oneway"))
        .await
        .unwrap();
    let big = "z".repeat(100_000);
    p.send(Message::new("Fresh", big.clone())).await.unwrap();
    let mq = MessageQueue::new("Fresh", "broker-a", 2);
    let r = p
        .send_to_queue(Message::new("Fresh", "chosen"), &mq)
        .await
        .unwrap();
    assert_eq!(r.queue, mq);

    let got = drain(ns.local_addr, "Fresh", "drain", 64).await;
    let bodies: BTreeSet<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(bodies.len(), 64, "1 + 10 + 50 + 1 + 1 + 1 distinct bodies");
    assert!(bodies.contains("oneway") && bodies.contains("b9") && bodies.contains("a49"));
    let z = got
        .iter()
        .find(|m| m.body.len() == big.len())
        .expect("the big one");
    assert_eq!(z.sys_flag & 0x1, 0x1, "stored compressed");
    assert_eq!(
        z.sys_flag & 0x700,
        0x300,
        "zlib, as a 5.x producer flags it"
    );
    assert_eq!(&z.body[..], big.as_bytes(), "decompressed for the consumer");
    assert_eq!(
        got.iter()
            .find(|m| &m.body[..] == b"chosen")
            .unwrap()
            .queue
            .queue_id,
        2
    );
    p.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_errors_say_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let mut cfg = broker_config(dir.path(), "broker-a", ns.local_addr);
    cfg.max_message_size = 1024;
    let a = broker(cfg).await;
    create_topic(ns.local_addr, "E", 2).await;
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(client(ns.local_addr, "p"))
        .max_message_size(8192)
        .start()
        .await
        .unwrap();
    match p
        .send(Message::new("E", vec![0u8; 9000]))
        .await
        .unwrap_err()
    {
        Error::MessageTooLarge { size, max } => assert_eq!((size, max), (9000, 8192)),
        other => panic!("{other}"),
    }
    assert!(matches!(
        p.send(Message::new("bad topic!", "x")).await.unwrap_err(),
        Error::InvalidMessage(_)
    ));
    assert!(matches!(
        p.send(Message::new("SCHEDULE_TOPIC_XXXX", "x"))
            .await
            .unwrap_err(),
        Error::InvalidMessage(_)
    ));
    assert!(matches!(
        p.send(Message::new("E", "")).await.unwrap_err(),
        Error::InvalidMessage(_)
    ));
    // The broker's own limit is lower: MESSAGE_ILLEGAL is not retried, and says so.
    match p
        .send(Message::new("E", vec![1u8; 2000]))
        .await
        .unwrap_err()
    {
        Error::BrokerRefused {
            broker,
            code,
            remark,
            ..
        } => {
            assert_eq!(broker, "broker-a");
            assert_eq!(code, 13);
            assert!(remark.contains("1024"), "{remark}");
        }
        other => panic!("{other}"),
    }
    // A queue the topic does not have: INVALID_PARAMETER, as RocketMQ 5 answers, which a
    // producer does not retry (a chosen queue is never retried anyway).
    let err = p
        .send_to_queue(
            Message::new("E", "x"),
            &MessageQueue::new("E", "broker-a", 99),
        )
        .await
        .unwrap_err();
    match err {
        Error::BrokerRefused { code, remark, .. } => {
            assert_eq!(code, sextant_remoting::code::response::INVALID_PARAMETER);
            assert!(remark.contains("queueId"), "{remark}");
        }
        other => panic!("{other}"),
    }
    p.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_and_leave_under_sustained_sends_and_nothing_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    let b = broker(broker_config(dir.path(), "broker-b", ns.local_addr)).await;
    create_topic(ns.local_addr, "J", 4).await;
    let received = Received::default();
    let start = |name: &str| {
        let r = received.clone();
        let who = name.to_owned();
        PushConsumer::builder()
            .consumer_group("jg")
            .client_config(client(ns.local_addr, name))
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .rebalance_interval(Duration::from_millis(300))
            .subscribe("J", "*")
            .start(move |msgs| {
                let r = r.clone();
                let who = who.clone();
                async move {
                    r.add(&who, &msgs);
                    ConsumeResult::Success
                }
            })
    };
    let c0 = start("j0").await.unwrap();
    let c1 = start("j1").await.unwrap();
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(client(ns.local_addr, "jp"))
        .start()
        .await
        .unwrap();
    let sent = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let sender = {
        let p = p.clone();
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            for i in 0..1500 {
                let body = format!("s{i}");
                if p.send(Message::new("J", body.clone())).await.is_ok() {
                    sent.lock().unwrap().insert(body);
                }
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c2 = start("j2").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_leave: BTreeSet<_> = c0.owned();
    c0.shutdown().await;
    sender.await.unwrap();
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1500);
    assert!(
        eventually(WAIT, || received.distinct().is_superset(&sent)).await,
        "skipped: {:?}",
        sent.difference(&received.distinct())
            .take(5)
            .collect::<Vec<_>>()
    );
    // The leaver's queues moved to the others.
    assert!(
        eventually(WAIT, || {
            let now: BTreeSet<_> = c1.owned().union(&c2.owned()).cloned().collect();
            before_leave
                .iter()
                .filter(|q| &*q.topic == "J")
                .all(|q| now.contains(q))
        })
        .await
    );
    let duplicates = received.total() - received.distinct().len();
    eprintln!(
        "members join and leave: 1500 sent, {} deliveries, {duplicates} duplicates",
        received.total()
    );
    c1.shutdown().await;
    c2.shutdown().await;
    p.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    ns.shutdown().await;
}
