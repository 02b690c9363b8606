//! apportd: the privileged com.ubuntu.apport D-Bus service.
//!
//! Started by D-Bus activation (through systemd's `apportd.service`); exits
//! when idle. See `docs/apportd.md`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use apport_hooks::apportd::config::Config;
use apport_hooks::apportd::principal::{DROP_PRIVILEGES_ARG, drop_privileges_main};
use apport_hooks::apportd::service::serve;
use apport_hooks::apportd::subreaper::{SUPERVISE_ARG, supervise_main};
use clap::Parser;

/// The privileged com.ubuntu.apport D-Bus service that runs server-side crash hooks.
#[derive(Debug, Parser)]
#[command(
    name = "apportd",
    version,
    long_about = "The privileged com.ubuntu.apport D-Bus service that runs server-side crash \
hooks.\n\n\
apportd is D-Bus activated: the system bus starts it (through systemd's apportd.service) \
on the first call to com.ubuntu.apport, and it exits when idle. It is not meant to be started \
by hand; apport-hook (run, test, watch) is its client. Which steps a caller may run is decided \
by polkit (com.ubuntu.apport.package-hook, com.ubuntu.apport.test-hook); only bundles signed by \
a key in /usr/share/apport-hooks/keys or /etc/apport-hooks/keys.d run without the test-hook \
authorization."
)]
struct Args {
    /// Configuration file (default: /etc/apport-hooks/apportd.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `apportd --internal-man DIR` writes `DIR/apportd.8` (used by debian/rules).
/// Handled before clap, like the other internal modes, so it appears neither in
/// `--help` nor in the page itself.
const MAN_ARG: &str = "--internal-man";

fn main() -> anyhow::Result<ExitCode> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == MAN_ARG) {
        return write_man_page(argv.get(2..).unwrap_or_default());
    }
    // The privilege-dropping helper must decide before any thread or runtime exists.
    if argv.get(1).is_some_and(|a| a == DROP_PRIVILEGES_ARG) {
        return Ok(drop_privileges_main(argv.get(2..).unwrap_or_default()));
    }
    if argv.get(1).is_some_and(|a| a == SUPERVISE_ARG) {
        return Ok(supervise_main(argv.get(2..).unwrap_or_default()));
    }
    let args = Args::parse();
    init_logging();
    let config = Config::load(args.config.as_deref())?;
    // One thread: apportd's work is waiting (on the bus, polkit, step
    // processes); the steps themselves run in their own processes. Saves the
    // worker threads' memory and the cross-thread wake-ups of each round trip.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// Renders the man page of the user-facing options into `DIR/apportd.8`.
/// Section 8: a system daemon, installed in /usr/libexec.
fn write_man_page(args: &[OsString]) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory as _;
    let [outdir] = args else {
        anyhow::bail!("usage: apportd {MAN_ARG} DIR");
    };
    apport_hooks::cli_docs::write_man_pages(Args::command(), "apportd", "8", Path::new(outdir))?;
    Ok(ExitCode::SUCCESS)
}

/// To the journal when running under systemd, else to stderr.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("APPORTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(tracing_journald::layer)
        .and_then(Result::ok);
    match journald {
        Some(layer) => tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}
