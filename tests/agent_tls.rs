//! Strict certificate verification against a real TLS server on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apport_hooks::agent::http::ClientSettings;
use apport_hooks::agent::ids::SystemId;
use apport_hooks::agent::upload::{UploadOutcome, Uploader};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const OOPS_ID: &str = "4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d";

struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn make_pki(name: &str) -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// A TLS server that answers every complete request with `200 <oops> OOPSID`
/// and counts the requests it got through the handshake.
struct TlsIntake {
    url: String,
    requests: Arc<AtomicUsize>,
    runtime: tokio::runtime::Runtime,
}

impl TlsIntake {
    fn start(pki: &Pki) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    let body_start = loop {
                        let Ok(n) = tls.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&request[..body_start]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while request.len() < body_start + length {
                        let Ok(n) = tls.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = format!("{OOPS_ID} OOPSID");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            url,
            requests,
            runtime,
        }
    }
}

fn upload(url: &str, ca_file: Option<std::path::PathBuf>) -> UploadOutcome {
    let settings = ClientSettings {
        ca_file,
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    };
    let uploader =
        Uploader::new(url, SystemId::parse("i_am_a_machine").unwrap(), &settings).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(uploader.upload_encoded(b"\x05\0\0\0\0".to_vec(), None))
}

#[test]
fn the_pinned_ca_is_trusted() {
    let pki = make_pki("apport-hooks test CA");
    let intake = TlsIntake::start(&pki);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let outcome = upload(&intake.url, Some(ca));
    assert_eq!(
        outcome.oops().map(|o| o.as_str().to_owned()).as_deref(),
        Some(OOPS_ID),
        "{outcome:?}"
    );
    assert_eq!(intake.requests.load(Ordering::SeqCst), 1);
    intake.runtime.shutdown_background();
}

#[test]
fn a_server_the_system_store_does_not_know_is_refused() {
    let pki = make_pki("apport-hooks unknown CA");
    let intake = TlsIntake::start(&pki);
    let outcome = upload(&intake.url, None);
    let UploadOutcome::RetryLater {
        status: None,
        message,
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert_eq!(
        intake.requests.load(Ordering::SeqCst),
        0,
        "no byte of the report was sent"
    );
    intake.runtime.shutdown_background();
}

#[test]
fn a_pinned_ca_excludes_every_other_ca() {
    let server_pki = make_pki("apport-hooks server CA");
    let other = make_pki("apport-hooks other CA");
    let intake = TlsIntake::start(&server_pki);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other.pem");
    std::fs::write(&ca, &other.ca_pem).unwrap();
    let outcome = upload(&intake.url, Some(ca));
    assert!(
        matches!(outcome, UploadOutcome::RetryLater { status: None, .. }),
        "{outcome:?}"
    );
    assert_eq!(intake.requests.load(Ordering::SeqCst), 0);
    intake.runtime.shutdown_background();
}
