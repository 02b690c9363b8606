//! apportd's sd-notify messages, received on a real datagram socket the test
//! binds (no systemd needed): READY, STATUS while a job runs, STATUS idle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::zombie_processes,
    clippy::indexing_slicing
)]

mod harness;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apport_hooks::hook::{Hook, HookLimits, RunAs, Step};
use harness::hook_files::{command, package_hook, step};
use harness::{SystemBus, finished_unsigned_job, have_root};

fn sleeping_hook() -> Vec<u8> {
    let slow = Step {
        max_bytes: 1024,
        timeout_secs: 10,
        ..step("Slow", RunAs::Root, command(&["/usr/bin/sleep", "1"]))
    };
    let hook = Hook {
        description: "one slow step".into(),
        limits: HookLimits {
            reports: 1,
            days: 1,
        },
        ..package_hook("notify-test", "bash", vec![slow])
    };
    bson::serialize_to_vec(&hook).unwrap()
}

#[tokio::test]
async fn sd_notify_reports_ready_running_jobs_and_idle() {
    if !have_root("sd_notify_reports_ready_running_jobs_and_idle") {
        return;
    }
    let bus = SystemBus::start("idle_exit_secs = 2\n");
    let socket_path = bus.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let collecting = {
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            // Until apportd has said it is stopping (or 60 s of silence).
            for _ in 0..300 {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let stopping = text.contains("STOPPING=1");
                    received.lock().unwrap().push(text);
                    if stopping {
                        return;
                    }
                }
            }
        })
    };
    let mut apportd = std::process::Command::new(env!("CARGO_BIN_EXE_apportd"))
        .arg("--config")
        .arg(bus.dir.path().join("apportd.toml"))
        .env_clear()
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env("NOTIFY_SOCKET", &socket_path)
        .spawn()
        .unwrap();
    assert!(bus.wait_for_name("com.ubuntu.apport", true));

    let report_path = bus.dir.path().join("notify.crash");
    std::fs::write(&report_path, "ProblemType: Crash\nPackage: bash 5.2\n").unwrap();
    let connection = bus.connect().await;
    let job = finished_unsigned_job(&connection, &sleeping_hook(), &report_path).await;
    let (_, _, outcome) = job.result().await.unwrap();
    assert_eq!(outcome, "completed");
    drop(connection);

    // apportd exits once idle; the collector stops at its STOPPING=1.
    let status = apportd.wait().unwrap();
    assert!(status.success(), "apportd exited with {status}");
    collecting.join().unwrap();
    let messages = received.lock().unwrap().clone();
    let statuses: Vec<&str> = messages
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|l| l.strip_prefix("STATUS="))
        .collect();
    assert!(
        messages.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1: {messages:?}"
    );
    let running = statuses
        .iter()
        .position(|s| *s == "running 1 job")
        .unwrap_or_else(|| panic!("no running-job status: {messages:?}"));
    assert_eq!(statuses.first(), Some(&"idle"), "{messages:?}");
    assert!(
        statuses[running..].contains(&"idle"),
        "no idle status after the job: {messages:?}"
    );
    assert!(
        messages.last().unwrap().contains("STOPPING=1"),
        "{messages:?}"
    );
}
