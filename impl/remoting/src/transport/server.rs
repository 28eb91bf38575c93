//! The server side: [`serve`] accepts connections and dispatches their requests to a
//! [`Handler`]; a [`Peer`] is one connection as handlers see it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::code::response;
use crate::command::RemotingCommand;
use crate::frame::FrameCodec;

use super::{Pending, QUEUE, TransportError, lock, next_opaque, write_batch};

/// Requests of one server-side connection handled at once.
const IN_FLIGHT: usize = 1024;

/// Connections a server holds at once: past it a new connection is closed as soon as it is
/// accepted, so a client opening sockets in a loop costs the server no more file handles.
pub const MAX_CONNECTIONS: usize = 16_384;

/// How long a connection that is shutting down waits for its writer to send what is queued.
const DRAIN: Duration = Duration::from_secs(2);

/// A server-side connection, as handlers see it: they may keep it to push requests to the client.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    out: mpsc::Sender<RemotingCommand>,
    pending: Pending,
}

/// Requests a server may have waiting for a client's answer on one connection
/// ([`Peer::invoke`]); more are refused rather than queued.
const PEER_PENDING: usize = 64;

impl Peer {
    /// Send a request to the client and wait for its answer (RocketMQ's broker forwards
    /// GET_CONSUMER_RUNNING_INFO this way). A client that never answers costs `timeout`; at most
    /// a few such requests wait per connection.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, TransportError> {
        let opaque = next_opaque();
        request.opaque = opaque;
        request.flag &= !crate::command::FLAG_ONEWAY;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= PEER_PENDING {
                return Err(TransportError::Timeout { opaque, timeout });
            }
            pending.insert(opaque, tx);
        }
        // Never wait for a peer's full queue: the handler calling this serves someone else.
        let result = match self.out.try_send(request) {
            Ok(()) => tokio::time::timeout(timeout, async {
                rx.await.map_err(|_| TransportError::Closed)
            })
            .await
            .unwrap_or(Err(TransportError::Timeout { opaque, timeout })),
            Err(mpsc::error::TrySendError::Full(_)) => Err(TransportError::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TransportError::Closed),
        };
        lock(&self.pending).remove(&opaque);
        result
    }

    /// Send a oneway request to the client (e.g. NOTIFY_CONSUMER_IDS_CHANGED) without waiting:
    /// when the client is not reading and its queue is full, the request is dropped
    /// ([`TransportError::Busy`]) — a handler serving another client never waits for this one.
    pub fn send_oneway(&self, request: RemotingCommand) -> Result<(), TransportError> {
        let mut request = request.oneway();
        request.opaque = next_opaque();
        self.out.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TransportError::Busy,
            mpsc::error::TrySendError::Closed(_) => TransportError::Closed,
        })
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.out.is_closed()
    }
}

/// Serves requests. `None` means the code is not one this handler serves: the server answers
/// `REQUEST_CODE_NOT_SUPPORTED`.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request (the response's opaque and flag are set by the server).
    fn handle(
        &self,
        peer: &Peer,
        request: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send;

    /// A connection closed (RocketMQ: `channelInactive`).
    fn closed(&self, _peer: &Peer) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Bind a listener on `addr` and tell the address it got (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Accept connections on `listener` until `shutdown` turns true, serving each with `handler`
/// (at most [`MAX_CONNECTIONS`] at once). Then every connection stops reading, answers the
/// requests it is handling, sends what it has queued and closes; `serve` returns when all have
/// (callers bound that with their own deadline).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    codec: FrameCodec,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    // Out of file descriptors and the like: keep serving the others.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let serving = connection(stream, addr, codec, Arc::clone(&handler), shutdown.clone());
                connections.spawn(async move {
                    serving.await;
                    drop(slot);
                });
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serve one connection. When the client goes away (end of stream, a broken frame), the
/// requests it still has in flight are abandoned — held pulls too; when the server shuts down
/// they are answered first.
async fn connection<H: Handler>(
    stream: TcpStream,
    addr: SocketAddr,
    codec: FrameCodec,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut sink, mut source) = Framed::new(stream, codec).split();
    let (out, mut rx) = mpsc::channel::<RemotingCommand>(QUEUE);
    let pending: Pending = Arc::default();
    let peer = Peer {
        addr,
        out,
        pending: Arc::clone(&pending),
    };
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let gone = CancellationToken::new();
    let mut writer = tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if write_batch(&mut sink, cmd, &mut rx).await.is_err() {
                break;
            }
        }
    });
    let stopping = loop {
        let next = tokio::select! {
            next = source.next() => next,
            _ = shutdown.changed() => break true,
        };
        let request = match next {
            Some(Ok(cmd)) => cmd,
            // A broken frame or a closed socket: this connection ends, nothing else does.
            Some(Err(_)) | None => break false,
        };
        if request.is_response() {
            // The answer to a request this server sent ([`Peer::invoke`]); others are dropped.
            let waiter = lock(&pending).remove(&request.opaque);
            if let Some(w) = waiter {
                let _ = w.send(request);
            }
            continue;
        }
        // At most IN_FLIGHT requests of one connection are handled at once; reading waits for a
        // slot, so a peer that floods requests is slowed down, not buffered without bound.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break false;
        };
        let handler = Arc::clone(&handler);
        let peer = peer.clone();
        let gone = gone.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let oneway = request.is_oneway();
            let code = request.code;
            let opaque = request.opaque;
            let response = tokio::select! {
                r = handler.handle(&peer, request) => r,
                // The client is gone: nobody to answer.
                _ = gone.cancelled() => return,
            };
            if oneway {
                return;
            }
            let mut response = response.unwrap_or_else(|| {
                let mut r = RemotingCommand::request(response::REQUEST_CODE_NOT_SUPPORTED, opaque);
                r.remark = Some(format!(" request type {code} not supported"));
                r
            });
            response.opaque = opaque;
            response.flag |= crate::command::FLAG_RESPONSE;
            // Waits only for this connection's own queue.
            let _ = peer.out.send(response).await;
        });
    };
    if stopping {
        // Answer what is in flight (every permit back), then send what is queued.
        let _ = in_flight.acquire_many(IN_FLIGHT as u32).await;
    } else {
        gone.cancel();
    }
    lock(&pending).clear();
    handler.closed(&peer).await;
    drop(peer);
    if stopping {
        // The writer ends once every sender is gone and the queue is sent.
        if tokio::time::timeout(DRAIN, &mut writer).await.is_err() {
            writer.abort();
        }
    } else {
        writer.abort();
    }
}
