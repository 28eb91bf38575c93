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
//!
//! Decisions Sextant makes where RocketMQ leaves a gap:
//! - **Which connection owns a broker.** Each registration names the connection it came over
//!   ([`BrokerRegistration::channel`]); the live record keeps the last one
//!   ([`BrokerLiveInfo::channel`]). [`RouteTable::connection_closed`] removes exactly the brokers
//!   whose *owning* connection closed, as RocketMQ's `onChannelDestroy(Channel)` looks the broker up
//!   by channel in `brokerLiveTable` — so a broker that re-registered over a new connection
//!   survives its old connection's close. (RocketMQ stops at the first match; every match goes
//!   here, for a process that registers several brokers over one connection.)
//! - **Split registrations** (the broker's `enableSplitRegistration`, at most
//!   `splitRegistrationSize` topics per request). Every part of one cycle carries the same data
//!   version and is *merged*: no part removes the topics of another. A part marked with its place in
//!   the cycle ([`RegistrationPart`]) is applied as the cycle's data version says — a topic changed
//!   in the cycle is updated whichever part carries it, which RocketMQ misses for every part after
//!   the first — and with `deleteTopicWithBrokerRegistration` the topics of the broker missing from
//!   the *whole* cycle leave when its last part arrives, in order and complete. An unmarked
//!   registration is a whole cycle by itself (RocketMQ: never combine the two settings).
//!   [`split_registration`] is the broker's side: where a cycle is cut.
//! - **The body checksum** ([`check_body_crc`]): RocketMQ's `bodyCrc32` rule as a pure function.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

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
    /// The connection the registration came over; `None` where connections are not modelled.
    pub channel: Option<ChannelId>,
    /// Its place in a split registration cycle; `None` for a whole registration.
    pub part: Option<RegistrationPart>,
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
            channel: None,
            part: None,
        }
    }

    /// The same registration, as sent over `channel`.
    pub fn over(mut self, channel: ChannelId) -> Self {
        self.channel = Some(channel);
        self
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
    /// The data version whose topics were last applied in full — by a whole registration or a
    /// complete split cycle — if any: what decides whether the next registration's topics are.
    pub applied_version: Option<DataVersion>,
    /// Its HA address.
    pub ha_server_addr: String,
    /// The connection that owns it: the one its last registration came over.
    pub channel: Option<ChannelId>,
    /// The split registration cycle in progress, if its last registration was a part of one.
    pub split: Option<SplitCycle>,
}

/// A split registration cycle the NameServer has seen the first parts of, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SplitCycle {
    /// The data version every part of the cycle carries.
    pub data_version: DataVersion,
    /// Whether the cycle's version was new when it began: then every topic of every part is
    /// applied, not only the missing ones.
    pub apply_all: bool,
    /// How many parts the cycle has.
    pub count: u32,
    /// The index of the part expected next.
    pub next: u32,
    /// The topics the parts so far carried.
    pub topics: BTreeSet<String>,
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
    /// The connection that owned it, if known (RocketMQ closes an expired broker's channel).
    pub channel: Option<ChannelId>,
}

/// One connection to the NameServer. The server numbers connections as it accepts them, so an
/// identity is never reused, unlike a peer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u64);

/// The extFields key with which Sextant's broker marks a part of a split registration, as
/// `index/count` (a Java NameServer ignores keys it does not know).
pub const REGISTRATION_PART_KEY: &str = "sextantRegisterPart";

/// Most parts one split registration cycle may claim (5.2 million topics at 800 a part).
pub const MAX_REGISTRATION_PARTS: u32 = 1 << 16;

/// RocketMQ's default `splitRegistrationSize`: at most 800 topics per split registration.
pub const DEFAULT_SPLIT_REGISTRATION_SIZE: usize = 800;

/// Where a registration sits in a split registration cycle: part `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistrationPart {
    index: u32,
    count: u32,
}

/// Why a registration part mark was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    /// Not `index/count` with two decimal numbers.
    #[error("registration part {0:?} is not index/count")]
    Malformed(String),
    /// `index` is not below `count`, or `count` is 0 or above [`MAX_REGISTRATION_PARTS`].
    #[error("registration part {index}/{count} is out of range")]
    OutOfRange {
        /// The claimed index.
        index: u32,
        /// The claimed count.
        count: u32,
    },
}

impl RegistrationPart {
    /// Part `index` of `count`, if `index < count <= MAX_REGISTRATION_PARTS`.
    pub fn new(index: u32, count: u32) -> Result<Self, PartError> {
        if index >= count || count > MAX_REGISTRATION_PARTS {
            return Err(PartError::OutOfRange { index, count });
        }
        Ok(RegistrationPart { index, count })
    }

    /// Parse the [`REGISTRATION_PART_KEY`] value `index/count`.
    pub fn parse(text: &str) -> Result<Self, PartError> {
        let malformed = || PartError::Malformed(text.chars().take(32).collect());
        let (i, n) = text.split_once('/').ok_or_else(malformed)?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(i) || !digits(n) {
            return Err(malformed());
        }
        let i: u32 = i.parse().map_err(|_| malformed())?;
        let n: u32 = n.parse().map_err(|_| malformed())?;
        Self::new(i, n)
    }

    /// The zero-based index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many parts the cycle has.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The value of [`REGISTRATION_PART_KEY`].
    pub fn to_ext_value(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    fn is_last(&self) -> bool {
        self.index + 1 == self.count
    }
}

/// Where a broker cuts a registration cycle (`registerBrokerAll` with `enableSplitRegistration`):
/// the topics, in order, go into consecutive parts of at most `max_topics` topics (`None`: no
/// limit, RocketMQ's default) whose encoded body — `base` bytes with no topic, plus each topic's
/// `entry_sizes[i]`, plus one separator byte between two topics — stays within `max_bytes`.
/// A topic larger than `max_bytes` by itself gets a part of its own. There is always at least one
/// part, so a broker with no topics still registers.
pub fn split_registration(
    entry_sizes: &[usize],
    base: usize,
    max_topics: Option<usize>,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let max_topics = max_topics.unwrap_or(usize::MAX).max(1);
    let mut parts = Vec::new();
    let mut start = 0;
    let mut bytes = base;
    for (i, &size) in entry_sizes.iter().enumerate() {
        let n = i - start;
        let grown = bytes
            .saturating_add(size)
            .saturating_add(usize::from(n > 0));
        if n > 0 && (n >= max_topics || grown > max_bytes) {
            parts.push(start..i);
            start = i;
            bytes = base.saturating_add(size);
        } else {
            bytes = grown;
        }
    }
    parts.push(start..entry_sizes.len());
    parts
}

/// The registration body came with a `bodyCrc32` that does not match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("crc32 not match")]
pub struct BodyCrcMismatch {
    /// The header's `bodyCrc32`.
    pub claimed: i32,
    /// `CRC32(body) & 0x7FFFFFFF`.
    pub actual: i32,
}

/// RocketMQ's registration body check (`DefaultRequestProcessor.checksum`, `UtilAll.crc32`): a
/// `bodyCrc32` of 0 is not checked; any other value must equal `CRC32(body) & 0x7FFFFFFF`.
/// `crc32` computes the body's plain CRC-32 (IEEE) and is called only when there is a check to
/// make. A mismatch is answered SYSTEM_ERROR "crc32 not match", before the body is decoded.
pub fn check_body_crc(claimed: i32, crc32: impl FnOnce() -> u32) -> Result<(), BodyCrcMismatch> {
    if claimed == 0 {
        return Ok(());
    }
    let actual = (crc32() & 0x7FFF_FFFF) as i32;
    if actual == claimed {
        Ok(())
    } else {
        Err(BodyCrcMismatch { claimed, actual })
    }
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

        // RocketMQ's guard against a single-topic registration (`registerSingleTopicAll`) being
        // a broker's first; a marked part of a split cycle is a whole registration's share.
        let single_topic = reg.topic_configs.len() == 1 && reg.part.is_none_or(|p| p.count == 1);
        if !group.broker_addrs.contains_key(&reg.broker_id) && single_topic {
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
        // The version whose topics were last applied in full; a split cycle in progress (or
        // broken) has not been, so the next cycle is applied in full again.
        let (applied_before, cycle_before) = match self.broker_live_table.get_mut(&key) {
            Some(live) => (live.applied_version, live.split.take()),
            None => (None, None),
        };
        let version_changed = applied_before != Some(reg.data_version);
        let mut split = None;
        let mut applied_version = Some(reg.data_version);
        if is_master || is_prime_slave {
            // Which topics to apply, and (at the end of a whole cycle) which set the broker has:
            // `Some(None)` is this registration's own topics.
            let fresh = register_first || version_changed;
            let (apply_all, cycle_topics) = match reg.part {
                None => (fresh, Some(None)),
                Some(part) if part.count == 1 => (fresh, Some(None)),
                Some(part) if part.index == 0 => {
                    applied_version = applied_before;
                    split = Some(SplitCycle {
                        data_version: reg.data_version,
                        apply_all: fresh,
                        count: part.count,
                        next: 1,
                        topics: reg.topic_configs.keys().cloned().collect(),
                    });
                    (fresh, None)
                }
                Some(part) => match cycle_before {
                    Some(mut cycle)
                        if cycle.data_version == reg.data_version
                            && cycle.count == part.count
                            && cycle.next == part.index =>
                    {
                        let apply_all = cycle.apply_all || register_first;
                        cycle.topics.extend(reg.topic_configs.keys().cloned());
                        if part.is_last() {
                            (apply_all, Some(Some(cycle.topics)))
                        } else {
                            applied_version = applied_before;
                            cycle.next += 1;
                            split = Some(cycle);
                            (apply_all, None)
                        }
                    }
                    // A part lost, repeated or out of order, or a version changed mid-cycle:
                    // merge what came, delete nothing, and apply the next cycle in full.
                    _ => {
                        applied_version = applied_before;
                        (fresh, None)
                    }
                },
            };
            if self.config.delete_topic_with_broker_registration
                && let Some(whole) = cycle_topics
            {
                let has = |topic: &String| match &whole {
                    None => reg.topic_configs.contains_key(topic),
                    Some(seen) => seen.contains(topic),
                };
                self.topic_queue_table.retain(|topic, by_broker| {
                    if !has(topic) {
                        by_broker.remove(&reg.broker_name);
                    }
                    !by_broker.is_empty()
                });
            }
            for tc in reg.topic_configs.values() {
                let missing = self
                    .topic_queue_table
                    .get(&tc.topic_name)
                    .is_none_or(|m| !m.contains_key(&reg.broker_name));
                if apply_all || missing {
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
                applied_version,
                ha_server_addr: reg.ha_server_addr.clone(),
                channel: reg.channel,
                split,
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
        // Changed until a split cycle of this version is complete, so the broker sends it again.
        let changed = self
            .broker_live_table
            .get(&key)
            .is_none_or(|live| live.applied_version != Some(*version));
        self.heartbeat(cluster, broker_addr, now);
        changed
    }

    /// UNREGISTER_BROKER: forget the process at `broker_addr` in group `broker_name`.
    pub fn unregister(&mut self, cluster: &str, broker_addr: &str, broker_name: &str) -> Removed {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        };
        let channel = self.broker_live_table.remove(&key).and_then(|l| l.channel);
        self.filter_server_table.remove(&key);

        let mut removed = Removed {
            broker: key,
            broker_name: None,
            broker_id: None,
            channel,
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

    /// Forget the process at `(cluster, addr)` at once, whichever connection owns it
    /// (`onChannelDestroy(BrokerAddrInfo)`: the liveness scan, or a model where a process is its
    /// connection). A server whose connection closed calls [`RouteTable::connection_closed`].
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
                let channel = self.broker_live_table.remove(&key).and_then(|l| l.channel);
                self.filter_server_table.remove(&key);
                Removed {
                    broker: key,
                    broker_name: None,
                    broker_id: None,
                    channel,
                }
            }
        }
    }

    /// The connection `channel` closed (`onChannelDestroy(Channel)`): every broker process it owns
    /// — whose last registration came over it — is removed at once; a broker that registered
    /// again over another connection stays. Returns what was removed.
    pub fn connection_closed(&mut self, channel: ChannelId) -> Vec<Removed> {
        let owned: Vec<BrokerAddrInfo> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| live.channel == Some(channel))
            .map(|(k, _)| k.clone())
            .collect();
        owned
            .into_iter()
            .map(|k| self.channel_closed(&k.cluster, &k.addr))
            .collect()
    }

    /// The connection that owns the process at `(cluster, addr)`, if it is live and known.
    pub fn owner(&self, cluster: &str, broker_addr: &str) -> Option<ChannelId> {
        self.broker_live_table
            .get(&BrokerAddrInfo {
                cluster: cluster.to_owned(),
                addr: broker_addr.to_owned(),
            })
            .and_then(|l| l.channel)
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
    fn acting_master_strips_write_only_from_a_prime_slave() {
        let mut t = RouteTable::new(NamesrvConfig {
            support_acting_master: true,
            ..Default::default()
        });
        // A master with acting master on keeps its write permission.
        let mut m = master("a", "m:1");
        m.enable_acting_master = Some(true);
        t.register(&m, 0).unwrap();
        assert!(t.route("T").unwrap().queue_datas[0].perm.is_writeable());
        // A group with acting master off is never re-keyed, even read-only and masterless.
        let read_only = |name: &str| {
            let mut tc = TopicConfig::new(name, 1);
            tc.perm = Perm(Perm::READ);
            tc
        };
        let mut ro = BrokerRegistration::new("C", "b", MASTER_ID, "m:2")
            .with_topics([read_only("R"), read_only("S")]);
        ro.enable_acting_master = Some(false);
        t.register(&ro, 0).unwrap();
        let mut s = slave("b", "s:2");
        s.enable_acting_master = Some(false);
        t.register(&s, 0).unwrap();
        t.unregister("C", "m:2", "b");
        let r = t.route("R").unwrap();
        assert_eq!(r.broker_datas[0].master_addr(), None);
        assert_eq!(
            r.broker_datas[0].broker_addrs.get(&1).map(String::as_str),
            Some("s:2")
        );
    }

    #[test]
    fn a_lone_prime_slave_applies_its_topics_read_only_and_a_second_slave_does_not() {
        let mut t = RouteTable::default();
        let mut s =
            slave("a", "s:1").with_topics([TopicConfig::new("T", 4), TopicConfig::new("U", 2)]);
        s.enable_acting_master = Some(true);
        t.register(&s, 0).unwrap();
        let r = t.route("T").expect("the prime slave's topics are applied");
        assert!(!r.queue_datas[0].perm.is_writeable());
        let mut s2 = BrokerRegistration::new("C", "a", 2, "s:2")
            .with_topics([TopicConfig::new("V", 1), TopicConfig::new("W", 1)]);
        s2.enable_acting_master = Some(true);
        t.register(&s2, 0).unwrap();
        assert!(
            t.route("V").is_none(),
            "id 2 is not the smallest: not prime"
        );
    }

    #[test]
    fn an_empty_old_address_is_a_first_registration() {
        // RocketMQ: `registerFirst || StringUtils.isEmpty(oldAddr)`: the topics are applied in
        // full again even at the same data version.
        let mut t = RouteTable::default();
        t.register(&master("a", ""), 0).unwrap();
        let more = BrokerRegistration::new("C", "a", MASTER_ID, "")
            .with_topics([TopicConfig::new("T", 8), TopicConfig::new("U", 2)]);
        t.register(&more, 1).unwrap();
        assert_eq!(t.route("T").unwrap().queue_datas[0].write_queue_nums, 8);
        // At a real address the same version is not applied again (only missing topics are).
        let mut u = RouteTable::default();
        u.register(&master("a", "m:1"), 0).unwrap();
        let more = BrokerRegistration::new("C", "a", MASTER_ID, "m:1")
            .with_topics([TopicConfig::new("T", 8), TopicConfig::new("U", 2)]);
        u.register(&more, 1).unwrap();
        assert_eq!(u.route("T").unwrap().queue_datas[0].write_queue_nums, 4);
    }

    #[test]
    fn no_route_once_the_only_broker_is_gone() {
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1"), 0).unwrap();
        t.unregister("C", "m:1", "a");
        assert!(t.route("T").is_none());
    }

    #[test]
    fn a_single_topic_registration_of_a_known_broker_or_a_split_part_is_taken() {
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1"), 0).unwrap();
        let one =
            BrokerRegistration::new("C", "a", 0, "m:1").with_topics([TopicConfig::new("V", 1)]);
        t.register(&one, 1).unwrap();
        assert!(t.route("V").is_some());
        // A first registration of one topic marked as the only part is still a single topic.
        let mut fresh = RouteTable::default();
        let only = part(
            BrokerRegistration::new("C", "b", 0, "m:2").with_topics([TopicConfig::new("W", 1)]),
            0,
            1,
        );
        assert!(matches!(
            fresh.register(&only, 0),
            Err(RegisterError::NotYetRegistered { .. })
        ));
        // One part of two is a share of a whole registration.
        let first = part(
            BrokerRegistration::new("C", "b", 0, "m:2").with_topics([TopicConfig::new("W", 1)]),
            0,
            2,
        );
        fresh.register(&first, 0).unwrap();
        assert!(fresh.route("W").is_some());
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
        // Only an older one: RocketMQ refuses when `oldStateVersion > newStateVersion`.
        b.data_version.state_version = 5;
        t.register(&b, 0).unwrap();
        assert_eq!(
            t.route("T").unwrap().broker_datas[0].master_addr(),
            Some("m:2"),
            "an equal state version may move the address"
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
        // The table keeps the conf either way (the KV config namespace ORDER_TOPIC_CONFIG).
        assert_eq!(
            off.order_topic_confs().iter().collect::<Vec<_>>(),
            [(&"T".to_owned(), &"a:4".to_owned())]
        );
    }

    #[test]
    fn wipe_write_perm_and_delete_topic() {
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1"), 0).unwrap();
        assert_eq!(t.wipe_write_perm("a"), 2);
        assert!(!t.route("T").unwrap().queue_datas[0].perm.is_writeable());
        assert_eq!(t.add_write_perm("a"), 2);
        assert_eq!(t.route("T").unwrap().queue_datas[0].perm, Perm::READ_WRITE);
        t.add_write_perm("a");
        assert_eq!(
            t.route("T").unwrap().queue_datas[0].perm,
            Perm::READ_WRITE,
            "setting the write bit twice keeps it set"
        );
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

    #[test]
    fn only_the_owning_connection_removes_a_broker() {
        let (a, b) = (ChannelId(1), ChannelId(2));
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1").over(a), 0).unwrap();
        assert_eq!(t.owner("C", "m:1"), Some(a));
        t.register(&master("a", "m:1").over(b), 1).unwrap();
        assert_eq!(t.owner("C", "m:1"), Some(b));
        assert!(t.connection_closed(a).is_empty(), "A no longer owns it");
        assert!(t.route("T").is_some());
        let removed = t.connection_closed(b);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].channel, Some(b));
        assert!(t.route("T").is_none());
        // The old address-keyed close ignores ownership: what `connection_closed` must not do.
        let mut naive = RouteTable::default();
        naive.register(&master("a", "m:1").over(a), 0).unwrap();
        naive.register(&master("a", "m:1").over(b), 1).unwrap();
        naive.channel_closed("C", "m:1");
        assert!(
            naive.route("T").is_none(),
            "closing by address drops B's broker"
        );
    }

    #[test]
    fn one_connection_may_own_several_brokers() {
        let c = ChannelId(7);
        let mut t = RouteTable::default();
        t.register(&master("a", "m:1").over(c), 0).unwrap();
        t.register(&master("b", "m:2").over(c), 0).unwrap();
        t.register(&slave("a", "s:1"), 0).unwrap();
        assert_eq!(t.connection_closed(c).len(), 2);
        assert!(t.is_live("C", "s:1"));
        assert!(!t.is_live("C", "m:1") && !t.is_live("C", "m:2"));
    }

    fn part(reg: BrokerRegistration, index: u32, count: u32) -> BrokerRegistration {
        BrokerRegistration {
            part: Some(RegistrationPart::new(index, count).unwrap()),
            ..reg
        }
    }

    fn topics(version: i64, names: &[(&str, u32)]) -> BrokerRegistration {
        let mut r = BrokerRegistration::new("C", "a", 0, "m:1")
            .with_topics(names.iter().map(|(n, q)| TopicConfig::new(n, *q)));
        r.data_version.counter = version;
        r
    }

    #[test]
    fn a_cycle_of_one_part_is_whole_and_deletes() {
        let mut t = RouteTable::new(NamesrvConfig {
            delete_topic_with_broker_registration: true,
            ..Default::default()
        });
        t.register(&topics(1, &[("A", 1), ("B", 1)]), 0).unwrap();
        t.register(&part(topics(2, &[("A", 1), ("C", 1)]), 0, 1), 0)
            .unwrap();
        assert!(t.route("B").is_none(), "a 0/1 part is the whole cycle");
        assert!(t.route("C").is_some());
        let p = RegistrationPart::parse("2/7").unwrap();
        assert_eq!((p.index(), p.count()), (2, 7));
    }

    #[test]
    fn split_parts_merge_and_a_whole_cycle_deletes() {
        let mut t = RouteTable::new(NamesrvConfig {
            delete_topic_with_broker_registration: true,
            ..Default::default()
        });
        t.register(&part(topics(1, &[("A", 1), ("B", 1)]), 0, 2), 0)
            .unwrap();
        t.register(&part(topics(1, &[("C", 1), ("D", 1)]), 1, 2), 0)
            .unwrap();
        assert_eq!(
            t.topics(),
            ["A", "B", "C", "D"],
            "part 2 keeps part 1's topics"
        );
        // B is deleted on the broker, D changes: version 2.
        t.register(&part(topics(2, &[("A", 1), ("C", 1)]), 0, 2), 1)
            .unwrap();
        assert_eq!(t.topics(), ["A", "B", "C", "D"], "nothing leaves mid-cycle");
        t.register(&part(topics(2, &[("D", 8)]), 1, 2), 1).unwrap();
        assert_eq!(
            t.topics(),
            ["A", "C", "D"],
            "B leaves at the end of the cycle"
        );
        assert_eq!(
            t.route("D").unwrap().queue_datas[0].write_queue_nums,
            8,
            "a change in a later part is applied"
        );
        // The same cycle treated as two whole registrations (RocketMQ with both settings) loses
        // the first part's topics: what the part marks prevent.
        let mut whole = RouteTable::new(t.config().clone());
        whole
            .register(&topics(1, &[("A", 1), ("B", 1)]), 0)
            .unwrap();
        whole
            .register(&topics(1, &[("C", 1), ("D", 1)]), 0)
            .unwrap();
        assert_eq!(whole.topics(), ["C", "D"]);
    }

    #[test]
    fn a_broken_cycle_merges_but_deletes_nothing() {
        let mut t = RouteTable::new(NamesrvConfig {
            delete_topic_with_broker_registration: true,
            ..Default::default()
        });
        t.register(&topics(1, &[("A", 1), ("B", 1), ("Z", 1)]), 0)
            .unwrap();
        // Part 1 of 3 is lost: parts 0 and 2 come.
        t.register(&part(topics(2, &[("A", 1)]), 0, 3), 1).unwrap();
        t.register(&part(topics(2, &[("C", 1), ("D", 1)]), 2, 3), 1)
            .unwrap();
        assert_eq!(t.topics(), ["A", "B", "C", "D", "Z"]);
        // A version change mid-cycle breaks it too.
        t.register(&part(topics(3, &[("A", 1)]), 0, 2), 2).unwrap();
        t.register(&part(topics(4, &[("C", 1), ("D", 1)]), 1, 2), 2)
            .unwrap();
        assert_eq!(t.topics(), ["A", "B", "C", "D", "Z"]);
        // A whole cycle in order deletes.
        t.register(&part(topics(4, &[("A", 1), ("B", 1)]), 0, 2), 3)
            .unwrap();
        t.register(&part(topics(4, &[("C", 1)]), 1, 2), 3).unwrap();
        assert_eq!(t.topics(), ["A", "B", "C"]);
    }

    #[test]
    fn unchanged_split_cycles_keep_wiped_permissions() {
        let mut t = RouteTable::default();
        let cycle = |t: &mut RouteTable, now| {
            t.register(&part(topics(1, &[("A", 1)]), 0, 2), now)
                .unwrap();
            t.register(&part(topics(1, &[("B", 1), ("C", 1)]), 1, 2), now)
                .unwrap();
        };
        cycle(&mut t, 0);
        assert_eq!(t.wipe_write_perm("a"), 3);
        cycle(&mut t, 1);
        assert!(
            !t.route("B").unwrap().queue_datas[0].perm.is_writeable(),
            "the same version does not re-apply topics"
        );
    }

    #[test]
    fn registration_part_marks_parse_strictly() {
        assert_eq!(
            RegistrationPart::parse("2/7").unwrap().to_ext_value(),
            "2/7"
        );
        for bad in [
            "",
            "/",
            "1",
            "1/",
            "/2",
            "-1/2",
            "1/2/3",
            "+1/2",
            " 1/2",
            "a/b",
            "99999999999/1",
        ] {
            assert!(
                matches!(RegistrationPart::parse(bad), Err(PartError::Malformed(_))),
                "{bad:?}"
            );
        }
        for (i, n) in [(2, 2), (0, 0), (0, MAX_REGISTRATION_PARTS + 1)] {
            assert_eq!(
                RegistrationPart::new(i, n),
                Err(PartError::OutOfRange { index: i, count: n })
            );
        }
    }

    #[test]
    fn split_points() {
        assert_eq!(split_registration(&[], 10, Some(2), 100), vec![0..0; 1]);
        assert_eq!(
            split_registration(&[1; 5], 10, Some(2), 100),
            [0..2, 2..4, 4..5]
        );
        assert_eq!(split_registration(&[1; 5], 10, None, 100), vec![0..5; 1]);
        // 10 + 30 + 1 + 30 = 71 fits 71; a third does not.
        assert_eq!(split_registration(&[30; 3], 10, None, 71), [0..2, 2..3]);
        // A first topic over the limit by itself: its own part, no empty one before it.
        assert_eq!(split_registration(&[100, 1], 10, None, 50), [0..1, 1..2]);
        assert_eq!(
            split_registration(&[30; 3], 10, None, 70),
            [0..1, 1..2, 2..3]
        );
        // Too big alone: a part of its own.
        assert_eq!(
            split_registration(&[5, 500, 5], 10, None, 100),
            [0..1, 1..2, 2..3]
        );
        assert_eq!(
            split_registration(&[1; 3], 0, Some(0), 100),
            [0..1, 1..2, 2..3]
        );
    }

    #[test]
    fn body_crc_rule() {
        assert_eq!(
            check_body_crc(0, || unreachable!("zero is not checked")),
            Ok(())
        );
        assert_eq!(
            check_body_crc(0x4BF4_3926, || 0xCBF4_3926),
            Ok(()),
            "the sign bit is masked"
        );
        assert_eq!(
            check_body_crc(0x4BF4_3926, || 0xCBF4_3927),
            Err(BodyCrcMismatch {
                claimed: 0x4BF4_3926,
                actual: 0x4BF4_3927
            })
        );
        assert_eq!(
            check_body_crc(-0x340B_C6DA, || 0xCBF4_3926)
                .unwrap_err()
                .to_string(),
            "crc32 not match",
            "an unmasked (negative) claim never matches, as in RocketMQ"
        );
    }
}
