//! `daisy completions` and `daisy man`, run as the real binary: what
//! debian/rules installs is generated from the clap definitions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Output};

fn daisy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_daisy"))
        .args(args)
        .env_remove("DAISY_CONFIG")
        .output()
        .unwrap()
}

/// Every page `daisy man` must write: the command, each subcommand, and
/// each nested one an operator types (`daisy admin hook activate`).
const PAGES: [&str; 17] = [
    "daisy",
    "daisy-serve",
    "daisy-admin",
    "daisy-admin-hook",
    "daisy-admin-hook-activate",
    "daisy-admin-hook-list",
    "daisy-admin-hook-show",
    "daisy-admin-hook-disable",
    "daisy-admin-user",
    "daisy-admin-user-add",
    "daisy-admin-user-list",
    "daisy-admin-user-revoke",
    "daisy-admin-user-token",
    "daisy-keygen",
    "daisy-hook",
    "daisy-hook-compile",
    "daisy-completions",
];

#[test]
fn man_writes_one_roff_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = daisy(&["man", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected: Vec<String> = PAGES.iter().map(|p| format!("{p}.1")).collect();
    expected.sort();
    assert_eq!(written, expected, "exactly one page per visible subcommand");
    for page in PAGES {
        let text = std::fs::read_to_string(dir.path().join(format!("{page}.1"))).unwrap();
        assert!(text.contains(".TH"), "{page} is not roff: {text}");
        assert!(text.contains(".SH NAME"), "{page}");
        assert!(text.contains(".SH SYNOPSIS"), "{page}");
    }
    // The top page names every subcommand.
    let top = std::fs::read_to_string(dir.path().join("daisy.1")).unwrap();
    for sub in ["serve", "admin", "keygen", "hook", "completions"] {
        assert!(top.contains(&format!("daisy\\-{sub}(1)")), "{sub}: {top}");
    }
    assert!(!top.contains("daisy\\-man"), "the hidden command is listed");
    // The pages document the real flags.
    let serve = std::fs::read_to_string(dir.path().join("daisy-serve.1")).unwrap();
    for flag in ["\\-\\-listen", "\\-\\-data\\-dir", "\\-\\-tls\\-cert"] {
        assert!(serve.contains(flag), "{flag}: {serve}");
    }
    let add = std::fs::read_to_string(dir.path().join("daisy-admin-user-add.1")).unwrap();
    assert!(add.contains("\\-\\-team"), "{add}");
}

#[test]
fn man_is_hidden_from_help() {
    let help = String::from_utf8(daisy(&["--help"]).stdout).unwrap();
    assert!(help.contains("\n  completions "), "{help}");
    assert!(!help.contains("\n  man "), "{help}");
}

#[test]
fn completions_cover_every_subcommand_and_their_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = daisy(&["completions", shell]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        for word in [
            "serve",
            "admin",
            "keygen",
            "compile",
            "activate",
            "disable",
            "completions",
            "data-dir",
            "tls-key",
        ] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
        // clap_complete's fish generator stops two subcommands deep, so only
        // bash and zsh complete `daisy admin user add --team`.
        if shell != "fish" {
            assert!(script.contains("team"), "{shell} lacks --team");
        }
    }
    let out = daisy(&["completions", "no-such-shell"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Runs daisy with `args` and its stdout closed before it writes: its exit
/// status and stderr.
fn daisy_into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::io::Read as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_daisy"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}

#[test]
fn completions_to_a_closed_pipe_fail_without_a_panic() {
    let (status, stderr) = daisy_into_closed_pipe(&["completions", "zsh"]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
}

#[test]
fn man_listing_to_a_closed_pipe_fails_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = daisy_into_closed_pipe(&["man", dir.path().to_str().unwrap()]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("cannot print"), "{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    // The first page was written before its path could not be printed.
    assert!(dir.path().join("daisy.1").is_file());
}
