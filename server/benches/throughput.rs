//! Throughput of crash intake and result ingestion on SQLite and
//! PostgreSQL, next to a bare axum handler that only decodes the BSON and
//! answers `OOPSID`, measured in the same run. Prints numbers; asserts
//! nothing.
//!
//! What runs where: the real `daisy serve` binary (its own accept loop with
//! the header read timeout, the whole router, the configured storage) is a
//! separate process pinned to CPU 0 with `taskset`; the bare handler is this
//! bench binary re-executed in a "bare" role, also a process of its own on
//! CPU 0; the load generator (this process, one thread, 64 keep-alive
//! connections) is pinned to CPU 1. PostgreSQL (the test harness's, started
//! here with `fsync` ON so that its figures are for a durable database) is
//! not pinned. daisy's RSS under load is its own `VmHWM` from
//! `/proc/PID/status`.
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

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apport_hooks::wire::{WireLimits, decode_untrusted};
use axum::Router;
use axum::body::Bytes;

use daisy::auth::hash_token;
use daisy::storage::{NewHook, NewOops, PostgresStorage, SqliteStorage, Storage, TargetKey};
use harness::Postgres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 64;

/// Set in the environment of the re-executed bench binary that serves the
/// bare handler.
const ROLE_ENV: &str = "DAISY_BENCH_ROLE";

/// CPU of the servers (daisy, bare handler).
const SERVER_CPU: &str = "0";
/// CPU of the load generator.
const LOAD_CPU: &str = "1";

/// Active hooks that match nothing the load sends: the intake's "does a
/// hook match" check runs with hooks present.
const IDLE_HOOKS: u32 = 10;

fn secs() -> u64 {
    std::env::var("DAISY_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
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
/// `make(i)` back to back for the run time. Returns requests per second and
/// the number of answers other than `200`.
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

/// The "bare" role: the bare handler on a runtime shaped like daisy's
/// (multi-threaded, as many workers as CPUs it may use: one under
/// `taskset`); prints its address on stdout.
fn run_bare() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let router = Router::new().route("/{system_id}", axum::routing::post(bare_handler));
        axum::serve(listener, router).await.unwrap();
    });
}

/// A server process pinned to [`SERVER_CPU`]; killed when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn bare() -> ServerProcess {
        let mut child = Command::new("taskset")
            .args(["-c", SERVER_CPU])
            .arg(std::env::current_exe().unwrap())
            .env(ROLE_ENV, "bare")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        ServerProcess {
            child,
            addr: line.trim().parse().unwrap(),
        }
    }

    async fn daisy(database: &str, data_dir: &Path) -> ServerProcess {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = std::fs::File::create(data_dir.join("daisy.log")).unwrap();
        let child = Command::new("taskset")
            .args(["-c", SERVER_CPU])
            .arg(env!("CARGO_BIN_EXE_daisy"))
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--database",
                database,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = ServerProcess { child, addr };
        for _ in 0..600 {
            if TcpStream::connect(addr).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "daisy did not start: {}",
            std::fs::read_to_string(data_dir.join("daisy.log")).unwrap_or_default()
        );
    }

    /// Peak resident set size of the process so far (`VmHWM`).
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pins this process (every thread, so start this before any runtime) to
/// one CPU.
fn pin_self(cpu: &str) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "taskset failed");
}

fn hook(name: &str, package: &str, reports: u32, cap: i64, now: i64) -> NewHook {
    NewHook {
        name: name.into(),
        version: 1,
        target: TargetKey {
            kind: "package".into(),
            value: package.into(),
        },
        max_reports: reports,
        max_days: 30,
        not_after: now + 86_400,
        disk_cap: cap,
        source: String::new(),
        bundle: vec![],
        sha256: String::new(),
        actor: "bench".into(),
        created: now,
    }
}

/// Where the engine under test lives.
enum Engine<'a> {
    Sqlite(&'a Path),
    Postgres(&'a Postgres, String),
}

impl Engine<'_> {
    fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(..) => "postgres",
        }
    }

    /// What `daisy serve --database` takes.
    fn database(&self) -> String {
        match self {
            Engine::Sqlite(dir) => format!("sqlite:{}", dir.join("daisy.sqlite3").display()),
            Engine::Postgres(pg, db) => pg.uri(db),
        }
    }

    async fn open(&self) -> Arc<dyn Storage> {
        match self {
            Engine::Sqlite(dir) => Arc::new(
                SqliteStorage::open(&dir.join("daisy.sqlite3"))
                    .await
                    .unwrap(),
            ),
            Engine::Postgres(pg, db) => {
                Arc::new(PostgresStorage::connect(&pg.url(db)).await.unwrap())
            }
        }
    }

    /// Stores `n` OOPSes with one token each for `hook_id`, in bulk (one
    /// transaction), behind daisy's back: the bench's setup, not its subject.
    async fn seed_tokens(&self, hook_id: i64, n: u64) -> Vec<(String, String)> {
        let now = daisy::storage::now();
        let pairs: Vec<(String, String)> = (0..n)
            .map(|i| (uuid::Uuid::new_v4().to_string(), format!("token{i}")))
            .collect();
        match self {
            Engine::Sqlite(dir) => {
                let mut conn = rusqlite::Connection::open(dir.join("daisy.sqlite3")).unwrap();
                conn.busy_timeout(Duration::from_secs(30)).unwrap();
                let tx = conn.transaction().unwrap();
                {
                    let mut oops = tx
                        .prepare(
                            "INSERT INTO oops (id, system_id, received, package, report) \
                             VALUES (?1, ?2, ?3, 'bench', x'0500000000')",
                        )
                        .unwrap();
                    let mut token = tx
                        .prepare(
                            "INSERT INTO hook_tokens (token_hash, hook_id, oops_id, issued, \
                             expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .unwrap();
                    for (i, (id, t)) in pairs.iter().enumerate() {
                        oops.execute(rusqlite::params![id, format!("seed{i}"), now])
                            .unwrap();
                        token
                            .execute(rusqlite::params![
                                hash_token(t),
                                hook_id,
                                id,
                                now,
                                now + 86_400
                            ])
                            .unwrap();
                    }
                }
                tx.commit().unwrap();
            }
            Engine::Postgres(pg, db) => {
                let (mut client, conn) =
                    tokio_postgres::connect(&pg.url(db), tokio_postgres::NoTls)
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let tx = client.transaction().await.unwrap();
                for chunk in pairs.chunks(10_000) {
                    let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
                    let hashes: Vec<String> = chunk.iter().map(|(_, t)| hash_token(t)).collect();
                    tx.execute(
                        "INSERT INTO oops (id, system_id, received, package, report) \
                         SELECT id, 'seed' || id, $2, 'bench', '\\x0500000000'::bytea \
                         FROM UNNEST($1::text[]) AS id",
                        &[&ids, &now],
                    )
                    .await
                    .unwrap();
                    tx.execute(
                        "INSERT INTO hook_tokens (token_hash, hook_id, oops_id, issued, expires) \
                         SELECT h, $3, id, $4, $5 FROM UNNEST($1::text[], $2::text[]) AS u(h, id)",
                        &[&hashes, &ids, &hook_id, &now, &(now + 86_400)],
                    )
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
        pairs
    }
}

/// Intake, then zstd result ingestion, against a real `daisy serve`.
async fn bench_engine(engine: Engine<'_>, data_dir: &Path, bare: f64) {
    let name = engine.name();
    let now = daisy::storage::now();
    {
        // Create and migrate the database, activate hooks that match nothing
        // the load sends.
        let storage = engine.open().await;
        for i in 0..IDLE_HOOKS {
            storage
                .insert_hook(hook(
                    &format!("idle{i}"),
                    &format!("idle{i}"),
                    10,
                    1 << 20,
                    now,
                ))
                .await
                .unwrap();
        }
    }
    let daisy = ServerProcess::daisy(&engine.database(), data_dir).await;
    let body = upload();
    let (intake, bad) = load(daisy.addr, move |i| {
        http_post(&format!("/bench{i}"), "", &body)
    })
    .await;
    println!(
        "intake  {name:<8} {intake:>9.0} req/s  ({:.0}% of bare, {bad} non-200)",
        100.0 * intake / bare
    );
    let storage = engine.open().await;
    let hook = storage
        .insert_hook(hook("bench", "bench", 1_000_000_000, i64::MAX / 2, now))
        .await
        .unwrap();
    drop(storage);
    // Enough tokens for the run at up to twice the intake rate.
    let n = ((intake * 2.0) as u64 * secs()).clamp(1000, 400_000);
    let pairs = Arc::new(engine.seed_tokens(hook.id, n).await);
    let result = zstd::encode_all(
        &bson::doc! { "LightdmLog": "seat0: failed to start X server\n".repeat(20) }
            .to_vec()
            .unwrap()[..],
        3,
    )
    .unwrap();
    let hook_id = hook.id;
    let (results, bad) = load(daisy.addr, move |i| {
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
    println!(
        "rss     {name:<8} {:>9} KiB peak (VmHWM of the daisy process)",
        daisy.peak_rss_kib()
    );
}

/// Hook matching with few and with 10,000 active hooks over 100,000 OOPSes:
/// one index probe per target, so the time per lookup should not grow.
async fn bench_matching(name: &str, storage: Arc<dyn Storage>) {
    let now = daisy::storage::now();
    let mut tasks = Vec::new();
    for i in 0..100_000u32 {
        let storage = Arc::clone(&storage);
        tasks.push(tokio::spawn(async move {
            storage
                .insert_oops(NewOops {
                    id: uuid::Uuid::new_v4().to_string(),
                    system_id: format!("m{i}"),
                    received: now,
                    dedup_digest: None,
                    bucket: Some(format!("/usr/bin/p{}:11:main", i % 5000)),
                    sas: None,
                    package: Some(format!("p{}", i % 5000)),
                    source_package: None,
                    duplicate_signature: None,
                    report: vec![5, 0, 0, 0, 0],
                })
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let targets = |i: u32| {
        vec![
            TargetKey {
                kind: "crash_signature".into(),
                value: format!("/usr/bin/p{i}:11:main"),
            },
            TargetKey {
                kind: "package".into(),
                value: format!("p{i}"),
            },
        ]
    };
    let mut active = 0u32;
    for goal in [10u32, 10_000] {
        while active < goal {
            let kind = if active.is_multiple_of(2) {
                "package"
            } else {
                "crash_signature"
            };
            let value = if kind == "package" {
                format!("p{active}")
            } else {
                format!("/usr/bin/p{active}:11:main")
            };
            let mut h = hook(&format!("m{active}"), "", 10, 1 << 20, now);
            h.target = TargetKey {
                kind: kind.into(),
                value,
            };
            storage.insert_hook(h).await.unwrap();
            active += 1;
        }
        let lookups = 20_000u32;
        let start = Instant::now();
        let mut found = 0usize;
        for i in 0..lookups {
            found += storage
                .matching_hooks(&targets(i % 5000), now)
                .await
                .unwrap()
                .len();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(lookups);
        println!(
            "match   {name:<8} {per:>7.1} µs per OOPS with {goal:>6} active hooks, 100,000 OOPSes ({found} matches)"
        );
    }
}

fn main() {
    if std::env::var(ROLE_ENV).as_deref() == Ok("bare") {
        run_bare();
        return;
    }
    // Before pinning: PostgreSQL inherits no affinity from us.
    let pg = Postgres::start_durable();
    pin_self(LOAD_CPU);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bare_server = ServerProcess::bare();
        let body = upload();
        let (bare, _) = load(bare_server.addr, move |i| {
            http_post(&format!("/bench{i}"), "", &body)
        })
        .await;
        println!(
            "bare    axum     {bare:>9.0} req/s  (decode BSON, answer OOPSID; RSS {} KiB)",
            bare_server.peak_rss_kib()
        );
        drop(bare_server);

        let dir = tempfile::tempdir().unwrap();
        let sqlite_dir = dir.path().join("sqlite");
        std::fs::create_dir_all(&sqlite_dir).unwrap();
        bench_engine(Engine::Sqlite(&sqlite_dir), &sqlite_dir, bare).await;
        if let Some(pg) = &pg {
            let pg_dir = dir.path().join("postgres");
            std::fs::create_dir_all(&pg_dir).unwrap();
            let db = pg.create_database().await;
            bench_engine(Engine::Postgres(pg, db), &pg_dir, bare).await;
        }

        let sqlite = SqliteStorage::open(&dir.path().join("match.sqlite3"))
            .await
            .unwrap();
        bench_matching("sqlite", Arc::new(sqlite)).await;
        if let Some(pg) = &pg {
            let url = pg.fresh_database().await;
            let storage = PostgresStorage::connect(&url).await.unwrap();
            bench_matching("postgres", Arc::new(storage)).await;
        }
    });
}
