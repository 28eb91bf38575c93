//! Model-based tests with faults on a real loopback cluster: a scenario generator, the runner
//! that plays a scenario on real NameServers, brokers and clients (in this process, real TCP on
//! 127.0.0.1, millisecond timings), and the verdicts over many runs.
//!
//! A [`Scenario`] is what proptest's [`scenario`] strategy draws: 1–2 NameServers, 1–3 broker
//! groups (each SYNC_FLUSH or ASYNC_FLUSH, maybe with a slave), queue counts, a producer with
//! fault tolerance on or off, 1–3 push consumers of one strategy (concurrent, or orderly with
//! broker locks), and up to four timed steps —
//! faults (a broker killed or losing power and restarted, paused past its expiry, its
//! connections cut or slowed; a NameServer's clock stepped) and membership changes (a consumer
//! joins, leaves, or goes slow). Sends run throughout.
//!
//! Two ways to draw one, one generator:
//! - a **seed** ([`Scenario::from_seed`], in the style of TigerBeetle's VOPR): the seed picks
//!   everything through proptest's own ChaCha generator, so a failure prints a seed and
//!   `sextant check --seed S` replays it;
//! - **proptest** itself ([`scenario`] in a `proptest!` block).
//!
//! Either way a failing scenario is shrunk ([`shrink`]) with proptest's value tree: fewer
//! steps, fewer brokers and consumers, shorter faults, until no simpler one fails.
//!
//! [`run::run`] plays a scenario, checks its trace with [`crate::trace::check`] (the model's
//! invariants) and compares the end state with what `sextant-model` computes for the same
//! inputs (see [`run`]).

pub mod proxy;
pub mod run;
pub mod tally;
pub mod variants;

use std::fmt;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// The allocation strategies scenarios draw from (names of `strategy_by_name`).
pub const STRATEGIES: [&str; 3] = ["averagely", "circle", "consistent-hash"];

/// One broker group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerSpec {
    /// The topic's queues on it.
    pub queues: u32,
    /// SYNC_FLUSH (else ASYNC_FLUSH).
    pub sync_flush: bool,
    /// A slave, and whether the master waits for it (SYNC_MASTER).
    pub slave: Option<bool>,
}

/// What a step does. Indices are taken modulo what exists when the step runs, so a shrunk
/// scenario (fewer brokers, consumers) stays meaningful.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `kill -9` the broker group's master and restart it `down_ms` later (what it wrote stays).
    Kill {
        /// The broker group.
        broker: usize,
        /// How long it stays down.
        down_ms: u64,
    },
    /// The master loses power: what it had not synced is gone; restarted `down_ms` later. (On a
    /// group with a slave it is a kill: classic replication refuses a slave ahead of its master.)
    PowerLoss {
        /// The broker group.
        broker: usize,
        /// How long it stays down.
        down_ms: u64,
    },
    /// The master stops answering anyone (clients and NameServers; a SIGSTOP as its peers see
    /// it): its proxies hold every byte for `ms`, then forward again.
    Pause {
        /// The broker group.
        broker: usize,
        /// How long.
        ms: u64,
    },
    /// Every client connection to the master is cut (reset).
    Cut {
        /// The broker group.
        broker: usize,
    },
    /// Every byte to and from the master is delayed `delay_ms` for `ms`.
    Slow {
        /// The broker group.
        broker: usize,
        /// The delay per chunk.
        delay_ms: u64,
        /// For how long.
        ms: u64,
    },
    /// A NameServer's clock steps forward.
    ClockStep {
        /// The NameServer.
        namesrv: usize,
        /// By how much.
        ms: u64,
    },
    /// A consumer joins the group.
    Join,
    /// A consumer leaves (shuts down cleanly), unless it is the last.
    Leave {
        /// Which of the live ones.
        consumer: usize,
    },
    /// A consumer dies (a `kill -9` of its process, as the brokers see it): its connections
    /// close with nothing committed, unlocked or unregistered; unless it is the last.
    Crash {
        /// Which of the live ones.
        consumer: usize,
    },
    /// A consumer takes `per_msg_ms` per message for `ms`.
    SlowConsumer {
        /// Which of the live ones.
        consumer: usize,
        /// Per message.
        per_msg_ms: u64,
        /// For how long.
        ms: u64,
    },
}

impl Action {
    /// Whether it is a fault (not a membership change; a consumer's crash is a fault).
    pub fn is_fault(&self) -> bool {
        !matches!(
            self,
            Action::Join | Action::Leave { .. } | Action::SlowConsumer { .. }
        )
    }

    /// How long it lasts (ms).
    pub fn duration(&self) -> u64 {
        match self {
            Action::Kill { down_ms, .. } | Action::PowerLoss { down_ms, .. } => *down_ms,
            Action::Pause { ms, .. }
            | Action::Slow { ms, .. }
            | Action::SlowConsumer { ms, .. } => *ms,
            _ => 0,
        }
    }
}

/// A step at a time (ms after the sends begin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// When.
    pub at_ms: u64,
    /// What.
    pub action: Action,
}

/// A scenario: the cluster, the clients, the steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// NameServers (1–2).
    pub namesrvs: usize,
    /// Broker groups (1–3).
    pub brokers: Vec<BrokerSpec>,
    /// The producer's latency fault tolerance.
    pub fault_tolerance: bool,
    /// The consumers' allocation strategy (one of [`STRATEGIES`]).
    pub strategy: &'static str,
    /// Consumers at the start (1–3 drawn; 0 is allowed: the first may join later).
    pub consumers: usize,
    /// Orderly consumers (broker locks), a quarter of the scenarios.
    pub orderly: bool,
    /// The steps, by time.
    pub steps: Vec<Step>,
}

impl Scenario {
    /// The scenario seed `seed` picks: proptest's ChaCha generator seeded with it draws from
    /// [`scenario`].
    pub fn from_seed(seed: u64) -> Scenario {
        tree(seed).current()
    }

    /// Faults among the steps.
    pub fn faults(&self) -> usize {
        self.steps.iter().filter(|s| s.action.is_fault()).count()
    }

    /// When the last step ends (ms).
    pub fn last_step_end(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.at_ms + s.action.duration())
            .max()
            .unwrap_or(0)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} namesrv, brokers [", self.namesrvs)?;
        for (i, b) in self.brokers.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let flush = if b.sync_flush { "sync" } else { "async" };
            let slave = match b.slave {
                None => "",
                Some(true) => " +sync slave",
                Some(false) => " +async slave",
            };
            write!(f, "{sep}{}q {flush}{slave}", b.queues)?;
        }
        write!(
            f,
            "], fault tolerance {}, {} × {}{}",
            if self.fault_tolerance { "on" } else { "off" },
            self.consumers,
            self.strategy,
            if self.orderly { " orderly" } else { "" }
        )?;
        for s in &self.steps {
            write!(f, "; @{}ms {:?}", s.at_ms, s.action)?;
        }
        Ok(())
    }
}

fn broker_spec() -> impl Strategy<Value = BrokerSpec> {
    (
        2u32..=4,
        any::<bool>(),
        prop_oneof![3 => Just(None), 1 => any::<bool>().prop_map(Some)],
    )
        .prop_map(|(queues, sync_flush, slave)| BrokerSpec {
            queues,
            sync_flush,
            slave,
        })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0usize..3, 100u64..=700).prop_map(|(broker, down_ms)| Action::Kill { broker, down_ms }),
        2 => (0usize..3, 100u64..=700)
            .prop_map(|(broker, down_ms)| Action::PowerLoss { broker, down_ms }),
        2 => (0usize..3, 900u64..=1300).prop_map(|(broker, ms)| Action::Pause { broker, ms }),
        2 => (0usize..3).prop_map(|broker| Action::Cut { broker }),
        1 => (0usize..3, 10u64..=80, 200u64..=600)
            .prop_map(|(broker, delay_ms, ms)| Action::Slow { broker, delay_ms, ms }),
        1 => (0usize..2, 100u64..=350).prop_map(|(namesrv, ms)| Action::ClockStep { namesrv, ms }),
        2 => Just(Action::Join),
        1 => (0usize..4).prop_map(|consumer| Action::Leave { consumer }),
        1 => (0usize..4).prop_map(|consumer| Action::Crash { consumer }),
        1 => (0usize..4, 5u64..=30, 200u64..=600)
            .prop_map(|(consumer, per_msg_ms, ms)| Action::SlowConsumer { consumer, per_msg_ms, ms }),
    ]
}

/// The scenarios: proptest draws and shrinks them.
pub fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..=2,
        proptest::collection::vec(broker_spec(), 1..=3),
        any::<bool>(),
        0usize..STRATEGIES.len(),
        (1usize..=3, prop_oneof![3 => Just(false), 1 => Just(true)]),
        proptest::collection::vec((100u64..=1500, action()), 1..=4),
    )
        .prop_map(
            |(namesrvs, brokers, fault_tolerance, strategy, (consumers, orderly), steps)| {
                let mut steps: Vec<Step> = steps
                    .into_iter()
                    .map(|(at_ms, action)| Step { at_ms, action })
                    .collect();
                steps.sort_by_key(|s| s.at_ms);
                Scenario {
                    namesrvs,
                    brokers,
                    fault_tolerance,
                    strategy: STRATEGIES[strategy],
                    consumers,
                    orderly,
                    steps,
                }
            },
        )
}

fn tree(seed: u64) -> impl ValueTree<Value = Scenario> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    scenario()
        .new_tree(&mut runner)
        .expect("the scenario strategy never rejects")
}

/// Shrink the scenario of `seed` while `fails` says it still fails: proptest's value tree
/// simplifies it (fewer and shorter steps, fewer brokers and consumers) and backs off where a
/// simplification passes, for at most `budget` runs. Returns the simplest failing scenario
/// found and the runs it took.
pub fn shrink(
    seed: u64,
    budget: usize,
    mut fails: impl FnMut(&Scenario) -> bool,
) -> (Scenario, usize) {
    let mut t = tree(seed);
    let mut best = t.current();
    let mut runs = 0;
    let mut last_failed = true;
    while runs < budget {
        let moved = if last_failed {
            t.simplify()
        } else {
            t.complicate()
        };
        if !moved {
            break;
        }
        let candidate = t.current();
        runs += 1;
        last_failed = fails(&candidate);
        if last_failed {
            best = candidate;
        }
    }
    (best, runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_picks_one_scenario() {
        assert_eq!(Scenario::from_seed(7), Scenario::from_seed(7));
        let distinct: std::collections::BTreeSet<String> = (0..50)
            .map(|s| Scenario::from_seed(s).to_string())
            .collect();
        assert!(distinct.len() >= 45, "{}", distinct.len());
    }

    #[test]
    fn seeds_cover_the_space() {
        let all: Vec<Scenario> = (0..200).map(Scenario::from_seed).collect();
        assert!(all.iter().any(|s| s.namesrvs == 2));
        assert!(all.iter().any(|s| s.orderly));
        assert!(all.iter().any(|s| s.brokers.len() == 3));
        assert!(
            all.iter()
                .any(|s| s.brokers.iter().any(|b| b.slave.is_some()))
        );
        for kind in [
            "Kill",
            "PowerLoss",
            "Pause",
            "Cut",
            "Slow",
            "ClockStep",
            "Join",
            "Leave",
            "Crash",
            "SlowConsumer",
        ] {
            assert!(
                all.iter().any(|s| s
                    .steps
                    .iter()
                    .any(|st| format!("{:?}", st.action).starts_with(kind))),
                "{kind} never drawn"
            );
        }
    }

    #[test]
    fn shrinking_finds_a_minimal_failure() {
        // "Fails" when some step kills a broker: the minimal failing scenario is one kill,
        // on as small a cluster as the strategy allows.
        let seed = (0..1000)
            .find(|s| {
                let sc = Scenario::from_seed(*s);
                sc.steps.len() >= 3
                    && sc.brokers.len() >= 2
                    && sc
                        .steps
                        .iter()
                        .any(|st| matches!(st.action, Action::Kill { .. }))
            })
            .unwrap();
        let (min, runs) = shrink(seed, 500, |s| {
            s.steps
                .iter()
                .any(|st| matches!(st.action, Action::Kill { .. }))
        });
        assert!(runs > 0);
        assert_eq!(min.steps.len(), 1, "{min}");
        assert_eq!(min.brokers.len(), 1, "{min}");
        assert_eq!(min.consumers, 1, "{min}");
        assert!(matches!(min.steps[0].action, Action::Kill { .. }), "{min}");
    }
}
