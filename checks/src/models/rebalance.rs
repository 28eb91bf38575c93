//! # The rebalance model
//!
//! Consumers of one group split a topic's queues among themselves. Each consumer rebalances on
//! its own: it reads the group's member list from the broker, computes its share with the
//! allocation strategy of `sextant-model`, and carries out the [`RebalancePlan`] (drop what it no
//! longer owns, add what it now owns). Consumers join, leave cleanly, or crash; the broker drops a
//! crashed consumer when its channel expires and notifies the others.
//!
//! ## Abstractions (what this model assumes)
//! - **Plain `Model`, atomic rebalance.** A rebalance reads the broker's member list and applies
//!   the plan in one step. In RocketMQ the read (GET_CONSUMER_LIST_BY_GROUP) and the apply are
//!   separate; a stale read is the same as rebalancing before a later membership change, which this
//!   model already interleaves.
//! - **Route views.** By default every consumer sees the same queue list. With `split_view`, two
//!   NameServers disagree (the second has already expired the last broker group) and each
//!   rebalance reads the route from either; their views never converge within a run.
//! - **Membership as events.** Join, leave, crash and channel expiry are single actions; the
//!   broker's 120 s channel expiry is the `Expire` action, which may happen at any time after a crash.
//! - **Rebalance on notify.** A consumer may rebalance when it has been notified of a membership
//!   change (or has just started); the periodic 20 s rebalance is a no-op once views are current,
//!   so it is not modelled. This bounds the state space without a budget counter.
//! - **Concurrent or orderly mode.** In concurrent mode a dropped queue is released at once. In
//!   orderly mode a consumer unlocks what it drops and takes a new queue only if the broker grants
//!   its lock; a rebalance that could not lock its whole share is incomplete and retries when a
//!   lock is released. A live holder renews its lock in time (RocketMQ: every 20 s against a 60 s
//!   expiry), so only the locks of crashed or paused consumers expire (`LockExpire`).
//! - **Pauses** (`pauses`, orderly mode). A live consumer may pause with a batch in flight on each
//!   queue it owns; its pause grows to just past the local lock (30 s), broker lock (60 s) and
//!   channel (120 s) expiries, which the real tables and `client::expired` judge. On resume its
//!   batches finish, it heartbeats, and it consumes a queue again only if its local lock is valid
//!   or once it has relocked it (what it keeps as well as what it adds).
//!
//! ## Properties
//! - `queue_owned_once` (always): once every live consumer has rebalanced on the current member list
//!   and that list is exactly the live consumers, each queue is owned by exactly one live consumer.
//! - `transient_double_owner` (sometimes): during a rebalance two live consumers own one queue —
//!   RocketMQ's known window (the joiner takes its share before the others drop theirs).
//! - `eventually_balanced` (eventually): on every run there is a state where each queue is owned
//!   by exactly one live consumer (or no consumer is live) — stateright's `eventually` is met
//!   once on a path, so a run that balances and later unbalances for good is not reported. Not
//!   with `split_view`, whose views never converge.
//! - `ordered_lock_exclusive` (always, orderly mode): no live consumer consumes a queue whose
//!   broker lock another consumer holds, and no queue is consumed by two live consumers at once —
//!   there is no transient double owner in orderly mode. Judged by
//!   `sextant_model::invariants::ordered_lock_exclusive`.
//! - `paused_batch_overlap` (sometimes, with pauses): a paused consumer's batch in flight is on a
//!   queue a live consumer now owns — RocketMQ's orderly hazard (the lock is checked before a
//!   batch, not during it).
//! - `split_view_double_owner` (sometimes, with `split_view`): two consumers that have both
//!   rebalanced on the current member list own one queue, because they read different routes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use sextant_model::Millis;
use sextant_model::broker::{CHANNEL_EXPIRED_MS, ConsumerGroups, LOCK_MAX_LIVE_MS, LockTable};
use sextant_model::client::{self, LOCAL_LOCK_MAX_LIVE_MS};
use sextant_model::consumer::{
    AllocateError, AllocateStrategy, Averagely, AveragelyByCircle, ConsistentHash, GroupView,
    MachineRoomNearby, RebalancePlan,
};
use sextant_model::invariants::{ordered_lock_exclusive, queue_owned_once_by};
use sextant_model::route::MessageQueue;
use stateright::{Model, Property};

use super::broker_tables as broker;
use super::intern::{Interned, Memo};

/// The most consumers (joiners included) the model takes: its member sets are 16-bit sets.
pub const MAX_CONSUMERS: u8 = 16;
/// The most queues the model takes: its queue sets are 64-bit sets.
pub const MAX_QUEUES: u16 = 64;

/// The allocation strategies this model checks (those that promise a partition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    /// `AllocateMessageQueueAveragely`.
    Averagely,
    /// `AllocateMessageQueueAveragelyByCircle`.
    Circle,
    /// `AllocateMessageQueueConsistentHash`.
    ConsistentHash,
    /// `AllocateMachineRoomNearby` with averagely inside rooms.
    MachineRoomNearby,
    /// Deliberately broken: averagely, but every share takes one queue too many. The checker must
    /// report `queue_owned_once`.
    BrokenOffByOne,
}

impl StrategyKind {
    /// The name the CLI takes (as `sextant allocate --strategy`).
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Averagely => "averagely",
            StrategyKind::Circle => "circle",
            StrategyKind::ConsistentHash => "consistent-hash",
            StrategyKind::MachineRoomNearby => "machine-room-nearby",
            StrategyKind::BrokenOffByOne => "broken-off-by-one",
        }
    }

    /// The kind of a CLI name.
    pub fn from_name(name: &str) -> Option<StrategyKind> {
        StrategyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every kind, the broken one last.
    pub const ALL: [StrategyKind; 5] = [
        StrategyKind::Averagely,
        StrategyKind::Circle,
        StrategyKind::ConsistentHash,
        StrategyKind::MachineRoomNearby,
        StrategyKind::BrokenOffByOne,
    ];

    pub(crate) fn build(self) -> Arc<dyn AllocateStrategy> {
        match self {
            StrategyKind::Averagely => Arc::new(Averagely),
            StrategyKind::Circle => Arc::new(AveragelyByCircle),
            StrategyKind::ConsistentHash => Arc::new(ConsistentHash::default()),
            StrategyKind::MachineRoomNearby => {
                Arc::new(MachineRoomNearby::new(Box::new(Averagely)))
            }
            StrategyKind::BrokenOffByOne => Arc::new(OffByOne),
        }
    }
}

/// Averagely with an off-by-one: each share runs one queue past its end.
#[derive(Debug)]
struct OffByOne;

impl AllocateStrategy for OffByOne {
    fn name(&self) -> String {
        "BROKEN_OFF_BY_ONE".into()
    }
    fn allocate(&self, view: &GroupView, cid: &str) -> Result<Vec<MessageQueue>, AllocateError> {
        let share = Averagely.allocate(view, cid)?;
        let Some(i) = view.index_of(cid) else {
            return Ok(share);
        };
        let r = Averagely::range(view.queues().len(), view.consumers().len(), i);
        let end = (r.end + 1).min(view.queues().len());
        Ok(view.queues()[r.start.min(end)..end].to_vec())
    }
}

/// Sizes and switches of the rebalance model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RebalanceModelCfg {
    /// Broker groups holding the topic (in two machine rooms, alternating).
    pub brokers: u8,
    /// Queues per broker group.
    pub queues_per_broker: u8,
    /// Consumers running from the start.
    pub initial_consumers: u8,
    /// Consumers that may join later.
    pub joiners: u8,
    /// How many leaves and crashes may happen in one run.
    pub faults: u8,
    /// The allocation strategy.
    pub strategy: StrategyKind,
    /// Two NameServers with different views: the second has already expired the last broker
    /// group, the first still lists it. Each rebalance reads the route from either.
    pub split_view: bool,
    /// Orderly mode: a consumer takes a queue only after locking it on the broker.
    pub orderly: bool,
    /// A deliberately broken broker lock table (orderly mode), or none.
    pub lock_bug: LockBug,
    /// Whether states that differ only in what gone consumers last held are one state.
    pub reduce: bool,
    /// Orderly mode: a live consumer may also pause (a GC pause, a stalled host) and resume, a
    /// fault like a crash.
    pub pauses: bool,
    /// Whether a pause starts just past the first expiry it can outlast: a shorter pause decides
    /// nothing (see [`pause_secs`]). Off, a pause may also end at once.
    pub reduce_pauses: bool,
}

/// Deliberately broken broker lock tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockBug {
    /// The lock table works as RocketMQ's `RebalanceLockManager`.
    None,
    /// Locks never expire: a crashed consumer's queues stay locked forever.
    NoExpiry,
    /// A lock is granted whoever holds it.
    NoHolderCheck,
    /// The client trusts its local lock for 90 s, past the broker's 60 s (RocketMQ's
    /// `lockMaxLiveTime` set above the broker's `REBALANCE_LOCK_MAX_LIVE_TIME`).
    LongLocalLock,
    /// After a pause past its local locks' expiry, the client's next rebalance relocks only the
    /// queues it adds, and takes batches again from those it keeps without relocking them
    /// (RocketMQ's `lockAll` relocks every queue of the process queue table).
    StaleKeep,
}

/// The broken client's local lock lifetime ([`LockBug::LongLocalLock`]).
pub const LONG_LOCAL_LOCK_MS: Millis = 90_000;

impl Default for RebalanceModelCfg {
    /// 3 consumers running and 1 joining, 6 queues on 2 brokers, 2 leaves or crashes.
    fn default() -> Self {
        RebalanceModelCfg {
            brokers: 2,
            queues_per_broker: 3,
            initial_consumers: 3,
            joiners: 1,
            faults: 2,
            strategy: StrategyKind::Averagely,
            split_view: false,
            orderly: false,
            lock_bug: LockBug::None,
            reduce: true,
            pauses: false,
            reduce_pauses: true,
        }
    }
}

impl RebalanceModelCfg {
    /// 2 consumers running and 1 joining, 4 queues, 1 leave or crash.
    pub fn small(strategy: StrategyKind) -> Self {
        RebalanceModelCfg {
            brokers: 2,
            queues_per_broker: 2,
            initial_consumers: 2,
            joiners: 1,
            faults: 1,
            strategy,
            split_view: false,
            orderly: false,
            lock_bug: LockBug::None,
            reduce: true,
            pauses: false,
            reduce_pauses: true,
        }
    }

    /// The model for this configuration; sizes past [`MAX_CONSUMERS`] and [`MAX_QUEUES`] are cut
    /// to them.
    pub fn into_model(mut self) -> RebalanceModel {
        self.brokers = self.brokers.max(1);
        self.queues_per_broker = self
            .queues_per_broker
            .min((MAX_QUEUES / u16::from(self.brokers)).min(255) as u8);
        self.initial_consumers = self.initial_consumers.min(MAX_CONSUMERS);
        self.joiners = self.joiners.min(MAX_CONSUMERS - self.initial_consumers);
        let queues = (0..self.brokers)
            .flat_map(|b| {
                (0..self.queues_per_broker).map(move |q| {
                    MessageQueue::new("T", &format!("room{}@broker-{b}", b % 2), u32::from(q))
                })
            })
            .collect::<Vec<_>>();
        let consumers = self.initial_consumers + self.joiners;
        RebalanceModel {
            cfg: self,
            queues: GroupView::new(queues, Vec::<String>::new())
                .queues()
                .to_vec(),
            cids: (0..consumers)
                .map(|c| format!("room{}@c{c}", c % 2))
                .collect(),
            strategy: self.strategy.build(),
            pause_secs: pause_secs(self.local_lock_max_live(), !self.reduce_pauses),
            memo: Arc::default(),
            stop: Default::default(),
        }
    }

    /// How long the client trusts its local lock of a queue without a renewal.
    pub fn local_lock_max_live(&self) -> Millis {
        if self.lock_bug == LockBug::LongLocalLock {
            LONG_LOCAL_LOCK_MS
        } else {
            LOCAL_LOCK_MAX_LIVE_MS
        }
    }

    /// Orderly with pauses, 3 consumers, 4 queues on 2 brokers, 1 fault: small enough for
    /// `sextant check --mutants`, large enough for a consumer to pause past every expiry while
    /// another takes one of its queues.
    pub fn orderly_paused_small(lock_bug: LockBug) -> Self {
        RebalanceModelCfg {
            queues_per_broker: 2,
            initial_consumers: 3,
            joiners: 0,
            faults: 1,
            orderly: true,
            pauses: true,
            lock_bug,
            ..Default::default()
        }
    }

    /// The larger configuration of `--deep`: 4+1 consumers, 8 queues, 3 leaves or crashes.
    pub fn deep() -> Self {
        RebalanceModelCfg {
            queues_per_broker: 4,
            initial_consumers: 4,
            faults: 3,
            ..Default::default()
        }
    }

    /// One line on what this configuration covers.
    pub fn summary(&self) -> String {
        format!(
            "{}+{} consumers, {} queues on {} brokers, {} leaves or crashes, {}{}{}{}",
            self.initial_consumers,
            self.joiners,
            u32::from(self.brokers) * u32::from(self.queues_per_broker),
            self.brokers,
            self.faults,
            self.strategy.name(),
            if self.orderly {
                ", orderly (queues taken under a broker lock that expires when its holder is gone)"
            } else {
                ""
            },
            if self.orderly && self.pauses {
                ", live consumers may pause past the local lock, broker lock and channel expiries"
            } else {
                ""
            },
            if self.split_view {
                ", routes from 2 NameServers, one of which expired a broker"
            } else {
                ""
            },
        )
    }
}

/// The rebalance model: see the module documentation.
#[derive(Clone)]
pub struct RebalanceModel {
    /// The configuration.
    pub cfg: RebalanceModelCfg,
    queues: Vec<MessageQueue>,
    cids: Vec<String>,
    strategy: Arc<dyn AllocateStrategy>,
    /// How long a pause can have lasted, in seconds: just past each expiry that a pause can
    /// outlast (the local lock, the broker's lock, the channel), in order; 0 first without
    /// `reduce_pauses`.
    pause_secs: Vec<u8>,
    memo: Arc<Memos>,
    stop: super::StopFlag,
}

super::stoppable!(RebalanceModel);

impl fmt::Debug for RebalanceModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RebalanceModel")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// The broker's lock table, interned.
type Locks = Interned<LockTable>;

/// A [`RebalancePlan`] as queue sets.
#[derive(Clone, Copy, Debug)]
struct Plan {
    keep: Queues,
    drop: Queues,
    add: Queues,
}

/// The model's memo tables: `sextant-model`'s decisions by their inputs.
#[derive(Debug, Default)]
struct Memos {
    /// The broker's member list → the consumers in it.
    members: Memo<Interned<ConsumerGroups>, Consumers>,
    /// (consumer, member list, NameServer) → its share.
    allocate: Memo<(u8, Consumers, u8), Queues>,
    /// (held, share) → the rebalance plan.
    plan: Memo<(Queues, Queues), Plan>,
    /// Lock table → the holder of each queue, by consumer index.
    holders: Memo<Interned<LockTable>, Arc<[Option<u8>]>>,
    /// (lock table, consumer, queues) → the table after it locks them, and what it holds of them.
    lock: Memo<(Locks, u8, Queues), (Locks, Queues)>,
    /// (lock table, consumer, queues) → the table after it unlocks them.
    unlock: Memo<(Interned<LockTable>, u8, Queues), Interned<LockTable>>,
    /// (lock table, queue, its holder's silence) → the table after the broker's expiry runs.
    expire_lock: Memo<(Interned<LockTable>, u8, Millis), Interned<LockTable>>,
    /// (member list, consumer) → the list after its heartbeat, and whether it changed.
    heartbeat: Memo<(Interned<ConsumerGroups>, u8), (Interned<ConsumerGroups>, bool)>,
    /// (member list, consumer, its silence) → the list after the broker's channel expiry runs.
    expire_channel: Memo<(Interned<ConsumerGroups>, u8, Millis), Interned<ConsumerGroups>>,
}

/// A set of consumers, by index: bit `c` is consumer `c`.
pub type Consumers = u16;
/// A set of queues, by index into the model's sorted queue list.
pub type Queues = u64;

/// One second past each of the client's local lock, the broker's lock and the channel expiry,
/// sorted: the pause lengths at which something can differ; and 0 if `with_zero`.
///
/// A pause shorter than every expiry decides nothing: no table and no local lock check can tell
/// it from a live consumer that has not acted yet, so the reduced model starts a pause at the
/// first expiry.
fn pause_secs(local_lock_max_live: Millis, with_zero: bool) -> Vec<u8> {
    let mut secs: Vec<u8> = [local_lock_max_live, LOCK_MAX_LIVE_MS, CHANNEL_EXPIRED_MS]
        .into_iter()
        .map(|ms| u8::try_from(ms / 1000 + 1).unwrap_or(u8::MAX))
        .chain(with_zero.then_some(0))
        .collect();
    secs.sort_unstable();
    secs.dedup();
    secs
}

fn bits(set: u64) -> impl Iterator<Item = u8> {
    (0..64u8).filter(move |i| set & (1 << i) != 0)
}

/// Where a consumer is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Not started yet (a joiner).
    NotStarted,
    /// Running.
    Alive,
    /// Crashed: consumes nothing, but the broker still lists it until its channel expires.
    Crashed,
    /// Shut down cleanly: unregistered at once.
    Left,
    /// Paused for `secs` seconds since its last lock renewal and heartbeat: it takes no step,
    /// renews nothing, and a batch it was consuming on each queue it owns is still in flight.
    Paused {
        /// How long it has been paused.
        secs: u8,
    },
}

/// One consumer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerState {
    /// Life phase.
    pub phase: Phase,
    /// Notified of a membership change (or just started) and not yet rebalanced.
    pub dirty: bool,
    /// The member list it last rebalanced on.
    pub view: Option<Consumers>,
    /// The NameServer whose route it last rebalanced on.
    pub route_from: Option<u8>,
    /// The queues it owns (its process queue table).
    pub owned: Queues,
    /// Resumed from a pause past its local lock expiry: it owns its queues but consumes none of
    /// them until its next rebalance relocks them.
    pub stale: bool,
}

impl ConsumerState {
    /// The queues it takes new batches from: those it owns, unless its local locks are stale.
    pub fn consuming(&self) -> Queues {
        if self.stale { 0 } else { self.owned }
    }
}

/// The whole group's state.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RebalanceState {
    /// Every consumer, by index.
    pub consumers: Vec<ConsumerState>,
    /// The broker's consumer groups (`sextant-model`'s `ConsumerGroups`): the member list.
    pub groups: Interned<ConsumerGroups>,
    /// The broker's orderly locks (`sextant-model`'s `LockTable`).
    pub locks: Interned<LockTable>,
    /// Leaves and crashes still allowed.
    pub faults_left: u8,
    /// What the indices stand for, for `Debug` only: every state of a model holds the same
    /// handle, so it never tells two states apart.
    pub labels: Interned<Labels>,
}

/// The names of a model's consumers and queues, by index.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Client ids.
    pub consumers: Vec<String>,
    /// Queues, as `broker/qN`.
    pub queues: Vec<String>,
}

impl Labels {
    fn queues(&self, set: Queues) -> Vec<&str> {
        bits(set)
            .filter_map(|q| self.queues.get(usize::from(q)))
            .map(String::as_str)
            .collect()
    }

    fn consumers(&self, set: Consumers) -> Vec<&str> {
        bits(u64::from(set))
            .filter_map(|c| self.consumers.get(usize::from(c)))
            .map(String::as_str)
            .collect()
    }
}

impl fmt::Debug for RebalanceState {
    /// Consumers and queues by name, the tables as the broker holds them (what `--explore` shows).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Consumer<'a>(&'a ConsumerState, &'a Labels);
        impl fmt::Debug for Consumer<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (c, names) = (self.0, self.1);
                let mut d = f.debug_struct("Consumer");
                d.field("phase", &c.phase)
                    .field("notified", &c.dirty)
                    .field("rebalanced_on", &c.view.map(|v| names.consumers(v)))
                    .field(
                        "route_from",
                        &c.route_from.map(|ns| format!("namesrv-{ns}")),
                    )
                    .field("owns", &names.queues(c.owned));
                if c.stale {
                    d.field("local_locks", &"expired: consumes nothing until it relocks");
                }
                d.finish()
            }
        }
        let labels = &*self.labels;
        let consumers: BTreeMap<&str, Consumer<'_>> = self
            .consumers
            .iter()
            .enumerate()
            .map(|(i, c)| (labels.consumers[i].as_str(), Consumer(c, labels)))
            .collect();
        f.debug_struct("RebalanceState")
            .field("consumers", &consumers)
            .field("members", &broker::members(&self.groups))
            .field("locks", &*self.locks)
            .field("faults_left", &self.faults_left)
            .finish()
    }
}

/// What can happen next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A consumer starts and registers with the broker.
    Join(u8),
    /// A notified consumer reads the member list, and the route from NameServer `.1`, and applies
    /// its rebalance plan.
    Rebalance(u8, u8),
    /// A consumer shuts down cleanly: releases its queues and unregisters.
    Leave(u8),
    /// A consumer crashes.
    Crash(u8),
    /// The broker expires a crashed or paused consumer's channel and notifies the group.
    Expire(u8),
    /// The broker's lock on a queue, held by a consumer that is gone or paused, expires (60 s);
    /// the group retries its locks.
    LockExpire(u8),
    /// A live consumer pauses, with a batch in flight on each queue it consumes.
    Pause(u8),
    /// A paused consumer stays paused past the next expiry.
    StayPaused(u8),
    /// A paused consumer resumes: its in-flight batches finish and it heartbeats. If its local
    /// locks have expired (`sextant-model`'s `client::expired`) it keeps its queues but takes no
    /// batch from them until its next `Rebalance` relocks them; otherwise it goes on consuming.
    Resume(u8),
}

impl RebalanceState {
    fn live(&self) -> Consumers {
        self.consumers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.phase == Phase::Alive)
            .fold(0, |set, (i, _)| set | 1 << i)
    }

    fn notify_live(&mut self) {
        for c in self
            .consumers
            .iter_mut()
            .filter(|c| c.phase == Phase::Alive)
        {
            c.dirty = true;
        }
    }
}

impl RebalanceModel {
    /// The index of `mq` in the model's sorted queue list.
    fn queue_index(&self, mq: &MessageQueue) -> Option<u8> {
        self.queues.binary_search(mq).ok().map(|i| i as u8)
    }

    fn queue_set<'q>(&self, mqs: impl IntoIterator<Item = &'q MessageQueue>) -> Queues {
        mqs.into_iter()
            .filter_map(|mq| self.queue_index(mq))
            .fold(0, |set, q| set | 1 << q)
    }

    fn mqs(&self, set: Queues) -> Vec<MessageQueue> {
        bits(set).map(|q| self.queues[q as usize].clone()).collect()
    }

    /// The broker's member list, as a set of consumers.
    pub fn members(&self, state: &RebalanceState) -> Consumers {
        self.memo.members.get(state.groups, || {
            broker::members(&state.groups)
                .iter()
                .filter_map(|cid| self.cids.iter().position(|c| c == cid))
                .fold(0, |set, c| set | 1 << c)
        })
    }

    /// Whether every live consumer rebalanced on the current member list and the same route, and
    /// that list is exactly the live consumers.
    pub fn is_stable(&self, state: &RebalanceState) -> bool {
        let live = state.live();
        let first_route = bits(u64::from(live))
            .next()
            .and_then(|c| state.consumers[c as usize].route_from);
        live != 0
            && self.members(state) == live
            && bits(u64::from(live)).all(|c| {
                let me = &state.consumers[c as usize];
                me.view == Some(live) && me.route_from == first_route
            })
    }

    /// `queue_owned_once` (`sextant-model`'s) for the live consumers' shares.
    fn owned_once(&self, state: &RebalanceState, expected: Queues) -> bool {
        let live = state.live();
        let shares: BTreeMap<u8, Vec<u8>> = bits(u64::from(live))
            .map(|c| (c, bits(state.consumers[c as usize].consuming()).collect()))
            .collect();
        let expected: BTreeSet<u8> = bits(expected).collect();
        queue_owned_once_by(|c: &u8| live & (1 << c) != 0, &shares, &expected).is_ok()
    }

    /// `ordered_lock_exclusive`, judged by `sextant_model::invariants::ordered_lock_exclusive`:
    /// each live consumer, for each queue it consumes, against the queue's holder — the consumer
    /// the broker's lock table lists (paused ones too: the table has not expired it), or else
    /// another live consumer consuming it (which checked its own local lock before its batch).
    /// The bitsets only pick the states where some holder is another consumer; the predicate
    /// gives the verdict.
    fn lock_exclusive(&self, state: &RebalanceState) -> bool {
        let holders = self.holders(state.locks);
        let mut locked: [Queues; MAX_CONSUMERS as usize] = [0; MAX_CONSUMERS as usize];
        let mut any_locked: Queues = 0;
        for (q, h) in holders.iter().enumerate() {
            if let Some(h) = h {
                locked[usize::from(*h)] |= 1 << q;
                any_locked |= 1 << q;
            }
        }
        let suspect = self.double_owned(state)
            || state.consumers.iter().enumerate().any(|(c, consumer)| {
                consumer.phase == Phase::Alive
                    && consumer.consuming() & any_locked & !locked[c] != 0
            });
        if !suspect {
            return true;
        }
        for (q, holder) in holders.iter().enumerate() {
            let on_q: Vec<usize> = (state.consumers.iter().enumerate())
                .filter(|(_, c)| c.phase == Phase::Alive && c.consuming() & (1 << q) != 0)
                .map(|(c, _)| c)
                .collect();
            for &c in &on_q {
                let other = holder
                    .map(usize::from)
                    .filter(|&h| h != c)
                    .or_else(|| on_q.iter().copied().find(|&o| o != c));
                let judged = ordered_lock_exclusive(
                    &self.cids[c],
                    &self.queues[q].to_string(),
                    other.map(|h| self.cids[h].as_str()),
                );
                if judged.is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn double_owned(&self, state: &RebalanceState) -> bool {
        let mut seen: Queues = 0;
        state
            .consumers
            .iter()
            .filter(|c| c.phase == Phase::Alive)
            .any(|c| {
                let twice = seen & c.consuming() != 0;
                seen |= c.consuming();
                twice
            })
    }

    /// Two live consumers own one queue although both have rebalanced on the current member list:
    /// they read their routes from NameServers with different views.
    fn split_view_double_owned(&self, state: &RebalanceState) -> bool {
        let members = self.members(state);
        let settled: Vec<&ConsumerState> = state
            .consumers
            .iter()
            .filter(|c| c.phase == Phase::Alive && !c.dirty && c.view == Some(members))
            .collect();
        settled.iter().enumerate().any(|(i, a)| {
            settled[i + 1..]
                .iter()
                .any(|b| a.route_from != b.route_from && a.owned & b.owned != 0)
        })
    }

    fn balanced(&self, state: &RebalanceState) -> bool {
        state.live() == 0 || self.owned_once(state, self.queue_set(&self.queues))
    }

    /// How many NameServers the consumers may read routes from.
    fn namesrvs(&self) -> u8 {
        if self.cfg.split_view { 2 } else { 1 }
    }

    /// The queues NameServer `ns` routes: the second has expired the last broker group.
    fn routed_queues(&self, ns: u8) -> Vec<MessageQueue> {
        let last_group = self.queues.iter().map(|q| q.broker_name.clone()).max();
        self.queues
            .iter()
            .filter(|q| ns == 0 || Some(&q.broker_name) != last_group.as_ref())
            .cloned()
            .collect()
    }

    /// The share consumer `c` computes on member list `members` and NameServer `ns`'s route.
    fn allocate(&self, c: u8, members: Consumers, ns: u8) -> Queues {
        self.memo.allocate.get((c, members, ns), || {
            let view = GroupView::new(
                self.routed_queues(ns),
                bits(u64::from(members)).map(|m| self.cids[m as usize].clone()),
            );
            let share = self
                .strategy
                .allocate(&view, &self.cids[c as usize])
                .unwrap_or_default();
            self.queue_set(&share)
        })
    }

    /// The broker's lock expiry (the broken table's never comes).
    fn lock_expiry(&self) -> Millis {
        if self.cfg.lock_bug == LockBug::NoExpiry {
            Millis::MAX / 2
        } else {
            LOCK_MAX_LIVE_MS
        }
    }

    /// How long consumer `c` has been silent when the broker's expiry scans run: just past the
    /// expiry for a crashed consumer, its pause for a paused one.
    fn silence(&self, state: &RebalanceState, c: usize, expiry: Millis) -> Millis {
        match state.consumers[c].phase {
            Phase::Paused { secs } => Millis::from(secs) * 1000,
            _ => expiry + 1,
        }
    }

    /// A paused consumer with a batch in flight on a queue that a live consumer now consumes (a
    /// consumer that paused while its local locks were stale has no batch in flight): both
    /// consume it at once when it resumes (RocketMQ checks the lock before a batch, not during).
    fn paused_batch_overlaps(&self, state: &RebalanceState) -> bool {
        let live_owned = state
            .consumers
            .iter()
            .filter(|c| c.phase == Phase::Alive)
            .fold(0, |set, c| set | c.consuming());
        state
            .consumers
            .iter()
            .any(|c| matches!(c.phase, Phase::Paused { .. }) && c.consuming() & live_owned != 0)
    }

    /// Who holds each queue's lock in `locks`, by consumer index (the table's own answer).
    fn holders(&self, locks: Interned<LockTable>) -> Arc<[Option<u8>]> {
        self.memo.holders.get(locks, || {
            self.queues
                .iter()
                .map(|mq| {
                    broker::holder(&locks, mq)
                        .and_then(|h| self.cids.iter().position(|c| c == h))
                        .map(|c| c as u8)
                })
                .collect()
        })
    }

    /// The queues consumer `c` holds the lock of.
    fn locked_by(&self, locks: Interned<LockTable>, c: u8) -> Queues {
        self.holders(locks)
            .iter()
            .enumerate()
            .filter(|(_, h)| **h == Some(c))
            .fold(0, |set, (q, _)| set | 1 << q)
    }

    /// `sextant-model`'s rebalance plan from queues `held` to `share`, as queue sets.
    fn plan(&self, held: Queues, share: Queues) -> Plan {
        self.memo.plan.get((held, share), || {
            let plan = RebalancePlan::compute(
                &self.mqs(held).into_iter().collect(),
                &self.mqs(share),
                &BTreeSet::new(),
            );
            Plan {
                keep: self.queue_set(&plan.keep),
                drop: self.queue_set(&plan.drop),
                add: self.queue_set(&plan.add),
            }
        })
    }

    /// Consumer `c` heartbeats: the member list, and whether it changed.
    fn heartbeat(
        &self,
        groups: Interned<ConsumerGroups>,
        c: u8,
    ) -> (Interned<ConsumerGroups>, bool) {
        self.memo.heartbeat.get((groups, c), || {
            broker::heartbeat(groups, &self.cids[c as usize])
        })
    }

    /// Whether consumer `c` holds any lock.
    fn holds_locks(&self, state: &RebalanceState, c: u8) -> bool {
        self.locked_by(state.locks, c) != 0
    }

    /// Consumer `c` locks `queues` on the broker: the table, and what `c` holds of them.
    fn lock(
        &self,
        locks: Interned<LockTable>,
        c: u8,
        queues: Queues,
    ) -> (Interned<LockTable>, Queues) {
        self.memo.lock.get((locks, c, queues), || {
            let (locks, granted) = broker::lock(locks, &self.mqs(queues), &self.cids[c as usize]);
            (locks, self.queue_set(&granted))
        })
    }

    /// Consumer `c` unlocks `queues` on the broker.
    fn unlock(&self, locks: Interned<LockTable>, c: u8, queues: Queues) -> Interned<LockTable> {
        self.memo.unlock.get((locks, c, queues), || {
            broker::unlock(locks, &self.mqs(queues), &self.cids[c as usize])
        })
    }
}

impl RebalanceModel {
    /// Forget what no step and no property can read any more: a consumer that is gone keeps no
    /// view, route or queues (the properties read live consumers only), and one that crashed,
    /// is no longer a member and holds no lock has no step left — it is the same as one that
    /// left. States that differed only there are one state (a dead-variable reduction).
    fn forget_the_gone(&self, mut s: RebalanceState) -> RebalanceState {
        let members = self.members(&s);
        for i in 0..s.consumers.len() {
            let c = s.consumers[i];
            if matches!(c.phase, Phase::Crashed | Phase::Left) {
                let inert = c.phase == Phase::Left
                    || (members & (1 << i) == 0 && !self.holds_locks(&s, i as u8));
                s.consumers[i] = ConsumerState {
                    phase: if inert { Phase::Left } else { Phase::Crashed },
                    dirty: false,
                    view: None,
                    route_from: None,
                    owned: 0,
                    stale: false,
                };
            }
        }
        s
    }
}

impl Model for RebalanceModel {
    type State = RebalanceState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let n = self.cids.len();
        let consumers = (0..n)
            .map(|c| {
                let started = c < self.cfg.initial_consumers as usize;
                ConsumerState {
                    phase: if started {
                        Phase::Alive
                    } else {
                        Phase::NotStarted
                    },
                    dirty: started,
                    view: None,
                    route_from: None,
                    owned: 0,
                    stale: false,
                }
            })
            .collect();
        let mut groups = Interned::new(ConsumerGroups::new(CHANNEL_EXPIRED_MS));
        for cid in &self.cids[..usize::from(self.cfg.initial_consumers)] {
            groups = broker::heartbeat(groups, cid).0;
        }
        vec![RebalanceState {
            consumers,
            groups,
            locks: Interned::new(LockTable::new(self.lock_expiry())),
            faults_left: self.cfg.faults,
            labels: Interned::new(Labels {
                consumers: self.cids.clone(),
                queues: self
                    .queues
                    .iter()
                    .map(|mq| format!("{}/q{}", mq.broker_name, mq.queue_id))
                    .collect(),
            }),
        }]
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        let members = self.members(state);
        for (i, c) in state.consumers.iter().enumerate() {
            let i = i as u8;
            match c.phase {
                Phase::NotStarted => actions.push(Action::Join(i)),
                Phase::Alive => {
                    if c.dirty {
                        for ns in 0..self.namesrvs() {
                            actions.push(Action::Rebalance(i, ns));
                        }
                    }
                    if state.faults_left > 0 {
                        actions.push(Action::Leave(i));
                        actions.push(Action::Crash(i));
                        if self.cfg.orderly && self.cfg.pauses {
                            actions.push(Action::Pause(i));
                        }
                    }
                }
                Phase::Paused { secs } => {
                    actions.push(Action::Resume(i));
                    if self.pause_secs.last() != Some(&secs) {
                        actions.push(Action::StayPaused(i));
                    }
                    if members & (1 << i) != 0 {
                        actions.push(Action::Expire(i));
                    }
                }
                Phase::Crashed if members & (1 << i) != 0 => actions.push(Action::Expire(i)),
                Phase::Crashed | Phase::Left => {}
            }
        }
        // The broker's lock of a holder that is gone or paused expires (not that of a live
        // holder, which renews it every 20 s).
        if self.cfg.orderly {
            for (q, h) in self.holders(state.locks).iter().enumerate() {
                if let Some(c) = h
                    && state.consumers[*c as usize].phase != Phase::Alive
                {
                    actions.push(Action::LockExpire(q as u8));
                }
            }
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        let mut s = last.clone();
        match action {
            Action::LockExpire(q) => {
                let h = self.holders(s.locks)[q as usize]?;
                let silence = self.silence(&s, h as usize, LOCK_MAX_LIVE_MS);
                s.locks = self.memo.expire_lock.get((s.locks, q, silence), || {
                    let mq = &self.queues[q as usize];
                    broker::expire_lock(s.locks, &self.cids[h as usize], mq, silence, &self.queues)
                });
                if s.locks == last.locks {
                    // The table expired nothing: time passing changes no state.
                    return None;
                }
                s.notify_live();
            }
            Action::Join(c) => {
                s.consumers[c as usize].phase = Phase::Alive;
                let (groups, changed) = self.heartbeat(s.groups, c);
                s.groups = groups;
                if changed {
                    s.notify_live();
                }
            }
            Action::Rebalance(c, ns) => {
                let members = self.members(&s);
                let share = self.allocate(c, members, ns);
                let held = s.consumers[c as usize].owned;
                let plan = self.plan(held, share);
                let stale = s.consumers[c as usize].stale;
                // Broken: the stale client trusts what it keeps again without relocking it.
                let relock = stale && self.cfg.lock_bug != LockBug::StaleKeep;
                let mut owned = if relock { 0 } else { plan.keep };
                let mut released = false;
                let mut complete = true;
                if self.cfg.orderly {
                    // Unlock what is dropped, lock what is added; a queue whose lock is held by
                    // another consumer is not taken (RocketMQ retries it later).
                    released = self.locked_by(s.locks, c) & plan.drop != 0;
                    s.locks = self.unlock(s.locks, c, plan.drop);
                    let mut add = plan.add;
                    if relock {
                        // Its local locks expired during a pause: it relocks what it keeps too
                        // (RocketMQ's lockAll), and takes a batch only from what it gets.
                        add |= plan.keep;
                    }
                    if self.cfg.lock_bug == LockBug::NoHolderCheck {
                        // Broken: the broker hands the lock over, whoever holds it.
                        for q in bits(add) {
                            if let Some(h) = self.holders(s.locks)[q as usize] {
                                s.locks = self.unlock(s.locks, h, 1 << q);
                            }
                        }
                    }
                    let (locks, granted) = self.lock(s.locks, c, add);
                    s.locks = locks;
                    complete = granted == add;
                    owned |= granted;
                } else {
                    owned |= plan.add;
                }
                let me = &mut s.consumers[c as usize];
                me.owned = owned;
                me.stale = false;
                // A rebalance that could not lock its whole share is not done: RocketMQ marks it
                // unbalanced and retries; here it retries when a lock is released.
                me.view = complete.then_some(members);
                me.route_from = Some(ns);
                me.dirty = false;
                if released {
                    // Others waiting for these locks retry.
                    for (i, other) in s.consumers.iter_mut().enumerate() {
                        if i != c as usize && other.phase == Phase::Alive {
                            other.dirty = true;
                        }
                    }
                }
            }
            Action::Leave(c) => {
                s.faults_left -= 1;
                let cid = &self.cids[c as usize];
                s.locks = self.unlock(s.locks, c, self.queue_set(&self.queues));
                let me = &mut s.consumers[c as usize];
                me.phase = Phase::Left;
                me.owned = 0;
                me.dirty = false;
                s.groups = broker::unregister(s.groups, cid).0;
                s.notify_live();
            }
            Action::Crash(c) => {
                s.faults_left -= 1;
                let me = &mut s.consumers[c as usize];
                me.phase = Phase::Crashed;
                me.dirty = false;
            }
            Action::Pause(c) => {
                s.faults_left -= 1;
                let me = &mut s.consumers[c as usize];
                me.phase = Phase::Paused {
                    secs: self.pause_secs[0],
                };
                me.dirty = false;
            }
            Action::StayPaused(c) => {
                let me = &mut s.consumers[c as usize];
                let Phase::Paused { secs } = me.phase else {
                    return None;
                };
                let next = self.pause_secs.iter().find(|&&p| p > secs)?;
                me.phase = Phase::Paused { secs: *next };
            }
            Action::Resume(c) => {
                let me = &mut s.consumers[c as usize];
                let Phase::Paused { secs } = me.phase else {
                    return None;
                };
                // Its lock renewal and its heartbeat were due during the pause; it first checks
                // its local locks before taking a new batch.
                if client::expired(0, Millis::from(secs) * 1000, self.cfg.local_lock_max_live()) {
                    // It keeps its queues but takes no batch from them until it relocks them:
                    // its last rebalance no longer stands.
                    me.stale = true;
                    me.view = None;
                }
                me.phase = Phase::Alive;
                me.dirty = true;
                let (groups, changed) = self.heartbeat(s.groups, c);
                s.groups = groups;
                if changed {
                    s.notify_live();
                }
            }
            Action::Expire(c) => {
                let silence = self.silence(&s, c as usize, CHANNEL_EXPIRED_MS);
                s.groups = self.memo.expire_channel.get((s.groups, c, silence), || {
                    broker::expire_channel(s.groups, &self.cids[c as usize], silence)
                });
                if s.groups == last.groups {
                    // The table expired nothing: time passing changes no state.
                    return None;
                }
                s.notify_live();
            }
        }
        Some(if self.cfg.reduce {
            self.forget_the_gone(s)
        } else {
            s
        })
    }

    fn within_boundary(&self, _: &Self::State) -> bool {
        !self.stop.is_set()
    }

    /// The action with its consumer or queue by name (the Explorer's list of next steps).
    fn format_action(&self, action: &Self::Action) -> String {
        let name = |c: &u8| self.cids[usize::from(*c)].as_str();
        match action {
            Action::Join(c) => format!("Join({})", name(c)),
            Action::Rebalance(c, ns) => format!("Rebalance({}, namesrv-{ns})", name(c)),
            Action::Leave(c) => format!("Leave({})", name(c)),
            Action::Crash(c) => format!("Crash({})", name(c)),
            Action::Expire(c) => format!("Expire({})", name(c)),
            Action::LockExpire(q) => {
                let mq = &self.queues[usize::from(*q)];
                format!("LockExpire({}/q{})", mq.broker_name, mq.queue_id)
            }
            Action::Pause(c) => format!("Pause({})", name(c)),
            Action::StayPaused(c) => format!("StayPaused({})", name(c)),
            Action::Resume(c) => format!("Resume({})", name(c)),
        }
    }

    fn format_step(&self, last: &Self::State, action: Self::Action) -> Option<String> {
        let name = |c: u8| self.cids[c as usize].clone();
        let next = self.next_state(last, action)?;
        Some(match action {
            Action::Rebalance(c, ns) => {
                let members = broker::members(&last.groups);
                let owned: Vec<String> = bits(next.consumers[c as usize].owned)
                    .map(|q| {
                        let mq = &self.queues[q as usize];
                        format!("{}/q{}", mq.broker_name, mq.queue_id)
                    })
                    .collect();
                format!(
                    "consumer {} rebalances on [{}] with {} queues{} -> owns {}",
                    name(c),
                    members.join(","),
                    self.routed_queues(ns).len(),
                    if self.cfg.split_view {
                        format!(" (route from namesrv-{ns})")
                    } else {
                        String::new()
                    },
                    if owned.is_empty() {
                        "nothing".into()
                    } else {
                        owned.join(",")
                    }
                )
            }
            Action::Join(c) => format!("consumer {} joins; the broker notifies the group", name(c)),
            Action::Leave(c) => format!(
                "consumer {} leaves cleanly and releases its queues",
                name(c)
            ),
            Action::Crash(c) => {
                format!("consumer {} crashes (still listed by the broker)", name(c))
            }
            Action::Expire(c) => format!(
                "the broker expires {}'s channel and notifies the group",
                name(c)
            ),
            Action::LockExpire(q) => {
                let mq = &self.queues[q as usize];
                format!(
                    "the broker's lock on {}/q{} expires",
                    mq.broker_name, mq.queue_id
                )
            }
            Action::Pause(c) => format!(
                "consumer {} pauses with a batch in flight on each queue it owns",
                name(c)
            ),
            Action::StayPaused(c) => match next.consumers[c as usize].phase {
                Phase::Paused { secs } => {
                    format!("consumer {} is still paused after {secs} s", name(c))
                }
                _ => return None,
            },
            Action::Resume(c) => match last.consumers[c as usize].phase {
                Phase::Paused { secs } => format!(
                    "consumer {} resumes after {secs} s: its batches in flight finish; its local locks are {}",
                    name(c),
                    if client::expired(0, Millis::from(secs) * 1000, self.cfg.local_lock_max_live())
                    {
                        "expired, so it takes no new batch until it relocks"
                    } else {
                        "valid, so it goes on consuming"
                    }
                ),
                _ => return None,
            },
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![Property::always(
            "queue_owned_once",
            |m: &Self, s: &RebalanceState| {
                if !m.is_stable(s) {
                    return true;
                }
                let live = s.live();
                let ns = bits(u64::from(live))
                    .next()
                    .and_then(|c| s.consumers[c as usize].route_from);
                let expected = m.queue_set(&m.routed_queues(ns.unwrap_or(0)));
                m.owned_once(s, expected)
            },
        )];
        if self.cfg.orderly {
            properties.push(Property::always(
                "ordered_lock_exclusive",
                |m: &Self, s: &RebalanceState| m.lock_exclusive(s),
            ));
            if self.cfg.pauses {
                properties.push(Property::sometimes(
                    "paused_batch_overlap",
                    |m: &Self, s: &RebalanceState| m.paused_batch_overlaps(s),
                ));
            }
        } else {
            properties.push(Property::sometimes(
                "transient_double_owner",
                |m: &Self, s: &RebalanceState| m.double_owned(s),
            ));
        }
        if self.cfg.split_view {
            // The NameServers' views never converge in this model, so `eventually_balanced` is out
            // of its scope; what it shows is the double owner that split views cause.
            properties.push(Property::sometimes(
                "split_view_double_owner",
                |m: &Self, s: &RebalanceState| m.split_view_double_owned(s),
            ));
        } else {
            properties.push(Property::eventually(
                "eventually_balanced",
                |m: &Self, s: &RebalanceState| m.balanced(s),
            ));
        }
        properties
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Checker;

    fn check(cfg: RebalanceModelCfg) -> impl Checker<RebalanceModel> {
        cfg.into_model().checker().spawn_bfs().join()
    }

    #[test]
    fn every_partitioning_strategy_holds_and_shows_the_double_owner_window() {
        for strategy in StrategyKind::ALL
            .into_iter()
            .filter(|s| *s != StrategyKind::BrokenOffByOne)
        {
            let checker = check(RebalanceModelCfg {
                strategy,
                ..Default::default()
            });
            checker.assert_no_discovery("queue_owned_once");
            checker.assert_no_discovery("eventually_balanced");
            let trace = checker.discovery("transient_double_owner");
            assert!(
                trace.is_some(),
                "{strategy:?}: the known double-owner window must be found"
            );
        }
    }

    #[test]
    fn state_count_is_pinned() {
        // A regression guard: any change to the reachable state space shows up here.
        assert_eq!(
            check(RebalanceModelCfg::default()).unique_state_count(),
            927
        );
        let small = RebalanceModelCfg::small(StrategyKind::Averagely);
        assert_eq!(check(small).unique_state_count(), 97);
        let split = RebalanceModelCfg {
            split_view: true,
            ..Default::default()
        };
        assert_eq!(check(split).unique_state_count(), 3_636);
        assert_eq!(check(orderly(LockBug::None)).unique_state_count(), 21_860);
    }

    #[test]
    fn four_consumers_and_two_joiners_on_eight_queues_hold() {
        for strategy in [StrategyKind::Averagely, StrategyKind::ConsistentHash] {
            let cfg = RebalanceModelCfg {
                brokers: 2,
                queues_per_broker: 4,
                initial_consumers: 4,
                joiners: 2,
                faults: 3,
                strategy,
                split_view: false,
                orderly: false,
                lock_bug: LockBug::None,
                reduce: true,
                pauses: false,
                reduce_pauses: true,
            };
            let started = std::time::Instant::now();
            let checker = check(cfg);
            println!(
                "{strategy:?} 4+2 consumers, 8 queues, 3 faults: {} states in {:?}",
                checker.unique_state_count(),
                started.elapsed()
            );
            assert_eq!(checker.unique_state_count(), 199_389);
            checker.assert_no_discovery("queue_owned_once");
            checker.assert_no_discovery("eventually_balanced");
            assert!(checker.discovery("transient_double_owner").is_some());
        }
    }

    #[test]
    fn a_state_and_its_actions_print_names_not_indices() {
        let model = paused(LockBug::None).into_model();
        let init = model.init_states().remove(0);
        let mut actions = Vec::new();
        model.actions(&init, &mut actions);
        let rebalance = actions
            .iter()
            .copied()
            .find(|a| matches!(a, Action::Rebalance(2, _)))
            .unwrap();
        assert_eq!(
            model.format_action(&rebalance),
            "Rebalance(room0@c2, namesrv-0)"
        );
        let next = model.next_state(&init, rebalance).unwrap();
        let shown = format!("{next:#?}");
        // The consumer by its client id, what it owns and its view by name.
        assert!(shown.contains("\"room0@c2\": Consumer"), "{shown}");
        assert!(shown.contains("\"room1@broker-1/q0\""), "{shown}");
        let line = format!("{next:?}");
        assert!(
            line.contains(r#"rebalanced_on: Some(["room0@c0", "room1@c1", "room0@c2"])"#),
            "{line}"
        );
        assert!(!shown.contains("owned:"), "{shown}");
        assert_eq!(
            model.format_action(&Action::LockExpire(0)),
            "LockExpire(room0@broker-0/q0)"
        );
    }

    #[test]
    fn a_state_is_small() {
        let size = std::mem::size_of::<RebalanceState>();
        let per_consumer = std::mem::size_of::<ConsumerState>();
        assert!(size <= 64 && per_consumer <= 24, "{size} + {per_consumer}");
        println!("RebalanceState: {size} bytes + {per_consumer} per consumer");
    }

    #[test]
    fn forgetting_the_gone_keeps_every_verdict() {
        let base = RebalanceModelCfg::default();
        let cases = [
            (base, (927, 15_306)),
            (
                RebalanceModelCfg {
                    split_view: true,
                    ..base
                },
                (3_636, 130_464),
            ),
            (orderly(LockBug::None), (21_860, 133_037)),
            (orderly(LockBug::NoHolderCheck), (9_870, 57_921)),
            (orderly(LockBug::NoExpiry), (4_360, 19_591)),
            (small_paused(LockBug::None), (16_083, 19_270)),
            (small_paused(LockBug::LongLocalLock), (18_701, 21_888)),
            (
                RebalanceModelCfg::small(StrategyKind::BrokenOffByOne),
                (97, 276),
            ),
        ];
        same_verdicts_reduced_or_not(&cases, |cfg| RebalanceModelCfg {
            reduce: false,
            ..cfg
        });
    }

    /// Each case's verdicts are the same with its reduction (`cfg`) and without (`unreduced`),
    /// and the reduced run has fewer states; both counts are pinned.
    fn same_verdicts_reduced_or_not(
        cases: &[(RebalanceModelCfg, (usize, usize))],
        unreduced: impl Fn(RebalanceModelCfg) -> RebalanceModelCfg,
    ) {
        let mut counts = Vec::new();
        for &(cfg, _) in cases {
            let (reduced, reduced_states) = super::super::verdicts(cfg.into_model());
            let (full, full_states) = super::super::verdicts(unreduced(cfg).into_model());
            assert_eq!(reduced, full, "{cfg:?}");
            assert!(reduced_states < full_states, "{cfg:?}");
            counts.push((reduced_states, full_states));
        }
        let pinned: Vec<(usize, usize)> = cases.iter().map(|(_, c)| *c).collect();
        assert_eq!(counts, pinned);
    }

    #[test]
    fn split_views_lead_two_settled_consumers_to_one_queue() {
        let cfg = RebalanceModelCfg {
            split_view: true,
            ..RebalanceModelCfg::small(StrategyKind::Averagely)
        };
        let checker = check(cfg);
        checker.assert_no_discovery("queue_owned_once");
        assert!(checker.discovery("split_view_double_owner").is_some());
        // Without the split the same settled double owner is unreachable.
        let model = RebalanceModelCfg::small(StrategyKind::Averagely).into_model();
        let (found, _) =
            super::super::fold_states(&model, false, |f, s| f || model.split_view_double_owned(s));
        assert!(!found);
    }

    fn orderly(lock_bug: LockBug) -> RebalanceModelCfg {
        RebalanceModelCfg {
            orderly: true,
            lock_bug,
            ..RebalanceModelCfg::default()
        }
    }

    #[test]
    fn orderly_locks_keep_queues_exclusive_and_balance() {
        let checker = check(orderly(LockBug::None));
        checker.assert_no_discovery("ordered_lock_exclusive");
        checker.assert_no_discovery("queue_owned_once");
        checker.assert_no_discovery("eventually_balanced");
    }

    /// 3 consumers and 1 joiner, 6 queues, 1 pause or other fault.
    fn small_paused(lock_bug: LockBug) -> RebalanceModelCfg {
        RebalanceModelCfg {
            faults: 1,
            ..paused(lock_bug)
        }
    }

    fn paused(lock_bug: LockBug) -> RebalanceModelCfg {
        RebalanceModelCfg {
            pauses: true,
            ..orderly(lock_bug)
        }
    }

    #[test]
    fn pause_lengths_fall_just_past_each_expiry() {
        assert_eq!(pause_secs(LOCAL_LOCK_MAX_LIVE_MS, true), [0, 31, 61, 121]);
        assert_eq!(pause_secs(LOCAL_LOCK_MAX_LIVE_MS, false), [31, 61, 121]);
        assert_eq!(pause_secs(LONG_LOCAL_LOCK_MS, false), [61, 91, 121]);
    }

    #[test]
    fn a_paused_holder_keeps_locks_exclusive_but_its_batch_in_flight_overlaps() {
        let checker = check(paused(LockBug::None));
        checker.assert_no_discovery("ordered_lock_exclusive");
        checker.assert_no_discovery("queue_owned_once");
        checker.assert_no_discovery("eventually_balanced");
        // RocketMQ's orderly hazard: the lock is checked before a batch, so a batch in flight
        // across a pause past the broker's lock expiry overlaps the new holder's.
        let path = checker
            .discovery("paused_batch_overlap")
            .expect("a batch in flight across a long pause overlaps the next holder");
        let actions = path.into_actions();
        assert!(actions.iter().any(|a| matches!(a, Action::Pause(_))));
        assert!(actions.iter().any(|a| matches!(a, Action::LockExpire(_))));
        assert_eq!(checker.unique_state_count(), 798_987);
        // The overlap needs the broker to expire the paused holder's lock: with locks that never
        // expire it is unreachable, so the property is no tautology.
        check(small_paused(LockBug::NoExpiry)).assert_no_discovery("paused_batch_overlap");
        assert!(
            check(small_paused(LockBug::None))
                .discovery("paused_batch_overlap")
                .is_some()
        );
    }

    /// The queues live consumer `c` consumes whose broker lock another live consumer holds and
    /// consumes.
    fn taken_from(model: &RebalanceModel, state: &RebalanceState, c: u8) -> Vec<u8> {
        let holders = model.holders(state.locks);
        bits(state.consumers[usize::from(c)].consuming())
            .filter(|&q| {
                holders[usize::from(q)].is_some_and(|h| {
                    let other = &state.consumers[usize::from(h)];
                    h != c && other.phase == Phase::Alive && other.consuming() & (1 << q) != 0
                })
            })
            .collect()
    }

    #[test]
    fn a_local_lock_that_outlives_the_brokers_is_caught() {
        let checker = check(small_paused(LockBug::LongLocalLock));
        let path = checker
            .discovery("ordered_lock_exclusive")
            .expect("a consumer resuming on a stale local lock consumes beside the new holder");
        let last = path.last_state().clone();
        let actions = path.into_actions();
        let resumed: Vec<u8> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Resume(c) => Some(*c),
                _ => None,
            })
            .collect();
        assert!(
            actions.iter().any(|a| matches!(a, Action::Pause(_))) && !resumed.is_empty(),
            "{actions:?}"
        );
        // The consumer that resumed trusting its 90 s local lock consumes a queue whose broker
        // lock another consumer holds.
        assert!(
            resumed
                .iter()
                .any(|&c| !taken_from(checker.model(), &last, c).is_empty()),
            "{last:#?}"
        );
        // Without pauses the stale local lock never shows.
        check(RebalanceModelCfg {
            pauses: false,
            ..small_paused(LockBug::LongLocalLock)
        })
        .assert_no_discovery("ordered_lock_exclusive");
    }

    #[test]
    fn a_stale_client_that_keeps_queues_without_relocking_them_is_caught() {
        let checker = check(RebalanceModelCfg::orderly_paused_small(LockBug::StaleKeep));
        let path = checker
            .discovery("ordered_lock_exclusive")
            .expect("a kept queue whose lock another consumer took is consumed twice");
        let model = checker.model();
        let states = path.clone().into_states();
        let actions = path.into_actions();
        // The last step is the rebalance of a consumer that resumed on stale local locks: it
        // keeps a queue it owned before its pause, whose broker lock another live consumer took
        // meanwhile and consumes.
        let Some(&Action::Rebalance(c, _)) = actions.last() else {
            panic!("{actions:?}");
        };
        assert!(actions.contains(&Action::Resume(c)), "{actions:?}");
        let (before, last) = (&states[states.len() - 2], &states[states.len() - 1]);
        let me = usize::from(c);
        assert!(before.consumers[me].stale);
        let taken = taken_from(model, last, c);
        assert!(
            taken
                .iter()
                .any(|&q| before.consumers[me].owned & (1 << q) != 0),
            "{last:#?}"
        );
        assert_eq!(checker.unique_state_count(), 944);
        // With the relock (keep and add) the same configuration holds.
        let sound = check(RebalanceModelCfg::orderly_paused_small(LockBug::None));
        sound.assert_no_discovery("ordered_lock_exclusive");
        assert_eq!(sound.unique_state_count(), 815);
    }

    #[test]
    fn a_paused_consumer_can_outlast_its_channel_and_registers_again_on_resume() {
        let model = small_paused(LockBug::None).into_model();
        // States where the broker has expired a paused consumer's channel: the table decided it,
        // so only a pause past 120 s gets there.
        let (expired, _) = super::super::fold_states(&model, Vec::new(), |mut found, s| {
            for (c, consumer) in s.consumers.iter().enumerate() {
                if let Phase::Paused { secs } = consumer.phase
                    && model.members(s) & (1 << c) == 0
                {
                    found.push((s.clone(), c as u8, secs));
                }
            }
            found
        });
        assert!(!expired.is_empty());
        for (s, c, secs) in &expired {
            assert!(u64::from(*secs) * 1000 > CHANNEL_EXPIRED_MS, "{secs}");
            let next = model.next_state(s, Action::Resume(*c)).unwrap();
            assert_ne!(model.members(&next) & (1 << c), 0, "re-registered");
            for (i, other) in next.consumers.iter().enumerate() {
                if i != usize::from(*c) && other.phase == Phase::Alive {
                    assert!(other.dirty, "{i} is notified of the new member");
                }
            }
        }
        // A pause short of the channel expiry is not expired: the table refuses it.
        let mut s = expired[0].0.clone();
        s.consumers[usize::from(expired[0].1)].phase = Phase::Paused { secs: 61 };
        s.groups = model.heartbeat(s.groups, expired[0].1).0;
        assert!(model.next_state(&s, Action::Expire(expired[0].1)).is_none());
    }

    #[test]
    fn pauses_shorter_than_every_expiry_change_no_verdict() {
        let cases = [
            (small_paused(LockBug::None), (16_083, 16_458)),
            (paused(LockBug::None), (798_987, 846_950)),
            (small_paused(LockBug::LongLocalLock), (18_701, 19_037)),
            (
                RebalanceModelCfg::orderly_paused_small(LockBug::StaleKeep),
                (944, 972),
            ),
        ];
        same_verdicts_reduced_or_not(&cases, |cfg| RebalanceModelCfg {
            reduce_pauses: false,
            ..cfg
        });
    }

    #[test]
    fn a_lock_table_without_expiry_is_caught() {
        let checker = check(orderly(LockBug::NoExpiry));
        let path = checker
            .discovery("eventually_balanced")
            .expect("a crashed consumer's locks block its queues forever");
        assert!(
            path.into_actions()
                .iter()
                .any(|a| matches!(a, Action::Crash(_)))
        );
    }

    #[test]
    fn a_lock_table_that_ignores_the_holder_is_caught() {
        let checker = check(orderly(LockBug::NoHolderCheck));
        assert!(checker.discovery("ordered_lock_exclusive").is_some());
    }

    #[test]
    fn broken_allocation_is_caught() {
        let checker = check(RebalanceModelCfg::small(StrategyKind::BrokenOffByOne));
        let trace = checker
            .discovery("queue_owned_once")
            .expect("off-by-one allocation must violate queue_owned_once");
        assert!(checker.model().is_stable(trace.last_state()));
        assert!(
            checker.discovery("eventually_balanced").is_some(),
            "it never balances either"
        );
    }

    #[test]
    fn run_model_reports_the_violation_with_its_trace() {
        let model = RebalanceModelCfg::small(StrategyKind::BrokenOffByOne).into_model();
        let outcome = super::super::run_model(model, &mut crate::Run::quiet(&mut |_| {}));
        assert!(outcome.result.is_err());
        assert!(
            outcome
                .properties
                .contains(&("queue_owned_once", crate::Verdict::Violated))
        );
        assert!(
            outcome
                .properties
                .contains(&("transient_double_owner", crate::Verdict::Discovered))
        );
        let at = outcome
            .notes
            .iter()
            .position(|n| n == "queue_owned_once violated:")
            .expect("a trace");
        let trace = &outcome.notes[at + 1..];
        assert!(
            trace.iter().any(|n| n.contains("rebalances on [")),
            "{trace:?}"
        );
    }

    #[test]
    fn traces_read_as_steps_and_are_shortest() {
        let model = RebalanceModelCfg::default().into_model();
        let outcome = super::super::run_model(model, &mut crate::Run::quiet(&mut |_| {}));
        assert_eq!(outcome.result, Ok(()));
        assert_eq!(outcome.cases, 927);
        let steps = &outcome.notes[1..];
        assert_eq!(outcome.notes[0], "transient_double_owner discovered:");
        // BFS: no double owner is reachable in fewer steps than the one reported.
        assert_eq!(steps.len(), 3, "{steps:#?}");
        assert!(
            steps
                .iter()
                .filter(|s| s.contains("rebalances on ["))
                .count()
                >= 2,
            "{steps:#?}"
        );
    }
}
