//! `apport-hook watch` the way `apport-hook.service` runs it: as the
//! `whoopsie` user, on a private system bus with apportd and the real polkitd,
//! against a loopback server offering a signed bundle. The upload of another
//! user's report is collected: the root step runs (the polkit rules allow
//! whoopsie), the user step runs as the report's owner, and the result
//! reaches the server (needs root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod bundle_support;
mod harness;
mod hooklist_server;

use std::io::{BufRead as _, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use apport_hooks::agent::token::now_secs;
use apport_hooks::bundle::BundlePayload;
use apport_hooks::hook::{Action, Hook, RunAs};
use bundle_support::TestKey;
use harness::hook_files::{chown, command, package_hook, step};
use harness::{SystemBus, TestUser, have_root, shared_tempdir};
use hooklist_server::{ListReply, Offer, Server};

const OOPS: &str = "4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d";
const SYSTEM: &str = "i-am-a-machine";

#[test]
fn watch_as_whoopsie_collects_root_and_user_keys_and_sends_them() {
    if !have_root("watch_as_whoopsie_collects_root_and_user_keys_and_sends_them") {
        return;
    }
    let whoopsie = TestUser::create_named("whoopsie", &[], true);
    let owner = TestUser::create("wb", &[], false);
    let key = TestKey::new();
    let root = shared_tempdir();
    let keys = root.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
    key.install(&keys, "test");
    let bus = SystemBus::start(&format!(
        "idle_exit_secs = 5\nkey_dirs = [\"{}\"]\n",
        keys.display()
    ));

    let hook = Hook {
        description: "a root and a user step for the watcher's test".into(),
        ..package_hook(
            "watch-bus",
            "bash",
            vec![
                step(
                    "OsReleaseFile",
                    RunAs::Root,
                    Action::File("/usr/lib/os-release".into()),
                ),
                step("UserId", RunAs::User, command(&["id", "-u"])),
            ],
        )
    };
    let payload = BundlePayload::new(
        "hook-5".into(),
        1,
        hook,
        now_secs() - 3600,
        now_secs() + 7 * 86_400,
    );
    let server = Server::start();
    server.bundle(5, key.sign(&payload));
    server.default_list(ListReply::List(
        "ab".repeat(32),
        now_secs() + 3600,
        vec![Offer { id: 5, version: 1 }],
    ));

    // The crash directory as apport and whoopsie leave it.
    let crash = root.path().join("crash");
    std::fs::create_dir(&crash).unwrap();
    std::fs::set_permissions(&crash, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let state = root.path().join("state");
    let spool = root.path().join("spool");
    for dir in [&state, &spool] {
        std::fs::create_dir(dir).unwrap();
        chown(dir, &whoopsie);
    }
    // Named for its owner's uid, as apport names reports.
    let stem = format!("_usr_bin_bash.{}", owner.uid);
    let report = crash.join(format!("{stem}.crash"));
    std::fs::write(&report, "ProblemType: Crash\nPackage: bash 5.2\n").unwrap();
    nix::unistd::chown(&report, Some(owner.uid.into()), Some(whoopsie.gid.into())).unwrap();
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o640)).unwrap();

    let mut child = bus
        .client(
            Some(&whoopsie),
            &[
                "watch",
                "--idle-exit",
                "0",
                "--crash-dir",
                crash.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
                "--spool",
                spool.to_str().unwrap(),
                "--config",
                root.path().join("hooks.conf").to_str().unwrap(),
                "--whoopsie-config",
                root.path().join("whoopsie").to_str().unwrap(),
                "--server",
                &server.url(),
                "--keys",
                keys.to_str().unwrap(),
            ],
        )
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let mut all = sink.lock().unwrap();
            all.push_str(&line.unwrap_or_default());
            all.push('\n');
        }
    });
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen:\n{}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("the watcher started", &|| {
        log.lock().unwrap().contains("watching")
    });

    // whoopsie writes the marker after the upload (its own file).
    let temp = crash.join(".marker.tmp");
    std::fs::write(&temp, format!("{OOPS}\n")).unwrap();
    chown(&temp, &whoopsie);
    std::fs::rename(&temp, crash.join(format!("{stem}.uploaded"))).unwrap();

    wait("the result posted", &|| {
        server.count("POST", &format!("/hooks/5/results/{OOPS}")) == 1
    });
    let post = server
        .seen()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        post.authorization.as_deref(),
        Some(format!("Bearer {}", "ab".repeat(32)).as_str())
    );
    let mut bson_bytes = Vec::new();
    zstd::stream::read::Decoder::new(&post.body[..])
        .unwrap()
        .read_to_end(&mut bson_bytes)
        .unwrap();
    let doc = bson::Document::from_reader(&mut &bson_bytes[..]).unwrap();
    assert_eq!(
        doc.get_str("OsReleaseFile").unwrap(),
        std::fs::read_to_string("/usr/lib/os-release").unwrap(),
        "the root step ran for whoopsie"
    );
    assert_eq!(doc.get_str("UserId").unwrap(), owner.uid.to_string());
    assert_eq!(doc.len(), 2, "only the new keys: {doc:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // The last runs, as `status` shows them to anyone.
    let out = bus
        .client(
            Some(&owner),
            &["status", "--json", "--state-dir", state.to_str().unwrap()],
        )
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &json["last_runs"][0];
    assert_eq!(run["oops_id"], OOPS);
    assert_eq!(run["hooks"][0]["id"], 5);
    assert_eq!(run["hooks"][0]["outcome"], "completed");
    assert_eq!(run["hooks"][0]["delivery"], "delivered");
    assert_eq!(
        run["hooks"][0]["keys"],
        serde_json::json!(["OsReleaseFile", "UserId"])
    );
    assert_eq!(run["sent_bytes"].as_u64().unwrap(), post.body.len() as u64);
}
