//! Signed bundles through apportd on a private system bus with the real
//! polkitd and the shipped policy and rules; clients are `apport-hook run`
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

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use apport_hooks::bundle::{
    BundlePayload, GeneratedKeyPair, generate_key_pair, load_secret_key, sign_bundle,
};
use apport_hooks::hook::{Condition, Hook, RunAs, Step};
use harness::client_output::{assert_refused, json, step_outcome};
use harness::hook_files::{command, package_hook, step, write_report};
use harness::{SystemBus, TestUser, have_root, poll_for, shared_tempdir};

/// A hook for `package` on Ubuntu 24.04 only.
fn hook(package: &str, steps: Vec<Step>) -> Hook {
    Hook {
        description: "who runs the steps".into(),
        when: BTreeMap::from([(
            "DistroRelease".to_owned(),
            Condition::OneOf(vec!["Ubuntu 24.04".into()]),
        )]),
        ..package_hook("bash-ids", package, steps)
    }
}

fn id_steps() -> Vec<Step> {
    vec![
        step("UserId", RunAs::User, command(&["id", "-u"])),
        step("RootId", RunAs::Root, command(&["id", "-u"])),
    ]
}

/// A hook whose user step touches `marker`.
fn touch_hook(marker: &Path) -> Hook {
    hook(
        "bash",
        vec![step(
            "Touch",
            RunAs::User,
            command(&["touch", marker.to_str().unwrap()]),
        )],
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Trusted and revoked keys in their own directory, and a bus whose apportd trusts them.
struct Setup {
    keys: tempfile::TempDir,
    trusted: GeneratedKeyPair,
    revoked: GeneratedKeyPair,
    bus: SystemBus,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_idle_exit(2)
    }

    /// As [`Setup::new`], with apportd exiting after `idle_exit_secs` idle.
    fn with_idle_exit(idle_exit_secs: u64) -> Setup {
        let keys = shared_tempdir();
        let trusted = generate_key_pair().unwrap();
        let revoked = generate_key_pair().unwrap();
        let untrusted = generate_key_pair().unwrap();
        std::fs::create_dir(keys.path().join("keys.d")).unwrap();
        std::fs::write(
            keys.path().join("keys.d/daisy.pub"),
            &trusted.public_key_file,
        )
        .unwrap();
        std::fs::write(keys.path().join("keys.d/old.pub"), &revoked.public_key_file).unwrap();
        std::fs::write(
            keys.path().join("untrusted.pub"),
            &untrusted.public_key_file,
        )
        .unwrap();
        std::fs::write(
            keys.path().join("revoked-keys"),
            format!("{}\n", revoked.key_id),
        )
        .unwrap();
        let config = format!(
            "idle_exit_secs = {idle_exit_secs}\nkey_dirs = [\"{}\"]\nrevoked_keys = \"{}\"\n",
            keys.path().join("keys.d").display(),
            keys.path().join("revoked-keys").display()
        );
        let bus = SystemBus::start(&config);
        Setup {
            keys,
            trusted,
            revoked,
            bus,
        }
    }

    /// A bundle of `hook` signed by `key`, valid until `not_after`, written to a file.
    fn bundle(&self, name: &str, hook: &Hook, key: &GeneratedKeyPair, not_after: i64) -> PathBuf {
        let issued_at = (now() - 60).min(not_after - 3600);
        let payload = BundlePayload::new(name.into(), 3, hook.clone(), issued_at, not_after);
        self.write_signed(&format!("{name}.bundle"), &payload, key)
    }

    /// A bundle of `hook` signed by the trusted key and valid for a day.
    fn trusted_bundle(&self, name: &str, hook: &Hook) -> PathBuf {
        self.bundle(name, hook, &self.trusted, now() + 86_400)
    }

    /// Bundle `id` at `version`, issued at `issued_at`, signed by the trusted key.
    fn bundle_version(&self, id: &str, hook: &Hook, version: u32, issued_at: i64) -> PathBuf {
        let payload =
            BundlePayload::new(id.into(), version, hook.clone(), issued_at, now() + 86_400);
        self.write_signed(&format!("{id}-v{version}.bundle"), &payload, &self.trusted)
    }

    /// `payload` signed by `key`, written world-readable as `file` in the keys directory.
    fn write_signed(&self, file: &str, payload: &BundlePayload, key: &GeneratedKeyPair) -> PathBuf {
        let secret = load_secret_key(&key.secret_key_file).unwrap();
        let bytes = sign_bundle(payload, &secret).unwrap();
        let path = self.keys.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// A report of bash on Ubuntu 24.04 owned by `owner`.
    fn report(&self, owner: &TestUser) -> PathBuf {
        let path = self
            .keys
            .path()
            .join(format!("_usr_bin_bash.{}.crash", owner.uid));
        write_report(
            &path,
            "ProblemType: Crash\nPackage: bash 5.2.21-2ubuntu4\nDistroRelease: Ubuntu 24.04\n",
            Some(owner),
        );
        path
    }

    fn run(&self, user: &TestUser, bundle: &Path, report: &Path) -> Output {
        self.run_command(user, bundle, report).output().unwrap()
    }

    /// `apport-hook run BUNDLE --report REPORT --json` as `user`.
    fn run_command(&self, user: &TestUser, bundle: &Path, report: &Path) -> std::process::Command {
        let mut command = self.bus.run_hook(Some(user), false, bundle, report);
        command.arg("--json");
        command
    }
}

#[test]
fn admin_runs_a_signed_bundle_and_gets_root_and_user_steps() {
    if !have_root("admin_runs_a_signed_bundle_and_gets_root_and_user_steps") {
        return;
    }
    let setup = Setup::new();
    let admin = TestUser::create("ba", &["sudo"], false);
    let bundle = setup.trusted_bundle("bash-ids", &hook("bash", id_steps()));
    let result = json(&setup.run(&admin, &bundle, &setup.report(&admin)));
    assert_eq!(result["keys"]["UserId"], admin.uid.to_string());
    assert_eq!(result["keys"]["RootId"], "0");
    assert_eq!(result["outcome"], "completed");
}

#[test]
fn plain_user_gets_user_steps_and_no_root_steps() {
    if !have_root("plain_user_gets_user_steps_and_no_root_steps") {
        return;
    }
    let setup = Setup::new();
    let plain = TestUser::create("bp", &[], false);
    let bundle = setup.trusted_bundle("bash-ids", &hook("bash", id_steps()));
    let result = json(&setup.run(&plain, &bundle, &setup.report(&plain)));
    assert_eq!(result["keys"]["UserId"], plain.uid.to_string());
    assert!(result["keys"].get("RootId").is_none(), "{result}");
    assert_eq!(step_outcome(&result, "RootId"), "not-authorized");
}

#[test]
fn whoopsie_runs_user_steps_as_the_report_owner() {
    if !have_root("whoopsie_runs_user_steps_as_the_report_owner") {
        return;
    }
    let whoopsie = TestUser::create_named("whoopsie", &[], true);
    let setup = Setup::new();
    let owner = TestUser::create("bo", &[], false);
    let bundle = setup.trusted_bundle("bash-ids", &hook("bash", id_steps()));
    // apport writes reports 0640, owner:whoopsie.
    let report = setup.report(&owner);
    nix::unistd::chown(&report, None, Some(whoopsie.gid.into())).unwrap();
    let result = json(&setup.run(&whoopsie, &bundle, &report));
    assert_eq!(
        result["keys"]["UserId"],
        owner.uid.to_string(),
        "not as whoopsie"
    );
    assert_eq!(
        result["keys"]["RootId"], "0",
        "whoopsie has package-hook without a prompt"
    );
}

#[test]
fn tampered_expired_revoked_and_untrusted_bundles_run_nothing() {
    if !have_root("tampered_expired_revoked_and_untrusted_bundles_run_nothing") {
        return;
    }
    let setup = Setup::new();
    let admin = TestUser::create("bt", &["sudo"], false);
    let markers = setup.keys.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    // Writable by the step's user: a step that ran would leave the marker.
    std::fs::set_permissions(&markers, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let marker = markers.join("ran");
    let touch = touch_hook(&marker);
    let report = setup.report(&admin);
    let tampered = setup.bundle("tampered", &touch, &setup.trusted, now() + 86_400);
    let mut bytes = std::fs::read(&tampered).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&tampered, bytes).unwrap();
    let expired = setup.bundle("expired", &touch, &setup.trusted, now() - 86_400);
    let revoked = setup.bundle("revoked", &touch, &setup.revoked, now() + 86_400);
    let untrusted_pair = generate_key_pair().unwrap();
    let untrusted = setup.bundle("untrusted", &touch, &untrusted_pair, now() + 86_400);
    for (bundle, code) in [
        (&tampered, "bad-signature"),
        (&expired, "expired"),
        (&revoked, "revoked-key"),
        (&untrusted, "unknown-key"),
    ] {
        let output = setup.run(&admin, bundle, &report);
        assert_refused(&output, "com.ubuntu.Apport1.Error.BundleRejected");
        assert_refused(&output, code);
    }
    assert!(!marker.exists(), "a rejected bundle ran a step");
    // Positive control: the same hook, validly signed, does create the marker.
    let good = setup.bundle("good", &touch, &setup.trusted, now() + 86_400);
    let result = json(&setup.run(&admin, &good, &report));
    assert_eq!(step_outcome(&result, "Touch"), "collected", "{result}");
    assert!(marker.exists(), "the valid bundle's step did not run");
}

/// A key revoked or removed while apportd runs is refused by that same
/// process at once: any caller can keep apportd from its idle exit, so a
/// revocation read only at start could wait for ever.
#[test]
fn a_key_revoked_or_removed_while_apportd_runs_is_refused_at_once() {
    if !have_root("a_key_revoked_or_removed_while_apportd_runs_is_refused_at_once") {
        return;
    }
    // Long enough that one apportd process serves every call below.
    let setup = Setup::with_idle_exit(600);
    let admin = TestUser::create("bk", &["sudo"], false);
    let markers = setup.keys.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    std::fs::set_permissions(&markers, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let report = setup.report(&admin);
    let first = setup.trusted_bundle("first", &touch_hook(&markers.join("first")));
    let result = json(&setup.run(&admin, &first, &report));
    assert_eq!(step_outcome(&result, "Touch"), "collected", "{result}");
    let pid = apportd_pid(&setup.bus);

    // Revoked: the next bundle of that key runs nothing.
    let revoked_list = setup.keys.path().join("revoked-keys");
    let mut list = std::fs::read_to_string(&revoked_list).unwrap();
    list.push_str(&format!("{}\n", setup.trusted.key_id));
    std::fs::write(&revoked_list, list).unwrap();
    let second = setup.trusted_bundle("second", &touch_hook(&markers.join("second")));
    let output = setup.run(&admin, &second, &report);
    assert_rejected(&output, "revoked-key");
    assert!(
        !markers.join("second").exists(),
        "a revoked key's bundle ran"
    );

    // Removed from the trusted keys: unknown.
    std::fs::write(&revoked_list, format!("{}\n", setup.revoked.key_id)).unwrap();
    std::fs::remove_file(setup.keys.path().join("keys.d/daisy.pub")).unwrap();
    let output = setup.run(&admin, &second, &report);
    assert_rejected(&output, "unknown-key");

    // A revocation list that cannot be trusted any more fails closed.
    std::fs::write(
        setup.keys.path().join("keys.d/daisy.pub"),
        &setup.trusted.public_key_file,
    )
    .unwrap();
    std::fs::remove_file(&revoked_list).unwrap();
    std::os::unix::fs::symlink("/dev/null", &revoked_list).unwrap();
    let output = setup.run(&admin, &second, &report);
    assert_rejected(&output, "trust-store");
    assert!(
        !markers.join("second").exists(),
        "ran without a revocation list"
    );
    assert_eq!(
        apportd_pid(&setup.bus),
        pid,
        "one apportd process served every call"
    );
    // With a 600 s idle exit it would outlive the test's bus.
    let stopped = std::process::Command::new("kill")
        .arg(&pid)
        .status()
        .unwrap();
    assert!(stopped.success());
}

/// The pid of the process owning apportd's name on `bus`.
fn apportd_pid(bus: &SystemBus) -> String {
    let out = bus
        .bus_daemon_call("GetConnectionUnixProcessID", "s", &["com.ubuntu.apport"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = text
        .trim()
        .strip_prefix("u ")
        .unwrap_or_default()
        .to_owned();
    assert!(!pid.is_empty(), "apportd owns its name: {out:?}");
    pid
}

fn assert_rejected(output: &Output, code: &str) {
    assert_refused(output, "com.ubuntu.Apport1.Error.BundleRejected");
    assert_refused(output, code);
}

#[test]
fn an_older_bundle_of_a_hook_replayed_after_a_newer_one_runs_nothing() {
    if !have_root("an_older_bundle_of_a_hook_replayed_after_a_newer_one_runs_nothing") {
        return;
    }
    let setup = Setup::new();
    let admin = TestUser::create("br", &["sudo"], false);
    let markers = setup.keys.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    std::fs::set_permissions(&markers, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let touching = |name: &str| touch_hook(&markers.join(name));
    let report = setup.report(&admin);
    // Ids as daisy gives them, one per version (`NAME-VERSION`): the mark
    // is the hook's name, so v2's mark refuses v1 although their ids differ.
    let v1 = setup.bundle_version("bash-ids-1", &touching("v1"), 1, now() - 7200);
    let v2 = setup.bundle_version("bash-ids-2", &touching("v2"), 2, now() - 60);
    let result = json(&setup.run(&admin, &v2, &report));
    assert_eq!(step_outcome(&result, "Touch"), "collected", "{result}");
    assert!(markers.join("v2").exists());
    // The same bundle again is no rollback.
    std::fs::remove_file(markers.join("v2")).unwrap();
    let result = json(&setup.run(&admin, &v2, &report));
    assert_eq!(step_outcome(&result, "Touch"), "collected", "{result}");
    assert!(
        markers.join("v2").exists(),
        "the same bundle did not run again"
    );
    // The older one, validly signed and unexpired, is refused and runs nothing.
    let output = setup.run(&admin, &v1, &report);
    assert_rejected(&output, "rolled-back");
    assert_refused(&output, "older than one this machine already ran");
    assert!(
        !markers.join("v1").exists(),
        "the replayed old bundle ran a step"
    );
    // A newer version that does not apply to this report (another
    // package) raises no mark: v2 still runs after it.
    let mut elsewhere = touching("v3");
    elsewhere.target = hook("coreutils", Vec::new()).target;
    let v3 = setup.bundle_version("bash-ids-3", &elsewhere, 3, now() - 30);
    let output = setup.run(&admin, &v3, &report);
    assert_refused(&output, "com.ubuntu.Apport1.Error.NotApplicable");
    std::fs::remove_file(markers.join("v2")).unwrap();
    let result = json(&setup.run(&admin, &v2, &report));
    assert_eq!(step_outcome(&result, "Touch"), "collected", "{result}");
    // A corrupt mark for the hook fails closed, even for the newest bundle.
    let state = setup.bus.dir.path().join("apportd-state/bundle-high-water");
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains("\nbash-ids ")
    );
    std::fs::write(&state, "bash-ids not-a-time 2\n").unwrap();
    std::fs::remove_file(markers.join("v2")).unwrap();
    let output = setup.run(&admin, &v2, &report);
    assert_rejected(&output, "rollback-state-corrupt");
    assert!(
        !markers.join("v2").exists(),
        "a bundle ran despite a corrupt mark"
    );
}

#[test]
fn polkitd_stopped_means_root_steps_not_authorized_and_user_steps_still_run() {
    if !have_root("polkitd_stopped_means_root_steps_not_authorized_and_user_steps_still_run") {
        return;
    }
    let mut setup = Setup::new();
    let admin = TestUser::create("bk", &["sudo"], false);
    let bundle = setup.trusted_bundle("bash-ids", &hook("bash", id_steps()));
    let report = setup.report(&admin);
    setup.bus.stop_polkitd();
    let result = json(&setup.run(&admin, &bundle, &report));
    assert_eq!(result["keys"]["UserId"], admin.uid.to_string(), "{result}");
    assert!(result["keys"].get("RootId").is_none(), "{result}");
    assert_eq!(step_outcome(&result, "RootId"), "not-authorized");
}

#[test]
fn bundle_for_another_package_or_release_is_not_applicable() {
    if !have_root("bundle_for_another_package_or_release_is_not_applicable") {
        return;
    }
    let setup = Setup::new();
    let admin = TestUser::create("bn", &["sudo"], false);
    let report = setup.report(&admin);
    let other_package = setup.trusted_bundle("other", &hook("lightdm", id_steps()));
    let mut other_release_hook = hook("bash", id_steps());
    other_release_hook.when.insert(
        "DistroRelease".into(),
        Condition::OneOf(vec!["Ubuntu 22.04".into()]),
    );
    let other_release = setup.trusted_bundle("release", &other_release_hook);
    for bundle in [&other_package, &other_release] {
        let output = setup.run(&admin, bundle, &report);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("com.ubuntu.Apport1.Error.NotApplicable"),
            "{stderr}"
        );
    }
}

/// `dbus-monitor` on the bus as `user`, printing what it receives into `out`.
fn monitor_as(bus: &SystemBus, user: &TestUser, out: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let file = std::fs::File::create(out).unwrap();
    let child = std::process::Command::new("dbus-monitor")
        .args(["--address", &bus.address, "type='signal',member='Finished'"])
        .stdout(file)
        .stderr(std::process::Stdio::null())
        .uid(user.uid)
        .gid(user.gid)
        .spawn()
        .unwrap();
    // dbus-monitor prints its own NameAcquired once its match rules are in place.
    poll_for("dbus-monitor did not connect", || {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        text.contains("NameAcquired").then_some(())
    });
    child
}

#[test]
fn another_user_on_the_bus_neither_hears_a_jobs_result_nor_fetches_it() {
    if !have_root("another_user_on_the_bus_neither_hears_a_jobs_result_nor_fetches_it") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let setup = Setup::new();
    let admin = TestUser::create("fa", &["sudo"], false);
    let nosy = TestUser::create("fn", &[], false);
    let go = setup.keys.path().join("go");
    // The root step waits for the test, so the job is alive while the nosy user asks for it.
    let wait = format!(
        "for i in $(seq 600); do [ -e {} ] && break; sleep 0.1; done; echo root-secret",
        go.display()
    );
    let bundle = setup.trusted_bundle(
        "bash-secret",
        &hook(
            "bash",
            vec![step("Secret", RunAs::Root, command(&["sh", "-c", &wait]))],
        ),
    );
    let report = setup.report(&admin);
    let heard = setup.keys.path().join("heard");
    let mut monitor = monitor_as(&setup.bus, &nosy, &heard);
    let client = setup
        .run_command(&admin, &bundle, &report)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job = "/com/ubuntu/Apport/jobs/1";
    assert!(
        (0..300).any(|_| {
            let listed = setup.bus.apportd_property("RunningJobs");
            std::thread::sleep(std::time::Duration::from_millis(100));
            String::from_utf8_lossy(&listed.stdout).contains(job)
        }),
        "the admin's job never started"
    );
    let stolen = setup
        .bus
        .busctl()
        .args([
            "call",
            "com.ubuntu.apport",
            job,
            "com.ubuntu.Apport1.Job",
            "Result",
        ])
        .uid(nosy.uid)
        .gid(nosy.gid)
        .output()
        .unwrap();
    assert_refused(&stolen, "did not start this job");
    std::fs::write(&go, "").unwrap();
    let result = json(&client.wait_with_output().unwrap());
    assert_eq!(result["keys"]["Secret"], "root-secret", "{result}");
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    let heard = std::fs::read_to_string(&heard).unwrap();
    assert!(
        !heard.contains("member=Finished"),
        "another user received the job's Finished signal:\n{heard}"
    );
}
