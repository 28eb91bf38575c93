//! The broker's state: configuration, store, topics, offsets, groups, locks, waiting pulls.
//! The requests are handled in [`crate::handler`], one file per request family.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sextant_model::Millis;
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

use crate::config::{BrokerConfig, Settings};
use crate::handler::Clients;
pub(crate) use crate::put::NewMessage;
pub(crate) use crate::reply::{Answer, Reply, header, lock, ok, queue_id, reply};
use crate::stats::Stats;
use crate::topics::Topics;

/// Wall-clock milliseconds (store and born timestamps).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
    pub(crate) offsets_path: std::path::PathBuf,
    pub(crate) groups: Mutex<ConsumerGroups>,
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
}

impl Broker {
    pub(crate) fn new(
        config: BrokerConfig,
        settings: Settings,
        addr: SocketAddr,
        store: MessageStore,
    ) -> Result<Broker, crate::Error> {
        let config_dir = config.store_path_root_dir.join("config");
        let mut topics = Topics::load(config_dir.join("topics.json"))?;
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
        let offsets = sextant_store::config::load_json(&offsets_path)?.unwrap_or_default();
        Ok(Broker {
            groups: Mutex::new(ConsumerGroups::new(config.channel_expired_timeout)),
            locks: Mutex::new(LockTable::new(config.lock_max_live_time)),
            config,
            settings,
            addr,
            store,
            topics: Mutex::new(topics),
            offsets: Mutex::new(offsets),
            offsets_dirty: AtomicBool::new(false),
            offsets_path,
            peers: Mutex::default(),
            clients: Mutex::default(),
            arrivals: Mutex::default(),
            stats: Stats::new(wall_ms()),
            started: Instant::now(),
            register_now: Notify::new(),
            random: AtomicU32::new(0x9E37_79B9),
        })
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

    /// Write the consumer offsets if they changed.
    pub fn persist_offsets(&self) -> Result<(), crate::Error> {
        if self.offsets_dirty.swap(false, Ordering::AcqRel) {
            let snapshot = lock(&self.offsets).clone();
            if let Err(e) = sextant_store::config::save_json(&self.offsets_path, &snapshot) {
                // Not written: try again at the next period.
                self.offsets_dirty.store(true, Ordering::Release);
                return Err(e.into());
            }
        }
        Ok(())
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

    /// Create `config` and register it with the NameServers soon.
    pub(crate) fn create_topic(&self, config: TopicConfig) -> Result<(), Reply> {
        tracing::info!(topic = %config.topic_name, queues = config.write_queue_nums, "topic created");
        lock(&self.topics)
            .put(config, wall_ms())
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        self.register_now.notify_one();
        Ok(())
    }

    /// The config of `topic`, created from TBW102 if allowed and absent (send path).
    pub(crate) fn topic_for_send(
        &self,
        topic: &str,
        requested_queues: i32,
    ) -> Result<TopicConfig, Reply> {
        if let Some(t) = self.topic(topic) {
            return Ok(t);
        }
        if let Some(why) = decide::invalid_topic(topic) {
            return Err(reply(response::SYSTEM_ERROR, why));
        }
        let template = self.topic(AUTO_CREATE_TOPIC);
        let created =
            if topic.starts_with(decide::RETRY_PREFIX) || topic.starts_with(decide::DLQ_PREFIX) {
                Some(decide::group_topic(topic))
            } else {
                template.and_then(|t| decide::auto_create(topic, &t, requested_queues))
            };
        let Some(config) = created else {
            return Err(reply(
                response::TOPIC_NOT_EXIST,
                format!(
                    "topic[{topic}] not exist, apply first please! \
                     https://rocketmq.apache.org/docs/bestPractice/06FAQ"
                ),
            ));
        };
        self.create_topic(config.clone())?;
        Ok(config)
    }

    /// The delay levels.
    pub fn delay_levels(&self) -> &DelayLevels {
        &self.settings.delay_levels
    }
}
