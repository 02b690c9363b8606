//! A step's whole process tree ends with the step: children that left its
//! process group (`setsid`, double forks) included. Real processes, as root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use apport_hooks::apportd::job::{JobOutput, Outcome};
use apport_hooks::apportd::limits::Limits;
use apport_hooks::apportd::subreaper::{ProcStat, parse_stat};
use apport_hooks::hook::{Hook, RunAs, Step};
use harness::hook_files::{command, package_hook, step};
use harness::job_runs::{cancel_when_exists, executor, run_job};
use harness::{TestUser, have_root, shared_tempdir};

/// A hook of one `sh -c SCRIPT` step with 1 MiB of output and `timeout_secs`.
fn hook(key: &str, run_as: RunAs, script: String, timeout_secs: u32) -> Hook {
    let step = Step {
        max_bytes: 1024 * 1024,
        timeout_secs,
        ..step(key, run_as, command(&["sh", "-c", &script]))
    };
    package_hook("process-tree-test", "bash", vec![step])
}

/// Authorized, on a report that already has `Package`.
async fn run(
    hook: &Hook,
    owner: u32,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
) -> JobOutput {
    run_job(
        &executor(Limits::default()),
        hook,
        owner,
        true,
        &["Package"],
        cancel,
    )
    .await
}

/// A directory the step's user can write its pid files to.
fn pid_dir() -> tempfile::TempDir {
    let dir = shared_tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn read_pid(dir: &Path, name: &str) -> u32 {
    harness::job_runs::read_pid(&dir.join(name))
}

fn read_stat(dir: &Path, name: &str) -> ProcStat {
    let line = std::fs::read_to_string(dir.join(name)).unwrap();
    parse_stat(&line).unwrap_or_else(|| panic!("{name}: {line:?}"))
}

/// Gone at once (reaped, not merely dying): the step ended only after its
/// processes were.
fn gone_now(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// A step script that starts a `setsid` child, a double-forked `setsid`
/// grandchild and a plain double-forked grandchild, records their pids and
/// `/proc/PID/stat` while they run (and its own), then stays in the foreground.
fn escaping_children(dir: &Path, then: &str) -> String {
    let d = dir.display();
    format!(
        "setsid sleep 1000 >/dev/null 2>&1 & echo $! > {d}/setsid\n\
         ( setsid sleep 1000 >/dev/null 2>&1 & echo $! > {d}/double ) &\n\
         ( sleep 1000 >/dev/null 2>&1 & echo $! > {d}/orphan ) &\n\
         echo $$ > {d}/main\n\
         sleep 0.5\n\
         for p in setsid double orphan; do cat /proc/$(cat {d}/$p)/stat > {d}/$p.stat; done\n\
         cat /proc/$$/stat > {d}/main.stat\n\
         touch {d}/ready\n\
         {then}\n"
    )
}

/// The children really escaped: other sessions, and the orphans were
/// re-parented to the step's launcher (not to init). Then none survives.
fn assert_escaped_and_gone(dir: &Path) {
    let main = read_stat(dir, "main.stat");
    let launcher = main.ppid;
    for name in ["setsid", "double"] {
        let stat = read_stat(dir, &format!("{name}.stat"));
        assert_ne!(
            stat.session, main.session,
            "{name} child did not leave the step's session"
        );
    }
    for name in ["double", "orphan"] {
        let stat = read_stat(dir, &format!("{name}.stat"));
        assert_eq!(
            stat.ppid, launcher,
            "{name} orphan was not re-parented to the step launcher {launcher}"
        );
    }
    for name in ["setsid", "double", "orphan", "main"] {
        let pid = read_pid(dir, name);
        assert!(gone_now(pid), "{name} process {pid} survived its step");
    }
    assert!(gone_now(launcher), "the step launcher {launcher} survived");
}

#[tokio::test]
async fn setsid_and_double_forked_children_are_killed_at_the_timeout() {
    if !have_root("setsid_and_double_forked_children_are_killed_at_the_timeout") {
        return;
    }
    let dir = pid_dir();
    let script = escaping_children(dir.path(), "sleep 1000");
    let out = run(&hook("Escape", RunAs::Root, script, 2), 0, None).await;
    assert_eq!(out.steps[0].outcome, Outcome::TimedOut, "{:?}", out.steps);
    assert_escaped_and_gone(dir.path());
}

#[tokio::test]
async fn a_cancelled_user_steps_setsid_children_are_killed() {
    if !have_root("a_cancelled_user_steps_setsid_children_are_killed") {
        return;
    }
    let user = TestUser::create("pt", &[], false);
    let dir = pid_dir();
    let script = escaping_children(dir.path(), "sleep 1000");
    let (rx, watcher) = cancel_when_exists(dir.path().join("ready"));
    let out = run(&hook("Escape", RunAs::User, script, 60), user.uid, Some(rx)).await;
    let _tx = watcher.await.unwrap();
    assert_eq!(out.steps[0].outcome, Outcome::Cancelled, "{:?}", out.steps);
    assert_escaped_and_gone(dir.path());
}

#[tokio::test]
async fn a_setsid_background_child_is_killed_when_its_step_ends() {
    if !have_root("a_setsid_background_child_is_killed_when_its_step_ends") {
        return;
    }
    let dir = pid_dir();
    let d = dir.path().display();
    // `held` keeps the step's output pipe open, `quiet` does not; the step's
    // own program exits at once.
    let script = format!(
        "setsid sleep 1000 & echo $! > {d}/held\n\
         setsid sleep 1000 >/dev/null 2>&1 & echo $! > {d}/quiet\n\
         echo done\n"
    );
    let out = run(&hook("Leaves", RunAs::Root, script, 60), 0, None).await;
    assert_eq!(out.steps[0].outcome, Outcome::Collected, "{:?}", out.steps);
    assert_eq!(out.field("Leaves"), Some(&b"done"[..]));
    for name in ["held", "quiet"] {
        let pid = read_pid(dir.path(), name);
        assert!(
            gone_now(pid),
            "background {name} process {pid} outlived its step"
        );
    }
}

#[tokio::test]
async fn step_programs_start_with_no_signal_blocked_or_ignored() {
    if !have_root("step_programs_start_with_no_signal_blocked_or_ignored") {
        return;
    }
    let script = "grep -E '^Sig(Blk|Ign):' /proc/self/status".to_owned();
    let out = run(&hook("Signals", RunAs::Root, script, 10), 0, None).await;
    let text = String::from_utf8(out.field("Signals").unwrap().to_vec()).unwrap();
    let mask = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.rsplit('\t').next().unwrap(), 16).unwrap()
    };
    assert_eq!(
        mask("SigBlk:"),
        0,
        "the launcher's blocked signals leaked: {text}"
    );
    // Standard signals only: glibc's spawn leaves its internal real-time
    // signals 32 and 33 marked ignored in any child, launcher or not.
    assert_eq!(
        mask("SigIgn:") & 0x7fff_ffff,
        0,
        "the launcher's ignored signals leaked: {text}"
    );
}

#[test]
fn the_launcher_reports_an_unknown_program_like_exec_did() {
    if !have_root("the_launcher_reports_an_unknown_program_like_exec_did") {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apportd"))
        .args(["--internal-supervise", "/nonexistent/program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/program"),
        "{out:?}"
    );
}
