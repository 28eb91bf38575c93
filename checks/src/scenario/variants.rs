//! The deliberately broken implementations (test-only switches of the real code) and the
//! scenario each is played on, with the check that must catch it: the proof that the
//! conformance runs have teeth.

use super::run::Broken;
use super::{Action, BrokerSpec, Scenario, Step};

/// A broken implementation and where it must be caught.
#[derive(Clone, Debug)]
pub struct Variant {
    /// What is broken.
    pub what: &'static str,
    /// The switches.
    pub broken: Broken,
    /// The scenario that exposes it (it holds with the real implementation).
    pub scenario: Scenario,
    /// The invariants that must each catch it.
    pub caught_by: &'static [&'static str],
}

fn step(at_ms: u64, action: Action) -> Step {
    Step { at_ms, action }
}

fn brokers(n: usize) -> Vec<BrokerSpec> {
    vec![
        BrokerSpec {
            queues: 4,
            sync_flush: true,
            slave: None,
        };
        n
    ]
}

fn base(steps: Vec<Step>) -> Scenario {
    Scenario {
        namesrvs: 1,
        brokers: brokers(2),
        fault_tolerance: false,
        strategy: "averagely",
        consumers: 2,
        orderly: false,
        steps,
    }
}

/// Every broken variant.
pub fn all() -> Vec<Variant> {
    vec![
        Variant {
            what: "a producer that retries the broker that just failed",
            broken: Broken {
                retry_same_broker: true,
                ..Default::default()
            },
            // Killed, not paused: refused connections fail at once and leave the send time
            // to retry (a paused broker's timeouts spend it).
            scenario: base(vec![step(
                300,
                Action::Kill {
                    broker: 0,
                    down_ms: 700,
                },
            )]),
            caught_by: &["no_send_to_expired_broker"],
        },
        Variant {
            what: "a consumer that keeps pulling a queue it dropped",
            broken: Broken {
                keep_pulling_dropped: true,
                ..Default::default()
            },
            scenario: Scenario {
                consumers: 1,
                ..base(vec![step(300, Action::Join), step(600, Action::Join)])
            },
            caught_by: &["queue_owned_once"],
        },
        Variant {
            what: "a broker that acknowledges before the flush",
            broken: Broken {
                ack_before_flush: true,
                ..Default::default()
            },
            scenario: Scenario {
                brokers: brokers(1),
                // The consumer joins after the restart, so what the power loss took was
                // acknowledged and not yet pulled.
                consumers: 0,
                ..base(vec![
                    step(
                        700,
                        Action::PowerLoss {
                            broker: 0,
                            down_ms: 200,
                        },
                    ),
                    step(1_100, Action::Join),
                ])
            },
            // At once from what the store had when it answered, and for good after the power loss.
            caught_by: &["ack_after_durable", "acked_not_lost"],
        },
        Variant {
            what: "a rebalance on an unsorted member list",
            broken: Broken {
                unsorted_rebalance: true,
                ..Default::default()
            },
            scenario: Scenario {
                consumers: 3,
                ..base(vec![step(300, Action::Join)])
            },
            caught_by: &["queue_owned_once"],
        },
    ]
}
