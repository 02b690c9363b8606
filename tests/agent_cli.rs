//! `apport-hook status`, `completions` and `man`, run as the real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::process::Command;

fn apport_hook(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(args)
        .env("CRASH_DB_IDENTIFIER", "i_am_a_machine")
        .env("CRASH_DB_URL", "http://127.0.0.1:5000/")
        .output()
        .unwrap()
}

#[test]
fn status_json_shows_settings_system_id_keys_and_spool() {
    let out = apport_hook(&["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["server_url"], "http://127.0.0.1:5000");
    assert_eq!(json["server_url_origin"], "environment");
    assert_eq!(json["system_id"]["id"], "i_am_a_machine");
    assert_eq!(json["system_id"]["origin"], "CRASH_DB_IDENTIFIER");
    assert!(json["hooks_enabled"].is_boolean());
    assert!(json["trusted_keys"].is_array() || json["trusted_keys"]["error"].is_string());
    assert!(json["spool"]["dir"].is_string());
    assert!(json["spool"]["max_bytes"].is_u64());
}

#[test]
fn status_text_names_the_server_and_id_origin() {
    let out = apport_hook(&["status"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("http://127.0.0.1:5000 (environment)"),
        "{text}"
    );
    assert!(
        text.contains("i_am_a_machine (from CRASH_DB_IDENTIFIER)"),
        "{text}"
    );
}

#[test]
fn completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = apport_hook(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in [
            "lint",
            "verify",
            "upload",
            "status",
            "completions",
            "watch",
            "test",
        ] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
        assert!(script.contains("no-hooks"), "{shell} lacks upload's flags");
        assert!(script.contains("idle-exit"), "{shell} lacks watch's flags");
    }
    let out = apport_hook(&["completions", "no-such-shell"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = apport_hook(&["man", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "apport-hook",
        "apport-hook-upload",
        "apport-hook-status",
        "apport-hook-lint",
        "apport-hook-verify",
        "apport-hook-completions",
        "apport-hook-watch",
        "apport-hook-test",
    ] {
        let text = std::fs::read_to_string(dir.path().join(format!("{page}.1"))).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    let upload = std::fs::read_to_string(dir.path().join("apport-hook-upload.1")).unwrap();
    assert!(
        upload.contains("no\\-hooks"),
        "the page documents the real flags"
    );
    let watch = std::fs::read_to_string(dir.path().join("apport-hook-watch.1")).unwrap();
    assert!(watch.contains("idle\\-exit"), "{watch}");
    assert!(
        !dir.path().join("apport-hook-man.1").exists(),
        "the hidden command has no page"
    );
    // `man` is hidden from --help.
    let help = String::from_utf8(apport_hook(&["--help"]).stdout).unwrap();
    assert!(!help.contains("\n  man "), "{help}");
}

/// `run --report` naming a FIFO is refused at once instead of hanging in
/// `open` (the report is opened before anything else happens).
#[test]
fn run_refuses_a_fifo_report_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.crash");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(["run", "--unsigned", "/nonexistent/hook.toml", "--report"])
        .arg(&fifo)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Generous bound: only "it does not hang" is asserted.
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited >= 600 {
            child.kill().unwrap();
            panic!("apport-hook run still blocks on the FIFO after 30 s");
        }
        waited += 1;
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
}
