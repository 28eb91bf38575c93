//! # The durability models
//!
//! Two small plain stateright models of what happens to a message once a broker has it.
//!
//! **Store durability** ([`DurabilityModelCfg`]): one producer sends a few messages to a master
//! that may have a slave. The master appends to its page cache; a flush puts the page cache on
//! disk; replication copies the master's page cache to the slave in order. When the master answers
//! is decided by `sextant_model::store::put_verdict` from the flush mode and the role. Machines
//! lose power (page cache gone, disk kept, the machine comes back) or lose their disk (gone for good)
//! within a crash budget. Consumers read the master while it is up and the slave while it is not.
//!
//! **Consumer offsets** ([`OffsetModelCfg`]): one queue holding a few messages, consumed by a
//! group that changes while it works: consumer C2 owns the queue, C1 joins (averagely gives C1 the
//! queue), then one of them leaves cleanly or crashes. Consumers pull one message at a time,
//! consume in any order (orderly mode: in order, under the broker lock), keep locally the offset
//! `sextant_model::consumer::ProcessQueue` says may be committed, and send it to the broker
//! (RocketMQ: every 5 s, and when they drop the queue or shut down). The broker stores whatever is committed, as RocketMQ's
//! `ConsumerOffsetManager` does (it only logs a lower offset). The broker's member list and its
//! orderly lock are `sextant-model`'s `ConsumerGroups` and `LockTable`, the code the broker runs
//! (through `broker_tables`); a crashed consumer's connection closes, so the broker drops it at
//! once, and its lock expires later (`LockExpire`, played on the table).
//!
//! ## Abstractions (what these models assume)
//! - Positions are message counts: every message has the same size, so the byte offsets RocketMQ's
//!   HA compares and message counts order the same way.
//! - A flush writes the whole page cache (group commit and the async flush service both flush up
//!   to the write position). A replication step moves one message.
//! - A power loss is a machine crash: the page cache is lost and the disk is kept (a process crash,
//!   `kill -9`, keeps the page cache and so loses nothing; it is the weaker fault). A disk loss
//!   takes a machine away for good. Faults are bounded by a budget, default one: RocketMQ's
//!   master/slave pairs promise durability against one fault.
//! - The producer does not retry a message after a non-`SEND_OK` answer; `acked_not_lost` is
//!   about `SEND_OK` only.
//! - The periodic offset upload is one step that may happen at any moment, or not before a crash.
//!   A consumer that drops a queue abandons its in-flight messages, as a dropped `ProcessQueue`
//!   does.
//!
//! ## Properties
//! - `acked_not_lost` (always, with `SYNC_FLUSH` and `SYNC_MASTER`): every message answered
//!   `SEND_OK` is in the log consumers read, or, while the master is down, on the disk of a
//!   machine that will come back. A master that is back serves its own log: what only its slave
//!   holds beyond it is lost to consumers.
//! - `async_flush_loss` / `async_master_loss` (sometimes, with the async modes): the checker finds
//!   the loss and prints how.
//! - `failover_read` (sometimes): consumers read acknowledged messages from the slave while the
//!   master is down.
//! - `offset_not_past_unconsumed` (always): the committed offset never passes a message nobody
//!   consumed, so no message is skipped.
//! - `offsets_monotonic` (always, orderly mode): commits never move the offset backward.
//! - `offset_moves_backward` (sometimes, concurrent mode): during a transient double owner the old
//!   owner commits a higher offset than the new one, and the broker accepts the lower one: messages
//!   are consumed twice (at-least-once), none is lost.
//! - `duplicate_consumption` (sometimes): a message is consumed twice.

use std::collections::BTreeSet;

use sextant_model::broker::{CHANNEL_EXPIRED_MS, ConsumerGroups, LOCK_MAX_LIVE_MS, LockTable};
use sextant_model::consumer::{AllocateStrategy, Averagely, GroupView, ProcessQueue};
use sextant_model::invariants::{acked_not_lost, offset_not_past_unconsumed, offsets_monotonic};
use sextant_model::route::MessageQueue;
use sextant_model::store::{BrokerRole, FlushDiskType, PutProgress, PutVerdict, put_verdict};
use stateright::{Model, Property};

use super::broker_tables as broker;
use super::intern::Interned;

/// Deliberately broken stores: the checker must report each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreBug {
    /// The store works as RocketMQ's.
    None,
    /// The store acknowledges before the flush, whatever the flush mode.
    AckBeforeFlush,
    /// The store acknowledges before the slave has the message, whatever the role.
    AckBeforeReplication,
}

/// Sizes and modes of the store durability model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DurabilityModelCfg {
    /// `flushDiskType` of the master (and the slave).
    pub flush: FlushDiskType,
    /// `brokerRole` of the master.
    pub role: BrokerRole,
    /// Whether the master has a slave.
    pub slave: bool,
    /// Messages the producer sends.
    pub messages: u8,
    /// Power or disk losses allowed in a run.
    pub crashes: u8,
    /// A deliberately broken store, or none.
    pub bug: StoreBug,
}

impl Default for DurabilityModelCfg {
    fn default() -> Self {
        DurabilityModelCfg {
            flush: FlushDiskType::SyncFlush,
            role: BrokerRole::SyncMaster,
            slave: true,
            messages: 3,
            crashes: 1,
            bug: StoreBug::None,
        }
    }
}

impl DurabilityModelCfg {
    /// The model for this configuration.
    pub fn into_model(self) -> DurabilityModel {
        DurabilityModel {
            cfg: self,
            stop: Default::default(),
        }
    }

    /// The larger configuration of `--deep`: 5 messages.
    pub fn deep() -> Self {
        DurabilityModelCfg {
            messages: 5,
            ..Default::default()
        }
    }

    /// One line on what this configuration covers.
    pub fn summary(&self) -> String {
        format!(
            "{} + {}, master{}, {} messages, {} power or disk loss{}",
            self.flush,
            self.role,
            if self.slave { " + slave" } else { ", no slave" },
            self.messages,
            self.crashes,
            if self.crashes == 1 { "" } else { "es" },
        )
    }

    /// Whether the modes promise that no acknowledged message is lost to one fault.
    pub fn promises_durability(&self) -> bool {
        self.flush == FlushDiskType::SyncFlush && self.role == BrokerRole::SyncMaster
    }
}

/// The store durability model: see the module documentation.
#[derive(Clone, Debug)]
pub struct DurabilityModel {
    /// The configuration.
    pub cfg: DurabilityModelCfg,
    stop: super::StopFlag,
}

super::stoppable!(DurabilityModel);

/// One machine's store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Machine {
    /// Running.
    pub up: bool,
    /// Its disk is gone: it never comes back.
    pub lost: bool,
    /// The log (message ids in order); the first `flushed` are on disk.
    pub log: Vec<u8>,
    /// How many messages of the log are on disk.
    pub flushed: usize,
}

impl Machine {
    fn new() -> Self {
        Machine {
            up: true,
            lost: false,
            log: Vec::new(),
            flushed: 0,
        }
    }
}

/// The whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DurabilityState {
    /// Machine 0 is the master, 1 the slave.
    pub machines: [Machine; 2],
    /// The put waiting for its answer: message id and the log length just past it.
    pub pending: Option<(u8, usize)>,
    /// The next message id to send.
    pub next: u8,
    /// Messages answered `SEND_OK`.
    pub acked: BTreeSet<u8>,
    /// Faults left.
    pub crashes_left: u8,
}

/// What can happen next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DurabilityAction {
    /// The producer sends the next message; the master appends it.
    Send,
    /// The master answers the pending put (its verdict is decided).
    Answer,
    /// The pending put's wait times out.
    TimeOut,
    /// A machine flushes its page cache.
    Flush(usize),
    /// The slave receives the next message of the master's log.
    Replicate,
    /// A machine loses power: its page cache is gone.
    PowerLoss(usize),
    /// A machine loses its disk: it is gone for good.
    DiskLoss(usize),
    /// A machine that lost power starts again from its disk.
    Restart(usize),
}

const MACHINE: [&str; 2] = ["master", "slave"];

impl DurabilityModel {
    fn progress(&self, s: &DurabilityState, end: usize, timed_out: bool) -> PutProgress {
        let [master, slave] = &s.machines;
        let slave_in_sync = self.cfg.slave && slave.up && master.up;
        PutProgress {
            end: end as u64,
            flushed: if self.cfg.bug == StoreBug::AckBeforeFlush {
                end as u64
            } else {
                master.flushed as u64
            },
            slave_acked: if self.cfg.bug == StoreBug::AckBeforeReplication {
                Some(end as u64)
            } else {
                super::slave_acked(end as u64, slave_in_sync, slave.log.len())
            },
            timed_out,
        }
    }

    fn verdict(&self, s: &DurabilityState, timed_out: bool) -> Option<PutVerdict> {
        let (_, end) = s.pending?;
        Some(put_verdict(
            self.cfg.flush,
            self.cfg.role,
            self.progress(s, end, timed_out),
        ))
    }

    /// The log consumers read now: the master's while it is up, else the slave's.
    pub fn readable<'a>(&self, s: &'a DurabilityState) -> Option<&'a [u8]> {
        let [master, slave] = &s.machines;
        if master.up {
            Some(&master.log)
        } else if self.cfg.slave && slave.up {
            Some(&slave.log)
        } else {
            None
        }
    }

    /// What can still be read, now or once the machines that lost power restart: the log read
    /// now, and while the master is down, what is on the disks of machines that will come back.
    /// (Once the master is back its log is the one read; a slave's copy beyond it is not.)
    pub fn recoverable(&self, s: &DurabilityState) -> Vec<u8> {
        let now = self.readable(s);
        if s.machines[0].up {
            return now.map(<[u8]>::to_vec).unwrap_or_default();
        }
        let mut all: Vec<u8> = now.map(<[u8]>::to_vec).unwrap_or_default();
        for m in &s.machines {
            if !m.up && !m.lost {
                all.extend_from_slice(&m.log[..m.flushed]);
            }
        }
        all
    }

    fn loses_acked(&self, s: &DurabilityState) -> bool {
        acked_not_lost(&s.acked, Some(&self.recoverable(s))).is_err()
    }
}

impl Model for DurabilityModel {
    type State = DurabilityState;
    type Action = DurabilityAction;

    fn init_states(&self) -> Vec<Self::State> {
        vec![DurabilityState {
            machines: [Machine::new(), Machine::new()],
            pending: None,
            next: 0,
            acked: BTreeSet::new(),
            crashes_left: self.cfg.crashes,
        }]
    }

    fn actions(&self, s: &Self::State, actions: &mut Vec<Self::Action>) {
        use DurabilityAction::*;
        let [master, slave] = &s.machines;
        if s.pending.is_none() && s.next < self.cfg.messages && master.up {
            actions.push(Send);
        }
        match (self.verdict(s, false), self.verdict(s, true)) {
            (Some(PutVerdict::Wait), Some(PutVerdict::Wait)) | (None, _) => {}
            (Some(PutVerdict::Wait), _) => actions.push(TimeOut),
            (Some(_), _) => actions.push(Answer),
        }
        let machines = if self.cfg.slave { 2 } else { 1 };
        for (i, m) in s.machines.iter().enumerate().take(machines) {
            if m.up && m.flushed < m.log.len() {
                actions.push(Flush(i));
            }
            if m.up && s.crashes_left > 0 {
                actions.push(PowerLoss(i));
                actions.push(DiskLoss(i));
            }
            if !m.up && !m.lost {
                actions.push(Restart(i));
            }
        }
        if self.cfg.slave
            && master.up
            && slave.up
            && super::replication_step(master.log.len(), slave.log.len()).is_some()
        {
            actions.push(Replicate);
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        use DurabilityAction::*;
        let mut s = last.clone();
        match action {
            Send => {
                let m = s.next;
                s.next += 1;
                let master = &mut s.machines[0];
                master.log.push(m);
                s.pending = Some((m, master.log.len()));
            }
            Answer | TimeOut => {
                let verdict = self.verdict(&s, action == TimeOut)?;
                let (m, _) = s.pending.take()?;
                if verdict.is_ack() {
                    s.acked.insert(m);
                }
            }
            Flush(i) => {
                let m = &mut s.machines[i];
                m.flushed = m.log.len();
            }
            Replicate => {
                let at = super::replication_step(s.machines[0].log.len(), s.machines[1].log.len())?;
                let m = s.machines[0].log[at];
                s.machines[1].log.push(m);
            }
            PowerLoss(i) | DiskLoss(i) => {
                s.crashes_left -= 1;
                let m = &mut s.machines[i];
                m.up = false;
                if matches!(action, DiskLoss(_)) {
                    m.lost = true;
                    m.log.clear();
                    m.flushed = 0;
                } else {
                    m.log.truncate(m.flushed);
                }
                if i == 0 {
                    // The producer's connection breaks: no answer, no ack.
                    s.pending = None;
                }
            }
            Restart(i) => s.machines[i].up = true,
        }
        Some(s)
    }

    fn within_boundary(&self, _: &Self::State) -> bool {
        !self.stop.is_set()
    }

    fn format_step(&self, last: &Self::State, action: Self::Action) -> Option<String> {
        use DurabilityAction::*;
        let next = self.next_state(last, action)?;
        let logs = |s: &DurabilityState| {
            let show = |m: &Machine| {
                let ids: Vec<String> = m.log.iter().map(|i| format!("m{i}")).collect();
                format!("[{}] ({} on disk)", ids.join(","), m.flushed)
            };
            if self.cfg.slave {
                format!(
                    "master {}, slave {}",
                    show(&s.machines[0]),
                    show(&s.machines[1])
                )
            } else {
                format!("master {}", show(&s.machines[0]))
            }
        };
        Some(match action {
            Send => format!("producer sends m{}; master appends it", last.next),
            Answer => {
                let (m, _) = last.pending?;
                let verdict = self.verdict(last, false)?;
                if verdict.is_ack() {
                    format!("master answers SEND_OK for m{m}; {}", logs(&next))
                } else {
                    format!("master answers {verdict:?} for m{m}")
                }
            }
            TimeOut => {
                let (m, _) = last.pending?;
                format!(
                    "the wait for m{m} times out: {:?}",
                    self.verdict(last, true)?
                )
            }
            Flush(i) => format!("{} flushes; {}", MACHINE[i], logs(&next)),
            Replicate => format!("slave receives a message; {}", logs(&next)),
            PowerLoss(i) => format!(
                "{} loses power and its page cache; {}",
                MACHINE[i],
                logs(&next)
            ),
            DiskLoss(i) => format!("{} loses its disk for good; {}", MACHINE[i], logs(&next)),
            Restart(i) => {
                let read = self.readable(&next).map(|l| l.to_vec()).unwrap_or_default();
                let acked: Vec<String> = next.acked.iter().map(|i| format!("m{i}")).collect();
                format!(
                    "{} restarts from its disk; consumers read {:?}, acknowledged [{}]",
                    MACHINE[i],
                    read.iter().map(|i| format!("m{i}")).collect::<Vec<_>>(),
                    acked.join(",")
                )
            }
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = if self.cfg.promises_durability() {
            vec![Property::always(
                "acked_not_lost",
                |m: &Self, s: &DurabilityState| !m.loses_acked(s),
            )]
        } else if self.cfg.flush == FlushDiskType::AsyncFlush {
            vec![Property::sometimes(
                "async_flush_loss",
                |m: &Self, s: &DurabilityState| m.loses_acked(s),
            )]
        } else {
            vec![Property::sometimes(
                "async_master_loss",
                |m: &Self, s: &DurabilityState| m.loses_acked(s),
            )]
        };
        if self.cfg.slave {
            properties.push(Property::sometimes(
                "failover_read",
                |m: &Self, s: &DurabilityState| {
                    !s.machines[0].up
                        && !s.acked.is_empty()
                        && acked_not_lost(&s.acked, m.readable(s)).is_ok()
                },
            ));
        }
        properties
    }
}

/// Deliberately broken consumers: the checker must report each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetBug {
    /// Consumers commit as RocketMQ's do.
    None,
    /// A consumer commits one past the highest pulled offset, not the first in flight.
    CommitPulled,
    /// A consumer that drops a queue keeps committing its stale offset for it.
    KeepsLostQueue,
}

/// Sizes and modes of the consumer offset model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OffsetModelCfg {
    /// Messages in the queue.
    pub messages: u8,
    /// Orderly consumption under broker locks.
    pub orderly: bool,
    /// A deliberately broken consumer, or none.
    pub bug: OffsetBug,
}

impl Default for OffsetModelCfg {
    fn default() -> Self {
        OffsetModelCfg {
            messages: 3,
            orderly: false,
            bug: OffsetBug::None,
        }
    }
}

impl OffsetModelCfg {
    /// The model for this configuration.
    pub fn into_model(self) -> OffsetModel {
        OffsetModel {
            cfg: self,
            queue: MessageQueue::new("T", "broker-a", 0),
            stop: Default::default(),
        }
    }

    /// The larger configuration of `--deep`: 5 messages.
    pub fn deep() -> Self {
        OffsetModelCfg {
            messages: 5,
            ..Default::default()
        }
    }

    /// One line on what this configuration covers.
    pub fn summary(&self) -> String {
        format!(
            "1 queue of {} messages, C2 owns it, C1 joins, one leaves or crashes, {}",
            self.messages,
            if self.orderly {
                "orderly (in order, under the broker lock)"
            } else {
                "concurrent consumption"
            }
        )
    }
}

/// The consumer offset model: see the module documentation.
#[derive(Clone, Debug)]
pub struct OffsetModel {
    /// The configuration.
    pub cfg: OffsetModelCfg,
    queue: MessageQueue,
    stop: super::StopFlag,
}

super::stoppable!(OffsetModel);

/// One consumer of the offset model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OffsetConsumer {
    /// Running.
    pub alive: bool,
    /// The queue's process queue, while the consumer owns the queue.
    pub owns: Option<ProcessQueue>,
    /// (Broken variant) the offset it still commits for a queue it dropped.
    pub stale: Option<u64>,
}

/// The whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OffsetState {
    /// C1 and C2.
    pub consumers: [OffsetConsumer; 2],
    /// The broker's committed offset for the queue.
    pub committed: Option<u64>,
    /// The broker's consumer groups (`sextant-model`'s `ConsumerGroups`): the member list.
    pub groups: Interned<ConsumerGroups>,
    /// The broker's orderly locks (`sextant-model`'s `LockTable`); empty in concurrent mode.
    pub locks: Interned<LockTable>,
    /// Messages consumed at least once (bit per offset).
    pub consumed: u8,
    /// Messages consumed at least twice.
    pub consumed_twice: u8,
    /// Whether C1 joined already.
    pub joined: bool,
    /// Leaves or crashes left.
    pub departures_left: u8,
    /// The step that led here moved the committed offset backward.
    pub moved_back: bool,
}

/// What can happen next in the offset model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetAction {
    /// C1 joins the group.
    Join,
    /// A consumer leaves cleanly: commits, unlocks, unregisters.
    Leave(u8),
    /// A consumer crashes; the broker drops it when the connection closes.
    Crash(u8),
    /// A consumer rebalances on the broker's member list.
    Rebalance(u8),
    /// A consumer pulls the next message.
    Pull(u8),
    /// A consumer consumes a message in flight; its local offset moves.
    Consume(u8, u8),
    /// A consumer uploads its local offset to the broker.
    Persist(u8),
    /// (Broken variant) a consumer commits a stale offset of a queue it dropped.
    StaleCommit(u8),
    /// The broker's lock held by a consumer that is gone expires.
    LockExpire,
}

/// The offset model's consumers, by index.
const OFFSET_CIDS: [&str; 2] = ["C1", "C2"];

impl OffsetModel {
    /// Whether `c` should own the queue by the broker's member list (averagely).
    fn should_own(&self, s: &OffsetState, c: u8) -> bool {
        let view = GroupView::new(vec![self.queue.clone()], broker::members(&s.groups));
        Averagely
            .allocate(&view, OFFSET_CIDS[c as usize])
            .is_ok_and(|share| !share.is_empty())
    }

    /// Whether the broker would grant `c` the queue's lock (free, or `c`'s own).
    fn lock_free(&self, s: &OffsetState, c: u8) -> bool {
        broker::holder(&s.locks, &self.queue).is_none_or(|h| h == OFFSET_CIDS[c as usize])
    }

    fn commit(s: &mut OffsetState, offset: u64) {
        let before = s.committed;
        s.committed = Some(offset);
        s.moved_back = offsets_monotonic(before, s.committed).is_err();
    }

    fn commit_offset(&self, pq: &ProcessQueue) -> u64 {
        if self.cfg.bug == OffsetBug::CommitPulled {
            pq.next_pull()
        } else {
            pq.commit_offset()
        }
    }

    fn first_unconsumed(&self, s: &OffsetState) -> u64 {
        (0..self.cfg.messages)
            .find(|o| s.consumed & (1 << o) == 0)
            .unwrap_or(self.cfg.messages) as u64
    }

    /// Drop the queue: commit its offset, unlock it.
    fn drop_queue(&self, s: &mut OffsetState, c: u8) {
        if let Some(pq) = s.consumers[c as usize].owns.take() {
            let offset = self.commit_offset(&pq);
            Self::commit(s, offset);
            if self.cfg.bug == OffsetBug::KeepsLostQueue {
                s.consumers[c as usize].stale = Some(offset);
            }
        }
        s.locks = broker::unlock(
            s.locks,
            std::slice::from_ref(&self.queue),
            OFFSET_CIDS[c as usize],
        );
    }

    fn double_owned(s: &OffsetState) -> bool {
        s.consumers.iter().all(|c| c.owns.is_some())
    }
}

impl Model for OffsetModel {
    type State = OffsetState;
    type Action = OffsetAction;

    fn init_states(&self) -> Vec<Self::State> {
        let mut locks = Interned::new(LockTable::new(LOCK_MAX_LIVE_MS));
        if self.cfg.orderly {
            locks = broker::lock(locks, std::slice::from_ref(&self.queue), "C2").0;
        }
        let c1 = OffsetConsumer {
            alive: false,
            owns: None,
            stale: None,
        };
        let c2 = OffsetConsumer {
            alive: true,
            owns: Some(ProcessQueue::starting_at(0)),
            stale: None,
        };
        vec![OffsetState {
            consumers: [c1, c2],
            committed: None,
            groups: broker::heartbeat(Interned::new(ConsumerGroups::new(CHANNEL_EXPIRED_MS)), "C2")
                .0,
            locks,
            consumed: 0,
            consumed_twice: 0,
            joined: false,
            departures_left: 1,
            moved_back: false,
        }]
    }

    fn actions(&self, s: &Self::State, actions: &mut Vec<Self::Action>) {
        use OffsetAction::*;
        if !s.joined {
            actions.push(Join);
        }
        for c in 0..2u8 {
            let k = &s.consumers[c as usize];
            if !k.alive {
                continue;
            }
            if s.departures_left > 0 {
                actions.push(Leave(c));
                actions.push(Crash(c));
            }
            let should = self.should_own(s, c);
            let lock_free = !self.cfg.orderly || self.lock_free(s, c);
            if (should && k.owns.is_none() && lock_free) || (!should && k.owns.is_some()) {
                actions.push(Rebalance(c));
            }
            if let Some(pq) = &k.owns {
                if pq.next_pull() < self.cfg.messages as u64 {
                    actions.push(Pull(c));
                }
                let mut in_flight = pq.in_flight();
                if self.cfg.orderly {
                    if let Some(o) = in_flight.next() {
                        actions.push(Consume(c, o as u8));
                    }
                } else {
                    actions.extend(in_flight.map(|o| Consume(c, o as u8)));
                }
                if s.committed != Some(self.commit_offset(pq)) {
                    actions.push(Persist(c));
                }
            }
            if k.stale.is_some_and(|o| s.committed != Some(o)) {
                actions.push(StaleCommit(c));
            }
        }
        if let Some(holder) = broker::holder(&s.locks, &self.queue)
            && let Some(h) = OFFSET_CIDS.iter().position(|c| *c == holder)
            && !s.consumers[h].alive
        {
            actions.push(LockExpire);
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        use OffsetAction::*;
        let mut s = last.clone();
        s.moved_back = false;
        match action {
            Join => {
                s.joined = true;
                s.groups = broker::heartbeat(s.groups, OFFSET_CIDS[0]).0;
                s.consumers[0].alive = true;
            }
            Leave(c) => {
                s.departures_left -= 1;
                self.drop_queue(&mut s, c);
                s.groups = broker::unregister(s.groups, OFFSET_CIDS[c as usize]).0;
                s.consumers[c as usize].alive = false;
            }
            Crash(c) => {
                // The broker drops the channel when the connection closes.
                s.departures_left -= 1;
                s.groups = broker::unregister(s.groups, OFFSET_CIDS[c as usize]).0;
                let k = &mut s.consumers[c as usize];
                k.alive = false;
                k.owns = None;
            }
            Rebalance(c) => {
                if s.consumers[c as usize].owns.is_some() {
                    self.drop_queue(&mut s, c);
                } else {
                    if self.cfg.orderly {
                        let (locks, granted) = broker::lock(
                            s.locks,
                            std::slice::from_ref(&self.queue),
                            OFFSET_CIDS[c as usize],
                        );
                        if granted.is_empty() {
                            return None;
                        }
                        s.locks = locks;
                    }
                    let start = s.committed.unwrap_or(0);
                    s.consumers[c as usize].owns = Some(ProcessQueue::starting_at(start));
                }
            }
            Pull(c) => {
                let pq = s.consumers[c as usize].owns.as_mut()?;
                let next = pq.next_pull();
                pq.pulled([next]);
            }
            Consume(c, o) => {
                let bit = 1u8 << o;
                if s.consumed & bit != 0 {
                    s.consumed_twice |= bit;
                }
                s.consumed |= bit;
                s.consumers[c as usize].owns.as_mut()?.consumed(o as u64);
            }
            Persist(c) => {
                let offset = self.commit_offset(s.consumers[c as usize].owns.as_ref()?);
                Self::commit(&mut s, offset);
            }
            StaleCommit(c) => {
                let offset = s.consumers[c as usize].stale?;
                Self::commit(&mut s, offset);
            }
            LockExpire => {
                let holder = broker::holder(&s.locks, &self.queue)?.to_owned();
                s.locks = broker::expire_lock(
                    s.locks,
                    &holder,
                    &self.queue,
                    LOCK_MAX_LIVE_MS + 1,
                    std::slice::from_ref(&self.queue),
                );
                if s.locks == last.locks {
                    return None;
                }
            }
        }
        Some(s)
    }

    fn within_boundary(&self, _: &Self::State) -> bool {
        !self.stop.is_set()
    }

    fn format_step(&self, last: &Self::State, action: Self::Action) -> Option<String> {
        use OffsetAction::*;
        let next = self.next_state(last, action)?;
        let name = |c: u8| OFFSET_CIDS[c as usize];
        let committed = |s: &OffsetState| match s.committed {
            Some(o) => format!("committed offset {o}"),
            None => "no committed offset".into(),
        };
        Some(match action {
            Join => "consumer C1 joins; the broker notifies the group".into(),
            Leave(c) => format!("consumer {} leaves cleanly; {}", name(c), committed(&next)),
            Crash(c) => format!("consumer {} crashes", name(c)),
            Rebalance(c) => match &next.consumers[c as usize].owns {
                Some(pq) => format!(
                    "consumer {} rebalances, takes the queue and pulls from offset {}",
                    name(c),
                    pq.next_pull()
                ),
                None => format!(
                    "consumer {} rebalances and drops the queue; {}",
                    name(c),
                    committed(&next)
                ),
            },
            Pull(c) => format!(
                "consumer {} pulls offset {}",
                name(c),
                last.consumers[c as usize].owns.as_ref()?.next_pull()
            ),
            Consume(c, o) => format!("consumer {} consumes offset {o}", name(c)),
            Persist(c) => format!(
                "consumer {} uploads its offset; {}",
                name(c),
                committed(&next)
            ),
            StaleCommit(c) => format!(
                "consumer {} commits its stale offset of a dropped queue; {}",
                name(c),
                committed(&next)
            ),
            LockExpire => "the broker's lock held by a departed consumer expires".into(),
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![Property::always(
            "offset_not_past_unconsumed",
            |m: &Self, s: &OffsetState| {
                offset_not_past_unconsumed(s.committed.unwrap_or(0), m.first_unconsumed(s)).is_ok()
            },
        )];
        if self.cfg.orderly {
            properties.push(Property::always(
                "offsets_monotonic",
                |_: &Self, s: &OffsetState| !s.moved_back,
            ));
        } else {
            properties.push(Property::sometimes(
                "offset_moves_backward",
                |_: &Self, s: &OffsetState| s.moved_back,
            ));
            properties.push(Property::sometimes(
                "transient_double_owner",
                |_: &Self, s: &OffsetState| Self::double_owned(s),
            ));
        }
        properties.push(Property::sometimes(
            "duplicate_consumption",
            |_: &Self, s: &OffsetState| s.consumed_twice != 0,
        ));
        properties
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Checker;

    fn durability(
        flush: FlushDiskType,
        role: BrokerRole,
        bug: StoreBug,
    ) -> impl Checker<DurabilityModel> {
        DurabilityModelCfg {
            flush,
            role,
            bug,
            ..Default::default()
        }
        .into_model()
        .checker()
        .spawn_bfs()
        .join()
    }

    #[test]
    fn sync_flush_and_sync_master_lose_nothing() {
        let c = durability(
            FlushDiskType::SyncFlush,
            BrokerRole::SyncMaster,
            StoreBug::None,
        );
        c.assert_properties();
        assert_eq!(c.unique_state_count(), 1_395);
    }

    #[test]
    fn async_modes_lose_acknowledged_messages() {
        let c = durability(
            FlushDiskType::AsyncFlush,
            BrokerRole::SyncMaster,
            StoreBug::None,
        );
        assert!(c.discovery("async_flush_loss").is_some());
        let c = durability(
            FlushDiskType::SyncFlush,
            BrokerRole::AsyncMaster,
            StoreBug::None,
        );
        assert!(c.discovery("async_master_loss").is_some());
        let c = durability(
            FlushDiskType::AsyncFlush,
            BrokerRole::AsyncMaster,
            StoreBug::None,
        );
        assert!(c.discovery("async_flush_loss").is_some());
    }

    #[test]
    fn acking_early_is_caught() {
        for bug in [StoreBug::AckBeforeFlush, StoreBug::AckBeforeReplication] {
            let c = durability(FlushDiskType::SyncFlush, BrokerRole::SyncMaster, bug);
            assert!(c.discovery("acked_not_lost").is_some(), "{bug:?}");
        }
    }

    #[test]
    fn without_a_slave_sync_master_never_acks() {
        let c = DurabilityModelCfg {
            slave: false,
            ..Default::default()
        }
        .into_model()
        .checker()
        .spawn_bfs()
        .join();
        c.assert_no_discovery("acked_not_lost");
        let m = DurabilityModelCfg {
            slave: false,
            ..Default::default()
        }
        .into_model();
        let (any_ack, _) =
            super::super::fold_states(&m, false, |a, s: &DurabilityState| a || !s.acked.is_empty());
        assert!(!any_ack, "SLAVE_NOT_AVAILABLE is not SEND_OK");
    }

    fn offsets(orderly: bool, bug: OffsetBug) -> impl Checker<OffsetModel> {
        OffsetModelCfg {
            orderly,
            bug,
            ..Default::default()
        }
        .into_model()
        .checker()
        .spawn_bfs()
        .join()
    }

    #[test]
    fn offsets_never_skip_a_message_and_go_back_only_with_two_owners() {
        let c = offsets(false, OffsetBug::None);
        c.assert_properties();
        assert_eq!(c.unique_state_count(), 2_801);
        let c = offsets(true, OffsetBug::None);
        c.assert_properties();
        assert_eq!(c.unique_state_count(), 418);
    }

    #[test]
    fn broken_commits_are_caught() {
        let c = offsets(false, OffsetBug::CommitPulled);
        assert!(c.discovery("offset_not_past_unconsumed").is_some());
        let c = offsets(true, OffsetBug::KeepsLostQueue);
        assert!(c.discovery("offsets_monotonic").is_some());
    }
}
