//! The client end to end against real in-process servers on 127.0.0.1: one NameServer, two
//! brokers, producers and push consumers. Each test checks what a RocketMQ user relies on —
//! every message consumed, each queue owned by exactly one member once the group settles (the
//! model's `queue_owned_once` on what the members report), order per key, broadcasting,
//! retries into `%RETRY%` and then `%DLQ%`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use sextant_client::consumer::push::PushConsumerBuilder;
use sextant_client::{
    ConsumeFromWhere, ConsumeResult, Message, MessageModel, Producer, PushConsumer, SendStatus,
};
use sextant_model::consumer::GroupView;
use sextant_model::invariants::queue_owned_once;

const WAIT: Duration = Duration::from_secs(30);

async fn producer(ns: std::net::SocketAddr) -> Producer {
    Producer::builder()
        .producer_group("pg")
        .client_config(client(ns, "producer"))
        .start()
        .await
        .unwrap()
}

fn consumer(ns: std::net::SocketAddr, group: &str, name: &str) -> PushConsumerBuilder {
    PushConsumer::builder()
        .consumer_group(group)
        .client_config(client(ns, name))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .rebalance_interval(Duration::from_millis(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_three_consumers_every_message_once_owned() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    let b = broker(broker_config(dir.path(), "broker-b", ns.local_addr)).await;
    create_topic(ns.local_addr, "T", 4).await;

    let received = Received::default();
    let mut consumers = Vec::new();
    for i in 0..3 {
        let r = received.clone();
        let name = format!("c{i}");
        let who = name.clone();
        let c = consumer(ns.local_addr, "g", &name)
            .subscribe("T", "*")
            .start(move |msgs| {
                let r = r.clone();
                let who = who.clone();
                async move {
                    r.add(&who, &msgs);
                    ConsumeResult::Success
                }
            })
            .await
            .unwrap();
        consumers.push(c);
    }
    let p = producer(ns.local_addr).await;
    let mut queues = BTreeSet::new();
    for i in 0..200 {
        let r = p
            .send(Message::new("T", format!("m{i}")).with_tags("TagA"))
            .await
            .unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(r.msg_id.len(), 32);
        queues.insert(r.queue.clone());
    }
    assert_eq!(
        queues.len(),
        8,
        "round robin over 2 brokers x 4 queues: {queues:?}"
    );
    assert!(
        eventually(WAIT, || received.distinct().len() == 200).await,
        "consumed {} of 200",
        received.distinct().len()
    );
    // Once the group settles, each of the 8 queues has exactly one owner.
    let ids: Vec<String> = consumers.iter().map(|c| c.client_id().to_owned()).collect();
    let view = GroupView::new(queues.iter().cloned(), ids.clone());
    let expected: BTreeSet<_> = queues.clone();
    let owned_once = || {
        let shares: BTreeMap<String, Vec<_>> = consumers
            .iter()
            .map(|c| {
                let mine = c.owned().into_iter().filter(|q| &*q.topic == "T").collect();
                (c.client_id().to_owned(), mine)
            })
            .collect();
        queue_owned_once(&view, &shares, &expected)
    };
    assert!(
        eventually(WAIT, || owned_once().is_ok()).await,
        "{:?}",
        owned_once()
    );
    for c in &consumers {
        let n = c.owned().iter().filter(|q| &*q.topic == "T").count();
        assert!(
            (2..=3).contains(&n),
            "averagely: 8 queues over 3 members, got {n}"
        );
    }
    for c in consumers {
        c.shutdown().await;
    }
    p.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_messages_of_a_key_arrive_in_order_and_no_queue_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    create_topic(ns.local_addr, "O", 4).await;
    let received = Received::default();
    let busy: Arc<std::sync::Mutex<BTreeMap<u32, usize>>> = Arc::default();
    let overlap = Arc::new(AtomicUsize::new(0));
    let start = |i: usize| {
        let r = received.clone();
        let busy = Arc::clone(&busy);
        let overlap = Arc::clone(&overlap);
        let name = format!("o{i}");
        let who = name.clone();
        consumer(ns.local_addr, "og", &name)
            .orderly(true)
            .subscribe("O", "*")
            .start(move |msgs| {
                let r = r.clone();
                let who = who.clone();
                let busy = Arc::clone(&busy);
                let overlap = Arc::clone(&overlap);
                async move {
                    let q = msgs[0].queue.queue_id;
                    // One queue is processed by one worker at a time, across the group.
                    {
                        let mut b = busy.lock().unwrap();
                        let n = b.entry(q).or_default();
                        *n += 1;
                        if *n > 1 {
                            overlap.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    *busy.lock().unwrap().get_mut(&q).unwrap() -= 1;
                    r.add(&who, &msgs);
                    ConsumeResult::Success
                }
            })
    };
    // One member first; the second joins while the first is consuming, so queues move between
    // members mid-stream: a queue's lock is released only after its last handler finished.
    let mut consumers = vec![start(0).await.unwrap()];
    let p = producer(ns.local_addr).await;
    for i in 0..240 {
        if i == 60 {
            consumers.push(start(1).await.unwrap());
        }
        let key = format!("k{}", i % 6);
        p.send_orderly(Message::new("O", format!("{key}:{i}")), &key)
            .await
            .unwrap();
    }
    assert!(eventually(WAIT, || received.distinct().len() == 240).await);
    assert_eq!(
        overlap.load(Ordering::SeqCst),
        0,
        "a queue was consumed by two at once"
    );
    // Per key, the sequence numbers arrive increasing within each member's stream: the new
    // member starts a moved queue where the old one committed, after it finished.
    let got = received.0.lock().unwrap().clone();
    assert!(got.len() == 2, "both members consumed: {:?}", got.keys());
    for msgs in got.values() {
        let mut last: BTreeMap<String, u32> = BTreeMap::new();
        for m in msgs {
            let body = String::from_utf8(m.body.to_vec()).unwrap();
            let (key, seq) = body.split_once(':').unwrap();
            let seq: u32 = seq.parse().unwrap();
            if let Some(prev) = last.insert(key.to_owned(), seq) {
                assert!(seq > prev, "{key}: {seq} after {prev}");
            }
        }
    }
    for c in consumers {
        c.shutdown().await;
    }
    p.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_gives_every_member_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    create_topic(ns.local_addr, "B", 2).await;
    let received = Received::default();
    let mut consumers = Vec::new();
    for i in 0..3 {
        let r = received.clone();
        let name = format!("b{i}");
        let who = name.clone();
        let c = consumer(ns.local_addr, "bg", &name)
            .message_model(MessageModel::Broadcasting)
            .local_offset_store_dir(dir.path().join("offsets"))
            .subscribe("B", "*")
            .start(move |msgs| {
                let r = r.clone();
                let who = who.clone();
                async move {
                    r.add(&who, &msgs);
                    ConsumeResult::Success
                }
            })
            .await
            .unwrap();
        consumers.push(c);
    }
    let p = producer(ns.local_addr).await;
    for i in 0..30 {
        p.send(Message::new("B", format!("x{i}"))).await.unwrap();
    }
    let each = |r: &Received| -> Vec<usize> {
        let g = r.0.lock().unwrap();
        (0..3)
            .map(|i| {
                g.get(&format!("b{i}")).map_or(0, |v| {
                    v.iter()
                        .map(|m| m.body.clone())
                        .collect::<BTreeSet<_>>()
                        .len()
                })
            })
            .collect()
    };
    assert!(
        eventually(WAIT, || each(&received) == vec![30, 30, 30]).await,
        "{:?}",
        each(&received)
    );
    for c in &consumers {
        assert_eq!(c.owned().len(), 2, "each member owns every queue");
    }
    for c in consumers {
        c.shutdown().await;
    }
    // The offsets are in local files, one per member.
    let files: Vec<_> = walk(&dir.path().join("offsets"));
    assert_eq!(files.len(), 3, "{files:?}");
    p.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "offsets.json") {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_retries_through_retry_topic_then_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let mut cfg = broker_config(dir.path(), "broker-a", ns.local_addr);
    cfg.message_delay_level = "0s 0s 0s 0s 0s 0s".into();
    let a = broker(cfg).await;
    create_topic(ns.local_addr, "R", 1).await;
    let seen: Arc<std::sync::Mutex<Vec<(String, i32, String)>>> = Arc::default();
    let s = Arc::clone(&seen);
    let c = consumer(ns.local_addr, "rg", "r0")
        .max_reconsume_times(Some(2))
        .subscribe("R", "*")
        .start(move |msgs| {
            let s = Arc::clone(&s);
            async move {
                for m in &msgs {
                    s.lock().unwrap().push((
                        String::from_utf8_lossy(&m.body).into_owned(),
                        m.reconsume_times,
                        m.topic.clone(),
                    ));
                }
                ConsumeResult::RetryLater
            }
        })
        .await
        .unwrap();
    let p = producer(ns.local_addr).await;
    let sent = p
        .send(Message::new("R", "doomed").with_keys(["k1"]))
        .await
        .unwrap();
    // Consumed 3 times: the original, then 2 retries through %RETRY%rg; then the DLQ.
    assert!(
        eventually(WAIT, || seen.lock().unwrap().len() >= 3).await,
        "{:?}",
        seen.lock().unwrap()
    );
    let dlq = {
        let admin = sextant_client::admin::Admin::start(client(ns.local_addr, "adm"))
            .await
            .unwrap();
        let mut dlq = Vec::new();
        for _ in 0..200 {
            if let Ok(status) = admin.topic_status("%DLQ%rg").await
                && status.iter().map(|q| q.max_offset).sum::<u64>() == 1
            {
                dlq = status;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        admin.shutdown().await;
        dlq
    };
    assert_eq!(
        dlq.iter().map(|q| q.max_offset).sum::<u64>(),
        1,
        "one message in the DLQ"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|(_, n, _)| *n).collect::<Vec<_>>()[..3],
        [0, 1, 2],
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(b, _, t)| b == "doomed" && t == "R"),
        "{seen:?}"
    );
    assert!(!sent.msg_id.is_empty());
    c.shutdown().await;
    p.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}
