//! The NameServer over loopback: which connection owns a broker, split registrations merged and
//! deleted by whole cycles, a thread that panicked under the route table's lock, and shutdown
//! (stop accepting, answer what was received, return within the deadline).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sextant_model::namesrv::{
    DataVersion, NamesrvConfig, REGISTRATION_PART_KEY, RegistrationPart, TopicConfig,
};
use sextant_namesrv::{Running, Stopped, start};
use sextant_remoting::body::{RegisterBrokerBody, TopicListBody, decode};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{GetRouteInfoRequestHeader, RegisterBrokerRequestHeader};
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

async fn namesrv(config: NamesrvConfig) -> Running {
    start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap()
}

fn register(addr: &str, counter: i64, topics: &[(&str, u32)]) -> RemotingCommand {
    let header = RegisterBrokerRequestHeader {
        broker_name: "broker-a".into(),
        broker_addr: addr.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: "127.0.0.1:10912".into(),
        broker_id: 0,
        ..Default::default()
    };
    let mut body = RegisterBrokerBody {
        data_version: DataVersion {
            state_version: 0,
            timestamp: 1,
            counter,
        },
        ..Default::default()
    };
    for (t, q) in topics {
        body.topic_configs
            .insert((*t).into(), TopicConfig::new(t, *q));
    }
    RemotingCommand::request(request::REGISTER_BROKER, 0)
        .with_ext(header.to_ext())
        .with_body(body.encode())
}

fn part(mut cmd: RemotingCommand, index: u32, count: u32) -> RemotingCommand {
    let mark = RegistrationPart::new(index, count).unwrap().to_ext_value();
    cmd.ext_fields
        .get_or_insert_with(Default::default)
        .insert(REGISTRATION_PART_KEY, &mark);
    cmd
}

fn route_request(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
        GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        }
        .to_ext(),
    )
}

async fn routed(conn: &Connection, topic: &str) -> bool {
    let r = conn.invoke(route_request(topic), T).await.unwrap();
    match r.code {
        response::SUCCESS => true,
        response::TOPIC_NOT_EXIST => false,
        other => panic!("route {topic}: code {other} {:?}", r.remark),
    }
}

async fn topics(conn: &Connection) -> Vec<String> {
    let r = conn
        .invoke(
            RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 0),
            T,
        )
        .await
        .unwrap();
    let body: TopicListBody = decode("topics", &r.body).unwrap();
    body.topic_list.into_iter().collect()
}

/// Wait until the server has `n` connections open (it has processed the closes before).
async fn open_connections(ns: &Running, n: usize) {
    let deadline = Instant::now() + T;
    while ns.connections() != n {
        assert!(
            Instant::now() < deadline,
            "{} connections, not {n}",
            ns.connections()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_connection_a_broker_last_registered_over_owns_it() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let client = connect(ns.local_addr).await;
    let a = connect(ns.local_addr).await;
    let b = connect(ns.local_addr).await;
    let reg = || register("127.0.0.1:50911", 1, &[("Moving", 4), ("TBW102", 8)]);
    assert_eq!(a.invoke(reg(), T).await.unwrap().code, response::SUCCESS);
    assert_eq!(b.invoke(reg(), T).await.unwrap().code, response::SUCCESS);
    a.close();
    open_connections(&ns, 2).await;
    assert!(
        routed(&client, "Moving").await,
        "A's close leaves B's broker"
    );
    b.close();
    open_connections(&ns, 1).await;
    assert!(!routed(&client, "Moving").await, "B's close removes it");
    // Registering back over A's successor and closing the client changes nothing for it.
    let c = connect(ns.local_addr).await;
    c.invoke(reg(), T).await.unwrap();
    client.close();
    open_connections(&ns, 1).await;
    let d = connect(ns.local_addr).await;
    assert!(routed(&d, "Moving").await);
    ns.shutdown().await;
}

#[tokio::test]
async fn split_registrations_merge_and_a_whole_cycle_deletes() {
    let ns = namesrv(NamesrvConfig {
        delete_topic_with_broker_registration: true,
        ..Default::default()
    })
    .await;
    let broker = connect(ns.local_addr).await;
    let addr = "127.0.0.1:10911";
    let send = async |cmd| {
        let r = broker.invoke(cmd, T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    };
    send(part(register(addr, 1, &[("A", 1), ("TBW102", 8)]), 0, 2)).await;
    send(part(register(addr, 1, &[("B", 1)]), 1, 2)).await;
    assert_eq!(topics(&broker).await, ["A", "B", "TBW102"]);
    // A is deleted on the broker: version 2, in two parts.
    send(part(register(addr, 2, &[("TBW102", 8)]), 0, 2)).await;
    assert_eq!(topics(&broker).await, ["A", "B", "TBW102"], "not mid-cycle");
    send(part(register(addr, 2, &[("B", 1)]), 1, 2)).await;
    assert_eq!(topics(&broker).await, ["B", "TBW102"]);
    // A broken mark is refused, and changes nothing.
    let mut bad = register(addr, 3, &[("X", 1), ("Y", 1)]);
    bad.ext_fields
        .as_mut()
        .unwrap()
        .insert(REGISTRATION_PART_KEY, "2/2");
    let r = broker.invoke(bad, T).await.unwrap();
    assert_eq!(r.code, response::INVALID_PARAMETER);
    assert!(r.remark.unwrap().contains("out of range"));
    assert_eq!(topics(&broker).await, ["B", "TBW102"]);
    ns.shutdown().await;
}

#[tokio::test]
async fn a_panic_under_the_route_table_lock_does_not_stop_the_server() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let broker = connect(ns.local_addr).await;
    broker
        .invoke(
            register("127.0.0.1:10911", 1, &[("T", 1), ("TBW102", 8)]),
            T,
        )
        .await
        .unwrap();
    let server = std::sync::Arc::clone(&ns.server);
    let panicked = std::thread::spawn(move || {
        server.update_table(|t| {
            t.delete_topic("TBW102");
            panic!("a bug while holding the route table");
        })
    })
    .join();
    assert!(panicked.is_err());
    assert!(
        routed(&broker, "T").await,
        "still serving after the poisoning"
    );
    assert!(
        !routed(&broker, "TBW102").await,
        "with the table as the panic left it"
    );
    broker
        .invoke(register("127.0.0.1:10911", 2, &[("T", 1), ("U", 1)]), T)
        .await
        .unwrap();
    assert!(routed(&broker, "U").await);
    assert_eq!(ns.shutdown_within(T).await, Stopped::Drained);
}

fn frame(cmd: &RemotingCommand) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    sextant_remoting::frame::encode_frame(cmd, &mut buf, sextant_remoting::DEFAULT_MAX_FRAME)
        .unwrap();
    buf.to_vec()
}

#[tokio::test]
async fn shutdown_answers_what_was_received_then_refuses_connections() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let addr = ns.local_addr;
    let broker = connect(addr).await;
    broker
        .invoke(
            register("127.0.0.1:10911", 1, &[("T", 1), ("TBW102", 8)]),
            T,
        )
        .await
        .unwrap();
    // 200 pipelined requests written at once, and the shutdown right behind them.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = Vec::new();
    for i in 0..200 {
        let mut r = route_request("T");
        r.opaque = i;
        bytes.extend(frame(&r));
    }
    raw.write_all(&bytes).await.unwrap();
    open_connections(&ns, 2).await;
    // Let the bytes reach the server's socket before it stops.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let stopped = ns.shutdown_within(Duration::from_secs(2)).await;
    assert_eq!(stopped, Stopped::Drained);
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut answers = Vec::new();
    raw.read_to_end(&mut answers).await.unwrap();
    let mut buf = bytes::BytesMut::from(&answers[..]);
    let mut opaques = Vec::new();
    while let Some(resp) = sextant_remoting::frame::decode_frame(&mut buf, 1 << 24).unwrap() {
        assert_eq!(resp.code, response::SUCCESS);
        opaques.push(resp.opaque);
    }
    assert_eq!(
        opaques,
        (0..200).collect::<Vec<_>>(),
        "every request answered, in order"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    assert!(broker.invoke(route_request("T"), T).await.is_err());
}

#[tokio::test]
async fn shutdown_cuts_off_a_peer_that_does_not_read_within_the_deadline() {
    let ns = namesrv(NamesrvConfig::default()).await;
    let broker = connect(ns.local_addr).await;
    // 20 000 topics of 100 characters: every topic list answer is about 2 MiB.
    let names: Vec<String> = (0..20_000).map(|i| format!("{i:0>100}")).collect();
    let list: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let r = broker
        .invoke(register("127.0.0.1:10911", 1, &list), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    // Ask for 40 of them (80 MiB) and read none: the server's writes block on the full socket.
    let mut raw = tokio::net::TcpStream::connect(ns.local_addr).await.unwrap();
    let ask = frame(&RemotingCommand::request(
        request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
        0,
    ));
    for _ in 0..40 {
        raw.write_all(&ask).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ns.tasks() >= 3, "accept, scan and the connections");
    let started = Instant::now();
    let stopped = ns.shutdown_within(Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert_eq!(stopped, Stopped::CutOff);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(raw);
}
