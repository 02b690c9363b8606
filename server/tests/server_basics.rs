//! The server skeleton over real HTTP: health, metrics, limits, shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use harness::http::request;
use harness::{Engine, TestServer};

#[tokio::test]
async fn healthz_and_metrics_answer_on_both_engines() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let Some(server) = TestServer::start(engine, "").await else {
            continue;
        };
        let r = request(server.addr, "GET", "/healthz", &[], b"").await;
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
        let r = request(server.addr, "GET", "/metrics", &[], b"").await;
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(
            text.contains("daisy_requests_total{route=\"/healthz\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("daisy_hooks_active 0"), "{text}");
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let server = TestServer::start(Engine::Sqlite, "").await.unwrap();
    let addr = server.addr;
    // Open a request whose body is still coming when shutdown starts.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = harness::http::read_response(&mut stream).await;
    assert_eq!(response.status, 200);
    server.stop().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}
