//! apportd on a private system bus with the real polkitd and the shipped bus
//! policy, polkit policy and rules; clients are the built `apport-hook run`,
//! spawned as test users (needs root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::zombie_processes
)]

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use apport_hooks::hook::{Action, Hook, RunAs, Step};
use harness::client_output::{assert_refused, json, stderr};
use harness::hook_files::{command, package_hook, step, write_hook, write_report};
use harness::{SystemBus, TestUser, finished_unsigned_job, have_root, poll_for, process_gone};

const CONFIG: &str = "idle_exit_secs = 2\n";
/// At most one job per caller: a second call while one runs is `Busy`.
const ONE_JOB_CONFIG: &str = "idle_exit_secs = 2\n[limits]\nmax_jobs_per_caller = 1\n";

fn hook(steps: Vec<Step>) -> Hook {
    package_hook("dbus-test", "bash", steps)
}

/// A hook of the one step `key`.
fn one_step_hook(key: &str, run_as: RunAs, action: Action) -> Hook {
    hook(vec![step(key, run_as, action)])
}

/// A hook of the one step `Id` running `/usr/bin/id` as `run_as`.
fn id_hook(run_as: RunAs) -> Hook {
    one_step_hook("Id", run_as, command(&["/usr/bin/id"]))
}

/// Write the hook (canonical BSON) and a report owned by `owner` into the bus's dir.
fn files(bus: &SystemBus, hook: &Hook, owner: Option<&TestUser>) -> (PathBuf, PathBuf) {
    let dir = bus.dir.path();
    let uid = owner.map_or(0, |u| u.uid);
    let hook_path = dir.join(format!("hook-{uid}.bson"));
    write_hook(&hook_path, hook);
    let report = dir.join(format!("_usr_bin_test.{uid}.crash"));
    write_report(&report, "ProblemType: Crash\nPackage: bash 5.2\n", owner);
    (hook_path, report)
}

fn run_client(bus: &SystemBus, as_user: Option<&TestUser>, hook: &Path, report: &Path) -> Output {
    bus.run_hook(as_user, true, hook, report)
        .arg("--json")
        .output()
        .unwrap()
}

#[test]
fn root_runs_an_unsigned_hook_and_user_steps_run_as_the_report_owner() {
    if !have_root("root_runs_an_unsigned_hook_and_user_steps_run_as_the_report_owner") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("ow", &[], false);
    let h = hook(vec![
        step("UserId", RunAs::User, command(&["/usr/bin/id", "-u"])),
        step("RootId", RunAs::Root, command(&["/usr/bin/id", "-u"])),
        step(
            "Fds",
            RunAs::User,
            command(&["/usr/bin/ls", "/proc/self/fd"]),
        ),
    ]);
    let (hook_path, report) = files(&bus, &h, Some(&owner));
    let result = json(&run_client(&bus, None, &hook_path, &report));
    // stdin, stdout, stderr and ls's own directory descriptor: nothing inherited
    // from apportd (its bus socket, a caller's report descriptor).
    assert_eq!(result["keys"]["Fds"], "0\n1\n2\n3", "{result}");
    assert_eq!(result["outcome"], "completed");
    assert_eq!(result["keys"]["UserId"], owner.uid.to_string());
    assert_eq!(result["keys"]["RootId"], "0");
    assert_eq!(result["steps"][0]["outcome"], "collected");
}

#[test]
fn plain_user_cannot_run_an_unsigned_hook() {
    if !have_root("plain_user_cannot_run_an_unsigned_hook") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let plain = TestUser::create("pl", &[], false);
    let admin = TestUser::create("ad", &["sudo"], false);
    let (h, marker) = touch_hook(&bus);
    for user in [&plain, &admin] {
        let (hook_path, report) = files(&bus, &h, Some(user));
        let output = run_client(&bus, Some(user), &hook_path, &report);
        // test-hook is auth_admin for everyone, admins included, and there is no agent.
        assert_refused(&output, "com.ubuntu.Apport1.Error.NotAuthorized");
    }
    assert!(!marker.exists(), "a denied hook ran a step");
}

/// A hook whose user step creates a marker in a directory every user may
/// write to: the marker exists exactly when the step ran.
fn touch_hook(bus: &SystemBus) -> (Hook, PathBuf) {
    let dir = bus.dir.path().join("markers");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let marker = dir.join("ran");
    let h = one_step_hook(
        "Touch",
        RunAs::User,
        command(&["/usr/bin/touch", marker.to_str().unwrap()]),
    );
    (h, marker)
}

#[test]
fn an_authorized_unsigned_hook_runs_its_user_step_as_the_report_owner() {
    if !have_root("an_authorized_unsigned_hook_runs_its_user_step_as_the_report_owner") {
        return;
    }
    // The positive control of `plain_user_cannot_run_an_unsigned_hook`: the
    // same hook on the same kind of report does create the marker when authorized.
    let bus = SystemBus::start(CONFIG);
    let plain = TestUser::create("pc", &[], false);
    let (h, marker) = touch_hook(&bus);
    let (hook_path, report) = files(&bus, &h, Some(&plain));
    let result = json(&run_client(&bus, None, &hook_path, &report));
    assert_eq!(result["outcome"], "completed", "{result}");
    let meta = std::fs::metadata(&marker).expect("the authorized hook's step ran");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), plain.uid);
}

#[test]
fn plain_user_on_someone_elses_report_gets_access_denied() {
    if !have_root("plain_user_on_someone_elses_report_gets_access_denied") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("vi", &[], false);
    let intruder = TestUser::create("in", &[], false);
    let h = id_hook(RunAs::User);
    let (hook_path, report) = files(&bus, &h, Some(&owner));
    // The report is readable by the intruder: only the ownership check stops them.
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run_client(&bus, Some(&intruder), &hook_path, &report);
    assert_refused(&output, "com.ubuntu.Apport1.Error.AccessDenied");
}

#[test]
fn whoopsie_may_use_another_users_report() {
    if !have_root("whoopsie_may_use_another_users_report") {
        return;
    }
    // Created before apportd is activated: apportd looks whoopsie up at start.
    let whoopsie = TestUser::create_named("whoopsie", &[], true);
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("wo", &[], false);
    let h = id_hook(RunAs::User);
    let (hook_path, report) = files(&bus, &h, Some(&owner));
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run_client(&bus, Some(&whoopsie), &hook_path, &report);
    // Past the ownership check (no AccessDenied); unsigned hooks still need an admin.
    assert!(
        stderr(&output).contains("com.ubuntu.Apport1.Error.NotAuthorized"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn polkitd_stopped_means_denied() {
    if !have_root("polkitd_stopped_means_denied") {
        return;
    }
    let mut bus = SystemBus::start(CONFIG);
    bus.stop_polkitd();
    let h = id_hook(RunAs::Root);
    let (hook_path, report) = files(&bus, &h, None);
    // Even root is refused when polkit cannot be asked: fail closed.
    let output = run_client(&bus, None, &hook_path, &report);
    assert_refused(&output, "com.ubuntu.Apport1.Error.NotAuthorized");
}

/// Start a root client whose hook sleeps, wait for the step's child pid.
fn start_sleeping_job(bus: &SystemBus, owner: &TestUser) -> (std::process::Child, i32) {
    let pidfile = bus.dir.path().join("sleep.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let h = one_step_hook("Sleepy", RunAs::Root, command(&["/bin/sh", "-c", &script]));
    let (hook_path, report) = files(bus, &h, Some(owner));
    let client = bus
        .run_hook(None, true, &hook_path, &report)
        .spawn()
        .unwrap();
    let pid = poll_for("the sleeping step never started", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    (client, pid)
}

#[test]
fn caller_disconnecting_cancels_the_job_and_kills_its_children() {
    if !have_root("caller_disconnecting_cancels_the_job_and_kills_its_children") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("dc", &[], false);
    let (mut client, pid) = start_sleeping_job(&bus, &owner);
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(
        process_gone(pid),
        "the step's child {pid} outlived its caller"
    );
}

#[test]
fn first_call_activates_apportd_and_it_exits_when_idle() {
    if !have_root("first_call_activates_apportd_and_it_exits_when_idle") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    assert!(
        !bus.name_has_owner("com.ubuntu.apport"),
        "apportd ran before any call"
    );
    let version = bus.apportd_property("Version");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("s \"{}\"", env!("CARGO_PKG_VERSION"))
    );
    let limits = bus.apportd_property("Limits");
    let limits = String::from_utf8_lossy(&limits.stdout);
    assert!(limits.contains("\"job_bytes\" 50000000"), "{limits}");
    // The replies above came from the activated apportd (nothing else may own
    // the name). idle_exit_secs = 2 here: only its eventual exit is checked,
    // with a bound far beyond the idle time, so a slow machine cannot fail it.
    assert!(
        bus.wait_for_name_within("com.ubuntu.apport", false, 120),
        "apportd did not exit when idle"
    );
}

/// The `<interface name="NAME">` element of an introspection document, with
/// comments and layout whitespace removed.
fn interface_xml(xml: &str, name: &str) -> String {
    let mut text = String::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<!--") {
        text.push_str(&rest[..start]);
        let end = rest[start..]
            .find("-->")
            .map_or(rest.len(), |e| start + e + 3);
        rest = &rest[end..];
    }
    text.push_str(rest);
    let open = format!("<interface name=\"{name}\">");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("no interface {name} in:\n{xml}"));
    let end = start + text[start..].find("</interface>").unwrap() + "</interface>".len();
    text[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn shipped_introspection_matches_the_live_service() {
    if !have_root("shipped_introspection_matches_the_live_service") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("ix", &[], false);
    let shipped = std::fs::read_to_string(harness::shipped("dbus/com.ubuntu.Apport1.xml")).unwrap();
    let (mut client, _pid) = start_sleeping_job(&bus, &owner);
    let introspect = |path: &str| {
        let out = bus
            .busctl()
            .args(["introspect", "--xml-interface", "com.ubuntu.apport", path])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let manager = introspect("/com/ubuntu/Apport");
    let job = introspect("/com/ubuntu/Apport/jobs/1");
    client.kill().unwrap();
    client.wait().unwrap();
    assert_eq!(
        interface_xml(&shipped, "com.ubuntu.Apport1"),
        interface_xml(&manager, "com.ubuntu.Apport1"),
        "live:\n{manager}"
    );
    assert_eq!(
        interface_xml(&shipped, "com.ubuntu.Apport1.Job"),
        interface_xml(&job, "com.ubuntu.Apport1.Job"),
        "live:\n{job}"
    );
}

#[test]
fn only_the_caller_or_root_may_cancel_a_job_or_read_it_and_cancel_kills_its_children() {
    if !have_root(
        "only_the_caller_or_root_may_cancel_a_job_or_read_it_and_cancel_kills_its_children",
    ) {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("cn", &[], false);
    let other = TestUser::create("co", &[], false);
    let (client, pid) = start_sleeping_job(&bus, &owner);
    let cancel = |user: Option<&TestUser>| {
        use std::os::unix::process::CommandExt;
        let mut command = bus.busctl();
        command.args([
            "call",
            "com.ubuntu.apport",
            "/com/ubuntu/Apport/jobs/1",
            "com.ubuntu.Apport1.Job",
            "Cancel",
        ]);
        if let Some(user) = user {
            command.uid(user.uid).gid(user.gid);
        }
        command.output().unwrap()
    };
    let read = |user: Option<&TestUser>, property: &str| {
        use std::os::unix::process::CommandExt;
        let mut command = bus.busctl();
        command.args([
            "get-property",
            "com.ubuntu.apport",
            "/com/ubuntu/Apport/jobs/1",
            "com.ubuntu.Apport1.Job",
            property,
        ]);
        if let Some(user) = user {
            command.uid(user.uid).gid(user.gid);
        }
        command.output().unwrap()
    };
    // What a job does is its caller's business (root started this one, on
    // `owner`'s report): its state and progress too. (busctl prints
    // org.freedesktop.DBus.Error.AccessDenied as errno's text; root's
    // reads below pass the same bus policy.)
    for user in [&other, &owner] {
        for property in ["State", "Progress"] {
            assert_refused(&read(Some(user), property), "Access denied");
        }
    }
    let state = read(None, "State");
    assert!(state.status.success(), "{}", stderr(&state));
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "s \"running\""
    );
    let progress = read(None, "Progress");
    assert!(progress.status.success(), "{}", stderr(&progress));
    let refused = cancel(Some(&other));
    assert_refused(&refused, "did not start this job");
    assert!(!process_gone_now(pid), "a refused Cancel stopped the job");
    let done = cancel(None);
    assert!(done.status.success(), "{}", stderr(&done));
    let output = client.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(4),
        "the client reports an incomplete job"
    );
    assert!(
        process_gone(pid),
        "the cancelled step's child {pid} survived"
    );
}

fn process_gone_now(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn only_root_may_own_the_service_name() {
    if !have_root("only_root_may_own_the_service_name") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let bus = SystemBus::start(CONFIG);
    let user = TestUser::create("nm", &[], false);
    let output = bus
        .bus_daemon_call("RequestName", "su", &["com.ubuntu.apport", "0"])
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .unwrap();
    assert_refused(&output, "Access denied");
}

/// Call with a root-step hook while `owner`'s sleeping job holds the one
/// job a caller may have; `prepare` may change the report before the call.
fn call_while_a_job_runs(tag: &str, prepare: impl FnOnce(&Path)) -> Output {
    let bus = SystemBus::start(ONE_JOB_CONFIG);
    let owner = TestUser::create(tag, &[], false);
    let (mut client, _pid) = start_sleeping_job(&bus, &owner);
    let (hook_path, report) = files(&bus, &id_hook(RunAs::Root), None);
    prepare(&report);
    let output = run_client(&bus, None, &hook_path, &report);
    client.kill().unwrap();
    client.wait().unwrap();
    output
}

#[test]
fn a_caller_over_its_job_limit_is_told_busy() {
    if !have_root("a_caller_over_its_job_limit_is_told_busy") {
        return;
    }
    let output = call_while_a_job_runs("bz", |_| {});
    assert_refused(&output, "com.ubuntu.Apport1.Error.Busy");
}

#[test]
fn an_unsigned_hook_file_is_linted_by_the_client_and_run() {
    if !have_root("an_unsigned_hook_file_is_linted_by_the_client_and_run") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("tm", &[], false);
    let (_, report) = files(&bus, &hook(Vec::new()), Some(&owner));
    let toml = bus.dir.path().join("ids.toml");
    std::fs::write(
        &toml,
        "name = \"ids\"\ndescription = \"who runs the steps\"\n[target]\npackage = \"bash\"\n\
         [[step]]\nkey = \"UserId\"\ncommand = [\"id\", \"-u\"]\n",
    )
    .unwrap();
    let result = json(&run_client(&bus, None, &toml, &report));
    assert_eq!(result["keys"]["UserId"], owner.uid.to_string());

    let bad = bus.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\ndescription = \"reads a secret\"\n[target]\npackage = \"bash\"\n\
         [[step]]\nkey = \"Shadow\"\nfile = \"/etc/shadow\"\nas = \"root\"\n",
    )
    .unwrap();
    let output = run_client(&bus, None, &bad, &report);
    assert_refused(&output, "problem");
}

/// Replace the report at `report` with text that is not a report at all:
/// a call that reads it answers `InvalidArgs`.
fn spoil(report: &Path) {
    std::fs::write(report, "this is not a crash report\n").unwrap();
}

#[test]
fn a_denied_unsigned_hook_never_gets_its_report_read() {
    if !have_root("a_denied_unsigned_hook_never_gets_its_report_read") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let plain = TestUser::create("pr", &[], false);
    let (h, _marker) = touch_hook(&bus);
    let (hook_path, report) = files(&bus, &h, Some(&plain));
    spoil(&report);
    let output = run_client(&bus, Some(&plain), &hook_path, &report);
    // polkit is asked first: the report (unparseable here) is never read.
    assert_refused(&output, "com.ubuntu.Apport1.Error.NotAuthorized");
}

#[test]
fn a_caller_over_its_job_limit_is_told_busy_before_its_report_is_read() {
    if !have_root("a_caller_over_its_job_limit_is_told_busy_before_its_report_is_read") {
        return;
    }
    let output = call_while_a_job_runs("br", spoil);
    assert_refused(&output, "com.ubuntu.Apport1.Error.Busy");
}

#[test]
fn apportd_refuses_an_unsigned_hook_the_linter_would_refuse() {
    if !have_root("apportd_refuses_an_unsigned_hook_the_linter_would_refuse") {
        return;
    }
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("va", &[], false);
    let mut bad_name = id_hook(RunAs::User);
    bad_name.name = "Evil\" (approved by IT)".into();
    let cases = [
        bad_name,
        one_step_hook("bad key", RunAs::User, command(&["/usr/bin/id"])),
        one_step_hook("Rel", RunAs::Root, Action::File("etc/passwd".into())),
        one_step_hook(
            "Dots",
            RunAs::Root,
            Action::File("/etc/../etc/os-release".into()),
        ),
        one_step_hook("Shadow", RunAs::Root, Action::File("/etc/shadow".into())),
        one_step_hook("Bare", RunAs::Root, command(&["id"])),
        one_step_hook("Tmp", RunAs::Root, command(&["/tmp/evil"])),
    ];
    for h in &cases {
        // Written straight as BSON: the client's linter never sees them.
        let (hook_path, report) = files(&bus, h, Some(&owner));
        let output = run_client(&bus, None, &hook_path, &report);
        assert!(!output.status.success(), "{h:?} ran");
        assert!(
            stderr(&output).contains("com.ubuntu.Apport1.Error.InvalidArgs")
                && stderr(&output).contains("not valid"),
            "{h:?}: {}",
            stderr(&output)
        );
    }
}

/// A root-step hook echoing `text`, as canonical BSON.
fn echo_hook(text: &str) -> Vec<u8> {
    bson::serialize_to_vec(&one_step_hook(
        "Out",
        RunAs::Root,
        command(&["/usr/bin/echo", text]),
    ))
    .unwrap()
}

#[tokio::test]
async fn a_finished_jobs_result_is_dropped_when_its_caller_leaves() {
    if !have_root("a_finished_jobs_result_is_dropped_when_its_caller_leaves") {
        return;
    }
    use apport_hooks::apportd::proxy::Apport1Proxy;
    let bus = SystemBus::start(CONFIG);
    let owner = TestUser::create("rl", &[], false);
    let (_, report) = files(&bus, &hook(Vec::new()), Some(&owner));
    let caller = bus.connect().await;
    let job = finished_unsigned_job(&caller, &echo_hook("secret"), &report).await;
    let path = job.inner().path().to_owned();
    let observer = bus.connect().await;
    // Uncached: RunningJobs changes without a PropertiesChanged signal.
    let apportd = Apport1Proxy::builder(&observer)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    assert!(
        apportd
            .running_jobs()
            .await
            .unwrap()
            .iter()
            .any(|p| p.as_ref() == path)
    );
    drop(job);
    caller.close().await.unwrap();
    // RESULT_KEEP is 60 s: without the caller, the result must go long before.
    let mut gone = false;
    for _ in 0..300 {
        if !apportd
            .running_jobs()
            .await
            .unwrap()
            .iter()
            .any(|p| p.as_ref() == path)
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the job of a caller that left still holds its result");
}

#[tokio::test]
async fn results_waiting_over_their_cap_drop_the_oldest() {
    if !have_root("results_waiting_over_their_cap_drop_the_oldest") {
        return;
    }
    // Each result below is about 220 bytes: one fits under 300, two do not.
    let bus = SystemBus::start("idle_exit_secs = 2\n[limits]\npending_result_bytes = 300\n");
    let owner = TestUser::create("rc", &[], false);
    let (_, report) = files(&bus, &hook(Vec::new()), Some(&owner));
    let caller = bus.connect().await;
    let first = finished_unsigned_job(&caller, &echo_hook(&"a".repeat(200)), &report).await;
    let second = finished_unsigned_job(&caller, &echo_hook(&"b".repeat(200)), &report).await;
    // Dropped: refused as such, or the job object already gone with it.
    let error = first.result().await.unwrap_err().to_string();
    assert!(
        error.contains("ResultDropped") || error.contains("UnknownObject"),
        "{error}"
    );
    let (fd, _, outcome) = second.result().await.unwrap();
    assert_eq!(outcome, "completed");
    let result = apport_hooks::apportd::output::read_result(fd.into()).unwrap();
    assert_eq!(result.get_str("Out"), Some("b".repeat(200).as_str()));
}

#[tokio::test]
async fn results_waiting_over_their_number_drop_the_oldest() {
    if !have_root("results_waiting_over_their_number_drop_the_oldest") {
        return;
    }
    // Small results, but at most two waiting: each holds a descriptor.
    let bus = SystemBus::start("idle_exit_secs = 2\n[limits]\npending_results = 2\n");
    let owner = TestUser::create("rn", &[], false);
    let (_, report) = files(&bus, &hook(Vec::new()), Some(&owner));
    let caller = bus.connect().await;
    let first = finished_unsigned_job(&caller, &echo_hook("one"), &report).await;
    let second = finished_unsigned_job(&caller, &echo_hook("two"), &report).await;
    let third = finished_unsigned_job(&caller, &echo_hook("three"), &report).await;
    let error = first.result().await.unwrap_err().to_string();
    assert!(
        error.contains("ResultDropped") || error.contains("UnknownObject"),
        "{error}"
    );
    for (job, text) in [(second, "two"), (third, "three")] {
        let (fd, _, outcome) = job.result().await.unwrap();
        assert_eq!(outcome, "completed");
        let result = apport_hooks::apportd::output::read_result(fd.into()).unwrap();
        assert_eq!(result.get_str("Out"), Some(text));
    }
}
