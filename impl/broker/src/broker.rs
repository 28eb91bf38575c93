//! The broker's state: configuration, store, topics, offsets, groups, locks, waiting pulls.
//! The requests are handled in [`crate::handler`], one file per request family.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sextant_model::Millis;
use sextant_model::broker::admit::{self, SendTopic};
use sextant_model::broker::tables::SubscriptionGroup;
use sextant_model::broker::{
    self as decide, AUTO_CREATE_TOPIC, ConsumerGroups, DelayLevels, LockTable, SCHEDULE_TOPIC,
};
use sextant_model::namesrv::TopicConfig;
use sextant_model::route::Perm;
use sextant_model::store::BrokerRole;
use sextant_remoting::code::response;
use sextant_remoting::transport::Peer;
use sextant_store::MessageStore;
use sextant_store::config::ConsumerOffsets;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerConfig, Settings};
use crate::groups::GroupFile;
use crate::handler::Clients;
pub(crate) use crate::put::NewMessage;
pub(crate) use crate::reply::{Answer, Reply, header, lock, ok, queue_id, reply};
use crate::stats::Stats;
use crate::topics::Topics;

// The slave's copy of its master's tables. Declared here rather than in lib.rs (whose owner adds
// the periodic job); `crate::broker::slave_sync`.
#[path = "slave_sync.rs"]
pub(crate) mod slave_sync;

/// The master of this broker's group as the NameServer last answered a registration
/// (`RegisterBrokerResponseHeader`; RocketMQ's `SlaveSynchronize.masterAddr` and
/// `updateHaMasterAddress`). Only a slave is told one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MasterInfo {
    /// The master's remoting address (`masterAddr`, `ip:port`).
    pub(crate) addr: String,
    /// The master's HA address (`haServerAddr`), if the NameServer gave one.
    pub(crate) ha_addr: Option<String>,
}

/// The total physical memory in bytes (`MemTotal` of `/proc/meminfo`), read once; `u64::MAX`
/// when it cannot be read, so that no pull is ever judged too far behind for memory.
fn total_physical_memory() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                kib.checked_mul(1024)
            })
            .unwrap_or(u64::MAX)
    })
}

/// Wall-clock milliseconds (store and born timestamps).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How many entries each table keyed by what clients send holds: what a flood of requests can
/// grow, for monitoring and for the tests that flood them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    /// Topics (system, retry and dead-letter included).
    pub topics: usize,
    /// Subscription groups.
    pub subscription_groups: usize,
    /// Consumer offsets (one per group and queue).
    pub offsets: usize,
    /// Queue locks (expired ones not yet pruned included).
    pub locks: usize,
    /// Consumer groups with a member.
    pub live_groups: usize,
    /// Consumer channels (a connection in a group).
    pub channels: usize,
    /// Client connections known by their heartbeats.
    pub peers: usize,
    /// Queues a held pull waits on.
    pub arrivals: usize,
}

/// The broker: configuration, store, topics, offsets, groups, locks and waiting pulls.
pub struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) settings: Settings,
    /// The address the broker advertises (and stores as the messages' store host).
    pub(crate) addr: SocketAddr,
    pub(crate) store: MessageStore,
    pub(crate) topics: Mutex<Topics>,
    pub(crate) offsets: Mutex<ConsumerOffsets>,
    pub(crate) offsets_dirty: AtomicBool,
    /// A deliberately broken broker, for the power-loss test to catch: offsets are written
    /// without flushing the store first.
    pub(crate) persist_unflushed: AtomicBool,
    /// Test-only breakage: SYNC_FLUSH puts acknowledged before their flush.
    pub(crate) ack_before_flush: AtomicBool,
    pub(crate) offsets_path: std::path::PathBuf,
    pub(crate) groups: Mutex<ConsumerGroups>,
    /// The subscription group table (every group the broker knows), and its file.
    pub(crate) subscriptions: Mutex<GroupFile>,
    pub(crate) locks: Mutex<LockTable>,
    pub(crate) peers: Mutex<HashMap<SocketAddr, Peer>>,
    /// What the clients' heartbeats say beyond group membership (admin answers).
    pub(crate) clients: Mutex<Clients>,
    /// Per topic and queue, the queue's end, for held pulls to wait on.
    pub(crate) arrivals: Mutex<HashMap<String, HashMap<u32, watch::Sender<u64>>>>,
    /// Message and pull counters, sampled every second.
    pub(crate) stats: Stats,
    pub(crate) started: Instant,
    /// Woken when the topic table changed: register with the NameServers now.
    pub(crate) register_now: Notify,
    pub(crate) random: AtomicU32,
    /// Cancelled when the broker shuts down: held pulls answer at once.
    pub(crate) shutdown: CancellationToken,
    /// Replication: where the HA port listens, what the slaves acknowledged.
    pub(crate) ha: crate::ha::HaState,
    /// The master of this broker's group, from the last registration a NameServer accepted
    /// (`None`: no master known — a master broker, or a slave whose master is not registered).
    /// `master.subscribe()` follows its changes.
    pub(crate) master: watch::Sender<Option<MasterInfo>>,
    /// The physical memory `accessMessageInMemoryMaxRatio` is a share of (bytes; settable for
    /// tests).
    pub(crate) physical_memory: AtomicU64,
    /// Where events are recorded (set once, by [`crate::start_traced`]; off when unset).
    pub(crate) tracer: std::sync::OnceLock<sextant_trace::Tracer>,
}

impl Broker {
    /// Record events to `tracer` from now on (the first call wins).
    pub fn set_tracer(&self, tracer: sextant_trace::Tracer) {
        let _ = self.tracer.set(tracer);
    }

    /// Record the event `f` builds, if tracing is on.
    pub(crate) fn trace(&self, f: impl FnOnce() -> sextant_trace::Event) {
        if let Some(t) = self.tracer.get() {
            t.emit(f);
        }
    }

    pub(crate) fn new(
        config: BrokerConfig,
        settings: Settings,
        addr: SocketAddr,
        store: MessageStore,
    ) -> Result<Broker, crate::Error> {
        let config_dir = config.store_path_root_dir.join("config");
        // Every file the broker keeps goes through the store's file system.
        let fs = Arc::clone(&store.config().fs);
        let mut topics = Topics::load_in(Arc::clone(&fs), config_dir.join("topics.json"))?;
        let template = TopicConfig {
            write_queue_nums: config.default_topic_queue_nums,
            read_queue_nums: config.default_topic_queue_nums,
            ..decide::auto_create_template(config.auto_create_topic_enable)
        };
        if topics.get(AUTO_CREATE_TOPIC) != Some(&template) {
            topics.put(template, wall_ms())?;
        }
        // The system topics a RocketMQ broker creates (`TopicConfigManager`); a NameServer also
        // refuses a first registration that holds a single topic.
        let system = [
            ("SELF_TEST_TOPIC", 1),
            ("OFFSET_MOVED_EVENT", 1),
            (SCHEDULE_TOPIC, settings.delay_levels.max_level() as u32),
            (config.broker_cluster_name.as_str(), 16),
            (config.broker_name.as_str(), 1),
        ];
        for (name, queues) in system {
            if decide::invalid_topic(name).is_none() && topics.get(name).is_none() {
                topics.put(TopicConfig::new(name, queues), wall_ms())?;
            }
        }
        let offsets_path = config_dir.join("consumerOffset.json");
        let offsets = sextant_store::config::load_json_in(&*fs, &offsets_path)?.unwrap_or_default();
        let subscriptions = GroupFile::load_in(
            Arc::clone(&fs),
            config_dir.join("subscriptionGroup.json"),
            config.max_subscription_group_count,
            config.auto_create_subscription_group,
        )?;
        let broken_ack = config.broken_ack_before_flush;
        Ok(Broker {
            subscriptions: Mutex::new(subscriptions),
            groups: Mutex::new(ConsumerGroups::new(config.channel_expired_timeout)),
            locks: Mutex::new(LockTable::new(config.lock_max_live_time)),
            config,
            settings,
            addr,
            store,
            topics: Mutex::new(topics),
            offsets: Mutex::new(offsets),
            offsets_dirty: AtomicBool::new(false),
            persist_unflushed: AtomicBool::new(false),
            ack_before_flush: AtomicBool::new(broken_ack),
            offsets_path,
            peers: Mutex::default(),
            clients: Mutex::default(),
            arrivals: Mutex::default(),
            stats: Stats::new(wall_ms()),
            started: Instant::now(),
            register_now: Notify::new(),
            random: AtomicU32::new(0x9E37_79B9),
            shutdown: CancellationToken::new(),
            master: watch::Sender::new(None),
            ha: crate::ha::HaState::default(),
            physical_memory: AtomicU64::new(total_physical_memory()),
            tracer: std::sync::OnceLock::new(),
        })
    }

    /// The master of this broker's group as the NameServers last said.
    pub(crate) fn master_info(&self) -> Option<MasterInfo> {
        self.master.borrow().clone()
    }

    /// Record what a NameServer answered about the master (logged when it changes).
    pub(crate) fn set_master_info(&self, info: Option<MasterInfo>) {
        self.master.send_if_modified(|now| {
            if *now == info {
                return false;
            }
            tracing::info!(from = ?now, to = ?info, "master of the broker group changed");
            *now = info;
            true
        });
    }

    /// Where the delay-level cursors are kept (`config/delayOffset.json`).
    pub(crate) fn delay_offset_path(&self) -> std::path::PathBuf {
        self.config
            .store_path_root_dir
            .join("config/delayOffset.json")
    }

    /// The remoting address of this broker's master, as the NameServers last said (a slave's).
    pub fn master_addr(&self) -> Option<String> {
        self.master.borrow().as_ref().map(|m| m.addr.clone())
    }

    /// Set the physical memory size (bytes) that `accessMessageInMemoryMaxRatio` is a share of
    /// when a pull judges whether its consumer fell too far behind (read from `/proc/meminfo` at
    /// start): tests make a consumer "far behind" with a few KB.
    pub fn set_physical_memory(&self, bytes: u64) {
        self.physical_memory.store(bytes, Ordering::Relaxed);
    }

    /// Monotonic milliseconds since start (the model's clock for locks and channels).
    pub(crate) fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    /// The broker's address as it advertises it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The message store.
    pub fn store(&self) -> &MessageStore {
        &self.store
    }

    /// The config of `topic`.
    pub fn topic(&self, topic: &str) -> Option<TopicConfig> {
        lock(&self.topics).get(topic).cloned()
    }

    /// The committed offset of `group` on a queue.
    pub fn committed_offset(&self, topic: &str, group: &str, queue_id: u32) -> Option<u64> {
        lock(&self.offsets).get(topic, group, queue_id)
    }

    /// Write the consumer offsets and the subscription groups if they changed. The store is
    /// flushed first: every offset written was committed for messages that are on disk, so
    /// after a power loss no offset points past what survived.
    pub fn persist_offsets(&self) -> Result<(), crate::Error> {
        let offsets_changed = self.offsets_dirty.swap(false, Ordering::AcqRel);
        let snapshot = offsets_changed.then(|| lock(&self.offsets).clone());
        if offsets_changed
            && !self.persist_unflushed.load(Ordering::Relaxed)
            && let Err(e) = self.store.flush()
        {
            self.offsets_dirty
                .fetch_or(offsets_changed, Ordering::AcqRel);
            return Err(e.into());
        }
        if let Some(snapshot) = snapshot
            && let Err(e) = sextant_store::config::save_json_in(
                &*self.store.config().fs,
                &self.offsets_path,
                &snapshot,
            )
        {
            // Not written: try again at the next period.
            self.offsets_dirty.store(true, Ordering::Release);
            return Err(e.into());
        }
        lock(&self.subscriptions).save()
    }

    /// The sizes of the tables clients can grow.
    pub fn table_sizes(&self) -> TableSizes {
        let (live_groups, channels) = lock(&self.groups).len();
        TableSizes {
            topics: lock(&self.topics).all().len(),
            subscription_groups: lock(&self.subscriptions).table.len(),
            offsets: lock(&self.offsets)
                .offset_table
                .values()
                .map(|q| q.len())
                .sum(),
            locks: lock(&self.locks).len(),
            live_groups,
            channels,
            peers: lock(&self.peers).len(),
            arrivals: lock(&self.arrivals).values().map(|q| q.len()).sum(),
        }
    }

    /// Whether `group` is in the subscription group table.
    pub(crate) fn group_known(&self, group: &str) -> bool {
        lock(&self.subscriptions).table.contains(group)
    }

    /// `group`'s subscription config, created if the table allows it
    /// (`findSubscriptionGroupConfig`).
    pub(crate) fn ensure_group(&self, group: &str) -> Result<SubscriptionGroup, Reply> {
        let mut file = lock(&self.subscriptions);
        let (config, created) = file.table.find_or_create(group)?;
        let config = config.clone();
        if created {
            tracing::info!(group, "subscription group created");
            file.changed(wall_ms());
        }
        Ok(config)
    }

    pub(crate) fn writeable(&self) -> bool {
        self.settings.role != BrokerRole::Slave
            && Perm(self.config.broker_permission).is_writeable()
    }

    pub(crate) fn next_random(&self) -> u32 {
        // A xorshift step: which queue a send with queueId < 0 lands on needs no quality.
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.random.store(x, Ordering::Relaxed);
        x
    }

    /// Create or change `config` and register it with the NameServers soon.
    pub(crate) fn create_topic(&self, config: TopicConfig) -> Result<(), Reply> {
        tracing::info!(topic = %config.topic_name, queues = config.write_queue_nums, "topic created");
        lock(&self.topics)
            .put(config, wall_ms())
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        self.register_now.notify_one();
        Ok(())
    }

    /// The config of `topic` for a send, created first as `admit::send_topic` decides.
    pub(crate) fn topic_for_send(
        &self,
        topic: &str,
        requested_queues: i32,
    ) -> Result<TopicConfig, Reply> {
        let group_known = admit::group_of(topic).is_some_and(|g| self.group_known(g));
        let mut topics = lock(&self.topics);
        let decided = admit::send_topic(
            topic,
            &admit::TopicLookup {
                existing: topics.get(topic),
                template: topics.get(AUTO_CREATE_TOPIC),
                group_known,
                topic_count: topics.all().len(),
                max_topics: self.config.max_topic_count,
            },
            requested_queues,
        )?;
        match decided {
            SendTopic::Existing(config) => Ok(config),
            SendTopic::Create(config) => {
                tracing::info!(
                    topic,
                    queues = config.write_queue_nums,
                    "topic created by a send"
                );
                topics
                    .put(config.clone(), wall_ms())
                    .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
                self.register_now.notify_one();
                Ok(config)
            }
        }
    }

    /// The delay levels.
    pub fn delay_levels(&self) -> &DelayLevels {
        &self.settings.delay_levels
    }
}
