//! `daisy completions SHELL` and `daisy man OUTDIR`: generated from the clap
//! definitions, so they never drift from the real options.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
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
    use std::io::Write as _;
    let mut command = crate::Cli::command();
    // Into a buffer first: clap_complete panics when its writer fails (a
    // closed pipe), and daisy must not panic on `daisy completions bash | head`.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "daisy", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .context("cannot write the completion script to stdout")
}

/// Write man pages (one per subcommand, nested ones included) into a directory.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory to write `daisy.1` and `daisy-SUBCOMMAND[-SUBCOMMAND].1` into.
    outdir: PathBuf,
}

fn write_page(command: &clap::Command, name: &str, outdir: &Path) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_owned())
        .render(&mut page)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    let path = outdir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// Writes the page of `command`, then of each of its visible subcommands
/// (`daisy admin hook` is an operator's real entry point, so it gets a page too).
fn write_tree(command: &clap::Command, name: &str, outdir: &Path) -> anyhow::Result<()> {
    write_page(command, name, outdir)?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_tree(sub, &format!("{name}-{}", sub.get_name()), outdir)?;
    }
    Ok(())
}

/// Runs `daisy man`.
pub fn run_man(args: &ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.outdir)
        .with_context(|| format!("cannot create {}", args.outdir.display()))?;
    let mut command = crate::Cli::command();
    command.build();
    write_tree(&command, "daisy", &args.outdir)
}
