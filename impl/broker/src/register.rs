//! Registration with every NameServer (`registerBrokerAll`): all topics, at the configured
//! period and whenever a topic is created; unregistration on a clean stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sextant_remoting::body::RegisterBrokerBody;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader};
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};

use crate::broker::Broker;

/// Connections to the NameServers, reopened when they close.
#[derive(Default)]
pub struct Registrar {
    conns: HashMap<SocketAddr, Connection>,
}

impl Registrar {
    async fn conn(&mut self, addr: SocketAddr) -> Option<Connection> {
        if let Some(c) = self.conns.get(&addr)
            && !c.is_closed()
        {
            return Some(c.clone());
        }
        match Connection::connect(addr, FrameCodec::default(), None).await {
            Ok(c) => {
                self.conns.insert(addr, c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::warn!(namesrv = %addr, error = %e, "cannot reach the NameServer");
                None
            }
        }
    }

    /// Register every topic with every NameServer; returns how many accepted.
    pub async fn register_all(&mut self, broker: &Broker) -> usize {
        let (topic_configs, data_version) = {
            let t = broker.topics.lock().unwrap_or_else(|p| p.into_inner());
            (t.all().clone(), *t.version())
        };
        let body = RegisterBrokerBody {
            data_version,
            topic_configs,
            filter_servers: Vec::new(),
        }
        .encode();
        let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF) as i32;
        let header = RegisterBrokerRequestHeader {
            broker_name: broker.config.broker_name.clone(),
            broker_addr: broker.addr.to_string(),
            cluster_name: broker.config.broker_cluster_name.clone(),
            ha_server_addr: format!(
                "{}:{}",
                broker.addr.ip(),
                broker.addr.port().wrapping_add(1)
            ),
            broker_id: broker.config.broker_id,
            compressed: false,
            body_crc32: crc,
            heartbeat_timeout_millis: None,
            enable_acting_master: None,
        }
        .to_ext();
        let timeout = Duration::from_millis(broker.config.register_broker_timeout_mills.max(1));
        let mut accepted = 0;
        for addr in broker.settings.namesrvs.clone() {
            let Some(conn) = self.conn(addr).await else {
                continue;
            };
            let cmd = RemotingCommand::request(request::REGISTER_BROKER, 0)
                .with_ext(header.clone())
                .with_body(body.clone());
            match conn.invoke(cmd, timeout).await {
                Ok(r) if r.code == response::SUCCESS => accepted += 1,
                Ok(r) => {
                    tracing::warn!(namesrv = %addr, code = r.code, remark = ?r.remark, "registration refused")
                }
                Err(e) => tracing::warn!(namesrv = %addr, error = %e, "registration failed"),
            }
        }
        accepted
    }

    /// Unregister from every NameServer.
    pub async fn unregister_all(&mut self, broker: &Broker) {
        let header = UnregisterBrokerRequestHeader {
            broker_name: broker.config.broker_name.clone(),
            broker_addr: broker.addr.to_string(),
            cluster_name: broker.config.broker_cluster_name.clone(),
            broker_id: broker.config.broker_id,
        }
        .to_ext();
        for addr in broker.settings.namesrvs.clone() {
            let Some(conn) = self.conn(addr).await else {
                continue;
            };
            let cmd =
                RemotingCommand::request(request::UNREGISTER_BROKER, 0).with_ext(header.clone());
            if let Err(e) = conn.invoke(cmd, Duration::from_secs(3)).await {
                tracing::warn!(namesrv = %addr, error = %e, "unregistration failed");
            }
        }
    }
}
