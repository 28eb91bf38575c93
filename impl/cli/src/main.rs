//! `sextant` — the one binary of Sextant.
//!
//! Subcommands so far:
//! - `check` — run the model checks and report every invariant (the main job).
//! - `allocate` — show which consumer of a group owns which queue under a strategy.
//! - `select` — show where a producer's sends go when one broker fails, with and without
//!   latency fault tolerance.
//!
//! - `namesrv` — run a NameServer (RocketMQ's route registry) until Ctrl-C or SIGTERM.
//! - `broker` — run one broker (TOML config with RocketMQ's key names, flags override it).
//! - `standalone` — a NameServer on 127.0.0.1:9876 and broker-a on 127.0.0.1:10911 in one
//!   process, topic auto-creation on: any RocketMQ client can produce and consume at once.
//!
//! - `produce`, `consume` — send and receive messages (any RocketMQ-compatible cluster).
//! - `route`, `topic`, `cluster`, `group`, `message` — what `mqadmin` shows.
//! - `bench produce|consume` — a load tool with a live line and a JSON summary.
//!
//! Logs go through `tracing` (`RUST_LOG`, default `info`; the client commands default to
//! `warn`).

mod admin;
mod allocate;
mod audit;
mod bench;
mod broker;
mod check;
mod namesrv;
mod produce;
mod select;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Sextant: a model-checked reference of RocketMQ-style routing, balancing and failover.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Record trace events (JSON lines, appended) of the servers and clients this command runs;
    /// `sextant check --trace FILE` judges them.
    #[arg(long, global = true, value_name = "FILE", env = sextant_trace::ENV_VAR)]
    trace_file: Option<std::path::PathBuf>,
}

static TRACER: std::sync::OnceLock<sextant_trace::Tracer> = std::sync::OnceLock::new();

/// The tracer of this process: off unless `--trace-file` or `SEXTANT_TRACE` names a file.
pub(crate) fn tracer() -> sextant_trace::Tracer {
    TRACER.get().cloned().unwrap_or_default()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the model's invariants and print one line per check.
    Check(check::Args),
    /// Print which consumer owns which queue under an allocation strategy.
    Allocate(allocate::Args),
    /// Print where sends go when a broker fails, with and without fault tolerance.
    Select(select::Args),
    /// Run a NameServer until Ctrl-C or SIGTERM.
    Namesrv(namesrv::Args),
    /// Run a broker until Ctrl-C or SIGTERM.
    Broker(broker::Args),
    /// Run a NameServer and broker-a in one process until Ctrl-C or SIGTERM.
    Standalone(broker::StandaloneArgs),
    /// Send messages and print a summary (exit 1 if any send failed).
    Produce(produce::ProduceArgs),
    /// Consume messages until --count arrived (exit 1 at --timeout).
    Consume(produce::ConsumeArgs),
    /// Print a topic's route.
    Route(admin::RouteArgs),
    /// Audit a live cluster read-only: split NameServer views, queues with no owner or two,
    /// offsets out of bounds, slaves behind (exit 1 on findings).
    Audit(audit::AuditArgs),
    /// Create, update, delete, list topics, or show a topic's offsets.
    #[command(subcommand)]
    Topic(admin::TopicCommand),
    /// List the cluster's brokers.
    Cluster(admin::ClusterArgs),
    /// A consumer group's members, the queues each owns, and the lag per queue.
    Group(admin::GroupArgs),
    /// Show a message by its broker id or by key.
    Message(admin::MessageArgs),
    /// Load-test producing or consuming.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Servers log what they do; every other command (`check` too, whose scenarios run servers
    // in this process) prints its own report and logs only warnings.
    let quiet = !matches!(
        cli.command,
        Command::Namesrv(_) | Command::Broker(_) | Command::Standalone(_)
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(path) = cli
        .trace_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let sink = sextant_trace::Sink::file(path)
            .with_context(|| format!("opening the trace file {}", path.display()))?;
        let _ = TRACER.set(sink.tracer(format!("sextant-{}", std::process::id())));
    }
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Check(args) => {
            if !check::run(&args, &mut out)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Allocate(args) => allocate::run(&args, &mut out),
        Command::Select(args) => select::run(&args, &mut out),
        Command::Namesrv(args) => namesrv::run(&args),
        Command::Broker(args) => broker::run(&args),
        Command::Standalone(args) => broker::run_standalone(&args),
        Command::Produce(args) => exit_unless(produce::run_produce(&args, &mut out)?),
        Command::Consume(args) => exit_unless(produce::run_consume(&args, &mut out)?),
        Command::Route(args) => admin::run_route(&args, &mut out),
        Command::Audit(args) => exit_unless(audit::run(&args, &mut out)?),
        Command::Topic(cmd) => admin::run_topic(&cmd, &mut out),
        Command::Cluster(args) => admin::run_cluster(&args, &mut out),
        Command::Group(args) => admin::run_group(&args, &mut out),
        Command::Message(args) => admin::run_message(&args, &mut out),
        Command::Bench(cmd) => exit_unless(bench::run(&cmd, &mut out)?),
    }
}

/// Exit 1 when a command reports failure (after its output is flushed).
fn exit_unless(ok: bool) -> anyhow::Result<()> {
    if !ok {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
