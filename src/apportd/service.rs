//! Running apportd: export the objects, then own the name, serve until idle.

use std::sync::Arc;
use std::time::Duration;

use super::caller::whoopsie_uid;
use super::config::Config;
use super::dbus::{BUS_NAME, KeySource, Manager, OBJECT_PATH, Shared};
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
    // Read once here so that a broken trust store stops the start with a
    // clear error; read again for every bundle (`with_key_source`).
    let keyring = KeyRing::load(&config.key_dirs, Some(&config.revoked_keys))?;
    for skipped in keyring.skipped() {
        tracing::warn!(?skipped, "key file not trusted");
    }
    let shared = Arc::new(
        Shared::new(executor, keyring, whoopsie_uid())
            .with_key_source(KeySource {
                key_dirs: config.key_dirs.clone(),
                revoked_keys: config.revoked_keys.clone(),
            })
            .with_high_water(HighWater::new(config.state_dir.clone())),
    );
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
    // Type=dbus needs no READY=1; it is harmless there and lets a Type=notify
    // unit work too. STATUS= needs NotifyAccess=main in the unit.
    let mut last_status = status_line(0);
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&last_status),
    ]);
    let idle = Duration::from_secs(config.idle_exit_secs);
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = shared.jobs_changed() => {}
        }
        let status = status_line(shared.running_jobs());
        if status != last_status {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
            last_status = status;
        }
        if shared.idle_for(idle) {
            tracing::info!("idle for {} s: exiting", idle.as_secs());
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
            return Ok(());
        }
    }
}

/// The `STATUS=` text: `idle`, or how many jobs are running.
pub fn status_line(running: usize) -> String {
    match running {
        0 => "idle".to_owned(),
        1 => "running 1 job".to_owned(),
        n => format!("running {n} jobs"),
    }
}
