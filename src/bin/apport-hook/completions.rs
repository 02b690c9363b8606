//! `apport-hook completions SHELL` and `apport-hook man OUTDIR`: generated
//! from the clap definitions by `apport_hooks::cli_docs`, so they never drift
//! from the real options.

use std::path::PathBuf;
use std::process::ExitCode;

use apport_hooks::cli_docs;
use clap::CommandFactory as _;

/// Print a shell completion script on stdout.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: apport-hook completions bash > /usr/share/bash-completion/completions/apport-hook"
)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Runs `apport-hook completions`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    cli_docs::print_completions(args.shell, crate::Cli::command(), "apport-hook")?;
    Ok(ExitCode::SUCCESS)
}

/// Write man pages (one per subcommand) into a directory.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory to write `apport-hook.1` and `apport-hook-SUBCOMMAND.1` into.
    outdir: PathBuf,
}

/// Runs `apport-hook man`.
pub fn run_man(args: ManArgs) -> anyhow::Result<ExitCode> {
    cli_docs::write_man_pages(crate::Cli::command(), "apport-hook", "1", &args.outdir)?;
    Ok(ExitCode::SUCCESS)
}
