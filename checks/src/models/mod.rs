//! The stateright models of the cluster, split by concern (design.md §3). Each model is a config
//! struct with `into_model()`, as stateright's own examples are, and calls `sextant-model` for
//! every decision it contains.
//!
//! They live here rather than in `sextant-model` because stateright brings an HTTP server (its
//! Explorer) and threads, and the model crate stays free of I/O.
//!
//! - [`rebalance`] — consumers of one group, the broker's member list, joins, leaves, crashes.
//! - [`routing`] — a NameServer with real expiry, master/slave brokers, a producer, a crash.
//! - [`durability`] — flush and replication modes against machine faults; consumer offsets
//!   committed across a rebalance.

pub mod durability;
pub mod rebalance;
pub mod routing;

use std::collections::{HashMap, VecDeque};

use durability::{DurabilityModelCfg, OffsetModelCfg};
use rebalance::{RebalanceModelCfg, StrategyKind};
use routing::RoutingModelCfg;
use sextant_model::store::{BrokerRole, FlushDiskType};
use stateright::{Checker, Model, Path};

use crate::{Check, Outcome, Verdict};

/// The model checks `sextant check` runs, each on its default configuration.
pub fn checks() -> Vec<Check> {
    fn rebalance(cfg: RebalanceModelCfg, tick: &mut dyn FnMut()) -> Outcome {
        run_model(cfg.into_model(), tick)
    }
    fn with_strategy(strategy: StrategyKind) -> RebalanceModelCfg {
        RebalanceModelCfg {
            strategy,
            ..Default::default()
        }
    }
    fn routing(fault_tolerance: bool, tick: &mut dyn FnMut()) -> Outcome {
        let model = RoutingModelCfg {
            fault_tolerance,
            ..Default::default()
        }
        .into_model();
        let mut outcome = run_model(model.clone(), tick);
        if let (Some(longest), _) = model.longest_dead_broker_window() {
            outcome.notes.push(format!(
                "longest dead_broker_send_window: the producer still sent to a broker silent for {} s",
                longest / 1000
            ));
        }
        outcome
    }
    fn store(flush: FlushDiskType, role: BrokerRole, tick: &mut dyn FnMut()) -> Outcome {
        let cfg = DurabilityModelCfg {
            flush,
            role,
            ..Default::default()
        };
        run_model(cfg.into_model(), tick)
    }
    fn offsets(orderly: bool, tick: &mut dyn FnMut()) -> Outcome {
        let cfg = OffsetModelCfg {
            orderly,
            ..Default::default()
        };
        run_model(cfg.into_model(), tick)
    }
    vec![
        Check {
            name: "routing_model",
            invariant: "route_integrity, expiry_bounded, no_send_to_expired_broker, slave_read_only, dead_broker_send_window",
            scope: "stateright BFS: 1 NameServer (120 s expiry, 10 s scans), 2 masters + 1 slave, 1 crash, 2 sends, 40 s steps to 200 s",
            run: |t| routing(false, t),
        },
        Check {
            name: "routing_model_fault_tolerance",
            invariant: "route_integrity, expiry_bounded, no_send_to_expired_broker, slave_read_only, dead_broker_send_window",
            scope: "as routing_model, with latency fault tolerance on",
            run: |t| routing(true, t),
        },
        Check {
            name: "rebalance_model_averagely",
            invariant: "queue_owned_once, eventually_balanced, transient_double_owner",
            scope: "stateright BFS: 3+1 consumers, 6 queues on 2 brokers, 2 leaves or crashes, averagely",
            run: |t| rebalance(with_strategy(StrategyKind::Averagely), t),
        },
        Check {
            name: "rebalance_model_split_view",
            invariant: "queue_owned_once, split_view_double_owner",
            scope: "as rebalance_model_averagely, consumers read routes from 2 NameServers, one of which expired a broker",
            run: |t| {
                let cfg = RebalanceModelCfg {
                    split_view: true,
                    ..Default::default()
                };
                rebalance(cfg, t)
            },
        },
        Check {
            name: "rebalance_model_orderly",
            invariant: "ordered_lock_exclusive, queue_owned_once, eventually_balanced",
            scope: "as rebalance_model_averagely, orderly: queues taken only under a broker lock that expires when its holder is gone",
            run: |t| {
                let cfg = RebalanceModelCfg {
                    orderly: true,
                    ..Default::default()
                };
                rebalance(cfg, t)
            },
        },
        Check {
            name: "rebalance_model_circle",
            invariant: "queue_owned_once, eventually_balanced, transient_double_owner",
            scope: "as rebalance_model_averagely, by circle",
            run: |t| rebalance(with_strategy(StrategyKind::Circle), t),
        },
        Check {
            name: "rebalance_model_consistent_hash",
            invariant: "queue_owned_once, eventually_balanced, transient_double_owner",
            scope: "as rebalance_model_averagely, consistent hash",
            run: |t| rebalance(with_strategy(StrategyKind::ConsistentHash), t),
        },
        Check {
            name: "rebalance_model_machine_room_nearby",
            invariant: "queue_owned_once, eventually_balanced, transient_double_owner",
            scope: "as rebalance_model_averagely, machine room nearby (averagely inside rooms)",
            run: |t| rebalance(with_strategy(StrategyKind::MachineRoomNearby), t),
        },
        Check {
            name: "durability_sync",
            invariant: "acked_not_lost, failover_read",
            scope: "stateright BFS: SYNC_FLUSH + SYNC_MASTER, master + slave, 3 messages, 1 power or disk loss",
            run: |t| store(FlushDiskType::SyncFlush, BrokerRole::SyncMaster, t),
        },
        Check {
            name: "durability_async_flush",
            invariant: "async_flush_loss (the loss is found), failover_read",
            scope: "as durability_sync, ASYNC_FLUSH + SYNC_MASTER",
            run: |t| store(FlushDiskType::AsyncFlush, BrokerRole::SyncMaster, t),
        },
        Check {
            name: "durability_async_master",
            invariant: "async_master_loss (the loss is found), failover_read",
            scope: "as durability_sync, SYNC_FLUSH + ASYNC_MASTER",
            run: |t| store(FlushDiskType::SyncFlush, BrokerRole::AsyncMaster, t),
        },
        Check {
            name: "offsets_concurrent",
            invariant: "offset_not_past_unconsumed, offset_moves_backward, duplicate_consumption",
            scope: "stateright BFS: 1 queue of 3 messages, C2 owns it, C1 joins, one leaves or crashes; concurrent consumption",
            run: |t| offsets(false, t),
        },
        Check {
            name: "offsets_orderly",
            invariant: "offset_not_past_unconsumed, offsets_monotonic, duplicate_consumption",
            scope: "as offsets_concurrent, orderly: in order, under the broker lock",
            run: |t| offsets(true, t),
        },
    ]
}

/// A discovery path as readable steps, one per action (`Model::format_step`).
pub fn describe<M: Model>(model: &M, path: Path<M::State, M::Action>) -> Vec<String>
where
    M::State: std::fmt::Debug,
    M::Action: std::fmt::Debug,
{
    path.into_vec()
        .into_iter()
        .filter_map(|(state, action)| Some(step_text(model, &state, action?)))
        .collect()
}

/// One step as `Model::format_step` describes it.
fn step_text<M: Model>(model: &M, state: &M::State, action: M::Action) -> String
where
    M::State: std::fmt::Debug,
{
    model
        .format_step(state, action)
        .unwrap_or_else(|| "(a step the model does not describe)".into())
}

/// Check `model` exhaustively (breadth-first, so traces are shortest) and turn what the checker
/// found into an [`Outcome`]: every `always` and `eventually` must hold and every `sometimes` must
/// be discovered. Each discovery's trace goes into the outcome's notes.
pub fn run_model<M>(model: M, tick: &mut dyn FnMut()) -> Outcome
where
    M: Model + Clone + Send + Sync + 'static,
    M::State: Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    use stateright::Expectation;
    let properties = model.properties();
    let checker = model.clone().checker().spawn_bfs();
    let mut reported = 0;
    while !checker.is_done() {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let n = checker.unique_state_count();
        for _ in reported..n {
            tick();
        }
        reported = n;
    }
    let checker = checker.join();
    for _ in reported..checker.unique_state_count() {
        tick();
    }
    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let mut verdicts = Vec::new();
    for p in &properties {
        let found = checker.discovery(p.name);
        match (&p.expectation, found) {
            (Expectation::Sometimes, Some(_)) => {
                // stateright 0.31 keeps the *last* state that satisfied a `sometimes` while it
                // goes on checking the other properties; report the shortest trace instead.
                let condition = p.condition;
                let path = shortest_path(&model, |s| condition(&model, s))
                    .expect("the checker found a state satisfying it");
                notes.push(format!("{} discovered:", p.name));
                notes.extend(path.into_iter().map(|s| format!("  {s}")));
                verdicts.push((p.name, Verdict::Discovered));
            }
            (Expectation::Sometimes, None) => {
                failures.push(format!("{} never happens", p.name));
                verdicts.push((p.name, Verdict::NotFound));
            }
            (_, Some(path)) => {
                failures.push(format!("{} violated", p.name));
                notes.push(format!("{} violated:", p.name));
                notes.extend(describe(&model, path).into_iter().map(|s| format!("  {s}")));
                verdicts.push((p.name, Verdict::Violated));
            }
            (_, None) => verdicts.push((p.name, Verdict::Held)),
        }
    }
    Outcome {
        cases: checker.unique_state_count() as u64,
        result: if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        },
        notes,
        properties: verdicts,
    }
}

/// Each visited state's predecessor and the action taken from it.
type Parents<M> = HashMap<<M as Model>::State, Option<(<M as Model>::State, <M as Model>::Action)>>;

/// The shortest sequence of steps (described by `Model::format_step`) from an initial state to a
/// state satisfying `goal`, by an exact breadth-first search. Meant for the small models whose
/// discoveries are reported; it keeps every visited state in memory.
pub fn shortest_path<M: Model>(model: &M, goal: impl Fn(&M::State) -> bool) -> Option<Vec<String>>
where
    M::State: Clone + std::fmt::Debug + std::hash::Hash + Eq,
    M::Action: Clone,
{
    let mut parent: Parents<M> = HashMap::new();
    let mut queue = VecDeque::new();
    for s in model.init_states() {
        if parent.insert(s.clone(), None).is_none() {
            queue.push_back(s);
        }
    }
    let mut actions = Vec::new();
    while let Some(state) = queue.pop_front() {
        if goal(&state) {
            let mut steps = Vec::new();
            let mut at = state;
            while let Some(Some((prev, action))) = parent.get(&at).cloned() {
                steps.push(step_text(model, &prev, action));
                at = prev;
            }
            steps.reverse();
            return Some(steps);
        }
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            if let Some(next) = model.next_state(&state, action.clone())
                && model.within_boundary(&next)
                && !parent.contains_key(&next)
            {
                parent.insert(next.clone(), Some((state.clone(), action)));
                queue.push_back(next);
            }
        }
    }
    None
}

/// Fold `f` over every state reachable in `model` (breadth-first, each state once by its hash).
/// Returns the result and how many states were visited.
pub fn fold_states<M: Model, A>(
    model: &M,
    init: A,
    mut f: impl FnMut(A, &M::State) -> A,
) -> (A, usize)
where
    M::State: std::hash::Hash,
{
    use std::hash::{BuildHasher, RandomState};
    let hasher = RandomState::new();
    let mut seen = std::collections::HashSet::new();
    let mut queue: VecDeque<M::State> = VecDeque::new();
    for s in model.init_states() {
        if seen.insert(hasher.hash_one(&s)) {
            queue.push_back(s);
        }
    }
    let mut acc = init;
    let mut actions = Vec::new();
    while let Some(state) = queue.pop_front() {
        acc = f(acc, &state);
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            if let Some(next) = model.next_state(&state, action)
                && model.within_boundary(&next)
                && seen.insert(hasher.hash_one(&next))
            {
                queue.push_back(next);
            }
        }
    }
    (acc, seen.len())
}
