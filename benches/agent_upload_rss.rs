//! The agent's memory while it uploads a 50 MB hook result (issue 5 §4:
//! "the agent's RSS stays under 32 MiB while it uploads a 50 MB result").
//!
//! Needs root (a private system bus, the real polkitd, apportd, test
//! users), like the end-to-end tests, and the `daisy` binary
//! (`cargo build -p daisy`, or `cargo build --release -p daisy`).
//! A hook with five `file` steps reading 10,000,000-byte text files is
//! activated on the real daisy (SQLite, loopback); the real `apport-hook
//! collect` runs it through apportd and uploads the result. Printed: the
//! agent's peak RSS (`VmHWM` of `/proc/PID/status`, sampled every 2 ms until
//! it exits, and the kernel's `ru_maxrss` for it), the wall time of the
//! whole hook phase and the bytes sent. Run with
//! `cargo bench --bench agent_upload_rss` (`APPORT_HOOK_BIN=PATH` measures
//! another build of the agent instead, e.g. an earlier commit's).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    missing_docs
)]

#[path = "../tests/agent_support/daisy_process.rs"]
#[allow(dead_code)]
mod daisy_process;
#[path = "../tests/agent_support/fronts.rs"]
#[allow(dead_code)]
mod fronts;
#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/agent_support/world.rs"]
#[allow(dead_code)]
mod world;

use std::io::Write as _;
use std::time::{Duration, Instant};

use daisy_process::Engine;
use world::{FrontKind, World, json_of, users_report};

/// Size of the result: five values (a step reads at most 10 MiB).
const RESULT_BYTES: usize = 50_000_000;
/// Files (and steps) the result is made of.
const FILES: usize = 5;
/// Bytes of each file.
const FILE_BYTES: usize = RESULT_BYTES / FILES;
/// The issue's bound.
const RSS_BOUND_KIB: u64 = 32 * 1024;

/// 76-character lines of pseudo-random base64 text: compresses to about
/// three quarters, like the logs and dumps hooks attach.
fn write_big_file(path: &std::path::Path, seed: u64) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ seed;
    let mut written = 0usize;
    let mut line = [0u8; 77];
    while written < FILE_BYTES {
        for b in line.iter_mut().take(76) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = ALPHABET[(state & 63) as usize];
        }
        line[76] = b'\n';
        let n = line.len().min(FILE_BYTES - written);
        out.write_all(&line[..n]).unwrap();
        written += n;
    }
    out.flush().unwrap();
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `command`, sampling its VmHWM until it exits; (output, last VmHWM,
/// ru_maxrss of it in KiB, wall time).
fn measure(mut command: std::process::Command) -> (std::process::Output, u64, u64, Duration) {
    use nix::sys::resource::{UsageWho, getrusage};
    let before = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    let start = Instant::now();
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut hwm = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(v) = vm_hwm_kib(pid) {
                    hwm = hwm.max(v);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            hwm
        })
    };
    let out = child.wait_with_output().unwrap();
    let wall = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let hwm = sampler.join().unwrap();
    let after = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    // ru_maxrss of waited-for children is a maximum over all of them: it
    // names this child only when it rose.
    let maxrss = if after > before { after as u64 } else { 0 };
    (out, hwm, maxrss, wall)
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("agent_upload_rss needs root (a private system bus, polkitd, apportd)");
        std::process::exit(1);
    }
    let data = harness::shared_tempdir();
    let mut steps = String::new();
    for i in 0..FILES {
        let big = data.path().join(format!("big-{i}.log"));
        write_big_file(&big, i as u64);
        std::fs::set_permissions(&big, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        steps.push_str(&format!(
            "\n[[step]]\nkey = \"BigLog{i}\"\nfile = \"{}\"\nmax_bytes = 10485760\n",
            big.display()
        ));
    }
    let hook = format!(
        r#"
name = "big-result"
description = "five 10 MB text files, to measure the agent while it uploads 50 MB"

[target]
crash_signature = "/usr/sbin/lightdm:11:seat_start:display_manager_start:main"

[limits]
reports = 1
days = 7
{steps}"#
    );
    let world = World::start_with(
        Engine::Sqlite,
        FrontKind::Direct,
        &hook,
        None,
        "[limits]\njob_bytes = 60000000\n",
        "max_result_bytes = 67108864\nrequest_timeout_secs = 600\n",
    )
    .unwrap();
    let (dir, report) = users_report(None, 1);
    let spool = dir.path().join("spool");
    let (out, upload_hwm, _, _) = measure(world.client(
        None,
        &[
            "upload",
            report.to_str().unwrap(),
            "--server",
            &world.url,
            "--no-hooks",
            "--json",
        ],
    ));
    let oops = json_of(&out)["oops_id"].as_str().unwrap().to_owned();
    let mut collect = world.client(None, &world.collect_args(&report, &spool));
    // Another build of the agent (e.g. an earlier commit's), for a before/after.
    let agent = std::env::var_os("APPORT_HOOK_BIN");
    if let Some(bin) = &agent {
        let mut other = std::process::Command::new(bin);
        other
            .args(world.collect_args(&report, &spool))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &world.bus.address)
            .env("CRASH_DB_IDENTIFIER", world::system_id());
        collect = other;
    }
    let (out, hwm, maxrss, wall) = measure(collect);
    let collected = json_of(&out);
    let hook = &collected["hooks"][0];
    assert_eq!(hook["delivery"], "delivered", "{collected:#}");
    let value_bytes: u64 = hook["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(value_bytes, RESULT_BYTES as u64, "{collected:#}");
    let sent = hook["sent_bytes"].as_u64().unwrap();
    let stored = world.hook_results(&oops);
    assert_eq!(stored.len(), 1);
    for i in 0..FILES {
        assert_eq!(
            stored[0]["keys"][format!("BigLog{i}")]
                .as_str()
                .map(str::len),
            Some(FILE_BYTES)
        );
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    if let Some(bin) = &agent {
        println!("agent_upload_rss: agent {}", bin.to_string_lossy());
    }
    println!("agent_upload_rss: one hook result of {value_bytes} bytes of text in {FILES} keys");
    println!(
        "  apport-hook collect peak RSS: VmHWM {:.1} MiB, ru_maxrss {} (bound {:.0} MiB)",
        mib(hwm),
        if maxrss > 0 {
            format!("{:.1} MiB", mib(maxrss))
        } else {
            "not above earlier children".to_owned()
        },
        mib(RSS_BOUND_KIB)
    );
    println!(
        "  for comparison, apport-hook upload --no-hooks of the small report: VmHWM {:.1} MiB",
        mib(upload_hwm)
    );
    println!(
        "  sent {sent} compressed bytes ({:.0}% of the document); whole hook phase \
         (hook list, bundle, apportd job, validation, upload, daisy storing it) {:.2} s, \
         {:.1} MB/s of result",
        sent as f64 * 100.0 / value_bytes as f64,
        wall.as_secs_f64(),
        value_bytes as f64 / 1e6 / wall.as_secs_f64()
    );
    // Stop daisy, the bus and polkitd before exiting (exit skips destructors).
    drop(world);
    if hwm.max(maxrss) > RSS_BOUND_KIB {
        eprintln!("agent_upload_rss: peak RSS over the bound");
        std::process::exit(1);
    }
}
