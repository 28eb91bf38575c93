//! The broker's state and its request handlers.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sextant_model::Millis;
use sextant_model::broker::{
    self as decide, AUTO_CREATE_TOPIC, ConsumerGroups, DelayLevels, LockTable, PullCode,
    SCHEDULE_TOPIC, SendBackTarget, TagFilter,
};
use sextant_model::namesrv::TopicConfig;
use sextant_model::route::{MessageQueue, Perm};
use sextant_model::store::{BrokerRole, PutProgress, PutVerdict, put_verdict};
use sextant_remoting::body::{
    self, ConsumerListBody, HeartbeatData, LockBatchRequestBody, LockBatchResponseBody,
    MessageQueueJson, java_hash,
};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    ConsumerGroupHeader, ConsumerSendMsgBackRequestHeader, CreateTopicRequestHeader,
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, OffsetResponseHeader,
    PullMessageRequestHeader, PullMessageResponseHeader, QueryConsumerOffsetRequestHeader,
    SearchOffsetRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader, UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use sextant_remoting::message::{
    self, MessageView, decode_send_batch, encode_properties, offset_msg_id, parse_properties,
    property,
};
use sextant_remoting::transport::{Handler, Peer};
use sextant_remoting::{ExtFields, RemotingCommand};
use sextant_store::config::ConsumerOffsets;
use sextant_store::{Get, MessageStore, Put, PutResult, tags_code_of};
use tokio::sync::{Notify, watch};

use crate::admin::Clients;
use crate::config::{BrokerConfig, Settings};
use crate::stats::Stats;
use crate::topics::Topics;

/// Pull `sysFlag` bits (`PullSysFlag`).
mod pull_flag {
    pub const COMMIT_OFFSET: i32 = 0x1;
    pub const SUSPEND: i32 = 0x2;
    pub const SUBSCRIPTION: i32 = 0x4;
}

/// The most messages one pull returns, and about the most bytes
/// (`maxTransferCountOnMessageInMemory` / `maxTransferBytesOnMessageInMemory`, raised for count).
const PULL_MAX_MSGS: usize = 1024;
const PULL_MAX_BYTES: usize = 256 * 1024;
/// The longest a pull is held, whatever the client asks (ms).
const MAX_SUSPEND_MS: Millis = 300_000;

/// Wall-clock milliseconds (store and born timestamps).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error answer: a response code and its remark.
pub(crate) struct Reply(pub(crate) i32, pub(crate) String);

pub(crate) type Answer = Result<RemotingCommand, Reply>;

pub(crate) fn reply(code: i32, remark: impl Into<String>) -> Reply {
    Reply(code, remark.into())
}

pub(crate) fn header<H: CommandHeader>(req: &RemotingCommand) -> Result<H, Reply> {
    let empty = ExtFields::new();
    H::from_ext(req.ext_fields.as_ref().unwrap_or(&empty))
        .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))
}

fn queue_id(q: i32) -> Result<u32, Reply> {
    u32::try_from(q).map_err(|_| reply(response::SYSTEM_ERROR, format!("queueId[{q}] is illegal")))
}

pub(crate) fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

/// A message to store, before the store gives it offsets.
pub(crate) struct NewMessage<'a> {
    pub topic: Cow<'a, str>,
    pub queue_id: u32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub body: &'a [u8],
    pub properties: String,
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
    offsets_path: std::path::PathBuf,
    pub(crate) groups: Mutex<ConsumerGroups>,
    locks: Mutex<LockTable>,
    pub(crate) peers: Mutex<HashMap<SocketAddr, Peer>>,
    /// What the clients' heartbeats say beyond group membership (admin answers).
    pub(crate) clients: Mutex<Clients>,
    /// Per topic and queue, the queue's end, for held pulls to wait on.
    pub(crate) arrivals: Mutex<HashMap<String, HashMap<u32, watch::Sender<u64>>>>,
    /// Message and pull counters, sampled every second.
    pub(crate) stats: Stats,
    started: Instant,
    /// Woken when the topic table changed: register with the NameServers now.
    pub(crate) register_now: Notify,
    random: AtomicU32,
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
    fn now(&self) -> Millis {
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

    /// Drop client channels silent past the expiry; tell their groups.
    pub async fn scan_channels(&self) {
        let gone = lock(&self.groups).scan_expired(self.now());
        let mut changed: Vec<String> = gone.into_iter().map(|(g, _)| g).collect();
        changed.dedup();
        for g in changed {
            tracing::info!(group = %g, "consumer channel expired");
            self.notify_group(&g).await;
        }
    }

    fn writeable(&self) -> bool {
        self.settings.role != BrokerRole::Slave
            && Perm(self.config.broker_permission).is_writeable()
    }

    fn next_random(&self) -> u32 {
        // A xorshift step: which queue a send with queueId < 0 lands on needs no quality.
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.random.store(x, Ordering::Relaxed);
        x
    }

    /// Create `config` and register it with the NameServers soon.
    fn create_topic(&self, config: TopicConfig) -> Result<(), Reply> {
        tracing::info!(topic = %config.topic_name, queues = config.write_queue_nums, "topic created");
        lock(&self.topics)
            .put(config, wall_ms())
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        self.register_now.notify_one();
        Ok(())
    }

    /// The config of `topic`, created from TBW102 if allowed and absent (send path).
    fn topic_for_send(&self, topic: &str, requested_queues: i32) -> Result<TopicConfig, Reply> {
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

    /// Store `msgs`, sending delayed ones through the schedule topic first; wake waiting pulls.
    pub(crate) fn put_messages(&self, msgs: Vec<NewMessage<'_>>) -> Result<PutResult, Reply> {
        let now = wall_ms();
        let levels = &self.settings.delay_levels;
        let mut owned = Vec::with_capacity(msgs.len());
        for mut m in msgs {
            let level: i32 = message::property_of(&m.properties, property::DELAY)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            if let Some(q) = levels.queue_of(level) {
                let real_q = m.queue_id.to_string();
                let mut props: BTreeMap<&str, &str> = parse_properties(&m.properties);
                props.insert(property::REAL_TOPIC, m.topic.as_ref());
                props.insert(property::REAL_QID, &real_q);
                let clamped = level.min(levels.max_level()).to_string();
                props.insert(property::DELAY, &clamped);
                let props = encode_properties(props);
                m.properties = props;
                m.topic = Cow::Borrowed(SCHEDULE_TOPIC);
                m.queue_id = q;
            }
            owned.push(m);
        }
        let mut puts: Vec<Put<'_>> = owned
            .iter()
            .map(|m| {
                let msg = MessageView {
                    queue_id: m.queue_id as i32,
                    flag: m.flag,
                    queue_offset: 0,
                    physical_offset: 0,
                    // The host flags follow the addresses (set by the encoder).
                    sys_flag: m.sys_flag,
                    born_timestamp: m.born_timestamp,
                    born_host: m.born_host,
                    store_timestamp: now,
                    store_host: self.addr,
                    reconsume_times: m.reconsume_times,
                    prepared_transaction_offset: 0,
                    body_crc: 0,
                    body: m.body,
                    topic: &m.topic,
                    properties: &m.properties,
                };
                let tags_code = tags_code_of(&msg, levels);
                Put { msg, tags_code }
            })
            .collect();
        let result = self.store.put(&mut puts).map_err(|e| {
            self.stats.put_failed();
            reply(response::SYSTEM_ERROR, format!("put message failed: {e}"))
        })?;
        self.stats.stored(
            result.stored.len() as u64,
            result.stored.iter().map(|s| u64::from(s.size)).sum(),
        );
        let arrivals = lock(&self.arrivals);
        for (p, s) in puts.iter().zip(&result.stored) {
            if let Some(tx) = arrivals
                .get(p.msg.topic)
                .and_then(|q| q.get(&(p.msg.queue_id as u32)))
            {
                tx.send_replace(s.queue_offset + 1);
            }
        }
        Ok(result)
    }

    /// Wait until the put is acknowledged as `put_verdict` decides, and answer its code.
    async fn verdict(&self, end: u64) -> i32 {
        let progress = |flushed, timed_out| PutProgress {
            end,
            flushed,
            slave_acked: None,
            timed_out,
        };
        let mut v = put_verdict(
            self.settings.flush,
            self.settings.role,
            progress(self.store.flushed(), false),
        );
        if v == PutVerdict::Wait {
            let timeout = self.store.config().sync_flush_timeout;
            let done = self.store.wait_flushed(end, timeout).await;
            v = put_verdict(
                self.settings.flush,
                self.settings.role,
                progress(self.store.flushed(), !done),
            );
        }
        match v {
            PutVerdict::Ok | PutVerdict::Wait => response::SUCCESS,
            PutVerdict::FlushDiskTimeout => response::FLUSH_DISK_TIMEOUT,
            PutVerdict::FlushSlaveTimeout => response::FLUSH_SLAVE_TIMEOUT,
            PutVerdict::SlaveNotAvailable => response::SLAVE_NOT_AVAILABLE,
        }
    }

    async fn send(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let h: SendMessageRequestHeader = match req.code {
            request::SEND_MESSAGE => header(req)?,
            _ => header::<SendMessageRequestHeaderV2>(req)?.into(),
        };
        let batch = req.code == request::SEND_BATCH_MESSAGE || h.batch;
        let mut topic_name = h.topic.clone();
        let mut config = self.topic_for_send(&topic_name, h.default_topic_queue_nums)?;
        let mut requested_queue = h.queue_id;
        let reconsume_times = h.reconsume_times.unwrap_or(0);
        // A consumer retrying through a send: past its maximum the message goes to the DLQ.
        if let Some(group) = topic_name.strip_prefix(decide::RETRY_PREFIX) {
            let max = h
                .max_reconsume_times
                .unwrap_or(decide::DEFAULT_MAX_RECONSUME_TIMES);
            if decide::send_back_target(reconsume_times, max, 1) == SendBackTarget::DeadLetter {
                topic_name = decide::dlq_topic(group);
                config = self.topic_for_send(&topic_name, 1)?;
                requested_queue = 0;
            }
        }
        let qid = decide::send_queue(
            self.writeable(),
            &self.config.broker_name,
            &config,
            requested_queue,
            self.next_random(),
        )
        .map_err(|e| match e {
            decide::SendRefused::BadQueue { .. } => reply(response::SYSTEM_ERROR, e.to_string()),
            _ => reply(response::NO_PERMISSION, e.to_string()),
        })?;
        let cluster = self.config.broker_cluster_name.as_str();
        let with_cluster = |props: &str| {
            let mut p = props.to_owned();
            if message::property_of(props, property::CLUSTER).is_none() {
                p.push_str(property::CLUSTER);
                p.push('\u{1}');
                p.push_str(cluster);
                p.push('\u{2}');
            }
            p
        };
        let msgs = if batch {
            let items = decode_send_batch(&req.body)
                .map_err(|e| reply(response::MESSAGE_ILLEGAL, e.to_string()))?;
            if items.is_empty() {
                return Err(reply(response::MESSAGE_ILLEGAL, "an empty batch"));
            }
            items
                .into_iter()
                .map(|i| {
                    self.check_message(i.body, i.properties)
                        .map(|()| (i.flag, i.body, with_cluster(i.properties)))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let props = h.properties.as_deref().unwrap_or("");
            self.check_message(&req.body, props)?;
            vec![(h.flag, &req.body[..], with_cluster(props))]
        };
        let new = msgs
            .into_iter()
            .map(|(flag, body, properties)| NewMessage {
                topic: Cow::Borrowed(topic_name.as_str()),
                queue_id: qid,
                flag,
                sys_flag: h.sys_flag,
                born_timestamp: h.born_timestamp,
                born_host: peer.addr,
                reconsume_times,
                body,
                properties,
            })
            .collect();
        let put = self.put_messages(new)?;
        let code = self.verdict(put.end).await;
        let first = put.stored[0];
        let msg_id = put
            .stored
            .iter()
            .map(|s| offset_msg_id(self.addr, s.physical_offset as i64))
            .collect::<Vec<_>>()
            .join(",");
        let resp = SendMessageResponseHeader {
            msg_id,
            queue_id: qid as i32,
            queue_offset: first.queue_offset as i64,
            transaction_id: None,
            batch_uniq_id: None,
            msg_region: Some(self.config.region_id.clone()),
            trace_on: Some(self.config.trace_on.to_string()),
        };
        Ok(RemotingCommand::response_to(req, code, None).with_ext(resp.to_ext()))
    }

    fn check_message(&self, body: &[u8], properties: &str) -> Result<(), Reply> {
        if body.len() > self.config.max_message_size {
            return Err(reply(
                response::MESSAGE_ILLEGAL,
                format!(
                    "the message body size over max value, MAX: {}",
                    self.config.max_message_size
                ),
            ));
        }
        if properties.len() > i16::MAX as usize {
            return Err(reply(
                response::MESSAGE_ILLEGAL,
                format!(
                    "the message properties length {} is too long",
                    properties.len()
                ),
            ));
        }
        Ok(())
    }

    fn arrival(&self, topic: &str, qid: u32) -> watch::Receiver<u64> {
        let mut arrivals = lock(&self.arrivals);
        arrivals
            .entry(topic.to_owned())
            .or_default()
            .entry(qid)
            .or_insert_with(|| watch::channel(self.store.offsets(topic, qid).1).0)
            .subscribe()
    }

    async fn pull(&self, req: &RemotingCommand) -> Answer {
        let h: PullMessageRequestHeader = header(req)?;
        let Some(config) = self.topic(&h.topic) else {
            return Err(reply(
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            ));
        };
        if !config.perm.is_readable() || !Perm(self.config.broker_permission).is_readable() {
            return Err(reply(
                response::NO_PERMISSION,
                format!("the topic[{}] pulling message is forbidden", h.topic),
            ));
        }
        let qid = queue_id(h.queue_id)?;
        if qid >= config.read_queue_nums {
            return Err(reply(
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                    h.queue_id,
                    h.topic,
                    config.read_queue_nums,
                    req.ext("clientID").unwrap_or_default()
                ),
            ));
        }
        let offset = u64::try_from(h.queue_offset).unwrap_or(0);
        let filter = if h.sys_flag & pull_flag::SUBSCRIPTION != 0 {
            TagFilter::parse(h.subscription.as_deref().unwrap_or("*"), java_hash)
        } else {
            lock(&self.groups)
                .group(&h.consumer_group)
                .and_then(|g| g.subscriptions.get(&h.topic))
                .map(|e| TagFilter::parse(e, java_hash))
                .unwrap_or_default()
        };
        let master = self.settings.role != BrokerRole::Slave;
        if h.sys_flag & pull_flag::COMMIT_OFFSET != 0 && master && h.commit_offset >= 0 {
            self.commit(&h.topic, &h.consumer_group, qid, h.commit_offset as u64);
        }
        let suspend = h.sys_flag & pull_flag::SUSPEND != 0;
        let arrival = suspend.then(|| self.arrival(&h.topic, qid));
        let max_msgs = usize::try_from(h.max_msg_nums)
            .unwrap_or(0)
            .clamp(1, PULL_MAX_MSGS);
        let max_bytes = h
            .max_msg_bytes
            .and_then(|b| usize::try_from(b).ok())
            .filter(|b| *b > 0)
            .unwrap_or(PULL_MAX_BYTES)
            .min(PULL_MAX_BYTES);
        let get = Get {
            topic: &h.topic,
            queue_id: qid,
            offset,
            max_msgs,
            max_bytes,
            correct: master || self.config.offset_check_in_slave,
        };
        let read =
            |allow_suspend: bool| -> Result<(PullCode, bool, sextant_store::GetResult), Reply> {
                let r = self
                    .store
                    .get(&get, &|code| filter.matches(code))
                    .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
                let code = decide::pull_code(r.status, offset);
                Ok((code, decide::suspend(code, suspend, allow_suspend), r))
            };
        let (mut code, wait, mut result) = read(true)?;
        if wait && let Some(mut arrival) = arrival {
            let hold = Duration::from_millis(decide::hold_time(
                self.config.long_polling_enable,
                h.suspend_timeout_millis,
                self.config.short_polling_time_mills,
                MAX_SUSPEND_MS,
            ));
            let _ = tokio::time::timeout(hold, arrival.wait_for(|max| *max > offset)).await;
            (code, _, result) = read(false)?;
        }
        self.stats.pulled(if code == PullCode::Found {
            result.count as u64
        } else {
            0
        });
        let resp_code = match code {
            PullCode::Found => response::SUCCESS,
            PullCode::NoNewMessage => response::PULL_NOT_FOUND,
            PullCode::RetryImmediately => response::PULL_RETRY_IMMEDIATELY,
            PullCode::OffsetMoved => response::PULL_OFFSET_MOVED,
        };
        let resp_header = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: result.next_begin as i64,
            min_offset: result.min as i64,
            max_offset: result.max as i64,
            offset_delta: None,
            topic_sys_flag: Some(config.topic_sys_flag as i32),
            group_sys_flag: Some(0),
            forbidden_type: None,
        };
        let remark = (resp_code != response::SUCCESS).then(|| format!("{:?}", result.status));
        Ok(RemotingCommand::response_to(req, resp_code, remark)
            .with_ext(resp_header.to_ext())
            .with_body(result.records))
    }

    fn commit(&self, topic: &str, group: &str, qid: u32, offset: u64) {
        lock(&self.offsets).commit(topic, group, qid, offset);
        self.offsets_dirty.store(true, Ordering::Release);
    }

    fn query_offset(&self, req: &RemotingCommand) -> Answer {
        let h: QueryConsumerOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        let (min, _) = self.store.offsets(&h.topic, qid);
        let committed = self.committed_offset(&h.topic, &h.consumer_group, qid);
        let Some(offset) =
            decide::query_offset(committed, min, h.set_zero_if_not_found != Some(false))
        else {
            return Err(reply(
                response::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            ));
        };
        Ok(Self::offset_answer(req, offset))
    }

    fn update_offset(&self, req: &RemotingCommand) -> Answer {
        let h: UpdateConsumerOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        let offset = u64::try_from(h.commit_offset).map_err(|_| {
            reply(
                response::INVALID_PARAMETER,
                format!("commitOffset {}", h.commit_offset),
            )
        })?;
        if self.topic(&h.topic).is_none() {
            return Err(reply(
                response::TOPIC_NOT_EXIST,
                format!("Topic {} not exist!", h.topic),
            ));
        }
        self.commit(&h.topic, &h.consumer_group, qid, offset);
        Ok(ok(req))
    }

    fn offset_answer(req: &RemotingCommand, offset: u64) -> RemotingCommand {
        ok(req).with_ext(
            OffsetResponseHeader {
                offset: offset as i64,
            }
            .to_ext(),
        )
    }

    fn max_offset(&self, req: &RemotingCommand) -> Answer {
        let h: GetMaxOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        Ok(Self::offset_answer(
            req,
            self.store.offsets(&h.topic, qid).1,
        ))
    }

    fn min_offset(&self, req: &RemotingCommand) -> Answer {
        let h: GetMinOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        Ok(Self::offset_answer(
            req,
            self.store.offsets(&h.topic, qid).0,
        ))
    }

    fn search_offset(&self, req: &RemotingCommand) -> Answer {
        let h: SearchOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        let offset = self
            .store
            .offset_by_time(&h.topic, qid, h.timestamp)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        Ok(Self::offset_answer(req, offset))
    }

    async fn heartbeat(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let hb: HeartbeatData = body::decode("heartbeat", &req.body)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        lock(&self.peers).insert(peer.addr, peer.clone());
        lock(&self.clients).heartbeat(peer.addr, req.language, req.version, &hb);
        let now = self.now();
        let addr = peer.addr.to_string();
        let mut changed = Vec::new();
        for c in &hb.consumer_data_set {
            if c.group_name.is_empty() {
                continue;
            }
            let retry = decide::retry_topic(&c.group_name);
            if self.topic(&retry).is_none() && decide::invalid_topic(&retry).is_none() {
                self.create_topic(decide::group_topic(&retry))?;
            }
            let subs = c
                .subscription_data_set
                .iter()
                .map(|s| (s.topic.clone(), s.sub_string.clone()))
                .collect();
            if lock(&self.groups).register(&c.group_name, &addr, &hb.client_id, subs, now) {
                tracing::info!(group = %c.group_name, client = %hb.client_id, %addr, "consumer joined");
                changed.push(c.group_name.clone());
            }
        }
        for g in changed {
            self.notify_group(&g).await;
        }
        Ok(ok(req))
    }

    /// Tell every client of `group` that its membership changed (NOTIFY_CONSUMER_IDS_CHANGED).
    async fn notify_group(&self, group: &str) {
        let targets: Vec<Peer> = {
            let channels = lock(&self.groups).channels(group);
            let peers = lock(&self.peers);
            channels
                .iter()
                .filter_map(|a| a.parse::<SocketAddr>().ok())
                .filter_map(|a| peers.get(&a).cloned())
                .collect()
        };
        let ext = ConsumerGroupHeader {
            consumer_group: group.to_owned(),
        }
        .to_ext();
        for p in targets {
            let cmd = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED, 0)
                .with_ext(ext.clone());
            let _ = p.send_oneway(cmd).await;
        }
    }

    async fn unregister_client(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let h: UnregisterClientRequestHeader = header(req)?;
        if let Some(g) = h.consumer_group.filter(|g| !g.is_empty())
            && lock(&self.groups).unregister(&g, &peer.addr.to_string())
        {
            tracing::info!(group = %g, client = %h.client_id, "consumer left");
            self.notify_group(&g).await;
        }
        Ok(ok(req))
    }

    fn consumer_list(&self, req: &RemotingCommand) -> Answer {
        let h: ConsumerGroupHeader = header(req)?;
        let ids = lock(&self.groups).client_ids(&h.consumer_group);
        if ids.is_empty() {
            return Err(reply(
                response::SYSTEM_ERROR,
                format!("no consumer for this group, {}", h.consumer_group),
            ));
        }
        Ok(ok(req).with_body(body::encode(&ConsumerListBody {
            consumer_id_list: ids,
        })))
    }

    fn lock_batch(&self, req: &RemotingCommand, unlock: bool) -> Answer {
        let b: LockBatchRequestBody = body::decode("lock batch", &req.body)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        let mqs: Vec<MessageQueue> = b.mq_set.iter().map(mq_of).collect();
        let now = self.now();
        let mut locks = lock(&self.locks);
        if unlock {
            locks.unlock_batch(&b.consumer_group, &mqs, &b.client_id);
            return Ok(ok(req));
        }
        let granted = locks.try_lock_batch(&b.consumer_group, &mqs, &b.client_id, now);
        let set = b
            .mq_set
            .into_iter()
            .filter(|m| granted.contains(&mq_of(m)))
            .collect();
        Ok(ok(req).with_body(body::encode(&LockBatchResponseBody {
            lock_ok_mq_set: set,
        })))
    }

    async fn send_back(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let h: ConsumerSendMsgBackRequestHeader = header(req)?;
        if !self.writeable() {
            return Err(reply(
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.config.broker_name
                ),
            ));
        }
        let offset = u64::try_from(h.offset).map_err(|_| {
            reply(
                response::SYSTEM_ERROR,
                format!("look message by offset failed, {}", h.offset),
            )
        })?;
        let record = self.store.read_record(offset).map_err(|e| {
            reply(
                response::SYSTEM_ERROR,
                format!("look message by offset failed, {}: {e}", h.offset),
            )
        })?;
        let (m, _) = MessageView::decode(&record)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        let max = h
            .max_reconsume_times
            .unwrap_or(decide::DEFAULT_MAX_RECONSUME_TIMES);
        let target = decide::send_back_target(m.reconsume_times, max, h.delay_level);
        let (topic, delay) = match target {
            SendBackTarget::Retry { delay_level } => (decide::retry_topic(&h.group), delay_level),
            SendBackTarget::DeadLetter => (decide::dlq_topic(&h.group), 0),
        };
        self.topic_for_send(&topic, 1)?;
        let mut props: BTreeMap<&str, &str> = parse_properties(m.properties);
        if !props.contains_key(property::RETRY_TOPIC) {
            props.insert(property::RETRY_TOPIC, m.topic);
        }
        // The first id the message had: kept across retries; else what the consumer names, its
        // client-side unique key, or its offset id (`MessageExt.getMsgId`).
        let origin = h
            .origin_msg_id
            .clone()
            .filter(|o| !o.is_empty())
            .or_else(|| m.property(property::UNIQ_KEY).map(str::to_owned))
            .unwrap_or_else(|| offset_msg_id(m.store_host, m.physical_offset));
        if !props.contains_key(property::ORIGIN_MESSAGE_ID) {
            props.insert(property::ORIGIN_MESSAGE_ID, &origin);
        }
        let delay_s = delay.to_string();
        props.remove(property::DELAY);
        if delay > 0 {
            props.insert(property::DELAY, &delay_s);
        }
        let properties = encode_properties(props);
        if target == SendBackTarget::DeadLetter {
            tracing::info!(group = %h.group, topic = %m.topic, times = m.reconsume_times, "message to the DLQ");
        }
        let put = self.put_messages(vec![NewMessage {
            topic: topic.into(),
            queue_id: 0,
            flag: m.flag,
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: peer.addr,
            reconsume_times: m.reconsume_times + 1,
            body: m.body,
            properties,
        }])?;
        let code = self.verdict(put.end).await;
        Ok(RemotingCommand::response_to(req, code, None))
    }

    fn update_topic(&self, req: &RemotingCommand) -> Answer {
        let h: CreateTopicRequestHeader = header(req)?;
        if let Some(why) = decide::invalid_topic(&h.topic) {
            return Err(reply(response::SYSTEM_ERROR, why));
        }
        let nums = |n: i32, what: &str| {
            u32::try_from(n)
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| {
                    reply(
                        response::INVALID_PARAMETER,
                        format!("{what} {n} is not 1..=1024"),
                    )
                })
        };
        let config = TopicConfig {
            topic_name: h.topic.clone(),
            read_queue_nums: nums(h.read_queue_nums, "readQueueNums")?,
            write_queue_nums: nums(h.write_queue_nums, "writeQueueNums")?,
            perm: Perm(
                u32::try_from(h.perm).unwrap_or(0) & (Perm::READ | Perm::WRITE | Perm::INHERIT),
            ),
            topic_sys_flag: u32::try_from(h.topic_sys_flag).unwrap_or(0),
            order: h.order,
        };
        self.create_topic(config)?;
        Ok(ok(req))
    }

    /// A connection closed: its consumers leave their groups.
    async fn closed(&self, peer: &Peer) {
        lock(&self.peers).remove(&peer.addr);
        lock(&self.clients).closed(&peer.addr);
        let groups = lock(&self.groups).channel_closed(&peer.addr.to_string());
        for g in groups {
            tracing::info!(group = %g, addr = %peer.addr, "consumer channel closed");
            self.notify_group(&g).await;
        }
    }

    /// The delay levels.
    pub fn delay_levels(&self) -> &DelayLevels {
        &self.settings.delay_levels
    }
}

/// The broker as the transport's request handler.
pub struct BrokerHandler(pub Arc<Broker>);

impl Handler for BrokerHandler {
    async fn handle(&self, peer: &Peer, req: RemotingCommand) -> Option<RemotingCommand> {
        let b = &self.0;
        let answer = match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                b.send(peer, &req).await
            }
            request::PULL_MESSAGE => b.pull(&req).await,
            request::QUERY_CONSUMER_OFFSET => b.query_offset(&req),
            request::UPDATE_CONSUMER_OFFSET => b.update_offset(&req),
            request::GET_MAX_OFFSET => b.max_offset(&req),
            request::GET_MIN_OFFSET => b.min_offset(&req),
            request::SEARCH_OFFSET_BY_TIMESTAMP => b.search_offset(&req),
            request::HEART_BEAT => b.heartbeat(peer, &req).await,
            request::UNREGISTER_CLIENT => b.unregister_client(peer, &req).await,
            request::GET_CONSUMER_LIST_BY_GROUP => b.consumer_list(&req),
            request::LOCK_BATCH_MQ => b.lock_batch(&req, false),
            request::UNLOCK_BATCH_MQ => b.lock_batch(&req, true),
            request::CONSUMER_SEND_MSG_BACK => b.send_back(peer, &req).await,
            request::UPDATE_AND_CREATE_TOPIC => b.update_topic(&req),
            request::GET_BROKER_RUNTIME_INFO => b.runtime_info(&req),
            request::GET_ALL_TOPIC_CONFIG => b.all_topic_config(&req),
            request::GET_TOPIC_STATS_INFO => b.topic_stats(&req),
            request::GET_CONSUME_STATS => b.consume_stats(&req),
            request::GET_CONSUMER_CONNECTION_LIST => b.consumer_connections(&req),
            request::GET_CONSUMER_RUNNING_INFO => b.consumer_running_info(&req).await,
            request::DELETE_TOPIC_IN_BROKER => b.delete_topic(&req),
            request::VIEW_MESSAGE_BY_ID => b.view_message(&req),
            request::QUERY_MESSAGE => b.query_message(&req),
            _ => return None,
        };
        Some(answer.unwrap_or_else(|Reply(code, remark)| {
            RemotingCommand::response_to(&req, code, Some(remark))
        }))
    }

    async fn closed(&self, peer: &Peer) {
        self.0.closed(peer).await;
    }
}

/// The lock batch body's queue as the model's queue.
fn mq_of(m: &MessageQueueJson) -> MessageQueue {
    MessageQueue::new(&m.topic, &m.broker_name, m.queue_id)
}
