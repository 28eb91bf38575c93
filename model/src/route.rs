//! Route data as a NameServer stores and serves it: [`TopicRouteData`], [`QueueData`],
//! [`BrokerData`], the [`Perm`] bits, and [`MessageQueue`], the unit producers write to and consumers
//! own.
//!
//! Field names and meanings follow Apache RocketMQ's `TopicRouteData`, `QueueData`, `BrokerData` and
//! `PermName` (see `shared/docs/protocol.md` §3.2); the remoting crate maps them to and from the wire.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The broker id of a master. Any other id is a slave.
pub const MASTER_ID: u64 = 0;

/// The most queues one topic may have on one broker group that a route is taken with: clients
/// build a list entry per queue, so a route claiming billions must be refused, not allocated.
/// RocketMQ's brokers allow far fewer (Sextant's at most 1024).
pub const MAX_QUEUE_NUMS: u32 = 65_536;

/// Permission bits of a topic on a broker (`PermName`): read, write, inherit, priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Perm(pub u32);

impl Perm {
    /// `PERM_PRIORITY` (8).
    pub const PRIORITY: u32 = 8;
    /// `PERM_READ` (4).
    pub const READ: u32 = 4;
    /// `PERM_WRITE` (2).
    pub const WRITE: u32 = 2;
    /// `PERM_INHERIT` (1).
    pub const INHERIT: u32 = 1;
    /// Read and write (6): RocketMQ's default for a topic.
    pub const READ_WRITE: Perm = Perm(Self::READ | Self::WRITE);

    /// Whether consumers may read the topic's queues on this broker.
    pub fn is_readable(self) -> bool {
        self.0 & Self::READ != 0
    }
    /// Whether producers may write the topic's queues on this broker.
    pub fn is_writeable(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    /// Whether the topic's configuration is inherited (used by RocketMQ's auto-create topic `TBW102`).
    pub fn is_inherited(self) -> bool {
        self.0 & Self::INHERIT != 0
    }
    /// Whether the priority bit is set.
    pub fn is_priority(self) -> bool {
        self.0 & Self::PRIORITY != 0
    }
    /// The same permission with the write bit cleared (what `wipeWritePerm` and acting-master do).
    pub fn without_write(self) -> Perm {
        Perm(self.0 & !Self::WRITE)
    }
}

impl Default for Perm {
    fn default() -> Self {
        Perm::READ_WRITE
    }
}

impl fmt::Display for Perm {
    /// Formats as RocketMQ's `PermName.perm2String`: `R`/`W`/`X` or `-` for read, write, inherit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |set: bool, c: char| if set { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            bit(self.is_readable(), 'R'),
            bit(self.is_writeable(), 'W'),
            bit(self.is_inherited(), 'X')
        )
    }
}

/// One topic's queues on one broker group, as the NameServer lists them (`QueueData`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueData {
    /// The broker group (all ids of one name share its queues).
    pub broker_name: String,
    /// How many queues consumers read: ids `0..read_queue_nums`.
    pub read_queue_nums: u32,
    /// How many queues producers write: ids `0..write_queue_nums`.
    pub write_queue_nums: u32,
    /// Permission of the topic on this broker.
    pub perm: Perm,
    /// `topicSysFlag` (bit 0 unit, bit 1 unit-sub).
    pub topic_sys_flag: u32,
}

/// One broker group: its name, cluster and the address of each member by broker id (`BrokerData`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BrokerData {
    /// The cluster the group belongs to.
    pub cluster: String,
    /// The group's name, shared by its master and slaves.
    pub broker_name: String,
    /// Address of each member, keyed by broker id; id [`MASTER_ID`] is the master.
    pub broker_addrs: BTreeMap<u64, String>,
    /// The zone (5.x), if the broker reported one.
    pub zone_name: Option<String>,
    /// Whether the group runs with 5.x slave acting master.
    pub enable_acting_master: bool,
}

impl BrokerData {
    /// The master's address, if the master is registered.
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }

    /// `BrokerData.selectBrokerAddr`: the master if present, else the member picked by `random`
    /// (any value; the caller supplies the randomness).
    pub fn select_broker_addr(&self, random: u32) -> Option<&str> {
        if let Some(master) = self.master_addr() {
            return Some(master);
        }
        let n = self.broker_addrs.len();
        if n == 0 {
            return None;
        }
        self.broker_addrs
            .values()
            .nth(random as usize % n)
            .map(String::as_str)
    }
}

/// What a NameServer answers to GET_ROUTEINFO_BY_TOPIC (`TopicRouteData`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TopicRouteData {
    /// `brokerName:queueNums;...` when the topic is configured as ordered on the NameServer.
    pub order_topic_conf: Option<String>,
    /// The topic's queues on each broker group.
    pub queue_datas: Vec<QueueData>,
    /// The broker groups that `queue_datas` name, with all their members.
    pub broker_datas: Vec<BrokerData>,
    /// Filter servers by broker address.
    pub filter_server_table: BTreeMap<String, Vec<String>>,
}

impl TopicRouteData {
    /// A route of master-only broker groups in `cluster`, each `(name, master address)` with
    /// `queues` read-write queues.
    pub fn of_masters<'a>(
        cluster: &str,
        brokers: impl IntoIterator<Item = (&'a str, &'a str)>,
        queues: u32,
    ) -> Self {
        let mut route = TopicRouteData::default();
        for (name, addr) in brokers {
            route.queue_datas.push(QueueData {
                broker_name: name.to_owned(),
                read_queue_nums: queues,
                write_queue_nums: queues,
                perm: Perm::READ_WRITE,
                topic_sys_flag: 0,
            });
            route.broker_datas.push(BrokerData {
                cluster: cluster.to_owned(),
                broker_name: name.to_owned(),
                broker_addrs: BTreeMap::from([(MASTER_ID, addr.to_owned())]),
                ..Default::default()
            });
        }
        route
    }

    /// The broker group of that name, if the route lists it.
    pub fn broker(&self, broker_name: &str) -> Option<&BrokerData> {
        self.broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
    }

    /// All readable queues of the topic (what a consumer subscribes to): `0..read_queue_nums` for
    /// every queue data with the read permission, sorted as RocketMQ sorts them.
    pub fn subscribe_queues(&self, topic: &str) -> Vec<MessageQueue> {
        let topic: Arc<str> = Arc::from(topic);
        let mut out = Vec::new();
        for qd in self.queue_datas.iter().filter(|qd| qd.perm.is_readable()) {
            let broker: Arc<str> = Arc::from(qd.broker_name.as_str());
            out.extend(
                (0..qd.read_queue_nums)
                    .map(|id| MessageQueue::from_shared(topic.clone(), broker.clone(), id)),
            );
        }
        out.sort();
        out.dedup();
        out
    }
}

/// One queue of a topic on a broker group: `(topic, brokerName, queueId)`.
///
/// Ordered as RocketMQ's `MessageQueue.compareTo`: by topic, then broker name, then queue id. The
/// strings are shared (`Arc<str>`) so allocation results are cheap to copy.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageQueue {
    /// The topic.
    pub topic: Arc<str>,
    /// The broker group that holds the queue.
    pub broker_name: Arc<str>,
    /// The queue's id on that broker group.
    pub queue_id: u32,
}

impl MessageQueue {
    /// A queue from plain strings.
    pub fn new(topic: &str, broker_name: &str, queue_id: u32) -> Self {
        MessageQueue {
            topic: Arc::from(topic),
            broker_name: Arc::from(broker_name),
            queue_id,
        }
    }

    /// A queue from already shared strings (no copy).
    pub fn from_shared(topic: Arc<str>, broker_name: Arc<str>, queue_id: u32) -> Self {
        MessageQueue {
            topic,
            broker_name,
            queue_id,
        }
    }
}

impl fmt::Display for MessageQueue {
    /// Formats exactly as Java's `MessageQueue.toString()`, which consistent hashing hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MessageQueue [topic={}, brokerName={}, queueId={}]",
            self.topic, self.broker_name, self.queue_id
        )
    }
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.topic, self.broker_name, self.queue_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_bits_match_rocketmq() {
        assert_eq!(Perm::default().0, 6);
        assert!(Perm(6).is_readable() && Perm(6).is_writeable() && !Perm(6).is_inherited());
        assert_eq!(Perm(6).to_string(), "RW-");
        assert_eq!(Perm(7).to_string(), "RWX");
        assert_eq!(Perm(4).to_string(), "R--");
        assert_eq!(Perm(14).without_write(), Perm(12));
        assert!(Perm(8).is_priority());
        // Each bit alone: a test of one true case cannot tell `&` from `|`.
        for (p, r, w, x, pr) in [
            (0, false, false, false, false),
            (1, false, false, true, false),
            (2, false, true, false, false),
            (4, true, false, false, false),
            (8, false, false, false, true),
            (7, true, true, true, false),
            (15, true, true, true, true),
        ] {
            let p = Perm(p);
            assert_eq!(
                (
                    p.is_readable(),
                    p.is_writeable(),
                    p.is_inherited(),
                    p.is_priority()
                ),
                (r, w, x, pr),
                "{p:?}"
            );
        }
    }

    #[test]
    fn message_queue_orders_by_topic_then_broker_then_id() {
        let mut qs = [
            MessageQueue::new("b", "a", 0),
            MessageQueue::new("a", "b", 0),
            MessageQueue::new("a", "a", 10),
            MessageQueue::new("a", "a", 2),
        ];
        qs.sort();
        let ids: Vec<String> = qs.iter().map(|q| format!("{q:?}")).collect();
        assert_eq!(ids, ["a:a:2", "a:a:10", "a:b:0", "b:a:0"]);
    }

    #[test]
    fn message_queue_display_is_javas_to_string() {
        let q = MessageQueue::new("TopicTest", "broker-a", 3);
        assert_eq!(
            q.to_string(),
            "MessageQueue [topic=TopicTest, brokerName=broker-a, queueId=3]"
        );
    }

    #[test]
    fn of_masters_builds_one_master_per_group() {
        let r = TopicRouteData::of_masters("C", [("a", "h:1"), ("b", "h:2")], 3);
        assert_eq!(r.queue_datas.len(), 2);
        assert_eq!(r.broker("b").unwrap().master_addr(), Some("h:2"));
        assert_eq!(r.queue_datas[0].perm, Perm::READ_WRITE);
        assert_eq!(r.subscribe_queues("t").len(), 6);
        assert!(r.broker_datas.iter().all(|b| b.cluster == "C"));
    }

    #[test]
    fn select_broker_addr_prefers_master() {
        let mut b = BrokerData {
            broker_name: "b".into(),
            ..Default::default()
        };
        assert_eq!(b.select_broker_addr(7), None);
        b.broker_addrs.insert(1, "s1".into());
        b.broker_addrs.insert(2, "s2".into());
        assert_eq!(b.select_broker_addr(0), Some("s1"));
        assert_eq!(b.select_broker_addr(1), Some("s2"));
        b.broker_addrs.insert(0, "m".into());
        assert_eq!(b.select_broker_addr(1), Some("m"));
    }

    #[test]
    fn subscribe_queues_skip_unreadable_and_sort() {
        let route = TopicRouteData {
            queue_datas: vec![
                QueueData {
                    broker_name: "b".into(),
                    read_queue_nums: 2,
                    write_queue_nums: 2,
                    perm: Perm::READ_WRITE,
                    topic_sys_flag: 0,
                },
                QueueData {
                    broker_name: "a".into(),
                    read_queue_nums: 1,
                    write_queue_nums: 4,
                    perm: Perm(Perm::READ),
                    topic_sys_flag: 0,
                },
                QueueData {
                    broker_name: "c".into(),
                    read_queue_nums: 3,
                    write_queue_nums: 3,
                    perm: Perm(Perm::WRITE),
                    topic_sys_flag: 0,
                },
            ],
            ..Default::default()
        };
        let qs: Vec<String> = route
            .subscribe_queues("t")
            .iter()
            .map(|q| format!("{q:?}"))
            .collect();
        assert_eq!(qs, ["t:a:0", "t:b:0", "t:b:1"]);
    }
}
