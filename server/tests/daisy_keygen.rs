//! `daisy keygen` as an operator runs it: the real binary, real files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use apport_hooks::bundle::{KeyRing, key_id_of, load_secret_key};

fn keygen(out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_daisy"))
        .arg("keygen")
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn keygen_writes_a_private_secret_key_and_a_trusted_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("signing");
    let out = keygen(&out_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(printed.len(), 16, "{printed}");

    assert_eq!(mode(&out_dir), 0o700);
    assert_eq!(mode(&out_dir.join("daisy.key")), 0o600);
    assert_eq!(mode(&out_dir.join("daisy.pub")), 0o644);

    // The public key is in minisign's format and is what the key ring trusts.
    let public = std::fs::read_to_string(out_dir.join("daisy.pub")).unwrap();
    assert!(public.starts_with("untrusted comment: minisign public key"));
    let ring = KeyRing::load(std::slice::from_ref(&out_dir), None).unwrap();
    let ids: Vec<String> = ring
        .trusted_key_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ids, std::slice::from_ref(&printed));

    // The secret key loads without a password and has the same id.
    let secret = std::fs::read_to_string(out_dir.join("daisy.key")).unwrap();
    let secret = load_secret_key(&secret).unwrap();
    assert_eq!(key_id_of(&secret).unwrap().to_string(), printed);

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/etc/apport-hooks/keys.d/"), "{stderr}");
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(keygen(dir.path()).status.success());
    let before = std::fs::read(dir.path().join("daisy.key")).unwrap();

    let again = keygen(dir.path());
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("daisy.key")).unwrap(), before);

    // A dangling symlink where the key would go is not followed either.
    let other = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), other.path().join("daisy.key"))
        .unwrap();
    assert!(!keygen(other.path()).status.success());
    assert!(!dir.path().join("elsewhere").exists());
}

#[test]
fn keygen_refuses_a_directory_others_can_write() {
    // Another user could swap in a key pair of their own (group-writable,
    // world-writable, even sticky like /tmp itself).
    for dir_mode in [0o777, 0o770, 0o1777] {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("signing");
        std::fs::create_dir(&out_dir).unwrap();
        std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        let out = keygen(&out_dir);
        assert!(!out.status.success(), "mode {dir_mode:o}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a safe place"), "{stderr}");
        assert!(!out_dir.join("daisy.key").exists());
    }
    // The same for a directory above it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(!keygen(&dir.path().join("signing")).status.success());
}

#[test]
fn keygen_warns_about_a_directory_others_can_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = keygen(dir.path());
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("can be listed by other users"), "{stderr}");
    assert_eq!(mode(&dir.path().join("daisy.key")), 0o600);
}

#[test]
fn keygen_modes_do_not_depend_on_the_umask() {
    // umask 000 must not widen anything; umask 077 must not break the
    // public key's readability for its owner.
    for umask in ["000", "077", "022"] {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("signing");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" keygen --out \"$1\""))
            .arg(env!("CARGO_BIN_EXE_daisy"))
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(mode(&out_dir), 0o700, "umask {umask}");
        assert_eq!(mode(&out_dir.join("daisy.key")), 0o600, "umask {umask}");
        assert_eq!(
            mode(&out_dir.join("daisy.pub")) & 0o600,
            0o600,
            "umask {umask}"
        );
    }
}
