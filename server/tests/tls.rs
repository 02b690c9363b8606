//! daisy over TLS: a real rustls handshake on loopback with a certificate
//! made here, a whoopsie crash upload over https, and plain HTTP refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
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

/// Writes `made`'s certificate and key as PEM over `cert` and `key`, each by
/// rename, the way a certificate renewal tool replaces them.
fn install(
    made: &rcgen::CertifiedKey<rcgen::KeyPair>,
    cert: &std::path::Path,
    key: &std::path::Path,
) {
    replace(cert, made.cert.pem().as_bytes());
    replace(key, made.signing_key.serialize_pem().as_bytes());
}

fn replace(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A TLS connection to `addr` and the leaf certificate the server showed.
async fn connect(
    addr: std::net::SocketAddr,
    roots: &RootCertStore,
) -> (tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector(roots.clone()).connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, leaf)
}

/// `GET /healthz` on a kept-alive connection; returns the status.
async fn healthz(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> u16 {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tls.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if raw.len() >= end + 4 + length {
            return head.split(' ').nth(1).unwrap().parse().unwrap();
        }
    }
}

/// Waits for a log line of the daisy process that contains `text`.
fn wait_for_log(lines: &std::sync::mpsc::Receiver<String>, text: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("no log line with {text:?}: {e}"));
        if line.contains(text) {
            return line;
        }
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    install(&first, &cert, &key);
    let mut roots = RootCertStore::empty();
    roots.add(first.cert.der().clone()).unwrap();
    roots.add(second.cert.der().clone()).unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_daisy"))
        .args(["serve", "--listen", &addr.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env_remove("DAISY_CONFIG")
        .env_remove("DAISY_DATABASE")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("daisy: {line}");
            let _ = tx.send(line);
        }
    });
    wait_for_log(&lines, "daisy listening");

    let (mut kept, leaf) = connect(addr, &roots).await;
    assert_eq!(leaf, first.cert.der().to_vec());
    assert_eq!(healthz(&mut kept).await, 200);

    // Renewed files, then SIGHUP: new connections see the new certificate,
    // the connection made before keeps working.
    install(&second, &cert, &key);
    signal(&child, "HUP");
    wait_for_log(&lines, "reloaded the TLS certificate and key");
    let (mut fresh, leaf) = connect(addr, &roots).await;
    assert_eq!(
        leaf,
        second.cert.der().to_vec(),
        "new connections get the new certificate"
    );
    assert_eq!(healthz(&mut fresh).await, 200);
    assert_eq!(
        healthz(&mut kept).await,
        200,
        "the old connection was not dropped"
    );

    // A broken certificate file: logged, and the working pair stays.
    replace(
        &cert,
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    signal(&child, "HUP");
    let error = wait_for_log(&lines, "keeping the previous TLS certificate and key");
    assert!(error.contains("ERROR"), "{error}");
    assert!(
        error.contains(&cert.display().to_string()),
        "names the file: {error}"
    );
    let (mut after, leaf) = connect(addr, &roots).await;
    assert_eq!(leaf, second.cert.der().to_vec());
    assert_eq!(healthz(&mut after).await, 200);
    // A key that does not belong to the certificate is refused as well.
    install(&first, &cert, &key);
    replace(&key, second.signing_key.serialize_pem().as_bytes());
    signal(&child, "HUP");
    wait_for_log(&lines, "keeping the previous TLS certificate and key");
    let (_, leaf) = connect(addr, &roots).await;
    assert_eq!(leaf, second.cert.der().to_vec());

    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
}
