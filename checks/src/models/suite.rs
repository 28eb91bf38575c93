//! Which model checks `sextant check` runs, on which configurations: the defaults, what the
//! command-line flags change, and the larger configurations of `--deep` and `--simulate`.

use std::net::SocketAddr;
use std::sync::Arc;

use sextant_model::store::{BrokerRole, FlushDiskType};
use stateright::Model;

use super::cluster::ClusterModelCfg;
use super::durability::{DurabilityModelCfg, OffsetBug, OffsetModelCfg, StoreBug};
use super::rebalance::{LockBug, RebalanceModelCfg, StrategyKind};
use super::routing::{Broken, RoutingModelCfg};
use super::{Stoppable, run_model};
use crate::{Check, ExploreFn, Outcome, Run, Search};

/// Configuration choices for the models; `None` keeps each model's own value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// Broker groups (rebalance and cluster models).
    pub brokers: Option<u8>,
    /// Queues per broker.
    pub queues: Option<u8>,
    /// Consumers running at the start (rebalance and cluster models).
    pub consumers: Option<u8>,
    /// Consumers that join later (rebalance model).
    pub joiners: Option<u8>,
    /// Crashes, leaves or machine faults allowed in a run.
    pub crashes: Option<u8>,
    /// Check only this allocation strategy.
    pub strategy: Option<StrategyKind>,
    /// Check only the orderly variants (broker locks) of the consumer models.
    pub orderly: bool,
    /// NameServers (routing model: brokers register with each; rebalance model: 2 gives the
    /// split-view variant, 1 leaves it out).
    pub namesrvs: Option<u8>,
    /// Whether broker groups have a slave.
    pub slave: Option<bool>,
    /// Check only this flush mode.
    pub flush: Option<FlushDiskType>,
    /// Check only this master role.
    pub replication: Option<BrokerRole>,
    /// Messages produced (durability, offset and cluster models).
    pub messages: Option<u8>,
    /// Sends the producer makes (routing model).
    pub sends: Option<u8>,
    /// Check only with (or only without) latency fault tolerance.
    pub fault_tolerance: Option<bool>,
    /// Whether a crashed broker may restart (routing model).
    pub restart: Option<bool>,
}

impl ModelOptions {
    fn routing(&self, mut cfg: RoutingModelCfg) -> RoutingModelCfg {
        set(&mut cfg.slave, self.slave);
        set(&mut cfg.queues, self.queues.map(u32::from));
        set(&mut cfg.sends, self.sends);
        set(&mut cfg.crashes, self.crashes);
        set(&mut cfg.namesrvs, self.namesrvs);
        set(&mut cfg.restart, self.restart);
        cfg
    }

    fn rebalance(&self, mut cfg: RebalanceModelCfg) -> RebalanceModelCfg {
        set(&mut cfg.brokers, self.brokers);
        set(&mut cfg.queues_per_broker, self.queues);
        set(&mut cfg.initial_consumers, self.consumers);
        set(&mut cfg.joiners, self.joiners);
        set(&mut cfg.faults, self.crashes);
        cfg
    }

    fn durability(&self, mut cfg: DurabilityModelCfg) -> DurabilityModelCfg {
        set(&mut cfg.slave, self.slave);
        set(&mut cfg.messages, self.messages);
        set(&mut cfg.crashes, self.crashes);
        cfg
    }

    fn offsets(&self, mut cfg: OffsetModelCfg) -> OffsetModelCfg {
        set(&mut cfg.messages, self.messages);
        cfg
    }

    fn cluster(&self, mut cfg: ClusterModelCfg) -> ClusterModelCfg {
        set(&mut cfg.namesrvs, self.namesrvs);
        set(&mut cfg.slave, self.slave);
        set(&mut cfg.queues, self.queues);
        set(&mut cfg.consumers, self.consumers);
        set(&mut cfg.messages, self.messages);
        set(&mut cfg.crashes, self.crashes);
        set(&mut cfg.flush, self.flush);
        set(&mut cfg.role, self.replication);
        set(&mut cfg.fault_tolerance, self.fault_tolerance);
        if let Some(s) = self.strategy {
            cfg.strategy = s;
        }
        cfg
    }

    /// The strategies to check: the one chosen, or every working one.
    fn strategies(&self) -> Vec<StrategyKind> {
        match self.strategy {
            Some(s) => vec![s],
            None => StrategyKind::ALL
                .into_iter()
                .filter(|s| *s != StrategyKind::BrokenOffByOne)
                .collect(),
        }
    }

    /// The (flush, role) pairs to check of `pairs`, narrowed by the options.
    fn store_modes(
        &self,
        pairs: &[(FlushDiskType, BrokerRole)],
    ) -> Vec<(FlushDiskType, BrokerRole)> {
        let mut chosen: Vec<_> = pairs
            .iter()
            .copied()
            .filter(|(f, r)| {
                self.flush.is_none_or(|x| x == *f) && self.replication.is_none_or(|x| x == *r)
            })
            .collect();
        if chosen.is_empty() {
            chosen.push((
                self.flush.unwrap_or(FlushDiskType::SyncFlush),
                self.replication.unwrap_or(BrokerRole::SyncMaster),
            ));
        }
        chosen
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// A model check of `cfg`: runs `into_model()` with the run's search mode, and can serve the
/// model in stateright's Explorer.
fn model_check<C, M>(
    name: &'static str,
    invariant: &'static str,
    scope: String,
    cfg: C,
    into_model: fn(C) -> M,
    after: fn(&M, &mut Outcome),
) -> Check
where
    C: Copy + Send + Sync + 'static,
    M: Model + Stoppable + Clone + Send + Sync + 'static,
    M::State: Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let explore: ExploreFn = Arc::new(move |addr: SocketAddr| {
        if !addr.ip().is_loopback() {
            return Err(format!("the Explorer serves only on loopback, not {addr}"));
        }
        // stateright's server panics when it cannot bind: find out first.
        drop(
            std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot serve on {addr}: {e}"))?,
        );
        // `serve` blocks for the life of its server: give it a thread of its own.
        std::thread::Builder::new()
            .name(format!("explorer-{name}"))
            .spawn(move || {
                into_model(cfg).checker().serve(addr);
            })
            .map_err(|e| format!("cannot start the Explorer: {e}"))?;
        Ok(())
    });
    Check {
        name,
        invariant,
        scope,
        run: Arc::new(move |run: &mut Run<'_>| {
            let model = into_model(cfg);
            let mut outcome = run_model(model.clone(), run);
            after(&model, &mut outcome);
            outcome
        }),
        explore: Some(explore),
    }
}

fn nothing<M>(_: &M, _: &mut Outcome) {}

/// The most states after which the routing checks measure the longest dead-broker window.
const WINDOW_FOLD_STATES: u64 = 2_000_000;

fn dead_broker_window(model: &super::routing::RoutingModel, outcome: &mut Outcome) {
    // The fold visits every reachable state: only meaningful (and affordable) after an
    // exhaustive run.
    if !outcome.complete {
        return;
    }
    // A second pass over every state, on one core: worth it only on the smaller configurations.
    if outcome.cases > WINDOW_FOLD_STATES {
        outcome.notes.push(format!(
            "longest dead_broker_send_window: not measured ({} states; it takes a second pass, done up to {WINDOW_FOLD_STATES})",
            outcome.cases
        ));
        return;
    }
    if let (Some(longest), _) = model.longest_dead_broker_window() {
        outcome.notes.push(format!(
            "longest dead_broker_send_window: the producer still sent to a broker silent for {} s",
            longest / 1000
        ));
    }
}

const ROUTING_PROPS: &str = "route_integrity, expiry_bounded, no_send_to_expired_broker, slave_read_only, dead_broker_send_window";
const REBALANCE_PROPS: &str = "queue_owned_once, eventually_balanced, transient_double_owner";

/// The model checks for `search`, configured by `options`.
pub fn checks(options: &ModelOptions, search: Search) -> Vec<Check> {
    match search {
        Search::Exhaustive => exhaustive(options),
        Search::Deep { .. } => deep(options),
        Search::Simulate { .. } => vec![cluster_check(options.cluster(ClusterModelCfg::default()))],
    }
}

fn cluster_check(cfg: ClusterModelCfg) -> Check {
    model_check(
        "cluster_model",
        "route_integrity, expiry_bounded, no_send_to_expired_broker, slave_read_only, acked_not_lost, offset_not_past_unconsumed, queue_owned_once",
        format!("whole cluster, unsplit: {}", cfg.summary()),
        cfg,
        ClusterModelCfg::into_model,
        nothing,
    )
}

fn routing_checks(options: &ModelOptions, base: RoutingModelCfg, checks: &mut Vec<Check>) {
    for ft in [false, true] {
        if options.fault_tolerance.is_some_and(|x| x != ft) {
            continue;
        }
        let cfg = options.routing(RoutingModelCfg {
            fault_tolerance: ft,
            ..base
        });
        checks.push(model_check(
            if ft {
                "routing_model_fault_tolerance"
            } else {
                "routing_model"
            },
            ROUTING_PROPS,
            format!("stateright: {}", cfg.summary()),
            cfg,
            RoutingModelCfg::into_model,
            dead_broker_window,
        ));
    }
}

fn rebalance_checks(options: &ModelOptions, base: RebalanceModelCfg, checks: &mut Vec<Check>) {
    let rebalance = |name, invariant, cfg: RebalanceModelCfg| {
        model_check(
            name,
            invariant,
            format!("stateright: {}", cfg.summary()),
            cfg,
            RebalanceModelCfg::into_model,
            nothing,
        )
    };
    let strategies = options.strategies();
    if !options.orderly {
        for s in &strategies {
            let name = match s {
                StrategyKind::Averagely => "rebalance_model_averagely",
                StrategyKind::Circle => "rebalance_model_circle",
                StrategyKind::ConsistentHash => "rebalance_model_consistent_hash",
                StrategyKind::MachineRoomNearby => "rebalance_model_machine_room_nearby",
                StrategyKind::BrokenOffByOne => "rebalance_model_broken_off_by_one",
            };
            let cfg = options.rebalance(RebalanceModelCfg {
                strategy: *s,
                ..base
            });
            checks.push(rebalance(name, REBALANCE_PROPS, cfg));
        }
        if options.namesrvs.is_none_or(|n| n >= 2) {
            let cfg = options.rebalance(RebalanceModelCfg {
                strategy: strategies[0],
                split_view: true,
                ..base
            });
            checks.push(rebalance(
                "rebalance_model_split_view",
                "queue_owned_once, split_view_double_owner",
                cfg,
            ));
        }
    }
    let cfg = options.rebalance(RebalanceModelCfg {
        strategy: strategies[0],
        orderly: true,
        ..base
    });
    checks.push(rebalance(
        "rebalance_model_orderly",
        "ordered_lock_exclusive, queue_owned_once, eventually_balanced",
        cfg,
    ));
    checks.push(rebalance(
        "rebalance_model_orderly_paused",
        "ordered_lock_exclusive, queue_owned_once, eventually_balanced, paused_batch_overlap",
        RebalanceModelCfg {
            pauses: true,
            ..cfg
        },
    ));
}

fn durability_checks(options: &ModelOptions, base: DurabilityModelCfg, checks: &mut Vec<Check>) {
    let pairs = [
        (FlushDiskType::SyncFlush, BrokerRole::SyncMaster),
        (FlushDiskType::AsyncFlush, BrokerRole::SyncMaster),
        (FlushDiskType::SyncFlush, BrokerRole::AsyncMaster),
        (FlushDiskType::AsyncFlush, BrokerRole::AsyncMaster),
    ];
    let defaults = &pairs[..3];
    let modes = if options.flush.is_some() || options.replication.is_some() {
        options.store_modes(&pairs)
    } else {
        defaults.to_vec()
    };
    for (flush, role) in modes {
        let cfg = options.durability(DurabilityModelCfg {
            flush,
            role,
            ..base
        });
        let (name, invariant) = match (flush, role) {
            (FlushDiskType::SyncFlush, BrokerRole::SyncMaster) => {
                ("durability_sync", "acked_not_lost, failover_read")
            }
            (FlushDiskType::AsyncFlush, BrokerRole::SyncMaster) => (
                "durability_async_flush",
                "async_flush_loss (the loss is found), failover_read",
            ),
            (FlushDiskType::SyncFlush, _) => (
                "durability_async_master",
                "async_master_loss (the loss is found), failover_read",
            ),
            (FlushDiskType::AsyncFlush, _) => (
                "durability_async",
                "async_flush_loss (the loss is found), failover_read",
            ),
        };
        checks.push(model_check(
            name,
            invariant,
            format!("stateright: {}", cfg.summary()),
            cfg,
            DurabilityModelCfg::into_model,
            nothing,
        ));
    }
}

fn offset_checks(options: &ModelOptions, base: OffsetModelCfg, checks: &mut Vec<Check>) {
    for orderly in [false, true] {
        if options.orderly && !orderly {
            continue;
        }
        let cfg = options.offsets(OffsetModelCfg { orderly, ..base });
        let (name, invariant) = if orderly {
            (
                "offsets_orderly",
                "offset_not_past_unconsumed, offsets_monotonic, duplicate_consumption",
            )
        } else {
            (
                "offsets_concurrent",
                "offset_not_past_unconsumed, offset_moves_backward, duplicate_consumption",
            )
        };
        checks.push(model_check(
            name,
            invariant,
            format!("stateright: {}", cfg.summary()),
            cfg,
            OffsetModelCfg::into_model,
            nothing,
        ));
    }
}

fn exhaustive(options: &ModelOptions) -> Vec<Check> {
    let mut checks = Vec::new();
    routing_checks(options, RoutingModelCfg::default(), &mut checks);
    rebalance_checks(options, RebalanceModelCfg::default(), &mut checks);
    durability_checks(options, DurabilityModelCfg::default(), &mut checks);
    offset_checks(options, OffsetModelCfg::default(), &mut checks);
    checks
}

/// The larger configurations of `--deep`.
fn deep(options: &ModelOptions) -> Vec<Check> {
    let mut checks = Vec::new();
    routing_checks(options, RoutingModelCfg::deep(), &mut checks);
    rebalance_checks(options, RebalanceModelCfg::deep(), &mut checks);
    durability_checks(options, DurabilityModelCfg::deep(), &mut checks);
    offset_checks(options, OffsetModelCfg::deep(), &mut checks);
    checks.push(cluster_check(options.cluster(ClusterModelCfg::default())));
    checks
}

/// A deliberately broken variant of a model, and the properties that must catch it.
#[derive(Debug)]
pub struct Mutant {
    /// What is broken, in a few words.
    pub what: &'static str,
    /// The properties each of which must be violated.
    pub caught_by: &'static [&'static str],
    /// The model check of the broken configuration.
    pub check: Check,
}

impl Mutant {
    /// The properties of `caught_by` that `outcome` did not find violated.
    pub fn missed(&self, outcome: &Outcome) -> Vec<&'static str> {
        self.caught_by
            .iter()
            .copied()
            .filter(|p| !outcome.properties.contains(&(*p, crate::Verdict::Violated)))
            .collect()
    }
}

/// Every deliberately broken model variant `sextant check --mutants` runs (each one is also
/// asserted caught in its model's tests).
pub fn mutants() -> Vec<Mutant> {
    let routing = |what, caught_by, broken| Mutant {
        what,
        caught_by,
        check: model_check(
            "routing_model",
            ROUTING_PROPS,
            String::new(),
            RoutingModelCfg {
                broken,
                queues: 2,
                ..Default::default()
            },
            RoutingModelCfg::into_model,
            nothing,
        ),
    };
    let rebalance = |what, caught_by, cfg: RebalanceModelCfg| Mutant {
        what,
        caught_by,
        check: model_check(
            "rebalance_model",
            REBALANCE_PROPS,
            String::new(),
            cfg,
            RebalanceModelCfg::into_model,
            nothing,
        ),
    };
    let orderly = |lock_bug| RebalanceModelCfg {
        orderly: true,
        lock_bug,
        ..Default::default()
    };
    let durability = |what, bug| Mutant {
        what,
        caught_by: &["acked_not_lost"],
        check: model_check(
            "durability_sync",
            "acked_not_lost",
            String::new(),
            DurabilityModelCfg {
                bug,
                ..Default::default()
            },
            DurabilityModelCfg::into_model,
            nothing,
        ),
    };
    let offsets = |what, caught_by, orderly, bug| Mutant {
        what,
        caught_by,
        check: model_check(
            "offsets",
            "offset_not_past_unconsumed, offsets_monotonic",
            String::new(),
            OffsetModelCfg {
                orderly,
                bug,
                ..Default::default()
            },
            OffsetModelCfg::into_model,
            nothing,
        ),
    };
    vec![
        routing(
            "a NameServer that never scans for silent brokers",
            &["expiry_bounded"],
            Broken::NoExpiryScan,
        ),
        routing(
            "a producer that retries the broker that just failed",
            &["no_send_to_expired_broker"],
            Broken::RetrySameBroker,
        ),
        routing(
            "a producer that writes to any address, slaves too",
            &["slave_read_only"],
            Broken::WriteToAnyAddress,
        ),
        routing(
            "a producer that chooses from the first route it fetched",
            &["no_send_to_expired_broker"],
            Broken::StalePublishInfo,
        ),
        rebalance(
            "an allocation that gives every share one queue too many",
            &["queue_owned_once", "eventually_balanced"],
            RebalanceModelCfg::small(StrategyKind::BrokenOffByOne),
        ),
        rebalance(
            "a broker that hands a held lock to whoever asks",
            &["ordered_lock_exclusive"],
            orderly(LockBug::NoHolderCheck),
        ),
        rebalance(
            "a broker lock table configured never to expire",
            &["eventually_balanced"],
            orderly(LockBug::NoExpiry),
        ),
        rebalance(
            "a client that trusts its local lock for 90 s, past the broker's 60 s",
            &["ordered_lock_exclusive"],
            RebalanceModelCfg {
                pauses: true,
                faults: 1,
                ..orderly(LockBug::LongLocalLock)
            },
        ),
        rebalance(
            "a client that, after a pause, consumes the queues it keeps without relocking them",
            &["ordered_lock_exclusive"],
            RebalanceModelCfg::orderly_paused_small(LockBug::StaleKeep),
        ),
        durability(
            "a store that acknowledges before the flush",
            StoreBug::AckBeforeFlush,
        ),
        durability(
            "a store that acknowledges before the slave has it",
            StoreBug::AckBeforeReplication,
        ),
        offsets(
            "a consumer that commits past what it has in flight",
            &["offset_not_past_unconsumed"],
            false,
            OffsetBug::CommitPulled,
        ),
        offsets(
            "an orderly consumer that commits a queue it dropped",
            &["offsets_monotonic"],
            true,
            OffsetBug::KeepsLostQueue,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutant_is_caught_by_what_it_names() {
        for m in mutants() {
            let outcome = (m.check.run)(&mut Run::quiet(&mut |_| {}));
            assert!(outcome.complete, "{}", m.what);
            assert_eq!(
                m.missed(&outcome),
                Vec::<&str>::new(),
                "{}: {:?}",
                m.what,
                outcome.properties
            );
        }
    }

    #[test]
    fn a_working_model_is_no_mutant() {
        // The same check on the unbroken configuration misses every property: `missed` can
        // tell caught from not.
        let m = &mutants()[1];
        let clean = model_check(
            "routing_model",
            ROUTING_PROPS,
            String::new(),
            RoutingModelCfg {
                queues: 2,
                ..Default::default()
            },
            RoutingModelCfg::into_model,
            nothing,
        );
        let outcome = (clean.run)(&mut Run::quiet(&mut |_| {}));
        assert_eq!(m.missed(&outcome), m.caught_by);
    }
}
