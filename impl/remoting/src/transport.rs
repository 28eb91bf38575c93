//! The tokio transport: a client [`Connection`] that multiplexes requests by `opaque` with a
//! timeout each, and a server ([`serve`]) that dispatches requests to a [`Handler`].
//!
//! A peer that sends a broken frame (bad length, unknown serialize type, an unparseable header)
//! has its connection closed, as RocketMQ's `NettyDecoder` does; every other connection goes on.
//! A request the handler does not know is answered `REQUEST_CODE_NOT_SUPPORTED` with Java's
//! remark.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

use crate::code::response;
use crate::command::RemotingCommand;
use crate::frame::FrameCodec;

/// Commands queued per connection before senders wait.
const QUEUE: usize = 1024;

/// Requests of one server-side connection handled at once.
const IN_FLIGHT: usize = 1024;

/// Process-wide request ids (RocketMQ: a global `AtomicInteger`).
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

/// A fresh request id.
pub fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

/// What went wrong with a request on a connection.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No response within the timeout.
    #[error("no response to request {opaque} within {timeout:?}")]
    Timeout {
        /// The request id.
        opaque: i32,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// Connecting failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>>;

/// A client connection to one server.
#[derive(Clone, Debug)]
pub struct Connection {
    peer: SocketAddr,
    local: SocketAddr,
    out: mpsc::Sender<RemotingCommand>,
    pending: Pending,
    closed: watch::Receiver<bool>,
    close: Arc<watch::Sender<bool>>,
}

impl Connection {
    /// Connect to `addr`. Requests the server sends to this client (e.g.
    /// NOTIFY_CONSUMER_IDS_CHANGED) go to `inbound`, if given; otherwise they are dropped.
    pub async fn connect(
        addr: SocketAddr,
        codec: FrameCodec,
        inbound: Option<mpsc::Sender<RemotingCommand>>,
    ) -> Result<Connection, TransportError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| TransportError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .map_err(|source| TransportError::Connect { addr, source })?;
        let (mut sink, mut source) = Framed::new(stream, codec).split();
        let (out, mut rx) = mpsc::channel::<RemotingCommand>(QUEUE);
        let pending: Pending = Arc::default();
        let (closed_tx, closed) = watch::channel(false);
        let closed_tx = Arc::new(closed_tx);
        let writer_closed = Arc::clone(&closed_tx);
        let (close, close_rx) = watch::channel(false);
        let mut writer_close = close_rx.clone();
        tokio::spawn(async move {
            loop {
                let cmd = tokio::select! {
                    cmd = rx.recv() => cmd,
                    _ = writer_close.wait_for(|c| *c) => None,
                };
                let Some(cmd) = cmd else { break };
                if write_batch(&mut sink, cmd, &mut rx).await.is_err() {
                    break;
                }
            }
            // Every handle is gone, [`Connection::close`] was called, or the socket broke: shut
            // the socket's write side so the server sees the connection end, as a Java client
            // closing its channel.
            let _ = sink.close().await;
            let _ = writer_closed.send(true);
        });
        let reader_pending = Arc::clone(&pending);
        let mut reader_close = close_rx;
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = source.next() => next,
                    _ = reader_close.wait_for(|c| *c) => None,
                };
                let Some(Ok(cmd)) = next else { break };
                if cmd.is_response() {
                    let waiter = reader_pending
                        .lock()
                        .expect("pending table")
                        .remove(&cmd.opaque);
                    if let Some(w) = waiter {
                        let _ = w.send(cmd);
                    }
                } else if let Some(inbound) = &inbound {
                    let _ = inbound.try_send(cmd);
                }
            }
            // Closed or broken: fail every request still waiting.
            reader_pending.lock().expect("pending table").clear();
            let _ = closed_tx.send(true);
        });
        Ok(Connection {
            peer: addr,
            local,
            out,
            pending,
            closed,
            close: Arc::new(close),
        })
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address (what the server sees as the client's).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow() || *self.close.borrow()
    }

    /// Close the connection now, for every handle: requests waiting fail with
    /// [`TransportError::Closed`] (RocketMQ's `clientCloseSocketIfTimeout` closes a channel whose
    /// request timed out, so a server that stopped answering is reconnected to).
    pub fn close(&self) {
        let _ = self.close.send(true);
    }

    /// Wait until the connection is closed, by either side.
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }

    /// Answer a request the server sent to this client (e.g. GET_CONSUMER_RUNNING_INFO): the
    /// response carries the request's opaque and the response flag.
    pub async fn respond(
        &self,
        request: &RemotingCommand,
        mut response: RemotingCommand,
    ) -> Result<(), TransportError> {
        response.opaque = request.opaque;
        response.flag |= crate::command::FLAG_RESPONSE;
        self.out
            .send(response)
            .await
            .map_err(|_| TransportError::Closed)
    }

    /// Send `request` (its opaque is replaced by a fresh one) and wait for the response.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, TransportError> {
        if self.is_closed() {
            return Err(TransportError::Closed);
        }
        let opaque = next_opaque();
        request.opaque = opaque;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending table")
            .insert(opaque, tx);
        let result = tokio::time::timeout(timeout, async {
            self.out
                .send(request)
                .await
                .map_err(|_| TransportError::Closed)?;
            // A close that raced the insertion above must not leave the request waiting for
            // its whole timeout.
            tokio::select! {
                biased;
                r = rx => r.map_err(|_| TransportError::Closed),
                _ = self.closed() => Err(TransportError::Closed),
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(_) => {
                self.pending.lock().expect("pending table").remove(&opaque);
                Err(TransportError::Timeout { opaque, timeout })
            }
        }
    }

    /// Send `request` as oneway: no response is expected.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), TransportError> {
        request.opaque = next_opaque();
        request = request.oneway();
        self.out
            .send(request)
            .await
            .map_err(|_| TransportError::Closed)
    }
}

/// Most frames written with one flush.
const WRITE_BATCH: usize = 64;

/// Write `first` and whatever else is already queued (up to [`WRITE_BATCH`]) with one flush: under
/// load one `write` carries many frames instead of one system call each.
async fn write_batch<S>(
    sink: &mut S,
    first: RemotingCommand,
    rx: &mut mpsc::Receiver<RemotingCommand>,
) -> Result<(), S::Error>
where
    S: futures_util::Sink<RemotingCommand> + Unpin,
{
    sink.feed(first).await?;
    for _ in 1..WRITE_BATCH {
        match rx.try_recv() {
            Ok(cmd) => sink.feed(cmd).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

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
            let mut pending = self.pending.lock().expect("pending table");
            if pending.len() >= PEER_PENDING {
                return Err(TransportError::Timeout { opaque, timeout });
            }
            pending.insert(opaque, tx);
        }
        let result = tokio::time::timeout(timeout, async {
            self.out
                .send(request)
                .await
                .map_err(|_| TransportError::Closed)?;
            rx.await.map_err(|_| TransportError::Closed)
        })
        .await;
        self.pending.lock().expect("pending table").remove(&opaque);
        match result {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout { opaque, timeout }),
        }
    }

    /// Send a oneway request to the client (e.g. NOTIFY_CONSUMER_IDS_CHANGED).
    pub async fn send_oneway(&self, request: RemotingCommand) -> Result<(), TransportError> {
        let mut request = request.oneway();
        request.opaque = next_opaque();
        self.out
            .send(request)
            .await
            .map_err(|_| TransportError::Closed)
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

/// Accept connections on `listener` until `shutdown` turns true, serving each with `handler`.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    codec: FrameCodec,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
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
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, addr, codec, Arc::clone(&handler), shutdown.clone()));
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

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
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let writer = tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if write_batch(&mut sink, cmd, &mut rx).await.is_err() {
                break;
            }
        }
    });
    loop {
        let next = tokio::select! {
            next = source.next() => next,
            _ = shutdown.changed() => break,
        };
        let request = match next {
            Some(Ok(cmd)) => cmd,
            // A broken frame or a closed socket: this connection ends, nothing else does.
            Some(Err(_)) | None => break,
        };
        if request.is_response() {
            // The answer to a request this server sent ([`Peer::invoke`]); others are dropped.
            let waiter = pending
                .lock()
                .expect("pending table")
                .remove(&request.opaque);
            if let Some(w) = waiter {
                let _ = w.send(request);
            }
            continue;
        }
        // At most IN_FLIGHT requests of one connection are handled at once; reading waits for a
        // slot, so a peer that floods requests is slowed down, not buffered without bound.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let handler = Arc::clone(&handler);
        let peer = peer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let oneway = request.is_oneway();
            let code = request.code;
            let opaque = request.opaque;
            let response = handler.handle(&peer, request).await;
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
            let _ = peer.out.send(response).await;
        });
    }
    pending.lock().expect("pending table").clear();
    handler.closed(&peer).await;
    drop(peer);
    writer.abort();
}
