//! `daisy serve`.

use std::io::IsTerminal as _;
use std::path::Path;

use tokio::net::TcpListener;

use super::CliError;
use crate::app::App;
use crate::bootstrap;
use crate::config::{CommonArgs, Config};
use crate::storage;

/// Options of `daisy serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Database, data directory and configuration file.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on. Default: 127.0.0.1:8080.
    #[arg(long, env = "DAISY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve HTTPS: certificate chain in PEM, leaf first (with --tls-key).
    #[arg(long, env = "DAISY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key of the TLS certificate in PEM (with --tls-cert).
    #[arg(long, env = "DAISY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Shows the bootstrap token to a human at a terminal; anywhere else
/// (systemd's journal, a pipe) it would stay in a log others may read, so
/// it goes into a file of daisy's user and the output names the file.
fn hand_over_bootstrap_token(data_dir: &Path, token: &str) {
    if std::io::stdout().is_terminal() {
        println!(
            "No users yet: created user `admin` (team admin).\n\
             Its API token, shown this once: {token}\n\
             Use it as `Authorization: Bearer {token}`; add more with `daisy admin user add`."
        );
        return;
    }
    match bootstrap::write_token_file(data_dir, token) {
        Ok(path) => println!(
            "No users yet: created user `admin` (team admin).\n\
             Its API token is in {} (readable by daisy's user only); copy it, then delete \
             the file. Add more users with `daisy admin user add`.",
            path.display()
        ),
        // The user exists, so the next start makes no token: say how to
        // get one instead of printing it where others may read it.
        Err(e) => tracing::error!(
            "created user `admin` but could not write its token to {}: {e}; \
             make a new one with `daisy admin user token admin`",
            data_dir.join(bootstrap::TOKEN_FILE).display()
        ),
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let mut config = Config::load(&args.common, args.listen.as_deref())?;
    config.set_tls(args.tls_cert.clone(), args.tls_key.clone())?;
    config.create_data_dir().map_err(CliError::io(format!(
        "creating {}",
        config.data_dir.display()
    )))?;
    // A core upload older than an hour cannot still be running (the
    // request timeout is far shorter).
    match config.sweep_partial_cores(std::time::Duration::from_secs(3600)) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} core uploads left unfinished"),
        Err(e) => tracing::warn!("sweeping unfinished core uploads: {e}"),
    }
    if let Some(public) = crate::signing::ensure_signing_key(&config.data_dir)
        .map_err(|e| CliError::Usage(e.to_string()))?
    {
        println!(
            "Created the bundle signing key pair; install the public key {} into the \
             clients' trust directory.",
            public.display()
        );
    }
    let storage = storage::open(&config.database).await?;
    if let Some(token) = bootstrap::create_admin(&storage).await? {
        hand_over_bootstrap_token(&config.data_dir, &token);
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(CliError::io(format!("listening on {}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(CliError::io("reading the listen address"))?;
    let engine = storage.engine();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, engine, scheme, data_dir = %config.data_dir.display(), "daisy listening");
    let status = format!("listening on {addr} ({scheme}), {engine} database");
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    let wanted = config.limits.max_connections;
    let fit = crate::fd_limit::raise_and_fit(wanted);
    if fit.connections < wanted {
        tracing::warn!(
            "the open-file limit of {} leaves room for {} connections, not the {wanted} of \
             limits.max_connections; raise LimitNOFILE (systemd) or `ulimit -n`",
            fit.soft_limit,
            fit.connections
        );
        config.limits.max_connections = fit.connections;
    }
    let app = App::new(config, storage);
    let served = crate::server::serve(listener, app, crate::server::shutdown_signal()).await;
    notify(&[sd_notify::NotifyState::Stopping]);
    served.map_err(CliError::io("serving HTTP"))
}
