//! Behaviour of the hook parser beyond "one lint per bad file": lints that
//! have several forms, defaults, ordering and the validated model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use apport_hooks::hook::{Action, Diagnostic, Hook, LintConfig, RunAs, lint, lints, parse_hook};

const HEAD: &str = "name = \"h\"\ndescription = \"d\"\n[target]\npackage = \"lightdm\"\n";

fn hook(steps: &str) -> String {
    format!("{HEAD}{steps}")
}

fn diags(text: &str) -> Vec<(u32, &'static str)> {
    lint(text, "t.toml", &LintConfig::default())
        .into_iter()
        .map(|d| (d.line, d.lint))
        .collect()
}

fn ok(text: &str) -> Hook {
    parse_hook(text, "t.toml", &LintConfig::default()).unwrap_or_else(|d| {
        let lines: Vec<String> = d.iter().map(Diagnostic::to_string).collect();
        panic!("{}", lines.join("\n"))
    })
}

#[test]
fn a_replaceable_field_needs_replaces_and_then_passes() {
    let without = hook("[[step]]\nkey = \"Package\"\nfile = \"/var/lib/x/version\"\n");
    assert_eq!(diags(&without), [(6, lints::STANDARD_FIELD)]);
    let with =
        hook("[[step]]\nkey = \"Package\"\nreplaces = true\nfile = \"/var/lib/x/version\"\n");
    let h = ok(&with);
    assert!(h.steps[0].replaces);
}

#[test]
fn replaces_is_refused_on_glob_steps_and_ordinary_keys() {
    let glob = hook("[[step]]\nkey = \"Package\"\nreplaces = true\nglob = \"/var/lib/x/*\"\n");
    assert_eq!(diags(&glob), [(7, lints::MISPLACED_REPLACES)]);
    let new_key = hook("[[step]]\nkey = \"LightdmLog\"\nreplaces = false\nfile = \"/var/log/x\"\n");
    assert!(diags(&new_key).is_empty(), "replaces = false is harmless");
}

#[test]
fn keys_differing_from_standard_fields_only_in_case_are_refused() {
    let text = hook("[[step]]\nkey = \"package\"\nfile = \"/var/log/x\"\n");
    let d = lint(&text, "t.toml", &LintConfig::default());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].lint, lints::STANDARD_FIELD);
    assert!(d[0].message.contains("only in case"), "{}", d[0]);
}

#[test]
fn glob_key_families_collide_with_keys_inside_them() {
    let file_after_glob = hook(
        "[[step]]\nkey = \"XorgLogs\"\nglob = \"/var/log/Xorg.*.log\"\n\
         [[step]]\nkey = \"XorgLogs.Xorg.0.log\"\nfile = \"/var/log/Xorg.0.log\"\n",
    );
    assert_eq!(diags(&file_after_glob), [(9, lints::DUPLICATE_KEY)]);
    let glob_after_file = hook(
        "[[step]]\nkey = \"XorgLogs.Xorg.0.log\"\nfile = \"/var/log/Xorg.0.log\"\n\
         [[step]]\nkey = \"XorgLogs\"\nglob = \"/var/log/Xorg.*.log\"\n",
    );
    assert_eq!(diags(&glob_after_file), [(9, lints::DUPLICATE_KEY)]);
    let prefix_only = hook(
        "[[step]]\nkey = \"Xorg\"\nglob = \"/var/log/Xorg.*.log\"\n\
         [[step]]\nkey = \"XorgLogs\"\nfile = \"/var/log/Xorg.0.log\"\n",
    );
    assert!(
        diags(&prefix_only).is_empty(),
        "`XorgLogs` is not inside `Xorg.*`"
    );
}

#[test]
fn all_problems_are_reported_in_file_order() {
    let text = "name = \"Bad\"\n[target]\npackage = \"lightdm\"\nsas = \"x\"\n\
                [[step]]\nkey = \"a b\"\nfile = \"/etc/shadow\"\n";
    assert_eq!(
        diags(text),
        [
            (1, lints::MISSING_FIELD),
            (1, lints::BAD_NAME),
            (4, lints::SEVERAL_TARGETS),
            (6, lints::BAD_KEY),
            (7, lints::DENIED_PATH),
        ]
    );
}

#[test]
fn a_single_step_table_is_explained() {
    let text = hook("[step]\nkey = \"K\"\nfile = \"/var/log/x\"\n");
    let d = lint(&text, "t.toml", &LintConfig::default());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].lint, lints::WRONG_TYPE);
    assert!(d[0].message.contains("[[step]]"), "{}", d[0]);
}

#[test]
fn typos_are_named_with_a_suggestion() {
    let text = hook("[[step]]\nkey = \"K\"\nfile = \"/var/log/x\"\noptinal = true\n");
    let d = lint(&text, "t.toml", &LintConfig::default());
    assert_eq!(
        (d[0].line, d[0].column, d[0].lint),
        (8, 1, lints::UNKNOWN_FIELD)
    );
    assert!(
        d[0].message.contains("did you mean `optional`?"),
        "{}",
        d[0]
    );
}

#[test]
fn omitted_limits_take_the_configured_defaults() {
    let cfg = LintConfig {
        default_reports: 3,
        default_days: 2,
        default_max_bytes: 4096,
        default_timeout_secs: 7,
        default_journal_lines: 50,
        ..LintConfig::default()
    };
    let text = hook("[[step]]\nkey = \"J\"\njournal = { unit = \"lightdm.service\" }\n");
    let h = parse_hook(&text, "t.toml", &cfg).unwrap();
    assert_eq!((h.limits.reports, h.limits.days), (3, 2));
    assert_eq!((h.steps[0].max_bytes, h.steps[0].timeout_secs), (4096, 7));
    let Action::Journal(q) = &h.steps[0].action else {
        panic!()
    };
    assert_eq!(q.lines, Some(50));
    assert_eq!(h.steps[0].run_as, RunAs::User);
}

#[test]
fn the_total_of_all_steps_is_bounded_by_the_client_disk_cap() {
    let mut steps = String::new();
    for i in 0..6 {
        steps.push_str(&format!(
            "[[step]]\nkey = \"K{i}\"\nfile = \"/var/log/x{i}\"\nmax_bytes = 10485760\n"
        ));
    }
    // 6 × 10 MiB > 50 MiB: the sixth step (line 5 + 5 × 4) crosses the cap.
    assert_eq!(diags(&hook(&steps)), [(25, lints::LIMIT_TOO_HIGH)]);
}

#[test]
fn limits_are_bounded_at_exactly_the_configured_maximum() {
    let at = format!(
        "{HEAD}[limits]\nreports = 1000\ndays = 30\n[[step]]\nkey = \"K\"\nfile = \"/var/log/x\"\n"
    );
    assert!(diags(&at).is_empty());
    let negative =
        format!("{HEAD}[limits]\ndays = -1\n[[step]]\nkey = \"K\"\nfile = \"/var/log/x\"\n");
    assert_eq!(diags(&negative), [(6, lints::INVALID_VALUE)]);
    let huge =
        hook("[[step]]\nkey = \"K\"\nfile = \"/var/log/x\"\ntimeout_secs = 99999999999999999999\n");
    assert_eq!(diags(&huge), [(8, lints::LIMIT_TOO_HIGH)]);
    let above = hook("[[step]]\nkey = \"K\"\nfile = \"/var/log/x\"\ntimeout_secs = 61\n");
    assert_eq!(diags(&above), [(8, lints::LIMIT_TOO_HIGH)]);
}

#[test]
fn root_steps_may_not_read_where_users_write_but_user_steps_may() {
    let root = hook("[[step]]\nkey = \"K\"\nglob = \"/home/*/lightdm.log\"\nas = \"root\"\n");
    assert_eq!(diags(&root), [(7, lints::ROOT_IN_USER_DIR)]);
    let user = hook("[[step]]\nkey = \"K\"\nglob = \"/home/*/lightdm.log\"\n");
    assert!(diags(&user).is_empty());
    // A root command's path arguments too: its owner can swap the file for
    // a symlink to /etc/shadow, and root follows it.
    let root_command = hook(
        "[[step]]\nkey = \"K\"\ncommand = [\"tail\", \"-n\", \"20\", \"/home/alice/app.log\"]\nas = \"root\"\n",
    );
    assert_eq!(diags(&root_command), [(7, lints::ROOT_IN_USER_DIR)]);
    let user_command = hook(
        "[[step]]\nkey = \"K\"\ncommand = [\"tail\", \"-n\", \"20\", \"/home/alice/app.log\"]\n",
    );
    assert!(diags(&user_command).is_empty());
}

#[test]
fn hidden_files_are_only_reached_by_a_dot_pattern() {
    // `*` does not match `.ssh`, so this glob cannot reach a key.
    let safe = hook("[[step]]\nkey = \"K\"\nglob = \"/home/*/*.log\"\n");
    assert!(diags(&safe).is_empty());
    let hidden = hook("[[step]]\nkey = \"K\"\nglob = \"/home/*/.*/id_rsa\"\n");
    assert_eq!(diags(&hidden), [(7, lints::DENIED_PATH)]);
}

#[test]
fn when_conditions_are_checked() {
    let text = format!(
        "{HEAD}[when]\nDistroRelease = []\nPackage = {{ match = 'x' }}\nTitle = \"x\"\n\"Bad Field\" = [\"x\"]\n\
         [[step]]\nkey = \"K\"\nfile = \"/var/log/x\"\n"
    );
    assert_eq!(
        diags(&text),
        [
            (6, lints::EMPTY_VALUE),
            (7, lints::MISSING_FIELD),
            (7, lints::UNKNOWN_FIELD),
            (8, lints::WRONG_TYPE),
            (9, lints::BAD_KEY),
        ]
    );
}

#[test]
fn diagnostics_serialize_for_json() {
    let d = lint(
        &hook("[[step]]\nkey = \"K\"\nfile = \"rel\"\n"),
        "t.toml",
        &LintConfig::default(),
    );
    let v = serde_json::to_value(&d[0]).unwrap();
    assert_eq!(v["file"], "t.toml");
    assert_eq!(v["line"], 7);
    assert_eq!(v["column"], 8);
    assert_eq!(v["lint"], "relative-path");
}

#[test]
fn exact_values_that_a_report_never_has_are_refused() {
    let step = "[[step]]\nkey = \"K\"\nfile = \"/var/log/x\"\n";
    let package =
        format!("{HEAD}[when]\nPackage = [\"lightdm 1.30.0-0ubuntu14\", \"lightdm\"]\n{step}");
    let d = lint(&package, "t.toml", &LintConfig::default());
    assert_eq!(
        (d.len(), d[0].line, d[0].column, d[0].lint),
        (1, 6, 40, lints::INVALID_VALUE)
    );
    assert!(d[0].message.contains("matches = '^lightdm '"), "{}", d[0]);
    let problem = format!("{HEAD}[when]\nProblemType = [\"crash\"]\n{step}");
    assert_eq!(diags(&problem), [(6, lints::INVALID_VALUE)]);
    let fine = format!(
        "{HEAD}[when]\nProblemType = [\"Crash\", \"Package\"]\nSourcePackage = [\"lightdm\"]\n{step}"
    );
    assert!(diags(&fine).is_empty());
}

#[test]
fn a_backslash_in_a_glob_is_refused_since_the_executor_treats_it_as_an_escape() {
    // apportd's fnmatch reads `\s` as `s`: this glob would match /etc/shadow
    // while the deny-list analysis saw a literal backslash.
    let text = hook("[[step]]\nkey = \"X\"\nas = \"root\"\nglob = '/etc/\\s[h]adow'\n");
    assert_eq!(diags(&text), [(8, lints::BAD_GLOB)]);
    let text = hook("[[step]]\nkey = \"X\"\nglob = '/var/log/x\\*.log'\n");
    assert_eq!(diags(&text), [(7, lints::BAD_GLOB)]);
}
