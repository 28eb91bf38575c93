//! The tokio transport: a client [`Connection`] that multiplexes requests by `opaque` with a
//! timeout each, and a server ([`serve`]) that dispatches requests to a [`Handler`].
//!
//! A peer that sends a broken frame (bad length, unknown serialize type, an unparseable header)
//! has its connection closed, as RocketMQ's `NettyDecoder` does; every other connection goes on.
//! A request the handler does not know is answered `REQUEST_CODE_NOT_SUPPORTED` with Java's
//! remark.
//!
//! Files: `client` (the [`Connection`]), `server` ([`serve`], [`Peer`], [`Handler`]); here what
//! both share — errors, request ids, the write batching, the lock policy.

mod client;
mod server;

pub use client::Connection;
pub use server::{Handler, MAX_CONNECTIONS, Peer, bind, serve};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot};

use crate::command::RemotingCommand;

/// Commands queued per connection before senders wait.
const QUEUE: usize = 1024;

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
    /// The connection's outgoing queue is full — the peer is not reading — and a message that
    /// must not wait for it was dropped.
    #[error("the peer is not reading: its outgoing queue is full")]
    Busy,
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

/// Lock `m`; a panic elsewhere that poisoned it does not take the connection down (the tables
/// under these locks are consistent between statements).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
