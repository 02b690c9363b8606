//! `docs/formats.md` names every field, lint and deny-list pattern.
#![allow(clippy::unwrap_used, clippy::panic)]

use apport_hooks::hook::{
    ACTIONS, HOOK_FIELDS, JOURNAL_FIELDS, STEP_FIELDS, TARGET_KINDS, denylist, lints,
    standard_fields,
};

const DOC: &str = include_str!("../docs/formats.md");

#[test]
fn every_lint_is_documented_with_an_example() {
    for lint in lints::ALL {
        let row = DOC
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", lint.name)))
            .unwrap_or_else(|| panic!("lint {} has no row in docs/formats.md", lint.name));
        assert_eq!(
            row.matches(" | ").count(),
            2,
            "row for {} needs an example: {row}",
            lint.name
        );
    }
}

#[test]
fn every_field_is_documented() {
    for field in HOOK_FIELDS
        .iter()
        .chain(TARGET_KINDS)
        .chain(STEP_FIELDS)
        .chain(ACTIONS)
        .chain(JOURNAL_FIELDS)
    {
        let documented = [
            format!("`{field}`"),
            format!("`[{field}]`"),
            format!("`[[{field}]]`"),
        ]
        .iter()
        .any(|f| DOC.contains(f.as_str()));
        assert!(documented, "field {field} is not documented");
    }
    for field in standard_fields::REPLACEABLE_FIELDS {
        assert!(DOC.contains(&format!("`{field}`")), "{field}");
    }
}

#[test]
fn every_deny_list_pattern_is_documented() {
    for entry in denylist::DENY_LIST {
        for p in entry.patterns {
            assert!(
                DOC.contains(&format!("`{p}`")),
                "deny pattern {p} is not documented"
            );
        }
    }
}
