//! `sextant select`: a producer's sends against a topic on several brokers, one of which fails
//! every attempt, run once without and once with latency fault tolerance. Every decision (queue,
//! avoided broker, retry) is the model's; this file only keeps the simulated clock.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::bail;
use sextant_model::Millis;
use sextant_model::producer::{
    AttemptOutcome, FaultStrategy, LatencyTables, SendAttempts, SendIndex, SendPolicy, SendStep,
    TopicPublishInfo,
};
use sextant_model::route::TopicRouteData;

/// Arguments of `sextant select`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Broker groups holding the topic, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "broker-a,broker-b,broker-c"
    )]
    brokers: Vec<String>,
    /// Write queues per broker.
    #[arg(long, default_value_t = 4)]
    queues: u32,
    /// Number of sends.
    #[arg(long, default_value_t = 12)]
    sends: usize,
    /// A broker whose every attempt fails (a connection error), if any.
    #[arg(long)]
    fail: Option<String>,
    /// Which runs to show.
    #[arg(long, default_value = "both", value_parser = ["both", "off", "on"])]
    fault_tolerance: String,
    /// Time between the starts of two sends, in ms.
    #[arg(long, default_value_t = 100)]
    interval_ms: Millis,
    /// How long a successful attempt takes, in ms.
    #[arg(long, default_value_t = 5)]
    ok_latency_ms: Millis,
    /// How long a failed attempt takes before the error, in ms.
    #[arg(long, default_value_t = 1_000)]
    fail_latency_ms: Millis,
    /// Use RocketMQ 4.x's latency tables instead of 5.x's.
    #[arg(long)]
    v4_tables: bool,
}

/// Totals of one run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    attempts: BTreeMap<String, usize>,
    failed_attempts: usize,
    failed_sends: usize,
}

fn route(args: &Args) -> TopicRouteData {
    let addrs: Vec<String> = (0..args.brokers.len())
        .map(|i| format!("127.0.0.1:{}", 10911 + i))
        .collect();
    let brokers = args.brokers.iter().zip(&addrs);
    TopicRouteData::of_masters(
        "DefaultCluster",
        brokers.map(|(n, a)| (n.as_str(), a.as_str())),
        args.queues,
    )
}

fn simulate(args: &Args, enabled: bool, out: &mut impl Write) -> anyhow::Result<Summary> {
    let info = TopicPublishInfo::from_route("TopicTest", &route(args));
    let mut strategy = FaultStrategy::new(enabled);
    if args.v4_tables {
        strategy.tables = LatencyTables::rocketmq_4();
    }
    let mut index = SendIndex::starting_at(0);
    let mut summary = Summary::default();
    for n in 0..args.sends {
        let mut now = n as Millis * args.interval_ms;
        let mut send = SendAttempts::new(SendPolicy::default(), now);
        let mut line = format!("send {n:>3} @{now:>6}ms:");
        loop {
            let mq = match send.next_target(&info, &mut strategy, &mut index, now) {
                Ok(mq) => mq,
                Err(e) => {
                    line += &format!(" FAILED ({e})");
                    summary.failed_sends += 1;
                    break;
                }
            };
            *summary
                .attempts
                .entry(mq.broker_name.to_string())
                .or_default() += 1;
            let fails = args.fail.as_deref() == Some(&*mq.broker_name);
            let (outcome, latency) = if fails {
                summary.failed_attempts += 1;
                (AttemptOutcome::Remoting, args.fail_latency_ms)
            } else {
                (AttemptOutcome::Ok, args.ok_latency_ms)
            };
            now += latency;
            line += &format!(
                " {}/Q{} {}",
                mq.broker_name,
                mq.queue_id,
                if fails { "x" } else { "ok" }
            );
            match send.on_outcome(&mq, outcome, latency, &mut strategy, now) {
                SendStep::Done => break,
                SendStep::Retry => line += " ->",
                SendStep::Failed(e) => {
                    line += &format!(" FAILED ({e})");
                    summary.failed_sends += 1;
                    break;
                }
            }
        }
        writeln!(out, "{line}")?;
    }
    let per_broker: Vec<String> = summary
        .attempts
        .iter()
        .map(|(b, n)| format!("{b}={n}"))
        .collect();
    writeln!(
        out,
        "attempts: {}; failed attempts: {}; failed sends: {}",
        per_broker.join(" "),
        summary.failed_attempts,
        summary.failed_sends
    )?;
    Ok(summary)
}

/// Run `sextant select`.
pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<()> {
    if args.brokers.is_empty() || args.brokers.iter().any(String::is_empty) {
        bail!("--brokers needs at least one non-empty name");
    }
    if let Some(f) = &args.fail
        && !args.brokers.contains(f)
    {
        bail!("--fail {f} is not one of --brokers");
    }
    for (enabled, title) in [(false, "off"), (true, "on")] {
        if args.fault_tolerance != "both" && args.fault_tolerance != title {
            continue;
        }
        writeln!(out, "== latency fault tolerance {title} ==")?;
        simulate(args, enabled, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    fn args(argv: &[&str]) -> Args {
        Wrap::try_parse_from(std::iter::once("select").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn fault_tolerance_stops_hitting_the_failed_broker() {
        let a = args(&["--sends", "30", "--fail", "broker-b", "--queues", "2"]);
        let off = simulate(&a, false, &mut Vec::new()).unwrap();
        let on = simulate(&a, true, &mut Vec::new()).unwrap();
        assert_eq!(off.failed_sends, 0, "retries reach another broker");
        assert_eq!(on.failed_sends, 0);
        // 30 sends over 6 queues: round robin comes back to broker-b every cycle.
        assert!(
            off.failed_attempts >= 4,
            "round robin keeps trying broker-b: {off:?}"
        );
        // With fault tolerance broker-b is avoided for 10 s after its first failure.
        assert_eq!(on.failed_attempts, 1, "{on:?}");
    }

    #[test]
    fn no_failure_spreads_evenly() {
        let a = args(&["--sends", "12", "--queues", "1"]);
        let s = simulate(&a, false, &mut Vec::new()).unwrap();
        assert!(s.attempts.values().all(|n| *n == 4), "{s:?}");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(run(&args(&["--fail", "nope"]), &mut Vec::new()).is_err());
        let mut out = Vec::new();
        run(
            &args(&["--sends", "2", "--fault-tolerance", "on"]),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("fault tolerance on") && !text.contains("fault tolerance off"));
    }
}
