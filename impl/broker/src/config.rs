//! The broker's configuration, with RocketMQ's key names (`BrokerConfig`, `MessageStoreConfig`)
//! and defaults, read from TOML.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use sextant_model::broker::{
    CHANNEL_EXPIRED_MS, DEFAULT_TOPIC_QUEUE_NUMS, DelayLevels, LOCK_MAX_LIVE_MS,
};
use sextant_model::store::Retention;
use sextant_model::store::{BrokerRole, FlushDiskType};
use sextant_store::{IndexConfig, StoreConfig};

use crate::Error;

/// RocketMQ's default broker port.
pub const DEFAULT_PORT: u16 = 10911;

/// A broker's configuration. Keys follow RocketMQ's names (camelCase in TOML); every one has
/// RocketMQ's default, except that everything listens on 127.0.0.1.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerConfig {
    /// `brokerClusterName`.
    pub broker_cluster_name: String,
    /// `brokerName`: the master/slave group.
    pub broker_name: String,
    /// `brokerId`: 0 = master.
    pub broker_id: i64,
    /// `brokerIP1`: the address to listen on and to advertise.
    #[serde(rename = "brokerIP1")]
    pub broker_ip1: IpAddr,
    /// `listenPort` (0: any free port).
    pub listen_port: u16,
    /// `namesrvAddr`: NameServers separated by `;`.
    pub namesrv_addr: String,
    /// `storePathRootDir`.
    pub store_path_root_dir: PathBuf,
    /// `flushDiskType`: `ASYNC_FLUSH` or `SYNC_FLUSH`.
    pub flush_disk_type: String,
    /// `brokerRole`: `ASYNC_MASTER`, `SYNC_MASTER` or `SLAVE`.
    pub broker_role: String,
    /// `autoCreateTopicEnable`: create a missing topic on its first send from TBW102.
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums`: queues of TBW102 (and so the most an auto-created topic gets).
    pub default_topic_queue_nums: u32,
    /// `brokerPermission`: 6 = read and write.
    pub broker_permission: u32,
    /// `registerNameServerPeriod` (ms).
    pub register_name_server_period: u64,
    /// `registerBrokerTimeoutMills` (ms).
    pub register_broker_timeout_mills: u64,
    /// `mappedFileSizeCommitLog` (bytes).
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue` (bytes; a multiple of 20).
    pub mapped_file_size_consume_queue: u64,
    /// `flushIntervalCommitLog` (ms, ASYNC_FLUSH).
    pub flush_interval_commit_log: u64,
    /// `flushIntervalConsumeQueue` (ms).
    pub flush_interval_consume_queue: u64,
    /// `syncFlushTimeout` (ms).
    pub sync_flush_timeout: u64,
    /// `flushConsumerOffsetInterval` (ms).
    pub flush_consumer_offset_interval: u64,
    /// `maxMessageSize` (bytes of body).
    pub max_message_size: usize,
    /// `messageDelayLevel`.
    pub message_delay_level: String,
    /// `longPollingEnable`: hold a pull that finds nothing until a message arrives.
    pub long_polling_enable: bool,
    /// `shortPollingTimeMills`: how long a pull is held without long polling (ms).
    pub short_polling_time_mills: u64,
    /// `channelExpiredTimeout`: drop a client silent for this long (ms).
    pub channel_expired_timeout: u64,
    /// `rocketmq.broker.rebalance.lockMaxLiveTime`: an orderly queue lock not renewed for this
    /// long is free (ms).
    pub lock_max_live_time: u64,
    /// `offsetCheckInSlave`: whether a slave corrects a consumer's bad offset.
    pub offset_check_in_slave: bool,
    /// `regionId`, answered in send responses as `MSG_REGION`.
    pub region_id: String,
    /// `traceOn`, answered in send responses as `TRACE_ON`.
    pub trace_on: bool,
    /// `consumerRunningInfoTimeoutMills`: how long GET_CONSUMER_RUNNING_INFO waits for the
    /// client it is forwarded to (ms). Sextant's key: RocketMQ's `Broker2Client` waits 10 s.
    pub consumer_running_info_timeout_mills: u64,
    /// `messageIndexEnable`: index messages by key and unique key for QUERY_MESSAGE.
    pub message_index_enable: bool,
    /// `maxHashSlotNum`: slots per index file.
    pub max_hash_slot_num: u32,
    /// `maxIndexNum`: entries per index file.
    pub max_index_num: u32,
    /// `maxMsgsNumBatch`: the most messages one QUERY_MESSAGE answers.
    pub max_msgs_num_batch: u32,
    /// `defaultQueryMaxNum`: what a query by unique key asks for, whatever its `maxNum`.
    pub default_query_max_num: u32,
    /// `autoCreateSubscriptionGroup`: a group is created when a heartbeat, a pull or a
    /// send-back names it (else an operator must create it).
    pub auto_create_subscription_group: bool,
    /// `maxTopicCount` (Sextant's key): the most topics the broker holds, system, retry and
    /// dead-letter topics included; creating more is refused with SYSTEM_ERROR.
    pub max_topic_count: usize,
    /// `maxSubscriptionGroupCount` (Sextant's key): the most subscription groups the broker
    /// keeps; a new group past it is refused with SUBSCRIPTION_GROUP_NOT_EXIST.
    pub max_subscription_group_count: usize,
    /// `enableSplitRegistration`: cut the registration into parts of `splitRegistrationSize`
    /// topics (it is always cut to stay under the frame limit).
    pub enable_split_registration: bool,
    /// `splitRegistrationSize`: topics per registration part.
    pub split_registration_size: usize,
    /// `fileReservedTime`: hours a CommitLog segment is kept after its newest message.
    pub file_reserved_time: u64,
    /// `deleteWhen`: the hours of the local day (as RocketMQ: `TZ`, else `/etc/localtime`) at
    /// which expired segments are deleted, e.g. "04" or "04;05".
    pub delete_when: String,
    /// `diskMaxUsedSpaceRatio`: percent of the disk above which expired segments are deleted
    /// at any hour.
    pub disk_max_used_space_ratio: u32,
    /// `diskSpaceCleanForciblyRatio`: percent above which unexpired segments go too, oldest
    /// first (with `cleanFileForciblyEnable`).
    pub disk_space_clean_forcibly_ratio: u32,
    /// `diskSpaceWarningLevelRatio`: percent above which puts are refused (reads go on).
    pub disk_space_warning_level_ratio: u32,
    /// `cleanFileForciblyEnable`.
    pub clean_file_forcibly_enable: bool,
    /// `cleanResourceInterval`: how often a retention pass runs (ms).
    pub clean_resource_interval: u64,
    /// `cqMaxOpenFiles` (Sextant's key): the most ConsumeQueue files the store keeps open at
    /// once; idle queues' files are closed and opened again when read (keep it under the
    /// process's file limit, `ulimit -n`, with room for connections and CommitLog segments).
    pub cq_max_open_files: usize,
    /// `haListenPort`: where a master takes its slaves' HA connections (absent: `listenPort`
    /// + 1, as RocketMQ's `BrokerStartup` sets it; 0: any free port).
    pub ha_listen_port: Option<u16>,
    /// `haMasterAddress`: the master's HA address a slave connects to (absent: the one its
    /// NameServer registration answers).
    pub ha_master_address: Option<String>,
    /// `haMaxGapNotInSync`: a slave more than this many bytes behind is not in sync
    /// (SYNC_MASTER answers SLAVE_NOT_AVAILABLE).
    pub ha_max_gap_not_in_sync: u64,
    /// `haSendHeartbeatInterval`: the most time between a slave's offset reports and between a
    /// master's chunks (ms).
    pub ha_send_heartbeat_interval: u64,
    /// `haHousekeepingInterval`: an HA connection silent for this long is closed (ms).
    pub ha_housekeeping_interval: u64,
    /// `haTransferBatchSize`: the most bytes of CommitLog in one chunk to a slave.
    pub ha_transfer_batch_size: usize,
    /// `slaveSynchronizeInterval` (Sextant's key; RocketMQ 4.9 fixes it at 10 s): how often a
    /// slave copies its master's topics, consumer offsets, delay cursors and groups (ms).
    pub slave_synchronize_interval: u64,
    /// `slaveReadEnable`: a master that finds a consumer far behind suggests it read from the
    /// slave (`suggestWhichBrokerId`).
    pub slave_read_enable: bool,
    /// `accessMessageInMemoryMaxRatio`: percent of the machine's memory a consumer may lag
    /// behind the CommitLog's end before it is "far behind".
    pub access_message_in_memory_max_ratio: u32,
    /// `advertisedAddr` (Sextant's key): the address registered with the NameServers, when
    /// clients reach the broker another way than `brokerIP1:listenPort` (a proxy, a NAT, a
    /// port forward). Default: the address it listens on.
    pub advertised_addr: Option<SocketAddr>,
    /// Test-only, deliberately broken: the store flushes in the background (every
    /// `flushIntervalCommitLog`) while puts are acknowledged as if SYNC_FLUSH had flushed them,
    /// so a power loss takes acknowledged messages. The conformance checks must catch it.
    #[doc(hidden)]
    #[serde(skip)]
    pub broken_ack_before_flush: bool,
    /// Keys this broker does not know (RocketMQ has many): warned about, not fatal.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, toml::Value>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            broker_ip1: IpAddr::from([127, 0, 0, 1]),
            listen_port: DEFAULT_PORT,
            namesrv_addr: "127.0.0.1:9876".into(),
            store_path_root_dir: PathBuf::from("sextant-data/broker-a"),
            flush_disk_type: FlushDiskType::AsyncFlush.name().into(),
            broker_role: BrokerRole::AsyncMaster.name().into(),
            auto_create_topic_enable: true,
            default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
            broker_permission: 6,
            register_name_server_period: 30_000,
            register_broker_timeout_mills: 24_000,
            mapped_file_size_commit_log: sextant_store::DEFAULT_SEGMENT_SIZE,
            mapped_file_size_consume_queue: sextant_store::DEFAULT_ENTRIES_PER_FILE
                * sextant_store::ENTRY_SIZE,
            flush_interval_commit_log: 500,
            flush_interval_consume_queue: 1_000,
            sync_flush_timeout: 5_000,
            flush_consumer_offset_interval: 5_000,
            max_message_size: 4 * 1024 * 1024,
            message_delay_level: sextant_model::broker::DEFAULT_DELAY_LEVELS.into(),
            long_polling_enable: true,
            short_polling_time_mills: 1_000,
            channel_expired_timeout: CHANNEL_EXPIRED_MS,
            lock_max_live_time: LOCK_MAX_LIVE_MS,
            offset_check_in_slave: false,
            region_id: "DefaultRegion".into(),
            trace_on: true,
            consumer_running_info_timeout_mills: 10_000,
            message_index_enable: true,
            max_hash_slot_num: sextant_store::index::DEFAULT_MAX_HASH_SLOTS,
            max_index_num: sextant_store::index::DEFAULT_MAX_INDEX_NUM,
            max_msgs_num_batch: 64,
            default_query_max_num: 32,
            auto_create_subscription_group: true,
            file_reserved_time: 72,
            delete_when: "04".into(),
            disk_max_used_space_ratio: 75,
            disk_space_clean_forcibly_ratio: 85,
            disk_space_warning_level_ratio: 90,
            clean_file_forcibly_enable: true,
            clean_resource_interval: 10_000,
            enable_split_registration: false,
            split_registration_size: sextant_model::namesrv::DEFAULT_SPLIT_REGISTRATION_SIZE,
            max_topic_count: sextant_model::broker::admit::DEFAULT_MAX_TOPICS,
            max_subscription_group_count: sextant_model::broker::tables::DEFAULT_MAX_GROUPS,
            cq_max_open_files: sextant_store::DEFAULT_MAX_OPEN_CQ_FILES,
            ha_listen_port: None,
            ha_master_address: None,
            ha_max_gap_not_in_sync: 256 * 1024 * 1024,
            ha_send_heartbeat_interval: 5_000,
            ha_housekeeping_interval: 20_000,
            ha_transfer_batch_size: 32 * 1024,
            slave_synchronize_interval: 10_000,
            slave_read_enable: false,
            access_message_in_memory_max_ratio: 40,
            advertised_addr: None,
            broken_ack_before_flush: false,
            unknown: BTreeMap::new(),
        }
    }
}

/// A configuration checked and turned into the types the broker uses.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The flush mode.
    pub flush: FlushDiskType,
    /// The role.
    pub role: BrokerRole,
    /// The delay levels.
    pub delay_levels: DelayLevels,
    /// The NameServers.
    pub namesrvs: Vec<SocketAddr>,
    /// Where to listen.
    pub listen: SocketAddr,
}

impl BrokerConfig {
    /// Parse a TOML file's text; unknown keys are kept in `unknown`.
    pub fn from_toml(text: &str) -> Result<BrokerConfig, Error> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Check the values and turn them into [`Settings`].
    pub fn settings(&self) -> Result<Settings, Error> {
        let bad = |key: &str, why: String| Error::Config(format!("{key}: {why}"));
        let flush = match self.flush_disk_type.as_str() {
            "ASYNC_FLUSH" => FlushDiskType::AsyncFlush,
            "SYNC_FLUSH" => FlushDiskType::SyncFlush,
            other => {
                return Err(bad(
                    "flushDiskType",
                    format!("{other:?} is not ASYNC_FLUSH or SYNC_FLUSH"),
                ));
            }
        };
        let role = match self.broker_role.as_str() {
            "ASYNC_MASTER" => BrokerRole::AsyncMaster,
            "SYNC_MASTER" => BrokerRole::SyncMaster,
            "SLAVE" => BrokerRole::Slave,
            other => {
                return Err(bad(
                    "brokerRole",
                    format!("{other:?} is not ASYNC_MASTER, SYNC_MASTER or SLAVE"),
                ));
            }
        };
        if (role == BrokerRole::Slave) != (self.broker_id != 0) || self.broker_id < 0 {
            return Err(bad(
                "brokerId",
                format!("{} does not fit the role {}", self.broker_id, role.name()),
            ));
        }
        let delay_levels = DelayLevels::parse(&self.message_delay_level)
            .map_err(|e| bad("messageDelayLevel", e))?;
        let namesrvs = self
            .namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<SocketAddr>()
                    .map_err(|e| bad("namesrvAddr", format!("{s:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.mapped_file_size_consume_queue == 0
            || !self
                .mapped_file_size_consume_queue
                .is_multiple_of(sextant_store::ENTRY_SIZE)
        {
            return Err(bad(
                "mappedFileSizeConsumeQueue",
                "must be a positive multiple of 20".into(),
            ));
        }
        if self.default_topic_queue_nums == 0 || self.default_topic_queue_nums > 1024 {
            return Err(bad("defaultTopicQueueNums", "must be 1..=1024".into()));
        }
        self.index_config()
            .check()
            .map_err(|e| bad("maxHashSlotNum/maxIndexNum", e))?;
        if self.max_message_size == 0 || self.max_message_size > 4 * 1024 * 1024 {
            return Err(bad(
                "maxMessageSize",
                "must be 1..=4194304 (the frame and record limits)".into(),
            ));
        }
        Ok(Settings {
            flush,
            role,
            delay_levels,
            namesrvs,
            listen: SocketAddr::new(self.broker_ip1, self.listen_port),
        })
    }

    /// The store's configuration.
    pub fn store_config(&self, settings: &Settings) -> StoreConfig {
        let mut c = StoreConfig::new(&self.store_path_root_dir);
        c.segment_size = self.mapped_file_size_commit_log;
        c.cq_entries_per_file = self.mapped_file_size_consume_queue / sextant_store::ENTRY_SIZE;
        c.flush = match self.broken_ack_before_flush {
            true => FlushDiskType::AsyncFlush,
            false => settings.flush,
        };
        c.flush_interval = Duration::from_millis(self.flush_interval_commit_log.max(1));
        c.cq_flush_interval = Duration::from_millis(self.flush_interval_consume_queue.max(1));
        c.sync_flush_timeout = Duration::from_millis(self.sync_flush_timeout.max(1));
        c.delay_levels = settings.delay_levels.clone();
        c.index = self.index_config();
        c.cq_max_open_files = self.cq_max_open_files.max(1);
        c.retention = Retention {
            file_reserved_ms: self.file_reserved_time.saturating_mul(3_600_000),
            delete_when: self
                .delete_when
                .split(';')
                .filter_map(|h| h.trim().parse().ok())
                .filter(|h| *h < 24)
                .collect(),
            disk_max_used_ratio: f64::from(self.disk_max_used_space_ratio.min(95)) / 100.0,
            disk_clean_forcibly_ratio: f64::from(self.disk_space_clean_forcibly_ratio.min(100))
                / 100.0,
            disk_warning_ratio: f64::from(self.disk_space_warning_level_ratio.min(100)) / 100.0,
            clean_file_forcibly: self.clean_file_forcibly_enable,
            ..Retention::default()
        };
        c
    }

    fn index_config(&self) -> IndexConfig {
        IndexConfig {
            enabled: self.message_index_enable,
            max_hash_slots: self.max_hash_slot_num,
            max_index_num: self.max_index_num,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_rocketmq_names() {
        let c = BrokerConfig::from_toml(
            r#"
            brokerClusterName = "C"
            brokerName = "broker-b"
            brokerId = 1
            brokerRole = "SLAVE"
            flushDiskType = "SYNC_FLUSH"
            autoCreateTopicEnable = false
            namesrvAddr = "127.0.0.1:9876;127.0.0.1:9877"
            brokerIP1 = "127.0.0.1"
            listenPort = 10921
            deleteWhen = "03;05"
            fileReservedTime = 48
            fooBarUnknownKey = 1
            messageIndexEnable = false
            maxHashSlotNum = 1000
            maxIndexNum = 4000
            cqMaxOpenFiles = 64
            "#,
        )
        .expect("parses");
        assert_eq!(c.broker_name, "broker-b");
        assert!(!c.auto_create_topic_enable);
        assert!(c.unknown.contains_key("fooBarUnknownKey"));
        assert!(!c.unknown.contains_key("deleteWhen"));
        let s = c.settings().expect("valid");
        assert_eq!(s.role, BrokerRole::Slave);
        assert_eq!(s.flush, FlushDiskType::SyncFlush);
        assert_eq!(s.namesrvs.len(), 2);
        assert_eq!(s.listen.port(), 10921);
        let retention = c.store_config(&s).retention;
        assert_eq!(retention.delete_when, [3, 5]);
        assert_eq!(retention.file_reserved_ms, 48 * 3_600_000);
        let index = c.store_config(&s).index;
        assert_eq!(
            (index.enabled, index.max_hash_slots, index.max_index_num),
            (false, 1000, 4000)
        );
        assert_eq!((c.max_msgs_num_batch, c.default_query_max_num), (64, 32));
        assert_eq!(c.store_config(&s).cq_max_open_files, 64);
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = BrokerConfig {
            flush_disk_type: "SOMETIMES".into(),
            ..Default::default()
        };
        assert!(
            c.settings()
                .unwrap_err()
                .to_string()
                .contains("flushDiskType")
        );
        c.flush_disk_type = "ASYNC_FLUSH".into();
        c.broker_id = 1;
        assert!(c.settings().unwrap_err().to_string().contains("brokerId"));
        c.broker_id = 0;
        c.namesrv_addr = "nowhere".into();
        assert!(
            c.settings()
                .unwrap_err()
                .to_string()
                .contains("namesrvAddr")
        );
        assert!(BrokerConfig::from_toml("brokerId = \"x\"").is_err());
        c.namesrv_addr = "127.0.0.1:9876".into();
        c.max_index_num = 1;
        assert!(
            c.settings()
                .unwrap_err()
                .to_string()
                .contains("maxIndexNum")
        );
    }
}
