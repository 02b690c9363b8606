//! `apport-hook verify` as a user runs it: the real binary, real files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod bundle_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use apport_hooks::bundle::BundlePayload;
use bundle_support::{DAY, TestKey, sample_hook, write_private};

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn verify(file: &Path, keys: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .arg("verify")
        .arg(file)
        .arg("--keys")
        .arg(keys)
        .arg("--revoked")
        .arg(keys.join("revoked-keys"))
        .args(extra)
        .output()
        .unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    key: TestKey,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        // The key ring refuses key directories others can write, whatever
        // the umask made of this one.
        std::fs::set_permissions(
            dir.path().join("keys"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let key = TestKey::new();
        key.install(&dir.path().join("keys"), "daisy");
        Self { dir, key }
    }

    fn keys(&self) -> std::path::PathBuf {
        self.dir.path().join("keys")
    }

    fn write_bundle(&self, name: &str, payload: &BundlePayload) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, self.key.sign(payload)).unwrap();
        path
    }
}

fn current_payload() -> BundlePayload {
    BundlePayload::new(
        "hook-7".into(),
        1,
        sample_hook(),
        now() - 60,
        now() + 7 * DAY,
    )
}

#[test]
fn verify_accepts_a_good_bundle() {
    let setup = Setup::new();
    let file = setup.write_bundle("good.bundle", &current_payload());
    let out = verify(&file, &setup.keys(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("lightdm-seat-start"), "{stdout}");
    assert!(
        stdout.contains(&setup.key.pair.key_id.to_string()),
        "{stdout}"
    );
}

#[test]
fn verify_json_gives_the_payload_and_hash() {
    let setup = Setup::new();
    let file = setup.write_bundle("good.bundle", &current_payload());
    let out = verify(&file, &setup.keys(), &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["id"], "hook-7");
    assert_eq!(json["version"], 1);
    assert_eq!(json["key_id"], setup.key.pair.key_id.to_string());
    assert_eq!(
        json["target"]["crash_signature"],
        "/usr/sbin/lightdm:11:seat_start:display_manager_start:main"
    );
    assert_eq!(json["hook"]["steps"].as_array().unwrap().len(), 6);
    assert_eq!(json["skipped_key_files"], serde_json::json!([]));
    let bytes = std::fs::read(&file).unwrap();
    use sha2::Digest as _;
    assert_eq!(json["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
}

#[test]
fn verify_refuses_a_tampered_bundle_and_says_why() {
    let setup = Setup::new();
    let file = setup.write_bundle("tampered.bundle", &current_payload());
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();

    let out = verify(&file, &setup.keys(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused (bad-signature)"), "{stderr}");
    assert!(stderr.contains("fetch the bundle again"), "{stderr}");

    let out = verify(&file, &setup.keys(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"], "bad-signature");
    assert!(json["message"].as_str().unwrap().contains("tampered"));
}

#[test]
fn verify_refuses_an_expired_bundle() {
    let setup = Setup::new();
    let payload = BundlePayload::new(
        "hook-7".into(),
        1,
        sample_hook(),
        now() - 9 * DAY,
        now() - 2 * DAY,
    );
    let file = setup.write_bundle("old.bundle", &payload);
    let out = verify(&file, &setup.keys(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"], "expired");
}

#[test]
fn verify_honours_the_revocation_list() {
    let setup = Setup::new();
    let file = setup.write_bundle("good.bundle", &current_payload());
    write_private(
        &setup.keys().join("revoked-keys"),
        &format!("{}\n", setup.key.pair.key_id),
    );
    let out = verify(&file, &setup.keys(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused (revoked-key)"));
}

#[test]
fn verify_cannot_check_a_symlinked_bundle() {
    let setup = Setup::new();
    let file = setup.write_bundle("good.bundle", &current_payload());
    let link = setup.dir.path().join("link.bundle");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = verify(&link, &setup.keys(), &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
}

#[test]
fn verify_reports_untrusted_key_files() {
    let setup = Setup::new();
    let file = setup.write_bundle("good.bundle", &current_payload());
    std::fs::write(setup.keys().join("broken.pub"), "not a key\n").unwrap();
    let out = verify(&file, &setup.keys(), &[]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.pub is not trusted"), "{stderr}");
    let out = verify(&file, &setup.keys(), &["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["skipped_key_files"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("broken.pub")
    );
}
