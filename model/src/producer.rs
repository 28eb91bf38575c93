//! Producer decisions: which queue a send goes to, which brokers it avoids, and when it retries.
//!
//! - [`TopicPublishInfo`] is built from a route exactly as RocketMQ's
//!   `topicRouteData2TopicPublishInfo` does (protocol.md §6.2): write queues of writeable brokers
//!   that have a master, brokers sorted by name, or the NameServer's order-topic configuration.
//! - [`SendIndex`] is the round-robin counter (`ThreadLocalIndex`). It is a plain value: a
//!   multithreaded client keeps one per thread, the model keeps one per producer.
//! - [`FaultStrategy`] is `MQFaultStrategy` + `LatencyFaultToleranceImpl` (§6.4): the latency and
//!   not-available tables of RocketMQ 4.x or 5.x, `pick_one_at_least`, and the fallbacks.
//! - [`SendAttempts`] is the retry loop of `sendDefaultImpl` (§6.5): how many attempts, which
//!   outcomes retry, the total time budget, and the previous broker each retry avoids.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Millis;
use crate::route::{MessageQueue, TopicRouteData};

/// What a producer knows about one topic: the queues it may write, in selection order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopicPublishInfo {
    /// Whether the queues come from the NameServer's order-topic configuration.
    pub order_topic: bool,
    /// The writable queues, brokers by name then queue id (or in `orderTopicConf` order).
    pub message_queues: Vec<MessageQueue>,
    /// Write queue count per broker (`getQueueIdByBroker`).
    write_queue_nums: BTreeMap<Arc<str>, u32>,
}

impl TopicPublishInfo {
    /// `topicRouteData2TopicPublishInfo`. Malformed `orderTopicConf` entries are skipped (Java
    /// would throw).
    pub fn from_route(topic: &str, route: &TopicRouteData) -> Self {
        let topic: Arc<str> = Arc::from(topic);
        let mut info = TopicPublishInfo::default();
        let push_broker = |info: &mut TopicPublishInfo, broker: &str, nums: u32| {
            let broker: Arc<str> = Arc::from(broker);
            info.message_queues.extend(
                (0..nums).map(|id| MessageQueue::from_shared(topic.clone(), broker.clone(), id)),
            );
            if nums > 0 {
                let n = info.write_queue_nums.entry(broker).or_default();
                *n = (*n).max(nums);
            }
        };
        if let Some(conf) = route.order_topic_conf.as_deref().filter(|c| !c.is_empty()) {
            info.order_topic = true;
            for item in conf.split(';') {
                let mut parts = item.split(':');
                if let (Some(broker), Some(nums), None) = (parts.next(), parts.next(), parts.next())
                    && let Ok(nums) = nums.trim().parse::<u32>()
                    && nums <= crate::route::MAX_QUEUE_NUMS
                {
                    push_broker(&mut info, broker, nums);
                }
            }
            return info;
        }
        let mut queue_datas: Vec<_> = route.queue_datas.iter().collect();
        queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        for qd in queue_datas {
            if !qd.perm.is_writeable() {
                continue;
            }
            let has_master = route
                .broker(&qd.broker_name)
                .is_some_and(|b| b.master_addr().is_some());
            if has_master {
                // Capped as the order path is: a route decoded from the wire never exceeds it,
                // and one built from a trace or by hand must not allocate without bound.
                let nums = qd.write_queue_nums.min(crate::route::MAX_QUEUE_NUMS);
                push_broker(&mut info, &qd.broker_name, nums);
            }
        }
        info
    }

    /// The brokers `route` lists with writable queues but no master (a master down while its
    /// slave lives): [`TopicPublishInfo::from_route`] leaves their queues out, and a producer
    /// with nothing else to send to says why.
    pub fn masterless(route: &TopicRouteData) -> Vec<String> {
        let mut out: Vec<String> = route
            .queue_datas
            .iter()
            .filter(|qd| qd.perm.is_writeable() && qd.write_queue_nums > 0)
            .filter(|qd| {
                route
                    .broker(&qd.broker_name)
                    .is_none_or(|b| b.master_addr().is_none())
            })
            .map(|qd| qd.broker_name.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether there is any queue to send to (`TopicPublishInfo.ok()`).
    pub fn ok(&self) -> bool {
        !self.message_queues.is_empty()
    }

    /// How many write queues `broker` has in this topic (0 if none).
    pub fn write_queue_nums(&self, broker: &str) -> u32 {
        self.write_queue_nums.get(broker).copied().unwrap_or(0)
    }

    /// The brokers that have at least one write queue, by name.
    pub fn brokers(&self) -> impl Iterator<Item = &str> {
        self.write_queue_nums.keys().map(|b| &**b)
    }

    /// `selectOneMessageQueue()`: the next queue in round-robin order.
    pub fn select_one(&self, index: &mut SendIndex) -> Option<&MessageQueue> {
        let n = self.message_queues.len();
        if n == 0 {
            return None;
        }
        Some(&self.message_queues[index.advance() as usize % n])
    }

    /// `selectOneMessageQueue(filters)`: up to `len` round-robin steps, the first queue that passes.
    pub fn select_matching(
        &self,
        index: &mut SendIndex,
        mut pass: impl FnMut(&MessageQueue) -> bool,
    ) -> Option<&MessageQueue> {
        let n = self.message_queues.len();
        (0..n)
            .map(|_| &self.message_queues[index.advance() as usize % n])
            .find(|mq| pass(mq))
    }

    /// Skip-failed selection: a queue on a broker other than `last_broker` if there is one, else the
    /// next queue (`selectOneMessageQueue(lastBrokerName)`).
    pub fn select_avoiding(
        &self,
        index: &mut SendIndex,
        last_broker: Option<&str>,
    ) -> Option<&MessageQueue> {
        if let Some(last) = last_broker
            && let Some(mq) = self.select_matching(index, |mq| &*mq.broker_name != last)
        {
            return Some(mq);
        }
        self.select_one(index)
    }
}

/// The round-robin counter of a producer (`ThreadLocalIndex`): pre-incremented, masked positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SendIndex(u32);

impl SendIndex {
    /// A counter whose internal value is `seed` (RocketMQ seeds it with a random number).
    pub fn new(seed: u32) -> Self {
        SendIndex(seed)
    }

    /// A counter whose first [`SendIndex::advance`] returns `first`.
    pub fn starting_at(first: u32) -> Self {
        SendIndex(first.wrapping_sub(1))
    }

    /// `incrementAndGet() & 0x7FFFFFFF`.
    pub fn advance(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0 & 0x7FFF_FFFF
    }
}

/// The latency → not-available tables of `MQFaultStrategy`, and how an item's window is updated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LatencyTables {
    /// `latencyMax`, ascending.
    pub latency_max: Vec<Millis>,
    /// `notAvailableDuration`, one per `latency_max` entry.
    pub not_available_duration: Vec<Millis>,
    /// The latency charged to a broker on an isolating error.
    pub isolation_latency: Millis,
    /// 5.x only extends a not-available window, never shrinks it; 4.x overwrites it.
    pub extend_only: bool,
}

impl LatencyTables {
    /// RocketMQ 5.x's defaults: an error isolates a broker for 10 s.
    pub fn rocketmq_5() -> Self {
        LatencyTables {
            latency_max: vec![50, 100, 550, 1_800, 3_000, 5_000, 15_000],
            not_available_duration: vec![0, 0, 2_000, 5_000, 6_000, 10_000, 30_000],
            isolation_latency: 10_000,
            extend_only: true,
        }
    }

    /// RocketMQ 4.9.x's defaults: an error isolates a broker for 10 min.
    pub fn rocketmq_4() -> Self {
        LatencyTables {
            latency_max: vec![50, 100, 550, 1_000, 2_000, 3_000, 15_000],
            not_available_duration: vec![0, 0, 30_000, 60_000, 120_000, 180_000, 600_000],
            isolation_latency: 30_000,
            extend_only: false,
        }
    }

    /// `computeNotAvailableDuration`: the duration of the highest bucket `latency` reaches.
    pub fn not_available_duration(&self, latency: Millis) -> Millis {
        self.latency_max
            .iter()
            .zip(&self.not_available_duration)
            .rev()
            .find(|(max, _)| latency >= **max)
            .map_or(0, |(_, d)| *d)
    }
}

impl Default for LatencyTables {
    fn default() -> Self {
        LatencyTables::rocketmq_5()
    }
}

/// What the producer remembers about one broker (`FaultItem`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FaultItem {
    /// The broker group.
    pub name: String,
    /// The latency of the last send to it.
    pub current_latency: Millis,
    /// It is available again from this time on.
    pub start_timestamp: Millis,
    /// Whether it answered the last send or probe (5.x).
    pub reachable: bool,
}

impl FaultItem {
    /// `isAvailable`: `now >= startTimestamp`.
    pub fn is_available(&self, now: Millis) -> bool {
        now >= self.start_timestamp
    }
}

/// `LatencyFaultToleranceImpl`: a fault item per broker that had a slow or failed send.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct LatencyFaultTolerance {
    items: BTreeMap<String, FaultItem>,
    which_item_worst: u32,
}

impl LatencyFaultTolerance {
    /// `updateFaultItem`: record a send's latency and the window during which `name` is avoided.
    pub fn update(
        &mut self,
        name: &str,
        latency: Millis,
        not_available: Millis,
        reachable: bool,
        extend_only: bool,
        now: Millis,
    ) {
        if !self.items.contains_key(name) {
            let item = FaultItem {
                name: name.to_owned(),
                current_latency: latency,
                start_timestamp: 0,
                reachable,
            };
            self.items.insert(name.to_owned(), item);
        }
        let item = self.items.get_mut(name).expect("inserted above");
        item.current_latency = latency;
        item.reachable = reachable;
        let until = now.saturating_add(not_available);
        // 4.x overwrites the window; 5.x only ever extends it.
        if !extend_only || (not_available > 0 && until > item.start_timestamp) {
            item.start_timestamp = until;
        }
    }

    /// Whether `name` may be sent to at `now` (a broker with no item is available).
    pub fn is_available(&self, name: &str, now: Millis) -> bool {
        self.items.get(name).is_none_or(|i| i.is_available(now))
    }

    /// Whether `name` answered its last send (a broker with no item is reachable).
    pub fn is_reachable(&self, name: &str) -> bool {
        self.items.get(name).is_none_or(|i| i.reachable)
    }

    /// Forget `name`.
    pub fn remove(&mut self, name: &str) {
        self.items.remove(name);
    }

    /// The fault items, by broker name.
    pub fn items(&self) -> &BTreeMap<String, FaultItem> {
        &self.items
    }

    /// `pickOneAtLeast`, among the items `eligible` accepts: sort them best first (available,
    /// reachable, lower latency, earlier window end, name) and take, in turn, one of the better
    /// half. RocketMQ shuffles before its sort; ties here break by name so the model is
    /// deterministic.
    pub fn pick_one_at_least(
        &mut self,
        now: Millis,
        mut eligible: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let mut items: Vec<&FaultItem> =
            self.items.values().filter(|i| eligible(&i.name)).collect();
        if items.is_empty() {
            return None;
        }
        items.sort_by_key(|i| {
            (
                !i.is_available(now),
                !i.reachable,
                i.current_latency,
                i.start_timestamp,
            )
        });
        let half = items.len() / 2;
        let pick = if half == 0 {
            0
        } else {
            self.which_item_worst = self.which_item_worst.wrapping_add(1);
            (self.which_item_worst & 0x7FFF_FFFF) as usize % half
        };
        Some(items[pick].name.clone())
    }
}

/// `MQFaultStrategy`: queue selection with or without latency fault tolerance.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FaultStrategy {
    /// `sendLatencyFaultEnable` (RocketMQ's default: off).
    pub enabled: bool,
    /// The latency and not-available tables.
    pub tables: LatencyTables,
    /// The per-broker fault items.
    pub tolerance: LatencyFaultTolerance,
}

impl FaultStrategy {
    /// A strategy with fault tolerance on or off and RocketMQ 5.x's tables.
    pub fn new(enabled: bool) -> Self {
        FaultStrategy {
            enabled,
            ..Default::default()
        }
    }

    /// Pick the queue for the next attempt. `last_broker` is the broker of the previous failed
    /// attempt of this send, if any.
    ///
    /// Without fault tolerance: a queue on another broker than `last_broker`, else any queue.
    /// With it, in order: a queue whose broker is available and is not `last_broker` (5.x's
    /// broker filter, which fixes apache/rocketmq#2358); then, with 5.x tables (windows that
    /// only extend, so a success never lifts one), as RocketMQ 5.1.4+: a reachable broker other
    /// than `last_broker`, else the next queue avoiding `last_broker`; with 4.x tables: a queue
    /// whose broker is available, the least bad broker by `pick_one_at_least`, any queue. So an
    /// unavailable broker is never chosen while an available one has write queues, and under
    /// 5.x tables a retry never goes back to the broker that just failed while another has
    /// write queues (a conformance run found the 4.x fallback doing it: with both brokers
    /// isolated it ranked a dead broker's fast failures above a live one's 1 ms successes).
    pub fn select(
        &mut self,
        info: &TopicPublishInfo,
        last_broker: Option<&str>,
        index: &mut SendIndex,
        now: Millis,
    ) -> Option<MessageQueue> {
        if !self.enabled {
            return info.select_avoiding(index, last_broker).cloned();
        }
        let tol = &self.tolerance;
        if let Some(mq) = info.select_matching(index, |mq| {
            Some(&*mq.broker_name) != last_broker && tol.is_available(&mq.broker_name, now)
        }) {
            return Some(mq.clone());
        }
        if self.tables.extend_only {
            if let Some(mq) = info.select_matching(index, |mq| {
                Some(&*mq.broker_name) != last_broker && tol.is_reachable(&mq.broker_name)
            }) {
                return Some(mq.clone());
            }
            return info.select_avoiding(index, last_broker).cloned();
        }
        if let Some(mq) = info.select_matching(index, |mq| tol.is_available(&mq.broker_name, now)) {
            return Some(mq.clone());
        }
        if let Some(broker) = self
            .tolerance
            .pick_one_at_least(now, |b| info.write_queue_nums(b) > 0)
        {
            let nums = info.write_queue_nums(&broker);
            let topic = info.message_queues[0].topic.clone();
            return Some(MessageQueue::from_shared(
                topic,
                Arc::from(broker.as_str()),
                index.advance() % nums,
            ));
        }
        info.select_one(index).cloned()
    }

    /// `updateFaultItem` after an attempt that took `latency`: `isolation` charges the table's
    /// isolation latency instead (a failed send). Does nothing when fault tolerance is off.
    pub fn update(
        &mut self,
        broker: &str,
        latency: Millis,
        isolation: bool,
        reachable: bool,
        now: Millis,
    ) {
        if !self.enabled {
            return;
        }
        let charged = if isolation {
            self.tables.isolation_latency
        } else {
            latency
        };
        let duration = self.tables.not_available_duration(charged);
        let extend_only = self.tables.extend_only;
        self.tolerance
            .update(broker, latency, duration, reachable, extend_only, now);
    }
}

/// Response codes on which a SYNC send retries (`retryResponseCodes`, 5.x): TOPIC_NOT_EXIST,
/// SERVICE_NOT_AVAILABLE, SYSTEM_ERROR, SYSTEM_BUSY, NO_PERMISSION, NO_BUYER_ID,
/// NOT_IN_CURRENT_UNIT, GO_AWAY.
pub const RETRY_RESPONSE_CODES: [i32; 8] = [17, 14, 1, 2, 16, 204, 205, 1500];

/// Settings of the send retry loop (`DefaultMQProducer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SendPolicy {
    /// `retryTimesWhenSendFailed`: extra attempts of a SYNC send (default 2).
    pub retry_times_when_send_failed: u32,
    /// `sendMsgTimeout`: the budget for all attempts together (default 3000 ms).
    pub send_msg_timeout: Millis,
    /// `retryAnotherBrokerWhenNotStoreOK` (default false).
    pub retry_another_broker_when_not_store_ok: bool,
}

impl Default for SendPolicy {
    fn default() -> Self {
        SendPolicy {
            retry_times_when_send_failed: 2,
            send_msg_timeout: 3_000,
            retry_another_broker_when_not_store_ok: false,
        }
    }
}

/// How one attempt ended, as the send loop classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// SEND_OK.
    Ok,
    /// Stored, but FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE.
    NotStoreOk,
    /// A connection or timeout error (`RemotingException`).
    Remoting,
    /// A client-side error (`MQClientException`).
    Client,
    /// The broker answered with this error code (`MQBrokerException`).
    Broker(i32),
}

/// What the send loop does after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendStep {
    /// The send is over and succeeded (possibly with a not-store-ok status).
    Done,
    /// Make another attempt, avoiding the broker just used.
    Retry,
    /// The send is over and failed.
    Failed(SendError),
}

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The route has no writable queue.
    #[error("no route info of this topic")]
    NoRoute,
    /// The total budget ran out (`sendDefaultImpl call timeout`).
    #[error("send timed out after {elapsed} ms")]
    Timeout {
        /// How long the attempts took.
        elapsed: Millis,
    },
    /// Every attempt failed (`Send [n] times, still failed`).
    #[error("send {attempts} times, still failed")]
    Exhausted {
        /// How many attempts were made.
        attempts: u32,
    },
    /// The broker answered a code that is not retried.
    #[error("broker answered code {0}")]
    Broker(i32),
}

/// The state of one SYNC send across its attempts (`sendDefaultImpl`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SendAttempts {
    policy: SendPolicy,
    started_at: Millis,
    attempts: u32,
    /// Shared with the queue chosen, so recording it copies nothing.
    last_broker: Option<Arc<str>>,
}

impl SendAttempts {
    /// A send that begins at `now`.
    pub fn new(policy: SendPolicy, now: Millis) -> Self {
        SendAttempts {
            policy,
            started_at: now,
            attempts: 0,
            last_broker: None,
        }
    }

    /// How many attempts were made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The broker of the last attempt.
    pub fn last_broker(&self) -> Option<&str> {
        self.last_broker.as_deref()
    }

    /// Choose the queue of the next attempt at `now`.
    pub fn next_target(
        &mut self,
        info: &TopicPublishInfo,
        strategy: &mut FaultStrategy,
        index: &mut SendIndex,
        now: Millis,
    ) -> Result<MessageQueue, SendError> {
        let elapsed = now.saturating_sub(self.started_at);
        if self.attempts > 0 && elapsed > self.policy.send_msg_timeout {
            return Err(SendError::Timeout { elapsed });
        }
        let mq = strategy
            .select(info, self.last_broker.as_deref(), index, now)
            .ok_or(SendError::NoRoute)?;
        self.attempts += 1;
        self.last_broker = Some(mq.broker_name.clone());
        Ok(mq)
    }

    /// Record an attempt to a queue the caller chose itself (a send to one queue, or through a
    /// selector): counted like a selected one, so the outcome is judged the same way.
    pub fn chosen_target(&mut self, mq: &MessageQueue) {
        self.attempts += 1;
        self.last_broker = Some(mq.broker_name.clone());
    }

    /// Record how the attempt to `mq` that ended at `now` went: update the fault items and decide
    /// whether to retry.
    pub fn on_outcome(
        &mut self,
        mq: &MessageQueue,
        outcome: AttemptOutcome,
        latency: Millis,
        strategy: &mut FaultStrategy,
        now: Millis,
    ) -> SendStep {
        let broker = &*mq.broker_name;
        let failed = match outcome {
            AttemptOutcome::Ok | AttemptOutcome::NotStoreOk => {
                strategy.update(broker, latency, false, true, now);
                false
            }
            AttemptOutcome::Remoting => {
                strategy.update(broker, latency, true, true, now);
                true
            }
            AttemptOutcome::Client => {
                strategy.update(broker, latency, false, true, now);
                true
            }
            AttemptOutcome::Broker(code) => {
                strategy.update(broker, latency, true, false, now);
                if !RETRY_RESPONSE_CODES.contains(&code) {
                    return SendStep::Failed(SendError::Broker(code));
                }
                true
            }
        };
        let more = self.attempts <= self.policy.retry_times_when_send_failed;
        match outcome {
            AttemptOutcome::Ok => SendStep::Done,
            AttemptOutcome::NotStoreOk
                if self.policy.retry_another_broker_when_not_store_ok && more =>
            {
                SendStep::Retry
            }
            AttemptOutcome::NotStoreOk => SendStep::Done,
            _ if failed && more => SendStep::Retry,
            _ => SendStep::Failed(SendError::Exhausted {
                attempts: self.attempts,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{BrokerData, Perm, QueueData};

    fn route(brokers: &[(&str, u32, u32, bool)]) -> TopicRouteData {
        let mut r = TopicRouteData::default();
        for (name, nums, perm, master) in brokers {
            r.queue_datas.push(QueueData {
                broker_name: (*name).into(),
                read_queue_nums: *nums,
                write_queue_nums: *nums,
                perm: Perm(*perm),
                topic_sys_flag: 0,
            });
            let mut b = BrokerData {
                broker_name: (*name).into(),
                ..Default::default()
            };
            b.broker_addrs
                .insert(if *master { 0 } else { 1 }, format!("{name}:1"));
            r.broker_datas.push(b);
        }
        r
    }

    fn names(qs: &[MessageQueue]) -> Vec<String> {
        qs.iter()
            .map(|q| format!("{}:{}", q.broker_name, q.queue_id))
            .collect()
    }

    #[test]
    fn publish_info_keeps_writeable_mastered_brokers_sorted() {
        let r = route(&[
            ("c", 1, 6, true),
            ("a", 2, 6, true),
            ("b", 2, 4, true),
            ("d", 1, 6, false),
        ]);
        let info = TopicPublishInfo::from_route("T", &r);
        assert_eq!(names(&info.message_queues), ["a:0", "a:1", "c:0"]);
        assert_eq!(info.write_queue_nums("a"), 2);
        assert_eq!(info.write_queue_nums("b"), 0);
        assert!(!info.order_topic);
    }

    #[test]
    fn masterless_names_the_writeable_brokers_without_a_master() {
        let mut r = route(&[
            ("a", 2, 6, true),
            ("b", 2, 6, false),
            ("c", 0, 6, false),
            ("d", 2, 4, false),
            ("e", 1, 6, true),
        ]);
        // `e`'s queues are listed, its broker is not.
        r.broker_datas.retain(|b| &*b.broker_name != "e");
        assert_eq!(TopicPublishInfo::masterless(&r), ["b", "e"]);
        assert!(TopicPublishInfo::masterless(&route(&[("a", 2, 6, true)])).is_empty());
        let info = TopicPublishInfo::from_route("T", &r);
        assert_eq!(info.brokers().collect::<Vec<_>>(), ["a"]);
        let two =
            TopicPublishInfo::from_route("T", &route(&[("c", 1, 6, true), ("a", 2, 6, true)]));
        assert_eq!(two.brokers().collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn publish_info_follows_order_topic_conf() {
        let mut r = route(&[("a", 2, 6, true)]);
        r.order_topic_conf = Some("b:2;a:1;bad;x:y".into());
        let info = TopicPublishInfo::from_route("T", &r);
        assert!(info.order_topic);
        assert_eq!(names(&info.message_queues), ["b:0", "b:1", "a:0"]);
        r.order_topic_conf = Some("a:4000000000;b:1".into());
        let info = TopicPublishInfo::from_route("T", &r);
        assert_eq!(
            names(&info.message_queues),
            ["b:0"],
            "an absurd count is skipped"
        );
    }

    #[test]
    fn send_index_pre_increments_and_masks() {
        let mut i = SendIndex::starting_at(5);
        assert_eq!(i.advance(), 5);
        assert_eq!(i.advance(), 6);
        let mut j = SendIndex::new(u32::MAX - 1);
        assert_eq!(j.advance(), 0x7FFF_FFFF);
        assert_eq!(j.advance(), 0);
    }

    #[test]
    fn round_robin_and_avoiding() {
        let info =
            TopicPublishInfo::from_route("T", &route(&[("a", 2, 6, true), ("b", 2, 6, true)]));
        let mut idx = SendIndex::starting_at(0);
        let seq: Vec<_> = (0..5)
            .map(|_| info.select_one(&mut idx).unwrap().clone())
            .collect();
        assert_eq!(names(&seq), ["a:0", "a:1", "b:0", "b:1", "a:0"]);
        let mut idx = SendIndex::starting_at(0);
        let mq = info.select_avoiding(&mut idx, Some("a")).unwrap();
        assert_eq!(&*mq.broker_name, "b");
        let single = TopicPublishInfo::from_route("T", &route(&[("a", 2, 6, true)]));
        assert_eq!(
            &*single
                .select_avoiding(&mut idx, Some("a"))
                .unwrap()
                .broker_name,
            "a"
        );
        assert!(TopicPublishInfo::default().select_one(&mut idx).is_none());
    }

    #[test]
    fn latency_tables() {
        let v5 = LatencyTables::rocketmq_5();
        assert_eq!(v5.not_available_duration(10), 0);
        assert_eq!(v5.not_available_duration(550), 2_000);
        assert_eq!(v5.not_available_duration(v5.isolation_latency), 10_000);
        let v4 = LatencyTables::rocketmq_4();
        assert_eq!(v4.not_available_duration(v4.isolation_latency), 600_000);
        assert_eq!(v4.not_available_duration(1_500), 60_000);
    }

    #[test]
    fn fault_items_extend_only_in_5x() {
        let mut t = LatencyFaultTolerance::default();
        t.update("a", 100, 10_000, true, true, 0);
        t.update("a", 5, 0, true, true, 1_000);
        assert!(!t.is_available("a", 9_999));
        assert!(t.is_available("a", 10_000));
        let mut t4 = LatencyFaultTolerance::default();
        t4.update("a", 100, 10_000, true, false, 0);
        t4.update("a", 5, 0, true, false, 1_000);
        assert!(t4.is_available("a", 1_000));
        assert!(t.is_available("unknown", 0));
        // 5.x: a shorter window never shortens the one in force, and a 0 window never moves it,
        // even past its end.
        t.update("a", 5, 1_000, true, true, 100);
        assert!(!t.is_available("a", 9_999), "shortened to 1 100");
        t.update("a", 5, 0, true, true, 20_000);
        assert!(t.is_available("a", 15_000), "moved to 20 000");
        t.update("a", 5, 30_000, true, true, 1_000);
        assert!(!t.is_available("a", 30_999));
        assert!(t.is_available("a", 31_000), "extended to 31 000");
    }

    #[test]
    fn fault_items_record_reachability_and_can_be_forgotten() {
        let mut t = LatencyFaultTolerance::default();
        assert!(t.is_reachable("a"), "a broker with no item is reachable");
        t.update("a", 100, 10_000, false, true, 0);
        t.update("b", 30, 0, true, true, 0);
        assert!(!t.is_reachable("a"));
        assert!(t.is_reachable("b"));
        assert_eq!(t.items().keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(t.items()["a"].current_latency, 100);
        assert_eq!(t.items()["a"].start_timestamp, 10_000);
        assert!(!t.items()["a"].reachable);
        t.remove("a");
        assert!(t.is_available("a", 0) && t.is_reachable("a"));
        assert_eq!(t.items().keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn pick_one_at_least_prefers_the_better_half() {
        let mut t = LatencyFaultTolerance::default();
        t.update("slow", 3_000, 6_000, true, true, 0);
        t.update("dead", 100, 10_000, false, true, 0);
        t.update("ok", 10, 1_000, true, true, 0);
        t.update("worse", 5_000, 10_000, true, true, 0);
        // At 500 nothing is available; sorted: reachable first, then latency: ok, slow, worse, dead.
        let picks: Vec<_> = (0..4)
            .map(|_| t.pick_one_at_least(500, |_| true).unwrap())
            .collect();
        assert_eq!(picks, ["slow", "ok", "slow", "ok"]);
        assert_eq!(
            t.pick_one_at_least(500, |b| b == "dead").as_deref(),
            Some("dead")
        );
        assert_eq!(t.pick_one_at_least(500, |_| false), None);
        // At 1 500 `ok` is available again and comes first whatever its latency.
        t.update("ok", 9_000, 0, true, false, 0);
        let picks: Vec<_> = (0..2)
            .map(|_| t.pick_one_at_least(1_500, |_| true).unwrap())
            .collect();
        assert_eq!(picks, ["slow", "ok"]);
    }

    #[test]
    fn fault_strategy_avoids_isolated_broker_then_falls_back() {
        let info =
            TopicPublishInfo::from_route("T", &route(&[("a", 2, 6, true), ("b", 2, 6, true)]));
        let mut s = FaultStrategy::new(true);
        let mut idx = SendIndex::starting_at(0);
        s.update("a", 3_000, true, true, 0);
        for _ in 0..4 {
            assert_eq!(
                &*s.select(&info, None, &mut idx, 1).unwrap().broker_name,
                "b"
            );
        }
        s.update("b", 3_000, true, true, 0);
        // Both isolated until 10 000 (5.x tables): a reachable broker other than the last.
        for _ in 0..4 {
            let mq = s.select(&info, Some("a"), &mut idx, 2).unwrap();
            assert_eq!(&*mq.broker_name, "b");
            let mq = s.select(&info, Some("b"), &mut idx, 2).unwrap();
            assert_eq!(&*mq.broker_name, "a");
        }
        // The case a conformance run found: a failed at 0 (isolated), then succeeded in 1 ms
        // (the window stays: extend only); b failed fast at 5. A retry after b goes to a.
        let mut s = FaultStrategy::new(true);
        s.update("a", 0, true, true, 0);
        s.update("a", 1, false, true, 3);
        s.update("b", 0, true, true, 5);
        for _ in 0..6 {
            let mq = s.select(&info, Some("b"), &mut idx, 6).unwrap();
            assert_eq!(&*mq.broker_name, "a");
        }
        // Once a's window passes it is chosen; a retry after a still avoids it while b is
        // reachable (RocketMQ 5.1.4+'s order: the broker filter before availability).
        s.update("b", 3_000, true, true, 5_000);
        for _ in 0..4 {
            let first = s.select(&info, None, &mut idx, 10_000).unwrap();
            assert_eq!(&*first.broker_name, "a");
        }
        let retry = s.select(&info, Some("a"), &mut idx, 10_000).unwrap();
        assert_eq!(&*retry.broker_name, "b");
    }

    #[test]
    fn disabled_fault_strategy_records_nothing() {
        let mut s = FaultStrategy::new(false);
        s.update("a", 3_000, true, true, 0);
        assert!(s.tolerance.items().is_empty());
    }

    #[test]
    fn send_attempts_retry_on_another_broker_then_give_up() {
        let info =
            TopicPublishInfo::from_route("T", &route(&[("a", 1, 6, true), ("b", 1, 6, true)]));
        let mut s = FaultStrategy::new(false);
        let mut idx = SendIndex::starting_at(0);
        let mut send = SendAttempts::new(SendPolicy::default(), 0);
        let mut seen = Vec::new();
        loop {
            let mq = send.next_target(&info, &mut s, &mut idx, 0).unwrap();
            seen.push(mq.broker_name.to_string());
            match send.on_outcome(&mq, AttemptOutcome::Remoting, 10, &mut s, 0) {
                SendStep::Retry => continue,
                SendStep::Failed(e) => {
                    assert_eq!(e, SendError::Exhausted { attempts: 3 });
                    break;
                }
                SendStep::Done => unreachable!("every attempt failed"),
            }
        }
        assert_eq!(seen, ["a", "b", "a"]);
    }

    #[test]
    fn send_attempts_stop_on_non_retry_code_and_timeout() {
        let info = TopicPublishInfo::from_route("T", &route(&[("a", 1, 6, true)]));
        let mut s = FaultStrategy::new(true);
        let mut idx = SendIndex::default();
        let mut send = SendAttempts::new(SendPolicy::default(), 0);
        let mq = send.next_target(&info, &mut s, &mut idx, 0).unwrap();
        assert_eq!(
            send.on_outcome(&mq, AttemptOutcome::Broker(13), 5, &mut s, 5),
            SendStep::Failed(SendError::Broker(13))
        );
        let mut send = SendAttempts::new(SendPolicy::default(), 0);
        let mq = send.next_target(&info, &mut s, &mut idx, 0).unwrap();
        assert_eq!(
            send.on_outcome(&mq, AttemptOutcome::Broker(2), 5, &mut s, 3_001),
            SendStep::Retry
        );
        assert_eq!(
            send.next_target(&info, &mut s, &mut idx, 3_001),
            Err(SendError::Timeout { elapsed: 3_001 })
        );
        let mut send = SendAttempts::new(SendPolicy::default(), 0);
        assert_eq!(
            send.next_target(&TopicPublishInfo::default(), &mut s, &mut idx, 0),
            Err(SendError::NoRoute)
        );
        // The first attempt is made whatever the clock says; a retry at exactly the timeout
        // still is, one past it is not.
        let mut send = SendAttempts::new(SendPolicy::default(), 0);
        assert!(send.next_target(&info, &mut s, &mut idx, 5_000).is_ok());
        assert_eq!(send.attempts(), 1);
        let mut send = SendAttempts::new(SendPolicy::default(), 0);
        send.next_target(&info, &mut s, &mut idx, 0).unwrap();
        assert!(send.next_target(&info, &mut s, &mut idx, 3_000).is_ok());
        assert_eq!(send.attempts(), 2);
        assert!(send.next_target(&info, &mut s, &mut idx, 3_001).is_err());
        assert_eq!(send.attempts(), 2, "a refused attempt is not counted");
    }

    #[test]
    fn the_4x_fallback_picks_the_least_bad_broker_of_the_topic() {
        let info =
            TopicPublishInfo::from_route("T", &route(&[("a", 2, 6, true), ("b", 2, 6, true)]));
        let mut s = FaultStrategy {
            tables: LatencyTables::rocketmq_4(),
            ..FaultStrategy::new(true)
        };
        // Both unavailable at 1; b's last send was the faster. z is not in the topic.
        s.update("a", 5_000, false, true, 0);
        s.update("b", 3_000, false, true, 0);
        s.update("z", 10, false, true, 0);
        let mut idx = SendIndex::starting_at(0);
        let mq = s.select(&info, None, &mut idx, 1).unwrap();
        assert_eq!(&*mq.broker_name, "b");
    }

    #[test]
    fn a_chosen_queue_is_one_attempt() {
        let mq = MessageQueue::new("T", "a", 0);
        let mut s = FaultStrategy::new(true);
        let policy = SendPolicy {
            retry_times_when_send_failed: 0,
            ..Default::default()
        };
        let mut send = SendAttempts::new(policy, 0);
        send.chosen_target(&mq);
        assert_eq!(send.attempts(), 1);
        assert_eq!(send.last_broker(), Some("a"));
        assert_eq!(
            send.on_outcome(&mq, AttemptOutcome::Remoting, 5, &mut s, 5),
            SendStep::Failed(SendError::Exhausted { attempts: 1 })
        );
        assert!(
            !s.tolerance.is_available("a", 6),
            "the failure still isolates the broker"
        );
    }

    #[test]
    fn not_store_ok_is_done_unless_configured() {
        let info =
            TopicPublishInfo::from_route("T", &route(&[("a", 1, 6, true), ("b", 1, 6, true)]));
        let mut s = FaultStrategy::new(false);
        let mut idx = SendIndex::default();
        let mut send = SendAttempts::new(SendPolicy::default(), 0);
        let mq = send.next_target(&info, &mut s, &mut idx, 0).unwrap();
        assert_eq!(
            send.on_outcome(&mq, AttemptOutcome::NotStoreOk, 1, &mut s, 1),
            SendStep::Done
        );
        let policy = SendPolicy {
            retry_another_broker_when_not_store_ok: true,
            ..Default::default()
        };
        let mut send = SendAttempts::new(policy, 0);
        let mq = send.next_target(&info, &mut s, &mut idx, 0).unwrap();
        assert_eq!(
            send.on_outcome(&mq, AttemptOutcome::NotStoreOk, 1, &mut s, 1),
            SendStep::Retry
        );
        assert_eq!(send.last_broker(), Some(&*mq.broker_name));
        assert_eq!(send.attempts(), 1);
    }
}
