//! `apport-hook lint`, run as the built binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_apport-hook");
const GOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hooks/lightdm.toml");
const BAD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/hooks/bad/denied-path.toml"
);

fn lint(args: &[&str]) -> Output {
    Command::new(BIN).arg("lint").args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn a_clean_hook_exits_0_with_a_one_line_summary() {
    let out = lint(&[GOOD]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!("{GOOD}: ok (6 steps, target crash_signature)\n")
    );
}

#[test]
fn a_bad_hook_exits_1_with_file_line_column_lint_message() {
    let out = lint(&[BAD]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let prefix = format!("{BAD}:7:8: denied-path: ");
    assert!(lines[0].starts_with(&prefix), "{text}");
    assert!(lines[0].contains("/etc/ssh/ssh_host_*"), "{text}");
}

#[test]
fn several_files_are_all_reported_and_any_problem_fails_the_run() {
    let out = lint(&[GOOD, BAD]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(": ok (6 steps"), "{text}");
    assert!(text.contains(": denied-path: "), "{text}");
}

#[test]
fn json_output_is_one_document_with_every_diagnostic() {
    let out = lint(&["--json", GOOD, BAD]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["problems"], 1);
    assert_eq!(doc["files"][0]["ok"], true);
    assert_eq!(doc["files"][0]["steps"], 6);
    assert_eq!(doc["files"][0]["target"], "crash_signature");
    let d = &doc["files"][1]["diagnostics"][0];
    assert_eq!(d["file"], BAD);
    assert_eq!(d["line"], 7);
    assert_eq!(d["column"], 8);
    assert_eq!(d["lint"], "denied-path");
    assert!(d["message"].as_str().unwrap().contains("deny-list"));
}

#[test]
fn standard_input_is_read_for_a_dash() {
    let mut child = Command::new(BIN)
        .args(["lint", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let hook = std::fs::read(GOOD).unwrap();
    child.stdin.take().unwrap().write_all(&hook).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "<stdin>: ok (6 steps, target crash_signature)\n"
    );
}

#[test]
fn an_unreadable_file_is_a_runtime_error_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = lint(&[missing.to_str().unwrap(), GOOD]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        err.contains("cannot open") && err.contains("missing.toml"),
        "{err}"
    );
    // The readable file is still checked.
    assert!(stdout(&out).contains(": ok (6 steps"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(lint(&[]).status.code(), Some(2));
    assert_eq!(lint(&["--no-such-flag", GOOD]).status.code(), Some(2));
}

#[test]
fn a_config_file_tightens_the_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bounds.toml");
    // The lightdm example asks for 10 reports.
    std::fs::write(&cfg, "max_reports = 5\ndefault_reports = 5\n").unwrap();
    let out = lint(&["--config", cfg.to_str().unwrap(), GOOD]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains(": limit-too-high: `reports = 10` is above the server's upper bound of 5"),
        "{text}"
    );
}

#[test]
fn an_inconsistent_config_is_a_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bounds.toml");
    std::fs::write(&cfg, "max_days = 5\n").unwrap();
    let out = lint(&["--config", cfg.to_str().unwrap(), GOOD]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("default_days"), "{err}");
}

#[test]
fn every_lint_can_be_listed() {
    let out = lint(&["--list-lints"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), apport_hooks::hook::lints::ALL.len());
    assert!(
        text.lines().any(|l| l.starts_with("denied-path ")),
        "{text}"
    );
    let out = lint(&["--list-lints", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc.as_array().unwrap().len(),
        apport_hooks::hook::lints::ALL.len()
    );
    assert_eq!(doc[0]["name"], apport_hooks::hook::lints::ALL[0].name);
}
