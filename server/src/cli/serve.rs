//! `daisy serve`.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::CliError;
use crate::app::App;
use crate::auth::{hash_token, new_token};
use crate::config::{CommonArgs, Config};
use crate::storage::{self, Storage};

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

/// Creates the bootstrap admin user when there is no user yet; returns its
/// token (shown once, stored hashed).
pub async fn bootstrap_admin(storage: &Arc<dyn Storage>) -> Result<Option<String>, CliError> {
    if storage.user_count().await? > 0 {
        return Ok(None);
    }
    let token = new_token();
    storage
        .add_user(
            "admin",
            "admin",
            &hash_token(&token),
            "daisy",
            storage::now(),
        )
        .await?;
    Ok(Some(token))
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
    if let Some(token) = bootstrap_admin(&storage).await? {
        println!(
            "No users yet: created user `admin` (team admin).\n\
             Its API token, shown this once: {token}\n\
             Use it as `Authorization: Bearer {token}`; add more with `daisy admin user add`."
        );
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
