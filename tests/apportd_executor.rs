//! The step executor against real files, real processes and real users (needs root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::zombie_processes
)]

mod harness;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use apport_hooks::apportd::job::{
    Authorizer, Executor, JobOutput, JobRequest, Outcome, RootRequest,
};
use apport_hooks::apportd::limits::Limits;
use apport_hooks::apportd::safe_file::{FileError, Resolver, read_file_with};
use apport_hooks::hook::{Action, Hook, JournalQuery, RunAs, Step};
use harness::hook_files::{command, package_hook};
use harness::job_runs::{cancel_when_exists, executor, read_pid, run_job};
use harness::{TestUser, have_root, process_gone, shared_tempdir};

/// A step with room for the cap tests: 1 MiB, 20 s.
fn step(key: &str, run_as: RunAs, action: Action) -> Step {
    Step {
        max_bytes: 1024 * 1024,
        timeout_secs: 20,
        ..harness::hook_files::step(key, run_as, action)
    }
}

fn hook(steps: Vec<Step>) -> Hook {
    package_hook("executor-test", "bash", steps)
}

async fn run(hook: &Hook, owner: u32, root_authorized: bool) -> JobOutput {
    run_with(
        &executor(Limits::default()),
        hook,
        owner,
        root_authorized,
        None,
    )
    .await
}

/// On a report that already has `Package` and `ProblemType`.
async fn run_with(
    executor: &Executor,
    hook: &Hook,
    owner: u32,
    root_authorized: bool,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
) -> JobOutput {
    run_job(
        executor,
        hook,
        owner,
        root_authorized,
        &["Package", "ProblemType"],
        cancel,
    )
    .await
}

fn file(path: &Path) -> Action {
    Action::File(path.to_str().unwrap().to_owned())
}

fn outcome(out: &JobOutput, key: &str) -> Outcome {
    out.steps.iter().find(|s| s.key == key).unwrap().outcome
}

#[tokio::test]
async fn root_file_step_refuses_symlinks_fifos_devices_and_dotdot() {
    if !have_root("root_file_step_refuses_symlinks_fifos_devices_and_dotdot") {
        return;
    }
    let dir = shared_tempdir();
    let d = dir.path();
    std::fs::write(d.join("secret"), "root only").unwrap();
    std::fs::create_dir(d.join("real")).unwrap();
    std::fs::write(d.join("real/file"), "data").unwrap();
    symlink(d.join("secret"), d.join("link")).unwrap();
    symlink(d.join("real"), d.join("linkdir")).unwrap();
    nix::unistd::mkfifo(
        &d.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &d.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let dotdot = format!("{}/real/../secret", d.display());
    let h = hook(vec![
        step("Link", RunAs::Root, file(&d.join("link"))),
        step("LinkDir", RunAs::Root, file(&d.join("linkdir/file"))),
        step("Fifo", RunAs::Root, file(&d.join("fifo"))),
        step("Device", RunAs::Root, file(&d.join("null"))),
        step("DevNull", RunAs::Root, Action::File("/dev/null".into())),
        step("DotDot", RunAs::Root, Action::File(dotdot)),
        step("Plain", RunAs::Root, file(&d.join("real/file"))),
    ]);
    let out = run(&h, 0, true).await;
    for key in ["Link", "LinkDir", "Fifo", "Device", "DevNull", "DotDot"] {
        assert_eq!(
            outcome(&out, key),
            Outcome::Refused,
            "{key}: {:?}",
            out.steps
        );
        assert!(out.field(key).is_none(), "{key} must carry no value");
        assert!(
            out.field(&format!("HookError_{key}")).is_some(),
            "{key} needs a HookError"
        );
    }
    assert_eq!(out.field("Plain"), Some(&b"data"[..]));

    // The per-component fallback (kernels without openat2) refuses the same things.
    for resolver in [Resolver::Auto, Resolver::ComponentWalk] {
        assert!(matches!(
            read_file_with(&d.join("link"), 100, resolver),
            Err(FileError::Symlink { .. })
        ));
        assert!(matches!(
            read_file_with(&d.join("linkdir/file"), 100, resolver),
            Err(FileError::Symlink { .. })
        ));
        assert!(matches!(
            read_file_with(&d.join("fifo"), 100, resolver),
            Err(FileError::NotRegular { kind: "FIFO", .. })
        ));
        assert!(matches!(
            read_file_with(&d.join("null"), 100, resolver),
            Err(FileError::NotRegular {
                kind: "character device",
                ..
            })
        ));
        assert!(matches!(
            read_file_with(&d.join("missing"), 100, resolver),
            Err(FileError::NotFound { .. })
        ));
        let read = read_file_with(&d.join("real/file"), 2, resolver).unwrap();
        assert_eq!((read.bytes.as_slice(), read.truncated), (&b"da"[..], true));
    }
}

#[tokio::test]
async fn optional_missing_file_is_not_an_error() {
    if !have_root("optional_missing_file_is_not_an_error") {
        return;
    }
    let mut s = step(
        "Missing",
        RunAs::Root,
        Action::File("/nonexistent/apport-hooks".into()),
    );
    s.optional = true;
    let required = step(
        "Required",
        RunAs::Root,
        Action::File("/nonexistent/apport-hooks".into()),
    );
    let out = run(&hook(vec![s, required]), 0, true).await;
    assert_eq!(outcome(&out, "Missing"), Outcome::Missing);
    assert!(out.field("HookError_Missing").is_none());
    assert_eq!(outcome(&out, "Required"), Outcome::Failed);
    assert!(out.field("HookError_Required").is_some());
}

#[tokio::test]
async fn glob_attaches_one_key_per_file_and_skips_symlinks() {
    if !have_root("glob_attaches_one_key_per_file_and_skips_symlinks") {
        return;
    }
    let dir = shared_tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("logs")).unwrap();
    std::fs::write(d.join("logs/Xorg.0.log"), "zero").unwrap();
    std::fs::write(d.join("logs/Xorg 1.log"), "one").unwrap();
    std::fs::write(d.join("logs/other.txt"), "no").unwrap();
    std::fs::write(d.join("outside.log"), "outside").unwrap();
    symlink(d.join("outside.log"), d.join("logs/evil.log")).unwrap();
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    std::fs::write(d.join("elsewhere/deep.log"), "deep").unwrap();
    symlink(d.join("elsewhere"), d.join("logs/sub")).unwrap();
    let pattern = format!("{}/logs/*.log", d.display());
    let nested = format!("{}/logs/*/*.log", d.display());
    let out = run(
        &hook(vec![
            step("Xorg", RunAs::Root, Action::Glob(pattern)),
            step("Nested", RunAs::Root, Action::Glob(nested)),
        ]),
        0,
        true,
    )
    .await;
    assert_eq!(out.field("Xorg.Xorg.0.log"), Some(&b"zero"[..]));
    assert_eq!(out.field("Xorg.Xorg.1.log"), Some(&b"one"[..]));
    assert!(
        out.field("Xorg.evil.log").is_none(),
        "a symlink must not match: {:?}",
        out.fields
    );
    assert_eq!(
        outcome(&out, "Nested"),
        Outcome::Missing,
        "symlinked dir entered"
    );
}

/// Root step `Sleepy`: a background `sleep 300` whose pid it writes to
/// `pidfile`, then waits for it.
fn sleepy_step(pidfile: &Path) -> Step {
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    step("Sleepy", RunAs::Root, command(&["sh", "-c", &script]))
}

#[tokio::test]
async fn step_sleeping_past_its_timeout_is_killed_with_its_children() {
    if !have_root("step_sleeping_past_its_timeout_is_killed_with_its_children") {
        return;
    }
    let dir = shared_tempdir();
    let pidfile = dir.path().join("pid");
    let mut s = sleepy_step(&pidfile);
    s.timeout_secs = 2;
    let out = run(&hook(vec![s]), 0, true).await;
    assert_eq!(outcome(&out, "Sleepy"), Outcome::TimedOut);
    let error = String::from_utf8_lossy(out.field("HookError_Sleepy").unwrap()).into_owned();
    // The timeout the step had, not the time left when the kill came (0 s):
    // the process path always reports first (the step's outer bound waits
    // for its processes to be gone), so this fails if it reports "0 s".
    assert_eq!(
        error, "timed out after 2 s; its processes were killed",
        "{error}"
    );
    let pid: i32 = read_pid(&pidfile);
    assert!(
        process_gone(pid),
        "the step's child {pid} survived its timeout"
    );
}

#[tokio::test]
async fn cancelled_job_kills_its_running_step() {
    if !have_root("cancelled_job_kills_its_running_step") {
        return;
    }
    let dir = shared_tempdir();
    let pidfile = dir.path().join("pid");
    let h = hook(vec![
        sleepy_step(&pidfile),
        step("After", RunAs::Root, command(&["true"])),
    ]);
    let (rx, watcher) = cancel_when_exists(pidfile.clone());
    let out = run_with(&executor(Limits::default()), &h, 0, true, Some(rx)).await;
    let _tx = watcher.await.unwrap();
    assert_eq!(outcome(&out, "Sleepy"), Outcome::Cancelled);
    assert_eq!(outcome(&out, "After"), Outcome::Cancelled);
    let pid: i32 = read_pid(&pidfile);
    assert!(
        process_gone(pid),
        "the cancelled step's child {pid} survived"
    );
}

#[tokio::test]
async fn output_over_its_cap_is_truncated_and_reported() {
    if !have_root("output_over_its_cap_is_truncated_and_reported") {
        return;
    }
    let mut endless = step("Yes", RunAs::Root, command(&["yes"]));
    endless.max_bytes = 1000;
    let mut file_step = step("Big", RunAs::Root, Action::File("/proc/self/exe".into()));
    file_step.max_bytes = 10;
    let out = run(&hook(vec![endless, file_step]), 0, true).await;
    assert_eq!(outcome(&out, "Yes"), Outcome::Truncated);
    assert_eq!(
        out.field("Yes").unwrap().len(),
        999,
        "1000 bytes of 'y\\n', trailing newline trimmed"
    );
    assert_eq!(out.steps[0].bytes, 999);
    // /proc/self/exe is a symlink: refused even though it is under the cap.
    assert_eq!(outcome(&out, "Big"), Outcome::Refused);
}

#[tokio::test]
async fn job_over_the_total_cap_is_stopped() {
    if !have_root("job_over_the_total_cap_is_stopped") {
        return;
    }
    let big = |key: &str| {
        let mut s = step(
            key,
            RunAs::Root,
            command(&["head", "-c", "30000000", "/dev/urandom"]),
        );
        s.max_bytes = 30_000_000;
        s
    };
    let out = run(
        &hook(vec![big("First"), big("Second"), big("Third")]),
        0,
        true,
    )
    .await;
    assert_eq!(Limits::default().job_bytes, 50_000_000);
    assert_eq!(outcome(&out, "First"), Outcome::Collected);
    assert_eq!(outcome(&out, "Second"), Outcome::Truncated);
    assert_eq!(outcome(&out, "Third"), Outcome::Skipped);
    assert!(
        out.bytes() <= 50_000_000 + 200,
        "job produced {} bytes",
        out.bytes()
    );
    assert!(out.field("HookError").is_some(), "a stopped job says so");
    assert!(out.stopped.is_some());
}

#[tokio::test]
async fn command_failure_keeps_output_like_apport() {
    if !have_root("command_failure_keeps_output_like_apport") {
        return;
    }
    let out = run(
        &hook(vec![
            step(
                "Fails",
                RunAs::Root,
                command(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            ),
            step("Unknown", RunAs::Root, command(&["/tmp/evil"])),
            step("Env", RunAs::Root, command(&["env"])),
        ]),
        0,
        true,
    )
    .await;
    let fails = String::from_utf8(out.field("Fails").unwrap().to_vec()).unwrap();
    assert!(
        fails.starts_with("Error: command sh failed with exit code 3: "),
        "{fails}"
    );
    assert!(
        fails.contains("out") && fails.contains("err"),
        "stderr merged: {fails}"
    );
    assert_eq!(outcome(&out, "Unknown"), Outcome::Refused);
    let env = String::from_utf8(out.field("Env").unwrap().to_vec()).unwrap();
    let mut vars: Vec<&str> = env.lines().map(|l| l.split('=').next().unwrap()).collect();
    vars.sort();
    assert_eq!(vars, ["LANG", "PATH"], "root steps inherit nothing: {env}");
}

#[tokio::test]
async fn user_step_runs_with_the_users_uid_gid_and_groups() {
    if !have_root("user_step_runs_with_the_users_uid_gid_and_groups") {
        return;
    }
    let user = TestUser::create("ex", &["sudo"], false);
    let out = run(
        &hook(vec![
            step("Id", RunAs::User, command(&["id"])),
            step(
                "Status",
                RunAs::User,
                Action::File("/proc/self/status".into()),
            ),
            step("Env", RunAs::User, command(&["env"])),
        ]),
        user.uid,
        false,
    )
    .await;
    let id = String::from_utf8(out.field("Id").unwrap().to_vec()).unwrap();
    assert!(
        id.starts_with(&format!("uid={}({}) gid={}", user.uid, user.name, user.gid)),
        "{id}"
    );
    assert!(id.contains("(sudo)"), "supplementary groups set: {id}");
    // /proc/self/status is a symlinked path: the read itself is refused, but
    // the Env step shows the user's environment and nothing else.
    assert_eq!(outcome(&out, "Status"), Outcome::Refused);
    let env = String::from_utf8(out.field("Env").unwrap().to_vec()).unwrap();
    let mut vars: Vec<&str> = env.lines().map(|l| l.split('=').next().unwrap()).collect();
    vars.sort();
    assert_eq!(vars, ["HOME", "LANG", "PATH"], "{env}");
}

#[tokio::test]
async fn user_file_steps_read_with_the_users_privileges() {
    if !have_root("user_file_steps_read_with_the_users_privileges") {
        return;
    }
    let user = TestUser::create("rd", &[], false);
    let dir = shared_tempdir();
    let secret = dir.path().join("root-only");
    std::fs::write(&secret, "root secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = dir.path().join("public");
    std::fs::write(&public, "hello").unwrap();
    std::fs::create_dir(dir.path().join("g")).unwrap();
    std::fs::write(dir.path().join("g/a.log"), "A").unwrap();
    std::fs::write(dir.path().join("g/b.log"), "B").unwrap();
    symlink(&secret, dir.path().join("g/c.log")).unwrap();
    let pattern = format!("{}/g/*.log", dir.path().display());
    let h = hook(vec![
        step("Secret", RunAs::User, file(&secret)),
        step("Public", RunAs::User, file(&public)),
        step("Logs", RunAs::User, Action::Glob(pattern)),
    ]);
    let out = run(&h, user.uid, true).await;
    assert_eq!(outcome(&out, "Secret"), Outcome::Failed, "{:?}", out.steps);
    assert!(
        out.field("Secret").is_none(),
        "root read the file for the user"
    );
    let error = String::from_utf8(out.field("HookError_Secret").unwrap().to_vec()).unwrap();
    assert!(error.contains("ermission denied"), "{error}");
    assert_eq!(out.field("Public"), Some(&b"hello"[..]));
    assert_eq!(out.field("Logs.a.log"), Some(&b"A"[..]));
    assert_eq!(out.field("Logs.b.log"), Some(&b"B"[..]));
    assert!(out.field("Logs.c.log").is_none());
}

#[tokio::test]
async fn unauthorized_root_steps_run_nothing() {
    if !have_root("unauthorized_root_steps_run_nothing") {
        return;
    }
    let user = TestUser::create("na", &[], false);
    let dir = shared_tempdir();
    let marker = dir.path().join("ran");
    let h = hook(vec![
        step(
            "Root",
            RunAs::Root,
            command(&["touch", marker.to_str().unwrap()]),
        ),
        step("User", RunAs::User, command(&["id", "-u"])),
    ]);
    let out = run(&h, user.uid, false).await;
    assert_eq!(outcome(&out, "Root"), Outcome::NotAuthorized);
    assert!(!marker.exists(), "an unauthorized root step ran");
    assert_eq!(out.field("User"), Some(user.uid.to_string().as_bytes()));

    // A root-owned report's user steps run as `nobody`, never as root: they
    // need no root authorization and get none of root's rights.
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_ne!(nobody.uid.as_raw(), 0);
    let out = run(&h, 0, false).await;
    assert_eq!(outcome(&out, "Root"), Outcome::NotAuthorized);
    assert_eq!(
        out.field("User"),
        Some(nobody.uid.as_raw().to_string().as_bytes())
    );
    assert!(!marker.exists());
    let out = run(&h, 0, true).await;
    assert_eq!(
        out.field("User"),
        Some(nobody.uid.as_raw().to_string().as_bytes()),
        "root authorization does not make user steps root"
    );
    assert!(marker.exists(), "the authorized root step ran");
}

#[tokio::test]
async fn package_journal_and_conffile_steps_use_the_system_tools() {
    if !have_root("package_journal_and_conffile_steps_use_the_system_tools") {
        return;
    }
    // Modify one conffile of adduser for the test and put it back after.
    let conffile = Path::new("/etc/deluser.conf");
    let original = std::fs::read(conffile).unwrap();
    struct Restore<'a>(&'a Path, Vec<u8>);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            std::fs::write(self.0, &self.1).unwrap();
        }
    }
    let _restore = Restore(conffile, original.clone());
    let mut changed = original.clone();
    changed.extend_from_slice(b"\n# changed by apport-hooks test\n");
    std::fs::write(conffile, &changed).unwrap();
    let out = run(
        &hook(vec![
            step(
                "Versions",
                RunAs::Root,
                Action::PackageVersions(vec!["dpkg".into(), "adduser".into()]),
            ),
            step(
                "Journal",
                RunAs::Root,
                Action::Journal(JournalQuery {
                    lines: Some(5),
                    ..JournalQuery::default()
                }),
            ),
            step(
                "Conffiles",
                RunAs::Root,
                Action::Conffiles("adduser".into()),
            ),
        ]),
        0,
        true,
    )
    .await;
    let versions = String::from_utf8(out.field("Versions").unwrap().to_vec()).unwrap();
    assert!(
        versions.lines().any(|l| l.starts_with("dpkg ")),
        "{versions}"
    );
    assert!(
        versions.lines().any(|l| l.starts_with("adduser ")),
        "{versions}"
    );
    assert_eq!(
        outcome(&out, "Journal"),
        Outcome::Collected,
        "{:?}",
        out.steps
    );
    let summary = String::from_utf8(out.field("Conffiles").unwrap().to_vec()).unwrap();
    assert_eq!(summary, "/etc/deluser.conf: modified\n", "{summary}");
    assert_eq!(
        out.field("Conffiles.etc.deluser.conf"),
        Some(changed.as_slice())
    );
}

#[tokio::test]
async fn deny_listed_secrets_are_refused_even_to_root_steps() {
    if !have_root("deny_listed_secrets_are_refused_even_to_root_steps") {
        return;
    }
    let out = run(
        &hook(vec![
            step("Shadow", RunAs::Root, Action::File("/etc/shadow".into())),
            step("Shadows", RunAs::Root, Action::Glob("/etc/*shadow".into())),
        ]),
        0,
        true,
    )
    .await;
    assert_eq!(outcome(&out, "Shadow"), Outcome::Refused);
    assert!(out.field("Shadow").is_none());
    assert!(
        out.fields.iter().all(|(k, _)| !k.starts_with("Shadows.")),
        "a deny-listed glob match was read: {:?}",
        out.fields.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
}

/// The job's total stops the job even when the step it cut keeps a few
/// bytes less than its cap: command output is trimmed of surrounding
/// whitespace after the cut. (`job_over_the_total_cap_is_stopped` failed
/// whenever /dev/urandom put whitespace at the cut, about one run in 25.)
#[tokio::test]
async fn job_total_stops_the_job_when_the_cut_output_ends_in_whitespace() {
    if !have_root("job_total_stops_the_job_when_the_cut_output_ends_in_whitespace") {
        return;
    }
    let limits = Limits {
        job_bytes: 1000,
        ..Limits::default()
    };
    let capped = |key: &str, max_bytes: u32| {
        let mut s = step(key, RunAs::Root, command(&["yes", "a "]));
        s.max_bytes = max_bytes;
        s
    };
    // "a \n" repeated: 700 bytes end in "a", so First keeps all 700; Second
    // is cut at the 300 left, which end in "a \n", so it keeps 298.
    let h = hook(vec![
        capped("First", 700),
        capped("Second", 1000),
        capped("Third", 1000),
    ]);
    let out = run_with(&executor(limits), &h, 0, true, None).await;
    assert_eq!(outcome(&out, "First"), Outcome::Truncated);
    assert_eq!(out.steps[0].bytes, 700);
    assert_eq!(outcome(&out, "Second"), Outcome::Truncated);
    assert_eq!(out.steps[1].bytes, 298);
    assert_eq!(outcome(&out, "Third"), Outcome::Skipped);
    assert!(out.field("HookError").is_some(), "a stopped job says so");
}

#[tokio::test]
async fn job_deadline_stops_the_job() {
    if !have_root("job_deadline_stops_the_job") {
        return;
    }
    let limits = Limits {
        job_deadline_secs: 1,
        ..Limits::default()
    };
    let h = hook(vec![
        step("Slow", RunAs::Root, command(&["sleep", "30"])),
        step("Next", RunAs::Root, command(&["true"])),
    ]);
    let out = run_with(&executor(limits), &h, 0, true, None).await;
    assert_eq!(
        outcome(&out, "Slow"),
        Outcome::TimedOut,
        "step timeout narrowed to the deadline"
    );
    assert_eq!(outcome(&out, "Next"), Outcome::Skipped);
    assert!(out.field("HookError").is_some());
}

#[tokio::test]
async fn steps_may_not_overwrite_existing_report_fields() {
    if !have_root("steps_may_not_overwrite_existing_report_fields") {
        return;
    }
    let echo = |text: &str| command(&["echo", text]);
    let mut replaces = step("Package", RunAs::Root, echo("bash 5.2-1"));
    replaces.replaces = true;
    let mut not_replaceable = step("ProblemType", RunAs::Root, echo("Bug"));
    not_replaceable.replaces = true;
    let out = run(
        &hook(vec![
            step("Package", RunAs::Root, echo("evil 1.0")),
            not_replaceable,
            replaces,
        ]),
        0,
        true,
    )
    .await;
    assert_eq!(
        out.steps[0].outcome,
        Outcome::Refused,
        "plain step clobbered Package"
    );
    assert_eq!(
        out.steps[1].outcome,
        Outcome::Refused,
        "ProblemType is not replaceable"
    );
    assert_eq!(out.steps[2].outcome, Outcome::Collected);
    assert_eq!(out.field("Package"), Some(&b"bash 5.2-1"[..]));
    assert!(out.field("ProblemType").is_none());
}

#[tokio::test]
async fn root_steps_inherit_no_descriptor_from_apportd() {
    if !have_root("root_steps_inherit_no_descriptor_from_apportd") {
        return;
    }
    use std::os::fd::AsRawFd;
    // A descriptor without close-on-exec, as zbus hands out received ones.
    let file = std::fs::File::open("/etc/os-release").unwrap();
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let leaked = file.as_raw_fd().to_string();
    let out = run(
        &hook(vec![step(
            "RootFds",
            RunAs::Root,
            command(&["ls", "/proc/self/fd"]),
        )]),
        0,
        true,
    )
    .await;
    let fds = String::from_utf8_lossy(out.field("RootFds").unwrap()).into_owned();
    assert!(
        !fds.lines().any(|fd| fd == leaked),
        "the root step inherited descriptor {leaked}: {fds:?}"
    );
    drop(file);
}

/// polkit never answering (an authentication dialog left open, an agent
/// that never replies) holds a job no longer than its deadline, and Cancel
/// ends the wait at once; in both cases nothing runs as root.
#[tokio::test]
async fn an_unanswered_root_authorization_ends_with_the_deadline_or_a_cancel() {
    struct Never;
    impl Authorizer for Never {
        fn authorize_root(
            &self,
            _request: &RootRequest,
        ) -> impl std::future::Future<Output = bool> + Send {
            std::future::pending()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let h = hook(vec![step(
        "Root",
        RunAs::Root,
        command(&["touch", marker.to_str().unwrap()]),
    )]);
    let existing = std::collections::BTreeSet::new();
    let request = JobRequest {
        hook: &h,
        version: 1,
        caller_uid: 4242,
        report_owner: 4242,
        existing_keys: &existing,
    };
    let limits = Limits {
        job_deadline_secs: 1,
        ..Limits::default()
    };
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        executor(limits).run(&request, &Never, None, &|_, _| {}),
    )
    .await
    .expect("the job ended at its deadline");
    assert_ne!(outcome(&out, "Root"), Outcome::Collected);
    assert!(out.field("HookError").is_some(), "{out:?}");

    let (cancel, cancel_rx) = tokio::sync::watch::channel(false);
    let fire = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        cancel.send(true).unwrap();
        cancel
    });
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        executor(Limits::default()).run(&request, &Never, Some(cancel_rx), &|_, _| {}),
    )
    .await
    .expect("Cancel ended the wait for polkit");
    assert_eq!(outcome(&out, "Root"), Outcome::Cancelled);
    drop(fire.await.unwrap());
    assert!(!marker.exists(), "a root step ran without an answer");
}
