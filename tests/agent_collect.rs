//! The hook phase end to end: the real daisy on loopback (SQLite), a hook
//! activated through daisy's admin path, `apport-hook upload --no-hooks` and
//! `apport-hook collect` run as test users against apportd on a private
//! system bus with the real polkitd (needs root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use daisy::cli::admin::{AdminCommand, HookCommand, UserCommand, run_on};
use daisy::config::{CommonArgs, Config};
use daisy::storage::SqliteStorage;
use harness::{SystemBus, TestUser, have_root, shared_tempdir};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata");

/// One root step and one user step, for the lightdm crash of the test data.
const HOOK: &str = r#"
name = "lightdm-collect"
description = "which release and which user: one root step and one user step for the agent's end-to-end test"

[target]
crash_signature = "/usr/sbin/lightdm:11:seat_start:display_manager_start:main"

[when]
DistroRelease = ["Ubuntu 24.04"]

[limits]
reports = 1
days = 7

[[step]]
key = "OsReleaseFile"
file = "/usr/lib/os-release"
as = "root"

[[step]]
key = "UserIdentity"
command = ["id"]
"#;

fn system_id() -> String {
    "0123456789abcdef".repeat(8)
}

/// A real daisy on 127.0.0.1:0 with its signing key and one active hook.
struct Daisy {
    url: String,
    app: daisy::app::AppState,
    hook_id: i64,
    api_token: String,
    _dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Daisy {
    fn start() -> Daisy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (url, app, hook_id, api_token) = runtime.block_on(async {
            let storage = SqliteStorage::open(&dir.path().join("daisy.sqlite3"))
                .await
                .unwrap();
            let common = CommonArgs {
                config: None,
                data_dir: Some(dir.path().to_owned()),
                database: None,
            };
            let mut config = Config::from_toml("", &common, Some("127.0.0.1:0")).unwrap();
            config.create_data_dir().unwrap();
            daisy::signing::ensure_signing_key(&config.data_dir).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            config.listen = addr;
            config.public_url = format!("http://{addr}");
            let app = daisy::app::App::new(config, Arc::new(storage));
            let hook_file = dir.path().join("lightdm-collect.toml");
            std::fs::write(&hook_file, HOOK).unwrap();
            let mut out = Vec::new();
            run_on(
                &app.config,
                &app.storage,
                AdminCommand::Hook(HookCommand::Activate {
                    file: hook_file,
                    reports: None,
                    days: None,
                }),
                &mut out,
            )
            .await
            .unwrap();
            let text = String::from_utf8(out).unwrap();
            let hook_id: i64 = text
                .split_whitespace()
                .nth(2)
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("no hook id in {text:?}"));
            let mut out = Vec::new();
            run_on(
                &app.config,
                &app.storage,
                AdminCommand::User(UserCommand::Add {
                    name: "reader".into(),
                    team: "core-dev".into(),
                }),
                &mut out,
            )
            .await
            .unwrap();
            let api_token = String::from_utf8(out).unwrap().trim().to_owned();
            tokio::spawn(daisy::server::serve(
                listener,
                app.clone(),
                std::future::pending(),
            ));
            (format!("http://{addr}"), app, hook_id, api_token)
        });
        Daisy {
            url,
            app,
            hook_id,
            api_token,
            _dir: dir,
            runtime: Some(runtime),
        }
    }

    /// The public key a client trusts, in a directory every user can read.
    fn trusted_keys(&self, into: &Path) -> PathBuf {
        let dir = into.join("keys.d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(
            self.app
                .config
                .data_dir
                .join(daisy::signing::KEY_DIR)
                .join(daisy::signing::PUBLIC_KEY_FILE),
            dir.join("daisy.pub"),
        )
        .unwrap();
        std::fs::set_permissions(
            dir.join("daisy.pub"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        dir
    }

    fn api(&self, path: &str) -> serde_json::Value {
        let client =
            apport_hooks::agent::http::build_client(&apport_hooks::agent::http::ClientSettings {
                ca_file: None,
                connect_timeout: std::time::Duration::from_secs(10),
                timeout: std::time::Duration::from_secs(30),
            })
            .unwrap();
        let url = format!("{}{path}", self.url);
        let token = self.api_token.clone();
        self.runtime.as_ref().unwrap().block_on(async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
        })
    }
}

impl Drop for Daisy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A report owned by `user` in a directory of its own.
fn users_report(user: &TestUser) -> (tempfile::TempDir, PathBuf) {
    let dir = shared_tempdir();
    let path = dir.path().join("_usr_sbin_lightdm.0.crash");
    std::fs::copy(format!("{TESTDATA}/reports/signal_crash.crash"), &path).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
    std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid)).unwrap();
    (dir, path)
}

fn run_json(mut command: std::process::Command) -> serde_json::Value {
    let out = command
        .env("CRASH_DB_IDENTIFIER", system_id())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {}\nstderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

#[test]
fn admin_collects_root_and_user_keys_and_daisy_stores_them_once() {
    if !have_root("admin_collects_root_and_user_keys_and_daisy_stores_them_once") {
        return;
    }
    let daisy = Daisy::start();
    let shared = shared_tempdir();
    let keys = daisy.trusted_keys(shared.path());
    std::fs::write(shared.path().join("revoked-keys"), "").unwrap();
    let bus = SystemBus::start(&format!(
        "idle_exit_secs = 2\nkey_dirs = [\"{}\"]\nrevoked_keys = \"{}\"\n",
        keys.display(),
        shared.path().join("revoked-keys").display()
    ));
    let admin = TestUser::create("ca", &["sudo"], false);
    let (dir, report) = users_report(&admin);
    let report_arg = report.to_str().unwrap();

    let uploaded = run_json(bus.client(
        Some(&admin),
        &[
            "upload",
            report_arg,
            "--server",
            &daisy.url,
            "--no-hooks",
            "--json",
        ],
    ));
    let oops = uploaded["oops_id"].as_str().expect("an OOPS id").to_owned();

    let spool = dir.path().join("spool");
    let collected = run_json(bus.client(
        Some(&admin),
        &[
            "collect",
            report_arg,
            "--server",
            &daisy.url,
            "--keys",
            keys.to_str().unwrap(),
            "--spool",
            spool.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(collected["oops_id"], oops.as_str());
    let hooks = collected["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1, "{collected:#}");
    assert_eq!(hooks[0]["id"], daisy.hook_id, "{collected:#}");
    assert_eq!(hooks[0]["outcome"], "completed", "{collected:#}");
    assert_eq!(hooks[0]["delivery"], "delivered", "{collected:#}");
    let sent: Vec<&str> = hooks[0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(sent, ["OsReleaseFile", "UserIdentity"], "{collected:#}");

    let stored = daisy.api(&format!("/api/1.0/oops/{oops}"));
    let results = stored["hook_results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{stored:#}");
    let keys = &results[0]["keys"];
    let os_release = std::fs::read_to_string("/usr/lib/os-release").unwrap();
    assert_eq!(
        keys["OsReleaseFile"].as_str().unwrap().trim(),
        os_release.trim(),
        "{stored:#}"
    );
    assert!(
        keys["UserIdentity"]
            .as_str()
            .unwrap()
            .contains(&format!("uid={}({})", admin.uid, admin.name)),
        "{stored:#}"
    );
    let hook = daisy.api(&format!("/api/1.0/hooks/{}", daisy.hook_id));
    assert_eq!(hook["results"], 1, "{hook:#}");
}
