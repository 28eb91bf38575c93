//! The accept loop and the connections, every task owned by one [`TaskTracker`].
//!
//! A connection reads a frame, answers it (the answer is computed synchronously), answers every
//! further frame already received, then flushes: pipelined requests cost one write. A broken
//! frame ends that connection only, as RocketMQ's `NettyDecoder` does.
//!
//! Shutdown has two tokens. `stop` ends the accept loop (the listener is dropped, so new
//! connections are refused) and tells each connection to answer what it has already received,
//! flush and close. `kill`, cancelled only when the deadline passes, drops whatever is still
//! running (a peer that does not read its answers, say). A connection's close is reported to the
//! route table whichever way it ends, panics included.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use sextant_model::namesrv::ChannelId;
use sextant_remoting::code::response;
use sextant_remoting::{FrameCodec, RemotingCommand};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::{Channel, NameServer, error, lock};

/// Connections served at once; one past it is closed at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// Most answers written with one flush.
const WRITE_BATCH: usize = 64;

/// Most requests already received that a stopping connection still answers.
const DRAIN: usize = 1024;

/// What serves the requests of a connection (the NameServer; a test may wrap it).
pub(crate) trait Service: Send + Sync + 'static {
    /// Answer one request; `None` is a code not served.
    fn handle(&self, channel: &Channel, request: &RemotingCommand) -> Option<RemotingCommand>;
    /// The connection closed.
    fn closed(&self, channel: &Channel);
}

impl Service for NameServer {
    fn handle(&self, channel: &Channel, request: &RemotingCommand) -> Option<RemotingCommand> {
        NameServer::handle(self, channel, request)
    }

    fn closed(&self, channel: &Channel) {
        NameServer::closed(self, channel);
    }
}

/// The open connections, so one can be closed by its id (an expired broker's).
#[derive(Default)]
pub(crate) struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<ChannelId, CancellationToken>>,
}

impl Connections {
    /// Close connection `id` now, if it is open.
    pub(crate) fn close(&self, id: ChannelId) {
        if let Some(token) = lock(&self.open).get(&id) {
            token.cancel();
        }
    }

    /// How many connections are open.
    pub(crate) fn len(&self) -> usize {
        lock(&self.open).len()
    }
}

/// The tasks of one server and the tokens that stop them.
#[derive(Clone)]
pub(crate) struct Tasks {
    /// Owns every task.
    pub tracker: TaskTracker,
    /// Stop gracefully.
    pub stop: CancellationToken,
    /// Stop now.
    pub kill: CancellationToken,
}

/// Accept connections until `stop`, serving each with `service`.
pub(crate) async fn accept<S: Service>(
    listener: TcpListener,
    service: Arc<S>,
    conns: Arc<Connections>,
    tasks: Tasks,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = tasks.stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            // Out of file descriptors and the like: keep serving the others.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = tasks.stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
                }
            }
        };
        // Past the cap a connection is closed at once (as the broker's transport does), not
        // left waiting in the backlog.
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::debug!(%addr, "connection refused: {MAX_CONNECTIONS} open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let channel = Channel {
            id: ChannelId(conns.next.fetch_add(1, Ordering::Relaxed)),
            addr,
        };
        let close = tasks.stop.child_token();
        lock(&conns.open).insert(channel.id, close.clone());
        let guard = Closed {
            service: Arc::clone(&service),
            conns: Arc::clone(&conns),
            channel,
        };
        let stop = tasks.stop.clone();
        let kill = tasks.kill.clone();
        tasks.tracker.spawn(async move {
            let _permit = permit;
            let guard = guard;
            tokio::select! {
                _ = connection(stream, channel, &*guard.service, stop, close) => {}
                _ = kill.cancelled() => {}
            }
        });
    }
    // The listener is dropped here: connecting now fails at once.
}

/// Reports the close of a connection however its task ends.
struct Closed<S: Service> {
    service: Arc<S>,
    conns: Arc<Connections>,
    channel: Channel,
}

impl<S: Service> Drop for Closed<S> {
    fn drop(&mut self) {
        lock(&self.conns.open).remove(&self.channel.id);
        self.service.closed(&self.channel);
    }
}

/// Serve one connection until the peer closes it, sends a broken frame, `close` fires (an
/// expired broker) or `stop` fires (then what was received is answered first).
async fn connection<S: Service>(
    stream: TcpStream,
    channel: Channel,
    service: &S,
    stop: CancellationToken,
    close: CancellationToken,
) {
    let mut framed: Conn = Framed::new(stream, FrameCodec::default());
    loop {
        let next = tokio::select! {
            biased;
            _ = close.cancelled() => break,
            next = framed.next() => next,
        };
        let Some(Ok(first)) = next else { return };
        let mut request = Some(first);
        let mut written = 0;
        while let Some(req) = request.take() {
            if let Some(resp) = answer(service, &channel, &req)
                && framed.feed(resp).await.is_err()
            {
                return;
            }
            written += 1;
            if written < WRITE_BATCH {
                match framed.next().now_or_never() {
                    Some(Some(Ok(r))) => request = Some(r),
                    // Closed or broken: what was answered still goes out.
                    Some(_) => {
                        let _ = flush(&mut framed).await;
                        return;
                    }
                    None => {}
                }
            }
        }
        if flush(&mut framed).await.is_err() {
            return;
        }
    }
    if stop.is_cancelled() {
        // Shutting down: answer every request already received, then close our side so the
        // peer reads its answers and then the end of the stream.
        for _ in 0..DRAIN {
            let Some(Some(Ok(req))) = framed.next().now_or_never() else {
                break;
            };
            if let Some(resp) = answer(service, &channel, &req)
                && framed.feed(resp).await.is_err()
            {
                return;
            }
        }
        let _ = SinkExt::<RemotingCommand>::close(&mut framed).await;
    }
}

type Conn = Framed<TcpStream, FrameCodec>;

async fn flush(framed: &mut Conn) -> Result<(), sextant_remoting::Error> {
    SinkExt::<RemotingCommand>::flush(framed).await
}

/// The answer to `req`, or `None` for a oneway request. A code not served gets
/// REQUEST_CODE_NOT_SUPPORTED with Java's remark; a panic in the service gets SYSTEM_ERROR, as
/// an exception in a Java processor does, and the connection goes on.
fn answer<S: Service>(
    service: &S,
    channel: &Channel,
    req: &RemotingCommand,
) -> Option<RemotingCommand> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| service.handle(channel, req)));
    if req.is_oneway() {
        return None;
    }
    Some(match result {
        Ok(Some(resp)) => resp,
        Ok(None) => error(
            req,
            response::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {} not supported", req.code),
        ),
        Err(_) => {
            tracing::error!(code = req.code, peer = %channel.addr, "request handler panicked");
            error(
                req,
                response::SYSTEM_ERROR,
                format!("request {} failed: internal error", req.code),
            )
        }
    })
}
