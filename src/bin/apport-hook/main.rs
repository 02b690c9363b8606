//! apport-hook: lint, verify, test and run server-side hooks.
//!
//! Exit codes, for scripts:
//! - 0: success (for `lint`: every file is clean; for `verify`: the bundle is valid);
//! - 1: problems found (for `lint`: at least one diagnostic; for `verify`: the bundle is refused);
//! - 2: usage error (bad arguments, from clap);
//! - 3: a runtime error (a file, key directory or revocation list could not be
//!   read; for `lint`: also an inconsistent `--config` file; for `upload`: the
//!   upload failed and can be retried later).
//! - 4: for `run` and `test`: the job was cancelled or stopped before its last step.
//!
//! For `test`, 1 means lint problems (nothing ran). `watch` exits 0 when it
//! stops (idle or a signal) and 3 when it cannot start.
//!
//! For `upload`, 1 also means the server refused the report for good (400) or
//! crash reporting is turned off.

mod collect;
mod completions;
mod last_runs;
mod lint;
mod logging;
mod run;
mod status;
mod test_hook;
mod upload;
mod verify;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lint, verify, test and run server-side crash hooks.
#[derive(Debug, Parser)]
#[command(
    name = "apport-hook",
    version,
    about,
    after_help = "Exit status, for scripts: 0 success; 1 problems found (lint diagnostics, a \
                  refused bundle or report, crash reporting turned off); 2 a usage error; 3 a \
                  runtime error (an unreadable file, apportd or the server unreachable); 4 a \
                  job cancelled or stopped before its last step. Each command's --help says \
                  what its codes mean."
)]
pub(crate) struct Cli {
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
    /// Upload a crash report the way whoopsie does and write REPORT.uploaded.
    Upload(upload::Args),
    /// Fetch the hooks offered for an uploaded report, run them and send the new keys.
    Collect(collect::Args),
    /// Lint a hook, run it on a report through apportd and show exactly what would be sent.
    Test(test_hook::Args),
    /// Watch the crash directory and collect for every new upload (the system service).
    Watch(watch::Args),
    /// Show the settings, opt-out state, system id, trusted keys, spooled results and last runs.
    Status(status::Args),
    /// Print a shell completion script.
    Completions(completions::Args),
    /// Write man pages generated from these definitions.
    #[command(hide = true)]
    Man(completions::ManArgs),
}

/// Exit code for runtime errors.
pub(crate) const EXIT_RUNTIME_ERROR: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Upload(_) | Command::Collect(_) | Command::Test(_) | Command::Run(_)
    ) {
        logging::init(false, "warn");
    }
    let result = match cli.command {
        Command::Lint(args) => lint::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Run(args) => run::run(args),
        Command::Upload(args) => upload::run(args),
        Command::Collect(args) => collect::run(args),
        Command::Status(args) => status::run(args),
        Command::Test(args) => test_hook::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => completions::run_man(args),
    };
    match result {
        Ok(code) => code,
        // `apport-hook lint … | head`: the reader has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain may hold a server's words (a refused field name).
            eprintln!(
                "apport-hook: {}",
                apport_hooks::agent::text::printable(&format!("{e:#}"))
            );
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
