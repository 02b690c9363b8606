//! daisy: the crash intake server with server-side hooks.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Generate the key pair that signs hook bundles (daisy.key, daisy.pub).
    Keygen(keys::KeygenArgs),
    /// Work with hooks.
    #[command(subcommand)]
    Hook(HookCommand),
}

#[derive(Debug, Subcommand)]
enum HookCommand {
    /// Compile a hook file into a signed bundle.
    Compile(hook_compile::CompileArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Keygen(args) => keys::keygen(&args),
        Command::Hook(HookCommand::Compile(args)) => hook_compile::compile(&args),
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
