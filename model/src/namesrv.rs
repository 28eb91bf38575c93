//! The NameServer's route registry: [`RouteTable`].
//!
//! This is Apache RocketMQ's `RouteInfoManager` (5.x semantics, `shared/docs/protocol.md` §5) as a
//! pure value: brokers register and heartbeat with an explicit `now`, [`RouteTable::scan_expired`]
//! drops the silent ones, [`RouteTable::route`] answers GET_ROUTEINFO_BY_TOPIC. The tokio NameServer
//! owns one behind a lock and calls these methods; the stateright model owns one per NameServer.
//!
//! Behaviour that matters for failover, as RocketMQ does it:
//! - Topic configuration is taken only from a master (id 0), or from the "prime slave" (lowest id,
//!   no master registered) of a 5.x broker group.
//! - When a master expires or unregisters but its slave stays, the topic's queue data stays: the
//!   route still lists the group, without id 0, so producers skip it and consumers read the slave.
//!   In acting-master mode the group's write permission is cleared instead.
//! - When the last member of a group goes, its queue data leaves every topic, and topics left
//!   with no queue data are deleted.
//! - A topic never leaves the table just because a registration no longer mentions it (unless
//!   [`NamesrvConfig::delete_topic_with_broker_registration`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::Millis;
use crate::route::{BrokerData, MASTER_ID, Perm, QueueData, TopicRouteData};

/// RocketMQ's default broker expiry (`DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`): 120 s.
pub const DEFAULT_BROKER_EXPIRY: Millis = 120_000;
/// RocketMQ 5.x's default interval between liveness scans (`scanNotActiveBrokerInterval`): 5 s.
pub const DEFAULT_SCAN_INTERVAL: Millis = 5_000;

/// NameServer settings that change routing decisions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamesrvConfig {
    /// Expiry for brokers that do not send their own `heartbeatTimeoutMillis`.
    pub broker_expiry: Millis,
    /// How often the server calls [`RouteTable::scan_expired`].
    pub scan_interval: Millis,
    /// `orderMessageEnable`: attach the `ORDER_TOPIC_CONFIG` entry of a topic to its route.
    pub order_message_enable: bool,
    /// `supportActingMaster`: in a route, re-key the lowest slave of a master-less acting-master
    /// group as id 0.
    pub support_acting_master: bool,
    /// `deleteTopicWithBrokerRegistration`: drop a master's topics that its registration omits.
    pub delete_topic_with_broker_registration: bool,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            broker_expiry: DEFAULT_BROKER_EXPIRY,
            scan_interval: DEFAULT_SCAN_INTERVAL,
            order_message_enable: false,
            support_acting_master: false,
            delete_topic_with_broker_registration: false,
        }
    }
}

/// A broker's data version (`DataVersion`): bumped whenever its topic configuration changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DataVersion {
    /// `stateVersion`: orders registrations of different processes for the same broker id.
    pub state_version: i64,
    /// `timestamp` of the last change, in milliseconds.
    pub timestamp: i64,
    /// `counter`: number of changes.
    pub counter: i64,
}

/// One topic's configuration as a broker reports it (`TopicConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicConfig {
    /// The topic.
    pub topic_name: String,
    /// Number of readable queues.
    pub read_queue_nums: u32,
    /// Number of writable queues.
    pub write_queue_nums: u32,
    /// Permission of the topic on this broker.
    pub perm: Perm,
    /// `topicSysFlag`.
    pub topic_sys_flag: u32,
    /// Whether the topic is ordered.
    pub order: bool,
}

impl TopicConfig {
    /// A read-write topic with the same number of read and write queues.
    pub fn new(topic_name: &str, queues: u32) -> Self {
        TopicConfig {
            topic_name: topic_name.to_owned(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: Perm::READ_WRITE,
            topic_sys_flag: 0,
            order: false,
        }
    }
}

/// What a broker sends in REGISTER_BROKER (header and body together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// `clusterName`.
    pub cluster: String,
    /// `brokerName`: the group's name.
    pub broker_name: String,
    /// `brokerAddr`: where clients reach this broker (`ip:port`).
    pub broker_addr: String,
    /// `brokerId`: 0 for the master.
    pub broker_id: u64,
    /// `haServerAddr`: where slaves replicate from.
    pub ha_server_addr: String,
    /// `zoneName`, if any.
    pub zone_name: Option<String>,
    /// `enableActingMaster`; `None` for a 4.x broker that does not send it.
    pub enable_acting_master: Option<bool>,
    /// `heartbeatTimeoutMillis`; `None` means [`NamesrvConfig::broker_expiry`].
    pub heartbeat_timeout: Option<Millis>,
    /// The data version of `topic_configs`.
    pub data_version: DataVersion,
    /// The broker's topic table, keyed by topic name.
    pub topic_configs: BTreeMap<String, TopicConfig>,
    /// Filter server addresses; an empty list removes the entry.
    pub filter_servers: Vec<String>,
}

impl BrokerRegistration {
    /// A registration with no topics, no filter servers and version zero.
    pub fn new(cluster: &str, broker_name: &str, broker_id: u64, broker_addr: &str) -> Self {
        BrokerRegistration {
            cluster: cluster.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_addr: broker_addr.to_owned(),
            broker_id,
            ha_server_addr: String::new(),
            zone_name: None,
            enable_acting_master: None,
            heartbeat_timeout: None,
            data_version: DataVersion::default(),
            topic_configs: BTreeMap::new(),
            filter_servers: Vec::new(),
        }
    }

    /// The same registration carrying these topics.
    pub fn with_topics(mut self, topics: impl IntoIterator<Item = TopicConfig>) -> Self {
        self.topic_configs = topics
            .into_iter()
            .map(|t| (t.topic_name.clone(), t))
            .collect();
        self
    }
}

/// What the NameServer answers a successful registration (`RegisterBrokerResult`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RegisterResult {
    /// For a slave: its live master's address.
    pub master_addr: Option<String>,
    /// For a slave: its live master's HA address.
    pub ha_server_addr: Option<String>,
}

/// Why a registration was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A registration with exactly one topic from a broker id not yet registered (RocketMQ answers
    /// SYSTEM_ERROR "register broker failed").
    #[error(
        "broker {broker_name}[{broker_id}] sent a single-topic registration before registering"
    )]
    NotYetRegistered {
        /// The group.
        broker_name: String,
        /// The id.
        broker_id: u64,
    },
    /// Another address holds this broker id with a newer `stateVersion`; the newcomer is ignored
    /// (RocketMQ answers SUCCESS with an empty result).
    #[error("broker {broker_name}[{broker_id}] at {broker_addr} is older than the registered one")]
    StaleStateVersion {
        /// The group.
        broker_name: String,
        /// The id.
        broker_id: u64,
        /// The rejected address.
        broker_addr: String,
    },
}

/// Key of the liveness table: RocketMQ 5.x's `BrokerAddrInfo` (cluster, address).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerAddrInfo {
    /// The cluster.
    pub cluster: String,
    /// The broker's address.
    pub addr: String,
}

/// Liveness record of one registered broker process (`BrokerLiveInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerLiveInfo {
    /// When it was last heard from.
    pub last_update: Millis,
    /// How long it may stay silent.
    pub heartbeat_timeout: Millis,
    /// The data version it last registered.
    pub data_version: DataVersion,
    /// Its HA address.
    pub ha_server_addr: String,
}

impl BrokerLiveInfo {
    /// RocketMQ's test: expired when `last_update + timeout < now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.last_update.saturating_add(self.heartbeat_timeout) < now
    }
}

/// All broker groups and the clusters they belong to (GET_BROKER_CLUSTER_INFO).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClusterInfo {
    /// Broker groups by name.
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// Broker names by cluster.
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// A broker process the route table dropped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The process.
    pub broker: BrokerAddrInfo,
    /// Its group, if it was still listed in one.
    pub broker_name: Option<String>,
    /// Its id in that group.
    pub broker_id: Option<u64>,
}

/// The NameServer's tables (`RouteInfoManager`), with an explicit clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RouteTable {
    config: NamesrvConfig,
    /// topic → brokerName → queue data.
    topic_queue_table: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// brokerName → group.
    broker_addr_table: BTreeMap<String, BrokerData>,
    /// cluster → brokerNames.
    cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    /// (cluster, addr) → liveness.
    broker_live_table: BTreeMap<BrokerAddrInfo, BrokerLiveInfo>,
    /// (cluster, addr) → filter servers.
    filter_server_table: BTreeMap<BrokerAddrInfo, Vec<String>>,
    /// KV namespace `ORDER_TOPIC_CONFIG`: topic → `brokerName:queueNums;...`.
    order_topic_conf: BTreeMap<String, String>,
}

impl RouteTable {
    /// An empty table with these settings.
    pub fn new(config: NamesrvConfig) -> Self {
        RouteTable {
            config,
            ..Default::default()
        }
    }

    /// The settings.
    pub fn config(&self) -> &NamesrvConfig {
        &self.config
    }

    /// REGISTER_BROKER at `now`: record the process as live, add it to its group and cluster, and
    /// (for a master or prime slave) apply its topic configuration.
    pub fn register(
        &mut self,
        reg: &BrokerRegistration,
        now: Millis,
    ) -> Result<RegisterResult, RegisterError> {
        self.cluster_addr_table
            .entry(reg.cluster.clone())
            .or_default()
            .insert(reg.broker_name.clone());

        let mut register_first = false;
        let group = self
            .broker_addr_table
            .entry(reg.broker_name.clone())
            .or_insert_with(|| {
                register_first = true;
                BrokerData {
                    cluster: reg.cluster.clone(),
                    broker_name: reg.broker_name.clone(),
                    ..Default::default()
                }
            });
        let old_version_broker = reg.enable_acting_master.is_none();
        group.enable_acting_master = reg.enable_acting_master.unwrap_or(false);
        group.zone_name = reg.zone_name.clone();

        // Slave → master switch: one address holds one id.
        group
            .broker_addrs
            .retain(|id, addr| *id == reg.broker_id || *addr != reg.broker_addr);

        if let Some(old_addr) = group.broker_addrs.get(&reg.broker_id)
            && *old_addr != reg.broker_addr
        {
            let old_key = BrokerAddrInfo {
                cluster: reg.cluster.clone(),
                addr: old_addr.clone(),
            };
            if let Some(old) = self.broker_live_table.get(&old_key)
                && old.data_version.state_version > reg.data_version.state_version
            {
                self.broker_live_table.remove(&BrokerAddrInfo {
                    cluster: reg.cluster.clone(),
                    addr: reg.broker_addr.clone(),
                });
                return Err(RegisterError::StaleStateVersion {
                    broker_name: reg.broker_name.clone(),
                    broker_id: reg.broker_id,
                    broker_addr: reg.broker_addr.clone(),
                });
            }
        }

        if !group.broker_addrs.contains_key(&reg.broker_id) && reg.topic_configs.len() == 1 {
            return Err(RegisterError::NotYetRegistered {
                broker_name: reg.broker_name.clone(),
                broker_id: reg.broker_id,
            });
        }

        let old_addr = group
            .broker_addrs
            .insert(reg.broker_id, reg.broker_addr.clone());
        register_first |= old_addr.as_deref().is_none_or(str::is_empty);

        let is_master = reg.broker_id == MASTER_ID;
        let min_id = group.broker_addrs.keys().next().copied();
        let is_prime_slave = !old_version_broker && !is_master && min_id == Some(reg.broker_id);
        let acting_master = group.enable_acting_master;

        let key = BrokerAddrInfo {
            cluster: reg.cluster.clone(),
            addr: reg.broker_addr.clone(),
        };
        if is_master || is_prime_slave {
            if self.config.delete_topic_with_broker_registration {
                self.topic_queue_table.retain(|topic, by_broker| {
                    if !reg.topic_configs.contains_key(topic) {
                        by_broker.remove(&reg.broker_name);
                    }
                    !by_broker.is_empty()
                });
            }
            let version_changed = self
                .broker_live_table
                .get(&key)
                .is_none_or(|live| live.data_version != reg.data_version);
            for tc in reg.topic_configs.values() {
                let missing = self
                    .topic_queue_table
                    .get(&tc.topic_name)
                    .is_none_or(|m| !m.contains_key(&reg.broker_name));
                if register_first || version_changed || missing {
                    let mut perm = tc.perm;
                    if is_prime_slave && acting_master {
                        perm = perm.without_write();
                    }
                    self.topic_queue_table
                        .entry(tc.topic_name.clone())
                        .or_default()
                        .insert(
                            reg.broker_name.clone(),
                            QueueData {
                                broker_name: reg.broker_name.clone(),
                                read_queue_nums: tc.read_queue_nums,
                                write_queue_nums: tc.write_queue_nums,
                                perm,
                                topic_sys_flag: tc.topic_sys_flag,
                            },
                        );
                }
            }
        }

        self.broker_live_table.insert(
            key.clone(),
            BrokerLiveInfo {
                last_update: now,
                heartbeat_timeout: reg.heartbeat_timeout.unwrap_or(self.config.broker_expiry),
                data_version: reg.data_version,
                ha_server_addr: reg.ha_server_addr.clone(),
            },
        );
        if reg.filter_servers.is_empty() {
            self.filter_server_table.remove(&key);
        } else {
            self.filter_server_table
                .insert(key, reg.filter_servers.clone());
        }

        let mut result = RegisterResult::default();
        if !is_master
            && let Some(master_addr) = self
                .broker_addr_table
                .get(&reg.broker_name)
                .and_then(BrokerData::master_addr)
            && let Some(master) = self.broker_live_table.get(&BrokerAddrInfo {
                cluster: reg.cluster.clone(),
                addr: master_addr.to_owned(),
            })
        {
            result.master_addr = Some(master_addr.to_owned());
            result.ha_server_addr = Some(master.ha_server_addr.clone());
        }
        Ok(result)
    }

    /// BROKER_HEARTBEAT (or any liveness refresh) at `now`. Returns whether the process is known.
    pub fn heartbeat(&mut self, cluster: &str, broker_addr: &str, now: Millis) -> bool {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        };
        match self.broker_live_table.get_mut(&key) {
            Some(live) => {
                live.last_update = now;
                true
            }
            None => false,
        }
    }

    /// QUERY_DATA_VERSION at `now`: refreshes liveness and says whether `version` differs from the
    /// registered one (so the broker must register again).
    pub fn query_data_version(
        &mut self,
        cluster: &str,
        broker_addr: &str,
        version: &DataVersion,
        now: Millis,
    ) -> bool {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        };
        let changed = self
            .broker_live_table
            .get(&key)
            .is_none_or(|live| live.data_version != *version);
        self.heartbeat(cluster, broker_addr, now);
        changed
    }

    /// UNREGISTER_BROKER: forget the process at `broker_addr` in group `broker_name`.
    pub fn unregister(&mut self, cluster: &str, broker_addr: &str, broker_name: &str) -> Removed {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        };
        self.broker_live_table.remove(&key);
        self.filter_server_table.remove(&key);

        let mut removed = Removed {
            broker: key,
            broker_name: None,
            broker_id: None,
        };
        let mut remove_group = false;
        if let Some(group) = self.broker_addr_table.get_mut(broker_name) {
            if let Some((&id, _)) = group.broker_addrs.iter().find(|(_, a)| *a == broker_addr) {
                group.broker_addrs.remove(&id);
                removed.broker_name = Some(broker_name.to_owned());
                removed.broker_id = Some(id);
            }
            remove_group = group.broker_addrs.is_empty();
        }

        if remove_group {
            self.broker_addr_table.remove(broker_name);
            if let Some(names) = self.cluster_addr_table.get_mut(cluster) {
                names.remove(broker_name);
                if names.is_empty() {
                    self.cluster_addr_table.remove(cluster);
                }
            }
        }
        let reduced_acting_without_master = self
            .broker_addr_table
            .get(broker_name)
            .is_some_and(|g| g.enable_acting_master && g.master_addr().is_none());
        self.topic_queue_table.retain(|_, by_broker| {
            if remove_group {
                by_broker.remove(broker_name);
            } else if reduced_acting_without_master && let Some(qd) = by_broker.get_mut(broker_name)
            {
                qd.perm = qd.perm.without_write();
            }
            !by_broker.is_empty()
        });
        removed
    }

    /// A broker's connection closed: forget the process at `(cluster, addr)` at once
    /// (`onChannelDestroy`).
    pub fn channel_closed(&mut self, cluster: &str, broker_addr: &str) -> Removed {
        let broker_name = self
            .broker_addr_table
            .values()
            .find(|g| g.cluster == cluster && g.broker_addrs.values().any(|a| a == broker_addr))
            .map(|g| g.broker_name.clone());
        match broker_name {
            Some(name) => self.unregister(cluster, broker_addr, &name),
            None => {
                let key = BrokerAddrInfo {
                    cluster: cluster.to_owned(),
                    addr: broker_addr.to_owned(),
                };
                self.broker_live_table.remove(&key);
                self.filter_server_table.remove(&key);
                Removed {
                    broker: key,
                    broker_name: None,
                    broker_id: None,
                }
            }
        }
    }

    /// The liveness scan (`scanNotActiveBroker`) at `now`: every process silent for longer than
    /// its timeout is removed as if its connection had closed. Returns what was removed.
    pub fn scan_expired(&mut self, now: Millis) -> Vec<Removed> {
        let expired: Vec<BrokerAddrInfo> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| live.is_expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .map(|k| self.channel_closed(&k.cluster, &k.addr))
            .collect()
    }

    /// The earliest time at which a registered process will be found expired by a scan, if any.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.broker_live_table
            .values()
            .map(|l| l.last_update.saturating_add(l.heartbeat_timeout) + 1)
            .min()
    }

    /// GET_ROUTEINFO_BY_TOPIC (`pickupTopicRouteData`): `None` is TOPIC_NOT_EXIST.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let by_broker = self.topic_queue_table.get(topic)?;
        let mut route = TopicRouteData {
            queue_datas: by_broker.values().cloned().collect(),
            ..Default::default()
        };
        for name in by_broker.keys() {
            let Some(group) = self.broker_addr_table.get(name) else {
                continue;
            };
            for addr in group.broker_addrs.values() {
                let key = BrokerAddrInfo {
                    cluster: group.cluster.clone(),
                    addr: addr.clone(),
                };
                if let Some(fs) = self.filter_server_table.get(&key)
                    && !fs.is_empty()
                {
                    route.filter_server_table.insert(addr.clone(), fs.clone());
                }
            }
            route.broker_datas.push(group.clone());
        }
        if route.queue_datas.is_empty() || route.broker_datas.is_empty() {
            return None;
        }
        if self.config.support_acting_master {
            self.rekey_acting_masters(&mut route);
        }
        if self.config.order_message_enable {
            route.order_topic_conf = self.order_topic_conf.get(topic).cloned();
        }
        Some(route)
    }

    fn rekey_acting_masters(&self, route: &mut TopicRouteData) {
        for group in &mut route.broker_datas {
            if group.broker_addrs.is_empty()
                || group.master_addr().is_some()
                || !group.enable_acting_master
            {
                continue;
            }
            let read_only = route
                .queue_datas
                .iter()
                .find(|qd| qd.broker_name == group.broker_name)
                .is_some_and(|qd| !qd.perm.is_writeable());
            if read_only && let Some((_, addr)) = group.broker_addrs.pop_first() {
                group.broker_addrs.insert(MASTER_ID, addr);
            }
        }
    }

    /// GET_BROKER_CLUSTER_INFO.
    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.broker_addr_table.clone(),
            cluster_addr_table: self.cluster_addr_table.clone(),
        }
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER: every topic with queue data, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.topic_queue_table.keys().cloned().collect()
    }

    /// The liveness table (for traces and invariants).
    pub fn live_brokers(&self) -> &BTreeMap<BrokerAddrInfo, BrokerLiveInfo> {
        &self.broker_live_table
    }

    /// Whether the process at `(cluster, addr)` is registered and not yet removed.
    pub fn is_live(&self, cluster: &str, broker_addr: &str) -> bool {
        self.broker_live_table.contains_key(&BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        })
    }

    /// WIPE_WRITE_PERM_OF_BROKER: clear the write bit of every topic on `broker_name`. Returns how
    /// many topics changed.
    pub fn wipe_write_perm(&mut self, broker_name: &str) -> usize {
        let mut n = 0;
        for by_broker in self.topic_queue_table.values_mut() {
            if let Some(qd) = by_broker.get_mut(broker_name) {
                qd.perm = qd.perm.without_write();
                n += 1;
            }
        }
        n
    }

    /// ADD_WRITE_PERM_OF_BROKER: set the write bit of every topic on `broker_name` again.
    /// Returns how many topics changed.
    pub fn add_write_perm(&mut self, broker_name: &str) -> usize {
        let mut n = 0;
        for by_broker in self.topic_queue_table.values_mut() {
            if let Some(qd) = by_broker.get_mut(broker_name) {
                qd.perm = Perm(qd.perm.0 | Perm::WRITE);
                n += 1;
            }
        }
        n
    }

    /// DELETE_TOPIC_IN_NAMESRV. Returns whether the topic existed.
    pub fn delete_topic(&mut self, topic: &str) -> bool {
        self.topic_queue_table.remove(topic).is_some()
    }

    /// PUT_KV_CONFIG in namespace `ORDER_TOPIC_CONFIG`: `conf` is `brokerName:queueNums;...`.
    pub fn set_order_topic_conf(&mut self, topic: &str, conf: &str) {
        self.order_topic_conf
            .insert(topic.to_owned(), conf.to_owned());
    }

    /// The `ORDER_TOPIC_CONFIG` namespace (the body of a REGISTER_BROKER response).
    pub fn order_topic_confs(&self) -> &BTreeMap<String, String> {
        &self.order_topic_conf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(name: &str, addr: &str) -> BrokerRegistration {
        BrokerRegistration::new("C", name, MASTER_ID, addr)
            .with_topics([TopicConfig::new("T", 4), TopicConfig::new("U", 2)])
    }

    fn slave(name: &str, addr: &str) -> BrokerRegistration {
        BrokerRegistration::new("C", name, 1, addr)
    }

    #[test]
    fn master_registration_creates_routes() {
        let mut t = RouteTable::default();
        assert_eq!(
            t.register(&master("a", "m:1"), 0),
            Ok(RegisterResult::default())
        );
        let r = t.route("T").unwrap();
        assert_eq!(r.queue_datas.len(), 1);
        assert_eq!(r.queue_datas[0].write_queue_nums, 4);
        assert_eq!(r.broker_datas[0].master_addr(), Some("m:1"));
        assert_eq!(t.topics(), ["T", "U"]);
        assert!(t.route("nope").is_none());
        let ci = t.cluster_info();
        assert_eq!(
            ci.cluster_addr_table["C"],
            BTreeSet::from(["a".to_string()])
        );
    }

    #[test]
    fn slave_learns_its_master_and_does_not_change_topics() {
        let mut t = RouteTable::default();
        let mut m = master("a", "m:1");
        m.ha_server_addr = "m:2".into();
        t.register(&m, 0).unwrap();
        let s = slave("a", "s:1")
            .with_topics([TopicConfig::new("ignored", 8), TopicConfig::new("x", 1)]);
        let res = t.register(&s, 0).unwrap();
        assert_eq!(res.master_addr.as_deref(), Some("m:1"));
        assert_eq!(res.ha_server_addr.as_deref(), Some("m:2"));
        assert!(t.route("ignored").is_none());
        assert_eq!(t.route("T").unwrap().broker_datas[0].broker_addrs.len(), 2);
    }

    #[test]
    fn master_expiry_keeps_queues_while_slave_lives() {
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1"), 0).unwrap();
        t.register(&slave("a", "s:1"), 0).unwrap();
        // The slave keeps heartbeating; the master goes silent at 0.
        t.heartbeat("C", "s:1", 100_000);
        assert!(
            t.scan_expired(120_000).is_empty(),
            "expiry is strict: last + 120 s < now"
        );
        let removed = t.scan_expired(120_001);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].broker_id, Some(MASTER_ID));
        let r = t.route("T").unwrap();
        assert_eq!(r.broker_datas[0].master_addr(), None);
        assert_eq!(
            r.broker_datas[0].broker_addrs.get(&1).map(String::as_str),
            Some("s:1")
        );
        assert!(
            r.queue_datas[0].perm.is_writeable(),
            "4.x/5.x default keeps the perm"
        );
        // Then the slave goes too: the group and its topics disappear.
        t.scan_expired(220_001);
        assert!(t.route("T").is_none());
        assert!(t.topics().is_empty());
        assert!(t.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn acting_master_clears_write_and_rekeys_the_slave() {
        let mut t = RouteTable::new(NamesrvConfig {
            support_acting_master: true,
            ..Default::default()
        });
        let mut m = master("a", "m:1");
        m.enable_acting_master = Some(true);
        let mut s =
            slave("a", "s:1").with_topics([TopicConfig::new("T", 4), TopicConfig::new("U", 2)]);
        s.enable_acting_master = Some(true);
        t.register(&m, 0).unwrap();
        t.register(&s, 0).unwrap();
        t.unregister("C", "m:1", "a");
        let r = t.route("T").unwrap();
        assert!(!r.queue_datas[0].perm.is_writeable());
        assert_eq!(r.broker_datas[0].master_addr(), Some("s:1"));
    }

    #[test]
    fn single_topic_registration_before_full_is_refused() {
        let mut t = RouteTable::default();
        let reg =
            BrokerRegistration::new("C", "a", 0, "m:1").with_topics([TopicConfig::new("T", 1)]);
        assert!(matches!(
            t.register(&reg, 0),
            Err(RegisterError::NotYetRegistered { .. })
        ));
        assert!(t.route("T").is_none());
    }

    #[test]
    fn older_state_version_is_rejected() {
        let mut t = RouteTable::default();
        let mut a = master("a", "m:1");
        a.data_version.state_version = 5;
        t.register(&a, 0).unwrap();
        let mut b = master("a", "m:2");
        b.data_version.state_version = 4;
        assert!(matches!(
            t.register(&b, 0),
            Err(RegisterError::StaleStateVersion { .. })
        ));
        assert!(!t.is_live("C", "m:2"));
        assert_eq!(
            t.route("T").unwrap().broker_datas[0].master_addr(),
            Some("m:1")
        );
    }

    #[test]
    fn slave_promoted_at_same_address_replaces_its_old_id() {
        let mut t = RouteTable::default();
        t.register(&slave("a", "x:1"), 0).unwrap();
        t.register(&master("a", "x:1"), 1).unwrap();
        let addrs = &t.route("T").unwrap().broker_datas[0].broker_addrs;
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs.get(&0).map(String::as_str), Some("x:1"));
    }

    #[test]
    fn version_change_updates_queue_data_and_missing_topics_stay() {
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1"), 0).unwrap();
        let mut again = BrokerRegistration::new("C", "a", 0, "m:1")
            .with_topics([TopicConfig::new("T", 8), TopicConfig::new("V", 1)]);
        again.data_version.counter = 1;
        t.register(&again, 10).unwrap();
        assert_eq!(t.route("T").unwrap().queue_datas[0].write_queue_nums, 8);
        assert!(
            t.route("U").is_some(),
            "topics never leave just because they vanish"
        );
    }

    #[test]
    fn delete_topic_with_registration_when_configured() {
        let mut t = RouteTable::new(NamesrvConfig {
            delete_topic_with_broker_registration: true,
            ..Default::default()
        });
        t.register(&master("a", "m:1"), 0).unwrap();
        let mut again = BrokerRegistration::new("C", "a", 0, "m:1")
            .with_topics([TopicConfig::new("T", 4), TopicConfig::new("V", 1)]);
        again.data_version.counter = 1;
        t.register(&again, 10).unwrap();
        assert!(t.route("U").is_none());
    }

    #[test]
    fn channel_close_removes_at_once_and_query_version_refreshes() {
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1"), 0).unwrap();
        assert!(!t.query_data_version("C", "m:1", &DataVersion::default(), 100_000));
        assert!(
            t.scan_expired(200_000).is_empty(),
            "query refreshed liveness at 100 s"
        );
        assert_eq!(t.next_expiry(), Some(220_001));
        let r = t.channel_closed("C", "m:1");
        assert_eq!(r.broker_name.as_deref(), Some("a"));
        assert!(t.route("T").is_none());
        assert!(!t.heartbeat("C", "m:1", 0));
    }

    #[test]
    fn per_broker_timeout_overrides_default() {
        let mut t = RouteTable::default();
        let mut m = master("a", "m:1");
        m.heartbeat_timeout = Some(10_000);
        t.register(&m, 0).unwrap();
        assert_eq!(t.scan_expired(10_001).len(), 1);
    }

    #[test]
    fn order_topic_conf_only_when_enabled() {
        let mut t = RouteTable::new(NamesrvConfig {
            order_message_enable: true,
            ..Default::default()
        });
        t.register(&master("a", "m:1"), 0).unwrap();
        t.set_order_topic_conf("T", "a:4");
        assert_eq!(
            t.route("T").unwrap().order_topic_conf.as_deref(),
            Some("a:4")
        );
        let mut off = RouteTable::default();
        off.register(&master("a", "m:1"), 0).unwrap();
        off.set_order_topic_conf("T", "a:4");
        assert_eq!(off.route("T").unwrap().order_topic_conf, None);
    }

    #[test]
    fn wipe_write_perm_and_delete_topic() {
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1"), 0).unwrap();
        assert_eq!(t.wipe_write_perm("a"), 2);
        assert!(!t.route("T").unwrap().queue_datas[0].perm.is_writeable());
        assert_eq!(t.add_write_perm("a"), 2);
        assert_eq!(t.route("T").unwrap().queue_datas[0].perm, Perm::READ_WRITE);
        assert_eq!(t.add_write_perm("nobody"), 0);
        assert!(t.delete_topic("T"));
        assert!(!t.delete_topic("T"));
    }

    #[test]
    fn filter_servers_are_routed_when_non_empty() {
        let mut t = RouteTable::default();
        let mut m = master("a", "m:1");
        m.filter_servers = vec!["f:1".into()];
        t.register(&m, 0).unwrap();
        assert_eq!(t.route("T").unwrap().filter_server_table["m:1"], ["f:1"]);
        m.filter_servers.clear();
        t.register(&m, 1).unwrap();
        assert!(t.route("T").unwrap().filter_server_table.is_empty());
    }
}
