//! The result spool on a real directory: bounded, ordered, durable, hostile-name safe.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apport_hooks::agent::spool::{BACKOFF_BASE_SECS, EntryKey, QUARANTINE_DIR, Spool, SpoolError};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn key(oops: &str, hook: &str, version: u32) -> EntryKey {
    EntryKey::new(oops, hook, version).unwrap()
}

fn keys(spool: &Spool) -> Vec<String> {
    spool
        .pending()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}/{}",
                e.key().oops(),
                e.key().hook_id(),
                e.key().hook_version()
            )
        })
        .collect()
}

#[test]
fn entries_survive_a_restart_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool
            .put(&key("oops-b", "hook", 1), b"second", at(2))
            .unwrap();
        spool
            .put(&key("oops-a", "hook", 1), b"first", at(1))
            .unwrap();
        spool
            .put(&key("oops-c", "hook", 1), b"third", at(3))
            .unwrap();
    }
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        keys(&spool),
        ["oops-a/hook/1", "oops-b/hook/1", "oops-c/hook/1"]
    );
    let first = &spool.pending().unwrap()[0];
    assert_eq!(first.read_payload().unwrap(), b"first");
    assert_eq!(first.payload_bytes(), 5);
}

#[test]
fn entry_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("spool"), 1 << 20).unwrap();
    let k = key("oops", "hook", 1);
    spool.put(&k, b"secret", at(0)).unwrap();
    let mode = std::fs::metadata(dir.path().join("spool").join(k.file_name()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(dir.path().join("spool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
}

#[test]
fn the_same_oops_and_hook_replaces_instead_of_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let k = key("oops", "hook", 2);
    assert!(!spool.put(&k, b"old result", at(0)).unwrap().replaced);
    assert!(spool.put(&k, b"new result", at(5)).unwrap().replaced);
    let pending = spool.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].read_payload().unwrap(), b"new result");
    // Another version of the hook is another result.
    spool.put(&key("oops", "hook", 3), b"v3", at(6)).unwrap();
    assert_eq!(spool.pending().unwrap().len(), 2);
}

#[test]
fn the_bound_drops_the_oldest_entries_first() {
    let dir = tempfile::tempdir().unwrap();
    let payload = vec![b'x'; 1000];
    // Measure one entry's file size, then allow three.
    let probe = Spool::open(dir.path().join("probe"), 1 << 20).unwrap();
    probe
        .put(&key("oops-0", "hook", 1), &payload, at(0))
        .unwrap();
    let entry_bytes = probe.total_bytes().unwrap();

    let spool = Spool::open(dir.path().join("spool"), entry_bytes * 3).unwrap();
    for i in 0..3u64 {
        let outcome = spool
            .put(&key(&format!("oops-{i}"), "hook", 1), &payload, at(i))
            .unwrap();
        assert!(outcome.dropped.is_empty());
    }
    let outcome = spool
        .put(&key("oops-3", "hook", 1), &payload, at(3))
        .unwrap();
    assert_eq!(outcome.dropped, vec![key("oops-0", "hook", 1)]);
    assert_eq!(
        keys(&spool),
        ["oops-1/hook/1", "oops-2/hook/1", "oops-3/hook/1"]
    );
    assert!(spool.total_bytes().unwrap() <= entry_bytes * 3);

    // A bigger entry drops as many as needed.
    let big = vec![b'y'; 2000];
    let outcome = spool.put(&key("oops-4", "hook", 1), &big, at(4)).unwrap();
    assert_eq!(
        outcome.dropped,
        vec![key("oops-1", "hook", 1), key("oops-2", "hook", 1)]
    );
    assert!(spool.total_bytes().unwrap() <= entry_bytes * 3);
}

#[test]
fn an_entry_larger_than_the_whole_spool_is_refused_and_nothing_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 4096).unwrap();
    spool
        .put(&key("oops-a", "hook", 1), b"small", at(0))
        .unwrap();
    let err = spool
        .put(&key("oops-b", "hook", 1), &vec![0u8; 8192], at(1))
        .unwrap_err();
    assert!(matches!(err, SpoolError::TooLarge { .. }), "{err}");
    assert_eq!(keys(&spool), ["oops-a/hook/1"]);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn hostile_ids_never_become_file_names() {
    for (oops, hook) in [
        ("../../etc", "hook"),
        ("oops", "../../../etc/cron.d/evil"),
        ("oops", "/etc/passwd"),
        ("oops/..", "hook"),
        (".oops", "hook"),
        ("oops", "a+b"),
        ("oops\n", "hook"),
        ("", "hook"),
        ("oops", ""),
    ] {
        assert!(
            matches!(EntryKey::new(oops, hook, 1), Err(SpoolError::BadKey(_))),
            "{oops:?} {hook:?}"
        );
    }
}

#[test]
fn a_corrupt_entry_is_quarantined_and_the_rest_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let good = key("oops-good", "hook", 1);
    spool.put(&good, b"fine", at(0)).unwrap();
    let bad = key("oops-bad", "hook", 1);
    spool.put(&bad, b"will be truncated", at(1)).unwrap();
    // Truncate the payload: the header no longer matches the file.
    let bad_path = dir.path().join(bad.file_name());
    let len = std::fs::metadata(&bad_path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bad_path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    // Garbage under a valid name, and a stray file with an invalid name.
    std::fs::write(
        dir.path().join(key("oops-junk", "hook", 1).file_name()),
        b"junk",
    )
    .unwrap();
    std::fs::write(dir.path().join("not-an-entry"), b"x").unwrap();

    let (listed, unreadable) = Spool::inspect(dir.path()).unwrap();
    assert_eq!(
        (listed.len(), unreadable),
        (1, 3),
        "inspect reports without moving"
    );

    assert_eq!(keys(&spool), ["oops-good/hook/1"]);
    let quarantined = std::fs::read_dir(dir.path().join(QUARANTINE_DIR))
        .unwrap()
        .count();
    assert_eq!(quarantined, 3);
    assert!(!bad_path.exists());
    assert_eq!(spool.pending().unwrap()[0].read_payload().unwrap(), b"fine");
}

#[test]
fn delivered_entries_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let k = key("oops", "hook", 1);
    spool.put(&k, b"result", at(0)).unwrap();
    spool.mark_delivered(&k).unwrap();
    assert!(spool.pending().unwrap().is_empty());
    assert!(matches!(
        spool.mark_delivered(&k),
        Err(SpoolError::NotFound(_))
    ));
    drop(spool);
    assert!(
        Spool::open(dir.path(), 1 << 20)
            .unwrap()
            .pending()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn failures_back_off_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("oops", "hook", 1);
    {
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.put(&k, b"result", at(0)).unwrap();
        assert_eq!(
            spool.due(at(0)).unwrap().len(),
            1,
            "a new entry is due at once"
        );
        let e = spool
            .record_failure(&k, "503 Service Unavailable", at(10))
            .unwrap();
        assert_eq!(e.attempts(), 1);
        let wait = e.next_attempt_at() - (1_800_000_000 + 10);
        assert!(
            (BACKOFF_BASE_SECS / 2..=BACKOFF_BASE_SECS).contains(&wait),
            "{wait}"
        );
        assert!(spool.due(at(10)).unwrap().is_empty());
    }
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let e = &spool.pending().unwrap()[0];
    assert_eq!(e.attempts(), 1);
    assert_eq!(e.last_error(), Some("503 Service Unavailable"));
    assert_eq!(
        e.read_payload().unwrap(),
        b"result",
        "the payload is kept across rewrites"
    );
    let mut last = e.clone();
    for _ in 0..5 {
        last = spool
            .record_failure(&k, "connection refused", at(20))
            .unwrap();
    }
    assert_eq!(last.attempts(), 6);
    // After 6 failures the delay is 32 base periods, with jitter in its upper half.
    let wait = last.next_attempt_at() - (1_800_000_000 + 20);
    assert!(
        (16 * BACKOFF_BASE_SECS..=32 * BACKOFF_BASE_SECS).contains(&wait),
        "{wait}"
    );
    assert_eq!(spool.due(at(20 + 32 * BACKOFF_BASE_SECS)).unwrap().len(), 1);
}

#[test]
fn a_symlinked_spool_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
    let err = Spool::open(dir.path().join("link"), 1 << 20).unwrap_err();
    assert!(matches!(err, SpoolError::NotADirectory { .. }), "{err}");
}

#[test]
fn temporary_files_left_by_a_crash_are_cleaned_at_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".oops+hook+1.0123456789abcdef.tmp"),
        b"half",
    )
    .unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert!(
        !dir.path()
            .join(".oops+hook+1.0123456789abcdef.tmp")
            .exists()
    );
    assert!(spool.pending().unwrap().is_empty());
}

#[test]
fn a_result_is_streamed_in_and_a_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 24).unwrap();
    let k = key("oops", "hook", 1);
    let data = vec![3u8; 5 * 1024 * 1024];
    spool
        .put_reader(&k, &mut &data[..], data.len() as u64, at(0))
        .unwrap();
    let entry = &spool.pending().unwrap()[0];
    assert_eq!(entry.payload_bytes(), data.len() as u64);
    let mut streamed = Vec::new();
    std::io::Read::read_to_end(&mut entry.open_payload().unwrap(), &mut streamed).unwrap();
    assert_eq!(streamed, data);

    let short = key("oops-short", "hook", 1);
    assert!(matches!(
        spool.put_reader(&short, &mut &b"abc"[..], 10, at(1)),
        Err(SpoolError::Io { .. })
    ));
    let long = key("oops-long", "hook", 1);
    assert!(matches!(
        spool.put_reader(&long, &mut &b"abcdef"[..], 3, at(2)),
        Err(SpoolError::Io { .. })
    ));
    assert_eq!(
        spool.pending().unwrap().len(),
        1,
        "refused results leave nothing behind"
    );
}

#[test]
fn concurrent_writers_keep_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let payload = vec![b'z'; 2000];
    let probe = Spool::open(dir.path().join("probe"), 1 << 20).unwrap();
    probe
        .put(&key("oops-00-00", "hook", 1), &payload, at(0))
        .unwrap();
    let entry_bytes = probe.total_bytes().unwrap();
    let bound = entry_bytes * 5;
    let path = dir.path().join("spool");
    Spool::open(&path, bound).unwrap();
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let path = path.clone();
            let payload = payload.clone();
            std::thread::spawn(move || {
                // Each writer opens the spool itself, as separate processes would.
                let spool = Spool::open(&path, bound).unwrap();
                for i in 0..8u64 {
                    spool
                        .put(
                            &key(&format!("oops-{t:02}-{i:02}"), "hook", 1),
                            &payload,
                            at(t * 100 + i),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let spool = Spool::open(&path, bound).unwrap();
    assert_eq!(spool.pending().unwrap().len(), 5);
    assert!(spool.total_bytes().unwrap() <= bound);
    let stray = std::fs::read_dir(&path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(stray, 0);
}

/// Root writing into the service user's spool (an administrator running
/// `apport-hook upload` or `collect` as root) leaves its lock and entries
/// owned by the spool's owner, so the service can still use them.
#[test]
fn files_root_writes_into_a_users_spool_belong_to_that_user() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    std::fs::create_dir(&spool_dir).unwrap();
    std::fs::set_permissions(&spool_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let root = nix::unistd::geteuid().is_root();
    if root {
        std::os::unix::fs::chown(&spool_dir, Some(65_534), Some(65_534)).unwrap();
    }
    let spool = Spool::open(&spool_dir, 1 << 20).unwrap();
    let k = key("oops", "hook", 1);
    spool.put(&k, b"result", at(0)).unwrap();
    let owner = |name: &str| std::fs::metadata(spool_dir.join(name)).unwrap().uid();
    let expected = if root {
        65_534
    } else {
        nix::unistd::geteuid().as_raw()
    };
    assert_eq!(owner(".lock"), expected);
    assert_eq!(owner(&k.file_name()), expected);
    // The quarantine directory root makes, and the send lock, too.
    let bad = key("oops", "hook", 2);
    std::fs::write(spool_dir.join(bad.file_name()), b"not an entry").unwrap();
    assert_eq!(spool.pending().unwrap().len(), 1);
    assert_eq!(owner("quarantine"), expected);
    drop(spool.try_send_lock().unwrap());
    assert_eq!(owner(".send-lock"), expected);
}

/// A result put again under the same key while the old one was being sent
/// is neither removed by the old one's delivery nor charged with its
/// failure.
#[test]
fn an_entry_replaced_while_it_was_sent_survives_the_old_ones_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let k = key("oops", "hook", 1);
    spool.put(&k, b"old result", at(0)).unwrap();
    let sent = spool.pending().unwrap()[0].created_ns();
    spool.put(&k, b"new result", at(5)).unwrap();
    assert!(matches!(
        spool.mark_delivered_if(&k, Some(sent)),
        Err(SpoolError::NotFound(_))
    ));
    assert!(matches!(
        spool.record_failure_if(&k, Some(sent), "503", at(6)),
        Err(SpoolError::NotFound(_))
    ));
    let left = spool.pending().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].read_payload().unwrap(), b"new result");
    assert_eq!(left[0].attempts(), 0);
    spool
        .mark_delivered_if(&k, Some(left[0].created_ns()))
        .unwrap();
    assert!(spool.pending().unwrap().is_empty());
}
