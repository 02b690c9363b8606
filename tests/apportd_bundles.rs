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
use apport_hooks::hook::{Action, Condition, Hook, HookLimits, RunAs, Step, Target};
use harness::{SystemBus, TestUser, have_root, shared_tempdir};

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

fn hook(package: &str, steps: Vec<Step>) -> Hook {
    Hook {
        name: "bash-ids".into(),
        description: "who runs the steps".into(),
        target: Target::Package(package.into()),
        when: BTreeMap::from([(
            "DistroRelease".to_owned(),
            Condition::OneOf(vec!["Ubuntu 24.04".into()]),
        )]),
        limits: HookLimits {
            reports: 10,
            days: 7,
        },
        steps,
    }
}

fn id_steps() -> Vec<Step> {
    vec![
        step(
            "UserId",
            RunAs::User,
            Action::Command(vec!["id".into(), "-u".into()]),
        ),
        step(
            "RootId",
            RunAs::Root,
            Action::Command(vec!["id".into(), "-u".into()]),
        ),
    ]
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
            "idle_exit_secs = 2\nkey_dirs = [\"{}\"]\nrevoked_keys = \"{}\"\n",
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
        let secret = load_secret_key(&key.secret_key_file).unwrap();
        let bytes = sign_bundle(&payload, &secret).unwrap();
        let path = self.keys.path().join(format!("{name}.bundle"));
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// Bundle `id` at `version`, issued at `issued_at`, signed by the trusted key.
    fn bundle_version(&self, id: &str, hook: &Hook, version: u32, issued_at: i64) -> PathBuf {
        let payload =
            BundlePayload::new(id.into(), version, hook.clone(), issued_at, now() + 86_400);
        let secret = load_secret_key(&self.trusted.secret_key_file).unwrap();
        let bytes = sign_bundle(&payload, &secret).unwrap();
        let path = self.keys.path().join(format!("{id}-v{version}.bundle"));
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
        std::fs::write(
            &path,
            "ProblemType: Crash\nPackage: bash 5.2.21-2ubuntu4\nDistroRelease: Ubuntu 24.04\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        nix::unistd::chown(&path, Some(owner.uid.into()), Some(owner.gid.into())).unwrap();
        path
    }

    fn run(&self, user: &TestUser, bundle: &Path, report: &Path) -> Output {
        self.bus
            .client(
                Some(user),
                &[
                    "run",
                    bundle.to_str().unwrap(),
                    "--report",
                    report.to_str().unwrap(),
                    "--json",
                ],
            )
            .output()
            .unwrap()
    }
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

fn step_outcome(result: &serde_json::Value, key: &str) -> String {
    result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap()["outcome"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn admin_runs_a_signed_bundle_and_gets_root_and_user_steps() {
    if !have_root("admin_runs_a_signed_bundle_and_gets_root_and_user_steps") {
        return;
    }
    let setup = Setup::new();
    let admin = TestUser::create("ba", &["sudo"], false);
    let bundle = setup.bundle(
        "bash-ids",
        &hook("bash", id_steps()),
        &setup.trusted,
        now() + 86_400,
    );
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
    let bundle = setup.bundle(
        "bash-ids",
        &hook("bash", id_steps()),
        &setup.trusted,
        now() + 86_400,
    );
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
    let bundle = setup.bundle(
        "bash-ids",
        &hook("bash", id_steps()),
        &setup.trusted,
        now() + 86_400,
    );
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
    let touch = hook(
        "bash",
        vec![step(
            "Touch",
            RunAs::User,
            Action::Command(vec!["touch".into(), marker.to_str().unwrap().into()]),
        )],
    );
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
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bundle:?} was accepted");
        assert!(
            stderr.contains("com.ubuntu.Apport1.Error.BundleRejected"),
            "{stderr}"
        );
        assert!(
            stderr.contains(code),
            "{bundle:?}: expected {code}: {stderr}"
        );
    }
    assert!(!marker.exists(), "a rejected bundle ran a step");
    // Positive control: the same hook, validly signed, does create the marker.
    let good = setup.bundle("good", &touch, &setup.trusted, now() + 86_400);
    let result = json(&setup.run(&admin, &good, &report));
    assert_eq!(step_outcome(&result, "Touch"), "collected", "{result}");
    assert!(marker.exists(), "the valid bundle's step did not run");
}

fn assert_rejected(output: &Output, code: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the bundle was accepted");
    assert!(
        stderr.contains("com.ubuntu.Apport1.Error.BundleRejected") && stderr.contains(code),
        "expected BundleRejected {code}: {stderr}"
    );
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
    let touching = |name: &str| {
        hook(
            "bash",
            vec![step(
                "Touch",
                RunAs::User,
                Action::Command(vec![
                    "touch".into(),
                    markers.join(name).to_str().unwrap().into(),
                ]),
            )],
        )
    };
    let report = setup.report(&admin);
    let v1 = setup.bundle_version("rollback-test", &touching("v1"), 1, now() - 7200);
    let v2 = setup.bundle_version("rollback-test", &touching("v2"), 2, now() - 60);
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
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("older than one this machine already ran"),
        "{stderr}"
    );
    assert!(
        !markers.join("v1").exists(),
        "the replayed old bundle ran a step"
    );
    // A corrupt mark for the hook fails closed, even for the newest bundle.
    let state = setup.bus.dir.path().join("apportd-state/bundle-high-water");
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains("rollback-test ")
    );
    std::fs::write(&state, "rollback-test not-a-time 2\n").unwrap();
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
    let bundle = setup.bundle(
        "bash-ids",
        &hook("bash", id_steps()),
        &setup.trusted,
        now() + 86_400,
    );
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
    let other_package = setup.bundle(
        "other",
        &hook("lightdm", id_steps()),
        &setup.trusted,
        now() + 86_400,
    );
    let mut other_release_hook = hook("bash", id_steps());
    other_release_hook.when.insert(
        "DistroRelease".into(),
        Condition::OneOf(vec!["Ubuntu 22.04".into()]),
    );
    let other_release = setup.bundle(
        "release",
        &other_release_hook,
        &setup.trusted,
        now() + 86_400,
    );
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
    for _ in 0..300 {
        if std::fs::read_to_string(out)
            .unwrap_or_default()
            .contains("NameAcquired")
        {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("dbus-monitor did not connect");
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
    let bundle = setup.bundle(
        "bash-secret",
        &hook(
            "bash",
            vec![step(
                "Secret",
                RunAs::Root,
                Action::Command(vec!["sh".into(), "-c".into(), wait]),
            )],
        ),
        &setup.trusted,
        now() + 86_400,
    );
    let report = setup.report(&admin);
    let heard = setup.keys.path().join("heard");
    let mut monitor = monitor_as(&setup.bus, &nosy, &heard);
    let client = setup
        .bus
        .client(
            Some(&admin),
            &[
                "run",
                bundle.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
                "--json",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job = "/com/ubuntu/Apport/jobs/1";
    assert!(
        (0..300).any(|_| {
            let listed = setup
                .bus
                .busctl()
                .args([
                    "get-property",
                    "com.ubuntu.apport",
                    "/com/ubuntu/Apport",
                    "com.ubuntu.Apport1",
                    "RunningJobs",
                ])
                .output()
                .unwrap();
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
    assert!(!stolen.status.success(), "another user fetched the result");
    assert!(
        String::from_utf8_lossy(&stolen.stderr).contains("did not start this job"),
        "{}",
        String::from_utf8_lossy(&stolen.stderr)
    );
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
