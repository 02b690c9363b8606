//! Opening report files: only regular files, never through a link, size first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::fs::File;
use std::os::unix::fs::symlink;
use std::process::Command;

use apport_hooks::report::{OpenError, Report, ReportLimits};

const SIGNAL_CRASH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/testdata/reports/signal_crash.crash"
);

#[test]
fn a_regular_report_file_opens() {
    let report = Report::open(SIGNAL_CRASH, &ReportLimits::default()).unwrap();
    assert_eq!(report.get_str("ExecutablePath"), Some("/usr/sbin/lightdm"));
    let again =
        Report::from_file(File::open(SIGNAL_CRASH).unwrap(), &ReportLimits::default()).unwrap();
    assert_eq!(again, report);
}

#[test]
fn a_symlink_is_refused_even_to_a_valid_report() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("_usr_sbin_lightdm.0.crash");
    symlink(SIGNAL_CRASH, &link).unwrap();
    let err = Report::open(&link, &ReportLimits::default()).unwrap_err();
    assert!(matches!(err, OpenError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"));
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("evil.crash");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success(), "mkfifo failed");
    // No writer ever opens the FIFO: a blocking open would hang this test.
    let err = Report::open(&fifo, &ReportLimits::default()).unwrap_err();
    assert!(
        matches!(err, OpenError::NotRegular { kind: "FIFO", .. }),
        "{err}"
    );
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Report::open(dir.path(), &ReportLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::NotRegular {
                kind: "directory",
                ..
            }
        ),
        "{err}"
    );
    let err =
        Report::from_file(File::open(dir.path()).unwrap(), &ReportLimits::default()).unwrap_err();
    assert!(matches!(
        err,
        OpenError::NotRegular {
            kind: "directory",
            ..
        }
    ));
}

#[test]
fn a_device_is_refused() {
    let err = Report::open("/dev/null", &ReportLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::NotRegular {
                kind: "character device",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_file_over_the_size_cap_is_refused_before_reading() {
    let limits = ReportLimits {
        max_file_bytes: 1000,
        ..ReportLimits::default()
    };
    let err = Report::open(SIGNAL_CRASH, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::TooLarge {
                size: 4410,
                max: 1000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_sparse_huge_file_is_refused_by_its_size() {
    // 100 GiB apparent size, no blocks: reading it would take forever.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.crash");
    let file = File::create(&path).unwrap();
    file.set_len(100 * 1024 * 1024 * 1024).unwrap();
    let err = Report::open(&path, &ReportLimits::default()).unwrap_err();
    assert!(matches!(err, OpenError::TooLarge { .. }), "{err}");
}

#[test]
fn a_missing_file_and_a_bad_report_name_the_path() {
    let err = Report::open("/nonexistent/x.crash", &ReportLimits::default()).unwrap_err();
    assert!(matches!(err, OpenError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/x.crash"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.crash");
    std::fs::write(&path, "ProblemType: Crash\nBad Key: x\n").unwrap();
    let err = Report::open(&path, &ReportLimits::default()).unwrap_err();
    let OpenError::Parse { source, .. } = &err else {
        panic!("expected a parse error, got {err}");
    };
    assert_eq!(source.line(), Some(2));
    assert!(err.to_string().contains("line 2: invalid key"), "{err}");
}
