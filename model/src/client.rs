//! The client's decisions beyond queue selection ([`crate::producer`]) and allocation
//! ([`crate::consumer`]), as Apache RocketMQ's Java client makes them (protocol.md §6–§7):
//!
//! - which broker address a send, pull, offset or lock request goes to
//!   ([`address_in_publish`], [`address_in_subscribe`]) and which brokers get heartbeats
//!   ([`heartbeat_targets`]);
//! - when a polled route counts as changed ([`route_changed`]) and which cached broker addresses
//!   are offline ([`offline_addresses`]); the route a producer falls back to when its topic does
//!   not exist yet ([`default_topic_route`]);
//! - what a subscription expression passes ([`Subscription`]);
//! - where a newly owned queue starts ([`start_offset`]);
//! - when a push consumer pauses its pulls ([`FlowControl`]) and what it does after each pull
//!   answer ([`after_pull`]);
//! - when a pull or a local orderly lock has expired ([`expired`]), and what an orderly consumer
//!   does with a message that keeps failing ([`orderly_retry`]);
//! - the built-in hash selector of ordered sends ([`select_by_hash`]).
//!
//! Pure code: the caller passes the clock and the answers it received.

use std::collections::{BTreeMap, BTreeSet};

use crate::Millis;
use crate::route::{BrokerData, MASTER_ID, MessageQueue, TopicRouteData};

pub use crate::broker::admit::NOT_ALLOWED_SEND_TOPICS;

/// Why a producer refuses a message before sending it (`Validators.checkMessage`): a bad or
/// system topic, an empty body, or a body over `max_message_size`.
pub fn check_message(topic: &str, body_len: usize, max_message_size: usize) -> Result<(), String> {
    if let Some(why) = crate::broker::invalid_topic(topic) {
        return Err(why.to_owned());
    }
    if NOT_ALLOWED_SEND_TOPICS.contains(&topic) {
        return Err(format!("sending message to topic[{topic}] is forbidden"));
    }
    if body_len == 0 {
        return Err("the message body length is zero".into());
    }
    if body_len > max_message_size {
        return Err(format!(
            "the message body size over max value, MAX: {max_message_size}"
        ));
    }
    Ok(())
}

/// The master address of a broker group: producers write to masters only
/// (`findBrokerAddressInPublish`).
pub fn address_in_publish(broker: &BrokerData) -> Option<&str> {
    broker.master_addr()
}

/// A consumer's choice of address (`findBrokerAddressInSubscribe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscribeAddress<'a> {
    /// The address.
    pub addr: &'a str,
    /// Whether it is a slave's.
    pub slave: bool,
}

/// `findBrokerAddressInSubscribe(brokerName, brokerId, onlyThisBroker)`: the member with
/// `broker_id`; for a slave id that is missing, the next id; then, unless `only_this_broker`, any
/// member (the lowest id: the master if it is there).
pub fn address_in_subscribe(
    broker: &BrokerData,
    broker_id: u64,
    only_this_broker: bool,
) -> Option<SubscribeAddress<'_>> {
    let found = |id: u64| {
        broker.broker_addrs.get(&id).map(|a| SubscribeAddress {
            addr: a,
            slave: id != MASTER_ID,
        })
    };
    found(broker_id)
        .or_else(|| {
            (broker_id != MASTER_ID)
                .then(|| found(broker_id + 1))
                .flatten()
        })
        .or_else(|| {
            if only_this_broker {
                None
            } else {
                broker
                    .broker_addrs
                    .iter()
                    .next()
                    .map(|(id, a)| SubscribeAddress {
                        addr: a,
                        slave: *id != MASTER_ID,
                    })
            }
        })
}

/// The addresses a client heartbeats (`sendHeartbeatToAllBroker`): every member of every group
/// when the client has a consumer, the masters only when it has only producers.
pub fn heartbeat_targets<'a>(
    brokers: impl IntoIterator<Item = &'a BrokerData>,
    has_consumer: bool,
) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    for b in brokers {
        for (id, addr) in &b.broker_addrs {
            if has_consumer || *id == MASTER_ID {
                out.insert(addr.as_str());
            }
        }
    }
    out
}

/// `topicRouteDataChanged`: whether a freshly polled route differs from the one held, ignoring
/// the order of its lists (RocketMQ sorts both before comparing).
pub fn route_changed(held: Option<&TopicRouteData>, fresh: &TopicRouteData) -> bool {
    let Some(held) = held else {
        return true;
    };
    let sorted = |r: &TopicRouteData| {
        let mut q = r.queue_datas.clone();
        q.sort();
        let mut b = r.broker_datas.clone();
        b.sort();
        (q, b, r.order_topic_conf.clone())
    };
    sorted(held) != sorted(fresh)
}

/// `cleanOfflineBroker`: the cached addresses (by group) that no route of any topic lists any
/// more. The client forgets them and closes their connections.
pub fn offline_addresses<'a>(
    cached: &'a BTreeMap<String, BTreeMap<u64, String>>,
    routes: impl IntoIterator<Item = &'a TopicRouteData>,
) -> Vec<(&'a str, u64, &'a str)> {
    let mut live: BTreeSet<&str> = BTreeSet::new();
    for r in routes {
        for b in &r.broker_datas {
            live.extend(b.broker_addrs.values().map(String::as_str));
        }
    }
    let mut out = Vec::new();
    for (name, addrs) in cached {
        for (id, addr) in addrs {
            if !live.contains(addr.as_str()) {
                out.push((name.as_str(), *id, addr.as_str()));
            }
        }
    }
    out
}

/// The route a producer uses for a topic the NameServers do not know yet
/// (`tryToFindTopicPublishInfo` with `isDefault`): the auto-create topic's (`TBW102`) route with
/// every group's queue counts capped at `min(default_topic_queue_nums, readQueueNums)`, so the
/// first send makes the broker create the topic.
pub fn default_topic_route(
    auto_create: &TopicRouteData,
    default_topic_queue_nums: u32,
) -> TopicRouteData {
    let mut route = auto_create.clone();
    for qd in &mut route.queue_datas {
        let n = default_topic_queue_nums.min(qd.read_queue_nums);
        qd.read_queue_nums = n;
        qd.write_queue_nums = n;
    }
    route
}

/// A subscription to one topic (`SubscriptionData` built by `FilterAPI.buildSubscriptionData`):
/// the expression split on `||`, trimmed; `*` or empty means every message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The expression as given.
    pub expression: String,
    /// The tags; empty means every message.
    pub tags: BTreeSet<String>,
}

impl Subscription {
    /// Parse a TAG expression (`*`, `""`, `a || b`).
    pub fn parse(expression: &str) -> Subscription {
        let trimmed = expression.trim();
        let tags = if trimmed.is_empty() || trimmed == "*" {
            BTreeSet::new()
        } else {
            trimmed
                .split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let expression = if tags.is_empty() {
            "*".to_owned()
        } else {
            trimmed.to_owned()
        };
        Subscription { expression, tags }
    }

    /// Whether every message passes.
    pub fn is_all(&self) -> bool {
        self.tags.is_empty()
    }

    /// The client-side re-check after a pull (`PullAPIWrapper.processPullResult`): the broker
    /// filters by tag hash, which can collide, so the client keeps only messages whose tag is
    /// one of the subscribed tags.
    pub fn matches(&self, tag: Option<&str>) -> bool {
        self.is_all() || tag.is_some_and(|t| self.tags.contains(t))
    }
}

/// Where a consumer group starts on a queue it has no offset for (`ConsumeFromWhere`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConsumeFromWhere {
    /// `CONSUME_FROM_LAST_OFFSET` (the default): the queue's end.
    #[default]
    LastOffset,
    /// `CONSUME_FROM_FIRST_OFFSET`: offset 0 (the broker moves a pull below its minimum up).
    FirstOffset,
    /// `CONSUME_FROM_TIMESTAMP`: the first message stored at or after this time (ms).
    Timestamp(i64),
}

impl ConsumeFromWhere {
    /// The Java enum name, as heartbeats carry it.
    pub fn name(self) -> &'static str {
        match self {
            ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET",
            ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
            ConsumeFromWhere::Timestamp(_) => "CONSUME_FROM_TIMESTAMP",
        }
    }
}

/// What the broker said about a group's committed offset on a queue (QUERY_CONSUMER_OFFSET).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommittedOffset {
    /// An offset (SUCCESS).
    At(u64),
    /// None is stored (QUERY_NOT_FOUND, Java's `-1`).
    NotFound,
    /// The query failed (another code or no answer, Java's `-2`).
    Failed,
}

/// Where a newly owned queue starts (`computePullFromWhereWithException`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StartOffset {
    /// At this offset.
    At(u64),
    /// At the queue's max offset (ask GET_MAX_OFFSET).
    Max,
    /// At the first message stored at or after this time (ask SEARCH_OFFSET_BY_TIMESTAMP).
    ByTime(i64),
    /// Not now: the queue is not taken and the next rebalance tries again.
    Retry,
}

/// `computePullFromWhereWithException`: the committed offset if there is one; otherwise by
/// `from`, except that a retry topic (`%RETRY%`) starts at 0 under LAST_OFFSET and at the max
/// under TIMESTAMP; a failed query takes nothing.
pub fn start_offset(
    committed: CommittedOffset,
    from: ConsumeFromWhere,
    retry_topic: bool,
) -> StartOffset {
    match committed {
        CommittedOffset::At(o) => StartOffset::At(o),
        CommittedOffset::Failed => StartOffset::Retry,
        CommittedOffset::NotFound => match from {
            ConsumeFromWhere::LastOffset if retry_topic => StartOffset::At(0),
            ConsumeFromWhere::LastOffset => StartOffset::Max,
            ConsumeFromWhere::FirstOffset => StartOffset::At(0),
            ConsumeFromWhere::Timestamp(_) if retry_topic => StartOffset::Max,
            ConsumeFromWhere::Timestamp(t) => StartOffset::ByTime(t),
        },
    }
}

/// Flow control of a push consumer's pulls (`DefaultMQPushConsumerImpl.pullMessage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowControl {
    /// `pullThresholdForQueue`: cached messages per queue (1000).
    pub max_cached_msgs: u64,
    /// `pullThresholdSizeForQueue`: cached bytes of bodies per queue (100 MiB).
    pub max_cached_bytes: u64,
    /// `consumeConcurrentlyMaxSpan`: the widest offset span in flight, concurrent mode (2000).
    pub max_span: u64,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl {
            max_cached_msgs: 1000,
            max_cached_bytes: 100 * 1024 * 1024,
            max_span: 2000,
        }
    }
}

/// Why a pull waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullPause {
    /// Too many messages cached.
    CachedMessages,
    /// Too many bytes cached.
    CachedBytes,
    /// The span between the first and last cached offsets is too wide (concurrent only).
    Span,
}

impl FlowControl {
    /// Whether the next pull of a queue waits (and is tried again `PULL_DELAY_FLOW_CONTROL` later).
    /// `span` is `maxOffset - minOffset` of the cached messages; orderly consumers skip the span
    /// check, as RocketMQ's do.
    pub fn pause(
        &self,
        cached_msgs: u64,
        cached_bytes: u64,
        span: u64,
        orderly: bool,
    ) -> Option<PullPause> {
        if cached_msgs > self.max_cached_msgs {
            Some(PullPause::CachedMessages)
        } else if cached_bytes > self.max_cached_bytes {
            Some(PullPause::CachedBytes)
        } else if !orderly && span > self.max_span {
            Some(PullPause::Span)
        } else {
            None
        }
    }
}

/// How long a paused pull waits before it looks again (`PULL_TIME_DELAY_MILLS_WHEN_FLOW_CONTROL`).
pub const PULL_DELAY_FLOW_CONTROL: Millis = 50;

/// A pull's answer as the consumer classifies it (`PullStatus`, with errors apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullAnswer {
    /// FOUND: messages (`next_begin` after them).
    Found {
        /// The offset to pull next.
        next_begin: u64,
    },
    /// NO_NEW_MSG or NO_MATCHED_MSG: nothing to consume up to `next_begin`.
    Nothing {
        /// The offset to pull next.
        next_begin: u64,
    },
    /// OFFSET_ILLEGAL: the broker moved the queue's offset to `next_begin`.
    OffsetIllegal {
        /// Where the queue continues.
        next_begin: u64,
    },
    /// The broker refused (FLOW_CONTROL and the like, SUBSCRIPTION_NOT_LATEST, ...) or answered
    /// nothing (connection, timeout).
    Error {
        /// The broker asked to slow down (`FLOW_CONTROL`, `SYSTEM_BUSY`).
        busy: bool,
    },
}

/// What the pull loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullNext {
    /// Pull again from `offset` after `delay` ms (0: at once).
    Pull {
        /// The offset.
        offset: u64,
        /// The delay.
        delay: Millis,
    },
    /// Drop the queue: commit and freeze `offset` for it, and rebalance at once.
    DropAndRebalance {
        /// The offset to commit.
        offset: u64,
    },
}

/// `PullCallback`: where and when the next pull of a queue goes after `answer`, for a queue at
/// `current` (the offset the pull asked for). Errors wait `on_error` ms
/// (`pullTimeDelayMillsWhenException`, 1000), a busy broker 20 ms (`FLOW_CONTROL`).
pub fn after_pull(answer: PullAnswer, current: u64, on_error: Millis) -> PullNext {
    match answer {
        PullAnswer::Found { next_begin } | PullAnswer::Nothing { next_begin } => PullNext::Pull {
            offset: next_begin,
            delay: 0,
        },
        PullAnswer::OffsetIllegal { next_begin } => {
            PullNext::DropAndRebalance { offset: next_begin }
        }
        PullAnswer::Error { busy } => PullNext::Pull {
            offset: current,
            delay: if busy { 20 } else { on_error },
        },
    }
}

/// Response codes a pull answer is classified by (`MQClientAPIImpl.processPullResponse`).
pub mod pull_code {
    /// SUCCESS: messages.
    pub const FOUND: i32 = 0;
    /// SYSTEM_BUSY.
    pub const SYSTEM_BUSY: i32 = 2;
    /// PULL_NOT_FOUND: nothing new.
    pub const NOT_FOUND: i32 = 19;
    /// PULL_RETRY_IMMEDIATELY: nothing matched the subscription.
    pub const RETRY_IMMEDIATELY: i32 = 20;
    /// PULL_OFFSET_MOVED.
    pub const OFFSET_MOVED: i32 = 21;
    /// FLOW_CONTROL: the broker asks to slow down.
    pub const FLOW_CONTROL: i32 = 215;
}

/// What a pull's answer code means (`processPullResponse`): FOUND, NO_NEW_MSG / NO_MATCHED_MSG
/// (nothing up to `next_begin`), OFFSET_ILLEGAL, or an error (busy when the broker asks to slow
/// down). `None` for the code means no answer at all (connection, timeout).
pub fn pull_answer(code: Option<i32>, next_begin: u64) -> PullAnswer {
    match code {
        Some(pull_code::FOUND) => PullAnswer::Found { next_begin },
        Some(pull_code::NOT_FOUND | pull_code::RETRY_IMMEDIATELY) => {
            PullAnswer::Nothing { next_begin }
        }
        Some(pull_code::OFFSET_MOVED) => PullAnswer::OffsetIllegal { next_begin },
        Some(c) => PullAnswer::Error {
            busy: c == pull_code::SYSTEM_BUSY || c == pull_code::FLOW_CONTROL,
        },
        None => PullAnswer::Error { busy: false },
    }
}

/// `PullSysFlag` bits.
pub mod pull_flag {
    /// Commit this offset on the way.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// Hold the pull while nothing is new (long polling).
    pub const SUSPEND: i32 = 0x2;
    /// The subscription travels with the pull.
    pub const SUBSCRIPTION: i32 = 0x4;
}

/// The `sysFlag` of a push consumer's pull (`pullKernelImpl`): commit the held offset on the
/// way only when there is one (> 0), in clustering, to a master (a slave clears the flag);
/// always suspend; send the subscription when `post_subscription`.
pub fn pull_sys_flag(
    commit_offset: Option<u64>,
    clustering: bool,
    from_slave: bool,
    post_subscription: bool,
) -> i32 {
    let mut f = pull_flag::SUSPEND;
    if commit_offset.is_some_and(|o| o > 0) && clustering && !from_slave {
        f |= pull_flag::COMMIT_OFFSET;
    }
    if post_subscription {
        f |= pull_flag::SUBSCRIPTION;
    }
    f
}

/// `maxReconsumeTimes` as a consumer applies it: the configured value when set (≥ 0), else
/// RocketMQ's `-1`: 16 for concurrent consumers, unbounded for orderly ones.
pub fn max_reconsume_times(configured: Option<i32>, orderly: bool) -> i32 {
    match configured {
        Some(m) if m >= 0 => m,
        _ if orderly => i32::MAX,
        _ => crate::broker::DEFAULT_MAX_RECONSUME_TIMES,
    }
}

/// Whether something last done at `last` is expired at `now` after `max_live` ms (a pull:
/// `pullMaxIdleTime` 120 s; a local orderly lock: `lockMaxLiveTime` 30 s).
pub fn expired(last: Millis, now: Millis, max_live: Millis) -> bool {
    now.saturating_sub(last) > max_live
}

/// The local lock of an orderly queue expires after this long without a renewal
/// (`rocketmq.client.rebalance.lockMaxLiveTime`), half the broker's 60 s.
pub const LOCAL_LOCK_MAX_LIVE_MS: Millis = 30_000;
/// A queue not pulled for this long is dropped and taken again (`pullMaxIdleTime`).
pub const PULL_MAX_IDLE_MS: Millis = 120_000;

/// What an orderly consumer does with a message its handler asked to retry
/// (`ConsumeMessageOrderlyService.checkReconsumeTimes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderlyRetry {
    /// Keep it at the head of the queue and consume it again after a pause.
    Suspend,
    /// It failed `max` times: send it to the group's dead-letter topic and go on.
    DeadLetter,
}

/// Whether a message consumed `reconsume_times` times before is retried again or given up.
pub fn orderly_retry(reconsume_times: i32, max_reconsume_times: i32) -> OrderlyRetry {
    if reconsume_times >= max_reconsume_times {
        OrderlyRetry::DeadLetter
    } else {
        OrderlyRetry::Suspend
    }
}

/// `SelectMessageQueueByHash`: `queues[abs(hash % len)]`, so every message with the same key
/// (Java `hashCode()` of the argument) goes to the same queue while the list is unchanged.
pub fn select_by_hash(queues: &[MessageQueue], hash: i32) -> Option<&MessageQueue> {
    let n = i32::try_from(queues.len()).ok().filter(|n| *n > 0)?;
    let i = (hash % n).unsigned_abs() as usize;
    queues.get(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Perm, QueueData};

    fn group(name: &str, ids: &[u64]) -> BrokerData {
        BrokerData {
            cluster: "C".into(),
            broker_name: name.into(),
            broker_addrs: ids.iter().map(|i| (*i, format!("{name}-{i}"))).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_are_checked_as_validators_does() {
        assert!(check_message("TopicTest", 1, 4).is_ok());
        assert!(check_message("", 1, 4).is_err());
        assert!(check_message("a b", 1, 4).is_err());
        assert!(check_message("SCHEDULE_TOPIC_XXXX", 1, 4).is_err());
        assert!(check_message("T", 0, 4).is_err());
        assert!(check_message("T", 5, 4).unwrap_err().contains("MAX: 4"));
        assert!(
            check_message("T", 4, 4).is_ok(),
            "a body of exactly the maximum is sent"
        );
        assert!(check_message(&"x".repeat(128), 1, 4).is_err());
    }

    #[test]
    fn subscribe_address_falls_back_as_java() {
        let b = group("a", &[0, 1]);
        assert_eq!(address_in_subscribe(&b, 0, true).unwrap().addr, "a-0");
        let s = address_in_subscribe(&b, 1, false).unwrap();
        assert_eq!((s.addr, s.slave), ("a-1", true));
        let only_slave = group("a", &[1]);
        assert_eq!(address_in_subscribe(&only_slave, 0, true), None);
        let s = address_in_subscribe(&only_slave, 0, false).unwrap();
        assert_eq!((s.addr, s.slave), ("a-1", true));
        let two = group("a", &[0, 2]);
        // id 1 is missing: try 2, a slave.
        assert_eq!(address_in_subscribe(&two, 1, true).unwrap().addr, "a-2");
        assert_eq!(address_in_publish(&only_slave), None);
        assert_eq!(address_in_publish(&b), Some("a-0"), "the master's");
        assert_eq!(address_in_publish(&two), Some("a-0"));
    }

    #[test]
    fn heartbeats_go_to_masters_only_without_consumers() {
        let gs = [group("a", &[0, 1]), group("b", &[1])];
        assert_eq!(
            heartbeat_targets(&gs, false)
                .into_iter()
                .collect::<Vec<_>>(),
            ["a-0"]
        );
        assert_eq!(heartbeat_targets(&gs, true).len(), 3);
    }

    #[test]
    fn route_change_ignores_order() {
        let mut r = TopicRouteData::of_masters("C", [("a", "1"), ("b", "2")], 4);
        let mut swapped = r.clone();
        swapped.queue_datas.reverse();
        swapped.broker_datas.reverse();
        assert!(!route_changed(Some(&r), &swapped));
        assert!(route_changed(None, &r));
        let before = r.clone();
        r.queue_datas[0].perm = Perm(Perm::READ);
        assert!(route_changed(Some(&before), &r));
    }

    #[test]
    fn offline_addresses_are_those_no_route_lists() {
        let r = TopicRouteData::of_masters("C", [("a", "h1")], 1);
        let mut cached = BTreeMap::new();
        cached.insert(
            "a".to_string(),
            BTreeMap::from([(0, "h1".to_string()), (1, "h9".to_string())]),
        );
        cached.insert("b".to_string(), BTreeMap::from([(0, "h2".to_string())]));
        assert_eq!(
            offline_addresses(&cached, [&r]),
            [("a", 1, "h9"), ("b", 0, "h2")]
        );
    }

    #[test]
    fn default_route_caps_queue_counts() {
        let mut r = TopicRouteData::of_masters("C", [("a", "h1")], 8);
        r.queue_datas.push(QueueData {
            broker_name: "b".into(),
            read_queue_nums: 2,
            write_queue_nums: 8,
            perm: Perm(7),
            topic_sys_flag: 0,
        });
        let d = default_topic_route(&r, 4);
        assert_eq!(
            (
                d.queue_datas[0].read_queue_nums,
                d.queue_datas[0].write_queue_nums
            ),
            (4, 4)
        );
        assert_eq!(
            (
                d.queue_datas[1].read_queue_nums,
                d.queue_datas[1].write_queue_nums
            ),
            (2, 2)
        );
    }

    #[test]
    fn subscriptions_parse_and_match() {
        let all = Subscription::parse(" * ");
        assert!(all.is_all() && all.matches(None) && all.matches(Some("x")));
        assert_eq!(all.expression, "*");
        let s = Subscription::parse("TagA || TagB ||");
        assert_eq!(s.tags.len(), 2);
        assert!(s.matches(Some("TagB")));
        assert!(!s.matches(Some("TagC")));
        assert!(!s.matches(None));
        assert!(Subscription::parse("").is_all());
    }

    #[test]
    fn start_offsets_follow_consume_from_where() {
        use CommittedOffset::*;
        use ConsumeFromWhere::*;
        assert_eq!(start_offset(At(7), FirstOffset, false), StartOffset::At(7));
        assert_eq!(start_offset(Failed, FirstOffset, false), StartOffset::Retry);
        assert_eq!(start_offset(NotFound, LastOffset, false), StartOffset::Max);
        assert_eq!(start_offset(NotFound, LastOffset, true), StartOffset::At(0));
        assert_eq!(
            start_offset(NotFound, FirstOffset, true),
            StartOffset::At(0)
        );
        assert_eq!(
            start_offset(NotFound, Timestamp(5), false),
            StartOffset::ByTime(5)
        );
        assert_eq!(start_offset(NotFound, Timestamp(5), true), StartOffset::Max);
    }

    #[test]
    fn consume_from_where_names_are_javas() {
        assert_eq!(
            ConsumeFromWhere::default().name(),
            "CONSUME_FROM_LAST_OFFSET"
        );
        assert_eq!(
            ConsumeFromWhere::FirstOffset.name(),
            "CONSUME_FROM_FIRST_OFFSET"
        );
        assert_eq!(
            ConsumeFromWhere::Timestamp(5).name(),
            "CONSUME_FROM_TIMESTAMP"
        );
    }

    #[test]
    fn flow_control_pauses_in_order() {
        let f = FlowControl::default();
        assert_eq!(f.pause(1000, 0, 0, false), None);
        assert_eq!(f.pause(1001, 0, 0, false), Some(PullPause::CachedMessages));
        assert_eq!(
            f.pause(1, 100 * 1024 * 1024 + 1, 0, false),
            Some(PullPause::CachedBytes)
        );
        assert_eq!(f.pause(1, 1, 2001, false), Some(PullPause::Span));
        assert_eq!(f.pause(1, 1, 2001, true), None);
        // Exactly at a threshold is not over it.
        assert_eq!(f.pause(1, 100 * 1024 * 1024, 0, false), None);
        assert_eq!(f.pause(1, 1, 2000, false), None);
    }

    #[test]
    fn after_pull_moves_on_or_waits() {
        assert_eq!(
            after_pull(PullAnswer::Found { next_begin: 9 }, 1, 1000),
            PullNext::Pull {
                offset: 9,
                delay: 0
            }
        );
        assert_eq!(
            after_pull(PullAnswer::Error { busy: false }, 4, 1000),
            PullNext::Pull {
                offset: 4,
                delay: 1000
            }
        );
        assert_eq!(
            after_pull(PullAnswer::Error { busy: true }, 4, 1000),
            PullNext::Pull {
                offset: 4,
                delay: 20
            }
        );
        assert_eq!(
            after_pull(PullAnswer::OffsetIllegal { next_begin: 3 }, 10, 1000),
            PullNext::DropAndRebalance { offset: 3 }
        );
    }

    #[test]
    fn pull_answers_flags_and_reconsume_limits() {
        assert_eq!(pull_answer(Some(0), 5), PullAnswer::Found { next_begin: 5 });
        assert_eq!(
            pull_answer(Some(19), 5),
            PullAnswer::Nothing { next_begin: 5 }
        );
        assert_eq!(
            pull_answer(Some(20), 6),
            PullAnswer::Nothing { next_begin: 6 }
        );
        assert_eq!(
            pull_answer(Some(21), 1),
            PullAnswer::OffsetIllegal { next_begin: 1 }
        );
        assert_eq!(pull_answer(Some(215), 1), PullAnswer::Error { busy: true });
        assert_eq!(pull_answer(Some(2), 1), PullAnswer::Error { busy: true });
        assert_eq!(pull_answer(Some(24), 1), PullAnswer::Error { busy: false });
        assert_eq!(pull_answer(None, 1), PullAnswer::Error { busy: false });
        assert_eq!(pull_sys_flag(Some(3), true, false, true), 0x7);
        assert_eq!(pull_sys_flag(Some(0), true, false, false), 0x2);
        assert_eq!(
            pull_sys_flag(Some(3), true, true, false),
            0x2,
            "never commit through a slave"
        );
        assert_eq!(
            pull_sys_flag(Some(3), false, false, false),
            0x2,
            "broadcasting keeps its own"
        );
        assert_eq!(max_reconsume_times(None, false), 16);
        assert_eq!(max_reconsume_times(Some(-1), true), i32::MAX);
        assert_eq!(max_reconsume_times(Some(2), true), 2);
    }

    #[test]
    fn expiry_and_orderly_retry() {
        assert!(!expired(0, 30_000, LOCAL_LOCK_MAX_LIVE_MS));
        assert!(expired(0, 30_001, LOCAL_LOCK_MAX_LIVE_MS));
        assert!(!expired(10, 5, 1));
        assert_eq!(orderly_retry(15, 16), OrderlyRetry::Suspend);
        assert_eq!(orderly_retry(16, 16), OrderlyRetry::DeadLetter);
    }

    #[test]
    fn hash_selection_is_javas() {
        let qs: Vec<_> = (0..4).map(|i| MessageQueue::new("T", "a", i)).collect();
        assert_eq!(select_by_hash(&qs, 6).unwrap().queue_id, 2);
        // Java: -7 % 4 = -3, abs → 3.
        assert_eq!(select_by_hash(&qs, -7).unwrap().queue_id, 3);
        assert_eq!(select_by_hash(&qs, i32::MIN).unwrap().queue_id, 0);
        assert!(select_by_hash(&[], 1).is_none());
    }
}
