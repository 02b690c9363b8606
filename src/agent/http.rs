//! The HTTPS client every agent request goes through.
//!
//! rustls with the ring provider (installed once per process; aws-lc-rs is
//! never built), certificates checked against the system trust store through
//! rustls-platform-verifier, or only against a pinned CA file when one is
//! configured (`ca_file`). No redirects are followed (a POST has nowhere
//! legitimate to be redirected to), and every request has a connect timeout
//! and a whole-request timeout. The spec asks for strict server checking
//! ("Whoopsie needs to check the SSL certificate"): there is no switch to
//! turn verification off.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use thiserror::Error;

use super::config::Settings;

/// Largest CA file read.
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// The client could not be built.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The CA file could not be read.
    #[error("cannot read the CA file {path}: {source}; fix ca_file in hooks.conf")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("the CA file {path} holds no PEM certificate ({reason}); fix ca_file in hooks.conf")]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// reqwest refused the configuration (e.g. no system trust store).
    #[error("cannot set up HTTPS: {0}; install ca-certificates or set ca_file in hooks.conf")]
    Build(#[source] reqwest::Error),
}

/// Installs ring as the process's rustls provider (once; a provider already
/// installed by someone else is kept).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race to another installer is fine: one provider wins.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// TLS and timeout settings of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Trust only the CAs in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// Cap on connecting.
    pub connect_timeout: Duration,
    /// Cap on the whole request.
    pub timeout: Duration,
}

impl From<&Settings> for ClientSettings {
    fn from(settings: &Settings) -> Self {
        Self {
            ca_file: settings.ca_file.clone(),
            connect_timeout: settings.connect_timeout,
            timeout: settings.timeout,
        }
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|source| HttpError::CaFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES)
        .read_to_end(&mut pem)
        .map_err(|source| HttpError::CaFile {
            path: path.to_path_buf(),
            source,
        })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| HttpError::CaFileInvalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(HttpError::CaFileInvalid {
            path: path.to_path_buf(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// Builds the client.
///
/// # Errors
/// [`HttpError`] for an unreadable CA file or an unusable trust store.
pub fn build_client(settings: &ClientSettings) -> Result<reqwest::Client, HttpError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .tls_backend_rustls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .user_agent(super::upload::client_version());
    if let Some(path) = &settings.ca_file {
        builder = builder.tls_certs_only(read_ca_file(path)?);
    }
    builder.build().map_err(HttpError::Build)
}
