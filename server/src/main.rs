//! daisy: the crash intake server with server-side hooks.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod completions;
mod hook_compile;
mod keys;

/// daisy: the Ubuntu crash intake server with server-side hooks.
#[derive(Debug, Parser)]
#[command(name = "daisy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(daisy::cli::serve::ServeArgs),
    /// Operator commands on the database (works while a server runs).
    Admin(daisy::cli::admin::AdminArgs),
    /// Generate the key pair that signs hook bundles (daisy.key, daisy.pub).
    Keygen(keys::KeygenArgs),
    /// Work with hooks.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Write man pages generated from these definitions.
    #[command(hide = true)]
    Man(completions::ManArgs),
}

#[derive(Debug, Subcommand)]
enum HookCommand {
    /// Compile a hook file into a signed bundle.
    Compile(hook_compile::CompileArgs),
}

fn run_async<F: Future<Output = Result<(), daisy::cli::CliError>>>(
    f: impl FnOnce() -> F,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(f())?;
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => run_async(|| daisy::cli::serve::run(args)),
        Command::Admin(args) => {
            run_async(|| async { daisy::cli::admin::run(args, &mut std::io::stdout()).await })
        }
        Command::Keygen(args) => keys::keygen(&args),
        Command::Hook(HookCommand::Compile(args)) => hook_compile::compile(&args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => completions::run_man(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the cause chain on one line, without a backtrace.
            eprintln!("daisy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
