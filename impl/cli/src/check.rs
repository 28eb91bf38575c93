//! `sextant check`: run every check of `sextant-checks` and print one line per check.

use std::io::Write;
use std::time::Instant;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `sextant check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only the checks whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// List the checks without running them.
    #[arg(long)]
    list: bool,
}

/// Run `sextant check`. Returns whether every check passed.
pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<bool> {
    let checks: Vec<_> = sextant_checks::all()
        .into_iter()
        .filter(|c| args.only.as_deref().is_none_or(|o| c.name.contains(o)))
        .collect();
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
            ProgressStyle::with_template("{spinner} {msg} {pos} cases").expect("valid template"),
        );
        let started = Instant::now();
        let mut n = 0u64;
        let outcome = (c.run)(&mut || {
            n += 1;
            if n % 4096 == 0 {
                bar.set_position(n);
            }
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
            table.push((c.name, *property, verdict.to_string(), outcome.cases, secs));
        }
        for note in &outcome.notes {
            writeln!(out, "    {note}")?;
        }
    }
    if !table.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<36} {:<28} {:<10} {:>10} {:>9}",
            "model", "property", "verdict", "states", "time"
        )?;
        for (check, property, verdict, states, secs) in &table {
            writeln!(
                out,
                "{check:<36} {property:<28} {verdict:<10} {states:>10} {secs:>8.2}s"
            )?;
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_filter() {
        let mut out = Vec::new();
        assert!(
            run(
                &Args {
                    only: Some("allocation_balance".into()),
                    list: true
                },
                &mut out
            )
            .unwrap()
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("allocation_balance"));
        assert!(
            run(
                &Args {
                    only: Some("nothing-matches".into()),
                    list: false
                },
                &mut Vec::new()
            )
            .is_err()
        );
    }

    #[test]
    fn runs_a_check_and_reports_it() {
        let mut out = Vec::new();
        let args = Args {
            only: Some("rebalance_model_circle".into()),
            list: false,
        };
        assert!(run(&args, &mut out).unwrap());
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
        assert!(row.contains("discovered"), "{row}");
        assert!(
            text.lines()
                .any(|l| l.contains("queue_owned_once") && l.contains(" held ")),
            "{text}"
        );
        assert!(text.ends_with("1 passed, 0 failed\n"), "{text}");
    }
}
