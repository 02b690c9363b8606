//! Throughput of crash intake and result ingestion on SQLite and
//! PostgreSQL, next to a bare axum handler that only decodes the BSON and
//! answers `OOPSID`, measured in the same run. The server runs on one
//! thread, the load generator on another. Prints numbers; asserts nothing.
//!
//! `cargo bench -p daisy --bench throughput` (optionally `DAISY_BENCH_SECS=N`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    missing_docs
)]

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apport_hooks::wire::{WireLimits, decode_untrusted};
use axum::Router;
use axum::body::Bytes;

use daisy::app::App;
use daisy::auth::hash_token;
use daisy::config::{CommonArgs, Config};
use daisy::storage::{
    NewHook, NewOops, OfferRequest, PostgresStorage, SqliteStorage, Storage, TargetKey,
};
use harness::Postgres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 64;

fn secs() -> u64 {
    std::env::var("DAISY_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// Starts `router` on a one-thread runtime of its own OS thread.
fn spawn_server(router: Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// Reads one HTTP/1.1 response with a Content-Length; returns the status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "server closed the connection");
                buf.extend_from_slice(&chunk[..n]);
            }
            return head[9..12].parse().unwrap();
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Keep-alive load: `CONNECTIONS` connections, each sending requests made by
/// `make(i)` back to back for the run time. Returns requests per second.
async fn load<F>(addr: SocketAddr, make: F) -> (f64, u64)
where
    F: Fn(u64) -> Vec<u8> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let make = Arc::clone(&make);
        let counter = Arc::clone(&counter);
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buf = Vec::new();
            let mut bad = 0u64;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                stream.write_all(&make(i)).await.unwrap();
                if read_response(&mut stream, &mut buf).await != 200 {
                    bad += 1;
                }
            }
            bad
        }));
    }
    let mut bad = 0;
    for t in tasks {
        bad += t.await.unwrap();
    }
    let n = counter.load(std::sync::atomic::Ordering::Relaxed);
    (n as f64 / start.elapsed().as_secs_f64(), bad)
}

fn http_post(path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

fn upload() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../shared/testdata/uploads/signal_crash.bson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn bare_handler(body: Bytes) -> (axum::http::StatusCode, String) {
    match decode_untrusted(&body, &WireLimits::default()) {
        Ok(_) => (
            axum::http::StatusCode::OK,
            format!("{} OOPSID", uuid::Uuid::new_v4()),
        ),
        Err(_) => (axum::http::StatusCode::BAD_REQUEST, "Invalid BSON.".into()),
    }
}

fn daisy_router(storage: Arc<dyn Storage>, dir: &std::path::Path) -> Router {
    let common = CommonArgs {
        config: None,
        data_dir: Some(dir.to_owned()),
        database: None,
    };
    let config = Config::from_toml("", &common, Some("127.0.0.1:0")).unwrap();
    daisy::router::build(App::new(config, storage))
}

/// Prepares `n` OOPSes, each with a token for one hook of unbounded limits.
async fn prepare_results(storage: &Arc<dyn Storage>, n: u64) -> (i64, Vec<(String, String)>) {
    let now = daisy::storage::now();
    let hook = storage
        .insert_hook(NewHook {
            name: "bench".into(),
            version: 1,
            target: TargetKey {
                kind: "package".into(),
                value: "bench".into(),
            },
            max_reports: u32::MAX,
            max_days: 30,
            not_after: now + 86_400,
            disk_cap: i64::MAX / 2,
            source: String::new(),
            bundle: vec![],
            sha256: String::new(),
            actor: "bench".into(),
            created: now,
        })
        .await
        .unwrap();
    let mut pairs = Vec::new();
    for i in 0..n {
        let oops = uuid::Uuid::new_v4().to_string();
        storage
            .insert_oops(NewOops {
                id: oops.clone(),
                system_id: format!("bench{i}"),
                received: now,
                dedup_digest: None,
                bucket: None,
                sas: None,
                package: Some("bench".into()),
                source_package: None,
                duplicate_signature: None,
                report: vec![5, 0, 0, 0, 0],
            })
            .await
            .unwrap();
        let token = format!("token{i}");
        storage
            .offer_hooks(OfferRequest {
                oops_id: oops.clone(),
                targets: vec![TargetKey {
                    kind: "package".into(),
                    value: "bench".into(),
                }],
                token_hash: hash_token(&token),
                now,
                expires: now + 86_400,
                offer_multiple: u32::MAX,
            })
            .await
            .unwrap();
        pairs.push((oops, token));
    }
    (hook.id, pairs)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn bench_engine(name: &str, storage: Arc<dyn Storage>, dir: &std::path::Path, bare: f64) {
    let addr = spawn_server(daisy_router(Arc::clone(&storage), dir));
    let body = upload();
    let (intake, bad) = load(addr, move |i| http_post(&format!("/bench{i}"), "", &body)).await;
    println!(
        "intake  {name:<8} {intake:>9.0} req/s  ({:.0}% of bare, {bad} non-200)",
        100.0 * intake / bare
    );
    // Enough tokens for the run at up to twice the intake rate.
    let n = ((intake * 2.0) as u64 * secs()).clamp(1000, 200_000);
    let (hook_id, pairs) = prepare_results(&storage, n).await;
    let pairs = Arc::new(pairs);
    let result = zstd::encode_all(
        &bson::doc! { "LightdmLog": "seat0: failed to start X server\n".repeat(20) }
            .to_vec()
            .unwrap()[..],
        3,
    )
    .unwrap();
    let (results, bad) = load(addr, move |i| {
        let (oops, token) = &pairs[(i as usize) % pairs.len()];
        http_post(
            &format!("/hooks/{hook_id}/results/{oops}"),
            &format!("Authorization: Bearer {token}\r\nContent-Encoding: zstd\r\n"),
            &result,
        )
    })
    .await;
    println!(
        "results {name:<8} {results:>9.0} req/s  ({:.0}% of intake, {bad} non-200, zstd)",
        100.0 * results / intake
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr =
            spawn_server(Router::new().route("/{system_id}", axum::routing::post(bare_handler)));
        let body = upload();
        let (bare, _) = load(addr, move |i| http_post(&format!("/bench{i}"), "", &body)).await;
        println!("bare    axum     {bare:>9.0} req/s  (decode BSON, answer OOPSID)");

        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStorage::open(&dir.path().join("daisy.sqlite3"))
            .await
            .unwrap();
        bench_engine("sqlite", Arc::new(sqlite), dir.path(), bare).await;

        if let Some(pg) = Postgres::start() {
            let url = pg.fresh_database().await;
            let storage = PostgresStorage::connect(&url).await.unwrap();
            bench_engine("postgres", Arc::new(storage), dir.path(), bare).await;
        }
        println!(
            "peak RSS of this process (servers + load generator): {} KiB",
            rss_kib()
        );
    });
}
