//! The TLS listener's configuration: rustls with the `ring` provider (the
//! same provider as the machine side, so one crypto library in the tree),
//! certificate chain and key read from PEM files at start and again on
//! `SIGHUP` ([`ReloadingAcceptor`]), so a renewed certificate is served
//! without a restart and without dropping connections.

use std::sync::{Arc, PoisonError, RwLock};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::TlsFiles;

/// Why the TLS listener cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error(
        "cannot read the TLS certificate chain {path}: {message} (tls_cert must be PEM, leaf first)"
    )]
    Cert {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The key file cannot be read or holds no PEM private key.
    #[error(
        "cannot read the TLS private key {path}: {message} (tls_key must be a PEM PKCS#8, PKCS#1 or SEC1 key)"
    )]
    Key {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// Reads the PEM files and builds the acceptor (TLS 1.2 and 1.3, HTTP/1.1
/// offered through ALPN).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_path = files.cert.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_path,
            message: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The acceptor of the TLS listener, re-read from its files on demand.
///
/// Each new connection takes the acceptor current at its accept; a
/// connection already up keeps the configuration it was made with, so a
/// reload drops nothing. A failed reload keeps the previous pair.
pub struct ReloadingAcceptor {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl ReloadingAcceptor {
    /// Reads the files once; fails like [`acceptor`].
    pub fn new(files: &TlsFiles) -> Result<ReloadingAcceptor, TlsError> {
        Ok(ReloadingAcceptor {
            files: files.clone(),
            current: RwLock::new(acceptor(files)?),
        })
    }

    /// The acceptor for the connection being accepted now.
    pub fn current(&self) -> TlsAcceptor {
        // The lock only guards a pointer swap; a poisoned lock still holds a
        // usable acceptor.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the certificate and key; on error the previous pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = acceptor(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The files this acceptor is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}
