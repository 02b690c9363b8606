//! Small grammars: hook names, report keys, package names, systemd unit
//! names and syslog priorities.

/// Longest report key a step may write.
pub const MAX_KEY_LEN: usize = 128;

/// Longest hook name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid hook name: `[a-z0-9-]`, 1 to 64 characters, not
/// starting or ending with `-`.
pub fn is_hook_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `key` is a valid report key for a hook: the report format's key
/// grammar ([`crate::report::validate_key`]: ASCII letters, digits, `.`, `-`,
/// `_`), at most [`MAX_KEY_LEN`] characters. Anything else could break the
/// report file or, as CVE-2026-77113 showed, become a path.
pub fn is_report_key(key: &str) -> bool {
    key.len() <= MAX_KEY_LEN && crate::report::validate_key(key.as_bytes()).is_ok()
}

/// Whether `name` is a Debian package name (`[a-z0-9][a-z0-9+.-]+`); with
/// `allow_glob`, `*` and `?` are accepted too (as in `libgtk-3-0*`).
pub fn is_package_name(name: &str, allow_glob: bool) -> bool {
    let ok_char = |b: u8| {
        b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || matches!(b, b'+' | b'.' | b'-')
            || (allow_glob && matches!(b, b'*' | b'?'))
    };
    let Some(&first) = name.as_bytes().first() else {
        return false;
    };
    let first_ok = first.is_ascii_lowercase()
        || first.is_ascii_digit()
        || (allow_glob && matches!(first, b'*' | b'?'));
    first_ok && name.len() <= 128 && name.bytes().all(ok_char) && (allow_glob || name.len() >= 2)
}

/// Whether `unit` is a systemd unit name (`[A-Za-z0-9:_.\\@-]`, not starting
/// with `-` so it can never be taken for an option). A `*` pattern is allowed,
/// as `journalctl --unit` accepts one.
pub fn is_unit_name(unit: &str) -> bool {
    !unit.is_empty()
        && unit.len() <= 256
        && !unit.starts_with('-')
        && unit.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b':' | b'_' | b'.' | b'\\' | b'@' | b'-' | b'*')
        })
}

/// Syslog level names `journalctl --priority` accepts.
pub const SYSLOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

fn is_syslog_level(level: &str) -> bool {
    SYSLOG_LEVELS.contains(&level) || matches!(level, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7")
}

/// Whether `priority` is a syslog level (`err`, `3`) or a range of two
/// (`err..warning`), as `journalctl --priority` takes.
pub fn is_journal_priority(priority: &str) -> bool {
    match priority.split_once("..") {
        Some((from, to)) => is_syslog_level(from) && is_syslog_level(to),
        None => is_syslog_level(priority),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_names() {
        assert!(is_hook_name("lightdm-seat-start"));
        assert!(is_hook_name("x11"));
        for bad in ["", "Lightdm", "a_b", "-a", "a-", "a b", &"a".repeat(65)] {
            assert!(!is_hook_name(bad), "{bad}");
        }
    }

    #[test]
    fn report_keys() {
        assert!(is_report_key("XorgLogs.Xorg.0.log"));
        assert!(is_report_key("a-b_c"));
        for bad in ["", "a b", "a/b", "a:b", "ä", &"k".repeat(129)] {
            assert!(!is_report_key(bad), "{bad}");
        }
    }

    #[test]
    fn package_names() {
        assert!(is_package_name("lightdm", false));
        assert!(is_package_name("libstdc++6", false));
        assert!(!is_package_name("libgtk-3-0*", false));
        assert!(is_package_name("libgtk-3-0*", true));
        for bad in ["", "a", "Lightdm", "-x", "a b", "a/b"] {
            assert!(!is_package_name(bad, false), "{bad}");
        }
    }

    #[test]
    fn units_and_priorities() {
        assert!(is_unit_name("lightdm.service"));
        assert!(is_unit_name("user@1000.service"));
        assert!(!is_unit_name("-x"));
        assert!(!is_unit_name("a b"));
        assert!(is_journal_priority("warning"));
        assert!(is_journal_priority("3"));
        assert!(is_journal_priority("err..warning"));
        assert!(!is_journal_priority("warn"));
        assert!(!is_journal_priority("8"));
        assert!(!is_journal_priority("err.."));
    }
}
