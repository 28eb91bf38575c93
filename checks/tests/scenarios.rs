//! Model-based tests with faults on a real loopback cluster: generated scenarios (seeds), each
//! played on real NameServers, brokers and clients with kills, power losses, pauses, cut and
//! slowed connections and clock steps, judged by the model's invariants on the trace and
//! against the model's end state. Then each deliberately broken implementation, which a
//! scenario must catch — so the suite is shown to have teeth.
//!
//! `SEXTANT_SCENARIOS=N` runs N seeds (default 100), `SEXTANT_SEED=S` starts at seed S.

use std::time::Instant;

use sextant_checks::scenario::run::{Broken, Outcome, run};
use sextant_checks::scenario::tally::{Tally, play};
use sextant_checks::scenario::variants::{self, Variant};
use sextant_checks::scenario::{Action, Scenario, shrink};
use sextant_checks::trace::Verdict;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn describe(o: &Outcome) -> String {
    format!("{}\n{}\nend state: {:?}", o.scenario, o.report, o.end_state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_scenarios_with_faults_hold_every_invariant() {
    let n = env("SEXTANT_SCENARIOS", 100);
    let first = env("SEXTANT_SEED", 0);
    let t = Instant::now();
    let mut first_failure: Option<(u64, String, Vec<u8>)> = None;
    let tally = play(first..first + n, None, Broken::default(), |seed, r, _| {
        if let Ok(o) = r
            && !o.ok()
            && first_failure.is_none()
        {
            first_failure = Some((seed, describe(o), o.trace.clone()));
        }
    })
    .await;
    eprintln!(
        "{} in {:?}; {}",
        tally.progress(),
        t.elapsed(),
        tally.measured()
    );
    for name in Tally::names() {
        eprintln!("  {name:<28} {}", tally.verdict(name));
    }
    assert!(
        tally.errors.is_empty(),
        "seeds that would not start: {:?}",
        tally.errors
    );
    if let Some((seed, what, trace)) = first_failure {
        let path = std::env::temp_dir().join(format!("sextant-scenario-{seed}.jsonl"));
        let _ = std::fs::write(&path, trace);
        panic!(
            "{} of {n} scenarios failed: {:?}; the first, seed {seed} (replay: sextant check \
             --conformance --seed {seed} --scenarios 1; trace in {}):\n{what}",
            tally.failed.len(),
            tally.failed,
            path.display(),
        );
    }
    // Teeth: the runs did something — faults, sends, deliveries, and every check judged.
    assert_eq!(tally.scenarios, n);
    assert!(tally.faults >= n, "{}", tally.progress());
    assert!(tally.acked >= 100 * n, "{}", tally.progress());
    for name in Tally::names() {
        assert!(
            tally.checks[name].judged >= n,
            "{name} judged too rarely: {:?}",
            tally.checks[name]
        );
    }
}

fn verdict<'a>(o: &'a Outcome, name: &str) -> &'a Verdict {
    o.report.verdict(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_implementation_is_caught() {
    for Variant {
        what,
        broken,
        scenario,
        caught_by,
    } in variants::all()
    {
        // The same scenario holds with the real implementation...
        let clean = run(&scenario, Broken::default()).await.unwrap();
        assert!(
            clean.ok(),
            "{what}: the clean run fails: {}",
            describe(&clean)
        );
        // ... and the broken one is caught by each invariant meant to catch it.
        let o = run(&scenario, broken).await.unwrap();
        for by in caught_by {
            assert!(verdict(&clean, by).judged > 0, "{what}: {by} never judged");
            let v = verdict(&o, by);
            assert!(
                v.violations > 0,
                "{what} was not caught by {by}: {}",
                describe(&o)
            );
            eprintln!(
                "{what}: caught by {by} ({} of {} checks)",
                v.violations, v.judged
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scenario_shrinks_to_a_minimal_one() {
    // A real failure to shrink: a producer that retries the broker that just failed, in a
    // scenario drawn from a seed with several steps, a kill and two brokers. Shrinking plays
    // real scenarios, so its budget is small; what it returns still fails, is simpler, and
    // keeps a fault and the second broker it takes to retry elsewhere.
    let broken = Broken {
        retry_same_broker: true,
        ..Default::default()
    };
    let candidates = (0..5000).filter(|s| {
        let sc = Scenario::from_seed(*s);
        sc.steps.len() >= 3
            && sc.brokers.len() >= 2
            && sc
                .steps
                .iter()
                .any(|st| matches!(st.action, Action::Kill { .. }))
    });
    let mut found = None;
    for seed in candidates.take(4) {
        let o = run(&Scenario::from_seed(seed), broken).await.unwrap();
        if !o.ok() {
            found = Some(seed);
            break;
        }
    }
    let seed = found.expect("the broken producer failed none of four scenarios");
    let original = Scenario::from_seed(seed);
    let rt = tokio::runtime::Handle::current();
    let (min, runs) = tokio::task::block_in_place(|| {
        shrink(seed, 10, |s| {
            let o = rt.block_on(run(s, broken)).unwrap();
            !o.ok()
        })
    });
    eprintln!("seed {seed}: {original}\n shrunk in {runs} runs to: {min}");
    assert!(runs > 0);
    assert!(min.steps.len() <= original.steps.len(), "{min}");
    // Retrying the failed broker is a violation only when another broker was writable, and
    // only a fault makes a send fail: whatever the shrinker kept, those two stay.
    assert!(min.brokers.len() >= 2, "{min}");
    assert!(
        min.steps.iter().any(|s| matches!(
            s.action,
            Action::Kill { .. }
                | Action::PowerLoss { .. }
                | Action::Pause { .. }
                | Action::Cut { .. }
                | Action::Slow { .. }
        )),
        "{min}"
    );
    assert_ne!(min, original, "nothing simpler failed in {runs} runs");
}
