//! Shared test harness for apportd's tests: root checks, throw-away users.
//!
//! Tests that need root skip with a message on a developer machine that is not
//! root, and fail loudly when `CI` is set: CI must never pass by skipping.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

pub mod client_output;
pub mod hook_files;
pub mod job_runs;
pub mod systemd;
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
    /// Created by the test (and so removed by it).
    created: bool,
}

impl TestUser {
    /// A new user named `ah<tag><n>`, member of `groups`; `system` makes a system user.
    pub fn create(tag: &str, groups: &[&str], system: bool) -> TestUser {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ah{tag}{}x{n}", std::process::id() % 100_000);
        Self::create_named(&name, groups, system)
    }

    /// A user with exactly this name (e.g. `whoopsie`); an existing one is used
    /// as it is and left in place.
    pub fn create_named(name: &str, groups: &[&str], system: bool) -> TestUser {
        let _lock = PASSWD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
            return TestUser {
                name: name.to_owned(),
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                created: false,
            };
        }
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
            created: true,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
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

/// Poll `found` every 100 ms, up to 30 s, until it gives a value; panic
/// naming `what` if it never does.
pub fn poll_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(value) = found() {
            return value;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what}");
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

/// The shipped files under test, from the source tree.
pub fn shipped(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

static POLKIT_FILES: std::sync::Once = std::sync::Once::new();

/// Install the shipped polkit action and rules where the real polkitd reads them.
pub fn install_polkit_files() {
    POLKIT_FILES.call_once(|| {
        use std::os::unix::fs::PermissionsExt;
        for (from, to) in [
            (
                "polkit/com.ubuntu.apport.policy",
                "/usr/share/polkit-1/actions/com.ubuntu.apport.policy",
            ),
            (
                "polkit/com.ubuntu.apport.rules",
                "/etc/polkit-1/rules.d/60-com.ubuntu.apport.rules",
            ),
        ] {
            let to = std::path::Path::new(to);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(shipped(from), to).unwrap();
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    });
}

/// A private system bus (real dbus-daemon) including the shipped bus policy,
/// with apportd activatable from it and the real polkitd on it.
pub struct SystemBus {
    /// Socket, configuration and scratch files.
    pub dir: tempfile::TempDir,
    /// `unix:path=…` of the bus.
    pub address: String,
    daemon: std::process::Child,
    polkitd: Option<std::process::Child>,
}

/// The generated bus configuration: the system bus's default policy, the
/// distribution's polkit and systemd policies and apportd's SHIPPED policy,
/// included verbatim.
fn bus_config(socket: &std::path::Path, services: &std::path::Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <include>/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>
  <!-- systemd's own policy: PID 1 in tests/apportd_systemd.rs owns its name here -->
  <include ignore_missing="yes">/usr/share/dbus-1/system.d/org.freedesktop.systemd1.conf</include>
  <include>{apport}</include>
</busconfig>
"#,
        socket = socket.display(),
        services = services.display(),
        apport = shipped("dbus/com.ubuntu.apport.conf").display(),
    )
}

impl SystemBus {
    /// Start the bus and polkitd; apportd is activated on first use with
    /// `apportd_config` (TOML) as its configuration.
    pub fn start(apportd_config: &str) -> SystemBus {
        Self::start_inner(Some(apportd_config))
    }

    /// Start the bus (with `--systemd-activation`) and polkitd, with the
    /// SHIPPED activation file: a call to `com.ubuntu.apport` asks systemd
    /// (PID 1 on this bus, `tests/apportd_systemd.rs`) to start `apportd.service`.
    pub fn start_with_systemd_activation() -> SystemBus {
        Self::start_inner(None)
    }

    fn start_inner(apportd_config: Option<&str>) -> SystemBus {
        use std::io::BufRead;
        assert!(require_program("/usr/lib/polkit-1/polkitd"));
        assert!(require_program("/usr/bin/dbus-daemon"));
        install_polkit_files();
        let dir = shared_tempdir();
        let socket = dir.path().join("system_bus_socket");
        let services = dir.path().join("services");
        std::fs::create_dir(&services).unwrap();
        let activation = services.join("com.ubuntu.apport.service");
        if let Some(apportd_config) = apportd_config {
            let config = dir.path().join("apportd.toml");
            // apportd's state (bundle high-water marks) stays in the test's directory.
            let apportd_config = if apportd_config.contains("state_dir") {
                apportd_config.to_owned()
            } else {
                format!(
                    "state_dir = \"{}\"\n{apportd_config}",
                    dir.path().join("apportd-state").display()
                )
            };
            std::fs::write(&config, apportd_config).unwrap();
            // Test-only activation file: the shipped one names /usr/libexec/apportd.
            std::fs::write(
                &activation,
                format!(
                    "[D-BUS Service]\nName=com.ubuntu.apport\nExec={} --config {}\nUser=root\n",
                    env!("CARGO_BIN_EXE_apportd"),
                    config.display()
                ),
            )
            .unwrap();
        } else {
            std::fs::copy(shipped("dbus/com.ubuntu.apport.service"), &activation).unwrap();
        }
        let bus_conf = dir.path().join("bus.conf");
        std::fs::write(&bus_conf, bus_config(&socket, &services)).unwrap();
        let address = format!("unix:path={}", socket.display());
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", bus_conf.display()))
            .args(["--nofork", "--print-address=1"])
            .args(apportd_config.is_none().then_some("--systemd-activation"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        std::io::BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("unix:"),
            "dbus-daemon did not start: {line:?}"
        );
        let mut bus = SystemBus {
            dir,
            address,
            daemon,
            polkitd: None,
        };
        bus.start_polkitd();
        bus
    }

    /// Start the real polkitd on this bus and wait until it owns its name.
    pub fn start_polkitd(&mut self) {
        let child = Command::new("/usr/lib/polkit-1/polkitd")
            .arg("--no-debug")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start polkitd");
        self.polkitd = Some(child);
        assert!(
            self.wait_for_name("org.freedesktop.PolicyKit1", true),
            "polkitd did not take its name on the private bus"
        );
    }

    /// Stop polkitd (to check that apportd then fails closed).
    pub fn stop_polkitd(&mut self) {
        if let Some(mut child) = self.polkitd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(self.wait_for_name("org.freedesktop.PolicyKit1", false));
    }

    /// `busctl call` of the bus daemon's own `member` (`org.freedesktop.DBus`)
    /// with `signature` and `args`.
    pub fn bus_daemon_call(&self, member: &str, signature: &str, args: &[&str]) -> Command {
        let mut command = self.busctl();
        command
            .args([
                "call",
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                member,
                signature,
            ])
            .args(args);
        command
    }

    /// Whether `name` has an owner on this bus.
    pub fn name_has_owner(&self, name: &str) -> bool {
        let out = self
            .bus_daemon_call("NameHasOwner", "s", &[name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "b true"
    }

    /// Wait (up to 30 s) until `name` is owned (`owned`) or not.
    pub fn wait_for_name(&self, name: &str, owned: bool) -> bool {
        self.wait_for_name_within(name, owned, 30)
    }

    /// Wait up to `secs` seconds until `name` is owned (`owned`) or not.
    pub fn wait_for_name_within(&self, name: &str, owned: bool, secs: u32) -> bool {
        for _ in 0..secs.saturating_mul(10) {
            if self.name_has_owner(name) == owned {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// `busctl` talking to this bus.
    pub fn busctl(&self) -> Command {
        let mut command = Command::new("busctl");
        command.arg(format!("--address={}", self.address));
        command
    }

    /// `apport-hook run [--unsigned] HOOK --report REPORT` on this bus, as
    /// `user` (root when `None`); add `--json` and the like with `.arg`.
    pub fn run_hook(
        &self,
        user: Option<&TestUser>,
        unsigned: bool,
        hook: &std::path::Path,
        report: &std::path::Path,
    ) -> Command {
        let mut args = vec!["run"];
        if unsigned {
            args.push("--unsigned");
        }
        args.extend([hook.to_str().unwrap(), "--report", report.to_str().unwrap()]);
        self.client(user, &args)
    }

    /// `busctl get-property` of apportd's manager property `name`
    /// (activating apportd if it is not running).
    pub fn apportd_property(&self, name: &str) -> std::process::Output {
        self.busctl()
            .args([
                "get-property",
                "com.ubuntu.apport",
                "/com/ubuntu/Apport",
                "com.ubuntu.Apport1",
                name,
            ])
            .output()
            .unwrap()
    }

    /// A zbus connection to this bus, as the test process (root).
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .unwrap()
    }

    /// `apport-hook ARGS…` on this bus, as `user` (root when `None`).
    pub fn client(&self, user: Option<&TestUser>, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_apport-hook"));
        command
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address);
        if let Some(user) = user {
            command.uid(user.uid).gid(user.gid);
        }
        command
    }
}

impl Drop for SystemBus {
    fn drop(&mut self) {
        if let Some(mut child) = self.polkitd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // apportd (activated) exits on its own once idle or when the bus goes.
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Start the unsigned `hook` (BSON) on `report` through `connection` and wait
/// until the job finished; its result is left for the caller to fetch.
pub async fn finished_unsigned_job(
    connection: &zbus::Connection,
    hook: &[u8],
    report: &std::path::Path,
) -> apport_hooks::apportd::proxy::JobProxy<'static> {
    use apport_hooks::apportd::proxy::{Apport1Proxy, JobProxy};
    use futures_util::StreamExt;
    use std::os::fd::AsFd;
    let report = std::fs::File::open(report).unwrap();
    let apportd = Apport1Proxy::new(connection).await.unwrap();
    let path = apportd
        .run_unsigned_hook(
            hook,
            zbus::Fd::from(report.as_fd()),
            std::collections::HashMap::new(),
        )
        .await
        .unwrap();
    let job = JobProxy::builder(connection)
        .path(path)
        .build()
        .await
        .unwrap();
    let mut finished = job.receive_finished().await.unwrap();
    if job.state().await.unwrap() == "running" {
        finished.next().await.unwrap();
    }
    job
}
