//! A slave's copy of its master's tables (RocketMQ's `SlaveSynchronize`) on real servers on
//! 127.0.0.1: a NameServer, a master and a slave of one broker group. The slave learns its master
//! from its registration answer, takes the master's topics, subscription groups, consumer offsets
//! and delay cursors, and keeps them across a restart; a hostile "master" cannot grow it. Offsets
//! committed to the slave while its master was away are sent to the master when it is back (the
//! master takes the larger), and a reset of the master's offsets while the slave is connected
//! stays.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{base_config, connect, create_group, eventually, namesrv, send_v2};
use sextant_broker::{BrokerConfig, Running, start};
use sextant_model::namesrv::{DataVersion, TopicConfig};
use sextant_remoting::body::{RegisterBrokerBody, decode_topic_table};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    CreateTopicRequestHeader, OffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    RegisterBrokerRequestHeader, UpdateConsumerOffsetRequestHeader,
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

    // An offset committed to the slave (as while the master is away) larger than the master's
    // is sent to the master at a first sync over a new connection (each `sync_from_master`, or
    // the slave's own job if it ran meanwhile): both then hold it. The master's new ones come.
    commit(&sc, "sync_g", "SyncT", 1, 9).await;
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 1), Some(9));
    commit(&mc, "sync_g", "SyncT", 3, 1).await;
    let r = slave.broker.sync_from_master().await.unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 1), Some(9));
    assert_eq!(
        master.broker.committed_offset("SyncT", "sync_g", 1),
        Some(9)
    );
    assert_eq!(slave.broker.committed_offset("SyncT", "sync_g", 3), Some(1));

    // A restart keeps all of it, from the slave's own files.
    slave.shutdown().await;
    let slave = start(config(sdir.path(), ns.local_addr, 1)).await.unwrap();
    let sc = connect(slave.local_addr).await;
    // Several of the slave's persist periods: its own delayed-delivery job must leave the
    // master's cursors alone (a slave delivers nothing; its schedule queues are empty here).
    tokio::time::sleep(Duration::from_millis(500)).await;
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

/// Register `fake` with the NameServer as broker-a's master, over the connection returned (the
/// NameServer forgets a broker whose connection closes).
async fn register_as_master(ns: SocketAddr, fake: SocketAddr) -> Connection {
    let nsc = connect(ns).await;
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
    nsc
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
    let _registered = register_as_master(ns.local_addr, fake).await;

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

const TOPIC: &str = "BackT";
const GROUP: &str = "back_g";

/// A master on `port` (0: any) whose HA port is any free one, so that it can restart on the
/// same remoting address.
fn master_config(dir: &Path, ns: SocketAddr, port: u16) -> BrokerConfig {
    BrokerConfig {
        listen_port: port,
        ha_listen_port: Some(0),
        ..config(dir, ns, 0)
    }
}

/// The master's committed offset of `BackT@back_g` queue `queue` (QUERY_CONSUMER_OFFSET, as a
/// consumer asks it); `None` when it has none.
async fn query(conn: &Connection, queue: i32) -> Option<i64> {
    let h = QueryConsumerOffsetRequestHeader {
        consumer_group: GROUP.into(),
        topic: TOPIC.into(),
        queue_id: queue,
        set_zero_if_not_found: Some(false),
    };
    let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET, 0).with_ext(h.to_ext());
    let r = conn.invoke(req, T).await.unwrap();
    if r.code == response::QUERY_NOT_FOUND {
        return None;
    }
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    Some(
        OffsetResponseHeader::from_ext(r.ext_fields.as_ref().unwrap())
            .unwrap()
            .offset,
    )
}

/// Whether `check` holds within `limit` (polled every 20 ms).
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A NameServer, a master holding `BackT` (4 queues), the group `back_g` and `commits`, and its
/// slave after its own job's first sync (3 s after its start; the next one
/// `slave_synchronize_interval` later): the slave holds the master's offsets.
struct Pair {
    ns: sextant_namesrv::Running,
    mdir: tempfile::TempDir,
    master: Running,
    slave: Running,
    _sdir: tempfile::TempDir,
}

async fn pair(commits: &[(i32, i64)], slave_synchronize_interval: u64) -> Pair {
    let ns = namesrv().await;
    let (mdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = start(master_config(mdir.path(), ns.local_addr, 0))
        .await
        .unwrap();
    let mc = connect(master.local_addr).await;
    create_topic(&mc, TOPIC, 4).await;
    create_group(&mc, GROUP).await;
    for &(queue, offset) in commits {
        commit(&mc, GROUP, TOPIC, queue, offset).await;
    }
    assert_eq!(master.register_now().await, 1);
    let slave = start(BrokerConfig {
        slave_synchronize_interval,
        ..config(sdir.path(), ns.local_addr, 1)
    })
    .await
    .unwrap();
    assert_eq!(slave.register_now().await, 1);
    let b = Arc::clone(&slave.broker);
    let synced = async || {
        commits
            .iter()
            .all(|&(q, o)| b.committed_offset(TOPIC, GROUP, q as u32) == Some(o as u64))
    };
    assert!(
        within(Duration::from_secs(15), synced).await,
        "the slave's job synced"
    );
    Pair {
        ns,
        mdir,
        master,
        slave,
        _sdir: sdir,
    }
}

/// The master started again on its store dir and remoting `port`, registered.
async fn start_again(mdir: &Path, ns: SocketAddr, port: u16) -> Running {
    let master = start(master_config(mdir, ns, port)).await.unwrap();
    assert_eq!(master.local_addr.port(), port);
    assert_eq!(master.register_now().await, 1);
    master
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_committed_to_the_slave_while_the_master_was_away_survive_its_return() {
    // The slave's job syncs once (at 3 s) and then not within the test: every sync below is
    // the test's.
    let Pair {
        ns,
        mdir,
        master,
        slave,
        _sdir,
    } = pair(&[(0, 5), (1, 3)], 3_600_000).await;
    let r = slave.broker.sync_from_master().await.unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.pushed.applied(), Some(0), "nothing larger on the slave");

    // The master stops. A consumer failing over commits to the slave.
    let sc = connect(slave.local_addr).await;
    let port = master.local_addr.port();
    master.shutdown().await;
    commit(&sc, GROUP, TOPIC, 0, 9).await;
    commit(&sc, GROUP, TOPIC, 1, 9).await;
    // Back on its store dir and address, with its own older offsets.
    let master = start_again(mdir.path(), ns.local_addr, port).await;
    let mc = connect(master.local_addr).await;
    assert_eq!(
        (query(&mc, 0).await, query(&mc, 1).await),
        (Some(5), Some(3))
    );
    // Queue 1's consumer commits to the master again, further than on the slave.
    commit(&mc, GROUP, TOPIC, 1, 12).await;
    assert_eq!(slave.register_now().await, 1);
    assert_eq!(
        slave.broker.master_addr(),
        Some(master.local_addr.to_string())
    );

    let r = slave.broker.sync_from_master().await.unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(
        (r.pushed.applied(), r.pushed.skipped()),
        (Some(1), Some(0)),
        "queue 0 only: the master's queue 1 is further"
    );
    // The master took the larger, the slave kept it; the larger of the master's stays.
    assert_eq!(query(&mc, 0).await, Some(9));
    assert_eq!(slave.broker.committed_offset(TOPIC, GROUP, 0), Some(9));
    assert_eq!(query(&mc, 1).await, Some(12));
    assert_eq!(slave.broker.committed_offset(TOPIC, GROUP, 1), Some(12));
    // Once they agree nothing is sent again.
    let r = slave.broker.sync_from_master().await.unwrap();
    assert_eq!(r.pushed.applied(), Some(0), "{r:?}");

    slave.shutdown().await;
    master.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_push_the_returning_master_takes_the_offset_back() {
    // The same failover, synced as RocketMQ 4.9.8 syncs: the master's older offset comes back.
    let Pair {
        ns,
        mdir,
        master,
        slave,
        _sdir,
    } = pair(&[(0, 5)], 3_600_000).await;
    let sc = connect(slave.local_addr).await;
    let port = master.local_addr.port();
    master.shutdown().await;
    commit(&sc, GROUP, TOPIC, 0, 9).await;
    let master = start_again(mdir.path(), ns.local_addr, port).await;
    let mc = connect(master.local_addr).await;

    let r = slave.broker.sync_from_master_without_push().await.unwrap();
    assert!(r.complete() && r.pushed.applied().is_none(), "{r:?}");
    assert_eq!(query(&mc, 0).await, Some(5), "the master never heard of 9");
    assert_eq!(slave.broker.committed_offset(TOPIC, GROUP, 0), Some(5));

    slave.shutdown().await;
    master.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_job_keeps_a_masters_reset_and_pushes_after_the_master_restarts() {
    // The slave's own job, every 100 ms over one connection.
    let Pair {
        ns,
        mdir,
        master,
        slave,
        _sdir,
    } = pair(&[(0, 5)], 100).await;
    let mc = connect(master.local_addr).await;
    // A deliberate reset on the master (a consumer seeking back, `mqadmin resetOffsetByTime`):
    // the connected slave takes it and does not send its larger offset back.
    commit(&mc, GROUP, TOPIC, 0, 2).await;
    let b = Arc::clone(&slave.broker);
    assert!(eventually(async || b.committed_offset(TOPIC, GROUP, 0) == Some(2)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(query(&mc, 0).await, Some(2), "the reset stays");
    assert_eq!(slave.broker.committed_offset(TOPIC, GROUP, 0), Some(2));

    // The master restarts on the same address: the job's connection broke with it, so its
    // next sync (over a new one) sends what a consumer committed to the slave meanwhile.
    let sc = connect(slave.local_addr).await;
    let port = master.local_addr.port();
    master.shutdown().await;
    commit(&sc, GROUP, TOPIC, 0, 7).await;
    let master = start_again(mdir.path(), ns.local_addr, port).await;
    let mc = connect(master.local_addr).await;
    assert!(eventually(async || query(&mc, 0).await == Some(7)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slave.broker.committed_offset(TOPIC, GROUP, 0), Some(7));

    slave.shutdown().await;
    master.shutdown().await;
    ns.shutdown().await;
}

/// A "master" that answers `offsets` and accepts every offset pushed to it without keeping it.
struct Forgetful {
    offsets: std::sync::Mutex<serde_json::Value>,
    pushes: AtomicUsize,
}

/// The groups and queues of `Forgetful`'s tables: 10 × 1024 = 10 240 queue offsets, more than a
/// sync pushes.
const WIDE_GROUPS: usize = 10;

impl Handler for Forgetful {
    async fn handle(&self, _peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        let body = match req.code {
            request::GET_ALL_TOPIC_CONFIG => json(serde_json::json!({
                "dataVersion": {"counter": 1},
                "topicConfigTable": {"Wide": {"topicName": "Wide", "readQueueNums": 1024,
                    "writeQueueNums": 1024, "perm": 6}},
            })),
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
                let t: serde_json::Map<_, _> = (0..WIDE_GROUPS)
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
            request::GET_ALL_CONSUMER_OFFSET => json(
                self.offsets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
            request::UPDATE_CONSUMER_OFFSET => {
                self.pushes.fetch_add(1, Ordering::SeqCst);
                Vec::new()
            }
            _ => br#"{"offsetTable":{}}"#.to_vec(),
        };
        Some(RemotingCommand::response_to(&req, response::SUCCESS, None).with_body(body))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_pushes_at_most_its_bound_and_takes_the_masters_offsets_only_after_all() {
    let ns = namesrv().await;
    let sdir = tempfile::tempdir().unwrap();
    let (listener, fake) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let every_queue = |offset: i64| {
        let queues: serde_json::Map<_, _> =
            (0..1024).map(|q| (q.to_string(), offset.into())).collect();
        let t: serde_json::Map<_, _> = (0..WIDE_GROUPS)
            .map(|i| {
                (
                    format!("Wide@g{i}"),
                    serde_json::Value::Object(queues.clone()),
                )
            })
            .collect();
        serde_json::json!({ "offsetTable": t })
    };
    let master = Arc::new(Forgetful {
        offsets: std::sync::Mutex::new(every_queue(1)),
        pushes: AtomicUsize::new(0),
    });
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(
        listener,
        FrameCodec::default(),
        Arc::clone(&master),
        stopped,
    ));
    let _registered = register_as_master(ns.local_addr, fake).await;
    let slave = start(config(sdir.path(), ns.local_addr, 1)).await.unwrap();
    assert_eq!(slave.register_now().await, 1);

    // The slave takes the master's 10 240 offsets.
    let r = slave.broker.sync_from_master().await.unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.offsets.applied(), Some(1024 * WIDE_GROUPS));

    // The master comes back without them (it lost its file): all of the slave's are larger. A
    // sync sends 10 000 of them and leaves its own table alone until the rest are sent too.
    *master.offsets.lock().unwrap() = serde_json::json!({ "offsetTable": {} });
    let r = slave.broker.sync_from_master().await.unwrap();
    assert_eq!(r.pushed.applied(), Some(10_000), "{r:?}");
    let why = r
        .offsets
        .failed()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        why.contains("240 of the slave's offsets are still to be sent"),
        "{r:?}"
    );
    assert!(!r.complete());
    assert!(master.pushes.load(Ordering::SeqCst) >= 10_000);
    assert_eq!(slave.broker.table_sizes().offsets, 1024 * WIDE_GROUPS);
    assert_eq!(slave.broker.committed_offset("Wide", "g9", 1023), Some(1));
    slave.shutdown().await;

    // The periodic job, over one connection, resumes where its last sync stopped: two syncs
    // send each offset once (even to a master that keeps none of them), then the round is done
    // and nothing more is sent.
    let slave = start(BrokerConfig {
        slave_synchronize_interval: 100,
        ..config(sdir.path(), ns.local_addr, 1)
    })
    .await
    .unwrap();
    let before = master.pushes.load(Ordering::SeqCst);
    assert_eq!(slave.register_now().await, 1);
    let round = 1024 * WIDE_GROUPS;
    assert!(
        within(Duration::from_secs(15), async || {
            master.pushes.load(Ordering::SeqCst) - before >= round
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(master.pushes.load(Ordering::SeqCst) - before, round);
    assert_eq!(slave.broker.table_sizes().offsets, round);

    slave.shutdown().await;
    ns.shutdown().await;
}
