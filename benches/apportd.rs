//! apportd benchmark: a one-step hook's round trip through apportd on a
//! private system bus (with the real polkitd), cold (D-Bus activation
//! included) and warm, and apportd's idle RSS. It prints figures and asserts
//! nothing about time. Needs root, dbus-daemon and polkitd:
//!
//! ```text
//! cargo bench --bench apportd
//! ```
//!
//! (`harness = false`: a plain `main`; the bench profile is an optimised build.)
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::cast_precision_loss,
    clippy::indexing_slicing
)]

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use apport_hooks::apportd::output::read_result;
use apport_hooks::apportd::proxy::{Apport1Proxy, JobProxy};
use apport_hooks::hook::{Action, Hook, HookLimits, RunAs, Step, Target};
use futures_util::StreamExt;
use harness::{SystemBus, have_root};
use zbus::names::BusName;

const WARM_RUNS: u32 = 50;
const COLD_RUNS: u32 = 5;

async fn round_trip(apportd: &Apport1Proxy<'_>, hook: &[u8], report: &std::fs::File) -> Duration {
    let connection = apportd.inner().connection();
    let started = Instant::now();
    let path = apportd
        .run_unsigned_hook(hook, zbus::Fd::from(report.as_fd()), HashMap::new())
        .await
        .unwrap();
    // As `apport_hooks::agent::job` waits for a job (no property cache).
    let job = JobProxy::builder(connection)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let mut finished = job.receive_finished().await.unwrap();
    if job.state().await.unwrap() == "running" {
        finished.next().await.unwrap();
    }
    let (fd, _, outcome) = job.result().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome, "completed");
    let result = read_result(fd.into()).unwrap();
    assert_eq!(result.get_str("Ok"), Some(""));
    elapsed
}

fn one_step_hook() -> Vec<u8> {
    let hook = Hook {
        name: "bench".into(),
        description: "one step".into(),
        target: Target::Package("bash".into()),
        when: BTreeMap::new(),
        limits: HookLimits {
            reports: 1,
            days: 1,
        },
        steps: vec![Step {
            key: "Ok".into(),
            run_as: RunAs::Root,
            optional: false,
            replaces: false,
            max_bytes: 1024,
            timeout_secs: 10,
            action: Action::Command(vec!["/usr/bin/true".into()]),
        }],
    };
    bson::serialize_to_vec(&hook).unwrap()
}

async fn apportd_pid(connection: &zbus::Connection) -> u32 {
    zbus::fdo::DBusProxy::new(connection)
        .await
        .unwrap()
        .get_connection_unix_process_id(BusName::try_from("com.ubuntu.apport").unwrap())
        .await
        .unwrap()
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn bench() {
    let bus = SystemBus::start("idle_exit_secs = 1\n");
    let hook = one_step_hook();
    let report_path = bus.dir.path().join("bench.crash");
    std::fs::write(&report_path, "ProblemType: Crash\nPackage: bash 5.2\n").unwrap();
    let report = std::fs::File::open(&report_path).unwrap();
    let connection = zbus::connection::Builder::address(bus.address.as_str())
        .build()
        .await
        .unwrap();
    let apportd = Apport1Proxy::new(&connection).await.unwrap();

    // The step's own run time: what apportd's launcher does, without apportd.
    let mut step_alone = Vec::new();
    for _ in 0..WARM_RUNS {
        let started = Instant::now();
        std::process::Command::new("/usr/bin/true")
            .status()
            .unwrap();
        step_alone.push(started.elapsed());
    }

    // Idle RSS right after start-up: activate with a property read.
    let _ = apportd.version().await.unwrap();
    let pid = apportd_pid(&connection).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_started = vm_rss_kib(pid);
    assert!(bus.wait_for_name("com.ubuntu.apport", false));

    let mut cold = Vec::new();
    for _ in 0..COLD_RUNS {
        cold.push(round_trip(&apportd, &hook, &report).await);
        assert!(
            bus.wait_for_name("com.ubuntu.apport", false),
            "apportd did not exit when idle"
        );
    }
    // Warm: apportd running (one warm-up call first).
    let _ = round_trip(&apportd, &hook, &report).await;
    let pid = apportd_pid(&connection).await;
    let mut warm = Vec::new();
    for _ in 0..WARM_RUNS {
        warm.push(round_trip(&apportd, &hook, &report).await);
    }
    // Let the finished jobs' objects go (their results were fetched).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = vm_rss_kib(pid);

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimised"
    };
    let step = median(step_alone);
    let warm_median = median(warm.clone());
    let warm_mean = warm.iter().sum::<Duration>() / WARM_RUNS;
    println!(
        "apportd benchmark ({profile} build; unsigned one-step root hook, polkit check included):"
    );
    println!(
        "  the step alone (spawn /usr/bin/true), median of {WARM_RUNS}: {:.2} ms",
        ms(step)
    );
    println!(
        "  cold round trip (activation), median of {COLD_RUNS}: {:.2} ms",
        ms(median(cold))
    );
    println!(
        "  warm round trip, median of {WARM_RUNS}: {:.2} ms (mean {:.2} ms), {:.2} ms above the step alone",
        ms(warm_median),
        ms(warm_mean),
        ms(warm_median.saturating_sub(step))
    );
    println!(
        "  idle VmRSS after start-up: {:.1} MB",
        rss_started as f64 / 1024.0
    );
    println!(
        "  idle VmRSS after {} jobs: {:.1} MB",
        COLD_RUNS + WARM_RUNS + 1,
        rss_after as f64 / 1024.0
    );
}

fn main() {
    if !have_root("apportd benchmark") {
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}
