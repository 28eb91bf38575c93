//! # sextant-checks — the checks that tie Sextant together
//!
//! A [`Check`] is one named verification of one invariant of `shared/docs/design.md` §3; it runs
//! to completion and says how many cases it examined and whether the invariant held, with a
//! counterexample when it did not. `sextant check` runs [`all`]; the tests run the same list.
//!
//! ## Modules
//! - [`core`] — bounded exhaustive checks of the model core: allocation, selection and the
//!   NameServer route table over every small configuration up to a size.
//! - [`models`] — stateright models of the cluster, split by concern (routing, rebalance,
//!   durability, consumer offsets), and the whole-cluster model for random walks.
//! - [`audit`] — a live cluster's snapshot judged for split views, queues with no owner or two,
//!   offsets out of bounds and slaves behind (`sextant audit`).
//! - [`trace`] — the trace checker: a recorded run of the real servers and clients judged by
//!   the same invariants (`sextant check --trace FILE...`).
//! - [`scenario`] — model-based tests with faults: generated scenarios played on a real
//!   loopback cluster (fault proxies, kills, power loss, pauses), judged by the trace checker
//!   and against the model's end state; seeds to replay, shrinking to a minimal failure.

pub mod audit;
pub mod core;
pub mod models;
pub mod scenario;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

pub use models::ModelOptions;

/// How a check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How many cases (configurations, paths or states) were examined.
    pub cases: u64,
    /// `Err` holds the first counterexample found.
    pub result: Result<(), String>,
    /// Traces worth reading: discoveries of `sometimes` properties and violations, step by step.
    pub notes: Vec<String>,
    /// Per property of a model: its name and what the checker concluded.
    pub properties: Vec<(&'static str, Verdict)>,
    /// Whether every case in scope was examined (a time limit, a depth bound or random walks
    /// leave a run incomplete: a property that held then held only on what was explored).
    pub complete: bool,
    /// The deepest path explored (0 where depth means nothing).
    pub depth: usize,
}

/// What a model checker concluded about one property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An `always` or `eventually` property held in every state explored.
    Held,
    /// An `always` or `eventually` property failed; a counterexample is in the notes.
    Violated,
    /// A `sometimes` property was reached; the trace is in the notes.
    Discovered,
    /// A `sometimes` property was never reached in a complete run.
    NotFound,
    /// A `sometimes` property was not reached by an incomplete run (no conclusion).
    NotReached,
}

impl Verdict {
    /// Whether this verdict is what the check wants (held or discovered).
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Verdict::Held | Verdict::Discovered | Verdict::NotReached
        )
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Held => "held",
            Verdict::Violated => "VIOLATED",
            Verdict::Discovered => "discovered",
            Verdict::NotFound => "NOT FOUND",
            Verdict::NotReached => "not reached",
        })
    }
}

/// How far a running check has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Cases or unique states examined so far.
    pub states: u64,
    /// The deepest path so far (0 where depth means nothing).
    pub depth: usize,
}

/// How a model check searches its state space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Breadth-first to the end: every reachable state, shortest traces.
    Exhaustive,
    /// Depth-first on several threads, up to a depth, stopped at a time limit.
    Deep {
        /// Stop exploring after this long.
        time_limit: Duration,
        /// Do not go deeper than this many steps.
        max_depth: usize,
        /// Checker threads.
        threads: usize,
    },
    /// Random walks from the initial state until a time limit.
    Simulate {
        /// Stop after this long.
        time_limit: Duration,
        /// The first walk's seed.
        seed: u64,
    },
}

/// What a check is given to run with.
pub struct Run<'a> {
    /// How to search (model checks; the core checks always enumerate everything).
    pub search: Search,
    /// Called as the check progresses.
    pub report: &'a mut dyn FnMut(Progress),
}

impl Run<'_> {
    /// An exhaustive run that reports nowhere.
    pub fn quiet(report: &mut dyn FnMut(Progress)) -> Run<'_> {
        Run {
            search: Search::Exhaustive,
            report,
        }
    }
}

/// The body of a check.
pub type RunFn = Arc<dyn Fn(&mut Run<'_>) -> Outcome + Send + Sync>;

/// Serves a model's state space in stateright's Explorer at an address; returns once serving.
pub type ExploreFn = Arc<dyn Fn(std::net::SocketAddr) -> Result<(), String> + Send + Sync>;

/// One named check of one invariant.
#[derive(Clone)]
pub struct Check {
    /// The check's name, as `sextant check --only` takes it.
    pub name: &'static str,
    /// The invariant of design.md §3 (or model property) it verifies.
    pub invariant: &'static str,
    /// One line on what is covered.
    pub scope: String,
    /// Runs the check.
    pub run: RunFn,
    /// For model checks: serve the model in stateright's Explorer.
    pub explore: Option<ExploreFn>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// A check of the model core: `run` enumerates cases, calling its callback once per case.
    pub fn core(
        name: &'static str,
        invariant: &'static str,
        scope: &str,
        run: fn(&mut dyn FnMut()) -> Outcome,
    ) -> Check {
        Check {
            name,
            invariant,
            scope: scope.to_owned(),
            run: Arc::new(move |r: &mut Run<'_>| {
                let mut states = 0;
                run(&mut || {
                    states += 1;
                    (r.report)(Progress { states, depth: 0 });
                })
            }),
            explore: None,
        }
    }
}

/// Every check of an exhaustive `sextant check` on the default configurations, in order.
pub fn all() -> Vec<Check> {
    checks(&ModelOptions::default(), Search::Exhaustive)
}

/// The checks for a search mode: exhaustive runs the core checks and every model on its
/// configuration; deep runs the larger configurations; simulate runs the whole-cluster model.
pub fn checks(options: &ModelOptions, search: Search) -> Vec<Check> {
    let mut checks = match search {
        Search::Exhaustive => core::checks(),
        _ => Vec::new(),
    };
    checks.extend(models::checks(options, search));
    checks
}

/// Counts cases and stops at the first counterexample.
pub(crate) struct Counter<'a> {
    cases: u64,
    tick: &'a mut dyn FnMut(),
}

impl<'a> Counter<'a> {
    pub(crate) fn new(tick: &'a mut dyn FnMut()) -> Self {
        Counter { cases: 0, tick }
    }

    /// Record one case.
    pub(crate) fn case(&mut self) {
        self.cases += 1;
        (self.tick)();
    }

    /// The outcome of a run that ended with `result`.
    pub(crate) fn finish(self, result: Result<(), String>) -> Outcome {
        Outcome {
            cases: self.cases,
            result,
            notes: Vec::new(),
            properties: Vec::new(),
            complete: true,
            depth: 0,
        }
    }
}
