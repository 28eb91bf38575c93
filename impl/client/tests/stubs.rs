//! The client against stub servers on 127.0.0.1 that speak other dialects or misbehave:
//! a NameServer writing routes with fastjson's unquoted numeric keys and answering with binary
//! (ROCKETMQ) headers; a broker answering sends and pulls with binary headers; brokers that
//! answer garbage, close mid-response or never answer — each must give a typed error within the
//! send budget, never a hang or a panic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_client::{
    ClientConfig, ConsumeFromWhere, Error, Message, MessageQueue, Producer, PullConsumer,
};
use sextant_model::route::TopicRouteData;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    OffsetResponseHeader, PullMessageRequestHeader, PullMessageResponseHeader,
    SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use sextant_remoting::message::{MessageView, body_crc, encode_properties};
use sextant_remoting::route::{KeyStyle, encode_route};
use sextant_remoting::transport::{Handler, Peer, serve};
use sextant_remoting::{FrameCodec, RemotingCommand, SerializeType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A NameServer that knows one topic, routed to `broker`, written the old fastjson way.
struct StubNamesrv {
    broker: SocketAddr,
}

impl Handler for StubNamesrv {
    async fn handle(&self, _peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        if req.code != request::GET_ROUTEINFO_BY_TOPIC {
            return None;
        }
        let topic = req.ext("topic").unwrap_or_default().to_owned();
        let mut resp = if topic == "T" || topic.starts_with("%RETRY%") {
            let route =
                TopicRouteData::of_masters("C", [("stub-a", self.broker.to_string().as_str())], 2);
            let body = encode_route(&route, KeyStyle::Unquoted);
            assert!(
                std::str::from_utf8(&body).unwrap().contains("{0:\""),
                "unquoted keys"
            );
            RemotingCommand::response_to(&req, response::SUCCESS, None).with_body(body)
        } else {
            RemotingCommand::response_to(
                &req,
                response::TOPIC_NOT_EXIST,
                Some(format!(
                    "No topic route info in name server for the topic: {topic}"
                )),
            )
        };
        resp.serialize_type = SerializeType::RocketMq;
        Some(resp)
    }
}

/// A broker that answers sends and pulls with binary headers.
struct StubBroker {
    addr: std::sync::Mutex<Option<SocketAddr>>,
}

fn record(queue_id: i32, offset: i64, body: &[u8], store: SocketAddr) -> Vec<u8> {
    let props = encode_properties([
        ("UNIQ_KEY", "00000000000000000000000000000001"),
        ("TAGS", "t"),
    ]);
    let view = MessageView {
        queue_id,
        flag: 0,
        queue_offset: offset,
        physical_offset: 4096 + offset,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: "127.0.0.1:1".parse().unwrap(),
        store_timestamp: 2,
        store_host: store,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: body_crc(body),
        body,
        topic: "T",
        properties: &props,
    };
    let mut out = Vec::new();
    view.encode(&mut out).unwrap();
    out
}

impl Handler for StubBroker {
    async fn handle(&self, _peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        let store = self.addr.lock().unwrap().unwrap();
        let mut resp = match req.code {
            request::SEND_MESSAGE_V2 => {
                let h =
                    SendMessageRequestHeaderV2::from_ext(req.ext_fields.as_ref().unwrap()).unwrap();
                // What a Java 5.x producer puts on the wire (protocol.md §2.3).
                assert_eq!(
                    (h.a.as_str(), h.b.as_str(), h.c.as_str(), h.d),
                    ("pg", "T", "TBW102", 4)
                );
                assert!(h.e == 0 || h.e == 1, "a queue of the route: {}", h.e);
                assert_eq!(
                    (h.f, h.h, h.j, h.k, h.m),
                    (0, 0, Some(0), Some(false), Some(false))
                );
                assert_eq!(h.n.as_deref(), Some("stub-a"));
                assert!(h.g > 1_700_000_000_000, "born now: {}", h.g);
                let props = h.i.clone().unwrap_or_default();
                let p = sextant_remoting::message::parse_properties(&props);
                assert_eq!(p.get("WAIT"), Some(&"true"));
                assert_eq!(p.get("UNIQ_KEY").map(|k| k.len()), Some(32));
                let ext = SendMessageResponseHeader {
                    msg_id: "7F00000100002A9F0000000000000000".into(),
                    queue_id: h.e,
                    queue_offset: 41,
                    transaction_id: None,
                    batch_uniq_id: None,
                    msg_region: Some("DefaultRegion".into()),
                    trace_on: Some("true".into()),
                };
                RemotingCommand::response_to(&req, response::SUCCESS, None).with_ext(ext.to_ext())
            }
            request::HEART_BEAT | request::UNREGISTER_CLIENT | request::UPDATE_CONSUMER_OFFSET => {
                RemotingCommand::response_to(&req, response::SUCCESS, None)
            }
            request::QUERY_CONSUMER_OFFSET => RemotingCommand::response_to(
                &req,
                response::QUERY_NOT_FOUND,
                Some("Not found".into()),
            ),
            request::GET_MAX_OFFSET => RemotingCommand::response_to(&req, response::SUCCESS, None)
                .with_ext(OffsetResponseHeader { offset: 1 }.to_ext()),
            request::PULL_MESSAGE => {
                let h =
                    PullMessageRequestHeader::from_ext(req.ext_fields.as_ref().unwrap()).unwrap();
                let head = |next: i64| PullMessageResponseHeader {
                    suggest_which_broker_id: 0,
                    next_begin_offset: next,
                    min_offset: 0,
                    max_offset: 1,
                    offset_delta: None,
                    topic_sys_flag: None,
                    group_sys_flag: None,
                    forbidden_type: None,
                };
                if h.queue_offset == 0 && h.queue_id == 0 {
                    RemotingCommand::response_to(&req, response::SUCCESS, None)
                        .with_ext(head(1).to_ext())
                        .with_body(record(0, 0, b"from the stub", store))
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    RemotingCommand::response_to(&req, response::PULL_NOT_FOUND, None)
                        .with_ext(head(h.queue_offset).to_ext())
                }
            }
            _ => return None,
        };
        resp.serialize_type = SerializeType::RocketMq;
        Some(resp)
    }
}

async fn serve_on<H: Handler>(h: H) -> (SocketAddr, watch::Sender<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(serve(l, FrameCodec::default(), Arc::new(h), stopped));
    (addr, stop)
}

fn config(ns: SocketAddr, name: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: ns.to_string(),
        instance_name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unquoted_routes_and_binary_headers_send_and_pull() {
    let broker = StubBroker {
        addr: std::sync::Mutex::new(None),
    };
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let baddr = l.local_addr().unwrap();
    *broker.addr.lock().unwrap() = Some(baddr);
    let (_stop_b, stopped) = watch::channel(false);
    tokio::spawn(serve(l, FrameCodec::default(), Arc::new(broker), stopped));
    let (ns, _stop_ns) = serve_on(StubNamesrv { broker: baddr }).await;

    let p = Producer::builder()
        .producer_group("pg")
        .client_config(config(ns, "stub-producer"))
        .start()
        .await
        .unwrap();
    let r = p.send(Message::new("T", "hello")).await.unwrap();
    assert_eq!(r.queue_offset, 41);
    assert_eq!(&*r.queue.broker_name, "stub-a");
    assert_eq!(r.offset_msg_id, "7F00000100002A9F0000000000000000");
    assert_eq!(r.region_id.as_deref(), Some("DefaultRegion"));
    // A topic no NameServer knows, and no TBW102 route either: a typed error naming them.
    let err = p.send(Message::new("Nope", "x")).await.unwrap_err();
    match err {
        Error::NoRoute { topic, namesrvs } => {
            assert_eq!(topic, "Nope");
            assert_eq!(namesrvs, [ns.to_string()]);
        }
        other => panic!("{other}"),
    }
    p.shutdown().await;

    let c = PullConsumer::builder()
        .consumer_group("g")
        .client_config(config(ns, "stub-consumer"))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .assign([MessageQueue::new("T", "stub-a", 0)])
        .start()
        .await
        .unwrap();
    let msgs = c.poll(Duration::from_secs(10)).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(&msgs[0].body[..], b"from the stub");
    assert_eq!(msgs[0].msg_id, "00000000000000000000000000000001");
    c.shutdown().await;
}

/// A broker that reads requests and answers each with `answer`.
async fn hostile(answer: fn(&mut Vec<u8>)) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let mut out = Vec::new();
                            answer(&mut out);
                            if out.is_empty() {
                                continue; // silent
                            }
                            let close = out == b"CLOSE";
                            if !close {
                                let _ = s.write_all(&out).await;
                            } else {
                                // Half a frame, then gone.
                                let _ = s.write_all(&[0, 0, 1, 0, 0, 0, 0, 40, b'{']).await;
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_brokers_give_typed_errors_within_the_budget() {
    type Answer = fn(&mut Vec<u8>);
    let cases: [(&str, Answer); 3] = [
        ("garbage", |o| {
            o.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\n\r\nnonsense that is not a frame")
        }),
        ("close mid-response", |o| o.extend_from_slice(b"CLOSE")),
        ("never answers", |_| {}),
    ];
    for (what, answer) in cases {
        let baddr = hostile(answer).await;
        let (ns, _stop) = serve_on(StubNamesrv { broker: baddr }).await;
        let p = Producer::builder()
            .producer_group("pg")
            .client_config(config(ns, what))
            .send_msg_timeout(Duration::from_millis(800))
            .start()
            .await
            .unwrap();
        let t0 = Instant::now();
        let err = p.send(Message::new("T", "x")).await.unwrap_err();
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(3), "{what}: took {took:?}");
        match &err {
            Error::SendFailed { attempts, .. } | Error::SendTimeout { attempts, .. } => {
                assert!(!attempts.is_empty(), "{what}: {err}");
                assert!(
                    attempts.iter().all(|a| a.broker == "stub-a"),
                    "{what}: {err}"
                );
            }
            other => panic!("{what}: unexpected {other}"),
        }
        if what == "never answers" {
            // The one attempt waits out the whole 800 ms budget: then it is spent.
            assert!(matches!(err, Error::SendTimeout { .. }), "{what}: {err}");
        } else {
            // A broken answer fails the attempt at once (the connection is closed): three
            // attempts, every one reported, long before the budget.
            match &err {
                Error::SendFailed { attempts, .. } => {
                    assert_eq!(attempts.len(), 3, "{what}: {err}")
                }
                other => panic!("{what}: expected every attempt to fail, got {other}"),
            }
            assert!(took < Duration::from_millis(400), "{what}: took {took:?}");
        }
        p.shutdown().await;
    }
}

/// A broker that holds each send 20 ms and counts how many it holds at once.
struct SlowBroker {
    now: std::sync::atomic::AtomicUsize,
    max: Arc<std::sync::atomic::AtomicUsize>,
}

impl Handler for SlowBroker {
    async fn handle(&self, _peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        use std::sync::atomic::Ordering;
        match req.code {
            request::SEND_MESSAGE_V2 => {
                let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.max.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                let ext = SendMessageResponseHeader {
                    msg_id: "7F00000100002A9F0000000000000000".into(),
                    queue_id: 0,
                    queue_offset: 0,
                    transaction_id: None,
                    batch_uniq_id: None,
                    msg_region: None,
                    trace_on: None,
                };
                Some(
                    RemotingCommand::response_to(&req, response::SUCCESS, None)
                        .with_ext(ext.to_ext()),
                )
            }
            _ => Some(RemotingCommand::response_to(&req, response::SUCCESS, None)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_window_bounds_sends_in_flight() {
    let max = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (baddr, _stop_b) = serve_on(SlowBroker {
        now: std::sync::atomic::AtomicUsize::new(0),
        max: Arc::clone(&max),
    })
    .await;
    let (ns, _stop_ns) = serve_on(StubNamesrv { broker: baddr }).await;
    let p = Producer::builder()
        .producer_group("pg")
        .client_config(config(ns, "window"))
        .back_pressure_for_async_send_num(4)
        .start()
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for i in 0..40 {
        // `send_async` itself waits while 4 are in flight: it never fails for being busy.
        handles.push(
            p.send_async(Message::new("T", format!("w{i}")))
                .await
                .unwrap(),
        );
    }
    for h in handles {
        h.await.unwrap();
    }
    let held = max.load(std::sync::atomic::Ordering::SeqCst);
    assert!(held <= 4, "the broker held {held} sends at once");
    assert!(held >= 2, "sends overlap: {held}");
    // 40 sends of 20 ms, 4 at a time, take at least 200 ms.
    assert!(
        t0.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t0.elapsed()
    );
    p.shutdown().await;
}

/// A broker whose group membership changes without ever telling the consumer: only the
/// periodic rebalance can notice.
struct SilentGroupBroker {
    member: std::sync::Mutex<Option<String>>,
    other_joined: Arc<std::sync::atomic::AtomicBool>,
}

impl Handler for SilentGroupBroker {
    async fn handle(&self, _peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        let ok = |r: &RemotingCommand| RemotingCommand::response_to(r, response::SUCCESS, None);
        Some(match req.code {
            request::HEART_BEAT => {
                let hb: sextant_remoting::body::HeartbeatData =
                    sextant_remoting::body::decode("hb", &req.body).unwrap();
                *self.member.lock().unwrap() = Some(hb.client_id);
                ok(&req)
            }
            request::GET_CONSUMER_LIST_BY_GROUP => {
                let mut ids: Vec<String> = self.member.lock().unwrap().iter().cloned().collect();
                if self.other_joined.load(std::sync::atomic::Ordering::SeqCst) {
                    // Sorts first: averagely gives it queue 0, the real member queue 1.
                    ids.push("0.0.0.0@other".into());
                }
                ok(&req).with_body(sextant_remoting::body::encode(
                    &sextant_remoting::body::ConsumerListBody {
                        consumer_id_list: ids,
                    },
                ))
            }
            request::QUERY_CONSUMER_OFFSET => {
                ok(&req).with_ext(OffsetResponseHeader { offset: 0 }.to_ext())
            }
            request::PULL_MESSAGE => {
                let h =
                    PullMessageRequestHeader::from_ext(req.ext_fields.as_ref().unwrap()).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                RemotingCommand::response_to(&req, response::PULL_NOT_FOUND, None).with_ext(
                    PullMessageResponseHeader {
                        suggest_which_broker_id: 0,
                        next_begin_offset: h.queue_offset,
                        min_offset: 0,
                        max_offset: 0,
                        offset_delta: None,
                        topic_sys_flag: None,
                        group_sys_flag: None,
                        forbidden_type: None,
                    }
                    .to_ext(),
                )
            }
            _ => ok(&req),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_rebalance_runs_without_notifications() {
    let joined = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (baddr, _stop_b) = serve_on(SilentGroupBroker {
        member: std::sync::Mutex::new(None),
        other_joined: Arc::clone(&joined),
    })
    .await;
    let (ns, _stop_ns) = serve_on(StubNamesrv { broker: baddr }).await;
    let mut cfg = config(ns, "periodic");
    // Ticks shorter than the rebalance interval: they must not keep postponing it.
    cfg.persist_consumer_offset_interval = Duration::from_millis(50);
    cfg.heartbeat_broker_interval = Duration::from_millis(50);
    let c = sextant_client::PushConsumer::builder()
        .consumer_group("g")
        .client_config(cfg)
        .rebalance_interval(Duration::from_millis(300))
        .subscribe("T", "*")
        .start(|_| async { sextant_client::ConsumeResult::Success })
        .await
        .unwrap();
    let on_t =
        |c: &sextant_client::PushConsumer| c.owned().iter().filter(|q| &*q.topic == "T").count();
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_t(&c) != 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(on_t(&c), 2, "alone, it owns both queues");
    joined.store(true, std::sync::atomic::Ordering::SeqCst);
    let t0 = Instant::now();
    while on_t(&c) != 1 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        on_t(&c),
        1,
        "the next periodic rebalance gives queue 0 to the other member"
    );
    assert!(
        c.owned()
            .iter()
            .any(|q| &*q.topic == "T" && q.queue_id == 1)
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "within a few intervals: {:?}",
        t0.elapsed()
    );
    c.shutdown().await;
}

/// A broker whose CONSUMER_SEND_MSG_BACK always fails, and which records the sends it gets.
struct NoSendBackBroker {
    stub: StubBroker,
    member: std::sync::Mutex<Option<String>>,
    retries: Arc<std::sync::Mutex<Vec<SendMessageRequestHeaderV2>>>,
}

impl Handler for NoSendBackBroker {
    async fn handle(&self, peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        match req.code {
            request::CONSUMER_SEND_MSG_BACK => Some(RemotingCommand::response_to(
                &req,
                response::SYSTEM_ERROR,
                Some("send back refused by the test".into()),
            )),
            request::HEART_BEAT => {
                let hb: sextant_remoting::body::HeartbeatData =
                    sextant_remoting::body::decode("hb", &req.body).unwrap();
                if !hb.consumer_data_set.is_empty() {
                    *self.member.lock().unwrap() = Some(hb.client_id);
                }
                Some(RemotingCommand::response_to(&req, response::SUCCESS, None))
            }
            request::GET_CONSUMER_LIST_BY_GROUP => {
                let ids: Vec<String> = self.member.lock().unwrap().iter().cloned().collect();
                Some(
                    RemotingCommand::response_to(&req, response::SUCCESS, None).with_body(
                        sextant_remoting::body::encode(&sextant_remoting::body::ConsumerListBody {
                            consumer_id_list: ids,
                        }),
                    ),
                )
            }
            request::SEND_MESSAGE_V2 => {
                let h =
                    SendMessageRequestHeaderV2::from_ext(req.ext_fields.as_ref().unwrap()).unwrap();
                if h.b.starts_with("%RETRY%") {
                    self.retries.lock().unwrap().push(h.clone());
                    let ext = SendMessageResponseHeader {
                        msg_id: "7F00000100002A9F0000000000000001".into(),
                        queue_id: 0,
                        queue_offset: 0,
                        transaction_id: None,
                        batch_uniq_id: None,
                        msg_region: None,
                        trace_on: None,
                    };
                    return Some(
                        RemotingCommand::response_to(&req, response::SUCCESS, None)
                            .with_ext(ext.to_ext()),
                    );
                }
                self.stub.handle(peer, req).await
            }
            _ => self.stub.handle(peer, req).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_back_goes_to_the_retry_topic_as_a_message() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let baddr = l.local_addr().unwrap();
    let retries: Arc<std::sync::Mutex<Vec<SendMessageRequestHeaderV2>>> = Arc::default();
    let broker = NoSendBackBroker {
        stub: StubBroker {
            addr: std::sync::Mutex::new(Some(baddr)),
        },
        member: std::sync::Mutex::new(None),
        retries: Arc::clone(&retries),
    };
    let (_stop_b, stopped) = watch::channel(false);
    tokio::spawn(serve(l, FrameCodec::default(), Arc::new(broker), stopped));
    let (ns, _stop_ns) = serve_on(StubNamesrv { broker: baddr }).await;
    let c = sextant_client::PushConsumer::builder()
        .consumer_group("g")
        .client_config(config(ns, "fallback"))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .subscribe("T", "*")
        .start(|_| async { sextant_client::ConsumeResult::RetryLater })
        .await
        .unwrap();
    let t0 = Instant::now();
    while retries.lock().unwrap().is_empty() && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = retries
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("a send to the retry topic");
    assert_eq!(h.b, "%RETRY%g");
    assert_eq!(h.a, "CLIENT_INNER_PRODUCER");
    assert_eq!(
        (h.j, h.l),
        (Some(1), Some(16)),
        "reconsume times and the maximum in the header"
    );
    let props = h.i.clone().unwrap();
    let p = sextant_remoting::message::parse_properties(&props);
    assert_eq!(p.get("RETRY_TOPIC"), Some(&"T"));
    assert_eq!(p.get("DELAY"), Some(&"3"), "3 + reconsumeTimes");
    assert_eq!(p.get("RECONSUME_TIME"), Some(&"1"));
    assert_eq!(
        p.get("ORIGIN_MESSAGE_ID"),
        Some(&"00000000000000000000000000000001")
    );
    assert_eq!(
        p.get("UNIQ_KEY"),
        Some(&"00000000000000000000000000000001"),
        "the id is kept"
    );
    c.shutdown().await;
}
