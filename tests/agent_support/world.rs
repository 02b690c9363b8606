//! The end-to-end world: the real daisy process (SQLite or PostgreSQL),
//! optionally behind a [`Gate`] or a [`CutProxy`], the client's trusted key,
//! and a private system bus with the real polkitd and apportd trusting
//! daisy's key; `apport-hook` runs as test users against it.
//!
//! Needs `mod harness;` in the including test crate.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::daisy_process::{DaisyProcess, Engine};
use super::fronts::{CutProxy, Gate};
use crate::harness::{SystemBus, TestUser, shared_tempdir};

/// The lightdm crash of the test data.
pub const REPORT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/testdata/reports/signal_crash.crash"
);

/// One root step and one user step, for the lightdm crash of the test data.
pub const HOOK: &str = r#"
name = "lightdm-collect"
description = "which release and which user: one root step and one user step for the agent's end-to-end test"

[target]
crash_signature = "/usr/sbin/lightdm:11:seat_start:display_manager_start:main"

[when]
DistroRelease = ["Ubuntu 24.04"]

[limits]
reports = 1
days = 7

[[step]]
key = "OsReleaseFile"
file = "/usr/lib/os-release"
as = "root"

[[step]]
key = "UserIdentity"
command = ["id"]
"#;

/// A 128-hex-digit system id, the shape whoopsie sends.
pub fn system_id() -> String {
    "0123456789abcdef".repeat(8)
}

/// What stands between the agent and daisy.
pub enum Front {
    /// Nothing: the agent talks to daisy.
    Direct,
    /// An HTTP gate with switches.
    Gate(Gate),
    /// A TCP pass-through that can hold a result upload; its "held" signal.
    Cut(CutProxy, std::sync::mpsc::Receiver<()>),
}

/// Which front to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontKind {
    /// [`Front::Direct`].
    Direct,
    /// [`Front::Gate`].
    Gate,
    /// [`Front::Cut`].
    Cut,
}

/// daisy, its front, the client's trusted keys and a bus whose apportd
/// trusts daisy's key.
pub struct World {
    /// The daisy process.
    pub daisy: DaisyProcess,
    /// What clients are told to use.
    pub url: String,
    /// The front.
    pub front: Front,
    /// The client's trusted key directory.
    pub keys: PathBuf,
    /// The private system bus.
    pub bus: SystemBus,
    /// The hook activated with `daisy admin hook activate`.
    pub hook_id: i64,
    runtime: tokio::runtime::Runtime,
    _shared: tempfile::TempDir,
}

impl World {
    /// Starts everything and activates `hook` (with `reports` overriding its
    /// own limit). `apportd_extra` and `daisy_limits` are extra TOML for
    /// apportd's configuration and daisy's `[limits]`. `None` only when
    /// PostgreSQL is not installed outside CI.
    pub fn start_with(
        engine: Engine,
        front: FrontKind,
        hook: &str,
        reports: Option<u32>,
        apportd_extra: &str,
        daisy_limits: &str,
    ) -> Option<World> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = (front != FrontKind::Direct).then(|| {
            runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap()
        });
        let front_url = listener
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().unwrap()));
        let daisy = DaisyProcess::start(engine, front_url.as_deref(), daisy_limits)?;
        let url = front_url.unwrap_or_else(|| daisy.direct_url());
        let front = match (front, listener) {
            (FrontKind::Gate, Some(listener)) => {
                let gate = Gate::default();
                runtime.spawn(gate.clone().serve(listener, daisy.direct_url()));
                Front::Gate(gate)
            }
            (FrontKind::Cut, Some(listener)) => {
                let (proxy, held) = CutProxy::new();
                runtime.spawn(proxy.clone().serve(listener, daisy.addr));
                Front::Cut(proxy, held)
            }
            _ => Front::Direct,
        };
        let hook_id = daisy.activate(hook, reports);
        let shared = shared_tempdir();
        let keys = shared.path().join("keys.d");
        std::fs::create_dir(&keys).unwrap();
        std::fs::copy(daisy.public_key(), keys.join("daisy.pub")).unwrap();
        std::fs::set_permissions(
            keys.join("daisy.pub"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(shared.path().join("revoked-keys"), "").unwrap();
        let bus = SystemBus::start(&format!(
            "idle_exit_secs = 2\nkey_dirs = [\"{}\"]\nrevoked_keys = \"{}\"\n{apportd_extra}",
            keys.display(),
            shared.path().join("revoked-keys").display()
        ));
        Some(World {
            daisy,
            url,
            front,
            keys,
            bus,
            hook_id,
            runtime,
            _shared: shared,
        })
    }

    /// The standard world: [`HOOK`] activated, default limits.
    pub fn start(engine: Engine, front: FrontKind) -> Option<World> {
        Self::start_with(engine, front, HOOK, None, "", "")
    }

    /// The gate's switches (panics without a gate).
    pub fn gate(&self) -> &Gate {
        match &self.front {
            Front::Gate(gate) => gate,
            _ => panic!("this world has no gate"),
        }
    }

    /// The cut proxy and its "held" signal (panics without one).
    pub fn cut(&self) -> (&CutProxy, &std::sync::mpsc::Receiver<()>) {
        match &self.front {
            Front::Cut(proxy, held) => (proxy, held),
            _ => panic!("this world has no cut proxy"),
        }
    }

    /// `apport-hook ARGS…` as `user` (root when `None`), with the system id set.
    pub fn client(&self, user: Option<&TestUser>, args: &[&str]) -> std::process::Command {
        let mut command = self.bus.client(user, args);
        command.env("CRASH_DB_IDENTIFIER", system_id());
        command
    }

    /// `apport-hook upload --no-hooks` as `user` (a stock whoopsie's part);
    /// the OOPS id.
    pub fn upload(&self, user: Option<&TestUser>, report: &Path) -> String {
        let uploaded = run_json(self.client(
            user,
            &[
                "upload",
                report.to_str().unwrap(),
                "--server",
                &self.url,
                "--no-hooks",
                "--json",
            ],
        ));
        uploaded["oops_id"].as_str().expect("an OOPS id").to_owned()
    }

    /// The arguments of `apport-hook collect --json` for `report`.
    pub fn collect_args<'a>(&'a self, report: &'a Path, spool: &'a Path) -> Vec<&'a str> {
        vec![
            "collect",
            report.to_str().unwrap(),
            "--server",
            &self.url,
            "--keys",
            self.keys.to_str().unwrap(),
            "--spool",
            spool.to_str().unwrap(),
            "--json",
        ]
    }

    /// `apport-hook collect --json` as `user`.
    pub fn collect(
        &self,
        user: Option<&TestUser>,
        report: &Path,
        spool: &Path,
    ) -> serde_json::Value {
        run_json(self.client(user, &self.collect_args(report, spool)))
    }

    /// `/api/1.0/oops/{oops}` → its stored hook results.
    pub fn hook_results(&self, oops: &str) -> Vec<serde_json::Value> {
        self.daisy.api(&format!("/api/1.0/oops/{oops}"))["hook_results"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// `/api/1.0/hooks/{id}` of the activated hook.
    pub fn hook(&self) -> serde_json::Value {
        self.daisy.api(&format!("/api/1.0/hooks/{}", self.hook_id))
    }

    /// The runtime the fronts run on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// A copy of the lightdm report owned by `user` (root when `None`) in a
/// directory of its own; `n` makes it a different crash (daisy's duplicate
/// key includes `Date`).
pub fn users_report(user: Option<&TestUser>, n: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = shared_tempdir();
    // Named for its owner's uid, as apport names reports: the watcher runs
    // hooks on another user's report only then.
    let uid = user.map_or(0, |u| u.uid);
    let path = dir.path().join(format!("_usr_sbin_lightdm.{uid}.crash"));
    let text = std::fs::read_to_string(REPORT).unwrap();
    let text = text.replacen("\nDate: ", &format!("\nDate: {n} "), 1);
    std::fs::write(&path, text).unwrap();
    if let Some(user) = user {
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid)).unwrap();
    }
    (dir, path)
}

/// Runs `command`; asserts exit status 0 and returns its JSON output.
pub fn run_json(mut command: std::process::Command) -> serde_json::Value {
    let out = command.output().unwrap();
    json_of(&out)
}

/// The JSON output of a finished `apport-hook` run (asserting status 0).
pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {}\nstderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The key names a hook's collect output lists.
pub fn key_names(hook: &serde_json::Value) -> Vec<&str> {
    hook["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect()
}

/// The outcome of the step for `key` in a hook's collect output.
pub fn step_outcome<'a>(hook: &'a serde_json::Value, key: &str) -> &'a str {
    hook["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .and_then(|s| s["outcome"].as_str())
        .unwrap_or_else(|| panic!("no step {key} in {hook:#}"))
}

/// Spool entries in `spool`.
pub fn spool_entries(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".entry")
            })
            .count()
        })
        .unwrap_or(0)
}
