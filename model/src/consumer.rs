//! Consumer decisions: which queues each member of a group owns, and what a rebalance changes.
//!
//! Every member of a group computes its own share from the same inputs: the topic's readable
//! queues and the group's member list, both **sorted** (RocketMQ sorts them in
//! `RebalanceImpl.rebalanceByTopic` so that all members share one view, apache/rocketmq#1945).
//! [`GroupView`] holds those inputs sorted and de-duplicated; an [`AllocateStrategy`] maps a view
//! and a member id to that member's queues. The six strategies of RocketMQ are here
//! (protocol.md §7.3):
//!
//! | type | RocketMQ name | CLI name |
//! |---|---|---|
//! | [`Averagely`] | `AVG` | `averagely` |
//! | [`AveragelyByCircle`] | `AVG_BY_CIRCLE` | `circle` |
//! | [`ByConfig`] | `CONFIG` | `config` |
//! | [`ByMachineRoom`] | `MACHINE_ROOM` | `machine-room` |
//! | [`MachineRoomNearby`] | `MACHINE_ROOM_NEARBY-<inner>` | `machine-room-nearby` |
//! | [`ConsistentHash`] | `CONSISTENT_HASH` | `consistent-hash` |
//!
//! [`RebalancePlan`] turns the queues a member holds and its new share into what to drop and
//! what to add (`updateProcessQueueTableInRebalance`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use md5::{Digest, Md5};

use crate::route::MessageQueue;

/// Why a member could not compute its share (RocketMQ throws `IllegalArgumentException`; the
/// rebalance then keeps the member's current queues).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocateError {
    /// The member's own id is empty.
    #[error("currentCID is empty")]
    EmptyCurrentId,
    /// The topic has no readable queue.
    #[error("mqAll is null or mqAll empty")]
    NoQueues,
    /// The group has no member.
    #[error("cidAll is null or cidAll empty")]
    NoConsumers,
    /// A machine-room strategy could not place a queue or a member in a room.
    #[error("machine room is empty for {0}")]
    NoMachineRoom(String),
}

/// The inputs every member of a group shares: the topic's queues and the member ids, both
/// sorted and without duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct GroupView {
    queues: Vec<MessageQueue>,
    consumers: Vec<String>,
}

impl GroupView {
    /// A view from queues and member ids in any order, with any duplicates.
    pub fn new<S: Into<String>>(
        queues: impl IntoIterator<Item = MessageQueue>,
        consumers: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut queues: Vec<MessageQueue> = queues.into_iter().collect();
        queues.sort();
        queues.dedup();
        let mut consumers: Vec<String> = consumers.into_iter().map(Into::into).collect();
        consumers.sort();
        consumers.dedup();
        GroupView { queues, consumers }
    }

    /// A view that keeps the member order it is given (duplicates dropped): how a client that
    /// forgot RocketMQ's `Collections.sort` of the member list would see the group. Only for
    /// the deliberately broken client the conformance checks must catch; the queues are sorted.
    #[doc(hidden)]
    pub fn in_given_order<S: Into<String>>(
        queues: impl IntoIterator<Item = MessageQueue>,
        consumers: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut view = GroupView::new(queues, std::iter::empty::<String>());
        for c in consumers {
            let c = c.into();
            if !view.consumers.contains(&c) {
                view.consumers.push(c);
            }
        }
        view
    }

    /// The queues, sorted by (topic, broker, id).
    pub fn queues(&self) -> &[MessageQueue] {
        &self.queues
    }

    /// The member ids, sorted.
    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }

    /// The position of `cid` among the members.
    pub fn index_of(&self, cid: &str) -> Option<usize> {
        // A linear search: the members are few, and a view `in_given_order` is not sorted.
        self.consumers.iter().position(|c| c == cid)
    }

    /// RocketMQ's common check. `Ok(None)`: `cid` is not a member, so its share is empty.
    fn check(&self, cid: &str) -> Result<Option<usize>, AllocateError> {
        if cid.is_empty() {
            return Err(AllocateError::EmptyCurrentId);
        }
        if self.queues.is_empty() {
            return Err(AllocateError::NoQueues);
        }
        if self.consumers.is_empty() {
            return Err(AllocateError::NoConsumers);
        }
        Ok(self.index_of(cid))
    }

    /// Every member's share, by member id.
    pub fn allocate_all(
        &self,
        strategy: &dyn AllocateStrategy,
    ) -> Result<BTreeMap<String, Vec<MessageQueue>>, AllocateError> {
        self.consumers
            .iter()
            .map(|c| Ok((c.clone(), strategy.allocate(self, c)?)))
            .collect()
    }
}

/// A way to split a group's queues among its members (`AllocateMessageQueueStrategy`).
pub trait AllocateStrategy: fmt::Debug + Send + Sync {
    /// RocketMQ's name of the strategy (`getName()`).
    fn name(&self) -> String;

    /// The queues `cid` owns in `view`, in queue order. Empty if `cid` is not a member.
    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError>;
}

/// `AllocateMessageQueueAveragely`: contiguous blocks, the first `n % c` members get one more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Averagely;

impl Averagely {
    /// The index range member `i` of `c` owns among `n` queues.
    pub fn range(n: usize, c: usize, i: usize) -> std::ops::Range<usize> {
        let m = n % c;
        let avg = if n <= c {
            1
        } else if m > 0 && i < m {
            n / c + 1
        } else {
            n / c
        };
        let start = if m > 0 && i < m { i * avg } else { i * avg + m };
        let end = start + avg.min(n.saturating_sub(start));
        start.min(n)..end.min(n)
    }
}

impl AllocateStrategy for Averagely {
    fn name(&self) -> String {
        "AVG".into()
    }

    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError> {
        let Some(i) = view.check(cid)? else {
            return Ok(Vec::new());
        };
        let r = Averagely::range(view.queues.len(), view.consumers.len(), i);
        Ok(view.queues[r].to_vec())
    }
}

/// `AllocateMessageQueueAveragelyByCircle`: queue `j` goes to member `j % c`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AveragelyByCircle;

impl AllocateStrategy for AveragelyByCircle {
    fn name(&self) -> String {
        "AVG_BY_CIRCLE".into()
    }

    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError> {
        let Some(i) = view.check(cid)? else {
            return Ok(Vec::new());
        };
        let c = view.consumers.len();
        Ok(view.queues.iter().skip(i).step_by(c).cloned().collect())
    }
}

/// `AllocateMessageQueueByConfig`: each member owns the queues configured for it, verbatim.
///
/// In RocketMQ each consumer process is configured with its own list; here the configuration of
/// the whole group is one map from member id to queues, so the model can reason about the group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ByConfig {
    /// The configured queues of each member.
    pub assignments: BTreeMap<String, Vec<MessageQueue>>,
}

impl AllocateStrategy for ByConfig {
    fn name(&self) -> String {
        "CONFIG".into()
    }

    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError> {
        if view.check(cid)?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self.assignments.get(cid).cloned().unwrap_or_default())
    }
}

/// The machine room of a broker named `room@name` (RocketMQ's convention for
/// [`ByMachineRoom`]): `Some(room)` only for exactly two `@`-separated parts, as Java's
/// `split("@")` with trailing empty parts dropped.
pub fn broker_room(broker_name: &str) -> Option<&str> {
    let trimmed = broker_name.trim_end_matches('@');
    let mut parts = trimmed.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(room), Some(_), None) => Some(room),
        _ => None,
    }
}

/// `AllocateMessageQueueByMachineRoom`: only queues of brokers named `room@name` with `room` in
/// `consumer_idcs` are shared out, in blocks of `len / c`, the remainder one each to the first
/// members.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ByMachineRoom {
    /// The rooms this group consumes from (`consumeridcs`).
    pub consumer_idcs: BTreeSet<String>,
}

impl ByMachineRoom {
    /// The queues this strategy shares out at all.
    pub fn eligible<'a>(&self, view: &'a GroupView) -> Vec<&'a MessageQueue> {
        view.queues
            .iter()
            .filter(|mq| {
                broker_room(&mq.broker_name).is_some_and(|r| self.consumer_idcs.contains(r))
            })
            .collect()
    }
}

impl AllocateStrategy for ByMachineRoom {
    fn name(&self) -> String {
        "MACHINE_ROOM".into()
    }

    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError> {
        let Some(i) = view.check(cid)? else {
            return Ok(Vec::new());
        };
        let pre = self.eligible(view);
        let c = view.consumers.len();
        let (m, rem) = (pre.len() / c, pre.len() % c);
        let mut out: Vec<MessageQueue> =
            pre[i * m..i * m + m].iter().map(|q| (*q).clone()).collect();
        if rem > i {
            out.push(pre[i + m * c].clone());
        }
        Ok(out)
    }
}

/// Where queues and members are deployed (`MachineRoomResolver`).
pub trait MachineRoomResolver: fmt::Debug + Send + Sync {
    /// The room of a queue's broker (`brokerDeployIn`).
    fn broker_room(&self, mq: &MessageQueue) -> Option<String>;
    /// The room of a member (`consumerDeployIn`).
    fn consumer_room(&self, cid: &str) -> Option<String>;
}

/// Rooms taken from names: a broker `room@name` and a member `room@anything`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PrefixRooms;

impl MachineRoomResolver for PrefixRooms {
    fn broker_room(&self, mq: &MessageQueue) -> Option<String> {
        mq.broker_name
            .split_once('@')
            .map(|(room, _)| room.to_owned())
            .filter(|r| !r.is_empty())
    }
    fn consumer_room(&self, cid: &str) -> Option<String> {
        cid.split_once('@')
            .map(|(room, _)| room.to_owned())
            .filter(|r| !r.is_empty())
    }
}

/// `AllocateMachineRoomNearby`: members first share the queues of their own room with the
/// members of that room; queues of rooms with no member are shared among all members.
#[derive(Debug)]
pub struct MachineRoomNearby {
    /// The strategy applied inside each room.
    pub inner: Box<dyn AllocateStrategy>,
    /// Where queues and members are.
    pub resolver: Box<dyn MachineRoomResolver>,
}

impl MachineRoomNearby {
    /// Nearby allocation with `inner` inside rooms and rooms from names ([`PrefixRooms`]).
    pub fn new(inner: Box<dyn AllocateStrategy>) -> Self {
        MachineRoomNearby {
            inner,
            resolver: Box::new(PrefixRooms),
        }
    }
}

impl AllocateStrategy for MachineRoomNearby {
    fn name(&self) -> String {
        format!("MACHINE_ROOM_NEARBY-{}", self.inner.name())
    }

    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError> {
        if view.check(cid)?.is_none() {
            return Ok(Vec::new());
        }
        let mut queues_by_room: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
        for mq in &view.queues {
            let room = self
                .resolver
                .broker_room(mq)
                .ok_or_else(|| AllocateError::NoMachineRoom(mq.to_string()))?;
            queues_by_room.entry(room).or_default().push(mq.clone());
        }
        let mut members_by_room: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in &view.consumers {
            let room = self
                .resolver
                .consumer_room(c)
                .ok_or_else(|| AllocateError::NoMachineRoom(c.clone()))?;
            members_by_room.entry(room).or_default().push(c.clone());
        }
        let my_room = self
            .resolver
            .consumer_room(cid)
            .ok_or_else(|| AllocateError::NoMachineRoom(cid.to_owned()))?;

        let mut out = Vec::new();
        if let Some(mine) = queues_by_room.remove(&my_room) {
            let members = members_by_room.get(&my_room).cloned().unwrap_or_default();
            out.extend(self.inner.allocate(&GroupView::new(mine, members), cid)?);
        }
        for (room, queues) in queues_by_room {
            if !members_by_room.contains_key(&room) {
                let sub = GroupView {
                    queues,
                    consumers: view.consumers.clone(),
                };
                out.extend(self.inner.allocate(&sub, cid)?);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// RocketMQ's default hash for consistent hashing (`ConsistentHashRouter.MD5Hash`): the first four
/// bytes of the MD5 digest of the UTF-8 key, big-endian, unsigned.
pub fn md5_hash(key: &str) -> u32 {
    let digest = Md5::digest(key.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// `AllocateMessageQueueConsistentHash`: a hash ring with `virtual_nodes` points per member; a
/// queue belongs to the first point at or after the hash of its `toString()`, wrapping around.
///
/// When one member leaves, exactly the queues it owned move, and no other queue changes owner
/// (its successor point still exists and no point was added); the property tests check this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConsistentHash {
    /// Points per member on the ring (`virtualNodeCnt`, default 10).
    pub virtual_nodes: u32,
}

impl Default for ConsistentHash {
    fn default() -> Self {
        ConsistentHash { virtual_nodes: 10 }
    }
}

impl ConsistentHash {
    /// The ring for these members, sorted by point hash. On a hash collision the later member (in
    /// sorted order) holds the point, as Java's `TreeMap.put` does.
    pub fn ring(&self, consumers: &[String]) -> HashRing {
        let mut points = Vec::with_capacity(consumers.len() * self.virtual_nodes as usize);
        let mut key = String::new();
        for (i, cid) in consumers.iter().enumerate() {
            for v in 0..self.virtual_nodes {
                key.clear();
                use std::fmt::Write;
                let _ = write!(key, "{cid}-{v}");
                points.push((md5_hash(&key), i));
            }
        }
        // Stable sort keeps insertion order among equal hashes; the last inserted wins.
        points.sort_by_key(|p| p.0);
        let mut ring: Vec<(u32, usize)> = Vec::with_capacity(points.len());
        for p in points {
            match ring.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => ring.push(p),
            }
        }
        HashRing { points: ring }
    }
}

/// A consistent-hash ring: points `(hash, member index)` sorted by hash, one member per hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct HashRing {
    points: Vec<(u32, usize)>,
}

impl HashRing {
    /// The member index holding the first point at or after `hash`, wrapping around.
    pub fn route(&self, hash: u32) -> Option<usize> {
        let at = self.points.partition_point(|p| p.0 < hash);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map(|p| p.1)
    }

    /// The member index that owns `mq`. `buf` is scratch space for its `toString()`.
    pub fn owner(&self, mq: &MessageQueue, buf: &mut String) -> Option<usize> {
        use std::fmt::Write;
        buf.clear();
        let _ = write!(buf, "{mq}");
        self.route(md5_hash(buf))
    }

    /// How many points the ring has.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

impl AllocateStrategy for ConsistentHash {
    fn name(&self) -> String {
        "CONSISTENT_HASH".into()
    }

    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError> {
        let Some(i) = view.check(cid)? else {
            return Ok(Vec::new());
        };
        let ring = self.ring(&view.consumers);
        let mut buf = String::with_capacity(96);
        Ok(view
            .queues
            .iter()
            .filter(|mq| ring.owner(mq, &mut buf) == Some(i))
            .cloned()
            .collect())
    }
}

/// The strategy names the CLI and configuration accept.
pub const STRATEGY_NAMES: [&str; 6] = [
    "averagely",
    "circle",
    "config",
    "machine-room",
    "machine-room-nearby",
    "consistent-hash",
];

/// What a member does after computing its new share (`updateProcessQueueTableInRebalance`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RebalancePlan {
    /// Queues to stop pulling: persist their offset, unlock them (orderly), forget them.
    pub drop: Vec<MessageQueue>,
    /// Queues to start pulling: lock them (orderly), find their offset, pull.
    pub add: Vec<MessageQueue>,
    /// Queues kept as they are.
    pub keep: Vec<MessageQueue>,
}

impl RebalancePlan {
    /// The plan from the queues held now to the new share. Queues in `pull_expired` (held, but
    /// not pulled for too long) are dropped and, if still in the share, added again.
    pub fn compute(
        held: &BTreeSet<MessageQueue>,
        share: &[MessageQueue],
        pull_expired: &BTreeSet<MessageQueue>,
    ) -> Self {
        let share: BTreeSet<&MessageQueue> = share.iter().collect();
        let mut plan = RebalancePlan::default();
        for mq in held {
            if !share.contains(mq) || pull_expired.contains(mq) {
                plan.drop.push(mq.clone());
            } else {
                plan.keep.push(mq.clone());
            }
        }
        for mq in share {
            if !held.contains(mq) || pull_expired.contains(mq) {
                plan.add.push(mq.clone());
            }
        }
        plan
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.add.is_empty()
    }

    /// The queues held after the plan is carried out.
    pub fn result(&self) -> BTreeSet<MessageQueue> {
        self.keep.iter().chain(&self.add).cloned().collect()
    }
}

/// The messages a consumer has pulled from one queue and not yet consumed (`ProcessQueue`), and
/// the offset it may commit for that queue.
///
/// Concurrent consumption finishes messages in any order; the committable offset is the smallest
/// offset still in flight, or one past the highest pulled when nothing is (`removeMessage`). That
/// never passes an unconsumed message, and after a crash the next owner consumes again what was in
/// flight (at-least-once).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcessQueue {
    in_flight: BTreeSet<u64>,
    next: u64,
}

impl ProcessQueue {
    /// A queue that starts pulling at `offset` (the committed offset read from the broker).
    pub fn starting_at(offset: u64) -> Self {
        ProcessQueue {
            in_flight: BTreeSet::new(),
            next: offset,
        }
    }

    /// The offset the next pull asks for.
    pub fn next_pull(&self) -> u64 {
        self.next
    }

    /// Record pulled messages at `offsets` (what a pull returned).
    pub fn pulled(&mut self, offsets: impl IntoIterator<Item = u64>) {
        for o in offsets {
            self.in_flight.insert(o);
            self.next = self.next.max(o + 1);
        }
    }

    /// Record that the message at `offset` was consumed; returns the offset to commit now.
    pub fn consumed(&mut self, offset: u64) -> u64 {
        self.in_flight.remove(&offset);
        self.commit_offset()
    }

    /// Record that a pull answered nothing to consume below `next_begin` (no new message, none
    /// matched the subscription, or every message was filtered out on the client): the queue
    /// moves on without anything in flight. Never moves backward.
    pub fn skipped_to(&mut self, next_begin: u64) {
        self.next = self.next.max(next_begin);
    }

    /// How many messages are in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether no message is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The span of offsets in flight (`ProcessQueue.getMaxSpan`): last minus first, 0 if fewer
    /// than two.
    pub fn span(&self) -> u64 {
        match (self.in_flight.first(), self.in_flight.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        }
    }

    /// The offset that may be committed: the first message in flight, or the next to pull.
    pub fn commit_offset(&self) -> u64 {
        self.in_flight.first().copied().unwrap_or(self.next)
    }

    /// The messages pulled and not yet consumed, in offset order.
    pub fn in_flight(&self) -> impl Iterator<Item = u64> + '_ {
        self.in_flight.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: u32) -> Vec<MessageQueue> {
        (0..n)
            .map(|i| MessageQueue::new("T", "broker-a", i))
            .collect()
    }

    fn ids(qs: &[MessageQueue]) -> Vec<u32> {
        qs.iter().map(|q| q.queue_id).collect()
    }

    fn shares(strategy: &dyn AllocateStrategy, n: u32, c: usize) -> Vec<Vec<u32>> {
        let view = GroupView::new(queues(n), (0..c).map(|i| format!("c{i}")));
        view.consumers()
            .iter()
            .map(|cid| ids(&strategy.allocate(&view, cid).unwrap()))
            .collect()
    }

    #[test]
    fn seed_averagely_8_queues_3_consumers() {
        assert_eq!(
            shares(&Averagely, 8, 3),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]
        );
    }

    #[test]
    fn seed_circle_8_queues_3_consumers() {
        assert_eq!(
            shares(&AveragelyByCircle, 8, 3),
            vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5]]
        );
    }

    #[test]
    fn averagely_more_consumers_than_queues_leaves_the_last_idle() {
        assert_eq!(
            shares(&Averagely, 2, 4),
            vec![vec![0], vec![1], vec![], vec![]]
        );
    }

    #[test]
    fn averagely_ranges_match_rocketmq_formula() {
        // n=10, c=4: mod=2, the first two get 3, the others 2.
        let r: Vec<_> = (0..4).map(|i| Averagely::range(10, 4, i)).collect();
        assert_eq!(r, vec![0..3, 3..6, 6..8, 8..10]);
    }

    #[test]
    fn common_checks() {
        let view = GroupView::new(queues(2), ["a"]);
        assert_eq!(
            Averagely.allocate(&view, ""),
            Err(AllocateError::EmptyCurrentId)
        );
        assert_eq!(Averagely.allocate(&view, "zz"), Ok(vec![]));
        let empty_q = GroupView::new(Vec::new(), ["a"]);
        assert_eq!(
            Averagely.allocate(&empty_q, "a"),
            Err(AllocateError::NoQueues)
        );
        let empty_c = GroupView::new(queues(2), Vec::<String>::new());
        assert_eq!(
            Averagely.allocate(&empty_c, "a"),
            Err(AllocateError::NoConsumers)
        );
    }

    #[test]
    fn by_config_returns_the_configured_list() {
        let mut s = ByConfig::default();
        s.assignments
            .insert("a".into(), vec![MessageQueue::new("T", "x", 9)]);
        let view = GroupView::new(queues(2), ["a", "b"]);
        assert_eq!(ids(&s.allocate(&view, "a").unwrap()), vec![9]);
        assert_eq!(s.allocate(&view, "b").unwrap(), vec![]);
    }

    #[test]
    fn broker_room_follows_java_split() {
        assert_eq!(broker_room("hz@broker-a"), Some("hz"));
        assert_eq!(broker_room("@broker-a"), Some(""));
        assert_eq!(broker_room("hz@"), None);
        assert_eq!(broker_room("a@b@c"), None);
        assert_eq!(broker_room("broker-a"), None);
    }

    #[test]
    fn by_machine_room_shares_only_listed_rooms() {
        let mut qs = Vec::new();
        for (room, n) in [("hz", 5), ("sh", 3)] {
            for i in 0..n {
                qs.push(MessageQueue::new("T", &format!("{room}@b"), i));
            }
        }
        let s = ByMachineRoom {
            consumer_idcs: ["hz".to_string()].into(),
        };
        let view = GroupView::new(qs, ["c0", "c1"]);
        let a = s.allocate(&view, "c0").unwrap();
        let b = s.allocate(&view, "c1").unwrap();
        // 5 eligible, mod 2, rem 1: c0 gets [0,1] + [4], c1 gets [2,3].
        assert_eq!(ids(&a), vec![0, 1, 4]);
        assert_eq!(ids(&b), vec![2, 3]);
        assert!(a.iter().chain(&b).all(|q| &*q.broker_name == "hz@b"));
    }

    #[test]
    fn nearby_prefers_own_room_and_shares_orphan_rooms() {
        let mut qs = Vec::new();
        for room in ["hz", "sh", "bj"] {
            for i in 0..2 {
                qs.push(MessageQueue::new("T", &format!("{room}@b"), i));
            }
        }
        let s = MachineRoomNearby::new(Box::new(Averagely));
        let view = GroupView::new(qs, ["hz@c0", "sh@c1"]);
        let a = s.allocate(&view, "hz@c0").unwrap();
        let b = s.allocate(&view, "sh@c1").unwrap();
        let names =
            |qs: &[MessageQueue]| -> Vec<String> { qs.iter().map(|q| format!("{q:?}")).collect() };
        // bj has no member: averagely over both, c0 gets bj:0, c1 gets bj:1.
        assert_eq!(names(&a), ["T:bj@b:0", "T:hz@b:0", "T:hz@b:1"]);
        assert_eq!(names(&b), ["T:bj@b:1", "T:sh@b:0", "T:sh@b:1"]);
        assert_eq!(s.name(), "MACHINE_ROOM_NEARBY-AVG");
    }

    #[test]
    fn md5_hash_matches_java() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e; Java's MD5Hash takes the first 4 bytes.
        assert_eq!(md5_hash(""), 0xd41d_8cd9);
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        assert_eq!(md5_hash("abc"), 0x9001_5098);
    }

    #[test]
    fn strategy_names_are_rocketmqs() {
        // `AllocateMessageQueueStrategy.getName()` of each Java class; clients report them.
        assert_eq!(Averagely.name(), "AVG");
        assert_eq!(AveragelyByCircle.name(), "AVG_BY_CIRCLE");
        assert_eq!(ByConfig::default().name(), "CONFIG");
        assert_eq!(ByMachineRoom::default().name(), "MACHINE_ROOM");
        assert_eq!(ConsistentHash::default().name(), "CONSISTENT_HASH");
    }

    #[test]
    fn a_hash_collision_goes_to_the_member_put_last() {
        // MD5Hash("c106893-0") == MD5Hash("c147464-0") == 0xc973fd44 (found by search). Java's
        // TreeMap.put keeps the last member put at that point, so with one virtual node the
        // member later in the sorted list owns every queue.
        assert_eq!(md5_hash("c106893-0"), md5_hash("c147464-0"));
        let one = ConsistentHash { virtual_nodes: 1 };
        let ring = one.ring(&["c106893".to_owned(), "c147464".to_owned()]);
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.route(0), Some(1));
        let view = GroupView::new(queues(4), ["c147464", "c106893"]);
        assert_eq!(one.allocate(&view, "c147464").unwrap(), queues(4));
        assert!(one.allocate(&view, "c106893").unwrap().is_empty());
        assert!(one.ring(&[]).is_empty());
        assert!(!ring.is_empty());
    }

    #[test]
    fn a_view_in_given_order_keeps_it_and_drops_duplicates() {
        let view = GroupView::in_given_order(queues(2), ["b", "a", "b", "c"]);
        assert_eq!(view.consumers(), ["b", "a", "c"]);
        assert_eq!(view.queues(), queues(2));
        assert_eq!(
            GroupView::new(queues(2), ["b", "a", "b"]).consumers(),
            ["a", "b"]
        );
    }

    #[test]
    fn empty_plans_and_process_queues() {
        let held: BTreeSet<MessageQueue> = queues(2).into_iter().collect();
        assert!(RebalancePlan::compute(&held, &queues(2), &BTreeSet::new()).is_empty());
        let plan = RebalancePlan::compute(&held, &queues(1), &BTreeSet::new());
        assert!(!plan.is_empty(), "a drop is a change");
        let plan = RebalancePlan::compute(&BTreeSet::new(), &queues(1), &BTreeSet::new());
        assert!(!plan.is_empty(), "an add is a change");
        let mut pq = ProcessQueue::starting_at(0);
        assert!(pq.is_empty());
        pq.pulled([0, 1]);
        assert!(!pq.is_empty());
        pq.consumed(0);
        pq.consumed(1);
        assert!(pq.is_empty());
    }

    #[test]
    fn consistent_hash_matches_rocketmq_golden_vector() {
        // The owners AllocateMessageQueueConsistentHash (10 virtual nodes, MD5Hash of
        // `MessageQueue.toString()` and of `clientId-index`, TreeMap.tailMap, wrapping) gives
        // these queues, computed by an independent transcription of the Java code (Python's
        // hashlib). Every member owns some: a ring that routes everything to one member fails.
        let cids = ["192.168.0.1@c1", "192.168.0.1@c2", "192.168.0.1@c3"];
        let qs: Vec<MessageQueue> = ["broker-a", "broker-b"]
            .iter()
            .flat_map(|b| (0..4).map(move |i| MessageQueue::new("TopicTest", b, i)))
            .collect();
        let view = GroupView::new(qs.clone(), cids);
        let expected = [
            ("192.168.0.1@c1", vec![("broker-a", 0), ("broker-b", 1)]),
            (
                "192.168.0.1@c2",
                vec![("broker-a", 2), ("broker-a", 3), ("broker-b", 2)],
            ),
            (
                "192.168.0.1@c3",
                vec![("broker-a", 1), ("broker-b", 0), ("broker-b", 3)],
            ),
        ];
        for (cid, want) in expected {
            let got: Vec<(String, u32)> = ConsistentHash::default()
                .allocate(&view, cid)
                .unwrap()
                .into_iter()
                .map(|q| (q.broker_name.to_string(), q.queue_id))
                .collect();
            let want: Vec<(String, u32)> = want.into_iter().map(|(b, i)| (b.into(), i)).collect();
            assert_eq!(got, want, "{cid}");
        }
    }

    #[test]
    fn hash_ring_routes_to_successor_and_wraps() {
        let ring = HashRing {
            points: vec![(10, 0), (20, 1)],
        };
        assert_eq!(ring.route(0), Some(0));
        assert_eq!(ring.route(10), Some(0));
        assert_eq!(ring.route(11), Some(1));
        assert_eq!(ring.route(21), Some(0));
        assert_eq!(HashRing::default().route(5), None);
        let built = ConsistentHash::default().ring(&["a".into(), "b".into()]);
        assert_eq!(built.len(), 20);
        assert!(!built.is_empty());
    }

    #[test]
    fn consistent_hash_partitions() {
        let view = GroupView::new(queues(64), ["a", "b", "c"]);
        let all = view.allocate_all(&ConsistentHash::default()).unwrap();
        let total: usize = all.values().map(Vec::len).sum();
        assert_eq!(total, 64);
    }

    #[test]
    fn rebalance_plan_drops_adds_and_keeps() {
        let q = queues(4);
        let held: BTreeSet<_> = q[0..3].iter().cloned().collect();
        let expired: BTreeSet<_> = [q[1].clone()].into();
        let plan =
            RebalancePlan::compute(&held, &[q[1].clone(), q[2].clone(), q[3].clone()], &expired);
        assert_eq!(ids(&plan.drop), vec![0, 1]);
        assert_eq!(ids(&plan.add), vec![1, 3]);
        assert_eq!(ids(&plan.keep), vec![2]);
        assert_eq!(plan.result(), q[1..4].iter().cloned().collect());
    }

    #[test]
    fn process_queue_commits_the_first_message_in_flight() {
        let mut pq = ProcessQueue::starting_at(5);
        assert_eq!(pq.commit_offset(), 5);
        pq.pulled([5, 6, 7]);
        assert_eq!(pq.next_pull(), 8);
        assert_eq!(pq.consumed(6), 5);
        assert_eq!(pq.consumed(5), 7);
        assert_eq!(pq.in_flight().collect::<Vec<_>>(), [7]);
        assert_eq!(pq.consumed(7), 8);
        pq.skipped_to(12);
        assert_eq!(pq.commit_offset(), 12);
        pq.skipped_to(3);
        assert_eq!(pq.next_pull(), 12);
        pq.pulled([12, 15]);
        assert_eq!((pq.len(), pq.span()), (2, 3));
        assert_eq!(pq.consumed(15), 12);
    }
}
