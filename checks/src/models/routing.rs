//! # The routing model
//!
//! One or more NameServers (the real `RouteTable`, with its expiry counters), broker groups
//! `broker-a` and `broker-b` (masters) and optionally a slave of `broker-a`, and one producer that
//! refreshes its route from a NameServer and sends with the retry loop and queue selection of
//! `sextant-model`. Brokers crash within a budget and, optionally, restart; time passes in steps
//! with every NameServer's liveness scan at every scan instant.
//!
//! ## Abstractions (what this model assumes)
//! - **Time in coarse steps.** `Tick` advances the clock by `tick_ms` (40 s) and runs every
//!   liveness scan that falls in the step. Brokers heartbeat (re-register) at most once per step,
//!   at any point of the interleaving, or not at all (a broker that skips heartbeats is expired —
//!   false expiry is in the model). The producer polls every 30 s in RocketMQ, so the clock moves on
//!   only after it has fetched the current route: within a step it may still send on a stale one.
//! - **One topic.** Every broker registers with each NameServer separately; the producer polls any
//!   one of them and the clock moves on once its route matches one NameServer's.
//! - **A send attempt is atomic**: selection, delivery and the outcome (ok if the target broker is
//!   alive, a connection error if it crashed) happen in one step.
//! - **A crash is silent**: the NameServers learn of it only by expiry (the slow path; a closed
//!   connection would remove it at once). It is permanent unless `restart` is on; a restarted
//!   broker keeps its address and registers again.
//!
//! ## Properties
//! - `route_integrity` (always): every route the NameServer would answer lists only registered,
//!   unexpired brokers, and every queue entry has its broker entry.
//! - `expiry_bounded` (always): a broker silent for longer than expiry + scan interval is in no route.
//! - `no_send_to_expired_broker` (always): every attempt targets a broker in the route the producer
//!   holds, and a retry never targets the broker that just failed while another writable broker is
//!   in that route.
//! - `slave_read_only` (always): no attempt lands on a slave.
//! - `dead_broker_send_window` (sometimes): the producer sends to a crashed broker that its route
//!   still lists — the window between a crash and the next route refresh after expiry.
//!
//! ## State compaction and symmetry
//! - A state holds [`Interned`] handles on the NameServers' `RouteTable`s, the producer's route,
//!   its `FaultStrategy` and its send in progress: each distinct value is stored once, and a state
//!   is 376 bytes of integers and handles. Each step reads the values, runs
//!   `sextant-model`'s code on them and interns the result; the model's [`Memo`]s remember
//!   registrations, scans, routes and property verdicts by their inputs.
//! - NameServers are interchangeable: every broker registers with each on its own schedule, the
//!   producer may poll any of them, and every property judges them all alike. So with `symmetry`
//!   on (the default) a state keeps its NameServers sorted, and two states that differ only in
//!   which NameServer is which are one state. Each NameServer carries a label that moves with it
//!   (and that equality ignores), so a trace names each NameServer the same way throughout.

use std::collections::BTreeMap;
use std::sync::Arc;

use sextant_model::Millis;
use sextant_model::invariants::{expiry_bounded, no_send_to_expired_broker, route_integrity};
use sextant_model::namesrv::{BrokerRegistration, NamesrvConfig, RouteTable, TopicConfig};
use sextant_model::producer::{
    AttemptOutcome, FaultStrategy, SendAttempts, SendIndex, SendPolicy, SendStep, TopicPublishInfo,
};
use sextant_model::route::{MASTER_ID, TopicRouteData};
use stateright::{Model, Property};

use super::intern::{Interned, Memo};

const TOPIC: &str = "T";

/// The most NameServers the model takes (its states hold fixed arrays).
pub const MAX_NAMESRVS: u8 = 4;

/// The most broker processes: two masters and a slave.
const PROCESSES: usize = 3;

/// Deliberately broken variants: the checker must report each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Broken {
    /// Nothing broken.
    None,
    /// The NameServer never runs its liveness scan.
    NoExpiryScan,
    /// The producer forgets the failed broker when it retries.
    RetrySameBroker,
    /// The producer writes to any address of a group, slaves included.
    WriteToAnyAddress,
    /// The producer keeps choosing from the first route it fetched: refreshing its route does not
    /// refresh its publish info.
    StalePublishInfo,
}

/// Sizes and switches of the routing model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoutingModelCfg {
    /// Whether `broker-a` has a slave.
    pub slave: bool,
    /// Queues per broker.
    pub queues: u32,
    /// Sends the producer makes in a run.
    pub sends: u8,
    /// Latency fault tolerance on the producer.
    pub fault_tolerance: bool,
    /// NameServer expiry (ms).
    pub expiry: Millis,
    /// NameServer scan interval (ms).
    pub scan_interval: Millis,
    /// How far one `Tick` moves the clock (ms).
    pub tick_ms: Millis,
    /// The clock stops here (ms).
    pub horizon: Millis,
    /// NameServers (1 to [`MAX_NAMESRVS`]); every broker registers with each, on its own schedule.
    pub namesrvs: u8,
    /// Broker crashes allowed in a run.
    pub crashes: u8,
    /// Whether a crashed broker may restart (same address, registers again).
    pub restart: bool,
    /// Whether states that differ only in the numbering of the NameServers are one state.
    pub symmetry: bool,
    /// A deliberately broken variant, or none.
    pub broken: Broken,
}

impl Default for RoutingModelCfg {
    fn default() -> Self {
        RoutingModelCfg {
            slave: true,
            queues: 1,
            sends: 2,
            fault_tolerance: false,
            expiry: 120_000,
            scan_interval: 10_000,
            tick_ms: 40_000,
            horizon: 200_000,
            namesrvs: 1,
            crashes: 1,
            restart: false,
            symmetry: true,
            broken: Broken::None,
        }
    }
}

impl RoutingModelCfg {
    /// The model for this configuration.
    pub fn into_model(self) -> RoutingModel {
        let processes = PROCESS_TABLE[..if self.slave { 3 } else { 2 }].to_vec();
        RoutingModel {
            cfg: RoutingModelCfg {
                namesrvs: self.namesrvs.clamp(1, MAX_NAMESRVS),
                ..self
            },
            processes,
            memo: Arc::default(),
            stop: Default::default(),
        }
    }

    /// The larger configuration of `--deep`: two NameServers, restarts, two queues, three sends.
    pub fn deep() -> Self {
        RoutingModelCfg {
            namesrvs: 2,
            restart: true,
            queues: 2,
            sends: 3,
            ..Default::default()
        }
    }

    /// One line on what this configuration covers.
    pub fn summary(&self) -> String {
        format!(
            "{} NameServer{} ({} s expiry, {} s scans), 2 masters{}, {} crash{}{}, {} sends, {} queue{} each, {} s steps to {} s{}{}",
            self.namesrvs,
            if self.namesrvs == 1 { "" } else { "s" },
            self.expiry / 1000,
            self.scan_interval / 1000,
            if self.slave { " + 1 slave" } else { "" },
            self.crashes,
            if self.crashes == 1 { "" } else { "es" },
            if self.restart { " and restarts" } else { "" },
            self.sends,
            self.queues,
            if self.queues == 1 { "" } else { "s" },
            self.tick_ms / 1000,
            self.horizon / 1000,
            if self.fault_tolerance {
                ", latency fault tolerance"
            } else {
                ""
            },
            if self.symmetry || self.namesrvs == 1 {
                ""
            } else {
                ", no symmetry reduction"
            },
        )
    }
}

/// One broker process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Process {
    /// Its group.
    pub group: &'static str,
    /// Its id in the group.
    pub id: u64,
    /// Its address.
    pub addr: &'static str,
}

/// The broker processes by index: broker-a's master, broker-b's master, broker-a's slave (only
/// with `slave`).
const PROCESS_TABLE: [Process; PROCESSES] = [
    Process {
        group: "broker-a",
        id: MASTER_ID,
        addr: "10.0.0.1:10911",
    },
    Process {
        group: "broker-b",
        id: MASTER_ID,
        addr: "10.0.0.2:10911",
    },
    Process {
        group: "broker-a",
        id: 1,
        addr: "10.0.0.3:10911",
    },
];

/// Per-process values by the process's name, for `Debug` (what `--explore` shows).
struct ByProcess<'a, T>(&'a [T; PROCESSES]);

impl<T: std::fmt::Debug> std::fmt::Debug for ByProcess<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(PROCESS_TABLE.iter().zip(self.0).map(|(p, v)| {
                // The slave's slot is there in every state, used only with a slave.
                let unused = if p.id == MASTER_ID {
                    ""
                } else {
                    " (only with a slave)"
                };
                (format!("{}[{}]@{}{unused}", p.group, p.id, p.addr), v)
            }))
            .finish()
    }
}

/// A table after a registration, and whether the registration was accepted.
type Registered = (Interned<RouteTable>, bool);

/// The model's memo tables: each decision of `sextant-model` on interned values, by its inputs.
#[derive(Debug, Default)]
struct Memos {
    /// (table, process, now) → the table after the process registers, and whether it was accepted.
    register: Memo<(Interned<RouteTable>, u8, Millis), Registered>,
    /// (table, now) → the table after the scans of the clock step from `now`.
    tick: Memo<(Interned<RouteTable>, Millis), Interned<RouteTable>>,
    /// table → the route it answers for the topic.
    route: Memo<Interned<RouteTable>, Option<Interned<TopicRouteData>>>,
    /// route → the producer's publish info.
    publish: Memo<Interned<TopicRouteData>, Arc<TopicPublishInfo>>,
    /// table → `route_integrity` of every route it answers.
    integrity: Memo<Interned<RouteTable>, bool>,
    /// (table, last registrations, now) → `expiry_bounded`.
    expiry: Memo<(Interned<RouteTable>, LastSeen, Millis), bool>,
}

/// The routing model: see the module documentation.
#[derive(Clone, Debug)]
pub struct RoutingModel {
    /// The configuration.
    pub cfg: RoutingModelCfg,
    processes: Vec<Process>,
    memo: Arc<Memos>,
    stop: super::StopFlag,
}

super::stoppable!(RoutingModel);

/// Per process: the time of its last successful registration with one NameServer.
pub type LastSeen = [Option<Millis>; PROCESSES];

/// One NameServer: its table, and when each process last registered with it.
///
/// Equality, hashing and order ignore `label`: two NameServers with the same table and the same
/// registrations are interchangeable, whichever they are.
#[derive(Clone, Copy)]
pub struct Namesrv {
    /// Which NameServer this is, for traces only. Symmetry reduction sorts the NameServers of a
    /// state; the label moves with its NameServer, so a trace (which stateright replays from the
    /// initial state) names each NameServer the same way throughout.
    pub label: u8,
    /// Its route table.
    pub table: Interned<RouteTable>,
    /// Per process: its last successful registration here.
    pub last_seen: LastSeen,
}

impl std::fmt::Debug for Namesrv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namesrv")
            .field("label", &format!("namesrv-{}", self.label))
            .field("table", &self.table)
            .field("last_registered", &ByProcess(&self.last_seen))
            .finish()
    }
}

impl Namesrv {
    fn key(&self) -> (Interned<RouteTable>, LastSeen) {
        (self.table, self.last_seen)
    }
}

impl PartialEq for Namesrv {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Namesrv {}

impl std::hash::Hash for Namesrv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Namesrv {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Namesrv {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// What the last send attempt did (observed by the properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttemptRecord {
    /// The group targeted.
    pub group: &'static str,
    /// The address written to.
    pub addr: &'static str,
    /// Whether that group has write queues in the route the producer holds.
    pub in_route: bool,
    /// The group of the previous failed attempt of this send, if a retry.
    pub retry_after: Option<&'static str>,
    /// Whether another writable group than `retry_after` was in the route.
    pub other_writable: bool,
    /// Whether `sextant_model::invariants::no_send_to_expired_broker` allowed the attempt, judged
    /// on the route the producer holds.
    pub allowed: bool,
    /// Whether the target had crashed.
    pub target_dead: bool,
    /// How long the target had been silent (since its last registration), in ms.
    pub silent_for: Millis,
}

/// The whole state.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoutingState {
    /// The clock.
    pub now: Millis,
    /// The NameServers; the first `cfg.namesrvs` are used, the rest keep their initial value.
    pub namesrvs: [Namesrv; MAX_NAMESRVS as usize],
    /// Per process: alive.
    pub alive: [bool; PROCESSES],
    /// Crashes still allowed.
    pub crashes_left: u8,
    /// The route the producer holds.
    pub route: Option<Interned<TopicRouteData>>,
    /// The route its publish info was built from: `route`, except in the broken variant that
    /// keeps its first.
    pub publish_from: Option<Interned<TopicRouteData>>,
    /// The producer's selection state.
    pub strategy: Interned<FaultStrategy>,
    /// The producer's round-robin index.
    pub index: SendIndex,
    /// The send in progress.
    pub send: Option<Interned<SendAttempts>>,
    /// Sends not yet started.
    pub sends_left: u8,
    /// Attempts made by the send in progress (bounds the broken variant that forgets them).
    pub attempt_no: u8,
    /// The attempt made by the step that led here, if that step was an attempt.
    pub last_attempt: Option<AttemptRecord>,
}

impl std::fmt::Debug for RoutingState {
    /// Processes by name and tables by value (what `--explore` shows).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingState")
            .field("now", &self.now)
            .field("namesrvs", &self.namesrvs)
            .field("alive", &ByProcess(&self.alive))
            .field("crashes_left", &self.crashes_left)
            .field("route", &self.route)
            .field("publish_from", &self.publish_from)
            .field("strategy", &self.strategy)
            .field("index", &self.index)
            .field("send", &self.send)
            .field("sends_left", &self.sends_left)
            .field("attempt_no", &self.attempt_no)
            .field("last_attempt", &self.last_attempt)
            .finish()
    }
}

/// What can happen next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A live broker process registers with a NameServer (first time or heartbeat).
    Register(usize, usize),
    /// A broker process crashes silently.
    Crash(usize),
    /// A crashed broker process starts again.
    Restart(usize),
    /// Time passes by one step; liveness scans run.
    Tick,
    /// The producer fetches the route from a NameServer.
    Refresh(usize),
    /// The producer makes one send attempt (starting a send if none is in progress).
    Attempt,
}

impl RoutingModel {
    fn publish_info(&self, route: Interned<TopicRouteData>) -> Arc<TopicPublishInfo> {
        self.memo.publish.get(route, || {
            if self.cfg.broken == Broken::WriteToAnyAddress {
                // Broken: treat every group as writable, masters or not.
                let mut r = (*route).clone();
                for b in &mut r.broker_datas {
                    if b.master_addr().is_none()
                        && let Some((_, addr)) = b.broker_addrs.pop_first()
                    {
                        b.broker_addrs.insert(MASTER_ID, addr);
                    }
                }
                return Arc::new(TopicPublishInfo::from_route(TOPIC, &r));
            }
            Arc::new(TopicPublishInfo::from_route(TOPIC, &route))
        })
    }

    fn process_at(&self, addr: &str) -> Option<usize> {
        self.processes.iter().position(|p| p.addr == addr)
    }

    /// The model's own spelling of a group name.
    fn group(&self, name: &str) -> Option<&'static str> {
        self.processes.iter().map(|p| p.group).find(|g| *g == name)
    }

    /// The NameServers in use.
    fn used<'s>(&self, s: &'s RoutingState) -> &'s [Namesrv] {
        &s.namesrvs[..usize::from(self.cfg.namesrvs)]
    }

    fn route_of(&self, table: Interned<RouteTable>) -> Option<Interned<TopicRouteData>> {
        self.memo
            .route
            .get(table, || table.route(TOPIC).map(Interned::new))
    }

    fn register(
        &self,
        table: Interned<RouteTable>,
        i: usize,
        now: Millis,
    ) -> (Interned<RouteTable>, bool) {
        self.memo.register.get((table, i as u8, now), || {
            let p = self.processes[i];
            let reg = BrokerRegistration::new("C", p.group, p.id, p.addr).with_topics([
                TopicConfig::new(TOPIC, self.cfg.queues),
                TopicConfig::new("other", 1),
            ]);
            table.update(|t| t.register(&reg, now).is_ok())
        })
    }

    fn tick(&self, table: Interned<RouteTable>, now: Millis) -> Interned<RouteTable> {
        if self.cfg.broken == Broken::NoExpiryScan {
            return table;
        }
        self.memo.tick.get((table, now), || {
            table
                .update(|t| {
                    for at in super::scan_instants(now, self.cfg.tick_ms, self.cfg.scan_interval) {
                        t.scan_expired(at);
                    }
                })
                .0
        })
    }

    /// The representative of `s`'s class: its NameServers sorted (when `symmetry` is on).
    fn canonical(&self, mut s: RoutingState) -> RoutingState {
        if self.cfg.symmetry {
            s.namesrvs[..usize::from(self.cfg.namesrvs)].sort_unstable();
        }
        s
    }

    /// The longest time a crashed broker had been silent when the producer still sent to it, over
    /// every reachable state, and the number of states visited.
    pub fn longest_dead_broker_window(&self) -> (Option<Millis>, usize) {
        super::fold_states(
            self,
            None,
            |longest: Option<Millis>, s: &RoutingState| match &s.last_attempt {
                Some(a) if a.target_dead => {
                    Some(longest.map_or(a.silent_for, |l| l.max(a.silent_for)))
                }
                _ => longest,
            },
        )
    }

    /// One attempt of the producer from `s`, or `None` when it has no route.
    fn attempt(&self, s: &mut RoutingState) -> Option<()> {
        let route = s.route?;
        let from = s.publish_from.unwrap_or(route);
        let info = self.publish_info(from);
        let mut send = match s.send.take() {
            Some(send) => (*send).clone(),
            None => {
                s.sends_left -= 1;
                s.attempt_no = 0;
                SendAttempts::new(SendPolicy::default(), s.now)
            }
        };
        let retry_after = send.last_broker().and_then(|g| self.group(g));
        if self.cfg.broken == Broken::RetrySameBroker {
            // Broken: every attempt starts afresh, forgetting the broker that failed.
            send = SendAttempts::new(SendPolicy::default(), s.now);
        }
        s.attempt_no += 1;
        let mut strategy = (*s.strategy).clone();
        let Ok(mq) = send.next_target(&info, &mut strategy, &mut s.index, s.now) else {
            s.strategy = Interned::new(strategy);
            return Some(());
        };
        // The address comes from the route the publish info was built from, as in the client.
        let addr = from.broker(&mq.broker_name).and_then(|b| {
            if self.cfg.broken == Broken::WriteToAnyAddress {
                b.select_broker_addr(0)
            } else {
                b.master_addr()
            }
        })?;
        let target = self.process_at(addr)?;
        let p = self.processes[target];
        let dead = !s.alive[target];
        // Judged on the route the producer holds now, whatever it chose from.
        let held = self.publish_info(route);
        let other_writable = held.brokers().any(|b| Some(b) != retry_after);
        let allowed = no_send_to_expired_broker(&held, &mq.broker_name, retry_after).is_ok();
        s.last_attempt = Some(AttemptRecord {
            allowed,
            group: self.group(&mq.broker_name)?,
            addr: p.addr,
            in_route: held.write_queue_nums(&mq.broker_name) > 0,
            retry_after,
            other_writable,
            target_dead: dead,
            silent_for: self
                .used(s)
                .iter()
                .filter_map(|ns| ns.last_seen[target])
                .max()
                .map_or(0, |t| s.now - t),
        });
        let outcome = if dead {
            AttemptOutcome::Remoting
        } else {
            AttemptOutcome::Ok
        };
        let step = send.on_outcome(&mq, outcome, 5, &mut strategy, s.now);
        s.strategy = Interned::new(strategy);
        s.send = match step {
            SendStep::Retry if s.attempt_no < 3 => Some(Interned::new(send)),
            SendStep::Retry | SendStep::Done | SendStep::Failed(_) => None,
        };
        Some(())
    }
}

impl Model for RoutingModel {
    type State = RoutingState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let n = self.processes.len();
        let table = Interned::new(RouteTable::new(NamesrvConfig {
            broker_expiry: self.cfg.expiry,
            scan_interval: self.cfg.scan_interval,
            ..Default::default()
        }));
        vec![RoutingState {
            now: 0,
            namesrvs: std::array::from_fn(|ns| Namesrv {
                label: ns as u8,
                table,
                last_seen: [None; PROCESSES],
            }),
            alive: std::array::from_fn(|i| i < n),
            crashes_left: self.cfg.crashes,
            route: None,
            publish_from: None,
            strategy: Interned::new(FaultStrategy::new(self.cfg.fault_tolerance)),
            index: SendIndex::starting_at(0),
            send: None,
            sends_left: self.cfg.sends,
            attempt_no: 0,
            last_attempt: None,
        }]
    }

    fn actions(&self, s: &Self::State, actions: &mut Vec<Self::Action>) {
        for i in 0..self.processes.len() {
            let alive = s.alive[i];
            for (ns, n) in self.used(s).iter().enumerate() {
                if alive && n.last_seen[i].is_none_or(|t| t < s.now) {
                    actions.push(Action::Register(i, ns));
                }
            }
            if alive && s.crashes_left > 0 {
                actions.push(Action::Crash(i));
            }
            if !alive && self.cfg.restart {
                actions.push(Action::Restart(i));
            }
        }
        // The producer polls every 30 s, so within a 40 s step it has seen the current route of
        // the NameServer it polls: time moves on only once its route is fresh from one of them.
        let mut fresh_somewhere = false;
        for (ns, n) in self.used(s).iter().enumerate() {
            if self.route_of(n.table) == s.route {
                fresh_somewhere = true;
            } else {
                actions.push(Action::Refresh(ns));
            }
        }
        if fresh_somewhere && s.now + self.cfg.tick_ms <= self.cfg.horizon {
            actions.push(Action::Tick);
        }
        if s.route.is_some() && (s.send.is_some() || s.sends_left > 0) {
            actions.push(Action::Attempt);
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        let mut s = last.clone();
        // The properties read the attempt record in the state right after the attempt; keeping it
        // longer would only multiply states.
        s.last_attempt = None;
        match action {
            Action::Register(i, ns) => {
                let n = &mut s.namesrvs[ns];
                let (table, ok) = self.register(n.table, i, s.now);
                n.table = table;
                if ok {
                    n.last_seen[i] = Some(s.now);
                }
            }
            Action::Crash(i) => {
                s.alive[i] = false;
                s.crashes_left -= 1;
            }
            Action::Restart(i) => s.alive[i] = true,
            Action::Tick => {
                for ns in 0..usize::from(self.cfg.namesrvs) {
                    s.namesrvs[ns].table = self.tick(s.namesrvs[ns].table, s.now);
                }
                s.now += self.cfg.tick_ms;
            }
            Action::Refresh(ns) => {
                s.route = self.route_of(s.namesrvs[ns].table);
                if self.cfg.broken != Broken::StalePublishInfo || s.publish_from.is_none() {
                    s.publish_from = s.route;
                }
            }
            Action::Attempt => self.attempt(&mut s)?,
        }
        Some(self.canonical(s))
    }

    fn within_boundary(&self, _: &Self::State) -> bool {
        !self.stop.is_set()
    }

    /// The action with its process by name (the Explorer's list of next steps). A NameServer is
    /// named by its slot: the state keeps its NameServers sorted (symmetry), and `format_step`
    /// names the one a step reaches by its label.
    fn format_action(&self, action: &Self::Action) -> String {
        let name = |p: &usize| {
            let p = &PROCESS_TABLE[*p];
            format!("{}[{}]", p.group, p.id)
        };
        match action {
            Action::Register(p, ns) => format!("Register({}, namesrv slot {ns})", name(p)),
            Action::Crash(p) => format!("Crash({})", name(p)),
            Action::Restart(p) => format!("Restart({})", name(p)),
            Action::Refresh(ns) => format!("Refresh(namesrv slot {ns})"),
            Action::Tick | Action::Attempt => format!("{action:?}"),
        }
    }

    fn format_step(&self, last: &Self::State, action: Self::Action) -> Option<String> {
        let next = self.next_state(last, action)?;
        let p = |i: usize| {
            let p = self.processes[i];
            format!("{}[{}] at {}", p.group, p.id, p.addr)
        };
        Some(match action {
            Action::Register(i, ns) => format!(
                "t={}s: {} registers with namesrv-{}",
                last.now / 1000,
                p(i),
                last.namesrvs[ns].label
            ),
            Action::Crash(i) => format!("t={}s: {} crashes silently", last.now / 1000, p(i)),
            Action::Restart(i) => format!("t={}s: {} restarts", last.now / 1000, p(i)),
            Action::Tick => format!("time passes to t={}s (scans run)", next.now / 1000),
            Action::Refresh(ns) => {
                let groups: Vec<String> = next
                    .route
                    .iter()
                    .flat_map(|r| r.broker_datas.iter())
                    .map(|b| {
                        format!(
                            "{}{:?}",
                            b.broker_name,
                            b.broker_addrs.keys().collect::<Vec<_>>()
                        )
                    })
                    .collect();
                format!(
                    "t={}s: producer refreshes its route from namesrv-{}: {}",
                    last.now / 1000,
                    last.namesrvs[ns].label,
                    groups.join(" ")
                )
            }
            Action::Attempt => match &next.last_attempt {
                Some(a) => format!(
                    "t={}s: producer sends to {} at {}{}{}{}",
                    last.now / 1000,
                    a.group,
                    a.addr,
                    if a.retry_after.is_some() {
                        " (retry)"
                    } else {
                        ""
                    },
                    if a.in_route {
                        ""
                    } else {
                        " (not in the route it holds)"
                    },
                    if a.target_dead {
                        " -> fails, the broker is dead"
                    } else {
                        " -> ok"
                    }
                ),
                None => "producer finds no queue".into(),
            },
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("route_integrity", |m: &Self, s: &RoutingState| {
                m.used(s).iter().all(|n| {
                    m.memo.integrity.get(n.table, || {
                        n.table.topics().iter().all(|t| {
                            n.table
                                .route(t)
                                .is_none_or(|r| route_integrity(&n.table, &r).is_ok())
                        })
                    })
                })
            }),
            Property::always("expiry_bounded", |m: &Self, s: &RoutingState| {
                m.used(s).iter().all(|n| {
                    m.memo.expiry.get((n.table, n.last_seen, s.now), || {
                        let seen: BTreeMap<String, Millis> = m
                            .processes
                            .iter()
                            .zip(n.last_seen)
                            .filter_map(|(p, t)| Some((p.addr.to_owned(), t?)))
                            .collect();
                        expiry_bounded(&n.table, &seen, m.cfg.expiry + m.cfg.scan_interval, s.now)
                            .is_ok()
                    })
                })
            }),
            Property::always("no_send_to_expired_broker", |_: &Self, s: &RoutingState| {
                s.last_attempt.as_ref().is_none_or(|a| a.allowed)
            }),
            Property::always("slave_read_only", |m: &Self, s: &RoutingState| {
                s.last_attempt.as_ref().is_none_or(|a| {
                    m.processes
                        .iter()
                        .any(|p| p.addr == a.addr && p.id == MASTER_ID)
                })
            }),
            Property::sometimes("dead_broker_send_window", |_: &Self, s: &RoutingState| {
                s.last_attempt
                    .as_ref()
                    .is_some_and(|a| a.target_dead && a.in_route)
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Checker;

    fn check(cfg: RoutingModelCfg) -> impl Checker<RoutingModel> {
        cfg.into_model().checker().spawn_bfs().join()
    }

    const SAFETY: [&str; 4] = [
        "route_integrity",
        "expiry_bounded",
        "no_send_to_expired_broker",
        "slave_read_only",
    ];

    #[test]
    fn a_state_and_its_actions_print_processes_by_name() {
        let model = RoutingModelCfg::default().into_model();
        let init = model.init_states().remove(0);
        let mut actions = Vec::new();
        model.actions(&init, &mut actions);
        let register = actions
            .iter()
            .copied()
            .find(|a| matches!(a, Action::Register(0, _)))
            .unwrap();
        assert_eq!(
            model.format_action(&register),
            "Register(broker-a[0], namesrv slot 0)"
        );
        let next = model.next_state(&init, register).unwrap();
        let shown = format!("{next:#?}");
        assert!(
            shown.contains("\"broker-a[0]@10.0.0.1:10911\": Some("),
            "{shown}"
        );
        assert!(
            shown.contains("\"broker-a[1]@10.0.0.3:10911 (only with a slave)\": true"),
            "{shown}"
        );
        assert!(shown.contains("\"namesrv-0\""), "{shown}");
    }

    #[test]
    fn routing_holds_and_finds_the_dead_broker_window() {
        for fault_tolerance in [false, true] {
            let checker = check(RoutingModelCfg {
                fault_tolerance,
                ..Default::default()
            });
            for p in SAFETY {
                checker.assert_no_discovery(p);
            }
            assert!(checker.discovery("dead_broker_send_window").is_some());
        }
    }

    #[test]
    fn longest_window_is_bounded_by_expiry_scan_and_refresh() {
        let m = RoutingModelCfg::default().into_model();
        let (longest, states) = m.longest_dead_broker_window();
        assert_eq!(states, 111_771);
        let longest = longest.expect("the window exists");
        // A broker last heard at 0 s is still listed at 120 s (expiry is strict), is dropped by the
        // scan at 130 s, and a producer that has not polled since 120 s still sends to it at 160 s:
        // expiry + scan + poll, RocketMQ's "up to about 160 s" (protocol.md §9), in 40 s steps.
        assert_eq!(longest, 160_000);
    }

    #[test]
    fn state_count_is_pinned() {
        assert_eq!(
            check(RoutingModelCfg::default()).unique_state_count(),
            111_771
        );
    }

    fn caught(broken: Broken, property: &'static str) {
        let cfg = RoutingModelCfg {
            broken,
            queues: 2,
            ..Default::default()
        };
        let checker = check(cfg);
        assert!(
            checker.discovery(property).is_some(),
            "{broken:?} must violate {property}"
        );
    }

    #[test]
    fn a_namesrv_that_never_expires_is_caught() {
        caught(Broken::NoExpiryScan, "expiry_bounded");
    }

    #[test]
    fn a_producer_that_retries_the_failed_broker_is_caught() {
        caught(Broken::RetrySameBroker, "no_send_to_expired_broker");
    }

    #[test]
    fn a_producer_that_writes_to_a_slave_is_caught() {
        caught(Broken::WriteToAnyAddress, "slave_read_only");
    }

    #[test]
    fn a_producer_that_chooses_from_a_stale_route_is_caught() {
        let checker = check(RoutingModelCfg {
            broken: Broken::StalePublishInfo,
            queues: 2,
            ..Default::default()
        });
        let path = checker
            .discovery("no_send_to_expired_broker")
            .expect("it sends to a broker its current route no longer lists");
        let last = path.last_state();
        assert!(last.last_attempt.is_some_and(|a| !a.in_route), "{last:?}");
    }

    #[test]
    fn a_state_is_a_few_hundred_bytes_of_integers_and_handles() {
        // Nothing on the heap: the tables are handles.
        let size = std::mem::size_of::<RoutingState>();
        assert!(size <= 400, "{size}");
        println!("RoutingState: {size} bytes");
    }

    #[test]
    fn symmetry_reduction_keeps_every_verdict() {
        // Two NameServers, no slave, one send: small enough to check both ways.
        for broken in [Broken::None, Broken::NoExpiryScan, Broken::StalePublishInfo] {
            let cfg = RoutingModelCfg {
                namesrvs: 2,
                slave: false,
                sends: 1,
                broken,
                ..Default::default()
            };
            let (reduced, reduced_states) = super::super::verdicts(cfg.into_model());
            let (full, full_states) = super::super::verdicts(
                RoutingModelCfg {
                    symmetry: false,
                    ..cfg
                }
                .into_model(),
            );
            assert_eq!(reduced, full, "{broken:?}");
            if broken == Broken::None {
                assert_eq!((reduced_states, full_states), (141_400, 278_381));
            }
        }
    }
}
