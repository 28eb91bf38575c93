//! Registration with every NameServer (`registerBrokerAll`): all topics, at the configured
//! period and whenever a topic is created; unregistration on a clean stop.
//!
//! A cycle is cut into parts where the model's `split_registration` says: at most
//! `splitRegistrationSize` topics a part when `enableSplitRegistration` is on (RocketMQ's
//! `BrokerConfig`, default off and 800), and — whatever the settings — never a frame above the
//! remoting frame limit, which RocketMQ would fail to send at all. Every part carries the same
//! data version and, when there are several, its place in the cycle under
//! [`REGISTRATION_PART_KEY`], so a Sextant NameServer merges the parts and deletes topics only
//! by whole cycles (a Java NameServer ignores the mark and merges them as RocketMQ's do). Parts go
//! to each NameServer in order.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use sextant_model::namesrv::{
    DataVersion, REGISTRATION_PART_KEY, RegistrationPart, TopicConfig, split_registration,
};
use sextant_remoting::body::RegisterBrokerBody;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, UnregisterBrokerRequestHeader,
};
use sextant_remoting::transport::Connection;
use sextant_remoting::{DEFAULT_MAX_FRAME, ExtFields, FrameCodec, RemotingCommand};

use crate::broker::{Broker, MasterInfo};
use crate::config::BrokerConfig;

/// Room kept in a frame beyond the header measured without a part mark, an opaque or a CRC.
const HEADER_SLACK: usize = 1024;

/// Connections to the NameServers, reopened when they close.
#[derive(Default)]
pub struct Registrar {
    conns: HashMap<SocketAddr, Connection>,
}

/// `enableSplitRegistration` and `splitRegistrationSize`: the most topics a part holds, if the
/// split is on.
pub(crate) fn split_size(config: &BrokerConfig) -> Option<usize> {
    config
        .enable_split_registration
        .then_some(config.split_registration_size.max(1))
}

/// The REGISTER_BROKER requests of one cycle, in order: `topics` at `version` cut into parts of
/// at most `split` topics (if any) whose frames fit `max_frame`.
pub(crate) fn registration_requests(
    header: &RegisterBrokerRequestHeader,
    version: DataVersion,
    topics: &BTreeMap<String, TopicConfig>,
    split: Option<usize>,
    max_frame: usize,
) -> Vec<RemotingCommand> {
    let body = |part: BTreeMap<String, TopicConfig>| {
        RegisterBrokerBody {
            data_version: version,
            topic_configs: part,
            filter_servers: Vec::new(),
        }
        .encode()
    };
    let base = body(BTreeMap::new()).len();
    let entries: Vec<usize> = topics
        .iter()
        .map(|(k, v)| body(BTreeMap::from([(k.clone(), v.clone())])).len() - base)
        .collect();
    let mut bare = Vec::new();
    RemotingCommand::request(request::REGISTER_BROKER, 0)
        .with_ext(header.to_ext())
        .encode_json_header(&mut bare);
    let budget = max_frame.saturating_sub(8 + bare.len() + HEADER_SLACK);
    let parts = split_registration(&entries, base, split, budget);
    let count = parts.len();
    let list: Vec<(&String, &TopicConfig)> = topics.iter().collect();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let part = list[range]
                .iter()
                .map(|(k, v)| ((*k).clone(), (*v).clone()))
                .collect();
            let body = body(part);
            let mut ext = RegisterBrokerRequestHeader {
                body_crc32: (crc32fast::hash(&body) & 0x7FFF_FFFF) as i32,
                ..header.clone()
            }
            .to_ext();
            if count > 1 {
                let mark = u32::try_from(i)
                    .ok()
                    .zip(u32::try_from(count).ok())
                    .and_then(|(i, n)| RegistrationPart::new(i, n).ok());
                match mark {
                    Some(m) => ext.insert(REGISTRATION_PART_KEY, m.to_ext_value()),
                    // More parts than a NameServer tracks: sent unmarked, merged all the same.
                    None => tracing::warn!(parts = count, "too many registration parts to mark"),
                }
            }
            RemotingCommand::request(request::REGISTER_BROKER, 0)
                .with_ext(ext)
                .with_body(body)
        })
        .collect()
}

/// The master a REGISTER_BROKER answer names (`masterAddr`, `haServerAddr`); `None` when it names
/// none (the broker is a master, or its master is not registered).
pub(crate) fn master_of(resp: &RemotingCommand) -> Option<MasterInfo> {
    let empty = ExtFields::new();
    let h =
        RegisterBrokerResponseHeader::from_ext(resp.ext_fields.as_ref().unwrap_or(&empty)).ok()?;
    let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    Some(MasterInfo {
        addr: non_empty(h.master_addr)?,
        ha_addr: non_empty(h.ha_server_addr),
    })
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

    /// Register every topic with every NameServer; returns how many accepted every part. The
    /// master the first NameServer to accept names is recorded (`Broker::set_master_info`; as
    /// RocketMQ takes the first result); if none accepted, the last known master stays.
    pub async fn register_all(&mut self, broker: &Broker) -> usize {
        let (topic_configs, data_version) = {
            let t = broker.topics.lock().unwrap_or_else(|p| p.into_inner());
            (t.all().clone(), *t.version())
        };
        let header = RegisterBrokerRequestHeader {
            broker_name: broker.config.broker_name.clone(),
            broker_addr: broker.addr.to_string(),
            cluster_name: broker.config.broker_cluster_name.clone(),
            // A master's HA port as it listens; a slave has none (RocketMQ's still registers
            // listenPort + 1).
            ha_server_addr: match broker.ha.listen.get() {
                Some(ha) => ha.to_string(),
                None => format!(
                    "{}:{}",
                    broker.addr.ip(),
                    broker.addr.port().wrapping_add(1)
                ),
            },
            broker_id: broker.config.broker_id,
            compressed: false,
            body_crc32: 0,
            heartbeat_timeout_millis: None,
            enable_acting_master: None,
        };
        let requests = registration_requests(
            &header,
            data_version,
            &topic_configs,
            split_size(&broker.config),
            FrameCodec::default().max_frame.min(DEFAULT_MAX_FRAME),
        );
        let timeout = Duration::from_millis(broker.config.register_broker_timeout_mills.max(1));
        let mut accepted = 0;
        let mut master = None;
        for addr in broker.settings.namesrvs.clone() {
            let Some(conn) = self.conn(addr).await else {
                continue;
            };
            // A part that fails does not stop the others: what arrives is merged, and the next
            // cycle sends everything again.
            let mut all = true;
            let mut last = None;
            for (i, cmd) in requests.iter().enumerate() {
                match conn.invoke(cmd.clone(), timeout).await {
                    Ok(r) if r.code == response::SUCCESS => last = Some(r),
                    Ok(r) => {
                        all = false;
                        tracing::warn!(namesrv = %addr, part = i, code = r.code, remark = ?r.remark, "registration refused");
                    }
                    Err(e) => {
                        all = false;
                        tracing::warn!(namesrv = %addr, part = i, error = %e, "registration failed");
                    }
                }
            }
            accepted += usize::from(all);
            if all && master.is_none() {
                master = last.map(|r| master_of(&r));
            }
        }
        if let Some(info) = master {
            broker.set_master_info(info);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use sextant_model::namesrv::NamesrvConfig;
    use sextant_remoting::header::GetRouteInfoRequestHeader;

    use super::*;

    fn header() -> RegisterBrokerRequestHeader {
        RegisterBrokerRequestHeader {
            broker_name: "broker-a".into(),
            broker_addr: "127.0.0.1:10911".into(),
            cluster_name: "DefaultCluster".into(),
            ha_server_addr: "127.0.0.1:10912".into(),
            broker_id: 0,
            ..Default::default()
        }
    }

    fn topics(n: usize) -> BTreeMap<String, TopicConfig> {
        (0..n)
            .map(|i| format!("topic-{i:05}"))
            .chain(["TBW102".to_string()])
            .map(|t| (t.clone(), TopicConfig::new(&t, 4)))
            .collect()
    }

    fn frame_len(cmd: &RemotingCommand) -> usize {
        let mut buf = bytes::BytesMut::new();
        sextant_remoting::frame::encode_frame(cmd, &mut buf, usize::MAX).unwrap();
        buf.len()
    }

    /// The topics the parts carry, checking each part's CRC and mark on the way.
    fn carried(reqs: &[RemotingCommand]) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for (i, r) in reqs.iter().enumerate() {
            let h = RegisterBrokerRequestHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
            assert_eq!(
                h.body_crc32,
                (crc32fast::hash(&r.body) & 0x7FFF_FFFF) as i32
            );
            let mark = r.ext(REGISTRATION_PART_KEY);
            if reqs.len() == 1 {
                assert_eq!(mark, None);
            } else {
                assert_eq!(mark, Some(format!("{i}/{}", reqs.len()).as_str()));
            }
            let body = RegisterBrokerBody::decode(&r.body).unwrap();
            assert!(
                body.topic_configs.keys().all(|t| all.insert(t.clone())),
                "no topic twice"
            );
        }
        all
    }

    #[test]
    fn split_by_count_when_enabled_and_by_size_always() {
        let t = topics(5_000);
        let v = DataVersion::default();
        let whole = registration_requests(&header(), v, &t, None, DEFAULT_MAX_FRAME);
        assert_eq!(whole.len(), 1, "5 001 small topics fit one frame");
        let split = registration_requests(&header(), v, &t, Some(800), DEFAULT_MAX_FRAME);
        assert_eq!(split.len(), 7, "800 a part, RocketMQ's default");
        assert_eq!(carried(&split), t.keys().cloned().collect());
        // A frame limit of 64 KiB: split by size although the split is off.
        let small = registration_requests(&header(), v, &t, None, 64 * 1024);
        assert!(small.len() > 10, "{}", small.len());
        assert!(small.iter().all(|r| frame_len(r) <= 64 * 1024));
        assert!(
            small.iter().any(|r| frame_len(r) > 60 * 1024),
            "parts are filled"
        );
        assert_eq!(carried(&small), t.keys().cloned().collect());
        // The old single body would not have fitted.
        assert!(frame_len(&whole[0]) > 64 * 1024);
    }

    #[test]
    fn split_settings_read_as_rocketmq_names_them() {
        let c = |text: &str| split_size(&BrokerConfig::from_toml(text).unwrap());
        assert_eq!(c(""), None);
        assert_eq!(c("enableSplitRegistration = true"), Some(800));
        assert_eq!(
            c("enableSplitRegistration = true\nsplitRegistrationSize = 100"),
            Some(100)
        );
        assert_eq!(
            c("enableSplitRegistration = true\nsplitRegistrationSize = 0"),
            Some(1)
        );
        assert_eq!(
            c("enableSplitRegistration = false\nsplitRegistrationSize = 5"),
            None
        );
    }

    /// 5 000 topics registered in parts through a real NameServer: every topic is routable, every
    /// frame is under the limit; a topic deleted on the broker leaves at the next whole cycle.
    #[tokio::test]
    async fn five_thousand_topics_in_parts_are_all_routable() {
        let ns = sextant_namesrv::start(
            "127.0.0.1:0".parse().unwrap(),
            NamesrvConfig {
                delete_topic_with_broker_registration: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let conn = Connection::connect(ns.local_addr, FrameCodec::default(), None)
            .await
            .unwrap();
        let mut t = topics(5_000);
        let mut v = DataVersion::default();
        let send = async |reqs: Vec<RemotingCommand>| {
            for r in reqs {
                assert!(frame_len(&r) < DEFAULT_MAX_FRAME);
                let resp = conn.invoke(r, Duration::from_secs(10)).await.unwrap();
                assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
            }
        };
        let reqs = registration_requests(&header(), v, &t, Some(800), DEFAULT_MAX_FRAME);
        assert_eq!(reqs.len(), 7);
        send(reqs).await;
        let routable = async |topic: &str| {
            let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
                GetRouteInfoRequestHeader {
                    topic: topic.into(),
                    accept_standard_json_only: None,
                }
                .to_ext(),
            );
            let r = conn.invoke(req, Duration::from_secs(5)).await.unwrap();
            r.code == response::SUCCESS
        };
        for topic in t.keys() {
            assert!(routable(topic).await, "{topic} is not routable");
        }
        // Topics of the first and of the last part are deleted on the broker.
        t.remove("topic-00001");
        t.remove("topic-04999");
        v.counter += 1;
        send(registration_requests(
            &header(),
            v,
            &t,
            Some(800),
            DEFAULT_MAX_FRAME,
        ))
        .await;
        assert!(!routable("topic-00001").await && !routable("topic-04999").await);
        assert_eq!(ns.server.table().topics().len(), t.len());
        ns.shutdown().await;
    }
}
