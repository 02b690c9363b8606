//! apportd on a private system bus with the real polkitd and the shipped bus
//! policy, polkit policy and rules; clients are the built `apport-hook run`,
//! spawned as test users (needs root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use apport_hooks::hook::{Action, Hook, HookLimits, RunAs, Step, Target};
use harness::{SystemBus, TestUser, have_root, process_gone};

const CONFIG: &str = "idle_exit_secs = 2\n";

fn step(key: &str, run_as: RunAs, action: Action) -> Step {
    Step {
        key: key.into(),
        run_as,
        optional: false,
        replaces: false,
        max_bytes: 64 * 1024,
        timeout_secs: 30,
        action,
    }
}

fn hook(steps: Vec<Step>) -> Hook {
    Hook {
        name: "dbus-test".into(),
        description: "tests".into(),
        target: Target::Package("bash".into()),
        when: BTreeMap::new(),
        limits: HookLimits { reports: 10, days: 7 },
        steps,
    }
}

/// Write the hook (canonical BSON) and a report owned by `owner` into the bus's dir.
fn files(bus: &SystemBus, hook: &Hook, owner: Option<&TestUser>) -> (PathBuf, PathBuf) {
    let dir = bus.dir.path();
    let hook_path = dir.join(format!("hook-{}.bson", owner.map_or(0, |u| u.uid)));
    std::fs::write(&hook_path, bson::serialize_to_vec(hook).unwrap()).unwrap();
    std::fs::set_permissions(&hook_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = dir.join(format!("_usr_bin_test.{}.crash", owner.map_or(0, |u| u.uid)));
    std::fs::write(&report, "ProblemType: Crash\nPackage: bash 5.2\n").unwrap();
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o640)).unwrap();
    if let Some(user) = owner {
        nix::unistd::chown(&report, Some(user.uid.into()), Some(user.gid.into())).unwrap();
    }
    (hook_path, report)
}

fn run_client(bus: &SystemBus, as_user: Option<&TestUser>, hook: &Path, report: &Path) -> Output {
    bus.client(
        as_user,
        &[
            "run",
            "--unsigned",
            hook.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--json",
        ],
    )
    .output()
    .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn root_runs_an_unsigned_hook_and_user_steps_run_as_the_report_owner() {
    if !have_root("root_runs_an_unsigned_hook_and_user_steps_run_as_the_report_owner") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("ow", &[], false);
    let h = hook(vec![
        step("UserId", RunAs::User, Action::Command(vec!["id".into(), "-u".into()])),
        step("RootId", RunAs::Root, Action::Command(vec!["id".into(), "-u".into()])),
    ]);
    let (hook_path, report) = files(&bus, &h, Some(&owner));
    let result = json(&run_client(&bus, None, &hook_path, &report));
    assert_eq!(result["outcome"], "completed");
    assert_eq!(result["keys"]["UserId"], owner.uid.to_string());
    assert_eq!(result["keys"]["RootId"], "0");
    assert_eq!(result["steps"][0]["outcome"], "collected");
}
