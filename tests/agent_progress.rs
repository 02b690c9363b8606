//! Progress bars for result uploads (issue 5 §4: "progress bars on a TTY
//! for transfers over 1 MB; quiet otherwise"), with the real `apport-hook
//! collect` process sending a spooled result of more than 1 MB to a loopback
//! server: under a pseudo-terminal (util-linux `script`) it draws a bar, with
//! its output piped or with `--json` it draws nothing. A fresh result from
//! apportd's descriptor is covered by `agent_collect.rs` (root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod hooklist_server;

use std::path::{Path, PathBuf};
use std::process::Command;

use apport_hooks::agent::collect::{PendingResult, spool_result};
use apport_hooks::agent::spool::{EntryKey, Spool};
use apport_hooks::agent::token::now_secs;
use hooklist_server::{ListReply, Server};

const OOPS: &str = "4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d";
const SYSTEM: &str = "i-am-a-machine";
const BAR: &str = "sending the spooled result of hook 5";
/// Bytes of the result: pseudo-random, so zstd keeps it over 1 MB.
const RESULT_BYTES: usize = 1_500_000;

/// A report with its `.uploaded` marker and a spool holding one result of
/// [`RESULT_BYTES`] for hook 5, due now, for `server`.
fn spooled(server: &Server, dir: &Path) -> (PathBuf, PathBuf) {
    let report = dir.join("_usr_bin_x.0.crash");
    std::fs::write(&report, "ProblemType: Crash\n").unwrap();
    std::fs::write(dir.join("_usr_bin_x.0.uploaded"), format!("{OOPS}\n")).unwrap();
    let spool_dir = dir.join("spool");
    let spool = Spool::open(&spool_dir, 8 << 20).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let result: Vec<u8> = (0..RESULT_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let pending = PendingResult {
        url: format!("{}/hooks/5/results/{OOPS}", server.url()),
        token: "tok".into(),
        expires: now_secs() + 3600,
    };
    let key = EntryKey::new(OOPS, "5", 1).unwrap();
    let spooled = spool_result(&spool, &key, &pending, || &result[..]).unwrap();
    assert!(spooled > 1024 * 1024, "{spooled} bytes spooled");
    // The list offers nothing more: only the spooled result is sent.
    server.default_list(ListReply::List("tok".into(), now_secs() + 3600, vec![]));
    (report, spool_dir)
}

fn collect_args(server: &Server, report: &Path, spool: &Path, json: bool) -> Vec<String> {
    let mut args = vec![
        "collect".to_owned(),
        "--server".to_owned(),
        server.url(),
        "--spool".to_owned(),
        spool.display().to_string(),
        report.display().to_string(),
    ];
    if json {
        args.push("--json".to_owned());
    }
    args
}

/// The result arrived once, whole (the compressed body is over 1 MB).
fn assert_delivered(server: &Server, spool: &Path) {
    let posts: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].body.len() > 1024 * 1024);
    let left = std::fs::read_dir(spool)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".entry")
        })
        .count();
    assert_eq!(left, 0, "the entry is delivered and removed");
}

/// `apport-hook ARGS…` under `script`, which gives it a pseudo-terminal as
/// an interactive shell would; its exit status and what the terminal showed.
fn on_a_terminal(args: &[String]) -> (Option<i32>, String) {
    let mut command = String::from(env!("CARGO_BIN_EXE_apport-hook"));
    for arg in args {
        assert!(!arg.contains([' ', '\'', '"']), "{arg}");
        command.push(' ');
        command.push_str(arg);
    }
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .env("TERM", "xterm")
        .env_remove("CRASH_DB_URL")
        .output()
        .expect("util-linux `script` is needed for this test");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_large_spooled_result_shows_a_progress_bar_on_a_terminal() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (report, spool) = spooled(&server, dir.path());
    let (code, screen) = on_a_terminal(&collect_args(&server, &report, &spool, false));
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains(BAR), "{screen}");
    assert!(screen.contains("delivered"), "{screen}");
    assert_delivered(&server, &spool);
}

#[test]
fn a_large_spooled_result_is_sent_quietly_without_a_terminal() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (report, spool) = spooled(&server, dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(collect_args(&server, &report, &spool, false))
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .env_remove("CRASH_DB_URL")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("delivered"), "{stdout}");
    assert!(!stderr.contains("sending the"), "{stderr}");
    assert!(!stdout.contains("sending the"), "{stdout}");
    assert_delivered(&server, &spool);
}

#[test]
fn a_large_spooled_result_draws_no_bar_with_json_on_a_terminal() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (report, spool) = spooled(&server, dir.path());
    let (code, screen) = on_a_terminal(&collect_args(&server, &report, &spool, true));
    assert_eq!(code, Some(0), "{screen}");
    assert!(!screen.contains("sending the"), "{screen}");
    assert!(screen.contains("\"delivered\""), "{screen}");
    assert_delivered(&server, &spool);
}
