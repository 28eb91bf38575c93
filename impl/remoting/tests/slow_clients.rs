//! The server transport under clients that misbehave without breaking the protocol, on real
//! loopback sockets: a client that never reads its socket costs only itself (pushes to it are
//! dropped, other connections' handlers never wait for it); a client that goes away abandons
//! its in-flight requests; a shutdown answers what is in flight before it closes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use sextant_remoting::code::{request, response};
use sextant_remoting::command::RemotingCommand;
use sextant_remoting::frame::{DEFAULT_MAX_FRAME, FrameCodec, encode_frame};
use sextant_remoting::transport::{Connection, Handler, Peer, TransportError, serve};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// HEART_BEAT: remember the peer. GET_CONSUMER_LIST_BY_GROUP: push `PUSHES` big notifications to
/// every remembered peer and answer how many were dropped. PULL_MESSAGE: answer after 300 ms,
/// or (body "forever") hold for a minute, counting the holds that were dropped unfinished.
#[derive(Default)]
struct Pusher {
    peers: Mutex<Vec<Peer>>,
    abandoned: Arc<AtomicUsize>,
}

const PUSHES: usize = 3000;

/// Counts itself as abandoned when dropped before `done`.
struct Hold {
    abandoned: Arc<AtomicUsize>,
    done: bool,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Handler for Pusher {
    async fn handle(&self, peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        match req.code {
            request::HEART_BEAT => {
                self.peers.lock().unwrap().push(peer.clone());
                Some(RemotingCommand::response_to(&req, response::SUCCESS, None))
            }
            request::GET_CONSUMER_LIST_BY_GROUP => {
                let peers = self.peers.lock().unwrap().clone();
                let mut busy = 0;
                for p in peers {
                    for _ in 0..PUSHES {
                        let notify =
                            RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED, 0)
                                .with_body(vec![7u8; 16 * 1024]);
                        if let Err(TransportError::Busy) = p.send_oneway(notify) {
                            busy += 1;
                        }
                    }
                }
                Some(RemotingCommand::response_to(
                    &req,
                    response::SUCCESS,
                    Some(busy.to_string()),
                ))
            }
            request::PULL_MESSAGE => {
                let mut hold = Hold {
                    abandoned: Arc::clone(&self.abandoned),
                    done: false,
                };
                let wait = if &req.body[..] == b"forever" {
                    60_000
                } else {
                    300
                };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                hold.done = true;
                Some(RemotingCommand::response_to(&req, response::SUCCESS, None))
            }
            _ => None,
        }
    }
}

async fn server() -> (
    std::net::SocketAddr,
    Arc<Pusher>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(Pusher::default());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(
        listener,
        FrameCodec::default(),
        Arc::clone(&handler),
        stopped,
    ));
    (addr, handler, stop, task)
}

/// A client that sends `cmd` on a raw socket and then never reads.
async fn raw_send(addr: std::net::SocketAddr, cmd: RemotingCommand) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = BytesMut::new();
    encode_frame(&cmd, &mut buf, DEFAULT_MAX_FRAME).unwrap();
    s.write_all(&buf).await.unwrap();
    s
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_client_that_never_reads_costs_only_itself() {
    let (addr, handler, _stop, _task) = server().await;
    // The victim registers and then never reads a byte.
    let _victim = raw_send(addr, RemotingCommand::request(request::HEART_BEAT, 1)).await;
    while handler.peers.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Another client asks the server to push 3000 × 16 KiB to every peer: the victim's socket
    // buffers and queue fill, and the request is still answered at once.
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap();
    let resp = conn
        .invoke(
            RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP, 0),
            T,
        )
        .await
        .expect("a handler serving another client waited for the one not reading");
    assert_eq!(resp.code, response::SUCCESS);
    let dropped: usize = resp.remark.unwrap().parse().unwrap();
    assert!(
        dropped > 0,
        "the victim's queue never filled: the test did not exercise a full queue"
    );
    // The server goes on serving others.
    let resp = conn
        .invoke(RemotingCommand::request(request::HEART_BEAT, 0), T)
        .await
        .unwrap();
    assert_eq!(resp.code, response::SUCCESS);
}

#[tokio::test]
async fn a_client_that_goes_away_abandons_its_requests() {
    let (addr, handler, _stop, _task) = server().await;
    let s = raw_send(
        addr,
        RemotingCommand::request(request::PULL_MESSAGE, 1).with_body("forever"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(handler.abandoned.load(Ordering::SeqCst), 0, "still held");
    drop(s);
    let deadline = tokio::time::Instant::now() + T;
    while handler.abandoned.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held request outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn shutdown_answers_what_is_in_flight() {
    let (addr, _handler, stop, task) = server().await;
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap();
    let pending = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.invoke(RemotingCommand::request(request::PULL_MESSAGE, 0), T)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(true).unwrap();
    let resp = pending
        .await
        .unwrap()
        .expect("the in-flight request was not answered at shutdown");
    assert_eq!(resp.code, response::SUCCESS);
    tokio::time::timeout(T, task)
        .await
        .expect("serve returns once its connections are done")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err()
            || conn
                .invoke(RemotingCommand::request(request::HEART_BEAT, 0), T)
                .await
                .is_err(),
        "the server still serves after shutdown"
    );
}
