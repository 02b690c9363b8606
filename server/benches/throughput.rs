//! Throughput of crash intake and result ingestion on SQLite and
//! PostgreSQL, next to a bare axum handler that only decodes the BSON and
//! answers `OOPSID`, measured in the same run: per engine, in rounds of a
//! bare phase followed at once by a daisy intake phase (see [`rounds`]),
//! with the CPU time each server spends per request. Prints numbers; asserts nothing. After the
//! result phase the intake runs once more with its crashes spread over
//! 10,000 buckets (the first frame of `StacktraceTop` renamed per request),
//! into the database the earlier phases filled: not one of the targets, it
//! shows what a single bucket hides. Last, per engine, the floor: the
//! database's own CPU for the rows and keys daisy stores per crash,
//! written by a plain loop (SQLite: in a process on daisy's CPU;
//! PostgreSQL: its processes' CPU), and the ceiling it allows (the share of
//! bare a daisy costing only the bare handler plus that floor would reach,
//! never idle): how far the targets are from what the machine can do.
//!
//! What runs where: the real `daisy serve` binary (its own accept loop with
//! the header read timeout, the whole router, the configured storage) is a
//! separate process pinned to CPU 0 with `taskset`; the bare handler is this
//! bench binary re-executed in a "bare" role, also a process of its own on
//! CPU 0; the load generator (this process, one thread, 64 keep-alive
//! connections) is pinned to CPU 1. PostgreSQL (the test harness's, started
//! here with `fsync` ON so that its figures are for a durable database) is
//! not pinned. daisy's RSS under load is its own `VmHWM` from
//! `/proc/PID/status`; CPU time per request is the process's utime + stime
//! from `/proc/PID/stat` over a load phase divided by the requests answered.
//!
//! The load generator must not be the bottleneck: each connection writes a
//! request template with only its varying bytes patched in (the system id,
//! the OOPS id and token) and reads the answers into one reused buffer,
//! parsing only the status and `Content-Length`; nothing is allocated per
//! request.
//!
//! `cargo bench -p daisy --bench throughput`; optionally `DAISY_BENCH_SECS=N`
//! (per load phase, default 3), `DAISY_BENCH_ROUNDS=N` (bare and intake
//! phases alternated, default 3), `DAISY_BENCH_CONNECTIONS=N` (default 64),
//! `DAISY_BENCH_ENGINES=postgres` (only these engines, comma-separated),
//! `DAISY_BENCH_BARE=ADDR` (only the intake load against a server already
//! running at ADDR: to compare this generator with wrk on one process),
//! `DAISY_BENCH_FLOOR_BATCHES=8,16,64` (the SQLite floor also at these
//! crashes per commit).
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apport_hooks::report::ReportLimits;
use apport_hooks::wire::{StringFields, WireLimits};
use axum::Router;
use axum::body::Bytes;

use daisy::auth::hash_token;
use daisy::storage::{NewHook, NewOops, PostgresStorage, SqliteStorage, Storage, TargetKey};
use harness::Postgres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Keep-alive connections of the load generator unless
/// `DAISY_BENCH_CONNECTIONS` says otherwise.
const DEFAULT_CONNECTIONS: usize = 64;

/// Set in the environment of the re-executed bench binary that serves the
/// bare handler.
const ROLE_ENV: &str = "DAISY_BENCH_ROLE";

/// `DAISY_BENCH_BARE=ADDR`: only drive the bare load (crash intake bodies)
/// against a server already listening at ADDR, then stop; for comparing this
/// generator with another (wrk) on the same server process.
const BARE_ADDR_ENV: &str = "DAISY_BENCH_BARE";

/// CPU of the servers (daisy, bare handler).
const SERVER_CPU: &str = "0";
/// CPU of the load generator.
const LOAD_CPU: &str = "1";

/// Active hooks that match nothing the load sends: the intake's "does a
/// hook match" check runs with hooks present.
const IDLE_HOOKS: u32 = 10;

/// Width of the seeded result tokens (`token` and a zero-padded number), so
/// that every results request has the same length.
const TOKEN_DIGITS: usize = 10;

/// Initial size of a connection's response buffer; grows only for a response
/// larger than this (none of the bench's are).
const READ_BUF: usize = 16 * 1024;

/// A positive count from the environment variable `name`, else `default`.
fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// `DAISY_BENCH_SECS=N` (default 3): seconds per load phase.
fn secs() -> u64 {
    env_count("DAISY_BENCH_SECS", 3)
}

/// `DAISY_BENCH_ROUNDS=N` (default 3): alternating bare and intake phases
/// per engine. This machine's speed drifts by half within minutes, so a
/// ratio is only worth what its two phases had in common: each round
/// measures the bare handler and then daisy back to back, and the ratio
/// reported is the median of the rounds' ratios.
fn rounds() -> u64 {
    env_count("DAISY_BENCH_ROUNDS", 3)
}

/// `DAISY_BENCH_ENGINES=postgres` (a comma-separated list; default all):
/// the engines whose phases run.
fn engine_wanted(name: &str) -> bool {
    std::env::var("DAISY_BENCH_ENGINES")
        .map(|list| list.split(',').any(|e| e.trim() == name))
        .unwrap_or(true)
}

/// `DAISY_BENCH_CONNECTIONS=N`: keep-alive connections of the load.
fn connections() -> usize {
    usize::try_from(env_count(
        "DAISY_BENCH_CONNECTIONS",
        DEFAULT_CONNECTIONS as u64,
    ))
    .unwrap_or(DEFAULT_CONNECTIONS)
}

/// The status and `Content-Length` of a response head (without the blank
/// line). Compares the header names in place: nothing is allocated.
fn parse_head(head: &[u8]) -> (u16, usize) {
    assert!(
        head.len() >= 12 && head.starts_with(b"HTTP/1.1 "),
        "not an HTTP/1.1 response: {:?}",
        String::from_utf8_lossy(head)
    );
    let status = head[9..12]
        .iter()
        .fold(0u16, |s, &d| s * 10 + u16::from(d - b'0'));
    let mut length = 0;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            length = value
                .iter()
                .filter(|b| b.is_ascii_digit())
                .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            panic!("chunked response: the load generator reads Content-Length bodies only");
        }
    }
    (status, length)
}

/// One connection's response buffer, reused for every response: the bytes
/// in `start..end` are read but not yet consumed.
struct ResponseReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ResponseReader {
    fn new() -> ResponseReader {
        ResponseReader {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    /// Reads more bytes after `end`, first moving the unconsumed ones to the
    /// front when the buffer is full.
    async fn fill(&mut self, stream: &mut TcpStream) {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = stream.read(&mut self.buf[self.end..]).await.unwrap();
        assert!(n > 0, "server closed the connection");
        self.end += n;
    }

    /// Reads one HTTP/1.1 response with a `Content-Length`; returns its
    /// status. Searches for the end of the head only in the bytes not yet
    /// searched.
    async fn next(&mut self, stream: &mut TcpStream) -> u16 {
        // Offsets from `start`: `fill` may move the bytes.
        let mut searched: usize = 0;
        let head_len = loop {
            let from = searched.saturating_sub(3);
            if let Some(p) = self.buf[self.start + from..self.end]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                break from + p;
            }
            searched = self.end - self.start;
            self.fill(stream).await;
        };
        let (status, body) = parse_head(&self.buf[self.start..self.start + head_len]);
        let total = head_len + 4 + body;
        while self.end - self.start < total {
            self.fill(stream).await;
        }
        self.start += total;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        status
    }
}

/// Where a request template's varying bytes go.
fn slot(template: &[u8], marker: &[u8]) -> std::ops::Range<usize> {
    let at = template
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    at..at + marker.len()
}

/// CPU time (user + system, all threads) a process has used, in clock ticks,
/// from `/proc/PID/stat`; with `children`, also that of its reaped children.
fn cpu_ticks(pid: u32, children: bool) -> Option<u64> {
    stat_ticks(Path::new(&format!("/proc/{pid}")), children)
}

/// CPU time of the process or thread whose `/proc` directory is `dir`
/// (`/proc/PID`, `/proc/PID/task/TID`), as [`cpu_ticks`] counts it.
fn stat_ticks(dir: &Path, children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // After the command name in parentheses (which may hold spaces): field 3
    // (state) onwards; utime, stime, cutime, cstime are fields 14 to 17.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let mut ticks = field(14)? + field(15)?;
    if children {
        ticks += field(16)? + field(17)?;
    }
    Some(ticks)
}

/// The parent PID of a process, from `/proc/PID/stat`.
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`; 100 on
/// Linux when that fails).
fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Processes whose CPU time a load phase is charged with.
#[derive(Clone, Copy)]
enum Cpu {
    /// One process (its threads).
    Process(u32),
    /// A PostgreSQL postmaster, its live children (the backends, WAL writer,
    /// checkpointer, …) and those it reaped.
    ProcessTree(u32),
    /// The threads of a process with this name (as `comm` shows it: the
    /// first 15 bytes).
    Threads(u32, &'static str),
}

impl Cpu {
    fn ticks(self) -> u64 {
        match self {
            Cpu::Process(pid) => cpu_ticks(pid, false).unwrap_or(0),
            Cpu::ProcessTree(root) => {
                let mut ticks = cpu_ticks(root, true).unwrap_or(0);
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                        continue;
                    };
                    if parent_pid(pid) == Some(root) {
                        ticks += cpu_ticks(pid, false).unwrap_or(0);
                    }
                }
                ticks
            }
            Cpu::Threads(pid, name) => {
                let comm = &name.as_bytes()[..name.len().min(15)];
                let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                    return 0;
                };
                tasks
                    .flatten()
                    .filter(|task| {
                        std::fs::read(task.path().join("comm"))
                            .is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == comm)
                    })
                    .filter_map(|task| stat_ticks(&task.path(), false))
                    .sum()
            }
        }
    }
}

/// What one load phase (or several, merged) measured.
struct Load {
    /// Answered requests.
    done: u64,
    /// Seconds under load.
    elapsed: f64,
    /// Answered requests per second.
    rate: f64,
    /// Answers other than `200`.
    bad: u64,
    /// CPU time per answered request of each process in `cpu`, in µs.
    cpu_us: Vec<f64>,
    /// CPU time per answered request of the load generator (this process).
    generator_us: f64,
}

impl Load {
    /// Several phases as one: their requests over their time, CPU per
    /// request weighted by requests.
    fn merge(loads: &[Load]) -> Load {
        let done: u64 = loads.iter().map(|l| l.done).sum();
        let elapsed: f64 = loads.iter().map(|l| l.elapsed).sum();
        let weighted = |f: &dyn Fn(&Load) -> f64| {
            loads.iter().map(|l| f(l) * l.done as f64).sum::<f64>() / done.max(1) as f64
        };
        let processes = loads.first().map_or(0, |l| l.cpu_us.len());
        Load {
            done,
            elapsed,
            rate: done as f64 / elapsed.max(f64::MIN_POSITIVE),
            bad: loads.iter().map(|l| l.bad).sum(),
            cpu_us: (0..processes)
                .map(|p| weighted(&|l: &Load| l.cpu_us[p]))
                .collect(),
            generator_us: weighted(&|l: &Load| l.generator_us),
        }
    }
}

/// The median of `values` (the mean of the middle two of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let upper = values.get(n / 2).copied().unwrap_or(f64::NAN);
    if n % 2 == 1 {
        return upper;
    }
    let lower = values
        .get(n.wrapping_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN);
    (lower + upper) / 2.0
}

/// Keep-alive load: [`connections`] connections, each sending `template`
/// back to back for the run time, with `patch(i, request)` writing the
/// varying part of the `i`-th request (a fresh system id, a token) into the
/// connection's own copy of it. Nothing is allocated per request. Measures
/// the CPU time of the processes in `cpu` over the phase.
async fn load<P>(addr: SocketAddr, template: Vec<u8>, patch: P, cpu: &[Cpu]) -> Load
where
    P: Fn(u64, &mut [u8]) + Clone + Send + 'static,
{
    let counter = Arc::new(AtomicU64::new(0));
    let me = std::process::id();
    let ticks_before: Vec<u64> = cpu.iter().map(|c| c.ticks()).collect();
    let me_before = cpu_ticks(me, false).unwrap_or(0);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs());
    let mut tasks = Vec::new();
    for _ in 0..connections() {
        let counter = Arc::clone(&counter);
        let mut request = template.clone();
        let patch = patch.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut responses = ResponseReader::new();
            let (mut done, mut bad) = (0u64, 0u64);
            while Instant::now() < deadline {
                patch(counter.fetch_add(1, Ordering::Relaxed), &mut request);
                stream.write_all(&request).await.unwrap();
                if responses.next(&mut stream).await != 200 {
                    bad += 1;
                }
                done += 1;
            }
            (done, bad)
        }));
    }
    let (mut done, mut bad) = (0u64, 0u64);
    for t in tasks {
        let (d, b) = t.await.unwrap();
        done += d;
        bad += b;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let per_request = |ticks: u64| ticks as f64 / clock_ticks_per_sec() * 1e6 / done.max(1) as f64;
    Load {
        done,
        elapsed,
        rate: done as f64 / elapsed,
        bad,
        cpu_us: cpu
            .iter()
            .zip(ticks_before)
            .map(|(c, before)| per_request(c.ticks().saturating_sub(before)))
            .collect(),
        generator_us: per_request(cpu_ticks(me, false).unwrap_or(0).saturating_sub(me_before)),
    }
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

/// Hex digits of a whoopsie system id (a SHA-512).
const SYSTEM_ID_HEX: usize = 128;

/// splitmix64: a cheap bijective mix, so request `i` gets its own
/// random-looking system id.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes a 128-hex-digit system id for request `i` into `out`. Real ids
/// are SHA-512 hashes of the machine id, spread over the whole key space:
/// counting ids would land next to each other in daisy's per-system
/// duplicate index and flatter it.
fn put_system_id(out: &mut [u8], i: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (k, chunk) in out.chunks_mut(16).enumerate() {
        let mut v = mix(i.wrapping_mul(8).wrapping_add(k as u64));
        for b in chunk.iter_mut() {
            *b = HEX[(v & 15) as usize];
            v >>= 4;
        }
    }
}

/// Writes the time of day `secs` (wrapped to a day) as `HH:MM:SS`.
fn put_clock(out: &mut [u8], secs: u64) {
    let secs = secs % 86_400;
    let fields = [secs / 3_600, secs / 60 % 60, secs % 60];
    for (pair, value) in out.chunks_mut(3).zip(fields) {
        pair[0] = b'0' + (value / 10) as u8;
        pair[1] = b'0' + (value % 10) as u8;
    }
}

/// Crash intake load: the same upload for a new, random-looking system id
/// each request, its `Date` moving on with the clock as real crashes' do
/// (the upload's own time of day plus the seconds since the load began;
/// daisy files duplicates by the crash time). With `buckets`, the first
/// frame of `StacktraceTop` is renamed to one of that many names per
/// request, so the crashes fall into that many buckets instead of one.
/// Request `i` comes from system id number `first_id + i`: phases that run
/// into the same database start far apart, or every crash of a later one
/// would be a duplicate (same ids, same clock).
async fn intake_load(addr: SocketAddr, cpu: &[Cpu], buckets: Option<u64>, first_id: u64) -> Load {
    let marker = "#".repeat(SYSTEM_ID_HEX);
    let template = http_post(&format!("/{marker}"), "", &upload());
    let seq = slot(&template, marker.as_bytes());
    let clock = slot(&template, UPLOAD_CLOCK.as_bytes());
    let top = slot(&template, b"StacktraceTop");
    let frame = slot(&template[top.end..], FIRST_FRAME.as_bytes());
    let frame = top.end + frame.start..top.end + frame.end;
    let began = Instant::now();
    load(
        addr,
        template,
        move |i, request| {
            put_system_id(&mut request[seq.clone()], first_id + i);
            put_clock(
                &mut request[clock.clone()],
                UPLOAD_SECS_OF_DAY + began.elapsed().as_secs(),
            );
            if let Some(n) = buckets {
                put_frame_name(&mut request[frame.clone()], mix(i) % n);
            }
        },
        cpu,
    )
    .await
}

/// The first frame's function in the upload's `StacktraceTop`.
const FIRST_FRAME: &str = "seat_start";

/// Buckets of the many-bucket intake phase.
const MANY_BUCKETS: u64 = 10_000;

/// Writes `b` and the decimal digits of `n`, zero-padded to fill `out`
/// (the length of [`FIRST_FRAME`], so the BSON string keeps its length).
fn put_frame_name(out: &mut [u8], mut n: u64) {
    out[0] = b'b';
    for b in out[1..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The time of day in the `Date` of `signal_crash.bson`
/// (`Wed Nov 25 10:02:13 2026`), and as seconds.
const UPLOAD_CLOCK: &str = "10:02:13";
const UPLOAD_SECS_OF_DAY: u64 = 10 * 3_600 + 2 * 60 + 13;

fn upload() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../shared/testdata/uploads/signal_crash.bson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Decodes the upload with the same one-pass reader daisy's intake uses
/// (`StringFields`), so that the ratio to daisy is what storage,
/// bucketing and daisy's layers cost, not a difference in BSON decoders.
async fn bare_handler(body: Bytes) -> (axum::http::StatusCode, String) {
    let report = ReportLimits {
        max_keys: daisy::controllers::crash::MAX_UPLOAD_KEYS,
        ..ReportLimits::default()
    };
    match StringFields::parse(&body, &WireLimits::default(), &report) {
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

/// Crashes per transaction of the SQLite floor: about what daisy's writer
/// gathers at 64 connections (27–29 per commit, counted with `perf stat -e
/// syscalls:sys_enter_fdatasync` on the writer; docs/daisy.md, "Session 9").
const FLOOR_BATCH: u64 = 32;

/// Batch sizes the SQLite floor is also run at, from
/// `DAISY_BENCH_FLOOR_BATCHES` (comma-separated; none unless set): shows
/// what a commit costs apart from its crashes.
fn extra_floor_batches() -> Vec<u64> {
    std::env::var("DAISY_BENCH_FLOOR_BATCHES")
        .map(|v| {
            v.split(',')
                .map(|b| match b.trim().parse() {
                    Ok(n) if n > 0 => n,
                    _ => panic!("DAISY_BENCH_FLOOR_BATCHES: positive numbers, comma-separated"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Environment of the "sqlite-floor" role: crashes per transaction.
const FLOOR_BATCH_ENV: &str = "DAISY_BENCH_FLOOR_BATCH";

/// Environment of the "sqlite-floor" role: the database daisy filled (its
/// newest bucketed row is the floor's template).
const FLOOR_SAMPLE_ENV: &str = "DAISY_BENCH_FLOOR_SAMPLE";
/// Environment of the "sqlite-floor" role: the migrated, empty database
/// the floor writes into.
const FLOOR_DB_ENV: &str = "DAISY_BENCH_FLOOR_DB";

/// The "sqlite-floor" role: for one load phase's time, inserts the rows and
/// duplicate keys daisy writes per crash (the newest bucketed `oops` row of the
/// sample database, each with a fresh UUIDv7 id, random system id and key)
/// with a plain loop on a connection with daisy's writer settings, in
/// transactions of `DAISY_BENCH_FLOOR_BATCH` crashes, durably. No HTTP, no duplicate
/// probe, no merge, no queue: what SQLite alone costs for what daisy
/// stores. Prints `rows cpu_ticks seconds`.
fn run_sqlite_floor() {
    let sample = rusqlite::Connection::open(std::env::var(FLOOR_SAMPLE_ENV).unwrap()).unwrap();
    let row: (String, String, String, String, Option<String>, Vec<u8>, i64) = sample
        .query_row(
            "SELECT bucket, sas, package, source_package, duplicate_signature, report, \
             bucket_id FROM oops WHERE bucket_id IS NOT NULL ORDER BY rowid DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .unwrap();
    drop(sample);
    let (bucket, sas, package, source_package, signature, report, bucket_id) = row;
    let mut conn =
        daisy::storage::sqlite_writer_connection(Path::new(&std::env::var(FLOOR_DB_ENV).unwrap()))
            .unwrap();
    let me = std::process::id();
    let (ticks_before, start) = (cpu_ticks(me, false).unwrap(), Instant::now());
    let deadline = start + Duration::from_secs(secs());
    let batch: u64 = std::env::var(FLOOR_BATCH_ENV).unwrap().parse().unwrap();
    let mut system_id = [0u8; SYSTEM_ID_HEX];
    let mut rows = 0u64;
    while Instant::now() < deadline {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        {
            let mut oops = tx
                .prepare_cached(
                    "INSERT INTO oops (id, system_id, received, bucket, sas, package, \
                     source_package, duplicate_signature, report, bucket_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .unwrap();
            let mut key = tx
                .prepare_cached(
                    "INSERT INTO oops_dedup_recent (crash_time, key_hash, oops_id) \
                     VALUES (?1, ?2, ?3)",
                )
                .unwrap();
            for _ in 0..batch {
                let id = uuid::Uuid::now_v7();
                let mut text = uuid::Uuid::encode_buffer();
                put_system_id(&mut system_id, rows);
                let now = daisy::storage::now();
                oops.execute(rusqlite::params![
                    &*id.hyphenated().encode_lower(&mut text),
                    std::str::from_utf8(&system_id).unwrap(),
                    now,
                    bucket,
                    sas,
                    package,
                    source_package,
                    signature,
                    report,
                    bucket_id,
                ])
                .unwrap();
                let hash = [mix(rows).to_le_bytes(), mix(!rows).to_le_bytes()].concat();
                key.execute(rusqlite::params![now, hash, &id.as_bytes()[..]])
                    .unwrap();
                rows += 1;
            }
        }
        tx.commit().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ticks = cpu_ticks(me, false).unwrap() - ticks_before;
    println!("{rows} {ticks} {elapsed}");
}

/// Runs [`run_sqlite_floor`] with `batch` crashes per commit in a process
/// of its own on [`SERVER_CPU`], into a freshly migrated database `fresh`:
/// its rate and CPU time per crash, in µs.
async fn sqlite_floor(sample: &Path, fresh: &Path, batch: u64) -> (f64, f64) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = fresh.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    drop(SqliteStorage::open(fresh).await.unwrap());
    let out = Command::new("taskset")
        .args(["-c", SERVER_CPU])
        .arg(std::env::current_exe().unwrap())
        .env(ROLE_ENV, "sqlite-floor")
        .env(FLOOR_SAMPLE_ENV, sample)
        .env(FLOOR_DB_ENV, fresh)
        .env(FLOOR_BATCH_ENV, batch.to_string())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the SQLite floor failed");
    let line = String::from_utf8(out.stdout).unwrap();
    let mut fields = line.split_whitespace().map(|f| f.parse::<f64>().unwrap());
    let (rows, ticks, secs) = (
        fields.next().unwrap(),
        fields.next().unwrap(),
        fields.next().unwrap(),
    );
    (rows / secs, ticks / clock_ticks_per_sec() * 1e6 / rows)
}

/// Connections of the PostgreSQL floor, so that PostgreSQL is kept busy
/// while one of them waits for its commit.
const PG_FLOOR_CLIENTS: usize = 2;

/// The columns of daisy's stored crash that the PostgreSQL floor copies.
struct PgRowTemplate {
    bucket: String,
    sas: String,
    package: String,
    source: String,
    signature: Option<String>,
    report: Vec<u8>,
}

/// Inserts daisy's rows and duplicate keys into a freshly migrated
/// database on `pg` for one load phase's time, [`FLOOR_BATCH`] crashes per
/// statement like daisy's batch statement (`UNNEST` arrays, one implicit,
/// durable transaction) but without its claim, lookups or retries, from
/// `loops` plain loops, each on its own connection; the template is the
/// newest bucketed row of daisy's database `sample`. Returns the CPU time
/// of PostgreSQL's processes (those of `postmaster`) per crash, in µs, and
/// the crashes stored per second. With one loop the rate is what one connection
/// committing its statements in sequence reaches, as daisy's one crash
/// writer does, with nothing else running.
async fn postgres_floor(pg: &Postgres, sample: &str, postmaster: u32, loops: usize) -> (f64, f64) {
    let connect = |db: String| async move { harness::postgres::client(&pg.url(&db)).await };
    let template = connect(sample.to_owned())
        .await
        .query_one(
            "SELECT bucket, sas, package, source_package, duplicate_signature, report \
             FROM oops WHERE bucket IS NOT NULL ORDER BY received DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let template = Arc::new(PgRowTemplate {
        bucket: template.get(0),
        sas: template.get(1),
        package: template.get(2),
        source: template.get(3),
        signature: template.get(4),
        report: template.get(5),
    });
    let db = pg.create_database().await;
    drop(PostgresStorage::connect(&pg.url(&db)).await.unwrap());
    let mut clients = Vec::new();
    for _ in 0..loops {
        clients.push(connect(db.clone()).await);
    }
    // Nothing of daisy's may land in the floor: its tables vacuumed and
    // analyzed (no autovacuum due), its dirty pages written out, and the
    // migrating storage's backends gone (one reaped between the two reads
    // of a ProcessTree snapshot would be counted in neither, or in the
    // floor).
    let admin = connect(sample.to_owned()).await;
    admin.batch_execute("VACUUM ANALYZE").await.unwrap();
    admin.batch_execute("CHECKPOINT").await.unwrap();
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1";
    while admin
        .query_one(others, &[&db])
        .await
        .unwrap()
        .get::<_, i64>(0)
        > loops as i64
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = Cpu::ProcessTree(postmaster);
    let (ticks_before, start) = (cpu.ticks(), Instant::now());
    let deadline = start + Duration::from_secs(secs());
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        let template = Arc::clone(&template);
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare(
                    "WITH keys AS (INSERT INTO oops_dedup (crash_time, system_id, digest, oops_id) \
                        SELECT * FROM UNNEST($11::bigint[], $2::text[], $4::text[], $1::text[])) \
                     INSERT INTO oops (id, system_id, received, bucket, sas, package, \
                        source_package, duplicate_signature, report) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $5::text[], \
                        $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[])",
                )
                .await
                .unwrap();
            let PgRowTemplate {
                bucket,
                sas,
                package,
                source,
                signature,
                report,
            } = &*template;
            let n = FLOOR_BATCH as usize;
            let mut system_id = [0u8; SYSTEM_ID_HEX];
            let mut rows = 0u64;
            while Instant::now() < deadline {
                let now = daisy::storage::now();
                let first = rows.wrapping_mul(loops as u64) + c as u64;
                let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
                let systems: Vec<String> = (0..n as u64)
                    .map(|i| {
                        put_system_id(&mut system_id, first.wrapping_add(i << 40));
                        String::from_utf8_lossy(&system_id).into_owned()
                    })
                    .collect();
                let digests: Vec<String> = (0..n as u64)
                    .map(|i| {
                        let key = first.wrapping_add(i << 40);
                        format!("{:016x}{:016x}", mix(key), mix(!key))
                    })
                    .collect();
                client
                    .execute(
                        &statement,
                        &[
                            &ids,
                            &systems,
                            &vec![now; n],
                            &digests,
                            &vec![bucket.as_str(); n],
                            &vec![sas.as_str(); n],
                            &vec![package.as_str(); n],
                            &vec![source.as_str(); n],
                            &vec![signature.as_deref(); n],
                            &vec![report.as_slice(); n],
                            &vec![now; n],
                        ],
                    )
                    .await
                    .unwrap();
                rows += n as u64;
            }
            (rows, client)
        }));
    }
    // The clients outlive the last snapshot, so that their backends (with
    // almost all of the floor's CPU) are read live, not while exiting.
    let (mut rows, mut clients) = (0, Vec::new());
    for task in tasks {
        let (n, client) = task.await.unwrap();
        rows += n;
        clients.push(client);
    }
    let (ticks, elapsed) = (cpu.ticks() - ticks_before, start.elapsed());
    drop(clients);
    (
        ticks as f64 / clock_ticks_per_sec() * 1e6 / rows as f64,
        rows as f64 / elapsed.as_secs_f64(),
    )
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

    /// The PostgreSQL server's postmaster: the process whose command line
    /// names the data directory next to this server's socket directory.
    fn postmaster(&self) -> Option<u32> {
        let Engine::Postgres(pg, db) = self else {
            return None;
        };
        let url = pg.url(db);
        let socket_dir = url.split(' ').find_map(|f| f.strip_prefix("host="))?;
        let data = format!("{socket_dir}/data");
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                (comm.trim() == "postgres"
                    && cmdline.split(|&b| b == 0).any(|arg| arg == data.as_bytes()))
                .then_some(pid)
            })
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
            .map(|i| {
                (
                    uuid::Uuid::new_v4().to_string(),
                    format!("token{i:0width$}", width = TOKEN_DIGITS),
                )
            })
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
                let mut client = harness::postgres::client(&pg.url(db)).await;
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

/// Intake (in rounds, each right after a bare handler phase), then zstd
/// result ingestion, against a real `daisy serve`.
async fn bench_engine(engine: Engine<'_>, data_dir: &Path) {
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
    let mut cpu = vec![Cpu::Process(daisy.child.id())];
    match (&engine, engine.postmaster()) {
        (Engine::Sqlite(_), _) => cpu.push(Cpu::Threads(
            daisy.child.id(),
            daisy::storage::SQLITE_WRITER_THREAD,
        )),
        (_, Some(postmaster)) => cpu.push(Cpu::ProcessTree(postmaster)),
        (_, None) => {}
    }
    let bare_server = ServerProcess::bare();
    let bare_cpu = [Cpu::Process(bare_server.child.id())];
    let (mut bares, mut intakes) = (Vec::new(), Vec::new());
    // On SQLite each round also measures the floor (after the intake, so
    // that the bare handler, the floor and daisy are measured within
    // seconds of each other), and its writeback is flushed before the next.
    let mut floors = Vec::new();
    for round in 0..rounds() {
        let bare = intake_load(bare_server.addr, &bare_cpu, None, round << 32).await;
        let intake = intake_load(daisy.addr, &cpu, None, round << 32).await;
        let floor = match &engine {
            Engine::Sqlite(dir) => {
                let sample = dir.join("daisy.sqlite3");
                let (_, floor_us) =
                    sqlite_floor(&sample, &dir.join("floor.sqlite3"), FLOOR_BATCH).await;
                let _ = Command::new("sync").status();
                floors.push((floor_us, bare.cpu_us[0] / (bare.cpu_us[0] + floor_us)));
                format!(
                    "; floor {floor_us:.1} µs, ceiling {:.0}%",
                    100.0 * bare.cpu_us[0] / (bare.cpu_us[0] + floor_us)
                )
            }
            Engine::Postgres(..) => String::new(),
        };
        println!(
            "round   {name:<8} {:>3}: bare {:>6.0} req/s {:>5.1} µs, intake {:>6.0} req/s {:>5.1} µs: {:>3.0}% of bare, {:.2}x its CPU{floor}",
            round + 1,
            bare.rate,
            bare.cpu_us[0],
            intake.rate,
            intake.cpu_us[0],
            100.0 * intake.rate / bare.rate,
            intake.cpu_us[0] / bare.cpu_us[0],
        );
        bares.push(bare);
        intakes.push(intake);
    }
    let rate_ratios = bares.iter().zip(&intakes).map(|(b, i)| i.rate / b.rate);
    let cpu_ratios = bares
        .iter()
        .zip(&intakes)
        .map(|(b, i)| i.cpu_us[0] / b.cpu_us[0]);
    let (rate_ratio, cpu_ratio) = (median(rate_ratios.collect()), median(cpu_ratios.collect()));
    let bare = &Load::merge(&bares);
    let intake = Load::merge(&intakes);
    print_bare(bare, bare_server.peak_rss_kib());
    print_rate("intake", name, &intake, "bare", bare, "");
    print_cpu("intake", name, &intake, "bare", bare);
    println!(
        "intake  {name:<8} median of {} rounds: {:.0}% of bare, {:.2}x its CPU per request",
        bares.len(),
        100.0 * rate_ratio,
        cpu_ratio
    );
    // What the CPU time measured would allow with no idle at all: on
    // SQLite daisy's core; on PostgreSQL both cores, shared by daisy,
    // PostgreSQL and the load generator.
    let (cores, per_crash, whose) = match &engine {
        Engine::Sqlite(_) => (1.0, intake.cpu_us[0], "daisy's CPU per crash, on its core"),
        Engine::Postgres(..) => (
            2.0,
            intake.cpu_us[0] + intake.cpu_us[1] + intake.generator_us,
            "daisy's, PostgreSQL's and the load generator's CPU per crash, on the 2 CPUs",
        ),
    };
    println!(
        "ceiling {name:<8} {:.0}% of bare at the costs measured: {whose}, never idle; the intake reached {:.0}% of it \
         (the rest is idle)",
        100.0 * cores * bare.cpu_us[0] / per_crash,
        100.0 * intake.rate * per_crash / (cores * 1e6)
    );
    drop(bare_server);
    let storage = engine.open().await;
    let hook = storage
        .insert_hook(hook("bench", "bench", 1_000_000_000, i64::MAX / 2, now))
        .await
        .unwrap();
    drop(storage);
    // Enough tokens for the run at up to twice the intake rate.
    let n = ((intake.rate * 2.0) as u64 * secs()).clamp(1000, 400_000);
    let pairs = Arc::new(engine.seed_tokens(hook.id, n).await);
    let result = zstd::encode_all(
        &bson::doc! { "LightdmLog": "seat0: failed to start X server\n".repeat(20) }
            .to_vec()
            .unwrap()[..],
        3,
    )
    .unwrap();
    let oops_marker = "#".repeat(pairs[0].0.len());
    let token_marker = "@".repeat(pairs[0].1.len());
    let template = http_post(
        &format!("/hooks/{}/results/{oops_marker}", hook.id),
        &format!("Authorization: Bearer {token_marker}\r\nContent-Encoding: zstd\r\n"),
        &result,
    );
    let (oops_at, token_at) = (
        slot(&template, oops_marker.as_bytes()),
        slot(&template, token_marker.as_bytes()),
    );
    let results = load(
        daisy.addr,
        template,
        move |i, request| {
            let (oops, token) = &pairs[(i as usize) % pairs.len()];
            request[oops_at.clone()].copy_from_slice(oops.as_bytes());
            request[token_at.clone()].copy_from_slice(token.as_bytes());
        },
        &cpu,
    )
    .await;
    print_rate("results", name, &results, "intake", &intake, ", zstd");
    print_cpu("results", name, &results, "intake", &intake);
    // The same intake with the crashes spread over many buckets, into the
    // database the first phase filled: each bucket's index range grows at
    // its own end (docs/daisy.md, "Session 5"). Not one of the targets.
    let spread = intake_load(daisy.addr, &cpu, Some(MANY_BUCKETS), 1 << 40).await;
    let note = format!(", {MANY_BUCKETS} buckets");
    print_rate("intake", name, &spread, "bare", bare, &note);
    print_cpu("intake", name, &spread, "1-bucket intake", &intake);
    println!(
        "rss     {name:<8} {:>9} KiB peak (VmHWM of the daisy process)",
        daisy.peak_rss_kib()
    );
    // Last, so that the floors' writes do not slow daisy's phases.
    if let (Engine::Postgres(pg, db), Some(postmaster)) = (&engine, engine.postmaster()) {
        drop(daisy);
        let (floor_us, _) = postgres_floor(pg, db, postmaster, PG_FLOOR_CLIENTS).await;
        println!(
            "floor   {name:<8} {floor_us:>7.1} µs of PostgreSQL's CPU per crash: daisy's rows and keys by plain loops \
             ({FLOOR_BATCH} per statement), against {:.1} µs for daisy's intake",
            intake.cpu_us[1]
        );
        println!(
            "ceiling {name:<8} {:.0}% of bare: daisy costing only the bare handler, PostgreSQL only this floor, \
             the load generator its {:.1} µs, on the 2 CPUs, never idle",
            100.0 * 2.0 * bare.cpu_us[0] / (bare.cpu_us[0] + floor_us + intake.generator_us),
            intake.generator_us
        );
        let (_, serial) = postgres_floor(pg, db, postmaster, 1).await;
        println!(
            "floor   {name:<8} {serial:>9.0} crashes/s by one such loop alone (its statements in sequence, \
             as daisy's one crash writer commits its batches)"
        );
        println!(
            "ceiling {name:<8} {:.0}% of bare with one crash writer: that rate, with daisy and the load generator \
             taking none of PostgreSQL's CPU",
            100.0 * serial / bare.rate
        );
    } else if let Engine::Sqlite(dir) = &engine {
        drop(daisy);
        let (sample, fresh) = (dir.join("daisy.sqlite3"), dir.join("floor.sqlite3"));
        println!(
            "floor   {name:<8} {:>7.1} µs per crash, median of {} rounds: daisy's rows and keys by a plain loop \
             ({FLOOR_BATCH} per commit, its writer's settings, CPU 0), against its writer thread's {:.1} µs",
            median(floors.iter().map(|(floor, _)| *floor).collect()),
            floors.len(),
            intake.cpu_us[1]
        );
        println!(
            "ceiling {name:<8} median of {} rounds: {:.0}% of bare: a daisy costing only the bare handler plus the floor, never idle",
            floors.len(),
            100.0 * median(floors.iter().map(|(_, ceiling)| *ceiling).collect())
        );
        for batch in extra_floor_batches() {
            let (rate, floor_us) = sqlite_floor(&sample, &fresh, batch).await;
            println!(
                "floor   {name:<8} {rate:>9.0} crashes/s {floor_us:.1} µs each at {batch} per commit"
            );
        }
    }
}

/// The rate line of a phase, as a share of the phase it is compared with;
/// `note` ends the parenthesis.
fn print_rate(phase: &str, name: &str, load: &Load, base_name: &str, base: &Load, note: &str) {
    println!(
        "{phase:<7} {name:<8} {:>9.0} req/s  ({:.0}% of {base_name}, {} non-200{note})",
        load.rate,
        100.0 * load.rate / base.rate,
        load.bad
    );
}

/// The `cpu` lines of a phase: the server's CPU time per request, as a
/// multiple of that of the phase it is compared with, then PostgreSQL's and
/// the load generator's.
fn print_cpu(phase: &str, name: &str, load: &Load, base_name: &str, base: &Load) {
    println!(
        "cpu     {phase:<7} {name:<8} {:>7.1} µs per request of daisy ({:.2}x {base_name}; load generator {:.1} µs)",
        load.cpu_us[0],
        load.cpu_us[0] / base.cpu_us[0],
        load.generator_us
    );
    match (name, load.cpu_us.get(1)) {
        ("sqlite", Some(writer)) => println!(
            "cpu     {phase:<7} {name:<8} {writer:>7.1} µs of it in the writer thread, {:.1} µs in the HTTP threads",
            load.cpu_us[0] - writer
        ),
        (_, Some(pg)) => println!(
            "cpu     {phase:<7} {name:<8} {pg:>7.1} µs per request of PostgreSQL (all its processes)"
        ),
        (_, None) => {}
    }
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
                    crash_time: 0,
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

/// The bare handler's lines: its load over all rounds.
fn print_bare(bare: &Load, rss_kib: u64) {
    println!(
        "bare    axum     {:>9.0} req/s  (decode BSON, answer OOPSID; {} non-200; RSS {rss_kib} KiB)",
        bare.rate, bare.bad,
    );
    println!(
        "cpu     bare    axum     {:>7.1} µs per request of the bare handler (load generator {:.1} µs)",
        bare.cpu_us[0], bare.generator_us
    );
}

fn main() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("bare") => return run_bare(),
        Ok("sqlite-floor") => return run_sqlite_floor(),
        _ => {}
    }
    if let Ok(addr) = std::env::var(BARE_ADDR_ENV) {
        pin_self(LOAD_CPU);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bare = rt.block_on(intake_load(addr.parse().unwrap(), &[], None, 0));
        println!(
            "bare    {addr}  {:>9.0} req/s  ({} non-200; load generator {:.1} µs per request)",
            bare.rate, bare.bad, bare.generator_us
        );
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
        let dir = tempfile::tempdir().unwrap();
        let sqlite_dir = dir.path().join("sqlite");
        std::fs::create_dir_all(&sqlite_dir).unwrap();
        if engine_wanted("sqlite") {
            bench_engine(Engine::Sqlite(&sqlite_dir), &sqlite_dir).await;
        }
        if let Some(pg) = pg.as_ref().filter(|_| engine_wanted("postgres")) {
            let pg_dir = dir.path().join("postgres");
            std::fs::create_dir_all(&pg_dir).unwrap();
            let db = pg.create_database().await;
            bench_engine(Engine::Postgres(pg, db), &pg_dir).await;
        }

        if engine_wanted("sqlite") {
            let sqlite = SqliteStorage::open(&dir.path().join("match.sqlite3"))
                .await
                .unwrap();
            bench_matching("sqlite", Arc::new(sqlite)).await;
        }
        if let Some(pg) = pg.as_ref().filter(|_| engine_wanted("postgres")) {
            let url = pg.fresh_database().await;
            let storage = PostgresStorage::connect(&url).await.unwrap();
            bench_matching("postgres", Arc::new(storage)).await;
        }
    });
}
