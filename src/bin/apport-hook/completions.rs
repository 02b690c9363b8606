//! `apport-hook completions SHELL` and `apport-hook man OUTDIR`: generated
//! from the clap definitions, so they never drift from the real options.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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
    let mut command = crate::Cli::command();
    // Into a buffer first: clap_complete panics when its writer fails (a
    // closed pipe, as in `apport-hook completions bash | head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "apport-hook", &mut script);
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, &script)
        .and_then(|()| std::io::Write::flush(&mut stdout))
        .context("cannot write the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Write man pages (one per subcommand) into a directory.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory to write `apport-hook.1` and `apport-hook-SUBCOMMAND.1` into.
    outdir: PathBuf,
}

fn write_page(command: &clap::Command, name: &str, outdir: &std::path::Path) -> anyhow::Result<()> {
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

/// Runs `apport-hook man`.
pub fn run_man(args: ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.outdir)
        .with_context(|| format!("cannot create {}", args.outdir.display()))?;
    let mut command = crate::Cli::command();
    command.build();
    write_page(&command, "apport-hook", &args.outdir)?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_page(
            sub,
            &format!("apport-hook-{}", sub.get_name()),
            &args.outdir,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
