//! Benchmark (prints, asserts nothing about time): a one-step hook's round
//! trip through apportd, cold (D-Bus activation included) and warm, and
//! apportd's idle RSS. Needs root; run with `--release` for numbers that
//! mean something: `cargo test --release --test apportd_bench -- --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::cast_precision_loss
)]

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

async fn round_trip(apportd: &Apport1Proxy<'_>, hook: &[u8], report: &std::fs::File) -> Duration {
    let connection = apportd.inner().connection();
    let started = Instant::now();
    let path = apportd
        .run_unsigned_hook(hook, zbus::Fd::from(report.as_fd()), HashMap::new())
        .await
        .unwrap();
    let job = JobProxy::builder(connection)
        .path(path)
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

#[tokio::test]
async fn benchmark_round_trip_and_idle_rss() {
    if !have_root("benchmark_round_trip_and_idle_rss") {
        return;
    }
    let bus = SystemBus::start("idle_exit_secs = 10\n");
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
    let hook = bson::serialize_to_vec(&hook).unwrap();
    let report_path = bus.dir.path().join("bench.crash");
    std::fs::write(&report_path, "ProblemType: Crash\nPackage: bash 5.2\n").unwrap();
    let report = std::fs::File::open(&report_path).unwrap();
    let connection = zbus::connection::Builder::address(bus.address.as_str())
        .build()
        .await
        .unwrap();
    let apportd = Apport1Proxy::new(&connection).await.unwrap();

    let step_alone = {
        let started = Instant::now();
        std::process::Command::new("/usr/bin/true")
            .status()
            .unwrap();
        started.elapsed()
    };
    let cold = round_trip(&apportd, &hook, &report).await;
    let runs = 20u32;
    let mut warm = Duration::ZERO;
    for _ in 0..runs {
        warm += round_trip(&apportd, &hook, &report).await;
    }
    let warm = warm / runs;
    let dbus = zbus::fdo::DBusProxy::new(&connection).await.unwrap();
    let pid = dbus
        .get_connection_unix_process_id(BusName::try_from("com.ubuntu.apport").unwrap())
        .await
        .unwrap();
    // Let the finished jobs' objects go (their results were fetched).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .to_owned();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("apportd benchmark ({profile} build, {runs} warm runs, polkit check included):");
    println!(
        "  the step alone (spawn /usr/bin/true): {:.2} ms",
        step_alone.as_secs_f64() * 1e3
    );
    println!(
        "  cold round trip (activation): {:.2} ms",
        cold.as_secs_f64() * 1e3
    );
    println!("  warm round trip: {:.2} ms", warm.as_secs_f64() * 1e3);
    println!("  idle {rss}");
}
