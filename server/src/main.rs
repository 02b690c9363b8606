//! daisy: the crash intake server with server-side hooks.

use clap::Parser;

/// daisy: whoopsie-compatible crash intake with server-side hooks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(daisy::cli::serve::ServeArgs),
    /// Operator commands on the database (works while a server runs).
    Admin(daisy::cli::admin::AdminArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => daisy::cli::serve::run(args).await?,
        Command::Admin(args) => daisy::cli::admin::run(args, &mut std::io::stdout()).await?,
    }
    Ok(())
}
