//! The admin requests of `mqadmin` against a real NameServer and broker on 127.0.0.1
//! (OS-assigned ports, temp data dirs): runtime info, the topic table (whole and paged), topic
//! and consume stats, consumer connections, GET_CONSUMER_RUNNING_INFO forwarded to a client
//! that answers and to one that does not, topic deletion, and messages viewed by offset. Bodies
//! are checked field by field and against golden prefixes of fastjson's layout.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_broker::{BrokerConfig, start};
use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::body::{
    self, ConsumerData, HeartbeatData, SubscriptionData, java_hash, object_key_map,
};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    GetRouteInfoRequestHeader, PullMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader, UpdateConsumerOffsetRequestHeader,
};
use sextant_remoting::message::{MessageView, encode_properties, parse_offset_msg_id};
use sextant_remoting::transport::Connection;
use sextant_remoting::{ExtFields, FrameCodec, LanguageCode, RemotingCommand};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

async fn namesrv(config: NamesrvConfig) -> sextant_namesrv::Running {
    namesrv_with(config).await
}

fn config(dir: &Path, namesrv: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        flush_consumer_offset_interval: 50,
        consumer_running_info_timeout_mills: 300,
        ..base_config(dir, namesrv)
    }
}

/// A request with the extFields `fields`.
fn cmd(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let ext: ExtFields = fields.iter().copied().collect();
    RemotingCommand::request(code, 0).with_ext(ext)
}

/// Send `body` with tag `tag` to `topic` queue `queue`; the message's CommitLog offset.
async fn send(conn: &Connection, topic: &str, queue: i32, body: &str) -> i64 {
    let h = SendMessageRequestHeaderV2 {
        i: Some(encode_properties([("TAGS", "TagA")])),
        ..SendMessageRequestHeaderV2::new("pg", topic, queue)
    };
    let req = RemotingCommand::request(request::SEND_MESSAGE_V2, 0)
        .with_ext(h.to_ext())
        .with_body(body.as_bytes().to_vec());
    let r = conn.invoke(req, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let h = SendMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    parse_offset_msg_id(&h.msg_id).unwrap().1
}

/// Pull from `offset`: the records, back to back.
async fn pull(conn: &Connection, topic: &str, queue: i32, offset: i64) -> RemotingCommand {
    let h = PullMessageRequestHeader {
        sys_flag: 4,
        subscription: Some("*".into()),
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::new("puller", topic, queue, offset, 32)
    };
    let req = RemotingCommand::request(request::PULL_MESSAGE, 0).with_ext(h.to_ext());
    conn.invoke(req, T).await.unwrap()
}

/// Each record of `records`: (its bytes, store timestamp, body).
fn records(records: &[u8]) -> Vec<(Vec<u8>, i64, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let (m, n) = MessageView::decode(&records[at..]).unwrap();
        out.push((
            records[at..at + n].to_vec(),
            m.store_timestamp,
            String::from_utf8(m.body.to_vec()).unwrap(),
        ));
        at += n;
    }
    out
}

async fn commit(conn: &Connection, group: &str, topic: &str, queue: i32, offset: i64) {
    common::create_group(conn, group).await;
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: queue,
        commit_offset: offset,
    };
    let req = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0).with_ext(h.to_ext());
    assert_eq!(conn.invoke(req, T).await.unwrap().code, response::SUCCESS);
}

/// A Java 5.x push consumer's heartbeat for `group`, subscribing `topic` with `expression`.
fn heartbeat(client: &str, group: &str, topic: &str, expression: &str) -> RemotingCommand {
    let tags: Vec<&str> = expression.split("||").map(str::trim).collect();
    let hb = HeartbeatData {
        client_id: client.into(),
        consumer_data_set: vec![ConsumerData {
            consume_from_where: "CONSUME_FROM_FIRST_OFFSET".into(),
            consume_type: "CONSUME_PASSIVELY".into(),
            group_name: group.into(),
            message_model: "CLUSTERING".into(),
            subscription_data_set: vec![SubscriptionData {
                class_filter_mode: false,
                code_set: tags.iter().map(|t| java_hash(t)).collect(),
                expression_type: "TAG".into(),
                sub_string: expression.into(),
                sub_version: 1_700_000_000_123,
                tags_set: tags.iter().map(|t| (*t).to_owned()).collect(),
                topic: topic.into(),
            }],
            unit_mode: false,
        }],
        ..HeartbeatData::default()
    };
    let mut req = RemotingCommand::request(request::HEART_BEAT, 0).with_body(body::encode(&hb));
    req.language = LanguageCode::JAVA;
    req.version = 453;
    req
}

/// The entries of the object-keyed map `field` of a body: ((topic, queue id, broker), value).
fn mq_table(body: &[u8], field: &str) -> BTreeMap<(String, u64, String), Value> {
    let text = std::str::from_utf8(body).unwrap();
    object_key_map(text, field)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let keys: Vec<&String> = k.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["brokerName", "queueId", "topic"], "{k}");
            (
                (
                    k["topic"].as_str().unwrap().to_owned(),
                    k["queueId"].as_u64().unwrap(),
                    k["brokerName"].as_str().unwrap().to_owned(),
                ),
                v,
            )
        })
        .collect()
}

fn field_names(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn remark(r: &RemotingCommand) -> &str {
    r.remark.as_deref().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_info_counts_puts_pulls_and_the_log() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let before = sextant_broker::wall_ms();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    for b in ["r0", "r1", "r2"] {
        send(&conn, "R", 0, b).await;
    }
    let found = pull(&conn, "R", 0, 0).await;
    assert_eq!(found.code, response::SUCCESS);
    let recs = records(&found.body);
    assert_eq!(recs.len(), 3);
    assert_eq!(pull(&conn, "R", 0, 3).await.code, response::PULL_NOT_FOUND);

    let r = conn
        .invoke(
            RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO, 0),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(field_names(&v), ["table"]);
    let table: BTreeMap<String, String> = serde_json::from_value(v["table"].clone()).unwrap();
    let get = |k: &str| table.get(k).unwrap_or_else(|| panic!("no {k}")).as_str();
    assert_eq!(get("brokerVersionDesc"), "V5_3_3");
    assert_eq!(get("brokerVersion"), "479");
    assert_eq!(get("brokerActive"), "true");
    // Three puts, three messages transferred by one pull that found them, one that did not.
    assert_eq!(get("msgPutTotalTodayNow"), "3");
    assert_eq!(get("putMessageTimesTotal"), "3");
    assert_eq!(get("msgGetTotalTodayNow"), "3");
    for k in [
        "msgPutTotalTodayMorning",
        "msgPutTotalYesterdayMorning",
        "msgGetTotalTodayMorning",
        "msgGetTotalYesterdayMorning",
        "putMessageFailedTimes",
        "dispatchBehindBytes",
        "pageCacheLockTimeMills",
        "sendThreadPoolQueueSize",
        "sendThreadPoolQueueCapacity",
        "pullThreadPoolQueueSize",
        "pullThreadPoolQueueCapacity",
    ] {
        assert_eq!(get(k), "0", "{k}");
    }
    // The log holds exactly the three records.
    let bytes: usize = recs.iter().map(|r| r.0.len()).sum();
    assert_eq!(get("commitLogMinOffset"), "0");
    assert_eq!(get("commitLogMaxOffset"), bytes.to_string());
    assert_eq!(get("putMessageSizeTotal"), bytes.to_string());
    assert_eq!(
        get("putMessageAverageSize").parse::<f64>().unwrap(),
        bytes as f64 / 3.0
    );
    assert_eq!(get("earliestMessageTimeStamp"), recs[0].1.to_string());
    let boot: i64 = get("bootTimestamp").parse().unwrap();
    assert!(
        (before..=sextant_broker::wall_ms()).contains(&boot),
        "{boot}"
    );
    let runtime = get("runtime");
    assert!(
        runtime.starts_with("[ 0 days, 0 hours, 0 minutes, ") && runtime.ends_with(" seconds ]"),
        "{runtime}"
    );
    // The rates need ten seconds of samples: empty windows until then, or numbers.
    for k in ["putTps", "getTransferredTps", "getFoundTps", "getMissTps"] {
        let parts: Vec<&str> = get(k).split(' ').collect();
        assert_eq!(parts.len(), 3, "{k}: {:?}", get(k));
        assert!(
            parts
                .iter()
                .all(|p| p.is_empty() || p.parse::<f64>().is_ok()),
            "{k}"
        );
    }
    assert!(
        get("getTotalTps")
            .split(' ')
            .all(|p| p.parse::<f64>().is_ok())
    );
    // What mqadmin clusterList parses as numbers.
    assert_eq!(get("commitLogDiskRatio").parse::<f64>().unwrap(), -1.0);
    assert_eq!(get("timerReadBehind"), "0");
    assert!(get("remainHowManyDataToFlush").ends_with('B'));
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_table_whole_and_paged_and_topic_stats() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    // Two read queues, three write queues: the stats cover three.
    create_topic(&conn, "S", 2, 3).await;
    send(&conn, "S", 0, "s0").await;
    send(&conn, "S", 0, "s1").await;
    let s2 = send(&conn, "S", 2, "s2").await;

    // The whole table, as an old tool asks.
    let r = conn
        .invoke(
            RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG, 0),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert!(
        r.body.starts_with(b"{\"dataVersion\":{\"counter\":") && !r.body.contains(&b'\n'),
        "compact, sorted: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(field_names(&v), ["dataVersion", "topicConfigTable"]);
    assert_eq!(
        field_names(&v["dataVersion"]),
        ["counter", "stateVersion", "timestamp"]
    );
    let table = v["topicConfigTable"].as_object().unwrap();
    let names: Vec<&str> = table.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "DefaultCluster",
            "OFFSET_MOVED_EVENT",
            "S",
            "SCHEDULE_TOPIC_XXXX",
            "SELF_TEST_TOPIC",
            "TBW102",
            "broker-a"
        ]
    );
    assert_eq!(
        field_names(&table["S"]),
        [
            "attributes",
            "order",
            "perm",
            "readQueueNums",
            "topicFilterType",
            "topicName",
            "topicSysFlag",
            "writeQueueNums"
        ]
    );
    assert_eq!(
        (&table["S"]["readQueueNums"], &table["S"]["writeQueueNums"]),
        (&Value::from(2), &Value::from(3))
    );
    assert_eq!(r.ext("totalTopicNum"), Some("7"));

    // Paged, as a 5.x tool asks: two at a time, the data version it holds sent back.
    let page = |seq: &str, version: &str| {
        cmd(
            request::GET_ALL_TOPIC_CONFIG,
            &[
                ("topicSeq", seq),
                ("maxTopicNum", "2"),
                ("dataVersion", version),
            ],
        )
    };
    let topics_of = |r: &RemotingCommand| -> Vec<String> {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["topicConfigTable"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let first = conn.invoke(page("0", ""), T).await.unwrap();
    assert_eq!(topics_of(&first), ["DefaultCluster", "OFFSET_MOVED_EVENT"]);
    assert_eq!(first.ext("totalTopicNum"), Some("7"));
    let version = serde_json::to_string(&v["dataVersion"]).unwrap();
    let second = conn.invoke(page("2", &version), T).await.unwrap();
    assert_eq!(topics_of(&second), ["S", "SCHEDULE_TOPIC_XXXX"]);
    let last = conn.invoke(page("6", &version), T).await.unwrap();
    assert_eq!(topics_of(&last), ["broker-a"]);
    // A data version that is not the broker's: from the first topic again.
    let stale = r#"{"counter":1,"stateVersion":0,"timestamp":1}"#;
    let again = conn.invoke(page("2", stale), T).await.unwrap();
    assert_eq!(topics_of(&again), ["DefaultCluster", "OFFSET_MOVED_EVENT"]);

    // Topic stats.
    let r = conn
        .invoke(cmd(request::GET_TOPIC_STATS_INFO, &[("topic", "S")]), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(
        text.starts_with(
            r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"S"}:{"lastUpdateTimestamp":"#
        ),
        "{text}"
    );
    assert!(text.ends_with(r#"},"topicPutTps":0.0}"#), "{text}");
    let stats = mq_table(&r.body, "offsetTable");
    let q = |i: u64| &stats[&("S".to_owned(), i, "broker-a".to_owned())];
    assert_eq!(stats.len(), 3);
    assert_eq!(
        field_names(q(0)),
        ["lastUpdateTimestamp", "maxOffset", "minOffset"]
    );
    let s1 = records(&pull(&conn, "S", 0, 1).await.body)[0].1;
    assert_eq!(
        q(0),
        &serde_json::json!({"lastUpdateTimestamp": s1, "maxOffset": 2, "minOffset": 0})
    );
    assert_eq!(
        q(1),
        &serde_json::json!({"lastUpdateTimestamp": 0, "maxOffset": 0, "minOffset": 0})
    );
    // Queue 2 is write-only (2 read queues): its message is not pulled but viewed by offset.
    let r = conn
        .invoke(
            cmd(request::VIEW_MESSAGE_BY_ID, &[("offset", &s2.to_string())]),
            T,
        )
        .await
        .unwrap();
    let s2_time = records(&r.body)[0].1;
    assert_eq!(
        q(2),
        &serde_json::json!({"lastUpdateTimestamp": s2_time, "maxOffset": 1, "minOffset": 0})
    );

    let r = conn
        .invoke(cmd(request::GET_TOPIC_STATS_INFO, &[("topic", "NOPE")]), T)
        .await
        .unwrap();
    assert_eq!(
        (r.code, remark(&r)),
        (response::TOPIC_NOT_EXIST, "topic[NOPE] not exist")
    );
    let r = conn
        .invoke(cmd(request::GET_TOPIC_STATS_INFO, &[]), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_stats_and_consumer_connections() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    create_topic(&conn, "C", 2, 2).await;
    create_topic(&conn, "U", 1, 1).await;
    for b in ["c0", "c1", "c2"] {
        send(&conn, "C", 0, b).await;
    }
    send(&conn, "C", 1, "c3").await;
    send(&conn, "C", 1, "c4").await;
    send(&conn, "U", 0, "u0").await;
    commit(&conn, "G", "C", 0, 2).await;
    commit(&conn, "G", "U", 0, 1).await;
    commit(&conn, "OTHER", "C", 1, 2).await;
    let c1_time = records(&pull(&conn, "C", 0, 1).await.body)[0].1;
    let u0_time = records(&pull(&conn, "U", 0, 0).await.body)[0].1;

    let stats = |fields: &[(&str, &str)]| cmd(request::GET_CONSUME_STATS, fields);
    // The group is offline: every topic it committed on.
    let r = conn
        .invoke(stats(&[("consumerGroup", "G")]), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(
        text.starts_with(
            r#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"C"}:{"brokerOffset":3,"consumerOffset":2,"lastTimestamp":"#
        ),
        "{text}"
    );
    let table = mq_table(&r.body, "offsetTable");
    let key = |t: &str, q: u64| (t.to_owned(), q, "broker-a".to_owned());
    assert_eq!(table.len(), 3);
    assert_eq!(
        field_names(&table[&key("C", 0)]),
        [
            "brokerOffset",
            "consumerOffset",
            "lastTimestamp",
            "pullOffset"
        ]
    );
    assert_eq!(
        table[&key("C", 0)],
        serde_json::json!({"brokerOffset": 3, "consumerOffset": 2, "lastTimestamp": c1_time, "pullOffset": 2})
    );
    // Nothing committed on C queue 1 by G (OTHER's offset is not G's).
    assert_eq!(
        table[&key("C", 1)],
        serde_json::json!({"brokerOffset": 2, "consumerOffset": 0, "lastTimestamp": 0, "pullOffset": 0})
    );
    assert_eq!(
        table[&key("U", 0)],
        serde_json::json!({"brokerOffset": 1, "consumerOffset": 1, "lastTimestamp": u0_time, "pullOffset": 1})
    );

    // Not online yet.
    let connections = cmd(
        request::GET_CONSUMER_CONNECTION_LIST,
        &[("consumerGroup", "G")],
    );
    let r = conn.invoke(connections.clone(), T).await.unwrap();
    assert_eq!(
        (r.code, remark(&r)),
        (
            response::CONSUMER_NOT_ONLINE,
            "the consumer group[G] not online"
        )
    );

    // A consumer of G subscribing C only joins.
    let client = connect(broker.local_addr).await;
    let hb = client
        .invoke(heartbeat("10.0.0.9@c1", "G", "C", "TagA || TagB"), T)
        .await
        .unwrap();
    assert_eq!(hb.code, response::SUCCESS);
    let r = conn
        .invoke(stats(&[("consumerGroup", "G")]), T)
        .await
        .unwrap();
    let topics: Vec<String> = mq_table(&r.body, "offsetTable")
        .into_keys()
        .map(|k| k.0)
        .collect();
    assert_eq!(topics, ["C", "C"]);
    // U asked by name is not subscribed: nothing.
    let r = conn
        .invoke(stats(&[("consumerGroup", "G"), ("topic", "U")]), T)
        .await
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        r#"{"consumeTps":0.0,"offsetTable":{}}"#
    );
    // A 5.x topic list is taken as is.
    let r = conn
        .invoke(stats(&[("consumerGroup", "G"), ("topicList", "U;NOPE")]), T)
        .await
        .unwrap();
    let topics: Vec<String> = mq_table(&r.body, "offsetTable")
        .into_keys()
        .map(|k| k.0)
        .collect();
    assert_eq!(topics, ["U"]);
    let r = conn.invoke(stats(&[]), T).await.unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);

    // The connection list.
    let r = conn.invoke(connections.clone(), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let addr = client.local_addr().to_string();
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(
        text.starts_with(&format!(
            r#"{{"connectionSet":[{{"clientAddr":"{addr}","clientId":"10.0.0.9@c1","language":"JAVA","version":453}}],"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":{{"C":{{"#
        )),
        "{text}"
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["subscriptionTable"]["C"],
        serde_json::json!({
            "classFilterMode": false,
            "codeSet": [java_hash("TagA"), java_hash("TagB")],
            "expressionType": "TAG",
            "subString": "TagA || TagB",
            "subVersion": 1_700_000_000_123_i64,
            "tagsSet": ["TagA", "TagB"],
            "topic": "C"
        })
    );

    // The client goes: the group is offline again.
    client.close();
    assert!(
        eventually(async || {
            conn.invoke(connections.clone(), T).await.unwrap().code == response::CONSUMER_NOT_ONLINE
        })
        .await
    );
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_running_info_is_forwarded_and_times_out() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let admin = connect(broker.local_addr).await;

    // A client that answers, and one that never does.
    let (tx_a, mut rx_a) = mpsc::channel(16);
    let a = Connection::connect(broker.local_addr, FrameCodec::default(), Some(tx_a))
        .await
        .unwrap();
    let (tx_b, mut rx_b) = mpsc::channel::<RemotingCommand>(16);
    let b = Connection::connect(broker.local_addr, FrameCodec::default(), Some(tx_b))
        .await
        .unwrap();
    for (conn, id) in [(&a, "client-a"), (&b, "client-b")] {
        let r = conn.invoke(heartbeat(id, "G", "C", "*"), T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS);
    }
    let forwarded = tokio::spawn({
        let a = a.clone();
        async move {
            let mut seen = Vec::new();
            while let Some(req) = rx_a.recv().await {
                if req.code != request::GET_CONSUMER_RUNNING_INFO {
                    continue;
                }
                let n = seen.len();
                let resp = if n == 0 {
                    let mut ext = ExtFields::new();
                    ext.insert("answered", "yes");
                    RemotingCommand::response_to(&req, response::SUCCESS, Some("r".into()))
                        .with_ext(ext)
                        .with_body(br#"{"mqTable":{},"properties":{}}"#.to_vec())
                } else {
                    RemotingCommand::response_to(
                        &req,
                        response::SYSTEM_ERROR,
                        Some("The Consumer Group <G> not exist in this consumer".into()),
                    )
                };
                seen.push(req.clone());
                a.respond(&req, resp).await.unwrap();
                if seen.len() == 2 {
                    return seen;
                }
            }
            seen
        }
    });
    let ask = |client: &str| {
        cmd(
            request::GET_CONSUMER_RUNNING_INFO,
            &[
                ("consumerGroup", "G"),
                ("clientId", client),
                ("jstackEnable", "false"),
            ],
        )
        .with_body(b"opaque body".to_vec())
    };

    // The client's answer comes back as it is.
    let r = admin.invoke(ask("client-a"), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(r.remark.as_deref(), Some("r"));
    assert_eq!(r.ext("answered"), Some("yes"));
    assert_eq!(&r.body[..], br#"{"mqTable":{},"properties":{}}"#);
    let r = admin.invoke(ask("client-a"), T).await.unwrap();
    assert_eq!(
        (r.code, remark(&r)),
        (
            response::SYSTEM_ERROR,
            "The Consumer Group <G> not exist in this consumer"
        )
    );
    // What the client got: a request with the same fields and body.
    let seen = tokio::time::timeout(T, forwarded).await.unwrap().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].code, request::GET_CONSUMER_RUNNING_INFO);
    assert!(!seen[0].is_response() && !seen[0].is_oneway());
    assert_eq!(seen[0].ext_fields, ask("client-a").ext_fields);
    assert_eq!(&seen[0].body[..], b"opaque body");

    // The silent client: CONSUME_MSG_TIMEOUT after the configured 300 ms.
    let started = Instant::now();
    let r = admin.invoke(ask("client-b"), T).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(r.code, response::CONSUME_MSG_TIMEOUT, "{:?}", r.remark);
    assert!(
        remark(&r).starts_with("consumer <G> <client-b> Timeout: "),
        "{}",
        remark(&r)
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let got = rx_b.try_recv();
    assert!(
        std::iter::successors(got.ok(), |_| rx_b.try_recv().ok())
            .any(|req| req.code == request::GET_CONSUMER_RUNNING_INFO),
        "client-b was asked"
    );

    // Nobody by that id, or not in that group.
    for (group, client) in [("G", "nobody"), ("H", "client-a")] {
        let mut req = ask(client);
        req.ext_fields
            .as_mut()
            .unwrap()
            .insert("consumerGroup", group);
        let r = admin.invoke(req, T).await.unwrap();
        assert_eq!(
            (r.code, remark(&r).to_owned()),
            (
                response::SYSTEM_ERROR,
                format!("The Consumer <{group}> <{client}> not online")
            )
        );
    }
    // A client whose connection closed is not online either.
    b.close();
    assert!(
        eventually(async || {
            let r = admin.invoke(ask("client-b"), T).await.unwrap();
            r.code == response::SYSTEM_ERROR
                && remark(&r) == "The Consumer <G> <client-b> not online"
        })
        .await
    );
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topic_drops_config_offsets_queues_and_route() {
    let ns = namesrv(NamesrvConfig {
        delete_topic_with_broker_registration: true,
        ..NamesrvConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let nsc = connect(ns.local_addr).await;
    let d0 = send(&conn, "D", 0, "d0").await;
    send(&conn, "D", 1, "d1").await;
    send(&conn, "E", 0, "e0").await;
    commit(&conn, "G1", "D", 0, 1).await;
    commit(&conn, "G2", "D", 1, 1).await;
    commit(&conn, "G1", "E", 0, 1).await;
    let route = |topic: &'static str| {
        let nsc = nsc.clone();
        async move {
            let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
                GetRouteInfoRequestHeader {
                    topic: topic.into(),
                    accept_standard_json_only: None,
                }
                .to_ext(),
            );
            nsc.invoke(req, T).await.unwrap().code
        }
    };
    assert!(eventually(async || route("D").await == response::SUCCESS).await);
    let version = |r: &RemotingCommand| {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["dataVersion"]["counter"].as_i64().unwrap()
    };
    let all = || RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG, 0);
    let before = version(&conn.invoke(all(), T).await.unwrap());

    let delete = |topic: &str| cmd(request::DELETE_TOPIC_IN_BROKER, &[("topic", topic)]);
    let r = conn.invoke(delete("D"), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let b = &broker.broker;
    assert!(b.topic("D").is_none());
    assert_eq!(version(&conn.invoke(all(), T).await.unwrap()), before + 1);
    let topics_file = std::fs::read_to_string(dir.path().join("config/topics.json")).unwrap();
    assert!(!topics_file.contains("\"D\""), "{topics_file}");
    // Every group's offsets on D are gone, at once on disk too; E's stay.
    assert_eq!(b.committed_offset("D", "G1", 0), None);
    assert_eq!(b.committed_offset("D", "G2", 1), None);
    assert_eq!(b.committed_offset("E", "G1", 0), Some(1));
    let offsets = std::fs::read_to_string(dir.path().join("config/consumerOffset.json")).unwrap();
    assert!(!offsets.contains("D@"), "{offsets}");
    assert!(offsets.contains("E@G1"), "{offsets}");
    // The queues are gone, the messages still in the log.
    assert_eq!(b.store().offsets("D", 0), (0, 0));
    assert!(!dir.path().join("consumequeue/D").exists());
    assert!(dir.path().join("consumequeue/E").exists());
    let r = conn
        .invoke(
            cmd(request::VIEW_MESSAGE_BY_ID, &[("offset", &d0.to_string())]),
            T,
        )
        .await
        .unwrap();
    assert_eq!(records(&r.body)[0].2, "d0");
    let r = conn
        .invoke(cmd(request::GET_TOPIC_STATS_INFO, &[("topic", "D")]), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    // The re-registration drops the route at a NameServer that deletes with registration.
    assert!(eventually(async || route("D").await == response::TOPIC_NOT_EXIST).await);
    assert_eq!(route("E").await, response::SUCCESS);

    // Deleting it again is fine; blank and system topics are refused.
    assert_eq!(
        conn.invoke(delete("D"), T).await.unwrap().code,
        response::SUCCESS
    );
    let r = conn.invoke(delete(" "), T).await.unwrap();
    assert_eq!(
        (r.code, remark(&r)),
        (response::INVALID_PARAMETER, "The specified topic is blank.")
    );
    for t in [
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "DefaultCluster",
        "broker-a",
        "RMQ_SYS_TRACE_TOPIC",
    ] {
        let r = conn.invoke(delete(t), T).await.unwrap();
        assert_eq!(
            (r.code, remark(&r).to_owned()),
            (
                response::INVALID_PARAMETER,
                format!("The topic[{t}] is conflict with system topic.")
            )
        );
    }
    assert!(b.topic("TBW102").is_some());
    let r = conn
        .invoke(cmd(request::DELETE_TOPIC_IN_BROKER, &[]), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);

    // Sent to again, the topic is created anew from offset 0.
    send(&conn, "D", 0, "new").await;
    let found = pull(&conn, "D", 0, 0).await;
    assert_eq!(
        records(&found.body)
            .iter()
            .map(|r| r.2.as_str())
            .collect::<Vec<_>>(),
        ["new"]
    );
    broker.shutdown().await;

    // After a restart too.
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    assert_eq!(broker.broker.store().offsets("D", 0), (0, 1));
    assert_eq!(broker.broker.committed_offset("D", "G1", 0), None);
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_message_answers_the_record_at_an_offset() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let first = send(&conn, "V", 0, "v0").await;
    let second = send(&conn, "V", 0, "v1").await;
    let pulled = records(&pull(&conn, "V", 0, 0).await.body);
    let view = |offset: String| cmd(request::VIEW_MESSAGE_BY_ID, &[("offset", &offset)]);
    for (offset, (record, _, body)) in [first, second].into_iter().zip(&pulled) {
        let r = conn.invoke(view(offset.to_string()), T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS);
        // Exactly the stored record, byte for byte.
        assert_eq!(&r.body[..], &record[..]);
        let (m, n) = MessageView::decode(&r.body).unwrap();
        assert_eq!(
            (m.physical_offset, n, m.body),
            (offset, r.body.len(), body.as_bytes())
        );
    }
    let end = second + pulled[1].0.len() as i64;
    for offset in [first + 1, end, end + 100_000, -1] {
        let r = conn.invoke(view(offset.to_string()), T).await.unwrap();
        assert_eq!(
            (r.code, remark(&r).to_owned()),
            (
                response::SYSTEM_ERROR,
                format!("can not find message by the offset, {offset}")
            )
        );
        assert!(r.body.is_empty());
    }
    let r = conn
        .invoke(cmd(request::VIEW_MESSAGE_BY_ID, &[]), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(remark(&r).contains("offset"), "{}", remark(&r));
    broker.shutdown().await;
    ns.shutdown().await;
}
