//! # sextant-namesrv — the NameServer on tokio
//!
//! RocketMQ's route registry, wire-compatible: brokers register and unregister, clients ask for
//! routes, cluster info and topic lists. Every decision — who is live, what a route contains, when
//! a silent broker expires, which connection owns a broker, how the parts of a split registration
//! merge, whether a body's CRC matches — is `sextant_model::namesrv`'s; this crate owns only the
//! sockets, the clock and the periodic liveness scan.
//!
//! The clock is monotonic milliseconds since the server started. Each accepted connection gets an
//! id that is never reused; a broker belongs to the connection it last registered over, and when
//! that connection closes the broker is dropped at once, as RocketMQ's `onChannelDestroy` does —
//! an older connection of the same broker closing later drops nothing. An expired broker's
//! connection is closed, as RocketMQ's `scanNotActiveBroker` does.
//!
//! Every task (the accept loop, each connection, the scan) is owned by one `TaskTracker`;
//! [`Running::shutdown_within`] stops accepting, answers the requests already received, and
//! returns within its deadline. A thread that panicked holding the route table's lock does not
//! take the server down: see [`state::lock`].
//!
//! ## Modules
//! - [`state`] — [`NameServer`]: the route table behind its lock, the clock, and the answer to
//!   every request code.
//! - `server` — the accept loop, the connections, graceful and forced stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::transport::bind;
pub use sextant_trace::Tracer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod server;
pub mod state;

pub use server::MAX_CONNECTIONS;
pub use state::{Channel, NameServer};

/// RocketMQ's default NameServer port.
pub const DEFAULT_PORT: u16 = 9876;

/// How long [`Running::shutdown`] lets in-flight requests finish.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// What can go wrong starting a NameServer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How a shutdown ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every task finished within the deadline.
    Drained,
    /// The deadline passed; the tasks still running were dropped.
    CutOff,
}

/// A running NameServer. Dropping it stops every task at once; [`Running::shutdown`] stops
/// gracefully.
pub struct Running {
    /// Where it listens.
    pub local_addr: SocketAddr,
    /// Its state.
    pub server: Arc<NameServer>,
    conns: Arc<server::Connections>,
    tasks: server::Tasks,
}

impl Running {
    /// Stop within [`SHUTDOWN_DEADLINE`].
    pub async fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_DEADLINE).await;
    }

    /// Stop accepting, stop the scan, let every connection answer what it has received and
    /// close; whatever is still running when `deadline` passes is dropped. Returns within
    /// `deadline` plus the time the dropped tasks take to unwind.
    pub async fn shutdown_within(self, deadline: Duration) -> Stopped {
        let started = Instant::now();
        self.tasks.stop.cancel();
        self.tasks.tracker.close();
        let stopped = match tokio::time::timeout(deadline, self.tasks.tracker.wait()).await {
            Ok(()) => Stopped::Drained,
            Err(_) => {
                self.tasks.kill.cancel();
                self.tasks.tracker.wait().await;
                Stopped::CutOff
            }
        };
        tracing::info!(local_addr = %self.local_addr, ?stopped, elapsed = ?started.elapsed(),
            "NameServer stopped");
        stopped
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// How many tasks (accept loop, scan, connections) are running.
    pub fn tasks(&self) -> usize {
        self.tasks.tracker.len()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tasks.stop.cancel();
        self.tasks.kill.cancel();
    }
}

/// Listen on `addr` and serve until [`Running::shutdown`]. The liveness scan runs every
/// `config.scan_interval`.
pub async fn start(addr: SocketAddr, config: NamesrvConfig) -> Result<Running, Error> {
    start_traced(addr, config, Tracer::off()).await
}

/// [`start`], recording events to `tracer`'s sink under the node name `namesrv@ADDR` (ADDR the
/// address it listens on).
pub async fn start_traced(
    addr: SocketAddr,
    config: NamesrvConfig,
    tracer: Tracer,
) -> Result<Running, Error> {
    let server = Arc::new(NameServer::new(config));
    start_service(addr, Arc::clone(&server), server, tracer).await
}

/// [`start`] with a service other than the plain NameServer (tests wrap it).
pub(crate) async fn start_service<S: server::Service>(
    addr: SocketAddr,
    server: Arc<NameServer>,
    service: Arc<S>,
    tracer: Tracer,
) -> Result<Running, Error> {
    let (listener, local_addr) = bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    // Before the first connection is accepted, so no registration goes unrecorded.
    if tracer.node().is_some() {
        server.set_tracer(tracer.for_node(format!("namesrv@{local_addr}")));
    }
    let scan_every = Duration::from_millis(server.table().config().scan_interval.max(1));
    let tasks = server::Tasks {
        tracker: TaskTracker::new(),
        stop: CancellationToken::new(),
        kill: CancellationToken::new(),
    };
    let conns = Arc::new(server::Connections::default());
    tasks.tracker.spawn(server::accept(
        listener,
        service,
        Arc::clone(&conns),
        tasks.clone(),
    ));
    tasks.tracker.spawn({
        let server = Arc::clone(&server);
        let conns = Arc::clone(&conns);
        let stop = tasks.stop.clone();
        async move {
            let mut tick = tokio::time::interval(scan_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        for r in server.scan() {
                            if let Some(c) = r.channel {
                                conns.close(c);
                            }
                        }
                    }
                    _ = stop.cancelled() => return,
                }
            }
        }
    });
    tracing::info!(%local_addr, "NameServer listening");
    Ok(Running {
        local_addr,
        server,
        conns,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use sextant_remoting::code::{request, response};
    use sextant_remoting::ext::CommandHeader;
    use sextant_remoting::header::GetRouteInfoRequestHeader;
    use sextant_remoting::{DEFAULT_MAX_FRAME, RemotingCommand};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::state::Channel;

    const SLOW: i32 = 9998;
    const PANIC: i32 = 9999;

    /// The NameServer, plus a request that takes 300 ms and one that panics holding the route
    /// table's lock.
    struct Faulty {
        ns: Arc<NameServer>,
        started: std::sync::Mutex<mpsc::Sender<()>>,
    }

    impl server::Service for Faulty {
        fn handle(&self, channel: &Channel, req: &RemotingCommand) -> Option<RemotingCommand> {
            match req.code {
                SLOW => {
                    let _ = state::lock(&self.started).send(());
                    std::thread::sleep(Duration::from_millis(300));
                    Some(RemotingCommand::response_to(req, response::SUCCESS, None))
                }
                PANIC => self
                    .ns
                    .update_table(|_| panic!("a handler bug under the lock")),
                _ => self.ns.handle(channel, req),
            }
        }

        fn closed(&self, channel: &Channel) {
            self.ns.closed(channel);
        }
    }

    async fn faulty() -> (Running, mpsc::Receiver<()>) {
        let ns = Arc::new(NameServer::new(NamesrvConfig::default()));
        let (tx, rx) = mpsc::channel();
        let service = Arc::new(Faulty {
            ns: Arc::clone(&ns),
            started: std::sync::Mutex::new(tx),
        });
        let running = start_service("127.0.0.1:0".parse().unwrap(), ns, service, Tracer::off())
            .await
            .unwrap();
        (running, rx)
    }

    fn frame(cmd: &RemotingCommand) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        sextant_remoting::frame::encode_frame(cmd, &mut buf, DEFAULT_MAX_FRAME).unwrap();
        buf.to_vec()
    }

    fn route(opaque: i32) -> RemotingCommand {
        let mut r = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, opaque).with_ext(
            GetRouteInfoRequestHeader {
                topic: "T".into(),
                accept_standard_json_only: None,
            }
            .to_ext(),
        );
        r.opaque = opaque;
        r
    }

    async fn answers(raw: &mut tokio::net::TcpStream) -> Vec<RemotingCommand> {
        let mut bytes = Vec::new();
        raw.read_to_end(&mut bytes).await.unwrap();
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let mut out = Vec::new();
        while let Some(r) =
            sextant_remoting::frame::decode_frame(&mut buf, DEFAULT_MAX_FRAME).unwrap()
        {
            out.push(r);
        }
        out
    }

    /// Requests received while a slow one runs are answered after the stop: the slow one, the
    /// batch after it, and (past the batch) the drain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_answers_the_requests_in_flight_and_received() {
        let (ns, started) = faulty().await;
        let mut raw = tokio::net::TcpStream::connect(ns.local_addr).await.unwrap();
        let mut bytes = frame(&RemotingCommand::request(SLOW, 0));
        for i in 1..=300 {
            bytes.extend(frame(&route(i)));
        }
        raw.write_all(&bytes).await.unwrap();
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(
            ns.shutdown_within(Duration::from_secs(3)).await,
            Stopped::Drained
        );
        let got = answers(&mut raw).await;
        let opaques: Vec<i32> = got.iter().map(|r| r.opaque).collect();
        assert_eq!(opaques, (0..=300).collect::<Vec<_>>());
        assert_eq!(got[0].code, response::SUCCESS);
        assert!(got[1..].iter().all(|r| r.code == response::TOPIC_NOT_EXIST));
    }

    /// A handler that panics while holding the route table's lock gets SYSTEM_ERROR; the
    /// connection and the server go on, with the lock taken as it was left.
    #[tokio::test]
    async fn a_handler_panicking_under_the_lock_is_answered_and_the_server_goes_on() {
        let (ns, _started) = faulty().await;
        let mut raw = tokio::net::TcpStream::connect(ns.local_addr).await.unwrap();
        let mut bytes = frame(&RemotingCommand::request(PANIC, 0));
        bytes.extend(frame(&route(1)));
        bytes.extend(frame(&RemotingCommand::request(PANIC, 2)));
        bytes.extend(frame(&route(3)));
        raw.write_all(&bytes).await.unwrap();
        raw.shutdown().await.unwrap();
        let got = answers(&mut raw).await;
        let codes: Vec<(i32, i32)> = got.iter().map(|r| (r.opaque, r.code)).collect();
        assert_eq!(
            codes,
            [
                (0, response::SYSTEM_ERROR),
                (1, response::TOPIC_NOT_EXIST),
                (2, response::SYSTEM_ERROR),
                (3, response::TOPIC_NOT_EXIST),
            ]
        );
        assert_eq!(ns.server.table().topics(), Vec::<String>::new());
        assert_eq!(
            ns.shutdown_within(Duration::from_secs(3)).await,
            Stopped::Drained
        );
    }
}
