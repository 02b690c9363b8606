//! `debian/copyright` names every crate the shipped binaries link, as
//! `debian/update-copyright` writes it from `Cargo.lock`: a dependency added
//! or bumped without rerunning the script fails here, not at upload time.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `debian/update-copyright --check`, on `copyright` (default: the real one).
fn check(copyright: Option<&Path>) -> Output {
    let mut command = Command::new("python3");
    command
        .arg(Path::new(ROOT).join("debian/update-copyright"))
        .arg("--check")
        .current_dir(ROOT)
        // The cargo that built this test (the script fails loudly without one).
        .env("CARGO", env!("CARGO"));
    if let Some(path) = copyright {
        command.arg("--copyright").arg(path);
    }
    command.output().unwrap_or_else(|e| {
        panic!("cannot run python3, which checks debian/copyright (apt install python3): {e}")
    })
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn copyright_names_every_crate_cargo_lock_links() {
    let output = check(None);
    assert!(output.status.success(), "{}", describe(&output));
}

/// The check above is only worth something if a missing crate fails it.
#[test]
fn copyright_without_a_linked_crate_fails_the_check_naming_it() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("debian/copyright"))
        .expect("read debian/copyright");
    // memchr: linked by both daisy and the agent (regex, serde_json...).
    let (before, rest) = text
        .split_once("\nFiles: vendor/memchr-")
        .expect("debian/copyright lists memchr");
    let (paragraph, after) = rest.split_once("\n\n").expect("paragraph end");
    let version = paragraph.split("/*").next().expect("memchr's directory");
    let dir = tempfile::tempdir().expect("temporary directory");
    let stale = dir.path().join("copyright");
    std::fs::write(&stale, format!("{before}\n{after}")).expect("write the copy");

    let output = check(Some(&stale));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr.contains(&format!("missing (linked, not listed): memchr-{version}")),
        "{}",
        describe(&output)
    );
    assert!(
        stderr.contains("run debian/update-copyright"),
        "{}",
        describe(&output)
    );
}
