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
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// What clients are told (the gate's address when there is one).
    url: String,
    /// Daisy itself, for the API.
    direct: String,
    /// While set, the gate answers result uploads with 503 (daisy "down").
    results_down: Arc<AtomicBool>,
    /// While set, the gate flips a byte of every bundle it passes on.
    tamper_bundles: Arc<AtomicBool>,
    /// While set, the gate replaces the bearer token of result uploads.
    wrong_token: Arc<AtomicBool>,
    app: daisy::app::AppState,
    hook_id: i64,
    api_token: String,
    _dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Daisy {
    /// With `gated`, clients talk to daisy through a loopback gate that can
    /// fail result uploads with 503 while the rest still reaches daisy.
    fn start(gated: bool) -> Daisy {
        let results_down = Arc::new(AtomicBool::new(false));
        let tamper_bundles = Arc::new(AtomicBool::new(false));
        let wrong_token = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let down = results_down.clone();
        let tamper = tamper_bundles.clone();
        let forge = wrong_token.clone();
        let (url, direct, app, hook_id, api_token) = runtime.block_on(async {
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
            let direct = format!("http://{addr}");
            let url = if gated {
                let gate = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}", gate.local_addr().unwrap());
                tokio::spawn(serve_gate(gate, direct.clone(), [down, tamper, forge]));
                url
            } else {
                direct.clone()
            };
            config.public_url = url.clone();
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
            (url, direct, app, hook_id, api_token)
        });
        Daisy {
            url,
            direct,
            results_down,
            tamper_bundles,
            wrong_token,
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
        let url = format!("{}{path}", self.direct);
        let token = self.api_token.clone();
        self.runtime.as_ref().unwrap().block_on(async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
        })
    }
}

/// A loopback gate in front of daisy: forwards every request, except that
/// result uploads get 503 while `down` is set (daisy unreachable for them)
/// and bundles lose a byte's worth of integrity while `tamper` is set, and
/// result uploads carry a token daisy never issued while `forge` is set.
async fn serve_gate(
    listener: tokio::net::TcpListener,
    daisy: String,
    [down, tamper, forge]: [Arc<AtomicBool>; 3],
) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let client = apport_hooks::agent::http::build_client(&client_settings()).unwrap();
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (client, daisy, down, tamper, forge) = (
            client.clone(),
            daisy.clone(),
            down.clone(),
            tamper.clone(),
            forge.clone(),
        );
        async move {
            if uri.path().contains("/results/") && down.load(Ordering::SeqCst) {
                return (StatusCode::SERVICE_UNAVAILABLE, Bytes::from("down")).into_response();
            }
            let mut request = client.request(method, format!("{daisy}{uri}"));
            let forged = uri.path().contains("/results/") && forge.load(Ordering::SeqCst);
            for (name, value) in &headers {
                if name != "host"
                    && name != "content-length"
                    && !(forged && name == "authorization")
                {
                    request = request.header(name, value);
                }
            }
            if forged {
                request = request.header("authorization", format!("Bearer {}", "0".repeat(64)));
            }
            let r = request.body(body).send().await.unwrap();
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let mut body = r.bytes().await.unwrap().to_vec();
            if uri.path().ends_with("/bundle") && tamper.load(Ordering::SeqCst) {
                let last = body.len() - 2;
                body[last] ^= 0x20;
            }
            (status, Bytes::from(body)).into_response()
        }
    };
    use axum::response::IntoResponse;
    axum::serve(listener, axum::Router::new().fallback(handler))
        .await
        .unwrap();
}

fn client_settings() -> apport_hooks::agent::http::ClientSettings {
    apport_hooks::agent::http::ClientSettings {
        ca_file: None,
        connect_timeout: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_secs(30),
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

/// daisy, the client's trusted keys and a bus whose apportd trusts daisy's key.
struct World {
    daisy: Daisy,
    keys: PathBuf,
    bus: SystemBus,
    _shared: tempfile::TempDir,
}

impl World {
    fn start(gated: bool) -> World {
        let daisy = Daisy::start(gated);
        let shared = shared_tempdir();
        let keys = daisy.trusted_keys(shared.path());
        std::fs::write(shared.path().join("revoked-keys"), "").unwrap();
        let bus = SystemBus::start(&format!(
            "idle_exit_secs = 2\nkey_dirs = [\"{}\"]\nrevoked_keys = \"{}\"\n",
            keys.display(),
            shared.path().join("revoked-keys").display()
        ));
        World {
            daisy,
            keys,
            bus,
            _shared: shared,
        }
    }

    /// `apport-hook upload --no-hooks` as `user`; the OOPS id.
    fn upload(&self, user: &TestUser, report: &Path) -> String {
        let uploaded = run_json(self.bus.client(
            Some(user),
            &[
                "upload",
                report.to_str().unwrap(),
                "--server",
                &self.daisy.url,
                "--no-hooks",
                "--json",
            ],
        ));
        uploaded["oops_id"].as_str().expect("an OOPS id").to_owned()
    }

    /// `apport-hook collect --json` as `user`.
    fn collect(&self, user: &TestUser, report: &Path, spool: &Path) -> serde_json::Value {
        run_json(self.bus.client(
            Some(user),
            &[
                "collect",
                report.to_str().unwrap(),
                "--server",
                &self.daisy.url,
                "--keys",
                self.keys.to_str().unwrap(),
                "--spool",
                spool.to_str().unwrap(),
                "--json",
            ],
        ))
    }
}

fn key_names(hook: &serde_json::Value) -> Vec<&str> {
    hook["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect()
}

fn step_outcome<'a>(hook: &'a serde_json::Value, key: &str) -> &'a str {
    hook["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .and_then(|s| s["outcome"].as_str())
        .unwrap_or_else(|| panic!("no step {key} in {hook:#}"))
}

#[test]
fn admin_collects_root_and_user_keys_and_daisy_stores_them() {
    if !have_root("admin_collects_root_and_user_keys_and_daisy_stores_them") {
        return;
    }
    let world = World::start(false);
    let admin = TestUser::create("ca", &["sudo"], false);
    let (dir, report) = users_report(&admin);
    let oops = world.upload(&admin, &report);

    let collected = world.collect(&admin, &report, &dir.path().join("spool"));
    assert_eq!(collected["oops_id"], oops.as_str());
    let hooks = collected["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1, "{collected:#}");
    assert_eq!(hooks[0]["id"], world.daisy.hook_id, "{collected:#}");
    assert_eq!(hooks[0]["outcome"], "completed", "{collected:#}");
    assert_eq!(hooks[0]["delivery"], "delivered", "{collected:#}");
    assert_eq!(
        key_names(&hooks[0]),
        ["OsReleaseFile", "UserIdentity"],
        "{collected:#}"
    );

    let stored = world.daisy.api(&format!("/api/1.0/oops/{oops}"));
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
    let hook = world
        .daisy
        .api(&format!("/api/1.0/hooks/{}", world.daisy.hook_id));
    assert_eq!(hook["results"], 1, "{hook:#}");
}

#[test]
fn plain_user_sends_only_the_user_key() {
    if !have_root("plain_user_sends_only_the_user_key") {
        return;
    }
    let world = World::start(false);
    let plain = TestUser::create("cp", &[], false);
    let (dir, report) = users_report(&plain);
    let oops = world.upload(&plain, &report);

    let collected = world.collect(&plain, &report, &dir.path().join("spool"));
    let hook = &collected["hooks"][0];
    assert_eq!(
        step_outcome(hook, "OsReleaseFile"),
        "not-authorized",
        "{collected:#}"
    );
    assert_eq!(
        step_outcome(hook, "UserIdentity"),
        "collected",
        "{collected:#}"
    );
    assert_eq!(hook["delivery"], "delivered", "{collected:#}");

    let stored = world.daisy.api(&format!("/api/1.0/oops/{oops}"));
    let keys = stored["hook_results"][0]["keys"].as_object().unwrap();
    assert!(!keys.contains_key("OsReleaseFile"), "{stored:#}");
    assert!(
        keys["UserIdentity"]
            .as_str()
            .unwrap()
            .contains(&format!("uid={}({})", plain.uid, plain.name)),
        "{stored:#}"
    );
}

#[test]
fn a_result_daisy_cannot_take_is_spooled_and_delivered_exactly_once() {
    if !have_root("a_result_daisy_cannot_take_is_spooled_and_delivered_exactly_once") {
        return;
    }
    let world = World::start(true);
    let admin = TestUser::create("cs", &["sudo"], false);
    let (dir, report) = users_report(&admin);
    let spool = dir.path().join("spool");
    let oops = world.upload(&admin, &report);

    world.daisy.results_down.store(true, Ordering::SeqCst);
    let first = world.collect(&admin, &report, &spool);
    assert_eq!(first["hooks"][0]["delivery"], "spooled", "{first:#}");
    let stored = world.daisy.api(&format!("/api/1.0/oops/{oops}"));
    assert_eq!(
        stored["hook_results"].as_array().unwrap().len(),
        0,
        "{stored:#}"
    );
    let entries = std::fs::read_dir(&spool)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".entry")
        })
        .count();
    assert_eq!(entries, 1);

    world.daisy.results_down.store(false, Ordering::SeqCst);
    let second = world.collect(&admin, &report, &spool);
    let retried = second["spool_retried"].as_array().unwrap();
    assert_eq!(retried.len(), 1, "{second:#}");
    assert_eq!(retried[0]["delivery"], "delivered", "{second:#}");
    // The hook reached its one report: nothing is offered again.
    assert_eq!(second["hooks"].as_array().unwrap().len(), 0, "{second:#}");

    let third = world.collect(&admin, &report, &spool);
    assert_eq!(
        third["spool_retried"].as_array().unwrap().len(),
        0,
        "{third:#}"
    );
    let stored = world.daisy.api(&format!("/api/1.0/oops/{oops}"));
    assert_eq!(
        stored["hook_results"].as_array().unwrap().len(),
        1,
        "{stored:#}"
    );
    let hook = world
        .daisy
        .api(&format!("/api/1.0/hooks/{}", world.daisy.hook_id));
    assert_eq!(hook["results"], 1, "{hook:#}");
}

#[test]
fn a_bundle_altered_on_the_way_runs_nothing_and_sends_nothing() {
    if !have_root("a_bundle_altered_on_the_way_runs_nothing_and_sends_nothing") {
        return;
    }
    let world = World::start(true);
    let admin = TestUser::create("ct", &["sudo"], false);
    let (dir, report) = users_report(&admin);
    let oops = world.upload(&admin, &report);

    world.daisy.tamper_bundles.store(true, Ordering::SeqCst);
    let collected = world.collect(&admin, &report, &dir.path().join("spool"));
    let hook = &collected["hooks"][0];
    assert_eq!(hook["outcome"], "refused", "{collected:#}");
    assert!(
        hook["message"].as_str().unwrap().contains("sha256"),
        "{collected:#}"
    );
    assert!(hook.get("steps").is_none(), "{collected:#}");
    let stored = world.daisy.api(&format!("/api/1.0/oops/{oops}"));
    assert_eq!(
        stored["hook_results"].as_array().unwrap().len(),
        0,
        "{stored:#}"
    );
    // apportd was never asked: nothing activated it on the private bus.
    assert!(!world.bus.name_has_owner("com.ubuntu.apport"));
}

#[test]
fn upload_without_no_hooks_runs_the_hook_phase() {
    if !have_root("upload_without_no_hooks_runs_the_hook_phase") {
        return;
    }
    let world = World::start(false);
    let admin = TestUser::create("cu", &["sudo"], false);
    let (dir, report) = users_report(&admin);
    let spool = dir.path().join("spool");
    let uploaded = run_json(world.bus.client(
        Some(&admin),
        &[
            "upload",
            report.to_str().unwrap(),
            "--server",
            &world.daisy.url,
            "--keys",
            world.keys.to_str().unwrap(),
            "--spool",
            spool.to_str().unwrap(),
            "--json",
        ],
    ));
    let oops = uploaded["oops_id"].as_str().unwrap();
    let hook = &uploaded["hook_phase"]["hooks"][0];
    assert_eq!(hook["delivery"], "delivered", "{uploaded:#}");
    assert_eq!(
        key_names(hook),
        ["OsReleaseFile", "UserIdentity"],
        "{uploaded:#}"
    );
    let stored = world.daisy.api(&format!("/api/1.0/oops/{oops}"));
    assert_eq!(
        stored["hook_results"].as_array().unwrap().len(),
        1,
        "{stored:#}"
    );
}

#[test]
fn a_result_refused_for_good_is_dropped_not_spooled() {
    if !have_root("a_result_refused_for_good_is_dropped_not_spooled") {
        return;
    }
    let world = World::start(true);
    let admin = TestUser::create("cr", &["sudo"], false);
    let (dir, report) = users_report(&admin);
    let spool = dir.path().join("spool");
    let oops = world.upload(&admin, &report);

    world.daisy.wrong_token.store(true, Ordering::SeqCst);
    let collected = world.collect(&admin, &report, &spool);
    let hook = &collected["hooks"][0];
    assert_eq!(hook["delivery"], "dropped", "{collected:#}");
    assert!(
        hook["delivery_detail"].as_str().unwrap().contains("401"),
        "{collected:#}"
    );
    let entries = std::fs::read_dir(&spool)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".entry")
        })
        .count();
    assert_eq!(entries, 0);
    let stored = world.daisy.api(&format!("/api/1.0/oops/{oops}"));
    assert_eq!(
        stored["hook_results"].as_array().unwrap().len(),
        0,
        "{stored:#}"
    );
}
