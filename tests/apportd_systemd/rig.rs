//! The rig of `tests/apportd_systemd.rs`: the private bus, a booted systemd
//! with the shipped `apportd.service` installed, a report owner, and the
//! helpers that write hooks and run them through the bus.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use apport_hooks::hook::{Action, Hook, RunAs, Step};

pub use crate::harness::client_output::step_outcome as outcome;
use crate::harness::hook_files::{self, package_hook, write_hook, write_report};
use crate::harness::systemd::{SHARE, Systemd};
use crate::harness::{self, SystemBus, TestUser};

/// Long enough that apportd never exits idle during a test.
pub const APPORTD_CONFIG: &str = "idle_exit_secs = 600\n";

/// The unit as shipped in `systemd/apportd.service`.
pub fn shipped_unit() -> String {
    std::fs::read_to_string(harness::shipped("systemd/apportd.service")).unwrap()
}

/// `(name, value)` of every directive in the unit's `[Service]` section.
pub fn service_directives(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut directives = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && !line.is_empty()
            && !line.starts_with('#')
            && let Some((name, value)) = line.split_once('=')
        {
            directives.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    directives
}

/// The shipped unit with only `ExecStart=` pointing at the built binary and a test config.
pub fn unit_under_test() -> String {
    let shipped = shipped_unit();
    let exec_lines = shipped
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .count();
    assert_eq!(exec_lines, 1, "the shipped unit has one ExecStart=");
    let binary = env!("CARGO_BIN_EXE_apportd");
    // /tmp and /var/tmp are fresh inside the namespaces: the binary would be missing.
    assert!(
        !binary.starts_with("/tmp/") && !binary.starts_with("/var/tmp/"),
        "build outside /tmp (CARGO_TARGET_DIR) for this test: {binary}"
    );
    shipped
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                format!("ExecStart={binary} --config {SHARE}/apportd.toml")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The bus, a booted systemd running the shipped apportd.service, and the
/// owner of the test reports (in `systemd-journal`, so a user `journal` step
/// has a journal it may read).
pub struct Rig {
    pub systemd: Systemd,
    pub owner: TestUser,
    pub bus: SystemBus,
    /// Host-side files bound into the namespaces (kept alive).
    _binds: tempfile::TempDir,
    /// The changed `/etc/bash.bashrc` seen inside.
    pub bashrc: String,
}

/// Boot systemd with the unit installed and `config` as apportd's configuration;
/// apportd is not started.
pub fn rig(config: &str) -> Rig {
    let bus = SystemBus::start_with_systemd_activation();
    let owner = TestUser::create("sd", &["systemd-journal"], false);
    // A conffile changed inside the namespaces only (a bind mount), so the
    // conffiles step has a modified file to find; the host's stays as it is.
    let binds = harness::shared_tempdir();
    let bashrc = format!(
        "{}# changed by apport-hooks' systemd test\n",
        std::fs::read_to_string("/etc/bash.bashrc").unwrap()
    );
    let bashrc_path = binds.path().join("bash.bashrc");
    std::fs::write(&bashrc_path, &bashrc).unwrap();
    std::fs::set_permissions(&bashrc_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let systemd = Systemd::boot(
        &bus.dir.path().join("system_bus_socket"),
        &[("apportd.service", unit_under_test())],
        &[(bashrc_path, "/etc/bash.bashrc")],
    );
    let share = systemd.share();
    std::fs::write(share.join("apportd.toml"), config).unwrap();
    std::fs::set_permissions(
        share.join("apportd.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    Rig {
        systemd,
        owner,
        bus,
        _binds: binds,
        bashrc,
    }
}

/// A booted rig with apportd started by `systemctl start` (it waits for the bus name).
pub fn started_rig() -> Rig {
    let rig = rig(APPORTD_CONFIG);
    let start = rig.systemd.systemctl(&["start", "apportd.service"]);
    assert!(
        start.status.success(),
        "systemctl start apportd.service: {}\n{}\n{}\n{}",
        String::from_utf8_lossy(&start.stderr),
        String::from_utf8_lossy(
            &rig.systemd
                .systemctl(&["status", "--no-pager", "apportd"])
                .stdout
        ),
        journal(&rig.systemd, "apportd.service"),
        rig.systemd.logs()
    );
    // apportd logged its start to the namespace's journald: a `journal` step
    // has that line to find (waited for, so a slow journald cannot fail the test).
    let logged = (0..300).any(|_| {
        let found = journal(&rig.systemd, "apportd.service").contains("apportd is serving");
        if !found {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        found
    });
    assert!(logged, "{}", journal(&rig.systemd, "apportd.service"));
    rig
}

/// `journalctl -u UNIT` inside, for failure messages.
pub fn journal(systemd: &Systemd, unit: &str) -> String {
    let out = systemd
        .nsenter(&["journalctl", "--no-pager", "-u", unit])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A step with room for the sandbox's slower start: 256 KiB, 60 s.
pub fn step(key: &str, run_as: RunAs, action: Action) -> Step {
    Step {
        max_bytes: 256 * 1024,
        timeout_secs: 60,
        ..hook_files::step(key, run_as, action)
    }
}

pub fn command(key: &str, run_as: RunAs, argv: &[&str]) -> Step {
    step(key, run_as, hook_files::command(argv))
}

pub fn hook(steps: Vec<Step>) -> Hook {
    package_hook("systemd-test", "bash", steps)
}

impl Rig {
    /// Write `hook` and a report owned by the test user; return their paths.
    pub fn files(&self, name: &str, hook: &Hook) -> (PathBuf, PathBuf) {
        let dir = self.bus.dir.path();
        let hook_path = dir.join(format!("{name}.bson"));
        write_hook(&hook_path, hook);
        let report = dir.join(format!("{name}.crash"));
        write_report(
            &report,
            "ProblemType: Crash\nPackage: bash 5.2\n",
            Some(&self.owner),
        );
        (hook_path, report)
    }

    /// Run `hook` as root (polkit `test-hook`) through the bus; the result as JSON.
    pub fn run(&self, name: &str, hook: &Hook) -> serde_json::Value {
        let (hook_path, report) = self.files(name, hook);
        let output = self
            .bus
            .run_hook(None, true, &hook_path, &report)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "client failed: {}\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
            journal(&self.systemd, "apportd.service")
        );
        let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(result["outcome"], "completed", "{result}");
        result
    }

    /// A file only the report's owner may read, inside at `/run/apport-test/NAME`.
    pub fn owner_file(&self, name: &str, text: &str) -> String {
        let path = self.systemd.share().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        hook_files::chown(&path, &self.owner);
        format!("{SHARE}/{name}")
    }

    /// Run ARGV inside the namespaces, outside the service: the control observations.
    pub fn outside(&self, argv: &[&str]) -> Output {
        self.systemd.nsenter(argv).output().unwrap()
    }
}

pub fn key<'a>(result: &'a serde_json::Value, key: &str) -> &'a str {
    result["keys"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no key {key} in {result}"))
}

/// The value of `name=` in the shipped unit.
pub fn shipped_value(name: &str) -> String {
    service_directives(&shipped_unit())
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}= in the shipped unit"))
        .1
}

/// Poll `systemctl show -p StatusText` until it is `want` (bounded, generous).
pub fn wait_status(rig: &Rig, want: &str) -> String {
    wait_property(rig, "StatusText", want)
}

/// The host pid of the unit's main process and the pid owning `com.ubuntu.apport`.
pub fn main_and_owner(rig: &Rig) -> (i32, String) {
    let main_pid: i32 = rig
        .systemd
        .property("apportd.service", "MainPID")
        .parse()
        .unwrap();
    let host_pid = rig.systemd.host_pid(main_pid).expect("apportd's host pid");
    let owner = rig
        .bus
        .bus_daemon_call(
            "GetConnectionUnixProcessID",
            "s",
            &[&shipped_value("BusName")],
        )
        .output()
        .unwrap();
    (
        host_pid,
        String::from_utf8_lossy(&owner.stdout).trim().to_owned(),
    )
}

/// Poll a unit property until it is `want` (bounded, generous).
pub fn wait_property(rig: &Rig, name: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..1200 {
        last = rig.systemd.property("apportd.service", name);
        if last == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last
}
