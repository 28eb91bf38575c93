//! The NameServer on 127.0.0.1 with an OS-assigned port, driven by the remoting client: register,
//! routes in both key styles, cluster info, topic list, expiry after silence (timings in ms), a
//! closed connection unregistering at once, and lenient or broken requests answered properly.

use std::net::SocketAddr;
use std::time::Duration;

use sextant_model::namesrv::{DataVersion, NamesrvConfig, TopicConfig};
use sextant_namesrv::{Running, start};
use sextant_remoting::body::{RegisterBrokerBody, TopicListBody, decode, decode_cluster_info};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{GetRouteInfoRequestHeader, RegisterBrokerRequestHeader};
use sextant_remoting::route::decode_route;
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};

const T: Duration = Duration::from_secs(5);

async fn namesrv(expiry_ms: u64, scan_ms: u64) -> Running {
    let config = NamesrvConfig {
        broker_expiry: expiry_ms,
        scan_interval: scan_ms,
        ..Default::default()
    };
    start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap()
}

fn register_request(name: &str, id: i64, addr: &str, topics: &[(&str, u32)]) -> RemotingCommand {
    let header = RegisterBrokerRequestHeader {
        broker_name: name.into(),
        broker_addr: addr.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: "127.0.0.1:10912".into(),
        broker_id: id,
        ..Default::default()
    };
    let mut body = RegisterBrokerBody {
        data_version: DataVersion {
            state_version: 0,
            timestamp: 1,
            counter: 1,
        },
        ..Default::default()
    };
    // RocketMQ refuses a first registration with exactly one topic: brokers always send TBW102 too.
    for (t, q) in topics.iter().copied().chain([("TBW102", 8)]) {
        body.topic_configs.insert(t.into(), TopicConfig::new(t, q));
    }
    RemotingCommand::request(request::REGISTER_BROKER, 0)
        .with_ext(header.to_ext())
        .with_body(body.encode())
}

async fn route(conn: &Connection, topic: &str, version: i32) -> RemotingCommand {
    let mut req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
        GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        }
        .to_ext(),
    );
    req.version = version;
    conn.invoke(req, T).await.unwrap()
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn register_then_route_cluster_info_and_topics() {
    let ns = namesrv(120_000, 5_000).await;
    let broker = connect(ns.local_addr).await;
    let resp = broker
        .invoke(
            register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicTest", 4)]),
            T,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
    assert_eq!(&resp.body[..], br#"{"table":{}}"#);
    let slave = broker
        .invoke(
            register_request("broker-a", 1, "127.0.0.1:11911", &[("TopicTest", 4)]),
            T,
        )
        .await
        .unwrap();
    assert_eq!(slave.ext("masterAddr"), Some("127.0.0.1:10911"));
    assert_eq!(slave.ext("haServerAddr"), Some("127.0.0.1:10912"));

    let client = connect(ns.local_addr).await;
    let new = route(&client, "TopicTest", 479).await;
    assert_eq!(new.code, response::SUCCESS);
    let text = std::str::from_utf8(&new.body).unwrap();
    assert!(
        text.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:11911"}"#),
        "{text}"
    );
    let r = decode_route(&new.body).unwrap();
    assert_eq!(r.queue_datas[0].write_queue_nums, 4);
    assert_eq!(r.broker_datas[0].master_addr(), Some("127.0.0.1:10911"));
    // An old client (version < 401) gets fastjson's unquoted keys.
    let old = route(&client, "TopicTest", 63).await;
    let text = std::str::from_utf8(&old.body).unwrap();
    assert!(
        text.contains(r#""brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:11911"}"#),
        "{text}"
    );
    assert_eq!(decode_route(&old.body).unwrap(), r);

    let missing = route(&client, "Nope", 479).await;
    assert_eq!(missing.code, response::TOPIC_NOT_EXIST);
    assert!(missing.remark.unwrap().contains("Nope"));

    let info = client
        .invoke(
            RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO, 0),
            T,
        )
        .await
        .unwrap();
    assert!(
        std::str::from_utf8(&info.body).unwrap().contains("{0:"),
        "cluster info is unquoted"
    );
    let info = decode_cluster_info(&info.body).unwrap();
    assert_eq!(info.cluster_addr_table["DefaultCluster"].len(), 1);

    let topics = client
        .invoke(
            RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 0),
            T,
        )
        .await
        .unwrap();
    let topics: TopicListBody = decode("topics", &topics.body).unwrap();
    assert!(topics.topic_list.contains("TopicTest") && topics.topic_list.contains("TBW102"));
    ns.shutdown().await;
}

#[tokio::test]
async fn a_silent_broker_expires_and_a_closed_one_leaves_at_once() {
    let ns = namesrv(300, 50).await;
    let silent = connect(ns.local_addr).await;
    silent
        .invoke(
            register_request("broker-s", 0, "127.0.0.1:20911", &[("Silent", 1)]),
            T,
        )
        .await
        .unwrap();
    let client = connect(ns.local_addr).await;
    assert_eq!(route(&client, "Silent", 479).await.code, response::SUCCESS);
    let started = std::time::Instant::now();
    assert!(
        eventually(async || route(&client, "Silent", 479).await.code == response::TOPIC_NOT_EXIST)
            .await,
        "the silent broker expires"
    );
    // Not before its expiry (300 ms), and within expiry + a couple of scans.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");

    let closing = connect(ns.local_addr).await;
    closing
        .invoke(
            register_request("broker-c", 0, "127.0.0.1:30911", &[("Closing", 1)]),
            T,
        )
        .await
        .unwrap();
    assert_eq!(route(&client, "Closing", 479).await.code, response::SUCCESS);
    drop(closing);
    assert!(
        eventually(async || route(&client, "Closing", 479).await.code == response::TOPIC_NOT_EXIST)
            .await,
        "a closed connection unregisters its broker"
    );
    // A broker that re-registers over a new connection is not dropped when its old one closes.
    let old = connect(ns.local_addr).await;
    let new = connect(ns.local_addr).await;
    let reg = || register_request("broker-m", 0, "127.0.0.1:50911", &[("Moving", 1)]);
    old.invoke(reg(), T).await.unwrap();
    new.invoke(reg(), T).await.unwrap();
    drop(old);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(route(&client, "Moving", 479).await.code, response::SUCCESS);
    drop(new);
    assert!(
        eventually(async || route(&client, "Moving", 479).await.code == response::TOPIC_NOT_EXIST)
            .await
    );
    ns.shutdown().await;
}

#[tokio::test]
async fn lenient_broken_and_unknown_requests_get_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ns = namesrv(120_000, 5_000).await;
    let broker = connect(ns.local_addr).await;
    broker
        .invoke(
            register_request("broker-a", 0, "127.0.0.1:10911", &[("T", 2)]),
            T,
        )
        .await
        .unwrap();
    // A C++-style header: no serializeTypeCurrentRPC, language by name, old version, a number.
    let header = br#"{"code":105,"language":"CPP","version":63,"opaque":77,"flag":0,"remark":"","extFields":{"topic":"T","acceptStandardJsonOnly":1}}"#;
    let mut frame = Vec::new();
    frame.extend_from_slice(&((4 + header.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(header);
    let mut raw = tokio::net::TcpStream::connect(ns.local_addr).await.unwrap();
    raw.write_all(&frame).await.unwrap();
    let mut len = [0u8; 4];
    raw.read_exact(&mut len).await.unwrap();
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
    raw.read_exact(&mut rest).await.unwrap();
    let mut buf = bytes::BytesMut::from(&len[..]);
    buf.extend_from_slice(&rest);
    let resp = sextant_remoting::frame::decode_frame(&mut buf, 1 << 24)
        .unwrap()
        .unwrap();
    assert_eq!(resp.opaque, 77);
    assert_eq!(resp.code, response::SUCCESS);
    // acceptStandardJsonOnly=1 asks for quoted keys although the version is old.
    assert!(
        std::str::from_utf8(&resp.body)
            .unwrap()
            .contains(r#"{"0":"#)
    );

    let client = connect(ns.local_addr).await;
    let no_topic = client
        .invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0),
            T,
        )
        .await
        .unwrap();
    assert_eq!(no_topic.code, response::SYSTEM_ERROR);
    assert_eq!(
        no_topic.remark.as_deref(),
        Some("the custom field topic is null")
    );
    let unknown = client
        .invoke(RemotingCommand::request(9999, 0), T)
        .await
        .unwrap();
    assert_eq!(unknown.code, response::REQUEST_CODE_NOT_SUPPORTED);
    // A registration whose body CRC does not match is refused.
    let mut bad = register_request("broker-b", 0, "127.0.0.1:40911", &[("U", 1)]);
    bad.ext_fields
        .as_mut()
        .unwrap()
        .insert("bodyCrc32", "12345");
    let resp = client.invoke(bad, T).await.unwrap();
    assert_eq!(resp.code, response::SYSTEM_ERROR);
    assert_eq!(resp.remark.as_deref(), Some("crc32 not match"));
    // The server is still serving.
    assert_eq!(route(&client, "T", 479).await.code, response::SUCCESS);
    ns.shutdown().await;
}

#[tokio::test]
async fn write_permission_is_wiped_and_added_and_topics_deleted() {
    use sextant_remoting::header::{
        AddWritePermResponseHeader, BrokerPermRequestHeader, DeleteTopicRequestHeader,
        WipeWritePermResponseHeader,
    };
    let ns = namesrv(120_000, 5_000).await;
    let broker = connect(ns.local_addr).await;
    broker
        .invoke(
            register_request("broker-a", 0, "127.0.0.1:10911", &[("TopicTest", 4)]),
            T,
        )
        .await
        .unwrap();
    let admin = connect(ns.local_addr).await;
    let perm = |code| {
        RemotingCommand::request(code, 0).with_ext(
            BrokerPermRequestHeader {
                broker_name: "broker-a".into(),
            }
            .to_ext(),
        )
    };
    let r = admin
        .invoke(perm(request::WIPE_WRITE_PERM_OF_BROKER), T)
        .await
        .unwrap();
    let h = WipeWritePermResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    assert_eq!(h.wipe_topic_count, 2); // TopicTest and TBW102
    let q = decode_route(&route(&admin, "TopicTest", 479).await.body).unwrap();
    assert!(!q.queue_datas[0].perm.is_writeable());
    assert!(q.queue_datas[0].perm.is_readable());
    let r = admin
        .invoke(perm(request::ADD_WRITE_PERM_OF_BROKER), T)
        .await
        .unwrap();
    let h = AddWritePermResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    assert_eq!(h.add_topic_count, 2);
    let q = decode_route(&route(&admin, "TopicTest", 479).await.body).unwrap();
    assert!(q.queue_datas[0].perm.is_writeable());
    let r = admin
        .invoke(
            RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV, 0).with_ext(
                DeleteTopicRequestHeader {
                    topic: "TopicTest".into(),
                    cluster_name: None,
                }
                .to_ext(),
            ),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(
        route(&admin, "TopicTest", 479).await.code,
        response::TOPIC_NOT_EXIST
    );
    ns.shutdown().await;
}
