//! A slave's copy of its master's tables (RocketMQ's `SlaveSynchronize`) on real servers on
//! 127.0.0.1: a NameServer, a master and a slave of one broker group. The slave learns its master
//! from its registration answer, takes the master's topics, subscription groups, consumer offsets
//! and delay cursors, and keeps them across a restart; a hostile "master" cannot grow it.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{base_config, connect, create_group, eventually, namesrv, send_v2};
use sextant_broker::{BrokerConfig, start};
use sextant_model::namesrv::{DataVersion, TopicConfig};
use sextant_remoting::body::{RegisterBrokerBody, decode_topic_table};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    CreateTopicRequestHeader, RegisterBrokerRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use sextant_remoting::message::{encode_properties, property};
use sextant_remoting::transport::{Connection, Handler, Peer, bind, serve};
use sextant_remoting::{FrameCodec, RemotingCommand};

const T: Duration = Duration::from_secs(5);

fn config(dir: &Path, ns: SocketAddr, broker_id: i64) -> BrokerConfig {
    BrokerConfig {
        broker_name: "broker-a".into(),
        broker_id,
        broker_role: if broker_id == 0 {
            "ASYNC_MASTER"
        } else {
            "SLAVE"
        }
        .into(),
        // The master's delay cursors reach its file quickly.
        flush_consumer_offset_interval: 100,
        ..base_config(dir, ns)
    }
}

async fn ask(conn: &Connection, code: i32) -> RemotingCommand {
    let r = conn
        .invoke(RemotingCommand::request(code, 0), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    r
}

/// A broker's table as its GET_ALL_* answer, as JSON (so that key order does not matter).
async fn table(conn: &Connection, code: i32) -> serde_json::Value {
    serde_json::from_slice(&ask(conn, code).await.body).unwrap()
}

async fn topics(conn: &Connection) -> (DataVersion, BTreeMap<String, TopicConfig>) {
    decode_topic_table(&ask(conn, request::GET_ALL_TOPIC_CONFIG).await.body).unwrap()
}

async fn create_topic(conn: &Connection, topic: &str, queues: i32) {
    let h = CreateTopicRequestHeader {
        topic: topic.into(),
        default_topic: "TBW102".into(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        order: false,
        topic_sys_flag: 0,
        attributes: None,
        force: None,
    };
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC, 0).with_ext(h.to_ext());
    assert_eq!(conn.invoke(req, T).await.unwrap().code, response::SUCCESS);
}

async fn commit(conn: &Connection, group: &str, topic: &str, queue: i32, offset: i64) {
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: queue,
        commit_offset: offset,
    };
    let req = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0).with_ext(h.to_ext());
    let r = conn.invoke(req, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_takes_its_masters_tables_and_keeps_them_across_a_restart() {
    let ns = namesrv().await;
    let (mdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // A slave whose master is not registered yet: a sync does nothing.
    let slave = start(config(sdir.path(), ns.local_addr, 1)).await.unwrap();
    assert_eq!(slave.register_now().await, 1);
    assert_eq!(slave.broker.master_addr(), None);
    let r = slave.broker.sync_from_master().await.unwrap();
    assert_eq!(r.master, None);
    assert!(r.topics.applied().is_none() && r.offsets.applied().is_none());
    // Stopped while the master is set up: a slave's own periodic sync (3 s after its start, once
    // lib.rs runs it) must not run before the checks below.
    slave.shutdown().await;

    // The master: a topic, a group with non-default settings, offsets, a delivered delayed message.
    let master = start(config(mdir.path(), ns.local_addr, 0)).await.unwrap();
    let mc = connect(master.local_addr).await;
    create_topic(&mc, "SyncT", 4).await;
    let group = r#"{"groupName":"sync_g","consumeEnable":true,"retryMaxTimes":5,"brokerId":0,"whichBrokerWhenConsumeSlowly":2}"#;
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, 0)
        .with_body(group.as_bytes().to_vec());
    assert_eq!(mc.invoke(req, T).await.unwrap().code, response::SUCCESS);
    for i in 0..10 {
        let r = mc
            .invoke(send_v2("SyncT", i % 4, b"m", ""), T)
            .await
            .unwrap();
        assert_eq!(r.code, response::SUCCESS);
    }
    commit(&mc, "sync_g", "SyncT", 0, 3).await;
    commit(&mc, "sync_g", "SyncT", 1, 2).await;
    let delayed = encode_properties([(property::DELAY, "1")]);
    let r = mc
        .invoke(send_v2("SyncT", 2, b"later", &delayed), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert!(
        eventually(async || {
            table(&mc, request::GET_ALL_DELAY_OFFSET).await["offsetTable"]["1"] == 1
        })
        .await,
        "the master delivered the delayed message and wrote its cursor"
    );
    // A master syncs from nobody.
    assert!(master.broker.sync_from_master().await.is_err());

    // The slave learns its master from its registration answer.
    assert_eq!(master.register_now().await, 1);
    let slave = start(config(sdir.path(), ns.local_addr, 1)).await.unwrap();
    assert_eq!(slave.register_now().await, 1);
    assert_eq!(
        slave.broker.master_addr(),
        Some(master.local_addr.to_string())
    );
    let sc = connect(slave.local_addr).await;
    // Before a sync the slave has none of it.
    assert!(slave.broker.topic("SyncT").is_none());
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 0), None);
    assert!(
        table(&sc, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await["subscriptionGroupTable"]
            ["sync_g"]
            .is_null()
    );
    assert_eq!(
        table(&sc, request::GET_ALL_DELAY_OFFSET).await,
        serde_json::json!({"offsetTable": {}})
    );
    assert_ne!(topics(&sc).await, topics(&mc).await);

    let r = slave.broker.sync_from_master().await.unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.master, Some(master.local_addr.to_string()));
    let (_, master_topics) = topics(&mc).await;
    assert_eq!(r.topics.applied(), Some(master_topics.len()));
    assert_eq!(r.offsets.applied(), Some(2));
    assert_eq!(r.delay_offsets.applied(), Some(1));

    // The slave now holds what the master holds: the same tables, the same data versions.
    let same = async |sc: &Connection| {
        assert_eq!(topics(sc).await, topics(&mc).await);
        for code in [
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
            request::GET_ALL_CONSUMER_OFFSET,
            request::GET_ALL_DELAY_OFFSET,
        ] {
            assert_eq!(table(sc, code).await, table(&mc, code).await, "code {code}");
        }
    };
    same(&sc).await;
    assert_eq!(
        slave.broker.topic("SyncT"),
        master.broker.topic("SyncT"),
        "the topic"
    );
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 1), Some(2));
    let g = &table(&sc, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await["subscriptionGroupTable"]
        ["sync_g"];
    assert_eq!(
        (&g["retryMaxTimes"], &g["whichBrokerWhenConsumeSlowly"]),
        (&5.into(), &2.into())
    );

    // Nothing changed on the master: the versioned tables are left alone.
    let r = slave.broker.sync_from_master().await.unwrap();
    assert!(r.topics.is_unchanged() && r.groups.is_unchanged(), "{r:?}");

    // An offset committed to the slave (as while the master is away) lasts until the next sync
    // from a master that has that topic@group: then the master's value is back (RocketMQ's).
    commit(&sc, "sync_g", "SyncT", 1, 9).await;
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 1), Some(9));
    commit(&mc, "sync_g", "SyncT", 3, 1).await;
    slave.broker.sync_from_master().await.unwrap();
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 1), Some(2));
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 3), Some(1));

    // A restart keeps all of it, from the slave's own files.
    slave.shutdown().await;
    let slave = start(config(sdir.path(), ns.local_addr, 1)).await.unwrap();
    let sc = connect(slave.local_addr).await;
    // Several of the slave's persist periods: its own delayed-delivery job must leave the
    // master's cursors alone (a slave delivers nothing; its schedule queues are empty here).
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!(
        "DEBUG {:?} {:?}",
        table(&sc, request::GET_ALL_DELAY_OFFSET).await,
        std::fs::read_to_string(sdir.path().join("config/delayOffset.json"))
    );
    same(&sc).await;
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 0), Some(3));
    assert!(slave.broker.topic("SyncT").is_some());
    slave.shutdown().await;

    // The periodic job (every slaveSynchronizeInterval) picks up what the master adds.
    let slave = start(BrokerConfig {
        slave_synchronize_interval: 100,
        ..config(sdir.path(), ns.local_addr, 1)
    })
    .await
    .unwrap();
    assert_eq!(slave.register_now().await, 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let job = tokio::spawn(Arc::clone(&slave.broker).slave_sync_job(stop.clone()));
    create_topic(&mc, "Later", 2).await;
    assert!(eventually(async || slave.broker.topic("Later").is_some()).await);
    stop.cancel();
    tokio::time::timeout(T, job).await.unwrap().unwrap();

    slave.shutdown().await;
    master.shutdown().await;
    ns.shutdown().await;
}

/// A "master" answering what the test says, round by round.
struct Hostile {
    round: AtomicUsize,
    /// Requests answered: every topic table has a new data version, so a sync of the slave's
    /// own (its periodic job) in between changes nothing the test expects.
    requests: AtomicUsize,
}

fn json(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

impl Hostile {
    fn answer(&self, code: i32) -> Vec<u8> {
        let round = self.round.load(Ordering::SeqCst);
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let topic = |name: &str, queues: u32| {
            serde_json::json!({"topicName": name, "readQueueNums": queues,
                "writeQueueNums": queues, "perm": 6})
        };
        match (round, code) {
            // 100 topics: more than the slave's maxTopicCount.
            (0, request::GET_ALL_TOPIC_CONFIG) => {
                let t: serde_json::Map<_, _> = (0..100)
                    .map(|i| (format!("T{i}"), topic(&format!("T{i}"), 4)))
                    .collect();
                json(serde_json::json!({"dataVersion": {"counter": 7}, "topicConfigTable": t}))
            }
            (0, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG) => b"{not json".to_vec(),
            // 20 000 offsets of groups and topics the slave does not have.
            (0, request::GET_ALL_CONSUMER_OFFSET) => {
                let t: serde_json::Map<_, _> = (0..20_000)
                    .map(|i| (format!("X{i}@g{i}"), serde_json::json!({"0": i})))
                    .collect();
                json(serde_json::json!({ "offsetTable": t }))
            }
            (_, request::GET_ALL_DELAY_OFFSET) => {
                br#"{"offsetTable":{1:5,999999:1,"-1":3,"2":-4}}"#.to_vec()
            }
            // Acceptable topics among ones the slave would refuse.
            (_, request::GET_ALL_TOPIC_CONFIG) => json(serde_json::json!({
                "dataVersion": {"counter": 100 + n},
                "topicConfigTable": {
                    "Good": topic("Good", 4),
                    "TBW102": topic("TBW102", 8),
                    "bad name": topic("bad name", 4),
                    "Wide": topic("Wide", 100_000),
                    "Alias": topic("Other", 4),
                }
            })),
            // 30 groups: more than the slave's maxSubscriptionGroupCount.
            (_, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG) => {
                let t: serde_json::Map<_, _> = (0..30)
                    .map(|i| {
                        (
                            format!("g{i}"),
                            serde_json::json!({"groupName": format!("g{i}")}),
                        )
                    })
                    .collect();
                json(
                    serde_json::json!({"subscriptionGroupTable": t, "dataVersion": {"counter": 1}}),
                )
            }
            // Offsets of a known topic, beyond its queues or negative.
            (_, request::GET_ALL_CONSUMER_OFFSET) => json(serde_json::json!({"offsetTable": {
                "Good@g": {"0": 1, "4": 2, "2147483648": 3, "1": -5},
            }})),
            _ => b"{}".to_vec(),
        }
    }
}

impl Handler for Hostile {
    async fn handle(&self, _peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        let body = self.answer(req.code);
        Some(RemotingCommand::response_to(&req, response::SUCCESS, None).with_body(body))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_master_cannot_grow_the_slave_or_stop_it() {
    let ns = namesrv().await;
    let sdir = tempfile::tempdir().unwrap();
    // The fake master, registered as broker-a's master.
    let (listener, fake) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let hostile = Arc::new(Hostile {
        round: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
    });
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(
        listener,
        FrameCodec::default(),
        Arc::clone(&hostile),
        stopped,
    ));
    let nsc = connect(ns.local_addr).await;
    let body = RegisterBrokerBody {
        topic_configs: BTreeMap::from([
            ("A".into(), TopicConfig::new("A", 1)),
            ("B".into(), TopicConfig::new("B", 1)),
        ]),
        ..Default::default()
    }
    .encode();
    let header = RegisterBrokerRequestHeader {
        broker_name: "broker-a".into(),
        broker_addr: fake.to_string(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: "127.0.0.1:1".into(),
        broker_id: 0,
        ..Default::default()
    };
    let req = RemotingCommand::request(request::REGISTER_BROKER, 0)
        .with_ext(header.to_ext())
        .with_body(body);
    assert_eq!(nsc.invoke(req, T).await.unwrap().code, response::SUCCESS);

    let slave = start(BrokerConfig {
        max_topic_count: 50,
        max_subscription_group_count: 20,
        ..config(sdir.path(), ns.local_addr, 1)
    })
    .await
    .unwrap();
    assert_eq!(slave.register_now().await, 1);
    assert_eq!(slave.broker.master_addr(), Some(fake.to_string()));
    let sc = connect(slave.local_addr).await;
    create_group(&sc, "g").await;
    let before = slave.broker.table_sizes();
    let topics_before = topics(&sc).await;

    // Round 0: too many topics, a broken group table, offsets of nothing the slave has.
    let r = slave.broker.sync_from_master().await.unwrap();
    let why = r.topics.failed().map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("maxTopicCount"), "{r:?}");
    let why = r.groups.failed().map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("does not parse"), "{r:?}");
    assert_eq!(
        (r.offsets.applied(), r.offsets.skipped()),
        (Some(0), Some(20_000))
    );
    assert_eq!(
        (r.delay_offsets.applied(), r.delay_offsets.skipped()),
        (Some(1), Some(3))
    );
    assert_eq!(slave.broker.table_sizes(), before);
    assert_eq!(topics(&sc).await, topics_before);
    assert_eq!(
        table(&sc, request::GET_ALL_DELAY_OFFSET).await,
        serde_json::json!({"offsetTable": {"1": 5}})
    );

    // Round 1: only the acceptable topics; too many groups; offsets only of real queues.
    hostile.round.store(1, Ordering::SeqCst);
    let r = slave.broker.sync_from_master().await.unwrap();
    assert_eq!(
        (r.topics.applied(), r.topics.skipped()),
        (Some(2), Some(3)),
        "{r:?}"
    );
    let (version, t) = topics(&sc).await;
    assert_eq!(t.keys().collect::<Vec<_>>(), ["Good", "TBW102"]);
    assert!(version.counter >= 100, "the master's data version");
    let why = r.groups.failed().map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("maxSubscriptionGroupCount"), "{r:?}");
    assert_eq!(
        (r.offsets.applied(), r.offsets.skipped()),
        (Some(1), Some(3))
    );
    assert_eq!(slave.broker.committed_offset("Good", "g", 0), Some(1));
    assert_eq!(slave.broker.table_sizes().subscription_groups, 1);
    // Still serving.
    assert_eq!(
        sc.invoke(send_v2("Good", 0, b"x", ""), T)
            .await
            .unwrap()
            .code,
        response::NO_PERMISSION,
        "a slave refuses sends, and answers"
    );
    slave.shutdown().await;
    ns.shutdown().await;
}
