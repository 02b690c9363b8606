//! `[when]`: conditions the client checks on its own report before running a
//! hook.
//!
//! The hook comes from the server, so a regex is compiled with size limits:
//! a hostile or careless pattern costs an error, never the machine's memory.
//! Rust's `regex` has no backtracking, so matching time stays linear.

use regex::{Regex, RegexBuilder};

use super::model::{Condition, Hook};

/// Compiled-program size limit for `when` regexes and journal `grep`s.
pub const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

/// Lazy-DFA cache limit for the same regexes.
pub const REGEX_DFA_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// Longest regex source accepted.
pub const MAX_REGEX_LEN: usize = 4096;

/// A `[when]` condition that could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum ConditionError {
    /// The regex for `field` does not compile within the limits. The linter
    /// refuses such hooks, so this means a bundle from a different linter.
    #[error("the `when` regex for `{field}` is invalid: {source}; report the hook to its author")]
    BadRegex {
        /// The report field the condition is on.
        field: String,
        /// Why it failed.
        #[source]
        source: regex::Error,
    },
}

/// Compiles a hook regex with the limits above. `matches` is a search, not
/// an anchored match: write `^…$` to anchor (like Python's `re.search`).
pub fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(regex::Error::CompiledTooBig(MAX_REGEX_LEN));
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .nest_limit(64)
        .build()
}

/// Whether every `[when]` condition of `hook` holds, reading report fields
/// through `get`. A field the report does not have fails its condition.
/// Conditions are checked in field-name order and evaluation stops at the
/// first that fails.
pub fn conditions_hold(
    hook: &Hook,
    get: impl Fn(&str) -> Option<String>,
) -> Result<bool, ConditionError> {
    for (field, condition) in &hook.when {
        let Some(value) = get(field) else {
            return Ok(false);
        };
        let holds = match condition {
            Condition::OneOf(values) => values.contains(&value),
            Condition::Matches(pattern) => compile_regex(pattern)
                .map_err(|source| ConditionError::BadRegex {
                    field: field.clone(),
                    source,
                })?
                .is_match(&value),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::hook::model::{HookLimits, Target};

    fn hook(when: &[(&str, Condition)]) -> Hook {
        Hook {
            name: "h".into(),
            description: "d".into(),
            target: Target::Package("lightdm".into()),
            when: when
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            limits: HookLimits {
                reports: 1,
                days: 1,
            },
            steps: Vec::new(),
        }
    }

    fn report(fields: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn all_conditions_must_hold() {
        let h = hook(&[
            (
                "DistroRelease",
                Condition::OneOf(vec!["Ubuntu 24.04".into(), "Ubuntu 24.10".into()]),
            ),
            ("Package", Condition::Matches(r"^lightdm 1\.30".into())),
        ]);
        let ok = report(&[
            ("DistroRelease", "Ubuntu 24.04"),
            ("Package", "lightdm 1.30.0-0ubuntu14"),
        ]);
        assert!(conditions_hold(&h, ok).unwrap());
        let old = report(&[
            ("DistroRelease", "Ubuntu 22.04"),
            ("Package", "lightdm 1.30.0"),
        ]);
        assert!(!conditions_hold(&h, old).unwrap());
        let other = report(&[("DistroRelease", "Ubuntu 24.04"), ("Package", "gdm3 46")]);
        assert!(!conditions_hold(&h, other).unwrap());
    }

    #[test]
    fn a_missing_field_fails_its_condition_and_no_conditions_hold_trivially() {
        let h = hook(&[(
            "DistroRelease",
            Condition::OneOf(vec!["Ubuntu 24.04".into()]),
        )]);
        assert!(!conditions_hold(&h, report(&[])).unwrap());
        assert!(conditions_hold(&hook(&[]), report(&[])).unwrap());
    }

    #[test]
    fn oversized_regexes_are_errors_not_allocations() {
        let h = hook(&[("Package", Condition::Matches("(a{1000}){1000}".into()))]);
        assert!(matches!(
            conditions_hold(&h, report(&[("Package", "a")])),
            Err(ConditionError::BadRegex { .. })
        ));
        assert!(compile_regex(&"a".repeat(MAX_REGEX_LEN + 1)).is_err());
    }
}
