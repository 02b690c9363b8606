//! apport-hook: lint, verify, test and run server-side hooks.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod run;

/// Lint, verify, test and run server-side crash hooks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask apportd to run a hook against a crash report and print the new keys.
    Run(run::Args),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run(args) => run::run(args),
    }
}
