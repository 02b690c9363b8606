//! The whole signing chain with the real binaries: `daisy keygen`, then
//! `daisy hook compile`, then `apport-hook verify` on a client key ring.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const HOOK: &str = r#"
name = "lightdm-seat-start"
description = "The lightdm log around seat start failures"

[target]
crash_signature = "/usr/sbin/lightdm:11:seat_start:display_manager_start:main"

[when]
DistroRelease = ["Ubuntu 24.04", "Ubuntu 24.10"]

[limits]
reports = 10
days = 7

[[step]]
key = "LightdmLog"
file = "/var/log/lightdm/lightdm.log"
as = "root"
optional = true
"#;

/// The `apport-hook` binary, built from this very source tree (cargo only
/// exposes the binaries of the package under test to its tests).
///
/// The nested cargo must not cost a second build nor swap a different build
/// of the binary into place under the root package's tests, so it:
/// - builds in the target directory, target triple and profile this test was
///   built for (derived from where cargo put `daisy`; `CARGO_TARGET_DIR` or
///   `--target-dir`, set or not), and checks `apport-hook` lands next to it;
/// - builds it the way `cargo test` of the root package does (as the
///   dependency of its `bundle_cli` test, so dev-dependency features unify
///   the same way and the artifact is the one `cargo test --workspace`
///   already made, fresh);
/// - passes `--locked`, so it can never rewrite `Cargo.lock`.
///
/// cargo releases its build-directory lock before it runs test binaries, so
/// this does not wait on the outer `cargo test`.
fn apport_hook() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let daisy_dir = Path::new(env!("CARGO_BIN_EXE_daisy")).parent().unwrap();
        // The target directory is the nearest ancestor holding cargo's
        // CACHEDIR.TAG; between it and daisy sit [triple/]profile.
        let target_dir = daisy_dir
            .ancestors()
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
            .unwrap_or_else(|| panic!("no cargo target directory above {}", daisy_dir.display()));
        let below: Vec<String> = daisy_dir
            .strip_prefix(target_dir)
            .unwrap()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["test", "--no-run", "--locked", "-p", "apport-hooks"])
            .args(["--test", "bundle_cli", "--message-format=json"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .stdin(std::process::Stdio::null());
        let profile = match below.as_slice() {
            [profile] => profile,
            [triple, profile] => {
                cmd.args(["--target", triple]);
                profile
            }
            other => panic!("unexpected layout below the target directory: {other:?}"),
        };
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            custom => {
                cmd.args(["--profile", custom]);
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "cannot build apport-hook: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| msg["target"]["name"] == "apport-hook")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no apport-hook executable");
        assert_eq!(
            bin.parent(),
            Some(daisy_dir),
            "apport-hook was built somewhere else than daisy"
        );
        bin
    })
}

fn daisy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_daisy"))
        .args(args)
        .output()
        .unwrap()
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Server {
    dir: tempfile::TempDir,
    key_id: String,
}

impl Server {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("signing");
        let out = daisy(&["keygen", "--out", keys.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let key_id = text(&out.stdout).trim().to_string();
        Self { dir, key_id }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn compile(&self, hook_toml: &str, out: &str, days: &str) -> Output {
        std::fs::write(self.path("hook.toml"), hook_toml).unwrap();
        daisy(&[
            "hook",
            "compile",
            self.path("hook.toml").to_str().unwrap(),
            "--key",
            self.path("signing/daisy.key").to_str().unwrap(),
            "--id",
            "lightdm-seat-start-1",
            "--version",
            "2",
            "--days",
            days,
            "--out",
            self.path(out).to_str().unwrap(),
        ])
    }

    /// A client key ring holding only the public key.
    fn client_keys(&self) -> PathBuf {
        let keys = self.path("client-keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::copy(self.path("signing/daisy.pub"), keys.join("daisy.pub")).unwrap();
        // The key ring refuses trust material others can write, whatever
        // the umask made of these.
        chmod(&keys, 0o755);
        chmod(&keys.join("daisy.pub"), 0o644);
        keys
    }

    fn verify(&self, bundle: &str) -> Output {
        Command::new(apport_hook())
            .arg("verify")
            .arg(self.path(bundle))
            .arg("--keys")
            .arg(self.client_keys())
            .arg("--revoked")
            .arg(self.path("client-keys/revoked-keys"))
            .arg("--json")
            .output()
            .unwrap()
    }
}

#[test]
fn compiled_bundle_verifies_on_a_client() {
    let server = Server::new();
    let out = server.compile(HOOK, "lightdm.bundle", "7");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&server.key_id));

    let out = server.verify("lightdm.bundle");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["id"], "lightdm-seat-start-1");
    assert_eq!(json["version"], 2);
    assert_eq!(json["key_id"], server.key_id);
    assert_eq!(json["hook"]["name"], "lightdm-seat-start");
    assert_eq!(
        json["target"]["crash_signature"],
        "/usr/sbin/lightdm:11:seat_start:display_manager_start:main"
    );
    assert_eq!(json["hook"]["steps"][0]["run_as"], "root");
    let lifetime = json["not_after"].as_i64().unwrap() - json["issued_at"].as_i64().unwrap();
    assert_eq!(lifetime, 7 * 86_400);
}

#[test]
fn tampered_compiled_bundle_is_refused_on_a_client() {
    let server = Server::new();
    assert!(server.compile(HOOK, "lightdm.bundle", "7").status.success());
    let path = server.path("lightdm.bundle");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(11).position(|w| w == b"lightdm.log").unwrap();
    bytes[at] = b'L';
    std::fs::write(&path, &bytes).unwrap();

    let out = server.verify("lightdm.bundle");
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"], "bad-signature");
}

#[test]
fn revoked_server_key_is_refused_on_a_client() {
    let server = Server::new();
    assert!(server.compile(HOOK, "lightdm.bundle", "7").status.success());
    server.client_keys();
    std::fs::write(
        server.path("client-keys/revoked-keys"),
        format!("# rotated\n{}\n", server.key_id),
    )
    .unwrap();
    chmod(&server.path("client-keys/revoked-keys"), 0o644);
    let out = server.verify("lightdm.bundle");
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"], "revoked-key");
}

#[test]
fn compile_refuses_a_hook_that_fails_lint() {
    let server = Server::new();
    let bad = HOOK.replace("/var/log/lightdm/lightdm.log", "/etc/shadow");
    let out = server.compile(&bad, "bad.bundle", "7");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("hook.toml:"), "{stderr}");
    assert!(!server.path("bad.bundle").exists());
}

#[test]
fn compile_refuses_too_long_a_validity() {
    let server = Server::new();
    let out = server.compile(HOOK, "long.bundle", "91");
    assert!(!out.status.success());
    assert!(!server.path("long.bundle").exists());
}

#[test]
fn every_example_hook_compiles_and_verifies() {
    let server = Server::new();
    let examples = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hooks"));
    let mut count = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let hook = std::fs::read_to_string(&path).unwrap();
        let out = server.compile(&hook, "example.bundle", "30");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        let out = server.verify("example.bundle");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            text(&out.stdout)
        );
        count += 1;
    }
    assert!(count >= 5, "only {count} example hooks found");
}

#[test]
fn compile_refuses_a_fifo_as_key_or_hook_instead_of_hanging() {
    let server = Server::new();
    let fifo = server.path("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(server.path("hook.toml"), HOOK).unwrap();
    let run = |hook: &Path, key: &Path| {
        daisy(&[
            "hook",
            "compile",
            hook.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--id",
            "x",
            "--version",
            "1",
            "--days",
            "1",
            "--out",
            server.path("out.bundle").to_str().unwrap(),
        ])
    };
    let out = run(&server.path("hook.toml"), &fifo);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a regular file"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&fifo, &server.path("signing/daisy.key"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a regular file"),
        "{}",
        text(&out.stderr)
    );
    assert!(!server.path("out.bundle").exists());
}
