//! The schema: one [`Record`] per line, its [`Event`] flattened beside the envelope.
//!
//! Version [`SCHEMA_VERSION`]. A reader refuses records of another version. Adding an event kind
//! or an optional field keeps the version; changing or removing a field's meaning bumps it. The
//! fields are documented in `docs/conformance.md`.

use serde::{Deserialize, Serialize};
use sextant_model::route::{BrokerData, MessageQueue, Perm, QueueData, TopicRouteData};

/// The schema version every record carries in `v`.
pub const SCHEMA_VERSION: u32 = 1;

/// One line of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// The node that recorded it: `namesrv@ADDR`, `broker@ADDR` or a client id.
    pub node: String,
    /// Its place among the node's records: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// Wall time, microseconds since the Unix epoch.
    pub ts: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A queue: topic, broker group and id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Queue {
    /// The topic.
    pub topic: String,
    /// The broker group (`brokerName`).
    pub broker: String,
    /// The queue id.
    pub id: u32,
}

impl From<&MessageQueue> for Queue {
    fn from(mq: &MessageQueue) -> Self {
        Queue {
            topic: mq.topic.to_string(),
            broker: mq.broker_name.to_string(),
            id: mq.queue_id,
        }
    }
}

impl From<&Queue> for MessageQueue {
    fn from(q: &Queue) -> Self {
        MessageQueue::new(&q.topic, &q.broker, q.id)
    }
}

/// A broker group as a route lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBroker {
    /// `cluster`.
    pub cluster: String,
    /// `brokerName`.
    pub name: String,
    /// `brokerAddrs`: broker id → address (id 0 is the master), in id order. A list, not a map:
    /// a flattened record cannot read integer map keys back.
    pub addrs: Vec<BrokerAddr>,
}

/// One broker process of a group, as a route lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerAddr {
    /// `brokerId` (0: the master).
    pub id: u64,
    /// Its address.
    pub addr: String,
}

/// A broker group's queues of the topic, as a route lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteQueues {
    /// `brokerName`.
    pub broker: String,
    /// `readQueueNums`.
    pub read: u32,
    /// `writeQueueNums`.
    pub write: u32,
    /// `perm` (RocketMQ's bits: 4 read, 2 write, 1 inherit).
    pub perm: u32,
}

/// A topic's route (`TopicRouteData`), as served or held.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Route {
    /// `brokerDatas`.
    pub brokers: Vec<RouteBroker>,
    /// `queueDatas`.
    pub queues: Vec<RouteQueues>,
    /// `orderTopicConf`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

impl From<&TopicRouteData> for Route {
    fn from(r: &TopicRouteData) -> Self {
        Route {
            brokers: r
                .broker_datas
                .iter()
                .map(|b| RouteBroker {
                    cluster: b.cluster.clone(),
                    name: b.broker_name.clone(),
                    addrs: b
                        .broker_addrs
                        .iter()
                        .map(|(id, addr)| BrokerAddr {
                            id: *id,
                            addr: addr.clone(),
                        })
                        .collect(),
                })
                .collect(),
            queues: r
                .queue_datas
                .iter()
                .map(|q| RouteQueues {
                    broker: q.broker_name.clone(),
                    read: q.read_queue_nums,
                    write: q.write_queue_nums,
                    perm: q.perm.0,
                })
                .collect(),
            order: r.order_topic_conf.clone(),
        }
    }
}

impl From<&Route> for TopicRouteData {
    fn from(r: &Route) -> Self {
        TopicRouteData {
            order_topic_conf: r.order.clone(),
            queue_datas: r
                .queues
                .iter()
                .map(|q| QueueData {
                    broker_name: q.broker.clone(),
                    read_queue_nums: q.read,
                    write_queue_nums: q.write,
                    perm: Perm(q.perm),
                    topic_sys_flag: 0,
                })
                .collect(),
            broker_datas: r
                .brokers
                .iter()
                .map(|b| BrokerData {
                    cluster: b.cluster.clone(),
                    broker_name: b.name.clone(),
                    broker_addrs: b.addrs.iter().map(|a| (a.id, a.addr.clone())).collect(),
                    ..BrokerData::default()
                })
                .collect(),
            ..TopicRouteData::default()
        }
    }
}

/// How a send attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// SEND_OK: the broker acknowledged the message.
    Ok,
    /// Stored, but not flushed or not replicated in time (FLUSH_DISK_TIMEOUT,
    /// FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE).
    NotStoreOk,
    /// The broker answered with an error code.
    Refused,
    /// No answer in time.
    Timeout,
    /// The connection could not be made or broke.
    Network,
}

/// What happened. The tag is `ev`; the names are snake_case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    // ---- NameServer (node `namesrv@ADDR`; `now` is its clock: ms since it started) ----
    /// The NameServer started, with the timings the checker's bounds come from.
    NamesrvStarted {
        /// `brokerExpiry` (ms): a broker silent this long is dropped.
        expiry: u64,
        /// How often the liveness scan runs (ms).
        scan: u64,
        /// Its clock.
        now: u64,
    },
    /// A broker registered (or re-registered: a registration is also a heartbeat).
    BrokerRegistered {
        /// `clusterName`.
        cluster: String,
        /// `brokerName`.
        broker: String,
        /// `brokerId`.
        id: u64,
        /// `brokerAddr`.
        addr: String,
        /// Its topics.
        topics: Vec<String>,
        /// Its own `heartbeatTimeoutMillis`, when it sent one (else the NameServer's expiry).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<u64>,
        /// The NameServer's clock.
        now: u64,
    },
    /// A broker's BROKER_HEARTBEAT (RocketMQ 5 light heartbeat).
    BrokerHeartbeat {
        /// `clusterName`.
        cluster: String,
        /// `brokerAddr`.
        addr: String,
        /// Whether the broker was registered (a heartbeat of an unknown broker changes nothing).
        known: bool,
        /// The NameServer's clock.
        now: u64,
    },
    /// The liveness scan dropped a silent broker.
    BrokerExpired {
        /// `clusterName`.
        cluster: String,
        /// `brokerAddr`.
        addr: String,
        /// The NameServer's clock.
        now: u64,
    },
    /// A broker left: UNREGISTER_BROKER, or the connection it registered over closed.
    BrokerUnregistered {
        /// `clusterName`.
        cluster: String,
        /// `brokerAddr`.
        addr: String,
        /// `request` or `connection_closed`.
        why: String,
        /// The NameServer's clock.
        now: u64,
    },
    /// A route the NameServer answered (`None`: TOPIC_NOT_EXIST).
    RouteServed {
        /// The topic asked for.
        topic: String,
        /// What it listed.
        route: Option<Route>,
        /// The NameServer's clock.
        now: u64,
    },

    // ---- client (node: the client id) ----
    /// The client took a new route for a topic (`updateTopicRouteInfoFromNameServer`).
    RouteRefreshed {
        /// The topic.
        topic: String,
        /// What the client now holds (for a new topic, TBW102's route turned into the topic's).
        route: Route,
        /// Built from TBW102's route.
        from_default: bool,
        /// The client's route version for the topic: send attempts name the one they used.
        version: u64,
    },
    /// One attempt of a send.
    SendAttempt {
        /// The producer group.
        group: String,
        /// The client's number for the send (all its attempts share it).
        send: u64,
        /// 1 for the first attempt, 2 for the first retry, …
        attempt: u32,
        /// The message's `UNIQ_KEY` (a batch: its messages' ids joined by commas).
        msg_id: String,
        /// The target queue.
        queue: Queue,
        /// The address the attempt was sent to (empty when none was known).
        addr: String,
        /// The route version the send chose from (see `route_refreshed`); 0 for a queue the
        /// caller chose.
        route_version: u64,
        /// How it ended.
        outcome: SendOutcome,
        /// The queue offset the broker gave it, when stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// The broker's response code when refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// How long the attempt took (µs).
        latency_us: u64,
    },
    /// The producer's latency fault tolerance updated a broker's item after an attempt
    /// (`updateFaultItem`; only with `sendLatencyFaultEnable`).
    FaultUpdated {
        /// The broker group.
        broker: String,
        /// The latency charged (ms; the isolation latency for a failed attempt).
        latency_ms: u64,
        /// The client clock (ms) from which the broker is available again.
        available_at: u64,
        /// Whether it answered.
        reachable: bool,
        /// The client clock now (ms).
        now: u64,
    },
    /// A rebalance of one topic computed this member's share.
    Rebalance {
        /// The consumer group.
        group: String,
        /// The topic.
        topic: String,
        /// The allocation strategy's name.
        strategy: String,
        /// The member list it used (as the broker gave it).
        members: Vec<String>,
        /// The queues it shared out.
        queues: Vec<Queue>,
        /// This member's share.
        allocated: Vec<Queue>,
    },
    /// A consumer started owning a queue (pulling from `offset`).
    QueueAdded {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
        /// Where it starts.
        offset: u64,
    },
    /// A consumer stopped owning a queue: it pulls it no more (recorded when the queue is
    /// dropped, before its running handlers finish and its offset is committed).
    QueueDropped {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
    },
    /// A pull answered.
    Pull {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
        /// The offset asked for.
        offset: u64,
        /// How many messages came back.
        found: u32,
        /// The next offset the answer gave.
        next: u64,
    },
    /// A message handed to the consumer's handler.
    Consumed {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
        /// Its queue offset.
        offset: u64,
        /// Its `UNIQ_KEY` (or message id).
        msg_id: String,
    },
    /// A consumer offset committed to the broker.
    OffsetCommitted {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
        /// The offset committed (the next to consume).
        offset: u64,
    },

    // ---- broker (node `broker@ADDR`) ----
    /// A message stored (appended to the CommitLog, in its queue).
    Stored {
        /// The queue.
        queue: Queue,
        /// Its queue offset.
        offset: u64,
        /// Its `UNIQ_KEY`, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        msg_id: Option<String>,
    },
    /// The broker started (its tables in memory, the orderly locks among them, begin empty).
    BrokerStarted {
        /// `brokerClusterName`.
        cluster: String,
        /// `brokerName`.
        name: String,
        /// `brokerId` (0: master).
        id: u64,
    },
    /// A put answered: what the store had then — flushed and replicated — and the answer.
    PutAnswered {
        /// The CommitLog position just past the put.
        log_end: u64,
        /// How far the CommitLog was fsynced.
        flushed: u64,
        /// How far an in-sync slave had reported holding it (`None`: no slave in sync).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slave_acked: Option<u64>,
        /// `SYNC_FLUSH` or `ASYNC_FLUSH`.
        flush: String,
        /// `ASYNC_MASTER`, `SYNC_MASTER` or `SLAVE`.
        role: String,
        /// The response code (0: SUCCESS).
        code: i32,
    },
    /// A consumer offset the broker took (UPDATE_CONSUMER_OFFSET, or with a pull).
    OffsetStored {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
        /// The offset.
        offset: u64,
    },
    /// An orderly-consumption lock granted or renewed (LOCK_BATCH_MQ), recorded under the
    /// lock table's lock.
    LockGranted {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
        /// The client that holds it now.
        client: String,
        /// How long it lives without a renewal (ms, `rebalanceLockMaxLiveTime`).
        expire_ms: u64,
    },
    /// A lock its holder released (UNLOCK_BATCH_MQ).
    LockReleased {
        /// The consumer group.
        group: String,
        /// The queue.
        queue: Queue,
        /// The client that held it.
        client: String,
    },

    // ---- any node ----
    /// A point a test or tool marks, e.g. `drained`: every message acknowledged before it has
    /// been consumed by then.
    Mark {
        /// The mark's label.
        label: String,
    },
}

impl Event {
    /// The event's kind, as `ev` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::NamesrvStarted { .. } => "namesrv_started",
            Event::BrokerRegistered { .. } => "broker_registered",
            Event::BrokerHeartbeat { .. } => "broker_heartbeat",
            Event::BrokerExpired { .. } => "broker_expired",
            Event::BrokerUnregistered { .. } => "broker_unregistered",
            Event::RouteServed { .. } => "route_served",
            Event::RouteRefreshed { .. } => "route_refreshed",
            Event::SendAttempt { .. } => "send_attempt",
            Event::Rebalance { .. } => "rebalance",
            Event::QueueAdded { .. } => "queue_added",
            Event::QueueDropped { .. } => "queue_dropped",
            Event::Pull { .. } => "pull",
            Event::Consumed { .. } => "consumed",
            Event::OffsetCommitted { .. } => "offset_committed",
            Event::Stored { .. } => "stored",
            Event::OffsetStored { .. } => "offset_stored",
            Event::LockGranted { .. } => "lock_granted",
            Event::FaultUpdated { .. } => "fault_updated",
            Event::PutAnswered { .. } => "put_answered",
            Event::BrokerStarted { .. } => "broker_started",
            Event::LockReleased { .. } => "lock_released",
            Event::Mark { .. } => "mark",
        }
    }
}

/// Queues of a list, in the schema's form.
pub fn queues<'a>(mqs: impl IntoIterator<Item = &'a MessageQueue>) -> Vec<Queue> {
    mqs.into_iter().map(Queue::from).collect()
}
