//! The names of every lint. They are stable: scripts, CI logs and the web UI
//! match on them, so a lint is never renamed, only added.

/// A lint: its stable name and a one-line summary (used by `--json` and the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lint {
    /// Stable kebab-case name.
    pub name: &'static str,
    /// What the lint catches.
    pub summary: &'static str,
}

macro_rules! lints {
    ($($ident:ident = $name:literal : $summary:literal;)*) => {
        $(
            #[doc = $summary]
            pub const $ident: &str = $name;
        )*
        /// Every lint, in documentation order.
        pub const ALL: &[Lint] = &[$(Lint { name: $name, summary: $summary }),*];
    };
}

lints! {
    FILE_TOO_LARGE = "file-too-large": "The hook file is larger than the configured maximum.";
    NOT_UTF8 = "not-utf8": "The hook file is not UTF-8.";
    SYNTAX_ERROR = "syntax-error": "The file is not valid TOML.";
    UNKNOWN_FIELD = "unknown-field": "A field the format does not know (usually a typo).";
    WRONG_TYPE = "wrong-type": "A field has the wrong TOML type.";
    INVALID_VALUE = "invalid-value": "A value outside its allowed set (`as`, negative numbers, NUL bytes).";
    MISSING_FIELD = "missing-field": "A required field (`name`, `description`, a step's `key`) is missing.";
    EMPTY_VALUE = "empty-value": "A field that must say something is empty.";
    BAD_NAME = "bad-name": "The hook `name` is not `[a-z0-9-]`, 1 to 64 characters.";
    MISSING_TARGET = "missing-target": "No `[target]`, or a `[target]` with nothing in it.";
    SEVERAL_TARGETS = "several-targets": "More than one target kind in `[target]`.";
    BAD_TARGET = "bad-target": "A target value that can never match a report.";
    BAD_PACKAGE_NAME = "bad-package-name": "Not a Debian package name (or package glob).";
    NO_STEPS = "no-steps": "The hook has no `[[step]]`.";
    TOO_MANY_STEPS = "too-many-steps": "More steps than the configured maximum.";
    MISSING_ACTION = "missing-action": "A step with no action (`file`, `glob`, `command`, `journal`, `package_versions`, `conffiles`).";
    SEVERAL_ACTIONS = "several-actions": "A step with more than one action.";
    BAD_KEY = "bad-key": "A report key outside `[A-Za-z0-9._-]` or longer than 128 characters.";
    DUPLICATE_KEY = "duplicate-key": "Two steps write the same key, or a key inside a glob step's key family.";
    STANDARD_FIELD = "standard-field": "A step key that would overwrite a standard apport report field.";
    RESERVED_KEY = "reserved-key": "A step key in a namespace apport or apportd reserve (`_…`, `HookError…`).";
    MISPLACED_REPLACES = "misplaced-replaces": "`replaces = true` on a step that does not re-set a replaceable field.";
    MISSPELLED_FIELD = "misspelled-field": "A `[when]` field that is not a standard report field but nearly is (it would never be found).";
    INVALID_REGEX = "invalid-regex": "A regular expression that does not compile (or is too large).";
    ZERO_LIMIT = "zero-limit": "A limit of 0, which would make the hook or step useless.";
    LIMIT_TOO_HIGH = "limit-too-high": "A limit above the server's configured upper bound.";
    RELATIVE_PATH = "relative-path": "A path that is not absolute.";
    NON_CANONICAL_PATH = "non-canonical-path": "A path with `..`, `.`, `//`, a trailing `/`, whitespace or control characters.";
    DENIED_PATH = "denied-path": "A path (or a glob that could match a path) in the secret deny-list.";
    ROOT_IN_USER_DIR = "root-in-user-dir": "A root step reading where users can write (symlink attacks): use `as = \"user\"`; a root command's path arguments too.";
    WILDCARD_IN_FILE = "wildcard-in-file": "A `file` path with `*`, `?` or `[`: use `glob`.";
    GLOB_WITHOUT_WILDCARD = "glob-without-wildcard": "A `glob` with no wildcard: use `file`.";
    BAD_GLOB = "bad-glob": "A glob the executor does not support (`**`, braces, an unclosed `[`, a backslash).";
    EMPTY_COMMAND = "empty-command": "A `command` with no program.";
    COMMAND_NOT_FOUND = "command-not-found": "A command not found in the fixed PATH.";
    COMMAND_OUTSIDE_PATH = "command-outside-path": "An absolute command outside the fixed PATH directories.";
    INLINE_CODE = "inline-code": "An interpreter given code inline (`sh -c`, `python3 -c`, `perl -e`, `awk '…'`).";
    PRIVILEGE_TOOL = "privilege-tool": "A command that changes privileges (`sudo`, `pkexec`, `su`…): use `as = \"root\"`.";
    INDIRECT_COMMAND = "indirect-command": "A command that runs another command (`env`, `xargs`, `find -exec`…).";
    INTERACTIVE_COMMAND = "interactive-command": "A pager or editor: interactive, and a root shell escape (CVE-2023-1326).";
    STATE_CHANGING_COMMAND = "state-changing-command": "A command that changes the machine (`rm`, `systemctl restart`, `apt install`…).";
    SECRET_COMMAND = "secret-command": "A command that prints secrets (`getent shadow`, `debconf-get-selections`, `wg showconf`, `nmcli --show-secrets`…).";
    SHELL_SYNTAX = "shell-syntax": "Shell syntax in a command argument, which no shell will interpret.";
    BAD_JOURNAL_PRIORITY = "bad-journal-priority": "A journal priority that is not a syslog level.";
    BAD_UNIT_NAME = "bad-unit-name": "A journal `unit` that is not a systemd unit name.";
}

/// Looks a lint up by name.
pub fn find(name: &str) -> Option<&'static Lint> {
    ALL.iter().find(|l| l.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_names_are_unique_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for l in ALL {
            assert!(seen.insert(l.name), "duplicate lint {}", l.name);
            assert!(
                l.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                l.name
            );
        }
        assert_eq!(find("bad-key").map(|l| l.name), Some(BAD_KEY));
    }
}
