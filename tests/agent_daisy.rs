//! `apport-hook upload` against the real daisy on loopback (SQLite).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use apport_hooks::agent::http::ClientSettings;
use apport_hooks::agent::ids::SystemId;
use apport_hooks::agent::upload::{CoreOutcome, ReplyCommand, UploadOutcome, Uploader};
use apport_hooks::report::{Report, ReportLimits};
use daisy::config::{CommonArgs, Config};
use daisy::storage::SqliteStorage;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata");

/// A 128-hex-digit id, the shape whoopsie sends (and daisy accepts).
fn system_id() -> String {
    "0123456789abcdef".repeat(8)
}

/// A real daisy serving on 127.0.0.1:0 on a runtime of its own.
struct Daisy {
    url: String,
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Daisy {
    fn start(toml: &str) -> Daisy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = runtime.block_on(async {
            let storage = SqliteStorage::open(&dir.path().join("daisy.sqlite3"))
                .await
                .unwrap();
            let common = CommonArgs {
                config: None,
                data_dir: Some(dir.path().to_owned()),
                database: None,
            };
            let mut config = Config::from_toml(toml, &common, Some("127.0.0.1:0")).unwrap();
            config.create_data_dir().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            config.listen = addr;
            config.public_url = format!("http://{addr}");
            let app = daisy::app::App::new(config, Arc::new(storage));
            tokio::spawn(daisy::server::serve(listener, app, std::future::pending()));
            format!("http://{addr}")
        });
        Daisy {
            url,
            _dir: dir,
            runtime,
        }
    }
}

impl Drop for Daisy {
    fn drop(&mut self) {
        // Nothing to finish: the tests wait for every reply they need.
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        runtime.shutdown_background();
    }
}

fn report(name: &str) -> Report {
    Report::open(
        format!("{TESTDATA}/reports/{name}"),
        &ReportLimits::default(),
    )
    .unwrap()
}

fn uploader(url: &str) -> Uploader {
    let settings = ClientSettings {
        ca_file: None,
        connect_timeout: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_secs(30),
    };
    Uploader::new(url, SystemId::parse(&system_id()).unwrap(), &settings).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn daisy_takes_the_upload_asks_for_the_core_and_refuses_a_duplicate() {
    let daisy = Daisy::start("retracer = true\n");
    let crash = report("signal_crash.crash");
    let up = uploader(&daisy.url);
    let outcome = block_on(up.upload_report(&crash, None)).unwrap();
    let UploadOutcome::Accepted(reply) = &outcome else {
        panic!("{outcome:?}");
    };
    // A binary crash with an unknown SAS and a retracer deployed: daisy wants the core.
    assert_eq!(reply.command, ReplyCommand::Core);
    let oops = reply.oops.clone().expect("an OOPS id");
    assert_eq!(
        block_on(up.upload_core(&oops, &crash, None)),
        CoreOutcome::Sent
    );

    let again = block_on(up.upload_report(&crash, None)).unwrap();
    assert!(
        matches!(again, UploadOutcome::AlreadyReported { .. }),
        "{again:?}"
    );
    assert!(again.is_done());
}

/// daisy's "no such OOPS" for a hook list is final for the client; the
/// same status from something that is not daisy's hook list (a wrong
/// `server_url` path, a proxy) is a failure to retry.
#[test]
fn a_hook_list_daisy_refuses_is_final_and_another_404_is_not() {
    use apport_hooks::agent::collect::{CollectError, Collector};
    use apport_hooks::agent::ids::OopsId;
    let daisy = Daisy::start("");
    let settings = ClientSettings {
        ca_file: None,
        connect_timeout: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_secs(30),
    };
    let client = apport_hooks::agent::http::build_client(&settings).unwrap();
    let system = SystemId::parse(&system_id()).unwrap();
    let unknown = OopsId::parse("0190a0b0-0000-7000-8000-000000000001").unwrap();
    let collector = Collector::new(client.clone(), &daisy.url, system.clone());
    let refused = block_on(collector.hook_list(&unknown)).unwrap_err();
    assert!(
        matches!(refused, CollectError::Refused { status: 404, .. }),
        "{refused:?}"
    );
    assert!(refused.is_final());
    let elsewhere = Collector::new(client, &format!("{}/not-daisy", daisy.url), system);
    let failed = block_on(elsewhere.hook_list(&unknown)).unwrap_err();
    assert!(matches!(failed, CollectError::Http { .. }), "{failed:?}");
    assert!(!failed.is_final());
}

#[test]
fn daisy_refuses_an_incomplete_report_for_good() {
    let daisy = Daisy::start("");
    let mut crash = report("python_crash.crash");
    crash.remove("Package");
    let outcome = block_on(uploader(&daisy.url).upload_report(&crash, None)).unwrap();
    assert_eq!(
        outcome,
        UploadOutcome::Refused {
            message: "Incomplete crash report.".into()
        }
    );
}

#[test]
fn cli_upload_to_daisy_writes_the_oops_id() {
    let daisy = Daisy::start("");
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("python_crash.crash");
    std::fs::copy(
        format!("{TESTDATA}/reports/python_crash.crash"),
        &report_path,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args([
            "upload",
            report_path.to_str().unwrap(),
            "--server",
            &daisy.url,
            "--json",
        ])
        .env("CRASH_DB_IDENTIFIER", system_id())
        .env_remove("CRASH_DB_URL")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let oops = json["oops_id"].as_str().expect("an OOPS id").to_owned();
    let marker = Path::new(dir.path()).join("python_crash.uploaded");
    assert_eq!(
        std::fs::read_to_string(marker).unwrap(),
        format!("{oops}\n")
    );
}
