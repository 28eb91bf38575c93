//! `sextant check`: run the checks of `sextant-checks`, one line per check, then one table of
//! every model property with its verdict, states, coverage and time.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use sextant_checks::models::rebalance::StrategyKind;
use sextant_checks::{Check, ModelOptions, Progress, Run, Search};
use sextant_model::store::{BrokerRole, FlushDiskType};

/// Arguments of `sextant check`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Run only the checks whose name contains this text; a check's full name runs that check
    /// alone (`rebalance_model_orderly`, not also `rebalance_model_orderly_paused`).
    #[arg(long)]
    only: Option<String>,
    /// List the checks without running them.
    #[arg(long)]
    list: bool,
    /// Run the larger configurations depth-first under a time limit (and the whole-cluster
    /// model); reports how much each run covered.
    #[arg(long, conflicts_with = "simulate")]
    deep: bool,
    /// Time limit of each model in `--deep`, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    time_limit: u64,
    /// Depth bound of `--deep`.
    #[arg(long, default_value_t = 80)]
    max_depth: usize,
    /// Checker threads of `--deep`.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Walk the unsplit whole-cluster model at random for SECS seconds.
    #[arg(long, value_name = "SECS")]
    simulate: Option<u64>,
    /// Seed of the first random walk of `--simulate`, and of the first conformance scenario.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Conformance scenarios to play on a live loopback cluster after the models (0: none).
    /// The default run plays 12; with --only, none unless asked.
    #[arg(long, value_name = "N")]
    scenarios: Option<u64>,
    /// Play only the conformance scenarios (and the broken variants), not the models; e.g.
    /// `--conformance --seed S --scenarios 1` replays seed S.
    #[arg(long, conflicts_with_all = ["deep", "simulate", "explore", "list"])]
    conformance: bool,
    /// Play random conformance scenarios for this long (`90s`, `10m`, `1h`), with a progress
    /// line, then print the table.
    #[arg(long, value_name = "DURATION", value_parser = sextant_checks::scenario::tally::parse_duration)]
    soak: Option<Duration>,

    /// Serve the chosen model (pick one with --only) in stateright's Explorer, on loopback.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:3000")]
    explore: Option<SocketAddr>,
    /// Broker groups (rebalance model).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    brokers: Option<u8>,
    /// Queues per broker.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    queues: Option<u8>,
    /// Consumers running at the start (rebalance and cluster models).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    consumers: Option<u8>,
    /// Consumers that join later (rebalance model).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    joiners: Option<u8>,
    /// Crashes, leaves or machine faults allowed in a run.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=8))]
    crashes: Option<u8>,
    /// Check only this allocation strategy.
    #[arg(long, value_parser = ["averagely", "circle", "consistent-hash", "machine-room-nearby"])]
    strategy: Option<String>,
    /// Check only the orderly variants (broker locks) of the consumer models.
    #[arg(long)]
    orderly: bool,
    /// NameServers (routing and cluster models; 1 leaves out the rebalance split-view variant).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    namesrvs: Option<u8>,
    /// Slaves per broker group (0 or 1).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    slaves: Option<u8>,
    /// Check only this flush mode.
    #[arg(long, value_parser = ["sync", "async"])]
    flush: Option<String>,
    /// Check only this replication mode.
    #[arg(long, value_parser = ["sync", "async"])]
    replication: Option<String>,
    /// Messages produced (durability, offset and cluster models).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    messages: Option<u8>,
    /// Sends the producer makes (routing model).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    sends: Option<u8>,
    /// Check only with latency fault tolerance on, or only with it off.
    #[arg(long, value_parser = ["on", "off"])]
    fault_tolerance: Option<String>,
    /// Let crashed brokers restart (routing model).
    #[arg(long)]
    restart: bool,
    /// Run every deliberately broken variant — of the models, and of the implementation on a
    /// live loopback cluster — and print which property caught each (exit 1 if one escapes).
    #[arg(long, conflicts_with_all = ["deep", "simulate", "explore", "list", "conformance", "trace", "soak", "only", "scenarios"])]
    mutants: bool,
    /// Check recorded traces (JSON lines from `--trace` or SEXTANT_TRACE) instead of the
    /// models: the invariants evaluated on what the running servers and clients did.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["only", "list", "deep", "simulate", "explore"])]
    trace: Vec<std::path::PathBuf>,
    /// With --trace: the trace ends with everything consumed (judge acked_not_lost at its end).
    #[arg(long, requires = "trace")]
    drained: bool,
}

impl Args {
    fn options(&self) -> ModelOptions {
        let sync = |v: &Option<String>| v.as_deref().map(|m| m == "sync");
        ModelOptions {
            brokers: self.brokers,
            queues: self.queues,
            consumers: self.consumers,
            joiners: self.joiners,
            crashes: self.crashes,
            strategy: self.strategy.as_deref().and_then(StrategyKind::from_name),
            orderly: self.orderly,
            namesrvs: self.namesrvs,
            slave: self.slaves.map(|n| n > 0),
            flush: sync(&self.flush).map(|s| {
                if s {
                    FlushDiskType::SyncFlush
                } else {
                    FlushDiskType::AsyncFlush
                }
            }),
            replication: sync(&self.replication).map(|s| {
                if s {
                    BrokerRole::SyncMaster
                } else {
                    BrokerRole::AsyncMaster
                }
            }),
            messages: self.messages,
            sends: self.sends,
            fault_tolerance: self.fault_tolerance.as_deref().map(|v| v == "on"),
            restart: self.restart.then_some(true),
        }
    }

    fn search(&self) -> Search {
        if let Some(secs) = self.simulate {
            Search::Simulate {
                time_limit: Duration::from_secs(secs),
                seed: self.seed,
            }
        } else if self.deep {
            Search::Deep {
                time_limit: Duration::from_secs(self.time_limit),
                max_depth: self.max_depth,
                threads: self.threads,
            }
        } else {
            Search::Exhaustive
        }
    }
}

/// One row of the final table.
struct Row {
    check: &'static str,
    property: &'static str,
    verdict: String,
    states: u64,
    coverage: &'static str,
    secs: f64,
}

/// How many scenarios the default `sextant check` plays.
const DEFAULT_SCENARIOS: u64 = 12;

/// Run `sextant check`. Returns whether every check passed.
pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<bool> {
    let scenarios = match (args.soak, args.scenarios) {
        (Some(_), n) => n.unwrap_or(u64::MAX),
        (None, Some(n)) => n,
        (None, None) if args.only.is_some() => 0,
        (None, None) => DEFAULT_SCENARIOS,
    };
    if args.mutants {
        return mutants(out);
    }
    if args.conformance || args.soak.is_some() {
        let c = conformance(args, scenarios.max(1), out)?;
        writeln!(out)?;
        combined(&[], &c, out)?;
        return Ok(c.ok());
    }
    if !args.trace.is_empty() {
        let opts = sextant_checks::trace::Options {
            drained_at_end: args.drained,
            ..Default::default()
        };
        let report = sextant_checks::trace::check_files(&args.trace, &opts)?;
        write!(out, "{report}")?;
        return Ok(report.ok());
    }
    let checks = selected(
        sextant_checks::checks(&args.options(), args.search()),
        args.only.as_deref(),
    );
    if checks.is_empty() {
        bail!(
            "no check matches {:?}",
            args.only.as_deref().unwrap_or_default()
        );
    }
    if args.list {
        for c in &checks {
            writeln!(out, "{:<36} {:<62} {}", c.name, c.invariant, c.scope)?;
        }
        return Ok(true);
    }
    if let Some(addr) = args.explore {
        let [check] = &checks[..] else {
            bail!(
                "--explore serves one model: choose one with --only (matching now: {})",
                checks.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
            );
        };
        let Some(explore) = &check.explore else {
            bail!("{} is not a model: nothing to explore", check.name);
        };
        explore(addr).map_err(anyhow::Error::msg)?;
        writeln!(
            out,
            "serving {} in stateright's Explorer on http://{addr}/ (Ctrl-C stops)",
            check.name
        )?;
        out.flush()?;
        loop {
            std::thread::park();
        }
    }
    writeln!(
        out,
        "{:<36} {:<62} {:>10} {:>9}  result",
        "check", "invariant", "cases", "time"
    )?;
    let (mut passed, mut failed) = (0, 0);
    let mut table = Vec::new();
    for c in &checks {
        let bar = ProgressBar::new_spinner().with_message(c.name);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg}: {human_pos} states, {per_sec}, {prefix}",
            )
            .expect("valid template"),
        );
        let started = Instant::now();
        let mut report = |p: Progress| {
            bar.set_position(p.states);
            if p.depth > 0 {
                bar.set_prefix(format!("depth {}", p.depth));
            }
            bar.tick();
        };
        let outcome = (c.run)(&mut Run {
            search: args.search(),
            report: &mut report,
        });
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        let verdict = match &outcome.result {
            Ok(()) => {
                passed += 1;
                "ok".to_string()
            }
            Err(e) => {
                failed += 1;
                format!("FAILED: {e}")
            }
        };
        writeln!(
            out,
            "{:<36} {:<62} {:>10} {:>8.2}s  {verdict}",
            c.name, c.invariant, outcome.cases, secs
        )?;
        for (property, verdict) in &outcome.properties {
            table.push(Row {
                check: c.name,
                property,
                verdict: verdict.to_string(),
                states: outcome.cases,
                coverage: if outcome.complete {
                    "complete"
                } else {
                    "partial"
                },
                secs,
            });
        }
        for note in &outcome.notes {
            writeln!(out, "    {note}")?;
        }
    }
    if !table.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<36} {:<28} {:<12} {:>10} {:<9} {:>9}",
            "model", "property", "verdict", "states", "coverage", "time"
        )?;
        for r in &table {
            writeln!(
                out,
                "{:<36} {:<28} {:<12} {:>10} {:<9} {:>8.2}s",
                r.check, r.property, r.verdict, r.states, r.coverage, r.secs
            )?;
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    if scenarios == 0 || args.list || args.simulate.is_some() || args.deep {
        return Ok(failed == 0);
    }
    writeln!(out)?;
    let c = conformance(args, scenarios, out)?;
    writeln!(out)?;
    combined(&table, &c, out)?;
    Ok(failed == 0 && c.ok())
}

/// What the conformance run found.
struct Conformance {
    tally: sextant_checks::scenario::tally::Tally,
    /// Each broken variant: what, and whether every invariant meant to catch it did.
    variants: Vec<(&'static str, bool)>,
    secs: f64,
}

impl Conformance {
    fn ok(&self) -> bool {
        self.tally.ok() && self.variants.iter().all(|v| v.1)
    }
}

/// Play `n` scenarios from `--seed` (or soak), on a live loopback cluster in this process.
fn conformance(args: &Args, n: u64, out: &mut impl Write) -> anyhow::Result<Conformance> {
    use sextant_checks::scenario::{run, tally};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let until = args.soak.map(|d| started + d);
    writeln!(
        out,
        "conformance: scenarios on a live loopback cluster from seed {}{}",
        args.seed,
        match args.soak {
            Some(d) => format!(", for {}s", d.as_secs()),
            None => format!(", {n} of them"),
        }
    )?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    let mut failures = Vec::new();
    let seeds = args.seed..args.seed.saturating_add(n);
    let tally = runtime.block_on(tally::play(
        seeds,
        until,
        run::Broken::default(),
        |seed, r, t| {
            bar.set_message(t.progress());
            bar.tick();
            match r {
                Ok(o) if !o.ok() => {
                    let path = std::env::temp_dir().join(format!("sextant-scenario-{seed}.jsonl"));
                    let _ = std::fs::write(&path, &o.trace);
                    failures.push(format!(
                        "seed {seed} FAILED ({}), trace in {}: {}\n{}{}",
                        o.first_failure().unwrap_or_default(),
                        path.display(),
                        o.scenario,
                        o.report,
                        o.end_state
                            .iter()
                            .map(|e| format!("  end state: {e}\n"))
                            .collect::<String>()
                    ));
                }
                Err(e) => failures.push(format!("seed {seed}: {e}")),
                Ok(_) => {}
            }
        },
    ));
    bar.finish_and_clear();
    for f in &failures {
        writeln!(out, "{f}")?;
    }
    writeln!(out, "  {}; {}", tally.progress(), tally.measured())?;
    let mut found = Vec::new();
    for (what, missed, o, _) in broken_implementations(&runtime)? {
        writeln!(
            out,
            "  broken: {what:<52} {}",
            if missed.is_empty() {
                format!("caught by {}", caught_list(&o))
            } else {
                format!("NOT CAUGHT by {}", missed.join(", "))
            }
        )?;
        found.push((what, missed.is_empty()));
    }
    Ok(Conformance {
        tally,
        variants: found,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// One broken implementation's run: what it is, the invariants meant to catch it that did not,
/// the outcome, and the seconds it took.
type BrokenRun = (
    &'static str,
    Vec<&'static str>,
    sextant_checks::scenario::run::Outcome,
    f64,
);

/// Each deliberately broken implementation played on its scenario.
fn broken_implementations(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Vec<BrokenRun>> {
    use sextant_checks::scenario::{run, variants};
    let mut out = Vec::new();
    for v in variants::all() {
        let started = Instant::now();
        let o = runtime.block_on(run::run(&v.scenario, v.broken))?;
        let missed: Vec<&'static str> = v
            .caught_by
            .iter()
            .copied()
            .filter(|by| o.report.verdict(by).is_none_or(|x| x.violations == 0))
            .collect();
        out.push((v.what, missed, o, started.elapsed().as_secs_f64()));
    }
    Ok(out)
}

/// The invariants an outcome found violated, with how many of their checks failed.
fn caught_list(o: &sextant_checks::scenario::run::Outcome) -> String {
    o.report
        .verdicts
        .iter()
        .filter(|v| v.violations > 0)
        .map(|v| format!("{} ({} of {} checks)", v.name, v.violations, v.judged))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sextant check --mutants`: every broken variant, and what caught it.
fn mutants(out: &mut impl Write) -> anyhow::Result<bool> {
    writeln!(
        out,
        "{:<WHAT$} {:<16} {:<9} caught by",
        "broken variant", "where", "time"
    )?;
    let mut escaped = 0;
    let mut total = 0;
    for m in sextant_checks::models::mutants() {
        let started = Instant::now();
        let outcome = (m.check.run)(&mut Run::quiet(&mut |_| {}));
        let missed = m.missed(&outcome);
        let violated: Vec<String> = outcome
            .properties
            .iter()
            .filter(|(_, v)| *v == sextant_checks::Verdict::Violated)
            .map(|(p, _)| p.to_string())
            .collect();
        total += 1;
        let verdict = if missed.is_empty() {
            format!("{} ({} states)", violated.join(", "), outcome.cases)
        } else {
            escaped += 1;
            format!(
                "NOT CAUGHT by {} ({} states)",
                missed.join(", "),
                outcome.cases
            )
        };
        writeln!(
            out,
            "{:<WHAT$} {:<16} {:>7.2}s  {verdict}",
            m.what,
            format!(
                "model {}",
                m.check.name.split('_').next().unwrap_or_default()
            ),
            started.elapsed().as_secs_f64()
        )?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (what, missed, o, secs) in broken_implementations(&runtime)? {
        total += 1;
        let verdict = if missed.is_empty() {
            caught_list(&o)
        } else {
            escaped += 1;
            format!("NOT CAUGHT by {}", missed.join(", "))
        };
        writeln!(
            out,
            "{what:<WHAT$} {:<16} {secs:>7.2}s  {verdict}",
            "implementation"
        )?;
    }
    writeln!(out, "{} of {total} broken variants caught", total - escaped)?;
    Ok(escaped == 0)
}

/// The width of the `--mutants` table's first column: wide enough for every variant's
/// description (a test checks).
const WHAT: usize = 82;

/// The combined table: each invariant's model verdict (from the model checks' rows) beside the
/// implementation's (from the scenarios).
fn combined(models: &[Row], c: &Conformance, out: &mut impl Write) -> anyhow::Result<()> {
    use sextant_checks::scenario::tally::Tally;
    writeln!(
        out,
        "{:<28} {:<40} implementation ({:.0}s)",
        "invariant", "model", c.secs
    )?;
    for name in Tally::names() {
        let rows: Vec<&Row> = models.iter().filter(|r| r.property == name).collect();
        let model = if rows.is_empty() {
            "-".to_string()
        } else {
            let states: u64 = rows.iter().map(|r| r.states).sum();
            let bad = rows.iter().find(|r| r.verdict != "held");
            match bad {
                None => format!("held: {} models, {states} states", rows.len()),
                Some(r) => format!("{} in {}", r.verdict, r.check),
            }
        };
        writeln!(out, "{name:<28} {model:<40} {}", c.tally.verdict(name))?;
    }
    writeln!(out, "measured: {}", c.tally.measured())?;
    if !c.variants.is_empty() {
        let caught = c.variants.iter().filter(|v| v.1).count();
        writeln!(
            out,
            "broken variants caught: {caught} of {}",
            c.variants.len()
        )?;
    }
    Ok(())
}

/// The checks `--only` selects: the one it names in full, else every one whose name contains
/// it (`routing_model` is also part of `routing_model_fault_tolerance`).
fn selected(checks: Vec<Check>, only: Option<&str>) -> Vec<Check> {
    let Some(only) = only else {
        return checks;
    };
    if checks.iter().any(|c| c.name == only) {
        return checks.into_iter().filter(|c| c.name == only).collect();
    }
    checks
        .into_iter()
        .filter(|c| c.name.contains(only))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Parse `sextant check` arguments as the binary would.
    fn args(argv: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        Cli::try_parse_from(std::iter::once("check").chain(argv.iter().copied()))
            .expect("valid arguments")
            .args
    }

    #[test]
    fn list_and_filter() {
        let mut out = Vec::new();
        assert!(run(&args(&["--only", "allocation_balance", "--list"]), &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("allocation_balance"));
        assert!(run(&args(&["--only", "nothing-matches"]), &mut Vec::new()).is_err());
    }

    #[test]
    fn runs_a_check_and_reports_it() {
        let mut out = Vec::new();
        assert!(run(&args(&["--only", "rebalance_model_circle"]), &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("rebalance_model_circle"), "{text}");
        assert!(
            text.contains("transient_double_owner discovered:"),
            "{text}"
        );
        assert!(text.contains("rebalances on ["), "{text}");
        let row = text
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .take(2)
                    .eq(["rebalance_model_circle", "transient_double_owner"])
            })
            .expect("the final table has a row per property");
        assert!(
            row.contains("discovered") && row.contains("complete"),
            "{row}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("queue_owned_once") && l.contains(" held ")),
            "{text}"
        );
        assert!(text.ends_with("1 passed, 0 failed\n"), "{text}");
    }

    #[test]
    fn flags_choose_the_configuration() {
        let mut out = Vec::new();
        let a = args(&[
            "--only",
            "durability",
            "--flush",
            "async",
            "--replication",
            "sync",
            "--messages",
            "2",
            "--list",
        ]);
        assert!(run(&a, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("ASYNC_FLUSH + SYNC_MASTER") && text.contains("2 messages"),
            "{text}"
        );
        let mut out = Vec::new();
        let a = args(&[
            "--only",
            "rebalance",
            "--strategy",
            "circle",
            "--consumers",
            "2",
            "--list",
        ]);
        assert!(run(&a, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.contains("2+1 consumers")), "{text}");
        assert!(!text.contains("rebalance_model_averagely"), "{text}");
        assert!(text.contains("rebalance_model_circle"), "{text}");
    }

    #[test]
    fn a_violation_fails_the_run() {
        // Two machine faults break even SYNC_FLUSH + SYNC_MASTER (the slave loses its page cache,
        // then the master its disk): the always property is reported violated.
        let mut out = Vec::new();
        let a = args(&["--only", "durability_sync", "--crashes", "2"]);
        assert!(!run(&a, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("acked_not_lost violated:"), "{text}");
        assert!(text.contains("VIOLATED"), "{text}");
        assert!(text.ends_with("0 passed, 1 failed\n"), "{text}");
    }

    #[test]
    fn deep_runs_report_coverage() {
        let mut out = Vec::new();
        let a = args(&["--deep", "--only", "offsets_orderly", "--time-limit", "5"]);
        assert!(run(&a, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.lines()
                .any(|l| l.contains("offsets_monotonic") && l.contains("held")),
            "{text}"
        );
    }

    #[test]
    fn simulate_walks_the_whole_cluster() {
        let mut out = Vec::new();
        let a = args(&["--simulate", "2"]);
        assert!(run(&a, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("cluster_model"), "{text}");
        assert!(text.contains("partial"), "{text}");
        assert!(text.contains("coverage:"), "{text}");
    }

    #[test]
    fn explore_needs_one_model_and_loopback() {
        assert!(run(&args(&["--explore"]), &mut Vec::new()).is_err());
        let a = args(&["--only", "allocation_balance", "--explore", "127.0.0.1:0"]);
        assert!(run(&a, &mut Vec::new()).is_err());
        let checks = sextant_checks::all();
        let model = checks.iter().find(|c| c.name == "offsets_orderly").unwrap();
        let explore = model.explore.as_ref().unwrap();
        assert!(explore("10.1.2.3:3000".parse().unwrap()).is_err());
    }

    #[test]
    fn the_mutants_table_fits_every_description() {
        let model = sextant_checks::models::mutants()
            .into_iter()
            .map(|m| m.what);
        let implementation = sextant_checks::scenario::variants::all()
            .into_iter()
            .map(|v| v.what);
        for what in model.chain(implementation) {
            assert!(what.len() <= WHAT, "{what}");
        }
    }

    #[test]
    fn only_takes_a_name_in_full_or_every_name_containing_it() {
        let names = |only| -> Vec<&'static str> {
            selected(sextant_checks::all(), only)
                .iter()
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(names(Some("routing_model")), ["routing_model"]);
        assert_eq!(
            names(Some("rebalance_model_orderly")),
            ["rebalance_model_orderly"]
        );
        assert_eq!(
            names(Some("routing_model_")),
            ["routing_model_fault_tolerance"]
        );
        assert!(names(Some("rebalance_model_orderly_")).len() == 1);
        assert!(names(Some("rebalance_model")).len() > 2);
        assert_eq!(names(None).len(), sextant_checks::all().len());
    }

    /// Serves check `name` in the Explorer on a free loopback port, and answers `GET path`.
    fn explorer_get(name: &str, path: &str) -> String {
        use std::io::{Read, Write};
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let checks = sextant_checks::all();
        let model = checks.iter().find(|c| c.name == name).unwrap();
        (model.explore.as_ref().unwrap())(addr).unwrap();
        // The server binds on its own thread: wait for it.
        let mut conn = (0..100)
            .find_map(|_| {
                std::net::TcpStream::connect(addr)
                    .inspect_err(|_| std::thread::sleep(Duration::from_millis(50)))
                    .ok()
            })
            .expect("the Explorer listens");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .unwrap();
        let mut body = String::new();
        conn.read_to_string(&mut body).unwrap();
        assert!(
            body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
            "{body}"
        );
        body
    }

    #[test]
    fn explorer_serves_the_model_on_loopback() {
        let body = explorer_get("durability_sync", "/.states");
        assert!(
            body.contains("DurabilityState") && body.contains("acked_not_lost"),
            "{body}"
        );
    }

    #[test]
    fn explorer_shows_compacted_states_by_name() {
        // The rebalance state holds bitsets and indices; the Explorer shows client ids and queues.
        let body = explorer_get("rebalance_model_orderly_paused", "/.states");
        assert!(body.contains(r#"\"room0@c0\": Consumer"#), "{body}");
        assert!(!body.contains("owned:"), "{body}");
        let body = explorer_get("routing_model", "/.states");
        assert!(
            body.contains(r#"\"broker-a[0]@10.0.0.1:10911\": true"#),
            "{body}"
        );
    }
}
