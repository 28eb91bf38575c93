//! `sextant` — the one binary of Sextant.
//!
//! Subcommands so far:
//! - `check` — run the model checks and report every invariant (the main job).
//! - `allocate` — show which consumer of a group owns which queue under a strategy.
//! - `select` — show where a producer's sends go when one broker fails, with and without
//!   latency fault tolerance.
//!
//! Later issues add `namesrv`, `broker`, `standalone` and the client commands.

mod allocate;
mod check;
mod select;

use clap::{Parser, Subcommand};

/// Sextant: a model-checked reference of RocketMQ-style routing, balancing and failover.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the model's invariants and print one line per check.
    Check(check::Args),
    /// Print which consumer owns which queue under an allocation strategy.
    Allocate(allocate::Args),
    /// Print where sends go when a broker fails, with and without fault tolerance.
    Select(select::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
    }
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
