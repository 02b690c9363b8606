//! The server skeleton over real HTTP: health, metrics, limits, shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use std::time::Duration;

use harness::http::request;
use harness::{Engine, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

fn upload() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../shared/testdata/uploads/signal_crash.bson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let server = TestServer::start(Engine::Sqlite, "").await.unwrap();
    let addr = server.addr;
    let body = upload();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /abc123 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    // Let the server start reading the request, then ask it to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections once shutdown began"
    );
    stream.write_all(rest).await.unwrap();
    let response = harness::http::read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().ends_with(" OOPSID"));
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_body_that_never_ends_is_cut_by_the_timeout() {
    let server = TestServer::start(Engine::Sqlite, "[limits]\nrequest_timeout_secs = 1\n")
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /abc123 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n\x10\x00")
        .await
        .unwrap();
    // Never send the rest: the server must answer and close on its own.
    let response = harness::http::read_response(&mut stream).await;
    assert_eq!(response.status, 408);
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 0);
    // Counted, under its route, although its handler never answered.
    let r = request(server.addr, "GET", "/metrics", &[], b"").await;
    let text = r.text();
    assert!(
        text.contains("daisy_requests_total{route=\"/{system_id}\",status=\"408\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = TestServer::start(Engine::Sqlite, "[limits]\nheader_read_timeout_secs = 1\n")
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Half a request line, then nothing (slowloris).
    stream.write_all(b"POST /abc1").await.unwrap();
    let mut raw = Vec::new();
    // Generous bound over the configured 1 s: only "closed eventually" is asserted.
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await;
    assert!(closed.is_ok(), "the connection is still open after 30 s");
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 0);
    server.stop().await.unwrap();
}

/// Waits (30 s at most, a generous bound: only "eventually" is asserted
/// by the caller) until `n` connections are open.
async fn wait_for_connections(server: &TestServer, n: u64) {
    for _ in 0..600 {
        if server.app.metrics.connections_open() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// At `limits.max_connections` daisy stops accepting: a third client waits
/// in the listen queue, unanswered, until one of the two served closes.
#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let server = TestServer::start(
        Engine::Sqlite,
        "[limits]\nmax_connections = 2\nheader_read_timeout_secs = 60\n",
    )
    .await
    .unwrap();
    // Two idle clients take both connections (the header timeout is far).
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    wait_for_connections(&server, 2).await;
    assert_eq!(server.app.metrics.connections_open(), 2);
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(get).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(early.is_err(), "a third connection was served past the cap");
    let text = server.app.metrics.render(None);
    assert!(text.contains("daisy_http_connection_limit 2\n"), "{text}");
    assert!(text.contains("daisy_http_connections 2\n"), "{text}");
    assert!(
        text.contains("daisy_http_connection_limit_reached_total 1\n"),
        "{text}"
    );
    drop(held.remove(0));
    let r = harness::http::read_response(&mut third).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    drop(held);
    drop(third);
    server.stop().await.unwrap();
}

/// A client that sends requests but never reads the answers cannot hold
/// its connection (one of `max_connections`): once nothing could be sent to
/// it for the request timeout, it is disconnected and its slot is free.
#[tokio::test]
async fn a_client_that_never_reads_its_answers_loses_its_connection() {
    let server = TestServer::start(
        Engine::Sqlite,
        "[limits]\nmax_connections = 1\nrequest_timeout_secs = 1\n",
    )
    .await
    .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    // Pipelined requests, as many as the buffers take; nothing is read.
    let writer = tokio::spawn(async move {
        let requests = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4096);
        while stream.write_all(&requests).await.is_ok() {}
        stream
    });
    wait_for_connections(&server, 1).await;
    wait_for_connections(&server, 0).await;
    assert_eq!(
        server.app.metrics.connections_open(),
        0,
        "the stalled client still holds its connection"
    );
    let r = request(server.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200, "the slot is free for the next client");
    drop(writer.await);
    server.stop().await.unwrap();
}

/// Each body limit holds where its body is read, now that no layer sets
/// them: the crash upload's `max_report_bytes` (checked while reading, so a
/// lying `Content-Length` gets no further) and the JSON API's
/// `max_api_body_bytes`. Refused bodies store nothing and are counted.
#[tokio::test]
async fn each_route_keeps_its_body_limit() {
    let body = upload();
    let toml = format!(
        "[limits]\nmax_report_bytes = {}\nmax_api_body_bytes = 64\n",
        body.len()
    );
    let server = TestServer::start(Engine::Sqlite, &toml).await.unwrap();
    let system = "a".repeat(128);

    let mut over = body.clone();
    over.push(0);
    let r = request(server.addr, "POST", &format!("/{system}"), &[], &over).await;
    assert_eq!((r.status, r.text().as_str()), (413, "Report too large."));
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 0);
    assert_eq!(server.app.metrics.crash_count("too_large"), 1);

    // A head that promises a small body, then more than the cap.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /{system} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        over.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&over).await.unwrap();
    stream.write_all(b"\r\n0\r\n\r\n").await.unwrap();
    let response = harness::http::read_response(&mut stream).await;
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 0);

    let r = request(server.addr, "POST", &format!("/{system}"), &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let token = "retracer-token";
    server
        .app
        .storage
        .add_user(
            "retracer",
            "retracer",
            &daisy::auth::hash_token(token),
            "test",
            0,
        )
        .await
        .unwrap();
    let json = format!("{{\"signature\": \"{}\"}}", "x".repeat(100));
    let r = request(
        server.addr,
        "PUT",
        "/api/1.0/sas/some-sas",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        json.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_json_error(&r);
    server.stop().await.unwrap();
}

/// Bodies in flight share a budget beyond their first 64 KiB: a crash body
/// that would pass it is refused with `503` (whoopsie retries it later),
/// one that fits is read, and what a request holds is given back when it
/// is answered. Nothing is stored for a refused body.
#[tokio::test]
async fn crash_bodies_share_a_budget_of_memory() {
    // About 97 KiB beyond the free 64 KiB of each body.
    let server = TestServer::start(Engine::Sqlite, "[limits]\nbody_bytes_in_flight = 100000\n")
        .await
        .unwrap();
    let system = "a".repeat(128);
    let path = format!("/{system}");
    // Over free + budget: refused, and counted.
    let r = request(server.addr, "POST", &path, &[], &vec![b'A'; 300_000]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(server.app.metrics.crash_count("busy"), 1);
    // Within it: read (and refused as what it is, not BSON).
    let r = request(server.addr, "POST", &path, &[], &vec![b'A'; 150_000]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(server.app.bodies.available(), 100000 / 1024 * 1024);
    // One body held mid-stream takes its share: a second one like it does
    // not fit until the first is answered.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 150000\r\n\r\n"
    );
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&[b'A'; 149_000]).await.unwrap();
    first.flush().await.unwrap();
    for _ in 0..200 {
        if server.app.bodies.available() < 100000 / 1024 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = request(server.addr, "POST", &path, &[], &vec![b'A'; 150_000]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    first.write_all(&[b'A'; 1000]).await.unwrap();
    let r = harness::http::read_response(&mut first).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = request(server.addr, "POST", &path, &[], &vec![b'A'; 150_000]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 0);
    server.stop().await.unwrap();
}

/// The API's errors are JSON (`{"error": …}`) also where axum's extractors
/// refuse a request, and a caller without the right team is refused
/// before the body is looked at.
#[tokio::test]
async fn api_errors_are_json_and_rights_come_before_the_body() {
    let server = TestServer::start(Engine::Sqlite, "").await.unwrap();
    let mut auth = Vec::new();
    for team in ["core-dev", "retracer"] {
        let token = daisy::auth::new_token();
        server
            .app
            .storage
            .add_user(team, team, &daisy::auth::hash_token(&token), "test", 0)
            .await
            .unwrap();
        auth.push(format!("Bearer {token}"));
    }
    let (dev, retracer) = (auth[0].as_str(), auth[1].as_str());

    for path in [
        "/api/1.0/hooks/not-a-number",
        "/api/1.0/hooks/1/results?limit=many",
    ] {
        let r = request(server.addr, "GET", path, &[("Authorization", dev)], b"").await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_json_error(&r);
    }

    let valid = &b"{\"signature\": \"s\"}"[..];
    for (auth, content_type, body, status) in [
        (dev, true, &b"not json"[..], 403),
        (dev, false, valid, 403),
        (retracer, false, valid, 415),
        (retracer, true, &b"not json"[..], 400),
        (retracer, true, &b"{}"[..], 422),
    ] {
        let mut headers = vec![("Authorization", auth)];
        if content_type {
            headers.push(("Content-Type", "application/json"));
        }
        let r = request(server.addr, "PUT", "/api/1.0/sas/some-sas", &headers, body).await;
        assert_eq!(r.status, status, "{}", r.text());
        assert_json_error(&r);
    }
    assert_eq!(
        server.app.storage.sas_signature("some-sas").await.unwrap(),
        None
    );
    server.stop().await.unwrap();
}

/// A body of the API's error shape.
fn assert_json_error(r: &harness::http::Response) {
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()));
    assert!(v["error"].is_string(), "{v}");
}

/// Crash uploads go past the router (`router::CrashFastPath`); every other
/// path keeps the router's answer: the one-segment routes refuse a `POST`,
/// a percent-encoded system id is decoded and checked as before, a second
/// segment finds no route, and all of them are counted under their route
/// template.
#[tokio::test]
async fn crash_uploads_past_the_router_answer_and_count_as_through_it() {
    let server = TestServer::start(Engine::Sqlite, "").await.unwrap();
    let body = upload();
    for path in ["/healthz", "/metrics"] {
        let r = request(server.addr, "POST", path, &[], &body).await;
        assert_eq!(r.status, 405, "{path}");
    }
    let r = request(server.addr, "POST", "/abc%2Fdef", &[], &body).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Invalid system identifier.")
    );
    let r = request(server.addr, "POST", "/abc123/", &[], &body).await;
    assert_eq!(r.status, 404);
    assert_eq!(server.app.storage.totals().await.unwrap().oopses, 0);

    let decoded = request(server.addr, "POST", "/abc%31", &[], &body).await;
    assert_eq!(decoded.status, 200, "{}", decoded.text());
    let direct = request(server.addr, "POST", "/abc2", &[], &body).await;
    assert_eq!(direct.status, 200, "{}", direct.text());
    for (r, system) in [(&decoded, "abc1"), (&direct, "abc2")] {
        let text = r.text();
        let id = text.strip_suffix(" OOPSID").unwrap();
        let stored = server.app.storage.oops(id).await.unwrap().unwrap();
        assert_eq!(stored.oops.system_id, system);
    }
    let again = request(server.addr, "POST", "/abc2", &[], &body).await;
    assert_eq!(
        (again.status, again.text().as_str()),
        (409, "Crash already reported.")
    );

    let metrics = request(server.addr, "GET", "/metrics", &[], b"")
        .await
        .text();
    for line in [
        "daisy_requests_total{route=\"/{system_id}\",status=\"200\"} 2",
        "daisy_requests_total{route=\"/{system_id}\",status=\"400\"} 1",
        "daisy_requests_total{route=\"/{system_id}\",status=\"409\"} 1",
        "daisy_requests_total{route=\"/healthz\",status=\"405\"} 1",
        "daisy_requests_total{route=\"/metrics\",status=\"405\"} 1",
        "daisy_requests_total{route=\"unmatched\",status=\"404\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    server.stop().await.unwrap();
}
