//! Well-formed requests a careless or hostile client can send, against a real broker on
//! 127.0.0.1: each flood leaves the broker's tables, its files and its memory within a stated
//! bound, and another client is served throughout.
//!
//! Bounds asserted (what each flood could grow before, from issue 11): sends to the schedule
//! topic store nothing (they copied themselves forever); 20,000 LOCK_BATCH_MQ of queues that do
//! not exist leave no lock (≈ 240 MB before); 100,000 UPDATE_CONSUMER_OFFSET for unknown groups
//! and queue ids leave no offset and a `consumerOffset.json` under 1 KiB (2.3 MB before);
//! heartbeats naming 5,000 groups stop at the group cap; sends to 500 new topics stop at the
//! topic cap. RSS growth over each flood stays under 64 MiB.

mod common;

use common::*;
use std::time::Duration;

use sextant_broker::{BrokerConfig, start};
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{SendMessageRequestHeaderV2, UpdateConsumerOffsetRequestHeader};
use sextant_remoting::message::{BatchItem, encode_send_batch};
use sextant_remoting::transport::Connection;

const T: Duration = Duration::from_secs(10);

/// Send `reqs` at once over `conn` (one task each) and return their response codes.
async fn flood(conn: &Connection, reqs: Vec<RemotingCommand>) -> Vec<i32> {
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|r| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.invoke(r, T).await.map(|r| r.code) })
        })
        .collect();
    let mut codes = Vec::with_capacity(tasks.len());
    for t in tasks {
        codes.push(t.await.unwrap().unwrap());
    }
    codes
}

/// This process's resident set, in KiB (the broker runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

const RSS_BOUND_KIB: u64 = 64 * 1024;

/// Another client is still served: a send and a pull of it round-trip.
async fn served(conn: &Connection, tag: &str) {
    let r = conn
        .invoke(send_v2("Healthy", 0, tag.as_bytes(), ""), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

fn config(dir: &std::path::Path, ns: std::net::SocketAddr) -> BrokerConfig {
    BrokerConfig {
        flush_consumer_offset_interval: 50,
        message_delay_level: "1s 2s".into(),
        max_topic_count: 100,
        max_subscription_group_count: 50,
        ..base_config(dir, ns)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_topics_transactions_and_oversized_batches_are_refused() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    served(&conn, "first").await;
    let end = broker.broker.store().log_offsets().1;
    // The schedule topic with a delay: refused, nothing stored, nothing copied later.
    for topic in [
        "SCHEDULE_TOPIC_XXXX",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "SELF_TEST_TOPIC",
    ] {
        let r = conn
            .invoke(send_v2(topic, 0, b"x", "DELAY\u{1}1\u{2}"), T)
            .await
            .unwrap();
        assert_eq!(r.code, response::NO_PERMISSION, "{topic}: {:?}", r.remark);
    }
    // Prepared, commit and rollback transaction messages; a TRAN_MSG property.
    for flag in [0x4, 0x8, 0xC] {
        let h = SendMessageRequestHeaderV2 {
            f: flag,
            ..SendMessageRequestHeaderV2::new("pg", "T", 0)
        };
        let req = RemotingCommand::request(request::SEND_MESSAGE_V2, 0)
            .with_ext(h.to_ext())
            .with_body(b"tx".to_vec());
        let r = conn.invoke(req, T).await.unwrap();
        assert_eq!(r.code, response::NO_PERMISSION, "sysFlag {flag:#x}");
    }
    let r = conn
        .invoke(send_v2("T", 0, b"tx", "TRAN_MSG\u{1}true\u{2}"), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::NO_PERMISSION);
    // A batch whose messages are each small but which is over maxMessageSize as a whole.
    let item = vec![1u8; 64 * 1024];
    let items: Vec<BatchItem<'_>> = (0..70)
        .map(|_| BatchItem {
            flag: 0,
            body: &item,
            properties: "",
        })
        .collect();
    let h = SendMessageRequestHeaderV2 {
        m: Some(true),
        ..SendMessageRequestHeaderV2::new("pg", "T", 0)
    };
    let mut body = Vec::new();
    encode_send_batch(&items, &mut body).unwrap();
    let req = RemotingCommand::request(request::SEND_BATCH_MESSAGE, 0)
        .with_ext(h.to_ext())
        .with_body(body);
    let r = conn.invoke(req, T).await.unwrap();
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    // A retry topic of a group the broker does not know.
    let r = conn
        .invoke(send_v2("%RETRY%nobody", 0, b"x", ""), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUBSCRIPTION_GROUP_NOT_EXIST);
    assert!(broker.broker.topic("%RETRY%nobody").is_none());
    // Nothing of it was stored, and nothing is copied afterwards.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(broker.broker.store().log_offsets().1, end);
    served(&conn, "after").await;
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_with_nowhere_to_go_is_skipped_not_looped() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    // Two delayed messages at level 1: the first to a topic deleted before it is due.
    for topic in ["Gone", "Kept"] {
        let r = conn
            .invoke(send_v2(topic, 0, topic.as_bytes(), "DELAY\u{1}1\u{2}"), T)
            .await
            .unwrap();
        assert_eq!(r.code, response::SUCCESS);
    }
    let h = sextant_remoting::header::DeleteTopicRequestHeader {
        topic: "Gone".into(),
        cluster_name: None,
    };
    let req = RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER, 0).with_ext(h.to_ext());
    assert_eq!(conn.invoke(req, T).await.unwrap().code, response::SUCCESS);
    // The second is delivered behind the skipped first (the level is not blocked) ...
    assert!(
        eventually(async || broker.broker.store().offsets("Kept", 0).1 == 1).await,
        "the message behind a skipped one was not delivered"
    );
    // ... and the skipped one is not retried: the log stops growing.
    let end = broker.broker.store().log_offsets().1;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(broker.broker.store().log_offsets().1, end);
    assert!(broker.broker.topic("Gone").is_none());
    broker.shutdown().await;
    ns.shutdown().await;
}

fn lock_body(i: usize) -> Vec<u8> {
    let mqs: Vec<String> = (0..50)
        .map(|q| {
            format!("{{\"brokerName\":\"broker-a\",\"queueId\":{q},\"topic\":\"NoSuchTopic{i}\"}}")
        })
        .collect();
    format!(
        "{{\"clientId\":\"c{i}\",\"consumerGroup\":\"G{i}\",\"mqSet\":[{}]}}",
        mqs.join(",")
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_locks_offsets_heartbeats_and_topics_stay_bounded() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let other = connect(broker.local_addr).await;
    served(&other, "start").await;
    let before = broker.broker.table_sizes();
    let rss0 = rss_kib();

    // 20,000 LOCK_BATCH_MQ of 50 queues of topics that do not exist, each its own group.
    for chunk in 0..20 {
        let reqs = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| RemotingCommand::request(request::LOCK_BATCH_MQ, 0).with_body(lock_body(i)))
            .collect();
        for code in flood(&conn, reqs).await {
            assert_eq!(code, response::SUCCESS);
        }
        served(&other, "locks").await;
    }
    let sizes = broker.broker.table_sizes();
    assert_eq!(
        sizes.locks, 0,
        "locks of queues that do not exist were kept"
    );

    // 100,000 UPDATE_CONSUMER_OFFSET: unknown groups, and queue ids the topic does not have.
    for chunk in 0..100 {
        let reqs = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let h = UpdateConsumerOffsetRequestHeader {
                    consumer_group: format!("Nobody{i}"),
                    topic: "Healthy".into(),
                    queue_id: (i % 3) * 1000,
                    commit_offset: i as i64,
                };
                RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0).with_ext(h.to_ext())
            })
            .collect();
        for code in flood(&conn, reqs).await {
            assert_ne!(
                code,
                response::SUCCESS,
                "an offset of an unknown group was kept"
            );
        }
    }
    served(&other, "offsets").await;
    assert_eq!(broker.broker.table_sizes().offsets, before.offsets);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let file = dir.path().join("config/consumerOffset.json");
    let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(len < 1024, "consumerOffset.json is {len} bytes");

    // Heartbeats naming 5,000 distinct groups: the table stops at its cap (50).
    let mut refused = 0;
    for chunk in 0..50 {
        let groups: Vec<String> = (chunk * 100..(chunk + 1) * 100)
            .map(|g| {
                format!(
                    "{{\"groupName\":\"HG{g}\",\"consumeType\":\"CONSUME_PASSIVELY\",\
                     \"messageModel\":\"CLUSTERING\",\"consumeFromWhere\":\"CONSUME_FROM_LAST_OFFSET\",\
                     \"subscriptionDataSet\":[],\"unitMode\":false}}"
                )
            })
            .collect();
        let body = format!(
            "{{\"clientID\":\"flood@1\",\"consumerDataSet\":[{}],\"producerDataSet\":[]}}",
            groups.join(",")
        );
        let req = RemotingCommand::request(request::HEART_BEAT, 0).with_body(body.into_bytes());
        let r = conn.invoke(req, T).await.unwrap();
        if r.code == response::SUBSCRIPTION_GROUP_NOT_EXIST {
            refused += 1;
        }
    }
    let sizes = broker.broker.table_sizes();
    assert_eq!(sizes.subscription_groups, 50);
    assert!(
        refused >= 49,
        "heartbeats past the cap were not refused: {refused}"
    );
    assert!(sizes.live_groups <= 50);
    // Retry topics were created for the admitted groups only, within the topic cap.
    assert!(sizes.topics <= 100, "{sizes:?}");

    // Sends to 500 new topics: the table stops at its cap (100) with a clear error.
    let mut capped = 0;
    for i in 0..500 {
        let r = conn
            .invoke(send_v2(&format!("New{i}"), 0, b"x", ""), T)
            .await
            .unwrap();
        if r.code == response::SYSTEM_ERROR {
            assert!(r.remark.as_deref().unwrap_or("").contains("maxTopicCount"));
            capped += 1;
        }
    }
    assert!(capped > 0);
    assert!(broker.broker.table_sizes().topics <= 100);
    served(&other, "end").await;
    let grown = rss_kib().saturating_sub(rss0);
    eprintln!(
        "floods: RSS grew by {grown} KiB; tables after: {:?}",
        broker.broker.table_sizes()
    );
    assert!(
        grown < RSS_BOUND_KIB,
        "RSS grew by {grown} KiB over the floods"
    );
    broker.shutdown().await;
    ns.shutdown().await;
}
