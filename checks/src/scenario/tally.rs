//! Many runs: play seeds a few at a time ([`play`]) and add their verdicts up ([`Tally`]) for
//! the table `sextant check` prints and the tests assert on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Scenario;
use super::run::{Broken, Outcome, RunError, run};
use crate::trace::INVARIANTS;

/// What the end-state comparison is called in the tally.
pub const END_STATE: &str = "end state = model";

/// One check's sum over the runs.
#[derive(Clone, Debug, Default)]
pub struct Count {
    /// Evaluations.
    pub judged: u64,
    /// Failed evaluations.
    pub violations: u64,
    /// The first seed that failed it.
    pub first_seed: Option<u64>,
}

/// The sum of many runs.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Scenarios played.
    pub scenarios: u64,
    /// Faults injected.
    pub faults: u64,
    /// Messages the producers tried.
    pub sent: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Per invariant (and [`END_STATE`]).
    pub checks: BTreeMap<&'static str, Count>,
    /// The longest dead-broker window (ms).
    pub dead_broker_window_ms: u64,
    /// Times a queue had two owners.
    pub double_owners: u64,
    /// The longest double ownership (ms).
    pub double_owner_ms: u64,
    /// Duplicate deliveries.
    pub duplicates: u64,
    /// Acknowledged messages a power loss under ASYNC_FLUSH took.
    pub lost_excused: u64,
    /// Messages acknowledged into a lost tail's offsets.
    pub refilled_after_loss: u64,
    /// Orderly deliveries overlapping another consumer's after a broker restart.
    pub orderly_overlap_after_restart: u64,
    /// The longest settle after the last step (ms).
    pub settle_ms: u64,
    /// Seeds whose run failed, with what failed first.
    pub failed: Vec<(u64, String)>,
    /// Seeds whose cluster would not start.
    pub errors: Vec<(u64, String)>,
}

impl Tally {
    /// Add one run of `seed`.
    pub fn add(&mut self, seed: u64, o: &Outcome) {
        self.scenarios += 1;
        self.faults += o.faults as u64;
        self.sent += o.sent;
        let m = &o.report.measured;
        self.acked += m.acked;
        for v in &o.report.verdicts {
            let c = self.checks.entry(v.name).or_default();
            c.judged += v.judged;
            c.violations += v.violations;
            if v.violations > 0 {
                c.first_seed.get_or_insert(seed);
            }
        }
        let c = self.checks.entry(END_STATE).or_default();
        c.judged += o.end_state_judged;
        c.violations += o.end_state.len() as u64;
        if !o.end_state.is_empty() {
            c.first_seed.get_or_insert(seed);
        }
        self.dead_broker_window_ms = self.dead_broker_window_ms.max(m.dead_broker_window_ms);
        self.double_owners += m.double_owners;
        self.double_owner_ms = self.double_owner_ms.max(m.double_owner_ms);
        self.duplicates += m.duplicates;
        self.lost_excused += m.lost_excused;
        self.refilled_after_loss += m.refilled_after_loss;
        self.orderly_overlap_after_restart += m.orderly_overlap_after_restart;
        self.settle_ms = self.settle_ms.max(o.settle_ms);
        if let Some(what) = o.first_failure() {
            self.failed.push((seed, what));
        }
    }

    /// Whether every run held everything (and every run started).
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.errors.is_empty()
    }

    /// The implementation's verdict on `name` (an invariant or [`END_STATE`]).
    pub fn verdict(&self, name: &str) -> String {
        match self.checks.get(name) {
            None => "not judged".into(),
            Some(c) if c.judged == 0 => "not judged".into(),
            Some(c) => match c.first_seed {
                None => format!(
                    "held: {} scenarios, {} faults, {} checks",
                    self.scenarios, self.faults, c.judged
                ),
                Some(seed) => format!("VIOLATED {} of {}, seed {seed}", c.violations, c.judged),
            },
        }
    }

    /// The names the table lists: the trace invariants, then the end state.
    pub fn names() -> impl Iterator<Item = &'static str> {
        INVARIANTS.into_iter().chain([END_STATE])
    }

    /// One progress line.
    pub fn progress(&self) -> String {
        format!(
            "{} scenarios, {} faults, {} messages, {} violations",
            self.scenarios,
            self.faults,
            self.acked,
            self.failed.len()
        )
    }

    /// The measured windows, one line.
    pub fn measured(&self) -> String {
        format!(
            "dead-broker window ≤ {} ms; double owners {} (longest {} ms); duplicates {}; \
             lost under ASYNC_FLUSH power loss {} (acknowledged into a lost tail's offsets {}); \
             orderly deliveries overlapping after a broker restart {}; settle ≤ {} ms",
            self.dead_broker_window_ms,
            self.double_owners,
            self.double_owner_ms,
            self.duplicates,
            self.lost_excused,
            self.refilled_after_loss,
            self.orderly_overlap_after_restart,
            self.settle_ms
        )
    }
}

/// How long one run may take before it counts as hung (a run takes a few seconds, and at
/// most [`super::run::SETTLE`] twice more to settle).
pub const RUN_LIMIT: Duration = Duration::from_secs(90);

/// How many scenarios run at once (each is a small cluster, mostly waiting on timers).
pub const CONCURRENCY: usize = 4;

/// Play seeds from `seeds` [`CONCURRENCY`] at a time until it ends or `until` passes; `each`
/// sees every outcome (for progress and for keeping failing traces).
pub async fn play(
    seeds: impl Iterator<Item = u64>,
    until: Option<Instant>,
    broken: Broken,
    mut each: impl FnMut(u64, &Result<Outcome, RunError>, &Tally),
) -> Tally {
    let mut tally = Tally::default();
    let mut seeds = seeds.peekable();
    while seeds.peek().is_some() {
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let batch: Vec<u64> = seeds.by_ref().take(CONCURRENCY).collect();
        let runs = batch.iter().map(|seed| {
            let s = Scenario::from_seed(*seed);
            async move {
                let r = match tokio::time::timeout(RUN_LIMIT, run(&s, broken)).await {
                    Ok(r) => r,
                    Err(_) => Err(RunError::Hung(RUN_LIMIT)),
                };
                (*seed, r)
            }
        });
        for (seed, r) in futures_util::future::join_all(runs).await {
            match &r {
                Ok(o) => tally.add(seed, o),
                Err(e) => tally.errors.push((seed, e.to_string())),
            }
            each(seed, &r, &tally);
        }
    }
    tally
}

/// Parse a soak duration: `90s`, `10m`, `1h`, or seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, ""), |i| t.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 90s, 10m, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
