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

use sextant_model::Millis;
use sextant_model::invariants::{no_send_to_expired_broker, route_integrity};
use sextant_model::namesrv::{BrokerRegistration, NamesrvConfig, RouteTable, TopicConfig};
use sextant_model::producer::{
    AttemptOutcome, FaultStrategy, SendAttempts, SendIndex, SendPolicy, SendStep, TopicPublishInfo,
};
use sextant_model::route::{MASTER_ID, TopicRouteData};
use stateright::{Model, Property};

const TOPIC: &str = "T";

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
    /// NameServers; every broker registers with each, on its own schedule.
    pub namesrvs: u8,
    /// Broker crashes allowed in a run.
    pub crashes: u8,
    /// Whether a crashed broker may restart (same address, registers again).
    pub restart: bool,
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
            broken: Broken::None,
        }
    }
}

impl RoutingModelCfg {
    /// The model for this configuration.
    pub fn into_model(self) -> RoutingModel {
        let mut processes = vec![
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
        ];
        if self.slave {
            processes.push(Process {
                group: "broker-a",
                id: 1,
                addr: "10.0.0.3:10911",
            });
        }
        RoutingModel {
            cfg: self,
            processes,
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
            "{} NameServer{} ({} s expiry, {} s scans), 2 masters{}, {} crash{}{}, {} sends, {} queue{} each, {} s steps to {} s{}",
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

/// The routing model: see the module documentation.
#[derive(Clone, Debug)]
pub struct RoutingModel {
    /// The configuration.
    pub cfg: RoutingModelCfg,
    processes: Vec<Process>,
    stop: super::StopFlag,
}

super::stoppable!(RoutingModel);

/// What the last send attempt did (observed by the properties).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttemptRecord {
    /// The group targeted.
    pub group: String,
    /// The address written to.
    pub addr: String,
    /// Whether that group is in the producer's publish info.
    pub in_route: bool,
    /// The group of the previous failed attempt of this send, if a retry.
    pub retry_after: Option<String>,
    /// Whether another writable group than `retry_after` was in the route.
    pub other_writable: bool,
    /// Whether `sextant_model::invariants::no_send_to_expired_broker` allowed the attempt.
    pub allowed: bool,
    /// Whether the target had crashed.
    pub target_dead: bool,
    /// How long the target had been silent (since its last registration), in ms.
    pub silent_for: Millis,
}

/// The whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoutingState {
    /// The clock.
    pub now: Millis,
    /// Each NameServer's tables.
    pub tables: Vec<RouteTable>,
    /// Per process: alive.
    pub alive: Vec<bool>,
    /// Per NameServer, per process: the time of its last successful registration there.
    pub last_seen: Vec<Vec<Option<Millis>>>,
    /// Crashes still allowed.
    pub crashes_left: u8,
    /// The route the producer holds.
    pub route: Option<TopicRouteData>,
    /// The producer's selection state.
    pub strategy: FaultStrategy,
    /// The producer's round-robin index.
    pub index: SendIndex,
    /// The send in progress.
    pub send: Option<SendAttempts>,
    /// Sends not yet started.
    pub sends_left: u8,
    /// Attempts made by the send in progress (bounds the broken variant that forgets them).
    pub attempt_no: u8,
    /// The attempt made by the step that led here, if that step was an attempt.
    pub last_attempt: Option<AttemptRecord>,
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
    fn publish_info(&self, route: &TopicRouteData) -> TopicPublishInfo {
        if self.cfg.broken == Broken::WriteToAnyAddress {
            // Broken: treat every group as writable, masters or not.
            let mut r = route.clone();
            for b in &mut r.broker_datas {
                if b.master_addr().is_none()
                    && let Some((_, addr)) = b.broker_addrs.pop_first()
                {
                    b.broker_addrs.insert(MASTER_ID, addr);
                }
            }
            return TopicPublishInfo::from_route(TOPIC, &r);
        }
        TopicPublishInfo::from_route(TOPIC, route)
    }

    fn process_at(&self, addr: &str) -> Option<usize> {
        self.processes.iter().position(|p| p.addr == addr)
    }
}

impl RoutingModel {
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
}

impl Model for RoutingModel {
    type State = RoutingState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let n = self.processes.len();
        let namesrvs = usize::from(self.cfg.namesrvs.max(1));
        let table = RouteTable::new(NamesrvConfig {
            broker_expiry: self.cfg.expiry,
            scan_interval: self.cfg.scan_interval,
            ..Default::default()
        });
        vec![RoutingState {
            now: 0,
            tables: vec![table; namesrvs],
            alive: vec![true; n],
            last_seen: vec![vec![None; n]; namesrvs],
            crashes_left: self.cfg.crashes,
            route: None,
            strategy: FaultStrategy::new(self.cfg.fault_tolerance),
            index: SendIndex::starting_at(0),
            send: None,
            sends_left: self.cfg.sends,
            attempt_no: 0,
            last_attempt: None,
        }]
    }

    fn actions(&self, s: &Self::State, actions: &mut Vec<Self::Action>) {
        for (i, alive) in s.alive.iter().enumerate() {
            for (ns, seen) in s.last_seen.iter().enumerate() {
                if *alive && seen[i].is_none_or(|t| t < s.now) {
                    actions.push(Action::Register(i, ns));
                }
            }
            if *alive && s.crashes_left > 0 {
                actions.push(Action::Crash(i));
            }
            if !*alive && self.cfg.restart {
                actions.push(Action::Restart(i));
            }
        }
        // The producer polls every 30 s, so within a 40 s step it has seen the current route of
        // the NameServer it polls: time moves on only once its route is fresh from one of them.
        let mut fresh_somewhere = false;
        for (ns, table) in s.tables.iter().enumerate() {
            if table.route(TOPIC) == s.route {
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
                let p = self.processes[i];
                let reg = BrokerRegistration::new("C", p.group, p.id, p.addr).with_topics([
                    TopicConfig::new(TOPIC, self.cfg.queues),
                    TopicConfig::new("other", 1),
                ]);
                if s.tables[ns].register(&reg, s.now).is_ok() {
                    s.last_seen[ns][i] = Some(s.now);
                }
            }
            Action::Crash(i) => {
                s.alive[i] = false;
                s.crashes_left -= 1;
            }
            Action::Restart(i) => s.alive[i] = true,
            Action::Tick => super::step_clock(
                &mut s.tables,
                &mut s.now,
                self.cfg.tick_ms,
                self.cfg.scan_interval,
                self.cfg.broken != Broken::NoExpiryScan,
            ),
            Action::Refresh(ns) => s.route = s.tables[ns].route(TOPIC),
            Action::Attempt => {
                let route = s.route.clone()?;
                let info = self.publish_info(&route);
                let mut send = match s.send.take() {
                    Some(send) => send,
                    None => {
                        s.sends_left -= 1;
                        s.attempt_no = 0;
                        SendAttempts::new(SendPolicy::default(), s.now)
                    }
                };
                let retry_after = send.last_broker().map(str::to_owned);
                if self.cfg.broken == Broken::RetrySameBroker {
                    // Broken: every attempt starts afresh, forgetting the broker that failed.
                    send = SendAttempts::new(SendPolicy::default(), s.now);
                }
                s.attempt_no += 1;
                let Ok(mq) = send.next_target(&info, &mut s.strategy, &mut s.index, s.now) else {
                    return Some(s);
                };
                let addr = route.broker(&mq.broker_name).and_then(|b| {
                    if self.cfg.broken == Broken::WriteToAnyAddress {
                        b.select_broker_addr(0)
                    } else {
                        b.master_addr()
                    }
                })?;
                let target = self.process_at(addr)?;
                let dead = !s.alive[target];
                let other_writable = info.brokers().any(|b| Some(b) != retry_after.as_deref());
                let allowed =
                    no_send_to_expired_broker(&info, &mq.broker_name, retry_after.as_deref())
                        .is_ok();
                s.last_attempt = Some(AttemptRecord {
                    allowed,
                    group: mq.broker_name.to_string(),
                    addr: addr.to_owned(),
                    in_route: info.write_queue_nums(&mq.broker_name) > 0,
                    retry_after,
                    other_writable,
                    target_dead: dead,
                    silent_for: s
                        .last_seen
                        .iter()
                        .filter_map(|seen| seen[target])
                        .max()
                        .map_or(0, |t| s.now - t),
                });
                let outcome = if dead {
                    AttemptOutcome::Remoting
                } else {
                    AttemptOutcome::Ok
                };
                s.send = match send.on_outcome(&mq, outcome, 5, &mut s.strategy, s.now) {
                    SendStep::Retry if s.attempt_no < 3 => Some(send),
                    SendStep::Retry | SendStep::Done | SendStep::Failed(_) => None,
                };
            }
        }
        Some(s)
    }

    fn within_boundary(&self, _: &Self::State) -> bool {
        !self.stop.is_set()
    }

    fn format_step(&self, last: &Self::State, action: Self::Action) -> Option<String> {
        let next = self.next_state(last, action)?;
        let p = |i: usize| {
            let p = self.processes[i];
            format!("{}[{}] at {}", p.group, p.id, p.addr)
        };
        Some(match action {
            Action::Register(i, ns) => format!(
                "t={}s: {} registers with namesrv-{ns}",
                last.now / 1000,
                p(i)
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
                    "t={}s: producer refreshes its route from namesrv-{ns}: {}",
                    last.now / 1000,
                    groups.join(" ")
                )
            }
            Action::Attempt => match &next.last_attempt {
                Some(a) => format!(
                    "t={}s: producer sends to {} at {}{}{}",
                    last.now / 1000,
                    a.group,
                    a.addr,
                    if a.retry_after.is_some() {
                        " (retry)"
                    } else {
                        ""
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
            Property::always("route_integrity", |_: &Self, s: &RoutingState| {
                s.tables.iter().all(|table| {
                    table.topics().iter().all(|t| {
                        table
                            .route(t)
                            .is_none_or(|r| route_integrity(table, &r).is_ok())
                    })
                })
            }),
            Property::always("expiry_bounded", |m: &Self, s: &RoutingState| {
                super::expiry_bounded_everywhere(
                    &s.tables,
                    &s.last_seen,
                    m.processes.iter().map(|p| p.addr),
                    m.cfg.expiry + m.cfg.scan_interval,
                    s.now,
                )
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
}
