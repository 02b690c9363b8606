//! Shared test harness for apportd's tests: root checks, throw-away users.
//!
//! Tests that need root skip with a message on a developer machine that is not
//! root, and fail loudly when `CI` is set: CI must never pass by skipping.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// `useradd`/`userdel` lock /etc/passwd; run them one at a time.
static PASSWD_LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `true` when running as root. Otherwise: panic under CI, else print why the test is skipped.
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root and CI is set: run the tests as root");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// Fail (under CI) or report missing a required program.
pub fn require_program(path: &str) -> bool {
    if std::path::Path::new(path).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} is missing and CI is set: install it (see .ci/run)");
    }
    eprintln!("skipping: {path} is missing");
    false
}

/// A user created for one test and removed when dropped.
#[derive(Debug)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
}

impl TestUser {
    /// A new user named `ah<tag><n>`, member of `groups`; `system` makes a system user.
    pub fn create(tag: &str, groups: &[&str], system: bool) -> TestUser {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ah{tag}{}x{n}", std::process::id() % 100_000);
        Self::create_named(&name, groups, system)
    }

    /// A user with exactly this name (e.g. `whoopsie`), replacing a leftover one.
    pub fn create_named(name: &str, groups: &[&str], system: bool) -> TestUser {
        let _lock = PASSWD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(name).output();
        let mut cmd = Command::new("useradd");
        cmd.args([
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
        ]);
        if system {
            cmd.arg("--system");
        }
        if !groups.is_empty() {
            cmd.args(["--groups", &groups.join(",")]);
        }
        let out = cmd.arg(name).output().expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user = nix::unistd::User::from_name(name)
            .unwrap()
            .expect("user just created");
        TestUser {
            name: name.to_owned(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _lock = PASSWD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A temporary directory every test user can traverse and read.
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet), waiting up to 10 s
/// for a SIGKILL that was already sent to take effect.
pub fn process_gone(pid: i32) -> bool {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                let state = stat
                    .rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().next());
                if state == Some("Z") || state == Some("X") {
                    return true;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}
