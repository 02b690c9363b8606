//! SQLite syncs its WAL with `fdatasync()`, not `fsync()`: the bundled
//! SQLite is built with `HAVE_FDATASYNC` (`.cargo/config.toml`; docs/daisy.md,
//! "Group commit"). Without the flag every sync is a full `fsync()`. This
//! test stores a crash in a child process traced by `strace` and reads which
//! call reached the WAL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::process::Command;

use daisy::storage::{InsertOops, SqliteStorage, Storage};

/// Set in the traced child: the data directory to store the crash in.
const CHILD_ENV: &str = "DAISY_TEST_FDATASYNC_CHILD";
const TEST_NAME: &str = "the_wal_is_synced_with_fdatasync";

#[tokio::test]
async fn the_wal_is_synced_with_fdatasync() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let storage = SqliteStorage::open(&Path::new(&dir).join("daisy.sqlite3"))
            .await
            .unwrap();
        let crash = harness::crashes::crash("a", "system-a", "digest", harness::crashes::NOW);
        assert_eq!(
            storage.insert_oops(crash).await.unwrap(),
            InsertOops::Inserted
        );
        return;
    }
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            !harness::in_ci(),
            "strace is not installed (apt-get install strace)"
        );
        eprintln!("WARNING: strace is not installed, the fdatasync check did NOT run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let child = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the traced child failed ({}):\n{}{}",
        child.status,
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    // `-y` prints each descriptor's path: `fdatasync(14</…/daisy.sqlite3-wal>)`.
    let wal_syncs: Vec<&str> = trace
        .lines()
        .filter(|line| line.contains("daisy.sqlite3-wal>"))
        .collect();
    assert!(
        wal_syncs.iter().any(|line| line.contains("fdatasync(")),
        "no fdatasync of the WAL:\n{trace}"
    );
    assert!(
        !wal_syncs.iter().any(|line| line.contains("fsync(")),
        "the WAL was fsync()ed (is the bundled SQLite built without HAVE_FDATASYNC?):\n{trace}"
    );
}
