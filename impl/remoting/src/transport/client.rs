//! The client side: a [`Connection`] that multiplexes requests by `opaque`, with a timeout each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

use crate::command::RemotingCommand;
use crate::frame::FrameCodec;

use super::{Pending, QUEUE, TransportError, lock, next_opaque, write_batch};

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
                    let waiter = lock(&reader_pending).remove(&cmd.opaque);
                    if let Some(w) = waiter {
                        let _ = w.send(cmd);
                    }
                } else if let Some(inbound) = &inbound {
                    let _ = inbound.try_send(cmd);
                }
            }
            // Closed or broken: fail every request still waiting.
            lock(&reader_pending).clear();
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
        lock(&self.pending).insert(opaque, tx);
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
                lock(&self.pending).remove(&opaque);
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
