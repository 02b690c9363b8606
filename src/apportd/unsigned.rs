//! Validation of unsigned hooks inside apportd.
//!
//! An unsigned hook arrives as BSON from any client: the client's linter is a
//! convenience, not a boundary. apportd checks again what makes a hook safe to
//! hand to the step runner and to polkit: the grammars of names and keys,
//! absolute canonical paths, the deny-list of secrets, and commands given as
//! absolute paths in the fixed PATH.

use std::collections::BTreeSet;
use std::path::Path;

use crate::hook::denylist::is_denied_path;
use crate::hook::grammar::{
    is_hook_name, is_journal_priority, is_package_name, is_report_key, is_unit_name,
};
use crate::hook::{Action, FIXED_PATH, Hook, MAX_COMMAND_ARGS, MAX_PATH_LEN};

/// Every reason `hook` may not run, or nothing. The messages never quote
/// the offending value beyond the step key (itself checked first), so a
/// hostile string cannot reach a log line or an error unescaped.
pub fn validate_unsigned(hook: &Hook) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if !is_hook_name(&hook.name) {
        problems.push("the hook name must be 1 to 64 characters of [a-z0-9-]".to_owned());
    }
    let mut keys = BTreeSet::new();
    for (index, step) in hook.steps.iter().enumerate() {
        let at = if is_report_key(&step.key) {
            if !keys.insert(step.key.as_str()) {
                problems.push(format!("step {index}: key {} is used twice", step.key));
            }
            format!("step {index} ({})", step.key)
        } else {
            problems.push(format!(
                "step {index}: the key must be a report key ([A-Za-z0-9._-], at most 128)"
            ));
            format!("step {index}")
        };
        if let Some(problem) = action_problem(&step.action) {
            problems.push(format!("{at}: {problem}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn action_problem(action: &Action) -> Option<&'static str> {
    match action {
        Action::File(path) => path_problem(path)
            .or_else(|| is_denied_path(path).then_some("the file is on the deny-list of secrets")),
        Action::Glob(pattern) => path_problem(pattern),
        Action::Command(argv) => command_problem(argv),
        Action::Journal(query) => {
            if query.unit.as_deref().is_some_and(|u| !is_unit_name(u)) {
                Some("the journal unit is not a systemd unit name")
            } else if query
                .priority
                .as_deref()
                .is_some_and(|p| !is_journal_priority(p))
            {
                Some("the journal priority is not a syslog level")
            } else {
                None
            }
        }
        Action::PackageVersions(packages) => packages
            .iter()
            .any(|p| !is_package_name(p, true))
            .then_some("a package name is not a Debian package name"),
        Action::Conffiles(package) => (!is_package_name(package, false))
            .then_some("the package name is not a Debian package name"),
    }
}

/// An absolute path with no empty, `.` or `..` component, no trailing `/`
/// and no NUL: the path read is the path reviewed (CVE-2021-3710 went
/// through `..`).
fn path_problem(path: &str) -> Option<&'static str> {
    if path.len() > MAX_PATH_LEN || path.contains('\0') {
        return Some("the path is too long or holds a NUL");
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Some("the path must be absolute");
    };
    if rest.is_empty()
        || rest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("the path must be canonical (no //, ., .. or trailing /)");
    }
    None
}

fn command_problem(argv: &[String]) -> Option<&'static str> {
    let Some(program) = argv.first() else {
        return Some("the command is empty");
    };
    if argv.len() > MAX_COMMAND_ARGS {
        return Some("the command has too many arguments");
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Some("a command argument holds a NUL");
    }
    if path_problem(program).is_some() {
        return Some("the program must be an absolute, canonical path");
    }
    let parent = Path::new(program).parent();
    let in_fixed_path = FIXED_PATH
        .split(':')
        .any(|dir| parent == Some(Path::new(dir)));
    (!in_fixed_path)
        .then_some("the program must be in the fixed PATH /usr/sbin:/usr/bin:/sbin:/bin")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::hook::{HookLimits, JournalQuery, RunAs, Step, Target};

    fn hook(name: &str, key: &str, action: Action) -> Hook {
        Hook {
            name: name.into(),
            description: "t".into(),
            target: Target::Package("bash".into()),
            when: BTreeMap::new(),
            limits: HookLimits {
                reports: 1,
                days: 1,
            },
            steps: vec![Step {
                key: key.into(),
                run_as: RunAs::Root,
                optional: false,
                replaces: false,
                max_bytes: 1024,
                timeout_secs: 1,
                action,
            }],
        }
    }

    #[test]
    fn a_linted_hook_passes() {
        let ok = hook(
            "ok-1",
            "Id",
            Action::Command(vec!["/usr/bin/id".into(), "-u".into()]),
        );
        assert_eq!(validate_unsigned(&ok), Ok(()));
        let file = hook("ok-2", "Os", Action::File("/etc/os-release".into()));
        assert_eq!(validate_unsigned(&file), Ok(()));
    }

    #[test]
    fn bad_names_keys_paths_and_commands_are_refused() {
        let cases = [
            hook("Bad\"Name", "Id", Action::File("/etc/os-release".into())),
            hook("ok", "bad key", Action::File("/etc/os-release".into())),
            hook("ok", "K", Action::File("etc/passwd".into())),
            hook("ok", "K", Action::File("/etc/../etc/shadow".into())),
            hook("ok", "K", Action::File("/etc//passwd".into())),
            hook("ok", "K", Action::File("/etc/shadow".into())),
            hook("ok", "K", Action::Glob("/var/log/./*".into())),
            hook("ok", "K", Action::Command(vec!["id".into()])),
            hook("ok", "K", Action::Command(vec!["/tmp/evil".into()])),
            hook(
                "ok",
                "K",
                Action::Command(vec!["/usr/bin/../../tmp/x".into()]),
            ),
            hook("ok", "K", Action::Command(Vec::new())),
            hook(
                "ok",
                "K",
                Action::Journal(JournalQuery {
                    unit: Some("--output=export".into()),
                    ..JournalQuery::default()
                }),
            ),
            hook("ok", "K", Action::Conffiles("-bash".into())),
        ];
        for case in cases {
            assert!(validate_unsigned(&case).is_err(), "{case:?} was accepted");
        }
    }
}
