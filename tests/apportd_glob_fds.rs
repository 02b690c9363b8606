//! A root glob step runs inside apportd, whose descriptors every job
//! shares: the walk holds one directory open per level of the pattern, not
//! one per matched directory. Its own test binary, because it lowers the
//! process's open-file limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use apport_hooks::apportd::glob::expand;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

#[test]
fn a_glob_over_more_directories_than_descriptors_still_matches_within_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..500 {
        let sub = dir.path().join(format!("d{i:03}"));
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("f"), b"x").unwrap();
    }
    let pattern = dir.path().join("*/f");
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // Far fewer descriptors than matched directories (the walk used to
    // hold all 500 open and quietly matched nothing past the limit).
    setrlimit(Resource::RLIMIT_NOFILE, 64, hard).unwrap();
    let matches = expand(&pattern, 100).unwrap();
    assert_eq!(matches.paths.len(), 100);
    assert!(matches.truncated);
    assert_eq!(matches.paths[0], dir.path().join("d000/f"), "in path order");
    assert_eq!(matches.paths[99], dir.path().join("d099/f"));
    let all = expand(&pattern, 1000).unwrap();
    assert_eq!(all.paths.len(), 500);
    assert!(!all.truncated);

    // Out of descriptors altogether: the step fails, it does not report
    // "nothing matched".
    let mut held = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        held.push(file);
    }
    let refused = expand(&pattern, 100).unwrap_err();
    drop(held);
    assert!(
        refused.to_string().contains("Too many open files"),
        "{refused}"
    );
}
