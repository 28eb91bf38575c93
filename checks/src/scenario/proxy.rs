//! A loopback fault proxy: it stands between the clients and a broker (or a broker and a
//! NameServer) and forwards bytes both ways — or delays them, cuts every connection, or stops
//! forwarding without closing anything (a partition, or a paused process as its peers see it).
//!
//! The broker advertises the proxy's address (`advertisedAddr`), so every client connection
//! goes through it; the proxy's own address stays put while the broker behind it restarts on
//! another port ([`FaultProxy::set_target`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the proxy does with the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward them.
    Forward,
    /// Forward each chunk after this delay.
    Delay(Duration),
    /// Hold them: read nothing more, forward nothing, close nothing (the peers' writes fill
    /// the socket buffers and their requests time out). New connections are accepted and held.
    Hold,
}

struct Shared {
    target: Mutex<Option<SocketAddr>>,
    mode: watch::Sender<Mode>,
    /// Cancelled by [`FaultProxy::cut`]; replaced by a fresh one for the connections after.
    cut: Mutex<CancellationToken>,
}

/// A running proxy on 127.0.0.1.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl FaultProxy {
    /// Listen on 127.0.0.1 (an OS-assigned port), forwarding to nothing yet: connections are
    /// closed until [`FaultProxy::set_target`].
    pub async fn start() -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: Mutex::new(None),
            mode: watch::channel(Mode::Forward).0,
            cut: Mutex::new(CancellationToken::new()),
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept(
            listener,
            Arc::clone(&shared),
            stop.clone(),
            tasks.clone(),
        ));
        Ok(FaultProxy {
            addr,
            shared,
            stop,
            tasks,
        })
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forward new connections to `target`.
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(target);
    }

    /// Change what the proxy does (for the connections open and those to come).
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Close every connection open now (both sides, as a reset link would).
    pub fn cut(&self) {
        let fresh = CancellationToken::new();
        let old = std::mem::replace(
            &mut *self.shared.cut.lock().unwrap_or_else(|e| e.into_inner()),
            fresh,
        );
        old.cancel();
    }

    /// Close everything and wait for the proxy's tasks.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let client = tokio::select! {
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let cut = shared.cut.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = relay(client, &shared) => {}
                _ = cut.cancelled() => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// One connection: wait while held, connect to the target, pump both ways.
async fn relay(client: TcpStream, shared: &Shared) {
    let mut mode = shared.mode.subscribe();
    if mode.wait_for(|m| *m != Mode::Hold).await.is_err() {
        return;
    }
    let target = *shared.target.lock().unwrap_or_else(|e| e.into_inner());
    let Some(target) = target else { return };
    let Ok(upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::select! {
        _ = pump(cr, uw, shared.mode.subscribe()) => {}
        _ = pump(ur, cw, shared.mode.subscribe()) => {}
    }
}

/// Copy `from` to `to` chunk by chunk, as the mode says; returns when either side closes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Held: read nothing (the peer's writes back up, as to a stopped process).
        if mode.wait_for(|m| *m != Mode::Hold).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *mode.borrow();
        match current {
            Mode::Delay(d) => tokio::time::sleep(d).await,
            // Read just before the hold began: keep it until the hold ends.
            Mode::Hold => {
                if mode.wait_for(|m| *m != Mode::Hold).await.is_err() {
                    return;
                }
            }
            Mode::Forward => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, within: Duration) -> bool {
        s.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        matches!(
            tokio::time::timeout(within, s.read_exact(&mut b)).await,
            Ok(Ok(_))
        )
    }

    #[tokio::test]
    async fn forwards_holds_and_cuts() {
        let proxy = FaultProxy::start().await.unwrap();
        proxy.set_target(echo().await);
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut s, Duration::from_secs(5)).await);
        // Held: nothing comes back, the connection stays open; released: the bytes arrive.
        proxy.set_mode(Mode::Hold);
        assert!(!round_trip(&mut s, Duration::from_millis(200)).await);
        proxy.set_mode(Mode::Forward);
        let mut b = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"ping");
        // Cut: the connection is closed.
        proxy.cut();
        let mut b = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        // A new connection goes through again.
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut s, Duration::from_secs(5)).await);
        proxy.stop().await;
    }
}
