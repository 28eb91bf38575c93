//! A real NameServer and broker on 127.0.0.1 (OS-assigned ports, temp data dirs), driven by the
//! remoting client: send (v1, v2, batch) and pull round trips, registration and unregistration,
//! long polling, offsets across a restart, heartbeats (lenient bodies), group changes pushed to
//! clients, locks, send-back with retry, delay and DLQ, a slave refusing writes, SYNC_FLUSH, and
//! broken or lenient requests.

mod common;

use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sextant_broker::{BrokerConfig, start};
use sextant_remoting::body::{
    self, ConsumerListBody, LockBatchRequestBody, LockBatchResponseBody, MessageQueueJson,
};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    ConsumerGroupHeader, ConsumerSendMsgBackRequestHeader, GetMaxOffsetRequestHeader,
    GetRouteInfoRequestHeader, OffsetResponseHeader, PullMessageResponseHeader,
    QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader, SendMessageRequestHeader,
    SendMessageRequestHeaderV2, SendMessageResponseHeader, UpdateConsumerOffsetRequestHeader,
};
use sextant_remoting::message::{BatchItem, MessageView, encode_properties, encode_send_batch};
use sextant_remoting::route::decode_route;
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

fn config(dir: &Path, namesrv: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        flush_consumer_offset_interval: 50,
        ..base_config(dir, namesrv)
    }
}

fn offset_of(resp: &RemotingCommand) -> i64 {
    OffsetResponseHeader::from_ext(resp.ext_fields.as_ref().unwrap())
        .unwrap()
        .offset
}

async fn route_code(ns: &Connection, topic: &str) -> RemotingCommand {
    let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
        GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        }
        .to_ext(),
    );
    ns.invoke(req, T).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_pull_register_and_unregister() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let nsc = connect(ns.local_addr).await;

    // v2 send auto-creates the topic from TBW102 (4 queues, as the producer asks).
    let r = conn
        .invoke(
            send_v2("T", 1, b"m0", &encode_properties([("TAGS", "a")])),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let h = SendMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    assert_eq!((h.queue_id, h.queue_offset), (1, 0));
    assert_eq!(h.msg_region.as_deref(), Some("DefaultRegion"));
    assert_eq!(h.trace_on.as_deref(), Some("true"));
    assert_eq!(h.msg_id.len(), 32);
    assert_eq!(broker.broker.topic("T").unwrap().write_queue_nums, 4);

    // v1 send with long field names.
    let v1: SendMessageRequestHeader = match send_v2("T", 1, b"", "").ext_fields {
        Some(e) => SendMessageRequestHeaderV2::from_ext(&e).unwrap().into(),
        None => unreachable!(),
    };
    let r = conn
        .invoke(
            RemotingCommand::request(request::SEND_MESSAGE, 0)
                .with_ext(v1.to_ext())
                .with_body(b"m1".to_vec()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);

    // A batch of three.
    let mut batch = Vec::new();
    let items: Vec<BatchItem<'_>> = ["m2", "m3", "m4"]
        .iter()
        .map(|b| BatchItem {
            flag: 0,
            body: b.as_bytes(),
            properties: "",
        })
        .collect();
    encode_send_batch(&items, &mut batch).unwrap();
    let mut req = send_v2("T", 1, &batch, "");
    req.code = request::SEND_BATCH_MESSAGE;
    let r = conn.invoke(req, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let h = SendMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    assert_eq!(h.queue_offset, 2);
    assert_eq!(h.msg_id.split(',').count(), 3);

    let r = conn.invoke(pull_req("G", "T", 1, 0, 0), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(bodies(&r.body), ["m0", "m1", "m2", "m3", "m4"]);
    let ph = PullMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    assert_eq!(
        (ph.next_begin_offset, ph.min_offset, ph.max_offset),
        (5, 0, 5)
    );
    // Nothing new; an offset past the end is moved back; an empty queue at 0 is "not found".
    let r = conn.invoke(pull_req("G", "T", 1, 5, 0), T).await.unwrap();
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    let r = conn.invoke(pull_req("G", "T", 1, 9, 0), T).await.unwrap();
    assert_eq!(r.code, response::PULL_OFFSET_MOVED);
    let ph = PullMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    assert_eq!(ph.next_begin_offset, 5);
    let r = conn.invoke(pull_req("G", "T", 0, 0, 0), T).await.unwrap();
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    let r = conn.invoke(pull_req("G", "T", 9, 0, 0), T).await.unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);
    let r = conn
        .invoke(pull_req("G", "NOPE", 0, 0, 0), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);

    // Max offset and search by time.
    let r = conn
        .invoke(
            RemotingCommand::request(request::GET_MAX_OFFSET, 0).with_ext(
                GetMaxOffsetRequestHeader {
                    topic: "T".into(),
                    queue_id: 1,
                    committed: None,
                }
                .to_ext(),
            ),
            T,
        )
        .await
        .unwrap();
    assert_eq!(offset_of(&r), 5);
    let r = conn
        .invoke(
            RemotingCommand::request(request::SEARCH_OFFSET_BY_TIMESTAMP, 0).with_ext(
                SearchOffsetRequestHeader {
                    topic: "T".into(),
                    queue_id: 1,
                    timestamp: 0,
                    boundary_type: None,
                }
                .to_ext(),
            ),
            T,
        )
        .await
        .unwrap();
    assert_eq!(offset_of(&r), 0);

    // The new topic reaches the NameServer without waiting for the 30 s period.
    assert!(
        eventually(async || route_code(&nsc, "T").await.code == response::SUCCESS).await,
        "topic T registered"
    );
    let route = decode_route(&route_code(&nsc, "T").await.body).unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    assert_eq!(
        route.broker_datas[0].broker_addrs[&0],
        broker.local_addr.to_string()
    );

    // A clean stop unregisters.
    broker.shutdown().await;
    assert!(
        eventually(async || route_code(&nsc, "T").await.code == response::TOPIC_NOT_EXIST).await
    );
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_wakes_on_a_new_message_and_times_out() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    assert_eq!(
        conn.invoke(send_v2("L", 0, b"first", ""), T)
            .await
            .unwrap()
            .code,
        response::SUCCESS
    );
    // Held for at most 100 ms, then "not found".
    let r = conn.invoke(pull_req("G", "L", 0, 1, 100), T).await.unwrap();
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    // Held for up to 30 s (longer than this test's timeouts): a send wakes it with the message.
    let waiting = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.invoke(pull_req("G", "L", 0, 1, 30_000), Duration::from_secs(60))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the pull is held");
    let other = connect(broker.local_addr).await;
    assert_eq!(
        other
            .invoke(send_v2("L", 0, b"second", ""), T)
            .await
            .unwrap()
            .code,
        response::SUCCESS
    );
    let r = tokio::time::timeout(T, waiting).await.unwrap().unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(bodies(&r.body), ["second"]);
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_messages_survive_a_restart() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let update = |offset: i64| {
        RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0).with_ext(
            UpdateConsumerOffsetRequestHeader {
                consumer_group: "G".into(),
                topic: "O".into(),
                queue_id: 2,
                commit_offset: offset,
            }
            .to_ext(),
        )
    };
    let query = || {
        RemotingCommand::request(request::QUERY_CONSUMER_OFFSET, 0).with_ext(
            QueryConsumerOffsetRequestHeader {
                consumer_group: "G".into(),
                topic: "O".into(),
                queue_id: 2,
                set_zero_if_not_found: None,
            }
            .to_ext(),
        )
    };
    {
        let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
        let conn = connect(broker.local_addr).await;
        for i in 0..7 {
            let body = format!("o{i}");
            assert_eq!(
                conn.invoke(send_v2("O", 2, body.as_bytes(), ""), T)
                    .await
                    .unwrap()
                    .code,
                response::SUCCESS
            );
        }
        // A group that never committed starts at 0 while the queue starts at 0.
        common::create_group(&conn, "G").await;
        let r = conn.invoke(query(), T).await.unwrap();
        assert_eq!((r.code, offset_of(&r)), (response::SUCCESS, 0));
        assert_eq!(
            conn.invoke(update(5), T).await.unwrap().code,
            response::SUCCESS
        );
        assert_eq!(offset_of(&conn.invoke(query(), T).await.unwrap()), 5);
        broker.shutdown().await;
    }
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    assert!(!broker.recovery.rebuilt);
    assert_eq!(broker.recovery.redispatched, 0);
    let conn = connect(broker.local_addr).await;
    assert_eq!(offset_of(&conn.invoke(query(), T).await.unwrap()), 5);
    let r = conn.invoke(pull_req("G", "O", 2, 5, 0), T).await.unwrap();
    assert_eq!(bodies(&r.body), ["o5", "o6"]);
    // The auto-created topic is still there, with its queues.
    assert_eq!(broker.broker.topic("O").unwrap().read_queue_nums, 4);
    broker.shutdown().await;
    ns.shutdown().await;
}

fn heartbeat(client: &str, group: &str) -> RemotingCommand {
    // Enum ordinals, subVersion as a string, missing fields: as the C++ and JS clients send.
    let body = format!(
        r#"{{"clientID":"{client}","consumerDataSet":[{{"groupName":"{group}","consumeType":1,"messageModel":1,"consumeFromWhere":0,"subscriptionDataSet":[{{"topic":"H","subString":"*","subVersion":"12"}}]}}],"producerDataSet":[]}}"#
    );
    RemotingCommand::request(request::HEART_BEAT, 0).with_body(body.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_notifications_locks_and_lenient_heartbeats() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let (tx_a, mut rx_a) = mpsc::channel(16);
    let a = Connection::connect(broker.local_addr, FrameCodec::default(), Some(tx_a))
        .await
        .unwrap();
    let b = connect(broker.local_addr).await;
    assert_eq!(
        a.invoke(heartbeat("client-a", "CG"), T).await.unwrap().code,
        response::SUCCESS
    );
    let first = tokio::time::timeout(T, rx_a.recv()).await.unwrap().unwrap();
    assert_eq!(first.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    assert_eq!(first.ext("consumerGroup"), Some("CG"));
    // The retry topic of the group exists now.
    assert!(broker.broker.topic("%RETRY%CG").is_some());
    // A second member: the first is told.
    assert_eq!(
        b.invoke(heartbeat("client-b", "CG"), T).await.unwrap().code,
        response::SUCCESS
    );
    let n = tokio::time::timeout(T, rx_a.recv()).await.unwrap().unwrap();
    assert_eq!(n.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    let list = |group: &str| {
        RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP, 0).with_ext(
            ConsumerGroupHeader {
                consumer_group: group.into(),
            }
            .to_ext(),
        )
    };
    let r = a.invoke(list("CG"), T).await.unwrap();
    let ids: ConsumerListBody = body::decode("list", &r.body).unwrap();
    assert_eq!(ids.consumer_id_list, ["client-a", "client-b"]);
    assert_eq!(
        a.invoke(list("nobody"), T).await.unwrap().code,
        response::SYSTEM_ERROR
    );

    // Locks (of queues that exist: H is created by a send): a holds q0 and q1; b gets
    // neither; after a unlocks q0, b gets q0.
    assert_eq!(
        a.invoke(send_v2("H", 0, b"h", ""), T).await.unwrap().code,
        response::SUCCESS
    );
    let mq = |q: u32| MessageQueueJson {
        broker_name: "broker-a".into(),
        queue_id: q,
        topic: "H".into(),
    };
    let lock_req = |client: &str, qs: &[u32], code: i32| {
        let body = LockBatchRequestBody {
            client_id: client.into(),
            consumer_group: "CG".into(),
            mq_set: qs.iter().map(|q| mq(*q)).collect(),
            only_this_broker: false,
        };
        RemotingCommand::request(code, 0).with_body(body::encode(&body))
    };
    let locked = async |c: &Connection, client: &str, qs: &[u32]| -> Vec<u32> {
        let r = c
            .invoke(lock_req(client, qs, request::LOCK_BATCH_MQ), T)
            .await
            .unwrap();
        let b: LockBatchResponseBody = body::decode("lock", &r.body).unwrap();
        b.lock_ok_mq_set.iter().map(|m| m.queue_id).collect()
    };
    assert_eq!(locked(&a, "client-a", &[0, 1]).await, [0, 1]);
    assert_eq!(locked(&b, "client-b", &[0, 1]).await, Vec::<u32>::new());
    a.invoke(lock_req("client-a", &[0], request::UNLOCK_BATCH_MQ), T)
        .await
        .unwrap();
    assert_eq!(locked(&b, "client-b", &[0, 1]).await, [0]);

    // b's connection closes: a is told, and the list shrinks.
    drop(b);
    let n = tokio::time::timeout(T, rx_a.recv()).await.unwrap().unwrap();
    assert_eq!(n.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    let r = a.invoke(list("CG"), T).await.unwrap();
    let ids: ConsumerListBody = body::decode("list", &r.body).unwrap();
    assert_eq!(ids.consumer_id_list, ["client-a"]);
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_back_retries_with_delay_then_dead_letters() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), ns.local_addr);
    c.message_delay_level = "1s 2s".into();
    let broker = start(c).await.unwrap();
    let conn = connect(broker.local_addr).await;
    conn.invoke(send_v2("R", 0, b"work", ""), T).await.unwrap();
    let r = conn.invoke(pull_req("G", "R", 0, 0, 0), T).await.unwrap();
    let (m, _) = MessageView::decode(&r.body).unwrap();
    let back = |offset: i64, level: i32, max: i32| {
        RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK, 0).with_ext(
            ConsumerSendMsgBackRequestHeader {
                offset,
                group: "G".into(),
                delay_level: level,
                origin_msg_id: None,
                origin_topic: Some("R".into()),
                unit_mode: Some(false),
                max_reconsume_times: Some(max),
            }
            .to_ext(),
        )
    };
    let r = conn
        .invoke(back(m.physical_offset, 1, 16), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Delivered into %RETRY%G after the 1 s delay, counted as reconsumed once.
    let mut retried = None;
    assert!(
        eventually(async || {
            let r = conn
                .invoke(pull_req("G", "%RETRY%G", 0, 0, 0), T)
                .await
                .unwrap();
            if r.code == response::SUCCESS {
                retried = Some(r.body.to_vec());
            }
            r.code == response::SUCCESS
        })
        .await,
        "the retry arrives"
    );
    let retried = retried.unwrap();
    let (rm, _) = MessageView::decode(&retried).unwrap();
    assert_eq!(rm.body, b"work");
    assert_eq!(rm.reconsume_times, 1);
    assert_eq!(rm.property("RETRY_TOPIC"), Some("R"));
    assert_eq!(rm.property("DELAY"), None);
    // Past the maximum: straight to the DLQ (one queue, readable as in RocketMQ 5).
    let r = conn
        .invoke(back(rm.physical_offset, 0, 1), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let dlq = broker.broker.topic("%DLQ%G").expect("DLQ created");
    assert_eq!(dlq.read_queue_nums, 1);
    let r = conn
        .invoke(pull_req("G", "%DLQ%G", 0, 0, 0), T)
        .await
        .unwrap();
    let (dm, _) = MessageView::decode(&r.body).unwrap();
    assert_eq!(dm.body, b"work");
    assert_eq!(dm.reconsume_times, 2);
    assert_eq!(dm.property("RETRY_TOPIC"), Some("R"));
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_refuses_writes_and_sync_flush_acks() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), ns.local_addr);
    c.broker_role = "SLAVE".into();
    c.broker_id = 1;
    let slave = start(c).await.unwrap();
    let conn = connect(slave.local_addr).await;
    let r = conn.invoke(send_v2("S", 0, b"x", ""), T).await.unwrap();
    assert_eq!(r.code, response::NO_PERMISSION);
    assert!(r.remark.unwrap().contains("forbidden"));
    slave.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), ns.local_addr);
    c.flush_disk_type = "SYNC_FLUSH".into();
    let master = start(c).await.unwrap();
    let conn = connect(master.local_addr).await;
    for i in 0..20 {
        let r = conn
            .invoke(send_v2("S", 0, format!("s{i}").as_bytes(), ""), T)
            .await
            .unwrap();
        assert_eq!(r.code, response::SUCCESS);
    }
    assert!(master.broker.store().flushed() > 0);
    master.shutdown().await;
    ns.shutdown().await;
}

async fn raw_frame(stream: &mut tokio::net::TcpStream, header: &str, body: &[u8]) {
    let mut f = Vec::new();
    f.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    f.extend_from_slice(&(header.len() as u32).to_be_bytes());
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(body);
    stream.write_all(&f).await.unwrap();
}

async fn read_response(stream: &mut tokio::net::TcpStream) -> RemotingCommand {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).await.unwrap();
    let mut all = bytes::BytesMut::from(&len[..]);
    all.extend_from_slice(&frame);
    sextant_remoting::frame::decode_frame(&mut all, sextant_remoting::DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_and_broken_requests() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();

    // A C++-style SEND_MESSAGE_V2: numbers and booleans in extFields, "0" for a boolean, the
    // language by name, no serializeTypeCurrentRPC.
    let mut s = tokio::net::TcpStream::connect(broker.local_addr)
        .await
        .unwrap();
    raw_frame(
        &mut s,
        r#"{"code":310,"language":"CPP","version":79,"opaque":7,"flag":0,"remark":"","extFields":{"a":"pg","b":"Lenient","c":"TBW102","d":4,"e":0,"f":0,"g":1700000000000,"h":0,"i":"TAGS\u0001x\u0002","j":0,"k":false,"m":"0"}}"#,
        b"hello",
    )
    .await;
    let r = read_response(&mut s).await;
    assert_eq!((r.code, r.opaque), (response::SUCCESS, 7), "{:?}", r.remark);

    // A pull with numbers for its fields.
    raw_frame(
        &mut s,
        r#"{"code":11,"language":"JAVA","version":401,"opaque":8,"flag":0,"extFields":{"consumerGroup":"G","topic":"Lenient","queueId":0,"queueOffset":0,"maxMsgNums":32,"sysFlag":0,"commitOffset":0,"suspendTimeoutMillis":0,"subVersion":0}}"#,
        b"",
    )
    .await;
    let r = read_response(&mut s).await;
    assert_eq!((r.code, r.opaque), (response::SUCCESS, 8));
    assert_eq!(bodies(&r.body), ["hello"]);

    // An undecodable request (a required field missing) gets an error with its opaque.
    raw_frame(
        &mut s,
        r#"{"code":11,"language":"JAVA","version":401,"opaque":9,"flag":0,"extFields":{"topic":"Lenient"}}"#,
        b"",
    )
    .await;
    let r = read_response(&mut s).await;
    assert_eq!((r.code, r.opaque), (response::SYSTEM_ERROR, 9));
    assert!(r.remark.unwrap().contains("consumerGroup"));
    // A heartbeat whose body is not JSON: an error answer, not a silent close.
    raw_frame(
        &mut s,
        r#"{"code":34,"language":"JAVA","version":401,"opaque":10,"flag":0}"#,
        b"{not json",
    )
    .await;
    let r = read_response(&mut s).await;
    assert_eq!((r.code, r.opaque), (response::SYSTEM_ERROR, 10));

    // Garbage and a frame claiming 2 GiB close only their own connections.
    let mut g = tokio::net::TcpStream::connect(broker.local_addr)
        .await
        .unwrap();
    g.write_all(b"\x00\x00\x00\x08garbage!").await.unwrap();
    let mut big = tokio::net::TcpStream::connect(broker.local_addr)
        .await
        .unwrap();
    big.write_all(&0x7FFF_FFF0u32.to_be_bytes()).await.unwrap();
    big.write_all(&[0u8; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        tokio::time::timeout(T, g.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0),
        0
    );
    assert_eq!(
        tokio::time::timeout(T, big.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0),
        0
    );
    let conn = connect(broker.local_addr).await;
    let r = conn
        .invoke(send_v2("Lenient", 0, b"still", ""), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    // An unknown code is answered as RocketMQ does.
    let r = conn
        .invoke(RemotingCommand::request(9999, 0), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    // A message over the size limit is refused, nothing stored.
    let r = conn
        .invoke(
            send_v2("Lenient", 0, &vec![0u8; 4 * 1024 * 1024 + 1], ""),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::MESSAGE_ILLEGAL);
    assert_eq!(broker.broker.store().offsets("Lenient", 0), (0, 2));
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_expire_and_their_locks_lapse() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), ns.local_addr);
    c.channel_expired_timeout = 200;
    c.lock_max_live_time = 200;
    let broker = start(c).await.unwrap();
    let (tx_a, mut rx_a) = mpsc::channel(16);
    let a = Connection::connect(broker.local_addr, FrameCodec::default(), Some(tx_a))
        .await
        .unwrap();
    let b = connect(broker.local_addr).await;
    a.invoke(heartbeat("client-a", "EG"), T).await.unwrap();
    rx_a.recv().await.unwrap();
    b.invoke(heartbeat("client-b", "EG"), T).await.unwrap();
    rx_a.recv().await.unwrap();
    assert_eq!(
        b.invoke(send_v2("H", 0, b"h", ""), T).await.unwrap().code,
        response::SUCCESS
    );
    let lock = |client: &str| {
        let body = LockBatchRequestBody {
            client_id: client.into(),
            consumer_group: "EG".into(),
            mq_set: [MessageQueueJson {
                broker_name: "broker-a".into(),
                queue_id: 0,
                topic: "H".into(),
            }]
            .into(),
            only_this_broker: false,
        };
        RemotingCommand::request(request::LOCK_BATCH_MQ, 0).with_body(body::encode(&body))
    };
    let granted = async |c: &Connection, client: &str| -> usize {
        let r = c.invoke(lock(client), T).await.unwrap();
        let b: LockBatchResponseBody = body::decode("lock", &r.body).unwrap();
        b.lock_ok_mq_set.len()
    };
    assert_eq!(granted(&b, "client-b").await, 1);
    assert_eq!(granted(&a, "client-a").await, 0);
    // a keeps sending heartbeats; b stays connected but silent: b's channel expires (a is told)
    // and, not renewed, b's lock lapses.
    let list = RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP, 0).with_ext(
        ConsumerGroupHeader {
            consumer_group: "EG".into(),
        }
        .to_ext(),
    );
    let mut alone = false;
    for _ in 0..100 {
        a.invoke(heartbeat("client-a", "EG"), T).await.unwrap();
        let r = a.invoke(list.clone(), T).await.unwrap();
        let ids: ConsumerListBody = body::decode("list", &r.body).unwrap();
        if ids.consumer_id_list == ["client-a"] {
            alone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alone, "client-b expired");
    let n = tokio::time::timeout(T, rx_a.recv()).await.unwrap().unwrap();
    assert_eq!(n.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    assert_eq!(granted(&a, "client-a").await, 1);
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_every_nameserver() {
    let (ns1, ns2) = (namesrv().await, namesrv().await);
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), ns1.local_addr);
    c.namesrv_addr = format!("{};{}", ns1.local_addr, ns2.local_addr);
    let broker = start(c).await.unwrap();
    assert_eq!(broker.register_now().await, 2);
    for ns in [&ns1, &ns2] {
        let conn = connect(ns.local_addr).await;
        let r = route_code(&conn, "TBW102").await;
        assert_eq!(r.code, response::SUCCESS);
        let route = decode_route(&r.body).unwrap();
        assert_eq!(
            route.broker_datas[0].broker_addrs[&0],
            broker.local_addr.to_string()
        );
    }
    // One NameServer gone: the other still gets the registrations.
    ns2.shutdown().await;
    assert_eq!(broker.register_now().await, 1);
    broker.shutdown().await;
    ns1.shutdown().await;
}
