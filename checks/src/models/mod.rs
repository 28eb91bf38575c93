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

mod broker_tables;
pub mod cluster;
pub mod durability;
pub mod intern;
pub mod rebalance;
pub mod routing;
mod suite;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stateright::{Checker, Expectation, Model, Path};

pub use suite::{ModelOptions, Mutant, checks, mutants};

use crate::{Outcome, Progress, Run, Search, Verdict};

/// A flag that tells a running model check to stop exploring: once set, the model's
/// `within_boundary` refuses every new state, so the checker's threads drain their queues and end.
/// (stateright 0.31 does not honour its own timeout in long depth-first runs.)
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Ask the check to stop.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for StopFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopFlag({})", self.is_set())
    }
}

/// A model whose exploration can be stopped by its [`StopFlag`].
pub trait Stoppable: Sized {
    /// The flag its `within_boundary` reads.
    fn stop_flag(&self) -> &StopFlag;
    /// The same model with a fresh flag (to judge a state after the run was stopped).
    fn unstopped(&self) -> Self;
}

/// Implements [`Stoppable`] for a model struct with a `stop: StopFlag` field.
macro_rules! stoppable {
    ($model:ty) => {
        impl $crate::models::Stoppable for $model {
            fn stop_flag(&self) -> &$crate::models::StopFlag {
                &self.stop
            }
            fn unstopped(&self) -> Self {
                let mut m = self.clone();
                m.stop = $crate::models::StopFlag::default();
                m
            }
        }
    };
}
pub(crate) use stoppable;

/// The models' CommitLogs are lists of messages: one "segment" holds any log they reach.
const MODEL_SEGMENT: u64 = 1 << 40;

/// One replication step of a model whose master holds `master_len` messages and slave
/// `slave_len`: the index of the master's message the slave appends next, as the broker's HA
/// decides it (`sextant_model::ha`: where the master streams from, a one-message chunk, whether
/// the slave accepts it), or `None` (caught up, or the slave is ahead of a master that lost
/// messages: while it is, neither side replicates; once the master is longer again, the model's
/// slave appends from its own end, as a real slave does when the master's record boundary
/// happens to fall there).
pub(crate) fn replication_step(master_len: usize, slave_len: usize) -> Option<usize> {
    use sextant_model::ha::{MasterLog, accept_chunk, next_chunk, transfer_start};
    let master = MasterLog {
        start: 0,
        end: master_len as u64,
        segment_size: MODEL_SEGMENT,
    };
    let from = transfer_start(slave_len as u64, master).ok()?;
    let (start, len) = next_chunk(from, master, 1)?;
    accept_chunk(
        slave_len as u64,
        slave_len == 0,
        start,
        len as u64,
        MODEL_SEGMENT,
    )
    .ok()?;
    Some(start as usize)
}

/// The slave's acknowledged offset a SYNC_MASTER counts for a put ending at `end`
/// (`sextant_model::ha::slave_in_sync`; the models' logs never reach `haMaxGapNotInSync`).
pub(crate) fn slave_acked(end: u64, connected: bool, slave_len: usize) -> Option<u64> {
    sextant_model::ha::slave_in_sync(
        end,
        connected.then_some(slave_len as u64),
        sextant_model::ha::DEFAULT_MAX_GAP_NOT_IN_SYNC,
    )
}

/// Move the clock of NameServer `tables` from `*now` by `step`, running every liveness scan
/// whose instant (a multiple of `scan`) falls in the step, unless `scans` is false (a broken
/// NameServer).
pub(crate) fn step_clock(
    tables: &mut [sextant_model::namesrv::RouteTable],
    now: &mut sextant_model::Millis,
    step: sextant_model::Millis,
    scan: sextant_model::Millis,
    scans: bool,
) {
    for at in scan_instants(*now, step, scan) {
        if scans {
            for table in tables.iter_mut() {
                table.scan_expired(at);
            }
        }
    }
    *now += step;
}

/// The liveness-scan instants (multiples of `scan`) in the clock step from `now` to `now + step`.
pub(crate) fn scan_instants(
    now: sextant_model::Millis,
    step: sextant_model::Millis,
    scan: sextant_model::Millis,
) -> impl Iterator<Item = sextant_model::Millis> {
    let first = (now / scan + 1) * scan;
    (0..)
        .map(move |k| first + k * scan)
        .take_while(move |at| *at <= now + step)
}

/// `expiry_bounded` on every NameServer: `last_seen[ns][i]` is when process `addrs[i]` last
/// registered with NameServer `ns`.
pub(crate) fn expiry_bounded_everywhere(
    tables: &[sextant_model::namesrv::RouteTable],
    last_seen: &[Vec<Option<sextant_model::Millis>>],
    addrs: impl Iterator<Item = &'static str> + Clone,
    bound: sextant_model::Millis,
    now: sextant_model::Millis,
) -> bool {
    tables.iter().zip(last_seen).all(|(table, seen)| {
        let seen: std::collections::BTreeMap<String, sextant_model::Millis> = addrs
            .clone()
            .zip(seen)
            .filter_map(|(addr, t)| t.map(|t| (addr.to_owned(), t)))
            .collect();
        sextant_model::invariants::expiry_bounded(table, &seen, bound, now).is_ok()
    })
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

/// Check `model` as `run.search` says and turn what the checker found into an [`Outcome`]: every
/// `always` and `eventually` must hold and every `sometimes` must be discovered. Each discovery's
/// trace goes into the outcome's notes.
///
/// - Exhaustive: breadth-first to the end; the traces of `sometimes` properties are the shortest.
/// - Deep: depth-first on several threads to a depth bound, stopped at the time limit; the run is
///   complete only if neither cut it short. A `sometimes` not reached by an incomplete run is
///   reported as not reached, not as unreachable.
/// - Simulate: random walks until the time limit; never complete.
pub fn run_model<M>(model: M, run: &mut Run<'_>) -> Outcome
where
    M: Model + Stoppable + Clone + Send + Sync + 'static,
    M::State: Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let builder = model.clone().checker();
    match run.search {
        Search::Exhaustive => {
            // Both cores, unless an `eventually` property is judged: stateright marks it on the
            // path that reaches a state first, and with two threads which path that is varies
            // from run to run.
            let eventually = model
                .properties()
                .iter()
                .any(|p| p.expectation == Expectation::Eventually);
            let threads = if eventually { 1 } else { 2 };
            finish(model, run, builder.threads(threads).spawn_bfs(), None, None)
        }
        Search::Deep {
            time_limit,
            max_depth,
            threads,
        } => {
            let checker = builder
                .threads(threads.max(1))
                .target_max_depth(max_depth)
                .spawn_dfs();
            finish(model, run, checker, Some(time_limit), Some(max_depth))
        }
        Search::Simulate { time_limit, seed } => {
            // Random walks never run out: stateright's own timeout ends them (it is checked between
            // walks, and the stop flag below cuts the walk in progress short).
            let checker = builder
                .threads(2)
                .timeout(time_limit)
                .spawn_simulation(seed, stateright::UniformChooser);
            finish(model, run, checker, Some(time_limit), None)
        }
    }
}

/// Drive a spawned checker to its end (or time limit) and judge what it found.
fn finish<M, C>(
    model: M,
    run: &mut Run<'_>,
    checker: C,
    time_limit: Option<Duration>,
    depth_bound: Option<usize>,
) -> Outcome
where
    M: Model + Stoppable + Clone,
    M::State: Clone + std::fmt::Debug + std::hash::Hash + Eq,
    M::Action: Clone + std::fmt::Debug + PartialEq,
    C: Checker<M>,
{
    let properties = model.properties();
    let started = Instant::now();
    let simulate = matches!(run.search, Search::Simulate { .. });
    let mut stopped = false;
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        (run.report)(Progress {
            states: checker.unique_state_count() as u64,
            depth: checker.max_depth(),
        });
        if !stopped && time_limit.is_some_and(|t| started.elapsed() >= t) {
            model.stop_flag().set();
            stopped = true;
        }
    }
    let checker = checker.join();
    let states = checker.unique_state_count() as u64;
    let depth = checker.max_depth();
    (run.report)(Progress { states, depth });
    let complete = !stopped && !simulate && depth_bound.is_none_or(|d| depth < d);
    let judge = model.unstopped();
    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let mut verdicts = Vec::new();
    for p in &properties {
        let found = checker.discovery(p.name);
        // A stopped run makes the states it was exploring look terminal: an `eventually` found
        // there is real only if the last state has no successor at all.
        let found = match (&p.expectation, found) {
            (Expectation::Eventually, Some(path)) if !complete => {
                let last = path.last_state().clone();
                let mut actions = Vec::new();
                judge.actions(&last, &mut actions);
                let terminal = actions
                    .into_iter()
                    .all(|a| judge.next_state(&last, a).is_none());
                terminal.then_some(path)
            }
            (_, found) => found,
        };
        match (&p.expectation, found) {
            (Expectation::Sometimes, Some(path)) => {
                // stateright 0.31 keeps the *last* state that satisfied a `sometimes` while it
                // goes on checking the other properties; an exhaustive run reports the shortest
                // trace instead.
                let steps = if run.search == Search::Exhaustive {
                    let condition = p.condition;
                    shortest_path(&judge, |s| condition(&judge, s))
                        .expect("the checker found a state satisfying it")
                } else {
                    describe(&judge, path)
                };
                notes.push(format!("{} discovered:", p.name));
                notes.extend(steps.into_iter().map(|s| format!("  {s}")));
                verdicts.push((p.name, Verdict::Discovered));
            }
            (Expectation::Sometimes, None) if complete => {
                failures.push(format!("{} never happens", p.name));
                verdicts.push((p.name, Verdict::NotFound));
            }
            (Expectation::Sometimes, None) => verdicts.push((p.name, Verdict::NotReached)),
            (_, Some(path)) => {
                failures.push(format!("{} violated", p.name));
                notes.push(format!("{} violated:", p.name));
                notes.extend(describe(&judge, path).into_iter().map(|s| format!("  {s}")));
                verdicts.push((p.name, Verdict::Violated));
            }
            (_, None) => verdicts.push((p.name, Verdict::Held)),
        }
    }
    if !complete {
        notes.push(format!(
            "coverage: {states} states explored to depth {depth}, not complete ({})",
            if simulate {
                "random walks"
            } else if stopped {
                "time limit reached"
            } else {
                "depth bound reached"
            }
        ));
    }
    Outcome {
        cases: states,
        result: if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        },
        notes,
        properties: verdicts,
        complete,
        depth,
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
/// Returns the result and how many states were visited. States are fingerprinted with ahash and
/// the fingerprints kept in an unhashed set, as stateright's checker does, but without paths or
/// properties.
pub fn fold_states<M: Model, A>(
    model: &M,
    init: A,
    mut f: impl FnMut(A, &M::State) -> A,
) -> (A, usize)
where
    M::State: std::hash::Hash,
{
    use std::hash::BuildHasherDefault;
    let hasher = ahash::RandomState::new();
    let mut seen: std::collections::HashSet<
        u64,
        BuildHasherDefault<nohash_hasher::NoHashHasher<u64>>,
    > = std::collections::HashSet::default();
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

/// Every property's verdict (a discovery or none) after an exhaustive check of `model`, and the
/// state count: what a reduced and an unreduced run must agree on.
#[cfg(test)]
pub(crate) fn verdicts<M>(model: M) -> (Vec<(&'static str, bool)>, usize)
where
    M: Model + Clone + Send + Sync + 'static,
    M::State: Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let checker = model.clone().checker().spawn_bfs().join();
    let found = model
        .properties()
        .iter()
        .map(|p| (p.name, checker.discovery(p.name).is_some()))
        .collect();
    (found, checker.unique_state_count())
}
