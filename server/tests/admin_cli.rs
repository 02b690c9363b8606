//! `daisy admin` as a real process on the data directory of a server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;

fn daisy(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_daisy"))
        .arg("admin")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("DAISY_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn operator_activates_lists_shows_and_disables_a_hook() {
    let dir = tempfile::tempdir().unwrap();
    let hook = format!(
        "{}/../examples/hooks/lightdm.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, _, err) = daisy(dir.path(), &["hook", "activate", &hook]);
    assert!(!ok);
    assert!(err.contains("no signing key"), "{err}");
    daisy::signing::ensure_signing_key(dir.path()).unwrap();

    let (ok, _, err) = daisy(
        dir.path(),
        &["hook", "activate", &hook, "--reports", "5000"],
    );
    assert!(!ok, "reports over the server bound");
    assert!(err.contains("reports"), "{err}");

    let (ok, out, err) = daisy(
        dir.path(),
        &["hook", "activate", &hook, "--reports", "3", "--days", "2"],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("activated hook 1 (lightdm-seat-start version 1)"),
        "{out}"
    );

    let (ok, out, _) = daisy(dir.path(), &["hook", "list"]);
    assert!(ok);
    assert!(out.contains("lightdm-seat-start"), "{out}");
    assert!(out.contains("0/3"), "{out}");
    let (ok, out, _) = daisy(dir.path(), &["hook", "show", "1"]);
    assert!(ok);
    assert!(out.contains("state:      active"), "{out}");
    assert!(out.contains("days:       2"), "{out}");

    let (ok, _, _) = daisy(
        dir.path(),
        &["hook", "disable", "1", "--reason", "wrong bucket"],
    );
    assert!(ok);
    let (ok, _, err) = daisy(dir.path(), &["hook", "disable", "1"]);
    assert!(!ok, "disabling twice fails");
    assert!(err.contains("not active"), "{err}");
    let (_, out, _) = daisy(dir.path(), &["hook", "show", "1"]);
    assert!(out.contains("reason:     wrong bucket"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n").unwrap();
    let (ok, _, err) = daisy(dir.path(), &["hook", "activate", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:"),
        "lint errors point at the file: {err}"
    );
}

#[test]
fn user_add_prints_a_token_that_is_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = daisy(dir.path(), &["user", "add", "alice", "--team", "core-dev"]);
    assert!(ok, "{err}");
    let token = out.trim();
    assert_eq!(token.len(), 64);
    let db = std::fs::read(dir.path().join("daisy.sqlite3")).unwrap();
    let wal = std::fs::read(dir.path().join("daisy.sqlite3-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for file in [&db, &wal] {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle),
            "token stored in clear"
        );
    }
    let (ok, _, err) = daisy(dir.path(), &["user", "add", "bob", "--team", "root"]);
    assert!(!ok);
    assert!(err.contains("unknown team"), "{err}");
}

#[test]
fn user_tokens_are_listed_replaced_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, first, err) = daisy(dir.path(), &["user", "add", "alice"]);
    assert!(ok, "{err}");
    let (ok, second, err) = daisy(dir.path(), &["user", "token", "alice"]);
    assert!(ok, "{err}");
    assert_eq!(second.trim().len(), 64);
    assert_ne!(first.trim(), second.trim());
    let (ok, list, err) = daisy(dir.path(), &["user", "list"]);
    assert!(ok, "{err}");
    let alice = list.lines().find(|l| l.starts_with("alice")).unwrap();
    assert_eq!(
        alice.split_whitespace().take(3).collect::<Vec<_>>(),
        ["alice", "core-dev", "1"],
        "the old token was revoked: {list}"
    );
    let (ok, out, err) = daisy(dir.path(), &["user", "revoke", "alice"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "revoked 1 token(s) of alice");
    let (ok, _, err) = daisy(dir.path(), &["user", "revoke", "mallory"]);
    assert!(!ok);
    assert!(err.contains("no user \"mallory\""), "{err}");
}
