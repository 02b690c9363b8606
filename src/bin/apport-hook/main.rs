//! apport-hook: lint, verify, test and run server-side hooks.
//!
//! Exit codes, for scripts:
//! - 0: success (for `lint`: every file is clean; for `verify`: the bundle is valid);
//! - 1: problems found (for `lint`: at least one diagnostic; for `verify`: the bundle is refused);
//! - 2: usage error (bad arguments, from clap);
//! - 3: a runtime error (a file, key directory or revocation list could not be
//!   read; for `lint`: also an inconsistent `--config` file).
//! - 4: for `run`: the job was cancelled or stopped before its last step.

mod lint;
mod run;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lint, verify, test and run server-side crash hooks.
#[derive(Debug, Parser)]
#[command(name = "apport-hook", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check hook files and print every problem as `file:line:column: lint: message`.
    Lint(lint::Args),
    /// Check a signed hook bundle: signature, trusted key, payload, expiry.
    Verify(verify::Args),
    /// Ask apportd to run a hook against a crash report and print the new keys.
    Run(run::Args),
}

/// Exit code for runtime errors.
pub(crate) const EXIT_RUNTIME_ERROR: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lint(args) => lint::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Run(args) => run::run(args),
    };
    match result {
        Ok(code) => code,
        // `apport-hook lint … | head`: the reader has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apport-hook: {e:#}");
            ExitCode::from(EXIT_RUNTIME_ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
