//! Running apportd: export the objects, then own the name, serve until idle.

use std::sync::Arc;
use std::time::Duration;

use super::caller::whoopsie_uid;
use super::config::Config;
use super::dbus::{BUS_NAME, Manager, OBJECT_PATH, Shared};
use super::job::Executor;
use super::principal::Launcher;
use super::rollback::HighWater;
use crate::bundle::KeyRing;

/// apportd could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The bus connection or name failed.
    #[error(
        "D-Bus: {0}; is the system bus running and the bus policy com.ubuntu.apport.conf installed?"
    )]
    Bus(#[from] zbus::Error),
    /// The trusted keys could not be loaded.
    #[error("loading trusted keys: {0}")]
    Keys(#[from] crate::bundle::KeyRingError),
    /// The helper executable could not be found.
    #[error("cannot find apportd's own executable: {0}")]
    Executable(#[from] std::io::Error),
}

/// Serve `com.ubuntu.apport` on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` if
/// set) until no job ran and nothing was called for `config.idle_exit_secs`.
pub async fn serve(config: Config) -> Result<(), ServiceError> {
    let executor = Executor::new(Launcher::current_exe()?, config.limits.clone());
    let keyring = KeyRing::load(&config.key_dirs, Some(&config.revoked_keys))?;
    for skipped in keyring.skipped() {
        tracing::warn!(?skipped, "key file not trusted");
    }
    let shared = Arc::new(Shared::new(executor, keyring, whoopsie_uid()).with_high_water(
        HighWater::new(config.state_dir.clone()),
    ));
    // The builder exports the objects first and requests the name last, so no
    // caller (or activation) ever sees the name without the objects.
    let _connection = zbus::connection::Builder::system()
        .serve_at(OBJECT_PATH, Manager::new(Arc::clone(&shared)))
        .name(BUS_NAME)
        .build()
        .await?;
    tracing::info!(
        version = super::dbus::VERSION,
        "apportd is serving {BUS_NAME}"
    );
    let idle = Duration::from_secs(config.idle_exit_secs);
    let mut last_status = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let jobs = shared.job_paths().len();
        let status = if jobs == 0 {
            "idle".to_owned()
        } else {
            format!("{jobs} job(s)")
        };
        if status != last_status {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
            last_status = status;
        }
        if shared.idle_for(idle) {
            tracing::info!("idle for {} s: exiting", idle.as_secs());
            return Ok(());
        }
    }
}
