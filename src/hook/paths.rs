//! Path rules shared by `file`, `glob` and command arguments.
//!
//! apport's root file reads were exploited through `../`, symlinks and FIFOs
//! (CVE-2021-32547…32555, CVE-2021-3710). apportd opens files safely; the
//! linter makes sure a reviewer reads exactly the path that will be opened:
//! absolute, with no `.` or `..` component, no `//`, no trailing `/`, no
//! whitespace at either end of a component and no control characters.

use super::lints;
use super::pattern::{Pattern, intersects};

/// Longest path accepted (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// Directories any local user can write to (or that users own). A root step
/// reading there can be pointed at another file with a symlink, so such steps
/// must run as the user.
pub const USER_WRITABLE_DIRS: &[&str] = &[
    "/home",
    "/tmp",
    "/var/tmp",
    "/dev/shm",
    "/run/user",
    "/run/lock",
    "/var/crash",
    "/media",
];

/// Checks that `path` is absolute and canonical; on failure, the lint and a message.
pub(crate) fn check_canonical(path: &str) -> Result<(), (&'static str, String)> {
    if path.is_empty() {
        return Err((
            lints::RELATIVE_PATH,
            "the path is empty: give an absolute path".into(),
        ));
    }
    if !path.starts_with('/') {
        return Err((
            lints::RELATIVE_PATH,
            format!(
                "`{path}` is relative: give an absolute path (the step's working directory is not defined)"
            ),
        ));
    }
    let problem = if path.len() > MAX_PATH_LEN {
        Some(format!("is longer than {MAX_PATH_LEN} bytes"))
    } else if path.chars().any(char::is_control) {
        Some("contains a control character".to_owned())
    } else if path == "/" {
        Some("names the root directory".to_owned())
    } else if path.contains("//") {
        Some("contains `//`".to_owned())
    } else if path.ends_with('/') {
        Some("ends with `/`".to_owned())
    } else if path.split('/').any(|c| c == "." || c == "..") {
        Some("has a `.` or `..` component".to_owned())
    } else if path.split('/').any(|c| c.trim() != c) {
        Some("has whitespace at the start or end of a component".to_owned())
    } else {
        None
    };
    match problem {
        Some(p) => Err((
            lints::NON_CANONICAL_PATH,
            format!(
                "`{}` {p}: write the path exactly as it is on disk",
                path.escape_debug()
            ),
        )),
        None => Ok(()),
    }
}

/// Resolves `.`, `..` and repeated `/` without touching the file system, so
/// that the deny-list sees through `/var/log/../../etc/shadow`.
pub(crate) fn normalize_lexically(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(path.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The user-writable directory `pattern` could reach, if any.
pub(crate) fn user_writable_dir(pattern: &Pattern) -> Option<&'static str> {
    USER_WRITABLE_DIRS
        .iter()
        .copied()
        .find(|dir| intersects(pattern, &Pattern::deny(&format!("{dir}/**"))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn canonical_paths_pass() {
        assert!(check_canonical("/var/log/lightdm/lightdm.log").is_ok());
        assert!(check_canonical("/var/log/Xorg.*.log").is_ok());
    }

    #[test]
    fn non_canonical_paths_fail_with_the_right_lint() {
        assert_eq!(
            check_canonical("var/log/x").unwrap_err().0,
            lints::RELATIVE_PATH
        );
        assert_eq!(check_canonical("").unwrap_err().0, lints::RELATIVE_PATH);
        for bad in [
            "/var/log/../x",
            "/var//log",
            "/var/log/",
            "/var/./log",
            "/var/log/x ",
            "/var/log/x\n",
            "/",
        ] {
            assert_eq!(
                check_canonical(bad).unwrap_err().0,
                lints::NON_CANONICAL_PATH,
                "{bad:?}"
            );
        }
        assert_eq!(
            check_canonical(&format!("/{}", "a".repeat(MAX_PATH_LEN)))
                .unwrap_err()
                .0,
            lints::NON_CANONICAL_PATH
        );
    }

    #[test]
    fn lexical_normalization_sees_through_dot_dot() {
        assert_eq!(
            normalize_lexically("/var/log/../../etc//shadow"),
            "/etc/shadow"
        );
        assert_eq!(normalize_lexically("/../.."), "/");
    }

    #[test]
    fn user_writable_dirs_are_found_through_globs() {
        assert_eq!(
            user_writable_dir(&Pattern::literal("/tmp/x.log")),
            Some("/tmp")
        );
        assert_eq!(
            user_writable_dir(&Pattern::glob("/*/x.log").unwrap()),
            Some("/home")
        );
        assert_eq!(user_writable_dir(&Pattern::literal("/var/log/x.log")), None);
        assert_eq!(user_writable_dir(&Pattern::literal("/tmpfoo")), None);
    }
}
