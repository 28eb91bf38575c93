//! The transport on real loopback sockets with OS-assigned ports: request/response by opaque,
//! timeouts, oneway, unknown codes, server pushes, and peers that send garbage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sextant_remoting::code::{request, response};
use sextant_remoting::command::RemotingCommand;
use sextant_remoting::frame::FrameCodec;
use sextant_remoting::transport::{Connection, Handler, Peer, TransportError, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Echoes bodies for GET_ROUTEINFO_BY_TOPIC, sleeps for PULL_MESSAGE, counts oneways, pushes a
/// notify back for HEART_BEAT; everything else is unknown.
#[derive(Default)]
struct TestHandler {
    oneways: AtomicUsize,
}

impl Handler for TestHandler {
    async fn handle(&self, peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        match req.code {
            request::GET_ROUTEINFO_BY_TOPIC => Some(
                RemotingCommand::response_to(&req, response::SUCCESS, None)
                    .with_body(req.body.clone()),
            ),
            request::PULL_MESSAGE => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Some(RemotingCommand::response_to(&req, response::SUCCESS, None))
            }
            request::UPDATE_CONSUMER_OFFSET => {
                self.oneways.fetch_add(1, Ordering::SeqCst);
                Some(RemotingCommand::response_to(&req, response::SUCCESS, None))
            }
            request::GET_CONSUMER_LIST_BY_GROUP => {
                // Ask the client something and relay its answer (what a broker does with
                // GET_CONSUMER_RUNNING_INFO).
                let ask = RemotingCommand::request(307, 0).with_body(req.body.clone());
                let answer = peer.invoke(ask, Duration::from_millis(500)).await;
                let code = match answer {
                    Ok(a) => a.code,
                    Err(_) => response::SYSTEM_ERROR,
                };
                Some(RemotingCommand::response_to(&req, code, None))
            }
            request::HEART_BEAT => {
                let notify = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED, 0);
                peer.send_oneway(notify).ok()?;
                Some(RemotingCommand::response_to(&req, response::SUCCESS, None))
            }
            _ => None,
        }
    }
}

async fn server() -> (std::net::SocketAddr, Arc<TestHandler>, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(TestHandler::default());
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(serve(
        listener,
        FrameCodec::default(),
        Arc::clone(&handler),
        stopped,
    ));
    (addr, handler, stop)
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn requests_are_matched_by_opaque_even_out_of_order() {
    let (addr, _, _stop) = server().await;
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap();
    // A slow request and many fast ones at once: each gets its own answer.
    let slow = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.invoke(RemotingCommand::request(request::PULL_MESSAGE, 0), T)
                .await
        })
    };
    let mut fast = Vec::new();
    for i in 0..50u32 {
        let conn = conn.clone();
        fast.push(tokio::spawn(async move {
            let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0)
                .with_body(i.to_string());
            let resp = conn.invoke(req, T).await.unwrap();
            assert!(resp.is_response());
            assert_eq!(resp.body, i.to_string().as_bytes());
        }));
    }
    for f in fast {
        f.await.unwrap();
    }
    assert_eq!(slow.await.unwrap().unwrap().code, response::SUCCESS);
}

#[tokio::test]
async fn timeouts_unknown_codes_and_oneway() {
    let (addr, handler, _stop) = server().await;
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap();
    let err = conn
        .invoke(
            RemotingCommand::request(request::PULL_MESSAGE, 0),
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    let resp = conn
        .invoke(RemotingCommand::request(7777, 0), T)
        .await
        .unwrap();
    assert_eq!(resp.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 7777 not supported")
    );
    conn.invoke_oneway(RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0))
        .await
        .unwrap();
    // The oneway is handled; no response arrives for it (a later request still works).
    let resp = conn
        .invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0),
            T,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, response::SUCCESS);
    for _ in 0..100 {
        if handler.oneways.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handler.oneways.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_server_pushes_requests_to_the_client() {
    let (addr, _, _stop) = server().await;
    let (tx, mut rx) = mpsc::channel(8);
    let conn = Connection::connect(addr, FrameCodec::default(), Some(tx))
        .await
        .unwrap();
    conn.invoke(RemotingCommand::request(request::HEART_BEAT, 0), T)
        .await
        .unwrap();
    let pushed = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(pushed.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    assert!(pushed.is_oneway());
}

#[tokio::test]
async fn garbage_and_oversized_frames_close_only_that_connection() {
    let (addr, _, _stop) = server().await;
    let good = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap();
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
        &[0, 0, 0, 8, 9, 0, 0, 2, b'{', b'}', 0, 0],
        &[0, 0, 0, 6, 0, 0, 0, 2, b'[', b']'],
    ];
    for bytes in cases {
        let mut bad = TcpStream::connect(addr).await.unwrap();
        bad.write_all(bytes).await.unwrap();
        let mut buf = [0u8; 64];
        // The server closes the connection: read returns 0 (or an error), never an answer.
        let n = tokio::time::timeout(T, bad.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "{bytes:?}");
        let resp = good
            .invoke(
                RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0),
                T,
            )
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
    }
}

#[tokio::test]
async fn a_closed_server_fails_pending_and_new_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
    });
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap();
    let err = conn
        .invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0),
            T,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
    accept.await.unwrap();
    assert!(conn.is_closed());
    assert!(matches!(
        conn.invoke(RemotingCommand::request(1, 0), T).await,
        Err(TransportError::Closed)
    ));
}

#[tokio::test]
async fn the_server_asks_and_the_client_answers() {
    let (addr, _, _stop) = server().await;
    let (tx, mut rx) = mpsc::channel(8);
    let conn = Connection::connect(addr, FrameCodec::default(), Some(tx))
        .await
        .unwrap();
    assert_eq!(conn.local_addr().ip(), addr.ip());
    assert_ne!(conn.local_addr().port(), addr.port());
    let answering = {
        let conn = conn.clone();
        tokio::spawn(async move {
            let ask = rx.recv().await.unwrap();
            assert_eq!(ask.code, 307);
            assert!(!ask.is_oneway());
            let answer = RemotingCommand::response_to(&ask, 42, None);
            conn.respond(&ask, answer).await.unwrap();
        })
    };
    let resp = conn
        .invoke(
            RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP, 0),
            T,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 42, "the server relays the client's answer");
    answering.await.unwrap();
    // A client that does not answer: the server's request times out, the server goes on.
    let resp = conn
        .invoke(
            RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP, 0),
            T,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, response::SYSTEM_ERROR);
}

#[tokio::test]
async fn close_fails_waiting_requests_at_once() {
    let (addr, _, _stop) = server().await;
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap();
    let waiting = {
        let conn = conn.clone();
        // PULL_MESSAGE is answered after 300 ms; the close comes first.
        tokio::spawn(async move {
            conn.invoke(RemotingCommand::request(request::PULL_MESSAGE, 0), T)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    conn.close();
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(conn.is_closed());
    tokio::time::timeout(T, conn.closed()).await.unwrap();
}
