//! The broker's decisions, as Apache RocketMQ's broker makes them: which queue a send lands on,
//! what a topic auto-created from `TBW102` looks like, what a pull answers for a requested offset
//! (and whether it may wait), where a message sent back by a consumer goes (a `%RETRY%` topic with
//! a delay level, or the `%DLQ%` topic), who holds an orderly queue lock, and which clients a
//! consumer group has. Pure code with an explicit clock: the tokio broker owns only the sockets,
//! the files and the timers.
//!
//! Submodules: [`admit`] (the checks of a send, its topic, delays and redelivery, send-back,
//! topic updates), [`pull`] (the plan of a pull, and which broker its answer suggests),
//! [`tables`] (the subscription group table and the bounds of what clients make the broker keep),
//! [`slave_sync`] (what a slave takes from its master's tables). Every refusal is a [`Refusal`].

pub mod admit;
pub mod pull;
pub mod slave_sync;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet};

use crate::Millis;
use crate::namesrv::TopicConfig;
use crate::route::{MessageQueue, Perm};

/// The topic whose config auto-created topics copy (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// The topic delayed messages wait in, one queue per delay level.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// The prefix of a consumer group's retry topic.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// The prefix of a consumer group's dead-letter topic.
pub const DLQ_PREFIX: &str = "%DLQ%";
/// RocketMQ's `messageDelayLevel` default.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";
/// `SubscriptionGroupConfig.retryMaxTimes`.
pub const DEFAULT_MAX_RECONSUME_TIMES: i32 = 16;
/// A queue lock not renewed for this long is free (`rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE_MS: Millis = 60_000;
/// A client channel not heard from for this long is dropped (`channelExpiredTimeout`).
pub const CHANNEL_EXPIRED_MS: Millis = 120_000;
/// The broker's `defaultTopicQueueNums` (queues of TBW102 and of created topics).
pub const DEFAULT_TOPIC_QUEUE_NUMS: u32 = 8;

/// Why the broker refuses a request: RocketMQ's response code for it (the variant) and its remark.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `INVALID_PARAMETER` (15).
    #[error("{0}")]
    InvalidParameter(String),
    /// `NO_PERMISSION` (16).
    #[error("{0}")]
    NoPermission(String),
    /// `TOPIC_NOT_EXIST` (17).
    #[error("{0}")]
    TopicNotExist(String),
    /// `MESSAGE_ILLEGAL` (13).
    #[error("{0}")]
    MessageIllegal(String),
    /// `SUBSCRIPTION_GROUP_NOT_EXIST` (26).
    #[error("{0}")]
    SubscriptionGroupNotExist(String),
    /// `SERVICE_NOT_AVAILABLE` (14).
    #[error("{0}")]
    ServiceNotAvailable(String),
    /// `SYSTEM_ERROR` (1).
    #[error("{0}")]
    SystemError(String),
}

/// The retry topic of `group`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// The dead-letter topic of `group`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// Why a topic name is refused (`TopicValidator.validateTopic`).
pub fn invalid_topic(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        return Some("the specified topic is blank");
    }
    if topic.len() > 127 {
        return Some("the specified topic is longer than topic max length 127");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'-' || b == b'_' || b == b'|')
    {
        return Some(
            "the specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$",
        );
    }
    None
}

/// The config of TBW102 on a broker: `defaultTopicQueueNums` queues, inheritable when auto-creation
/// is enabled (`TopicConfigManager`).
pub fn auto_create_template(auto_create_enabled: bool) -> TopicConfig {
    let mut t = TopicConfig::new(AUTO_CREATE_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS);
    if auto_create_enabled {
        t.perm = Perm(Perm::READ | Perm::WRITE | Perm::INHERIT);
    }
    t
}

/// The config a send to a missing `topic` creates from `template` (TBW102), or `None` when the
/// template does not allow it (`createTopicInSendMessageMethod`): as many queues as the producer
/// asks for (`defaultTopicQueueNums` of its header) but no more than the template has, and the
/// template's permission without the inherit bit.
pub fn auto_create(
    topic: &str,
    template: &TopicConfig,
    requested_queues: i32,
) -> Option<TopicConfig> {
    if !template.perm.is_inherited() || invalid_topic(topic).is_some() {
        return None;
    }
    let queues = u32::try_from(requested_queues)
        .unwrap_or(0)
        .min(template.write_queue_nums)
        .max(1);
    Some(TopicConfig {
        topic_name: topic.to_owned(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm: Perm(template.perm.0 & !Perm::INHERIT),
        topic_sys_flag: 0,
        order: false,
    })
}

/// The config of a retry or dead-letter topic created on demand: one queue, read and write
/// (`createTopicInSendMessageBackMethod` in RocketMQ 5; 4.x created the DLQ write-only, so that
/// an operator had to open it before consuming it).
pub fn group_topic(topic: &str) -> TopicConfig {
    TopicConfig::new(topic, 1)
}

/// Why a send is refused before it is stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendRefused {
    /// The broker is a slave (or writes are switched off).
    #[error("the broker[{0}] sending message is forbidden")]
    NotWriteable(String),
    /// The topic's permission has no write bit.
    #[error("the topic[{0}] sending message is forbidden")]
    TopicNotWriteable(String),
    /// The requested queue does not exist.
    #[error("request queueId[{queue}] is illegal, {topic} Producer")]
    BadQueue {
        /// The topic.
        topic: String,
        /// The queue asked for.
        queue: i32,
    },
}

/// The queue a send lands on (`msgCheck` and `SendMessageProcessor`): a negative id picks
/// `random % writeQueueNums`; an id past both queue counts is refused.
pub fn send_queue(
    broker_writeable: bool,
    broker_name: &str,
    topic: &TopicConfig,
    requested: i32,
    random: u32,
) -> Result<u32, SendRefused> {
    if !broker_writeable {
        return Err(SendRefused::NotWriteable(broker_name.to_owned()));
    }
    if !topic.perm.is_writeable() {
        return Err(SendRefused::TopicNotWriteable(topic.topic_name.clone()));
    }
    if requested < 0 {
        return Ok(random % topic.write_queue_nums.max(1));
    }
    let q = requested as u32;
    if q >= topic.write_queue_nums && q >= topic.read_queue_nums {
        return Err(SendRefused::BadQueue {
            topic: topic.topic_name.clone(),
            queue: requested,
        });
    }
    Ok(q)
}

/// The delay levels (`messageDelayLevel`): level `n` (1-based) waits `delays[n - 1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayLevels(Vec<Millis>);

impl DelayLevels {
    /// Parse RocketMQ's `"1s 5s 10s ... 2h"` (units s, m, h, d).
    pub fn parse(s: &str) -> Result<DelayLevels, String> {
        let mut out = Vec::new();
        for item in s.split_whitespace() {
            let (num, unit) = item.split_at(item.len().saturating_sub(1));
            let unit_ms: Millis = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(format!("delay level {item:?}: unit must be s, m, h or d")),
            };
            let n: Millis = num
                .parse()
                .map_err(|_| format!("delay level {item:?}: not a number"))?;
            out.push(n.saturating_mul(unit_ms));
        }
        if out.is_empty() {
            return Err("no delay levels".into());
        }
        Ok(DelayLevels(out))
    }

    /// The highest level.
    pub fn max_level(&self) -> i32 {
        self.0.len() as i32
    }

    /// How long `level` waits, the level clamped to the highest (as the store does); `None` for
    /// level 0 and below (no delay).
    pub fn delay(&self, level: i32) -> Option<Millis> {
        if level <= 0 {
            return None;
        }
        let i = (level.min(self.max_level()) - 1) as usize;
        Some(self.0[i])
    }

    /// The schedule queue of `level` (level − 1), clamped as [`DelayLevels::delay`].
    pub fn queue_of(&self, level: i32) -> Option<u32> {
        (level > 0).then(|| (level.min(self.max_level()) - 1) as u32)
    }
}

impl Default for DelayLevels {
    fn default() -> Self {
        DelayLevels::parse(DEFAULT_DELAY_LEVELS).expect("the default delay levels parse")
    }
}

/// Where a message a consumer failed to process goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendBackTarget {
    /// Into the group's retry topic, delivered after `delay_level`.
    Retry {
        /// The delay level (1-based).
        delay_level: i32,
    },
    /// Into the group's dead-letter topic: it has been reconsumed too often, or the consumer
    /// asked for it (a negative delay level).
    DeadLetter,
}

/// The decision of `consumerSendMsgBack`: a message already reconsumed `reconsume_times` times
/// goes to the DLQ once that reaches `max_reconsume_times` or when `delay_level` is negative;
/// otherwise it is retried, at `3 + reconsume_times` when the consumer left the level to the
/// broker (0). The stored copy then counts one more reconsume.
pub fn send_back_target(
    reconsume_times: i32,
    max_reconsume_times: i32,
    delay_level: i32,
) -> SendBackTarget {
    if reconsume_times >= max_reconsume_times || delay_level < 0 {
        return SendBackTarget::DeadLetter;
    }
    let delay_level = if delay_level == 0 {
        3 + reconsume_times
    } else {
        delay_level
    };
    SendBackTarget::Retry { delay_level }
}

/// What the store finds for a pull (`GetMessageStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GetStatus {
    /// Messages were read.
    Found,
    /// Entries were scanned but none matched the subscription.
    NoMatchedMessage,
    /// The queue has never held a message.
    NoMessageInQueue,
    /// The offset is below the queue's minimum (its files were deleted).
    OffsetTooSmall,
    /// The offset is the queue's end: nothing new yet.
    OffsetOverflowOne,
    /// The offset is past the queue's end.
    OffsetOverflowBadly,
}

/// Where a pull at `offset` stands in a queue holding `[min, max)`: `Ok(())` to read from
/// `offset`, or the status and the next begin offset to answer. `correct` is whether the broker
/// may move the consumer (a master, or a slave with `offsetCheckInSlave`): otherwise the next
/// offset stays the requested one (`nextOffsetCorrection`).
pub fn locate(offset: u64, min: u64, max: u64, correct: bool) -> Result<(), (GetStatus, u64)> {
    let fix = |to: u64| if correct { to } else { offset };
    if max == 0 {
        Err((GetStatus::NoMessageInQueue, fix(0)))
    } else if offset < min {
        Err((GetStatus::OffsetTooSmall, fix(min)))
    } else if offset == max {
        Err((GetStatus::OffsetOverflowOne, offset))
    } else if offset > max {
        Err((GetStatus::OffsetOverflowBadly, fix(max)))
    } else {
        Ok(())
    }
}

/// The pull response code for a store status (`PullMessageProcessor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullCode {
    /// `SUCCESS`: messages in the body.
    Found,
    /// `PULL_NOT_FOUND`: nothing new; the request may be suspended.
    NoNewMessage,
    /// `PULL_RETRY_IMMEDIATELY`: entries scanned but none matched; pull again from the next offset.
    RetryImmediately,
    /// `PULL_OFFSET_MOVED`: the consumer must move to the next begin offset.
    OffsetMoved,
}

/// The response code for `status` of a pull that asked for `requested`.
pub fn pull_code(status: GetStatus, requested: u64) -> PullCode {
    match status {
        GetStatus::Found => PullCode::Found,
        GetStatus::NoMatchedMessage => PullCode::RetryImmediately,
        GetStatus::NoMessageInQueue if requested != 0 => PullCode::OffsetMoved,
        GetStatus::NoMessageInQueue | GetStatus::OffsetOverflowOne => PullCode::NoNewMessage,
        GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => PullCode::OffsetMoved,
    }
}

/// Whether a pull answered `code` waits for new messages instead (long polling): only "nothing
/// new", only when the consumer set the suspend flag and the broker allows it (not for the
/// re-check of a request that already waited).
pub fn suspend(code: PullCode, has_suspend_flag: bool, broker_allows: bool) -> bool {
    code == PullCode::NoNewMessage && has_suspend_flag && broker_allows
}

/// How long a pull that found nothing new is held (`PullMessageProcessor`): the consumer's
/// `suspendTimeoutMillis` with long polling, the broker's `shortPollingTimeMills` without, at most
/// `cap`.
pub fn hold_time(long_polling: bool, requested: i64, short_polling: Millis, cap: Millis) -> Millis {
    let t = if long_polling {
        Millis::try_from(requested).unwrap_or(0)
    } else {
        short_polling
    };
    t.min(cap)
}

/// The offset answered to QUERY_CONSUMER_OFFSET: the committed one; for a group that never
/// committed on this queue, 0 while the queue still starts at 0 (RocketMQ: its first message is
/// still there, so a new group reads from the start) unless the client asked not to
/// (`setZeroIfNotFound = false`); otherwise none (QUERY_NOT_FOUND).
pub fn query_offset(
    committed: Option<u64>,
    queue_min: u64,
    set_zero_if_not_found: bool,
) -> Option<u64> {
    match committed {
        Some(o) => Some(o),
        None if queue_min == 0 && set_zero_if_not_found => Some(0),
        None => None,
    }
}

/// A subscription's tag filter (`SubscriptionData` with expression type TAG).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagFilter {
    /// Hash codes of the subscribed tags; empty means every message (`*`).
    pub codes: BTreeSet<i64>,
}

impl TagFilter {
    /// The filter for a TAG expression (`"*"`, `""`, or `"a || b"`), given Java's hash function.
    pub fn parse(expression: &str, hash: impl Fn(&str) -> i32) -> TagFilter {
        let expression = expression.trim();
        if expression.is_empty() || expression == "*" {
            return TagFilter::default();
        }
        TagFilter {
            codes: expression
                .split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| i64::from(hash(t)))
                .collect(),
        }
    }

    /// Whether a message with tag code `code` passes (`ExpressionMessageFilter.isMatchedByConsumeQueue`).
    pub fn matches(&self, code: i64) -> bool {
        self.codes.is_empty() || self.codes.contains(&code)
    }
}

/// The broker's orderly-consumption locks (`RebalanceLockManager`): per group, queue → holder
/// and when it last locked or renewed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LockTable {
    expire: Millis,
    groups: BTreeMap<String, BTreeMap<MessageQueue, (String, Millis)>>,
}

impl LockTable {
    /// A table whose locks expire `expire` ms after their last renewal.
    pub fn new(expire: Millis) -> Self {
        LockTable {
            expire,
            groups: BTreeMap::new(),
        }
    }

    /// Lock `mqs` for `client` at `now`: a queue free, expired, or already held by `client`
    /// (renewed) is granted. Returns the queues `client` now holds of those asked for.
    pub fn try_lock_batch(
        &mut self,
        group: &str,
        mqs: &[MessageQueue],
        client: &str,
        now: Millis,
    ) -> BTreeSet<MessageQueue> {
        let table = self.groups.entry(group.to_owned()).or_default();
        let mut granted = BTreeSet::new();
        for mq in mqs {
            let free = match table.get(mq) {
                None => true,
                Some((holder, at)) => holder == client || now.saturating_sub(*at) > self.expire,
            };
            if free {
                table.insert(mq.clone(), (client.to_owned(), now));
                granted.insert(mq.clone());
            }
        }
        if table.is_empty() {
            self.groups.remove(group);
        }
        granted
    }

    /// Drop every lock expired at `now` (and groups left with none): the table then holds only
    /// locks renewed within the expiry. Returns how many were dropped.
    pub fn prune(&mut self, now: Millis) -> usize {
        let expire = self.expire;
        let mut dropped = 0;
        self.groups.retain(|_, table| {
            let before = table.len();
            table.retain(|_, (_, at)| now.saturating_sub(*at) <= expire);
            dropped += before - table.len();
            !table.is_empty()
        });
        dropped
    }

    /// How many locks the table holds (expired ones not yet pruned included).
    pub fn len(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }

    /// Whether the table holds no lock.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Release `mqs` held by `client`; others' locks stay.
    pub fn unlock_batch(&mut self, group: &str, mqs: &[MessageQueue], client: &str) {
        if let Some(table) = self.groups.get_mut(group) {
            for mq in mqs {
                if table.get(mq).is_some_and(|(h, _)| h == client) {
                    table.remove(mq);
                }
            }
            if table.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// Who holds `mq` for `group` at `now`, if the lock has not expired.
    pub fn holder(&self, group: &str, mq: &MessageQueue, now: Millis) -> Option<&str> {
        let (holder, at) = self.groups.get(group)?.get(mq)?;
        (now.saturating_sub(*at) <= self.expire).then_some(holder.as_str())
    }
}

/// One client connection of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientChannel {
    /// The client's id (`clientID` of its heartbeat).
    pub client_id: String,
    /// When its last heartbeat arrived.
    pub last_update: Millis,
}

/// A consumer group as the broker sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConsumerGroup {
    /// Client connections by remote address.
    pub channels: BTreeMap<String, ClientChannel>,
    /// Subscribed topics and their expressions.
    pub subscriptions: BTreeMap<String, String>,
}

/// The broker's consumer groups (`ConsumerManager`): who is in each group, by heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConsumerGroups {
    expire: Millis,
    groups: BTreeMap<String, ConsumerGroup>,
}

impl ConsumerGroups {
    /// Groups whose channels expire after `expire` ms without a heartbeat.
    pub fn new(expire: Millis) -> Self {
        ConsumerGroups {
            expire,
            groups: BTreeMap::new(),
        }
    }

    /// A heartbeat of `client_id` over the connection `addr` for `group` subscribing `subs`
    /// (topic → expression). Returns whether the group's membership changed (a new channel):
    /// then the group's clients are told (`NOTIFY_CONSUMER_IDS_CHANGED`).
    pub fn register(
        &mut self,
        group: &str,
        addr: &str,
        client_id: &str,
        subs: BTreeMap<String, String>,
        now: Millis,
    ) -> bool {
        let g = self.groups.entry(group.to_owned()).or_default();
        let new = match g.channels.get_mut(addr) {
            Some(c) if c.client_id == client_id => {
                c.last_update = now;
                false
            }
            _ => {
                g.channels.insert(
                    addr.to_owned(),
                    ClientChannel {
                        client_id: client_id.to_owned(),
                        last_update: now,
                    },
                );
                true
            }
        };
        g.subscriptions = subs;
        new
    }

    /// `client_id` on `addr` left `group` (UNREGISTER_CLIENT). Returns whether it was a member.
    pub fn unregister(&mut self, group: &str, addr: &str) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let was = g.channels.remove(addr).is_some();
        if g.channels.is_empty() {
            self.groups.remove(group);
        }
        was
    }

    /// The connection `addr` closed: the groups it was in (each changed).
    pub fn channel_closed(&mut self, addr: &str) -> Vec<String> {
        let groups: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.channels.contains_key(addr))
            .map(|(n, _)| n.clone())
            .collect();
        for g in &groups {
            self.unregister(g, addr);
        }
        groups
    }

    /// Drop channels silent for longer than the expiry at `now`; returns (group, addr) of each.
    pub fn scan_expired(&mut self, now: Millis) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        for (name, g) in &self.groups {
            for (addr, c) in &g.channels {
                if now.saturating_sub(c.last_update) > self.expire {
                    gone.push((name.clone(), addr.clone()));
                }
            }
        }
        for (g, a) in &gone {
            self.unregister(g, a);
        }
        gone
    }

    /// The client ids of `group`, sorted, without duplicates (GET_CONSUMER_LIST_BY_GROUP).
    pub fn client_ids(&self, group: &str) -> Vec<String> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        let ids: BTreeSet<&str> = g.channels.values().map(|c| c.client_id.as_str()).collect();
        ids.into_iter().map(str::to_owned).collect()
    }

    /// The channel addresses of `group`.
    pub fn channels(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(|g| g.channels.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `group`, if it has members.
    pub fn group(&self, group: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group)
    }

    /// How many groups have members, and how many channels they hold in all.
    pub fn len(&self) -> (usize, usize) {
        (
            self.groups.len(),
            self.groups.values().map(|g| g.channels.len()).sum(),
        )
    }

    /// Whether no group has a member.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_levels_parse_and_clamp() {
        let d = DelayLevels::default();
        assert_eq!(d.max_level(), 18);
        assert_eq!(d.delay(1), Some(1_000));
        assert_eq!(d.delay(5), Some(60_000));
        assert_eq!(d.delay(18), Some(7_200_000));
        assert_eq!(d.delay(99), Some(7_200_000));
        assert_eq!(d.delay(0), None);
        assert_eq!(d.queue_of(3), Some(2));
        // Level 1 is queue 0; past the highest it clamps to the last queue; 0 and below none.
        assert_eq!(d.queue_of(1), Some(0));
        assert_eq!(d.queue_of(18), Some(17));
        assert_eq!(d.queue_of(19), Some(17));
        assert_eq!(d.queue_of(0), None);
        assert_eq!(d.queue_of(-1), None);
        // Every unit RocketMQ's messageDelayLevel takes.
        let units = DelayLevels::parse("2s 3m 4h 1d").unwrap();
        assert_eq!(
            (1..=4).map(|l| units.delay(l).unwrap()).collect::<Vec<_>>(),
            [2_000, 180_000, 14_400_000, 86_400_000]
        );
        assert!(DelayLevels::parse("1x").is_err());
        assert!(DelayLevels::parse("").is_err());
    }

    #[test]
    fn prune_drops_exactly_the_expired_locks() {
        let q = |i| MessageQueue::new("T", "b", i);
        let mut t = LockTable::new(100);
        t.try_lock_batch("g", &[q(0), q(1)], "c1", 0);
        t.try_lock_batch("g", &[q(2)], "c2", 50);
        t.try_lock_batch("h", &[q(0)], "c3", 0);
        assert_eq!(t.len(), 4);
        assert!(!t.is_empty());
        // At the expiry itself a lock still holds (`<=`), as `holder` says.
        assert_eq!(t.prune(100), 0);
        assert_eq!(t.holder("g", &q(0), 100), Some("c1"));
        // One past it: c1's two and c3's one go, c2's (renewed at 50) stays, and the group
        // left empty goes with them.
        assert_eq!(t.prune(101), 3);
        assert_eq!(t.len(), 1);
        assert_eq!(t.holder("g", &q(2), 101), Some("c2"));
        assert_eq!(t.prune(151), 1);
        assert!(t.is_empty());
        assert_eq!(t.prune(1_000), 0);
    }

    #[test]
    fn a_heartbeat_changes_membership_only_for_a_new_channel_or_client() {
        let subs = || BTreeMap::from([("T".to_string(), "*".to_string())]);
        let mut g = ConsumerGroups::new(120_000);
        assert!(g.register("g", "a:1", "c1", subs(), 0));
        assert!(!g.register("g", "a:1", "c1", subs(), 10), "a renewal");
        // Another client on the same connection address (a reconnect reusing the port) is a
        // change of membership.
        assert!(g.register("g", "a:1", "c2", subs(), 20));
        assert_eq!(g.client_ids("g"), ["c2"]);
        assert!(g.register("g", "a:2", "c1", subs(), 30));
        assert_eq!(g.client_ids("g"), ["c1", "c2"]);
        assert_eq!(g.len(), (1, 2));
        assert_eq!(g.channels("g"), ["a:1", "a:2"]);
        assert!(g.channels("other").is_empty());
        assert_eq!(g.group("g").map(|x| x.subscriptions.clone()), Some(subs()));
        assert!(g.group("other").is_none());
        // The last channel gone, the group goes too.
        assert!(!g.is_empty());
        assert!(g.unregister("g", "a:1"));
        assert_eq!(g.channel_closed("a:2"), ["g"]);
        assert!(g.is_empty());
        assert!(g.group("g").is_none());
    }

    #[test]
    fn retry_and_dead_letter_topics_are_rocketmq_names() {
        assert_eq!(retry_topic("g1"), "%RETRY%g1");
        assert_eq!(dlq_topic("g1"), "%DLQ%g1");
    }

    #[test]
    fn topic_validation_follows_topic_validator() {
        assert_eq!(invalid_topic(""), Some("the specified topic is blank"));
        // 127 characters is the longest allowed.
        assert_eq!(invalid_topic(&"t".repeat(127)), None);
        assert!(
            invalid_topic(&"t".repeat(128))
                .unwrap()
                .contains("max length 127")
        );
        // Every allowed character alone passes; anything else is refused.
        for ok in ["a", "Z", "0", "%", "-", "_", "|", "%RETRY%g-1_a|b"] {
            assert_eq!(invalid_topic(ok), None, "{ok:?}");
        }
        for bad in ["a b", "a.b", "a/b", "a*", "é", "a\0"] {
            assert!(
                invalid_topic(bad).unwrap().contains("illegal characters"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn send_back_follows_rocketmq() {
        assert_eq!(
            send_back_target(0, 16, 0),
            SendBackTarget::Retry { delay_level: 3 }
        );
        assert_eq!(
            send_back_target(2, 16, 0),
            SendBackTarget::Retry { delay_level: 5 }
        );
        assert_eq!(
            send_back_target(2, 16, 7),
            SendBackTarget::Retry { delay_level: 7 }
        );
        assert_eq!(send_back_target(16, 16, 0), SendBackTarget::DeadLetter);
        assert_eq!(send_back_target(0, 16, -1), SendBackTarget::DeadLetter);
    }

    #[test]
    fn locate_and_pull_codes() {
        assert_eq!(locate(0, 0, 0, true), Err((GetStatus::NoMessageInQueue, 0)));
        assert_eq!(
            pull_code(GetStatus::NoMessageInQueue, 0),
            PullCode::NoNewMessage
        );
        assert_eq!(
            pull_code(GetStatus::NoMessageInQueue, 5),
            PullCode::OffsetMoved
        );
        assert_eq!(locate(3, 5, 10, true), Err((GetStatus::OffsetTooSmall, 5)));
        assert_eq!(locate(3, 5, 10, false), Err((GetStatus::OffsetTooSmall, 3)));
        assert_eq!(
            locate(10, 0, 10, true),
            Err((GetStatus::OffsetOverflowOne, 10))
        );
        assert_eq!(
            locate(12, 0, 10, true),
            Err((GetStatus::OffsetOverflowBadly, 10))
        );
        assert_eq!(locate(4, 0, 10, true), Ok(()));
        assert!(suspend(PullCode::NoNewMessage, true, true));
        assert!(!suspend(PullCode::NoNewMessage, true, false));
        assert!(!suspend(PullCode::OffsetMoved, true, true));
    }

    #[test]
    fn auto_create_copies_tbw102() {
        let on = auto_create_template(true);
        let t = auto_create("T", &on, 4).expect("created");
        assert_eq!((t.read_queue_nums, t.write_queue_nums), (4, 4));
        assert_eq!(t.perm, Perm::READ_WRITE);
        assert_eq!(
            auto_create("T", &on, 16).expect("created").write_queue_nums,
            8
        );
        assert!(auto_create("T", &auto_create_template(false), 4).is_none());
        assert!(auto_create("bad topic", &on, 4).is_none());
    }

    #[test]
    fn send_queue_checks() {
        let t = TopicConfig::new("T", 4);
        assert_eq!(send_queue(true, "b", &t, 2, 0), Ok(2));
        assert_eq!(send_queue(true, "b", &t, -1, 7), Ok(3));
        assert!(matches!(
            send_queue(true, "b", &t, 4, 0),
            Err(SendRefused::BadQueue { .. })
        ));
        assert!(matches!(
            send_queue(false, "b", &t, 0, 0),
            Err(SendRefused::NotWriteable(_))
        ));
    }

    #[test]
    fn hold_and_query_offsets() {
        assert_eq!(hold_time(true, 15_000, 1_000, 300_000), 15_000);
        assert_eq!(hold_time(true, -5, 1_000, 300_000), 0);
        assert_eq!(hold_time(true, 1 << 40, 1_000, 300_000), 300_000);
        assert_eq!(hold_time(false, 15_000, 1_000, 300_000), 1_000);
        assert_eq!(query_offset(Some(7), 3, true), Some(7));
        assert_eq!(query_offset(None, 0, true), Some(0));
        assert_eq!(query_offset(None, 0, false), None);
        assert_eq!(query_offset(None, 5, true), None);
    }

    #[test]
    fn tag_filter() {
        let f = TagFilter::parse("a || b", |s| s.len() as i32 * 10);
        assert!(f.matches(10));
        assert!(!f.matches(30));
        assert!(TagFilter::parse("*", |_| 0).matches(12345));
    }

    #[test]
    fn groups_track_channels() {
        let mut g = ConsumerGroups::new(100);
        assert!(g.register("G", "a:1", "c1", BTreeMap::new(), 0));
        assert!(!g.register("G", "a:1", "c1", BTreeMap::new(), 50));
        assert!(g.register("G", "a:2", "c2", BTreeMap::new(), 60));
        assert_eq!(g.client_ids("G"), ["c1", "c2"]);
        assert_eq!(g.scan_expired(150), vec![]);
        assert_eq!(g.scan_expired(151), vec![("G".into(), "a:1".into())]);
        assert_eq!(g.client_ids("G"), ["c2"]);
        assert_eq!(g.channel_closed("a:2"), vec!["G".to_string()]);
        assert!(g.group("G").is_none());
    }
}
