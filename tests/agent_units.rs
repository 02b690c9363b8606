//! The shipped `apport-hook.service` and `apport-hook.path`: systemd accepts
//! them, their hardening stays where it is documented, and the service's
//! command line is one the binary accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use std::path::PathBuf;
use std::process::Command;

use harness::{require_program, shipped};

const BINARY: &str = "/usr/bin/apport-hook";

/// The units with ExecStart pointing at the binary under test (the shipped
/// path does not exist on a build machine).
fn units() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(shipped("systemd/apport-hook.service")).unwrap();
    assert!(service.contains(&format!("ExecStart={BINARY} watch")));
    let service_path = dir.path().join("apport-hook.service");
    std::fs::write(
        &service_path,
        service.replace(BINARY, env!("CARGO_BIN_EXE_apport-hook")),
    )
    .unwrap();
    let path_path = dir.path().join("apport-hook.path");
    std::fs::copy(shipped("systemd/apport-hook.path"), &path_path).unwrap();
    (dir, service_path, path_path)
}

#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    if !require_program("/usr/bin/systemd-analyze") {
        return;
    }
    let (_dir, service, path) = units();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&service)
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_service_exposure_stays_at_most_two() {
    if !require_program("/usr/bin/systemd-analyze") {
        return;
    }
    let (_dir, service, _) = units();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&service)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in {text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"));
    assert!(score <= 2.0, "{line}");
}

#[test]
fn the_service_command_line_is_one_the_binary_accepts() {
    let service = std::fs::read_to_string(shipped("systemd/apport-hook.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some(BINARY));
    let dir = tempfile::tempdir().unwrap();
    // Run with the unit's arguments but a crash directory that does not
    // exist: a usage error would exit 2, a start that got past parsing 3.
    let out = Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(words)
        .arg("--crash-dir")
        .arg(dir.path().join("missing"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("CRASH_DB_IDENTIFIER", "i-am-a-machine")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot watch"), "{stderr}");
}
