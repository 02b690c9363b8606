//! apport-hook: lint, verify, test and run server-side hooks.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod verify;

/// Lint, verify, test and run Ubuntu server-side crash hooks.
#[derive(Debug, Parser)]
#[command(name = "apport-hook", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a signed hook bundle: signature, trusted key, payload, expiry.
    Verify(verify::Args),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => verify::run(args),
    }
}
