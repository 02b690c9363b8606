//! `apport-hook test HOOK.toml --report FILE`: the hook author's test, run as
//! the real binary against apportd on a private system bus with the real
//! polkitd and test users (needs root).
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
use std::process::Output;

use harness::hook_files::write_report;
use harness::{SystemBus, TestUser, have_root};

const CONFIG: &str = "idle_exit_secs = 2\n";

const HOOK: &str = r#"
name = "ids"
description = "who runs the steps, and the release file as root"
[target]
package = "bash"

[[step]]
key = "UserId"
command = ["id", "-u"]

[[step]]
key = "OsReleaseFile"
file = "/usr/lib/os-release"
as = "root"
"#;

fn files(bus: &SystemBus, owner: &TestUser, hook: &str) -> (PathBuf, PathBuf) {
    let dir = bus.dir.path();
    let hook_path = dir.join(format!("hook-{}.toml", owner.uid));
    std::fs::write(&hook_path, hook).unwrap();
    std::fs::set_permissions(&hook_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = dir.join(format!("_usr_bin_test.{}.crash", owner.uid));
    write_report(
        &report,
        "ProblemType: Crash\nPackage: bash 5.2\n",
        Some(owner),
    );
    (hook_path, report)
}

/// `apport-hook test HOOK --report REPORT [--json]` as `user` (root when `None`).
fn test_hook(
    bus: &SystemBus,
    user: Option<&TestUser>,
    hook: &Path,
    report: &Path,
    json: bool,
) -> Output {
    let mut args = vec![
        "test",
        hook.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    if json {
        args.push("--json");
    }
    bus.client(user, &args).output().unwrap()
}

#[test]
fn test_prints_exactly_the_keys_that_would_be_sent_with_sizes() {
    if !have_root("test_prints_exactly_the_keys_that_would_be_sent_with_sizes") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("tt", &[], false);
    let (hook, report) = files(&bus, &owner, HOOK);
    let out = test_hook(&bus, None, &hook, &report, true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "completed");
    let keys = json["keys"].as_array().unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{json}");
    assert!(names.contains(&"UserId") && names.contains(&"OsReleaseFile"));
    let user = keys.iter().find(|k| k["key"] == "UserId").unwrap();
    // The user step runs as the report's owner.
    assert_eq!(user["value"], owner.uid.to_string());
    let release = keys.iter().find(|k| k["key"] == "OsReleaseFile").unwrap();
    assert_eq!(
        release["value"].as_str().unwrap(),
        std::fs::read_to_string("/usr/lib/os-release").unwrap()
    );
    for k in keys {
        assert_eq!(
            k["bytes"].as_u64().unwrap(),
            k["value"].as_str().unwrap().len() as u64
        );
    }
    // The compressed size is that of the strings-only BSON of these keys.
    let mut doc = bson::Document::new();
    for k in keys {
        doc.insert(k["key"].as_str().unwrap(), k["value"].as_str().unwrap());
    }
    let encoded = doc.to_vec().unwrap();
    assert_eq!(json["bson_bytes"].as_u64().unwrap(), encoded.len() as u64);
    assert_eq!(
        json["compressed_bytes"].as_u64().unwrap(),
        zstd::stream::encode_all(&encoded[..], 3).unwrap().len() as u64
    );

    // The text form names the keys, sizes and the total.
    let out = test_hook(&bus, None, &hook, &report, false);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("UserId ({} bytes):", owner.uid.to_string().len())),
        "{text}"
    );
    assert!(text.contains("bytes compressed (zstd)"), "{text}");
}

#[test]
fn test_refuses_a_hook_with_lint_problems_before_running_anything() {
    if !have_root("test_refuses_a_hook_with_lint_problems_before_running_anything") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("tl", &[], false);
    let bad = "name = \"bad\"\ndescription = \"reads a secret\"\n[target]\npackage = \"bash\"\n\
               [[step]]\nkey = \"Shadow\"\nfile = \"/etc/shadow\"\nas = \"root\"\n";
    let (hook, report) = files(&bus, &owner, bad);
    let out = test_hook(&bus, None, &hook, &report, true);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["stage"], "lint");
    assert!(!json["diagnostics"].as_array().unwrap().is_empty());
    // Nothing reached apportd: it was never activated.
    assert!(!bus.name_has_owner("com.ubuntu.apport"));
}

#[test]
fn test_as_a_plain_user_is_refused_with_a_hint() {
    if !have_root("test_as_a_plain_user_is_refused_with_a_hint") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let plain = TestUser::create("tp", &[], false);
    let (hook, report) = files(&bus, &plain, HOOK);
    let out = test_hook(&bus, Some(&plain), &hook, &report, false);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs an administrator"), "{stderr}");
    assert!(stderr.contains("NotAuthorized"), "{stderr}");
}
