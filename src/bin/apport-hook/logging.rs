//! Logs for the long-running and diagnostic commands: plain lines on stderr
//! (journald adds the time and the unit when run as a service), or JSON
//! lines with `--json` of `watch`. `APPORT_HOOK_LOG` sets the filter
//! (default `info` for `watch`, `warn` for the one-shot commands, so that
//! e.g. a result spooled because its token expired says so on stderr).

/// Sets up the global subscriber with `default_level` unless
/// `APPORT_HOOK_LOG` is set (once; a second call is a no-op).
pub fn init(json: bool, default_level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("APPORT_HOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let result = if json {
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else if under_journal {
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_ansi(false)
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    drop(result);
}
