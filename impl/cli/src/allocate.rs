//! `sextant allocate`: one line per consumer with the queues it owns.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{Context, bail};
use sextant_model::consumer::{
    AllocateStrategy, Averagely, AveragelyByCircle, ByConfig, ByMachineRoom, ConsistentHash,
    GroupView, MachineRoomNearby,
};
use sextant_model::route::MessageQueue;

/// Arguments of `sextant allocate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Allocation strategy.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(sextant_model::consumer::STRATEGY_NAMES))]
    strategy: String,
    /// Queues per broker.
    #[arg(long)]
    queues: u32,
    /// Consumers in the group.
    #[arg(long)]
    consumers: usize,
    /// Broker groups holding the topic.
    #[arg(long, default_value_t = 1)]
    brokers: usize,
    /// Machine rooms; brokers and consumers are spread over them round-robin and named
    /// `roomK@...` (used by the machine-room strategies).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Rooms a `machine-room` group consumes from, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    idcs: Vec<String>,
    /// Strategy used inside each room by `machine-room-nearby`.
    #[arg(long, default_value = "averagely", value_parser = ["averagely", "circle", "consistent-hash"])]
    inner: String,
    /// `config` assignments: `CONSUMER=I,J,...;CONSUMER=...` with I, J indexes into the sorted
    /// queue list.
    #[arg(long)]
    config: Option<String>,
    /// Topic name.
    #[arg(long, default_value = "TopicTest")]
    topic: String,
}

struct Setup {
    view: GroupView,
    strategy: Box<dyn AllocateStrategy>,
    multi_broker: bool,
}

fn pad(i: usize, n: usize) -> String {
    let width = n.saturating_sub(1).to_string().len();
    format!("{i:0width$}")
}

fn setup(args: &Args) -> anyhow::Result<Setup> {
    if args.brokers == 0 || args.rooms == 0 {
        bail!("--brokers and --rooms must be at least 1");
    }
    let roomed = args.rooms > 1 || args.strategy.starts_with("machine-room");
    let room = |i: usize| format!("room{}", i % args.rooms);
    let broker = |b: usize| {
        let name = format!("broker-{}", pad(b, args.brokers));
        if roomed {
            format!("{}@{name}", room(b))
        } else {
            name
        }
    };
    let consumer = |c: usize| {
        let name = format!("consumer-{}", pad(c, args.consumers));
        if roomed {
            format!("{}@{name}", room(c))
        } else {
            name
        }
    };
    let queues = (0..args.brokers)
        .flat_map(|b| (0..args.queues).map(move |q| (b, q)))
        .map(|(b, q)| MessageQueue::new(&args.topic, &broker(b), q));
    let view = GroupView::new(queues, (0..args.consumers).map(consumer));
    let strategy = build(args, &args.strategy, &view)?;
    Ok(Setup {
        view,
        strategy,
        multi_broker: args.brokers > 1,
    })
}

fn build(args: &Args, name: &str, view: &GroupView) -> anyhow::Result<Box<dyn AllocateStrategy>> {
    Ok(match name {
        "averagely" => Box::new(Averagely),
        "circle" => Box::new(AveragelyByCircle),
        "consistent-hash" => Box::new(ConsistentHash::default()),
        "machine-room" => {
            let idcs: BTreeSet<String> = if args.idcs.is_empty() {
                (0..args.rooms).map(|r| format!("room{r}")).collect()
            } else {
                args.idcs.iter().cloned().collect()
            };
            Box::new(ByMachineRoom {
                consumer_idcs: idcs,
            })
        }
        "machine-room-nearby" => Box::new(MachineRoomNearby::new(build(args, &args.inner, view)?)),
        "config" => {
            let spec = args
                .config
                .as_deref()
                .context("the config strategy needs --config 'CONSUMER=I,J;...'")?;
            Box::new(parse_config(spec, view)?)
        }
        other => bail!("unknown strategy {other}"),
    })
}

fn parse_config(spec: &str, view: &GroupView) -> anyhow::Result<ByConfig> {
    let mut s = ByConfig::default();
    for part in spec.split(';').filter(|p| !p.trim().is_empty()) {
        let (cid, list) = part
            .split_once('=')
            .with_context(|| format!("expected CONSUMER=I,J in {part:?}"))?;
        let mut qs = Vec::new();
        for i in list.split(',').filter(|i| !i.trim().is_empty()) {
            let i: usize = i
                .trim()
                .parse()
                .with_context(|| format!("bad queue index {i:?}"))?;
            let mq = view.queues().get(i).with_context(|| {
                format!(
                    "queue index {i} out of range ({} queues)",
                    view.queues().len()
                )
            })?;
            qs.push(mq.clone());
        }
        s.assignments.insert(cid.trim().to_owned(), qs);
    }
    Ok(s)
}

fn label(mq: &MessageQueue, multi_broker: bool) -> String {
    if multi_broker {
        format!("{}/Q{}", mq.broker_name, mq.queue_id)
    } else {
        format!("Q{}", mq.queue_id)
    }
}

/// Run `sextant allocate`.
pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<()> {
    let s = setup(args)?;
    let shares = s
        .view
        .allocate_all(s.strategy.as_ref())
        .with_context(|| format!("{} refuses to allocate", s.strategy.name()))?;
    let width = s
        .view
        .consumers()
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0);
    let mut owned = BTreeSet::new();
    for (cid, share) in &shares {
        let labels: Vec<String> = share.iter().map(|q| label(q, s.multi_broker)).collect();
        owned.extend(share.iter().cloned());
        writeln!(out, "{cid:<width$}  {}", labels.join(" "))?;
    }
    let unassigned: Vec<String> = s
        .view
        .queues()
        .iter()
        .filter(|q| !owned.contains(*q))
        .map(|q| label(q, s.multi_broker))
        .collect();
    if !unassigned.is_empty() {
        writeln!(out, "{:<width$}  {}", "(nobody)", unassigned.join(" "))?;
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

    fn output(argv: &[&str]) -> String {
        let w =
            Wrap::try_parse_from(std::iter::once("allocate").chain(argv.iter().copied())).unwrap();
        let mut out = Vec::new();
        run(&w.args, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn seed_table_averagely() {
        let out = output(&[
            "--strategy",
            "averagely",
            "--queues",
            "8",
            "--consumers",
            "3",
        ]);
        assert_eq!(
            out,
            "consumer-0  Q0 Q1 Q2\nconsumer-1  Q3 Q4 Q5\nconsumer-2  Q6 Q7\n"
        );
    }

    #[test]
    fn seed_table_circle() {
        let out = output(&["--strategy", "circle", "--queues", "8", "--consumers", "3"]);
        assert_eq!(
            out,
            "consumer-0  Q0 Q3 Q6\nconsumer-1  Q1 Q4 Q7\nconsumer-2  Q2 Q5\n"
        );
    }

    #[test]
    fn config_and_machine_room() {
        let out = output(&[
            "--strategy",
            "config",
            "--queues",
            "3",
            "--consumers",
            "2",
            "--config",
            "consumer-0=2;consumer-1=0",
        ]);
        assert_eq!(out, "consumer-0  Q2\nconsumer-1  Q0\n(nobody)    Q1\n");
        let out = output(&[
            "--strategy",
            "machine-room",
            "--queues",
            "2",
            "--consumers",
            "2",
            "--brokers",
            "2",
            "--rooms",
            "2",
            "--idcs",
            "room1",
        ]);
        assert_eq!(
            out,
            "room0@consumer-0  room1@broker-1/Q0\nroom1@consumer-1  room1@broker-1/Q1\n(nobody)          room0@broker-0/Q0 room0@broker-0/Q1\n"
        );
    }

    #[test]
    fn every_strategy_runs() {
        for s in sextant_model::consumer::STRATEGY_NAMES {
            let mut argv = vec![
                "--strategy",
                s,
                "--queues",
                "16",
                "--consumers",
                "5",
                "--brokers",
                "2",
                "--rooms",
                "2",
            ];
            if s == "config" {
                argv.extend(["--config", "room0@consumer-0=0,1"]);
            }
            let out = output(&argv);
            assert_eq!(
                out.lines().filter(|l| l.contains("@consumer-")).count(),
                5,
                "{s}: {out}"
            );
        }
    }

    #[test]
    fn errors_are_reported() {
        let w = Wrap::try_parse_from([
            "allocate",
            "--strategy",
            "config",
            "--queues",
            "1",
            "--consumers",
            "1",
        ])
        .unwrap();
        assert!(run(&w.args, &mut Vec::new()).is_err());
        let w = Wrap::try_parse_from([
            "allocate",
            "--strategy",
            "averagely",
            "--queues",
            "0",
            "--consumers",
            "1",
        ])
        .unwrap();
        assert!(run(&w.args, &mut Vec::new()).is_err());
    }
}
