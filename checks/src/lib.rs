//! # sextant-checks — the checks that tie Sextant together
//!
//! A [`Check`] is one named verification of one invariant of `shared/docs/design.md` §3; it runs
//! to completion and says how many cases it examined and whether the invariant held, with a
//! counterexample when it did not. `sextant check` runs [`all`]; the tests run the same list.
//!
//! ## Modules
//! - [`core`] — bounded exhaustive checks of the model core: allocation, selection and the
//!   NameServer route table over every small configuration up to a size.
//! - [`models`] — stateright models of the cluster, split by concern: the rebalance model so far;
//!   the routing and durability models, and the checks of traces recorded from the running
//!   implementation, join this list in later work.

pub mod core;
pub mod models;

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
    /// A `sometimes` property was never reached.
    NotFound,
}

impl Verdict {
    /// Whether this verdict is what the check wants (held or discovered).
    pub fn is_ok(self) -> bool {
        matches!(self, Verdict::Held | Verdict::Discovered)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Held => "held",
            Verdict::Violated => "VIOLATED",
            Verdict::Discovered => "discovered",
            Verdict::NotFound => "NOT FOUND",
        })
    }
}

/// One named check of one invariant.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    /// The check's name, as `sextant check --only` takes it.
    pub name: &'static str,
    /// The invariant of design.md §3 (or model property) it verifies.
    pub invariant: &'static str,
    /// One line on what is covered.
    pub scope: &'static str,
    /// Runs the check; the callback is called once per case examined.
    pub run: fn(&mut dyn FnMut()) -> Outcome,
}

/// Every check, in the order `sextant check` runs them.
pub fn all() -> Vec<Check> {
    let mut checks = core::checks();
    checks.extend(models::checks());
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
        }
    }
}
