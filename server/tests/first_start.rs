//! `daisy serve` on an empty data directory, as a real process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use harness::http::request;

#[tokio::test]
async fn first_start_creates_the_signing_key_and_hands_over_a_bootstrap_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_daisy"))
            .args(["serve", "--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .env_remove("DAISY_CONFIG")
            .env_remove("DAISY_DATABASE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = start();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut key_line = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("public key") {
            key_line = Some(line.clone());
        }
        printed.push(line.clone());
        if line.contains("Its API token is in") {
            break;
        }
    }
    assert!(key_line.unwrap().contains("keys/daisy.pub"));
    // Standard output is a pipe here, as under systemd: the token goes to
    // a file of daisy's user, never to the output (the journal).
    let token_file = data.join(daisy::bootstrap::TOKEN_FILE);
    assert!(
        printed
            .last()
            .unwrap()
            .contains(token_file.to_str().unwrap()),
        "{printed:?}"
    );
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64);
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !printed.iter().any(|l| l.contains(&token)),
        "token printed: {printed:?}"
    );
    let secret = data.join("keys/daisy.key");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let mut ok = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(ok, "daisy listens");
    let auth = format!("Bearer {token}");
    let r = request(
        addr,
        "GET",
        "/api/1.0/hooks",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());

    // Second start: same key, no new token.
    let key_before = std::fs::read(&secret).unwrap();
    let mut child = start();
    let stdout = child.stdout.take().unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
    let printed: Vec<String> = BufReader::new(stdout).lines().map(|l| l.unwrap()).collect();
    assert!(
        printed.is_empty(),
        "nothing printed on a second start: {printed:?}"
    );
    assert_eq!(std::fs::read(&secret).unwrap(), key_before);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        token,
        "a second start leaves the token file alone"
    );

    // A new admin token kills the bootstrap one: its file goes with it.
    let out = Command::new(env!("CARGO_BIN_EXE_daisy"))
        .args(["admin", "--data-dir"])
        .arg(&data)
        .args(["user", "token", "admin"])
        .env_remove("DAISY_CONFIG")
        .env_remove("DAISY_DATABASE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!token_file.exists(), "the dead token's file is removed");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no longer works"),
        "{out:?}"
    );
}

/// At a terminal (the README's quick start) the token is shown there and
/// written nowhere. `script(1)` gives daisy a pseudo-terminal.
#[test]
fn at_a_terminal_the_bootstrap_token_is_shown_and_no_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let command = format!(
        "exec {} serve --listen 127.0.0.1:0 --data-dir {}",
        env!("CARGO_BIN_EXE_daisy"),
        data.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_remove("DAISY_CONFIG")
        .env_remove("DAISY_DATABASE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    let mut token = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(t) = line.strip_prefix("Its API token, shown this once: ") {
            token = Some(t.trim().to_owned());
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(token.expect("token shown at the terminal").len(), 64);
    assert!(!data.join(daisy::bootstrap::TOKEN_FILE).exists());
}

/// A keys directory another user could write into is refused before any key
/// is made or read: whoever replaced `daisy.pub` there would have the
/// clients trust their key.
#[test]
fn a_keys_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = data.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_daisy"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("DAISY_CONFIG")
        .env_remove("DAISY_DATABASE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not a safe place for the signing keys"),
        "{stderr}"
    );
    assert!(!keys.join("daisy.key").exists(), "no key made there");
}

/// Root running `daisy admin` on the service's data directory: the keys
/// belong to daisy's (dynamic) user, not to root, and are still trusted
/// while only that user could have written them.
#[test]
fn root_may_use_keys_that_only_daisys_user_could_write() {
    if !euid_is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "this test needs root and CI is set: run the tests as root"
        );
        eprintln!("skipping: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    daisy::signing::ensure_signing_key(&data).unwrap();
    for path in [
        data.clone(),
        data.join("keys"),
        data.join("keys/daisy.key"),
        data.join("keys/daisy.pub"),
    ] {
        std::os::unix::fs::chown(&path, Some(65_534), Some(65_534)).unwrap();
    }
    assert!(daisy::signing::load_signing_key(&data).is_ok());
    // Group-writable: another member could have replaced them.
    std::fs::set_permissions(data.join("keys"), std::fs::Permissions::from_mode(0o770)).unwrap();
    let refused = daisy::signing::load_signing_key(&data).unwrap_err();
    assert!(
        refused.to_string().contains("not a safe place"),
        "{refused}"
    );
}

fn euid_is_root() -> bool {
    apport_hooks::sys::effective_uid() == 0
}
