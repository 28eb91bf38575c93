//! Consumers and the client instance against real in-process servers: a membership notification
//! rebalances at once (not at the next 20 s tick); the lite pull consumer's seek, pause/resume
//! and manual commit; a dead NameServer first in the list is skipped; the queues each member
//! owns as the admin API reads them from the members themselves (GET_CONSUMER_RUNNING_INFO,
//! forwarded by the broker); a crashed member commits nothing, and the next one gets its
//! messages again.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use sextant_client::admin::Admin;
use sextant_client::{
    ConsumeFromWhere, ConsumeResult, Message, MessageQueue, Producer, PullConsumer, PushConsumer,
};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_rebalances_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    create_topic(ns.local_addr, "N", 4).await;
    let start = |name: &str| {
        PushConsumer::builder()
            .consumer_group("ng")
            .client_config(client(ns.local_addr, name))
            // Far longer than the test: only NOTIFY_CONSUMER_IDS_CHANGED can move queues.
            .rebalance_interval(Duration::from_secs(600))
            .subscribe("N", "*")
            .start(|_| async { ConsumeResult::Success })
    };
    let c0 = start("n0").await.unwrap();
    let on_topic = |c: &PushConsumer| c.owned().into_iter().filter(|q| &*q.topic == "N").count();
    assert!(eventually(WAIT, || on_topic(&c0) == 4).await);
    let t0 = std::time::Instant::now();
    let c1 = start("n1").await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || on_topic(&c0) == 2
            && on_topic(&c1) == 2)
        .await,
        "{} / {}",
        on_topic(&c0),
        on_topic(&c1)
    );
    eprintln!("rebalanced after a join in {:?}", t0.elapsed());
    // And when it leaves (UNREGISTER_CLIENT), the other takes all four back at once.
    c1.shutdown().await;
    assert!(eventually(Duration::from_secs(5), || on_topic(&c0) == 4).await);
    c0.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lite_pull_seek_pause_resume_and_manual_commit() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    create_topic(ns.local_addr, "L", 1).await;
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(client(ns.local_addr, "lp"))
        .start()
        .await
        .unwrap();
    let mq = MessageQueue::new("L", "broker-a", 0);
    for i in 0..10 {
        p.send_to_queue(Message::new("L", format!("l{i}")), &mq)
            .await
            .unwrap();
    }
    let c = PullConsumer::builder()
        .consumer_group("lg")
        .client_config(client(ns.local_addr, "lc"))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .pull_batch_size(4)
        .assign([mq.clone()])
        .start()
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        let batch = c.poll(WAIT).await;
        assert!(!batch.is_empty(), "timed out after {got:?}");
        assert!(batch.len() <= 4, "pullBatchSize");
        got.extend(batch.into_iter().map(|m| m.queue_offset));
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    // Nothing committed yet (manual commit); then commit: the broker holds 10.
    // (A group that never committed reads 0 on a queue that still starts at 0, as RocketMQ.)
    assert_eq!(c.committed(&mq).await, Some(0));
    c.commit().await.unwrap();
    assert_eq!(c.committed(&mq).await, Some(10));
    // Seek back: offsets 5.. again.
    c.seek(&mq, 5).await.unwrap();
    let mut again = Vec::new();
    while again.len() < 5 {
        again.extend(c.poll(WAIT).await.into_iter().map(|m| m.queue_offset));
    }
    assert_eq!(again, (5..10).collect::<Vec<_>>());
    // Paused: a new message is not pulled; resumed: it is.
    c.pause([mq.clone()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.send_to_queue(Message::new("L", "late"), &mq)
        .await
        .unwrap();
    assert!(
        c.poll(Duration::from_millis(500)).await.is_empty(),
        "paused"
    );
    c.resume([mq.clone()]);
    let late = c.poll(WAIT).await;
    assert_eq!(late.len(), 1);
    assert_eq!(&late[0].body[..], b"late");
    assert!(
        c.seek(&MessageQueue::new("L", "broker-a", 7), 0)
            .await
            .is_err(),
        "not assigned"
    );
    c.shutdown().await;
    p.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_namesrv_first_in_the_list_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    create_topic(ns.local_addr, "D", 2).await;
    // A port nobody listens on: bind one, then close it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cfg = client(ns.local_addr, "dp");
    cfg.namesrv_addr = format!("{dead};{}", ns.local_addr);
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(cfg.clone())
        .start()
        .await
        .unwrap();
    for i in 0..5 {
        p.send(Message::new("D", format!("d{i}"))).await.unwrap();
    }
    p.shutdown().await;
    // Every NameServer down: a typed error naming them.
    let mut all_dead = cfg;
    all_dead.namesrv_addr = dead.to_string();
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(all_dead)
        .start()
        .await
        .unwrap();
    match p.send(Message::new("D", "x")).await.unwrap_err() {
        sextant_client::Error::NameServerUnavailable { asked, .. } => {
            assert_eq!(asked, [dead.to_string()])
        }
        other => panic!("{other}"),
    }
    p.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_reads_which_member_owns_which_queue() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    create_topic(ns.local_addr, "A", 4).await;
    let mut members = Vec::new();
    for i in 0..2 {
        members.push(
            PushConsumer::builder()
                .consumer_group("ag")
                .client_config(client(ns.local_addr, &format!("a{i}")))
                .rebalance_interval(Duration::from_millis(300))
                .subscribe("A", "*")
                .start(|_| async { ConsumeResult::Success })
                .await
                .unwrap(),
        );
    }
    let on_topic = |c: &PushConsumer| c.owned().into_iter().filter(|q| &*q.topic == "A").count();
    assert!(eventually(WAIT, || members.iter().all(|m| on_topic(m) == 2)).await);
    let admin = Admin::start(client(ns.local_addr, "adm")).await.unwrap();
    let ids: BTreeSet<String> = admin
        .group_members("ag")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        ids,
        members.iter().map(|m| m.client_id().to_owned()).collect()
    );
    for m in &members {
        let reported: BTreeSet<MessageQueue> = admin
            .owned_queues("ag", m.client_id())
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(reported, m.owned(), "what {} reports", m.client_id());
    }
    let progress = admin
        .consumer_progress("ag", &["A".to_owned()])
        .await
        .unwrap();
    assert_eq!(progress.len(), 4, "the topic's four queues");
    assert!(
        progress
            .iter()
            .filter(|p| &*p.queue.topic == "A")
            .all(|p| p.owner.is_some())
    );
    admin.shutdown().await;
    for m in members {
        m.shutdown().await;
    }
    a.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_commits_nothing_and_its_messages_come_again() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv().await;
    let a = broker(broker_config(dir.path(), "broker-a", ns.local_addr)).await;
    create_topic(ns.local_addr, "K", 2).await;
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(client(ns.local_addr, "kp"))
        .start()
        .await
        .unwrap();
    for i in 0..20 {
        p.send(Message::new("K", format!("k{i}"))).await.unwrap();
    }
    p.shutdown().await;
    // A pull carries the offset consumed so far (and the broker commits it): the handler takes
    // its time so that the pull after the first batch leaves before anything is consumed, and
    // then waits at the broker (long polling) past the crash.
    let start = |name: &str, seen: Arc<Mutex<BTreeSet<String>>>| {
        let mut config = client(ns.local_addr, name);
        // No periodic commit within the test: only a clean shutdown would commit.
        config.persist_consumer_offset_interval = Duration::from_secs(600);
        PushConsumer::builder()
            .consumer_group("kg")
            .client_config(config)
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .subscribe("K", "*")
            .start(move |msgs| {
                let seen = Arc::clone(&seen);
                async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let mut s = seen.lock().unwrap();
                    for m in msgs {
                        s.insert(String::from_utf8_lossy(&m.body).into_owned());
                    }
                    ConsumeResult::Success
                }
            })
    };
    let first: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let c0 = start("k0", Arc::clone(&first)).await.unwrap();
    assert!(eventually(WAIT, || first.lock().unwrap().len() == 20).await);
    c0.crash().await;

    // The broker drops the member when its connection closes, and nothing consumed was
    // committed: at most the 0 the first pulls carried (a clean shutdown commits 10 on each).
    let admin = Admin::start(client(ns.local_addr, "ka")).await.unwrap();
    let mut members = vec!["?".to_string()];
    for _ in 0..100 {
        members = admin.group_members("kg").await.unwrap_or_default();
        if members.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(members.is_empty(), "still a member: {members:?}");
    let progress = admin
        .consumer_progress("kg", &["K".to_string()])
        .await
        .unwrap();
    let committed: Vec<_> = progress
        .iter()
        .filter(|q| &*q.queue.topic == "K")
        .map(|q| q.consumer_offset.unwrap_or(0))
        .collect();
    assert_eq!(committed, [0, 0], "{progress:?}");
    admin.shutdown().await;

    // The next member starts where the group's offsets say: from the first message again.
    let again: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let c1 = start("k1", Arc::clone(&again)).await.unwrap();
    assert!(eventually(WAIT, || again.lock().unwrap().len() == 20).await);
    c1.shutdown().await;
    a.shutdown().await;
    ns.shutdown().await;
}
