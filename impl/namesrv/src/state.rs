//! The NameServer's state — the model's route table behind one lock, and the clock — and the
//! answer to each request. Every answer is computed synchronously under the lock, so a request is
//! either answered whole or not started.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use sextant_model::Millis;
use sextant_model::namesrv::{
    BrokerAddrInfo, BrokerRegistration, ChannelId, NamesrvConfig, REGISTRATION_PART_KEY,
    RegisterError, RegistrationPart, Removed, RouteTable, check_body_crc,
};
use sextant_remoting::RemotingCommand;
use sextant_remoting::body::{
    RegisterBrokerBody, TopicListBody, decode_data_version, encode as encode_body,
    encode_cluster_info, encode_data_version,
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
use sextant_trace::{Event, Route, Tracer};

/// Take `m`'s lock even if a thread panicked while holding it — the one policy of Sextant's
/// servers (the broker's `lock`). A panic cannot leave the route table half-built in a way that
/// matters more than losing the server: the model's functions do not panic on any input (they are
/// property-tested), the table is rebuilt by the brokers' next registrations, and RocketMQ's
/// `ReentrantReadWriteLock` behaves the same (an exception mid-update leaves the table as it is and
/// the NameServer goes on).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One accepted connection, as requests see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Its identity in the route table (never reused).
    pub id: ChannelId,
    /// The peer's address.
    pub addr: SocketAddr,
}

/// The NameServer's state: the model's route table, the clock, and the tracer.
pub struct NameServer {
    table: Mutex<RouteTable>,
    started: Instant,
    /// Milliseconds the clock was stepped forward ([`NameServer::step_clock`]).
    stepped: std::sync::atomic::AtomicU64,
    /// Set once, when the server knows its address. Events are recorded under the table's
    /// lock, so the trace orders them as the table saw them.
    tracer: OnceLock<Tracer>,
}

impl NameServer {
    /// A NameServer with `config`.
    pub fn new(config: NamesrvConfig) -> Self {
        NameServer {
            table: Mutex::new(RouteTable::new(config)),
            started: Instant::now(),
            stepped: std::sync::atomic::AtomicU64::new(0),
            tracer: OnceLock::new(),
        }
    }

    /// Record events to `tracer` from now on (the first call wins) and record the start.
    pub fn set_tracer(&self, tracer: Tracer) {
        let table = lock(&self.table);
        if self.tracer.set(tracer).is_ok() {
            let c = table.config();
            self.trace(|| Event::NamesrvStarted {
                expiry: c.broker_expiry,
                scan: c.scan_interval,
                now: self.now(),
            });
        }
    }

    fn trace(&self, f: impl FnOnce() -> Event) {
        if let Some(t) = self.tracer.get() {
            t.emit(f);
        }
    }

    /// Milliseconds since the server started (plus any [`NameServer::step_clock`]).
    pub fn now(&self) -> Millis {
        let stepped = self.stepped.load(std::sync::atomic::Ordering::Relaxed);
        (self.started.elapsed().as_millis() as Millis).saturating_add(stepped)
    }

    /// Step the clock forward by `ms` (a fault the conformance runs inject: the brokers look
    /// that much more silent). The clock never goes back: it is monotonic by design.
    pub fn step_clock(&self, ms: Millis) {
        let _table = lock(&self.table);
        self.stepped
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// A copy of the route table (for tests and tracing).
    pub fn table(&self) -> RouteTable {
        lock(&self.table).clone()
    }

    /// Run `f` on the route table under its lock (for embedders and tests that seed or inspect
    /// state the requests cannot reach, e.g. `ORDER_TOPIC_CONFIG`).
    pub fn update_table<R>(&self, f: impl FnOnce(&mut RouteTable) -> R) -> R {
        f(&mut lock(&self.table))
    }

    /// Run the liveness scan now; returns the brokers it removed (their connections are for the
    /// server to close, as RocketMQ's `scanNotActiveBroker` closes an expired broker's channel).
    pub fn scan(&self) -> Vec<Removed> {
        let now = self.now();
        let mut table = lock(&self.table);
        let removed = table.scan_expired(now);
        for r in &removed {
            tracing::info!(broker = %r.broker.addr, cluster = %r.broker.cluster, "broker expired");
            self.trace(|| Event::BrokerExpired {
                cluster: r.broker.cluster.clone(),
                addr: r.broker.addr.clone(),
                now,
            });
        }
        drop(table);
        removed
    }

    /// Answer one request; `None` is a code the NameServer does not serve.
    pub fn handle(&self, channel: &Channel, req: &RemotingCommand) -> Option<RemotingCommand> {
        Some(match req.code {
            request::REGISTER_BROKER => self.register(channel, req),
            request::UNREGISTER_BROKER => self.unregister(req),
            request::GET_ROUTEINFO_BY_TOPIC => self.route(req),
            request::GET_BROKER_CLUSTER_INFO => {
                let info = lock(&self.table).cluster_info();
                RemotingCommand::response_to(req, response::SUCCESS, None)
                    .with_body(encode_cluster_info(&info))
            }
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                let topics = lock(&self.table).topics();
                let body = TopicListBody {
                    topic_list: topics.into_iter().collect(),
                    broker_addr: None,
                };
                RemotingCommand::response_to(req, response::SUCCESS, None)
                    .with_body(encode_body(&body))
            }
            request::QUERY_DATA_VERSION => self.query_data_version(req),
            request::WIPE_WRITE_PERM_OF_BROKER | request::ADD_WRITE_PERM_OF_BROKER => {
                self.write_perm(req)
            }
            request::DELETE_TOPIC_IN_NAMESRV => {
                match DeleteTopicRequestHeader::from_ext(&ext(req)) {
                    Ok(h) => {
                        lock(&self.table).delete_topic(&h.topic);
                        RemotingCommand::response_to(req, response::SUCCESS, None)
                    }
                    Err(e) => error(req, response::SYSTEM_ERROR, e.to_string()),
                }
            }
            request::BROKER_HEARTBEAT => {
                let cluster = req.ext("clusterName").unwrap_or_default();
                let addr = req.ext("brokerAddr").unwrap_or_default();
                let now = self.now();
                let mut table = lock(&self.table);
                let known = table.heartbeat(cluster, addr, now);
                self.trace(|| Event::BrokerHeartbeat {
                    cluster: cluster.to_owned(),
                    addr: addr.to_owned(),
                    known,
                    now,
                });
                drop(table);
                RemotingCommand::response_to(req, response::SUCCESS, None)
            }
            _ => return None,
        })
    }

    /// The connection `channel` closed: the brokers it owns leave at once (`onChannelDestroy`).
    pub fn closed(&self, channel: &Channel) {
        let mut table = lock(&self.table);
        let removed = table.connection_closed(channel.id);
        let now = self.now();
        for r in removed {
            tracing::info!(broker = %r.broker.addr, peer = %channel.addr,
                "broker connection closed; unregistered");
            self.trace(|| Event::BrokerUnregistered {
                cluster: r.broker.cluster.clone(),
                addr: r.broker.addr.clone(),
                why: "connection_closed".into(),
                now,
            });
        }
    }

    fn register(&self, channel: &Channel, req: &RemotingCommand) -> RemotingCommand {
        let header = match RegisterBrokerRequestHeader::from_ext(&ext(req)) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        // Checked before the body is decoded, as RocketMQ does.
        if let Err(e) = check_body_crc(header.body_crc32, || crc32fast::hash(&req.body)) {
            tracing::warn!(broker = %header.broker_addr, claimed = e.claimed, actual = e.actual,
                "registration body crc32 does not match");
            return error(req, response::SYSTEM_ERROR, e.to_string());
        }
        let part = match req.ext(REGISTRATION_PART_KEY).map(RegistrationPart::parse) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => return error(req, response::INVALID_PARAMETER, e.to_string()),
        };
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
        )
        .over(channel.id);
        reg.part = part;
        reg.ha_server_addr = header.ha_server_addr;
        reg.zone_name = req.ext("__ZONE_NAME").map(str::to_owned);
        reg.enable_acting_master = header.enable_acting_master;
        reg.heartbeat_timeout = header
            .heartbeat_timeout_millis
            .and_then(|t| u64::try_from(t).ok());
        reg.data_version = body.data_version;
        reg.topic_configs = body.topic_configs;
        reg.filter_servers = body.filter_servers;
        let now = self.now();
        let mut table = lock(&self.table);
        let result = table.register(&reg, now);
        if result.is_ok() {
            self.trace(|| Event::BrokerRegistered {
                cluster: reg.cluster.clone(),
                broker: reg.broker_name.clone(),
                id: reg.broker_id,
                addr: reg.broker_addr.clone(),
                topics: reg.topic_configs.keys().cloned().collect(),
                timeout: reg.heartbeat_timeout,
                now,
            });
        }
        let order_confs = kv_table(table.order_topic_confs());
        drop(table);
        match result {
            Ok(r) => {
                let resp = RegisterBrokerResponseHeader {
                    ha_server_addr: r.ha_server_addr,
                    master_addr: r.master_addr,
                };
                RemotingCommand::response_to(req, response::SUCCESS, None)
                    .with_ext(resp.to_ext())
                    .with_body(order_confs)
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
        match UnregisterBrokerRequestHeader::from_ext(&ext(req)) {
            Ok(h) => {
                let mut table = lock(&self.table);
                table.unregister(&h.cluster_name, &h.broker_addr, &h.broker_name);
                self.trace(|| Event::BrokerUnregistered {
                    cluster: h.cluster_name.clone(),
                    addr: h.broker_addr.clone(),
                    why: "request".into(),
                    now: self.now(),
                });
                drop(table);
                RemotingCommand::response_to(req, response::SUCCESS, None)
            }
            Err(e) => error(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    fn route(&self, req: &RemotingCommand) -> RemotingCommand {
        let header = match GetRouteInfoRequestHeader::from_ext(&ext(req)) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let table = lock(&self.table);
        let route = table.route(&header.topic);
        self.trace(|| Event::RouteServed {
            topic: header.topic.clone(),
            route: route.as_ref().map(Route::from),
            now: self.now(),
        });
        drop(table);
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
        let h = match BrokerPermRequestHeader::from_ext(&ext(req)) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let ok = RemotingCommand::response_to(req, response::SUCCESS, None);
        if req.code == request::WIPE_WRITE_PERM_OF_BROKER {
            let n = lock(&self.table).wipe_write_perm(&h.broker_name) as i32;
            tracing::info!(broker = %h.broker_name, topics = n, "write permission wiped");
            ok.with_ext(
                WipeWritePermResponseHeader {
                    wipe_topic_count: n,
                }
                .to_ext(),
            )
        } else {
            let n = lock(&self.table).add_write_perm(&h.broker_name) as i32;
            tracing::info!(broker = %h.broker_name, topics = n, "write permission added");
            ok.with_ext(AddWritePermResponseHeader { add_topic_count: n }.to_ext())
        }
    }

    fn query_data_version(&self, req: &RemotingCommand) -> RemotingCommand {
        let header = match QueryDataVersionRequestHeader::from_ext(&ext(req)) {
            Ok(h) => h,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let version = match decode_data_version(&req.body) {
            Ok(v) => v,
            Err(e) => return error(req, response::SYSTEM_ERROR, e.to_string()),
        };
        let now = self.now();
        let mut table = lock(&self.table);
        let changed =
            table.query_data_version(&header.cluster_name, &header.broker_addr, &version, now);
        let key = BrokerAddrInfo {
            cluster: header.cluster_name,
            addr: header.broker_addr,
        };
        let current = table.live_brokers().get(&key).map(|l| l.data_version);
        // QUERY_DATA_VERSION refreshes the broker's last contact, as a heartbeat does.
        self.trace(|| Event::BrokerHeartbeat {
            cluster: key.cluster.clone(),
            addr: key.addr.clone(),
            known: current.is_some(),
            now,
        });
        drop(table);
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS, None)
            .with_ext(QueryDataVersionResponseHeader { changed }.to_ext());
        if let Some(v) = current {
            resp = resp.with_body(encode_data_version(&v));
        }
        resp
    }
}

fn ext(req: &RemotingCommand) -> sextant_remoting::ExtFields {
    req.ext_fields.clone().unwrap_or_default()
}

/// `{"table":{...}}`: the KV list of the `ORDER_TOPIC_CONFIG` namespace, the body of a
/// registration's answer.
fn kv_table(confs: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "table": confs })).expect("strings serialize")
}

pub(crate) fn error(req: &RemotingCommand, code: i32, remark: String) -> RemotingCommand {
    RemotingCommand::response_to(req, code, Some(remark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_as_it_is() {
        let m = Mutex::new(1);
        let _ = std::panic::catch_unwind(|| {
            let mut g = m.lock().unwrap();
            *g = 2;
            panic!("a handler bug");
        });
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 2);
        // The policy this replaced: every later request would panic in turn.
        assert!(std::panic::catch_unwind(|| *m.lock().expect("route table")).is_err());
    }
}
