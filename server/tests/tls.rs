//! daisy over TLS: a real rustls handshake on loopback with a certificate
//! made here, a whoopsie crash upload over https, and plain HTTP refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Engine, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

fn upload() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../shared/testdata/uploads/signal_crash.bson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A self-signed certificate for `localhost`, written as PEM files; returns
/// the configuration text and the client's trust store.
fn certificate(dir: &std::path::Path) -> (String, RootCertStore) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let toml = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    (toml, roots)
}

fn connector(roots: RootCertStore) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn crash_upload_over_https_is_stored_and_plain_http_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let (toml, roots) = certificate(certs.path());
    let server = TestServer::start(Engine::Sqlite, &toml).await.unwrap();

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector(roots).connect(name, tcp).await.unwrap();
    let body = upload();
    let head = format!(
        "POST /abc123 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    tls.flush().await.unwrap();
    let response = harness::http::read_response(&mut tls).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().ends_with(" OOPSID"), "{}", response.text());

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), plain.read_to_end(&mut raw)).await;
    assert!(
        read.is_ok(),
        "the server must close a plain HTTP connection"
    );
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_cannot_upload() {
    let certs = tempfile::tempdir().unwrap();
    let (toml, _roots) = certificate(certs.path());
    let server = TestServer::start(Engine::Sqlite, &toml).await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let (_, wrong_roots) = certificate(other.path());
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let handshake = connector(wrong_roots).connect(name, tcp).await;
    assert!(
        handshake.is_err(),
        "a certificate of another issuer was accepted"
    );
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 0);
    server.stop().await.unwrap();
}
