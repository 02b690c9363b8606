//! The whoopsie protocol over real HTTP on loopback (library and CLI).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod agent_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_support::{Intake, OOPS_ID};
use apport_hooks::agent::http::{ClientSettings, HttpError};
use apport_hooks::agent::ids::{OopsId, SystemId};
use apport_hooks::agent::upload::{
    CoreOutcome, ReplyCommand, UploadOutcome, Uploader, client_version, write_uploaded_marker,
};
use apport_hooks::report::{Report, ReportLimits};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata");
const SYSTEM_ID: &str = "i_am_a_machine";

fn report(name: &str) -> Report {
    Report::open(
        format!("{TESTDATA}/reports/{name}"),
        &ReportLimits::default(),
    )
    .unwrap()
}

fn client_settings() -> ClientSettings {
    ClientSettings {
        ca_file: None,
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    }
}

fn uploader(url: &str) -> Uploader {
    Uploader::new(url, SystemId::parse(SYSTEM_ID).unwrap(), &client_settings()).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_report_is_posted_like_whoopsie_posts_it() {
    let intake = Intake::start();
    let outcome =
        block_on(uploader(&intake.url()).upload_report(&report("signal_crash.crash"), None))
            .unwrap();
    let UploadOutcome::Accepted(reply) = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(reply.oops.as_ref().map(OopsId::as_str), Some(OOPS_ID));
    assert_eq!(reply.command, ReplyCommand::OopsId);

    let seen = intake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, format!("/{SYSTEM_ID}"));
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        seen[0].whoopsie_version.as_deref(),
        Some(client_version().as_str())
    );
    assert!(client_version().starts_with("apport-hooks "));
    // Byte for byte what whoopsie sends for this report (CoreDump left out).
    let expected = std::fs::read(format!("{TESTDATA}/uploads/signal_crash.bson")).unwrap();
    assert_eq!(seen[0].body, expected);
}

#[test]
fn a_core_request_sends_the_core_dump_base64() {
    let intake = Intake::start();
    intake.reply(200, format!("{OOPS_ID} CORE"));
    intake.reply(200, "");
    let crash = report("signal_crash.crash");
    let up = uploader(&intake.url());
    let outcome = block_on(up.upload_report(&crash, None)).unwrap();
    let UploadOutcome::Accepted(reply) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(reply.command, ReplyCommand::Core);
    let oops = reply.oops.unwrap();
    assert_eq!(
        block_on(up.upload_core(&oops, &crash, None)),
        CoreOutcome::Sent
    );
    let seen = intake.seen();
    assert_eq!(
        seen[1].path,
        format!("/{OOPS_ID}/submit-core/amd64/{SYSTEM_ID}")
    );
    assert_eq!(seen[1].body, crash.get("CoreDump").unwrap().wire_bytes());
    assert!(
        seen[1].body.starts_with(b"H4sI"),
        "gzip base64 as it sits in the report"
    );
}

#[test]
fn a_core_for_a_report_without_one_is_not_sent() {
    let intake = Intake::start();
    let crash = report("python_crash.crash");
    let oops = OopsId::parse(OOPS_ID).unwrap();
    let outcome = block_on(uploader(&intake.url()).upload_core(&oops, &crash, None));
    assert!(
        matches!(outcome, CoreOutcome::Unavailable(_)),
        "{outcome:?}"
    );
    assert!(intake.seen().is_empty());
}

#[test]
fn replies_are_handled_like_whoopsie_handles_them() {
    let intake = Intake::start();
    let up = uploader(&intake.url());
    let crash = report("python_crash.crash");
    let cases: [(u16, &str); 5] = [
        (400, "Invalid BSON."),
        (409, "Crash already reported."),
        (503, "Service Unavailable"),
        (401, "blocked"),
        (200, "a-b-c BUG 123"),
    ];
    for (status, body) in cases {
        intake.reply(status, body);
    }
    let outcomes: Vec<_> = cases
        .iter()
        .map(|_| block_on(up.upload_report(&crash, None)).unwrap())
        .collect();
    assert_eq!(
        outcomes[0],
        UploadOutcome::Refused {
            message: "Invalid BSON.".into()
        }
    );
    assert!(outcomes[0].is_done());
    assert_eq!(
        outcomes[1],
        UploadOutcome::AlreadyReported {
            message: "Crash already reported.".into()
        }
    );
    assert!(outcomes[1].is_done());
    assert!(matches!(
        outcomes[2],
        UploadOutcome::RetryLater {
            status: Some(503),
            ..
        }
    ));
    assert!(matches!(
        outcomes[3],
        UploadOutcome::RetryLater {
            status: Some(401),
            ..
        }
    ));
    let UploadOutcome::Accepted(reply) = &outcomes[4] else {
        panic!("{:?}", outcomes[4]);
    };
    assert_eq!(reply.command, ReplyCommand::Unknown("BUG 123".into()));
}

#[test]
fn an_unreachable_server_means_retry_later() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let outcome =
        block_on(uploader(&url).upload_report(&report("python_crash.crash"), None)).unwrap();
    assert!(
        matches!(outcome, UploadOutcome::RetryLater { status: None, .. }),
        "{outcome:?}"
    );
}

#[test]
fn progress_reports_every_byte_of_a_large_body() {
    let intake = Intake::start();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen_by_callback = sent.clone();
    let progress: apport_hooks::agent::upload::Progress = std::sync::Arc::new(move |n| {
        seen_by_callback.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
    });
    let body = vec![7u8; 3 * 1024 * 1024 + 5];
    let outcome = block_on(uploader(&intake.url()).upload_encoded(body.clone(), Some(progress)));
    assert!(outcome.is_done(), "{outcome:?}");
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        body.len() as u64
    );
    assert_eq!(intake.seen()[0].body.len(), body.len());
}

#[test]
fn a_bad_pinned_ca_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let mut settings = client_settings();
    settings.ca_file = Some(missing);
    let err =
        Uploader::new("https://x", SystemId::parse(SYSTEM_ID).unwrap(), &settings).unwrap_err();
    assert!(matches!(err, HttpError::CaFile { .. }), "{err}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    settings.ca_file = Some(garbage);
    let err =
        Uploader::new("https://x", SystemId::parse(SYSTEM_ID).unwrap(), &settings).unwrap_err();
    assert!(matches!(err, HttpError::CaFileInvalid { .. }), "{err}");
}

#[test]
fn the_uploaded_marker_replaces_a_planted_symlink_without_following_it() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("_usr_sbin_lightdm.0.crash");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("_usr_sbin_lightdm.0.uploaded")).unwrap();
    let oops = OopsId::parse(OOPS_ID).unwrap();
    let marker = write_uploaded_marker(&report_path, Some(&oops)).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        std::fs::symlink_metadata(&marker)
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("{OOPS_ID}\n")
    );
}

// --- the CLI ---------------------------------------------------------------

fn copy_report(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(format!("{TESTDATA}/reports/{name}"), &path).unwrap();
    path
}

/// `apport-hook upload REPORT --server SERVER EXTRA…`.
fn upload(report: &Path, server: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["upload", report.to_str().unwrap(), "--server", server];
    args.extend(extra);
    apport_hook(&args)
}

fn apport_hook(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(args)
        .env("CRASH_DB_IDENTIFIER", SYSTEM_ID)
        .env_remove("CRASH_DB_URL")
        .output()
        .unwrap()
}

#[test]
fn cli_upload_writes_the_oops_id_and_then_runs_the_hook_phase() {
    let intake = Intake::start();
    let dir = tempfile::tempdir().unwrap();
    let report_path = copy_report(dir.path(), "signal_crash.crash");
    let out = upload(&report_path, &intake.url(), &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["status"], "accepted");
    assert_eq!(json["oops_id"], OOPS_ID);
    // The intake double serves no hook list: the phase ran, failed there and
    // says how to retry, without failing the upload.
    let phase = json["hook_phase"].as_str().unwrap();
    assert!(phase.contains("invalid hook list"), "{json}");
    assert!(phase.contains("apport-hook collect"), "{json}");
    let marker = dir.path().join("signal_crash.uploaded");
    assert_eq!(
        std::fs::read_to_string(marker).unwrap(),
        format!("{OOPS_ID}\n")
    );
    assert_eq!(intake.seen()[0].path, format!("/{SYSTEM_ID}"));
}

#[test]
fn cli_upload_no_hooks_in_text_mode() {
    let intake = Intake::start();
    let dir = tempfile::tempdir().unwrap();
    let report_path = copy_report(dir.path(), "python_crash.crash");
    let out = upload(&report_path, &intake.url(), &["--no-hooks"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("OOPS id {OOPS_ID}")), "{text}");
    assert!(text.contains("hook phase: skipped (--no-hooks)"), "{text}");
}

#[test]
fn cli_upload_exit_codes_follow_the_reply() {
    let intake = Intake::start();
    let dir = tempfile::tempdir().unwrap();
    let report_path = copy_report(dir.path(), "python_crash.crash");
    let marker = dir.path().join("python_crash.uploaded");

    intake.reply(503, "Service Unavailable");
    let out = upload(&report_path, &intake.url(), &["--json"]);
    assert_eq!(out.status.code(), Some(3), "retry later");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "retry-later");
    assert!(
        !marker.exists(),
        "nothing is marked when it must be retried"
    );

    intake.reply(400, "Incomplete crash report.");
    let out = upload(&report_path, &intake.url(), &[]);
    assert_eq!(out.status.code(), Some(1), "refused for good");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Incomplete crash report."));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "",
        "handled, like whoopsie"
    );

    intake.reply(409, "Crash already reported.");
    let out = upload(&report_path, &intake.url(), &["--json"]);
    assert_eq!(out.status.code(), Some(0), "the server already has it");
}

#[test]
fn cli_upload_of_a_symlinked_report_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = copy_report(dir.path(), "python_crash.crash");
    let link = dir.path().join("link.crash");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = upload(&link, "http://127.0.0.1:9", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
}

#[test]
fn cli_upload_with_a_bad_server_url_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = copy_report(dir.path(), "python_crash.crash");
    let out = upload(&report_path, "ftp://x", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http:// or https://"));
}

/// A copy of `signal_crash.crash` with a 1.5 MB log key, so the body passes
/// the 1 MB progress threshold.
fn large_report(dir: &Path) -> PathBuf {
    let path = copy_report(dir, "signal_crash.crash");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("BigLog:\n");
    for i in 0..1500 {
        text.push_str(&format!(" line {i:05} {}\n", "x".repeat(1000)));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn cli_upload_is_quiet_without_a_terminal() {
    let intake = Intake::start();
    let dir = tempfile::tempdir().unwrap();
    let report_path = large_report(dir.path());
    let out = upload(&report_path, &intake.url(), &["--no-hooks"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(intake.seen()[0].body.len() > 1024 * 1024);
}

#[test]
fn cli_upload_shows_progress_on_a_terminal_for_large_bodies() {
    let intake = Intake::start();
    let dir = tempfile::tempdir().unwrap();
    let report_path = large_report(dir.path());
    // `script` gives the command a pseudo-terminal, as an interactive shell would.
    let command = format!(
        "{} upload {} --server {} --no-hooks",
        env!("CARGO_BIN_EXE_apport-hook"),
        report_path.display(),
        intake.url()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("CRASH_DB_IDENTIFIER", SYSTEM_ID)
        .env("TERM", "xterm")
        .env_remove("CRASH_DB_URL")
        .output()
        .expect("util-linux `script` is needed for this test");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("uploading report"), "{screen}");
    assert!(screen.contains(&format!("OOPS id {OOPS_ID}")), "{screen}");
}
