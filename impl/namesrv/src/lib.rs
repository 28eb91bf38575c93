//! # sextant-namesrv — the NameServer on tokio
//!
//! RocketMQ's route registry, wire-compatible: brokers register and unregister, clients ask for
//! routes, cluster info and topic lists. Every decision — who is live, what a route contains, when
//! a silent broker expires — is `sextant_model::namesrv::RouteTable`'s; this crate owns only the
//! sockets, the clock and the periodic liveness scan.
//!
//! The clock is monotonic milliseconds since the server started. A broker's registration is bound
//! to the connection it came over: when that connection closes, the broker is dropped at once, as
//! RocketMQ's `onChannelDestroy` does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_model::Millis;
use sextant_model::namesrv::{
    BrokerAddrInfo, BrokerRegistration, NamesrvConfig, RegisterError, RouteTable,
};
use sextant_remoting::body::{
    RegisterBrokerBody, TopicListBody, encode as encode_body, encode_cluster_info,
};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    AddWritePermResponseHeader, BrokerPermRequestHeader, DeleteTopicRequestHeader,
    GetRouteInfoRequestHeader, QueryDataVersionRequestHeader, QueryDataVersionResponseHeader,
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, UnregisterBrokerRequestHeader,
    WipeWritePermResponseHeader,
};
use sextant_remoting::route::{KeyStyle, encode_route};
use sextant_remoting::transport::{Handler, Peer, bind, serve};
use sextant_remoting::{FrameCodec, RemotingCommand};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// RocketMQ's default NameServer port.
pub const DEFAULT_PORT: u16 = 9876;

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

/// The NameServer's state: the model's route table, the clock, and which connection each broker
/// registered over.
pub struct NameServer {
    table: Mutex<RouteTable>,
    started: Instant,
    channels: Mutex<HashMap<SocketAddr, BTreeSet<BrokerAddrInfo>>>,
}

impl NameServer {
    /// A NameServer with `config`.
    pub fn new(config: NamesrvConfig) -> Self {
        NameServer {
            table: Mutex::new(RouteTable::new(config)),
            started: Instant::now(),
            channels: Mutex::default(),
        }
    }

    /// Milliseconds since the server started.
    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    /// A copy of the route table (for tests and tracing).
    pub fn table(&self) -> RouteTable {
        self.table.lock().expect("route table").clone()
    }

    /// Run the liveness scan now.
    pub fn scan(&self) {
        let now = self.now();
        let removed = self.table.lock().expect("route table").scan_expired(now);
        for r in removed {
            tracing::info!(broker = %r.broker.addr, cluster = %r.broker.cluster, "broker expired");
        }
    }

    fn register(&self, peer: &Peer, req: &RemotingCommand) -> RemotingCommand {
        let ext = req.ext_fields.clone().unwrap_or_default();
        let header = match RegisterBrokerRequestHeader::from_ext(&ext) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        if header.body_crc32 != 0 {
            let crc = (crc32(&req.body) & 0x7FFF_FFFF) as i32;
            if crc != header.body_crc32 {
                return error(req, response::SYSTEM_ERROR, "crc32 not match".into());
            }
        }
        let body = if req.body.is_empty() {
            RegisterBrokerBody::default()
        } else {
            match RegisterBrokerBody::decode(&req.body) {
                Ok(b) => b,
                Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
            }
        };
        let Ok(broker_id) = u64::try_from(header.broker_id) else {
            return error(
                req,
                response::INVALID_PARAMETER,
                format!("brokerId {}", header.broker_id),
            );
        };
        let mut reg = BrokerRegistration::new(
            &header.cluster_name,
            &header.broker_name,
            broker_id,
            &header.broker_addr,
        );
        reg.ha_server_addr = header.ha_server_addr.clone();
        reg.zone_name = req.ext("__ZONE_NAME").map(str::to_owned);
        reg.enable_acting_master = header.enable_acting_master;
        reg.heartbeat_timeout = header
            .heartbeat_timeout_millis
            .and_then(|t| u64::try_from(t).ok());
        reg.data_version = body.data_version;
        reg.topic_configs = body.topic_configs;
        reg.filter_servers = body.filter_servers;
        let now = self.now();
        let mut table = self.table.lock().expect("route table");
        let result = table.register(&reg, now);
        let order_confs = table.order_topic_confs().clone();
        drop(table);
        match result {
            Ok(r) => {
                // The broker is bound to the connection it last registered over (RocketMQ keeps
                // the channel in its BrokerLiveInfo): an older connection closing later must not
                // drop it.
                let key = BrokerAddrInfo {
                    cluster: header.cluster_name.clone(),
                    addr: header.broker_addr.clone(),
                };
                let mut channels = self.channels.lock().expect("channels");
                for set in channels.values_mut() {
                    set.remove(&key);
                }
                channels.retain(|_, set| !set.is_empty());
                channels.entry(peer.addr).or_default().insert(key);
                drop(channels);
                let resp = RegisterBrokerResponseHeader {
                    ha_server_addr: r.ha_server_addr,
                    master_addr: r.master_addr,
                };
                RemotingCommand::response_to(req, response::SUCCESS, None)
                    .with_ext(resp.to_ext())
                    .with_body(kv_table(&order_confs))
            }
            Err(RegisterError::NotYetRegistered { .. }) => {
                error(req, response::SYSTEM_ERROR, "register broker failed".into())
            }
            // RocketMQ ignores an older process for the same broker id and answers success.
            Err(RegisterError::StaleStateVersion { .. }) => {
                RemotingCommand::response_to(req, response::SUCCESS, None)
                    .with_ext(Default::default())
            }
        }
    }

    fn unregister(&self, req: &RemotingCommand) -> RemotingCommand {
        let ext = req.ext_fields.clone().unwrap_or_default();
        match UnregisterBrokerRequestHeader::from_ext(&ext) {
            Ok(h) => {
                self.table.lock().expect("route table").unregister(
                    &h.cluster_name,
                    &h.broker_addr,
                    &h.broker_name,
                );
                RemotingCommand::response_to(req, response::SUCCESS, None)
            }
            Err(e) => error(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    fn route(&self, req: &RemotingCommand) -> RemotingCommand {
        let ext = req.ext_fields.clone().unwrap_or_default();
        let header = match GetRouteInfoRequestHeader::from_ext(&ext) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let route = self.table.lock().expect("route table").route(&header.topic);
        match route {
            Some(route) => {
                let style = KeyStyle::for_request(
                    req.version,
                    header.accept_standard_json_only.unwrap_or(false),
                );
                RemotingCommand::response_to(req, response::SUCCESS, None)
                    .with_body(encode_route(&route, style))
            }
            None => error(
                req,
                response::TOPIC_NOT_EXIST,
                format!(
                    "No topic route info in name server for the topic: {}",
                    header.topic
                ),
            ),
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER: an operator takes a broker out of
    /// (or back into) the write path; producers see read-only queues on their next route poll.
    fn write_perm(&self, req: &RemotingCommand) -> RemotingCommand {
        let ext = req.ext_fields.clone().unwrap_or_default();
        let h = match BrokerPermRequestHeader::from_ext(&ext) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let mut table = self.table.lock().expect("route table");
        let ok = RemotingCommand::response_to(req, response::SUCCESS, None);
        if req.code == request::WIPE_WRITE_PERM_OF_BROKER {
            let n = table.wipe_write_perm(&h.broker_name) as i32;
            tracing::info!(broker = %h.broker_name, topics = n, "write permission wiped");
            ok.with_ext(
                WipeWritePermResponseHeader {
                    wipe_topic_count: n,
                }
                .to_ext(),
            )
        } else {
            let n = table.add_write_perm(&h.broker_name) as i32;
            tracing::info!(broker = %h.broker_name, topics = n, "write permission added");
            ok.with_ext(AddWritePermResponseHeader { add_topic_count: n }.to_ext())
        }
    }

    fn query_data_version(&self, req: &RemotingCommand) -> RemotingCommand {
        let ext = req.ext_fields.clone().unwrap_or_default();
        let header = match QueryDataVersionRequestHeader::from_ext(&ext) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let version = match sextant_remoting::body::decode_data_version(&req.body) {
            Ok(v) => v,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let now = self.now();
        let mut table = self.table.lock().expect("route table");
        let changed =
            table.query_data_version(&header.cluster_name, &header.broker_addr, &version, now);
        let key = BrokerAddrInfo {
            cluster: header.cluster_name.clone(),
            addr: header.broker_addr.clone(),
        };
        let current = table.live_brokers().get(&key).map(|l| l.data_version);
        drop(table);
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS, None)
            .with_ext(QueryDataVersionResponseHeader { changed }.to_ext());
        if let Some(v) = current {
            resp = resp.with_body(sextant_remoting::body::encode_data_version(&v));
        }
        resp
    }

    fn closed(&self, peer: &Peer) {
        let brokers = self
            .channels
            .lock()
            .expect("channels")
            .remove(&peer.addr)
            .unwrap_or_default();
        let mut table = self.table.lock().expect("route table");
        for b in brokers {
            let removed = table.channel_closed(&b.cluster, &b.addr);
            if removed.broker_name.is_some() {
                tracing::info!(broker = %b.addr, "broker connection closed; unregistered");
            }
        }
    }
}

fn crc32(body: &[u8]) -> u32 {
    sextant_remoting::message::body_crc(body) as u32
}

/// `{"table":{...}}`: the KV list of the `ORDER_TOPIC_CONFIG` namespace, the body of a
/// registration's answer.
fn kv_table(confs: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "table": confs })).expect("strings serialize")
}

fn error(req: &RemotingCommand, code: i32, remark: String) -> RemotingCommand {
    RemotingCommand::response_to(req, code, Some(remark))
}

/// The handler the transport calls for each request.
pub struct NamesrvHandler(pub Arc<NameServer>);

impl Handler for NamesrvHandler {
    async fn handle(&self, peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        let ns = &self.0;
        Some(match req.code {
            request::REGISTER_BROKER => ns.register(peer, &req),
            request::UNREGISTER_BROKER => ns.unregister(&req),
            request::GET_ROUTEINFO_BY_TOPIC => ns.route(&req),
            request::GET_BROKER_CLUSTER_INFO => {
                let info = ns.table.lock().expect("route table").cluster_info();
                RemotingCommand::response_to(&req, response::SUCCESS, None)
                    .with_body(encode_cluster_info(&info))
            }
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                let topics = ns.table.lock().expect("route table").topics();
                let body = TopicListBody {
                    topic_list: topics.into_iter().collect(),
                    broker_addr: None,
                };
                RemotingCommand::response_to(&req, response::SUCCESS, None)
                    .with_body(encode_body(&body))
            }
            request::QUERY_DATA_VERSION => ns.query_data_version(&req),
            request::WIPE_WRITE_PERM_OF_BROKER | request::ADD_WRITE_PERM_OF_BROKER => {
                ns.write_perm(&req)
            }
            request::DELETE_TOPIC_IN_NAMESRV => match DeleteTopicRequestHeader::from_ext(
                req.ext_fields.as_ref().unwrap_or(&Default::default()),
            ) {
                Ok(h) => {
                    ns.table.lock().expect("route table").delete_topic(&h.topic);
                    RemotingCommand::response_to(&req, response::SUCCESS, None)
                }
                Err(e) => error(&req, response::SYSTEM_ERROR, e.to_string()),
            },
            request::BROKER_HEARTBEAT => {
                let cluster = req.ext("clusterName").unwrap_or_default().to_owned();
                let addr = req.ext("brokerAddr").unwrap_or_default().to_owned();
                let now = ns.now();
                ns.table
                    .lock()
                    .expect("route table")
                    .heartbeat(&cluster, &addr, now);
                RemotingCommand::response_to(&req, response::SUCCESS, None)
            }
            _ => return None,
        })
    }

    async fn closed(&self, peer: &Peer) {
        self.0.closed(peer);
    }
}

/// A running NameServer.
pub struct Running {
    /// Where it listens.
    pub local_addr: SocketAddr,
    /// Its state.
    pub server: Arc<NameServer>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stop accepting, stop the scan, and wait for both.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Listen on `addr` and serve until [`Running::shutdown`]. The liveness scan runs every
/// `config.scan_interval`.
pub async fn start(addr: SocketAddr, config: NamesrvConfig) -> Result<Running, Error> {
    let (listener, local_addr) = bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let scan_every = Duration::from_millis(config.scan_interval.max(1));
    let server = Arc::new(NameServer::new(config));
    let (stop, stopped) = watch::channel(false);
    let accept = tokio::spawn({
        let handler = Arc::new(NamesrvHandler(Arc::clone(&server)));
        let stopped = stopped.clone();
        async move {
            if let Err(e) = serve(listener, FrameCodec::default(), handler, stopped).await {
                tracing::error!(error = %e, "accept loop ended");
            }
        }
    });
    let scan = tokio::spawn({
        let server = Arc::clone(&server);
        let mut stopped = stopped;
        async move {
            let mut tick = tokio::time::interval(scan_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => server.scan(),
                    _ = stopped.changed() => return,
                }
            }
        }
    });
    tracing::info!(%local_addr, "NameServer listening");
    Ok(Running {
        local_addr,
        server,
        stop,
        tasks: vec![accept, scan],
    })
}
