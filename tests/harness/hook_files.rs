//! Hooks and crash reports as apportd's tests hand them over: built in
//! memory, written as files with the modes and owners a real caller's have.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use apport_hooks::hook::{Action, Hook, HookLimits, RunAs, Step, Target};

use super::TestUser;

/// A required step with the caps most tests use: 64 KiB of output, 30 s.
pub fn step(key: &str, run_as: RunAs, action: Action) -> Step {
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

/// `Action::Command` of `argv`.
pub fn command(argv: &[&str]) -> Action {
    Action::Command(argv.iter().map(|a| (*a).to_owned()).collect())
}

/// A hook named `name` for `package` with no conditions and the usual
/// limits (10 reports, 7 days).
pub fn package_hook(name: &str, package: &str, steps: Vec<Step>) -> Hook {
    Hook {
        name: name.into(),
        description: "tests".into(),
        target: Target::Package(package.into()),
        when: BTreeMap::new(),
        limits: HookLimits {
            reports: 10,
            days: 7,
        },
        steps,
    }
}

/// Write `hook` as canonical BSON, readable by everyone (mode 0644).
pub fn write_hook(path: &Path, hook: &Hook) {
    std::fs::write(path, bson::serialize_to_vec(hook).unwrap()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Write a crash report `text` with the mode apport gives one (0640),
/// owned by `owner` (root when `None`).
pub fn write_report(path: &Path, text: &str, owner: Option<&TestUser>) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
    if let Some(user) = owner {
        chown(path, user);
    }
}

/// Give `path` to `user` (and their primary group).
pub fn chown(path: &Path, user: &TestUser) {
    nix::unistd::chown(path, Some(user.uid.into()), Some(user.gid.into())).unwrap();
}
