//! `apportd --internal-man DIR`, run as the real binary: the page debian/rules
//! installs describes the user-facing options only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn apportd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_apportd"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn man_page_describes_the_user_facing_options_and_dbus_activation() {
    let dir = tempfile::tempdir().unwrap();
    let out = apportd(&["--internal-man", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written, ["apportd.8"]);
    let page = std::fs::read_to_string(dir.path().join("apportd.8")).unwrap();
    assert!(page.contains(".TH apportd 8"), "{page}");
    assert!(page.contains("\\-\\-config"), "{page}");
    assert!(page.contains("D\\-Bus activated"), "{page}");
    assert!(page.contains("com.ubuntu.apport"), "{page}");
    // The re-exec modes of the service are not options a user has.
    assert!(!page.contains("internal"), "{page}");
}

#[test]
fn internal_modes_stay_out_of_help() {
    let out = apportd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--config"), "{help}");
    assert!(help.contains("D-Bus activated"), "{help}");
    assert!(!help.contains("internal"), "{help}");
}

#[test]
fn man_mode_without_a_directory_is_a_usage_error() {
    let out = apportd(&["--internal-man"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("usage: apportd --internal-man DIR"),
        "{stderr}"
    );
}
