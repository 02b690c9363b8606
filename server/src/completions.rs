//! `daisy completions SHELL` and `daisy man OUTDIR`: generated from the clap
//! definitions by `apport_hooks::cli_docs`, so they never drift from the real
//! options.

use std::path::PathBuf;

use apport_hooks::cli_docs;
use clap::CommandFactory as _;

/// Print a shell completion script on stdout.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: daisy completions bash > /usr/share/bash-completion/completions/daisy"
)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Runs `daisy completions`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    cli_docs::print_completions(args.shell, crate::Cli::command(), "daisy")?;
    Ok(())
}

/// Write man pages (one per subcommand, nested ones included) into a directory.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory to write `daisy.1` and `daisy-SUBCOMMAND[-SUBCOMMAND].1` into.
    outdir: PathBuf,
}

/// Runs `daisy man`.
pub fn run_man(args: &ManArgs) -> anyhow::Result<()> {
    cli_docs::write_man_pages(crate::Cli::command(), "daisy", "1", &args.outdir)?;
    Ok(())
}
