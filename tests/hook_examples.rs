//! The shipped example hooks lint clean, cover every step and target kind,
//! and parse to the data model the bundle encoder and apportd use.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use apport_hooks::hook::{
    ACTIONS, Action, Condition, FIXED_PATH, Hook, HookLimits, JournalQuery, LintConfig, RunAs,
    TARGET_KINDS, Target, conditions_hold, parse_hook,
};
use apport_hooks::report::{Report, ReportLimits};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hooks");
const REPORTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/reports");

fn examples() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected several examples in {EXAMPLES}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

fn parse(text: &str, name: &str) -> Hook {
    parse_hook(text, name, &LintConfig::default()).unwrap_or_else(|diags| {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        panic!("{name} does not lint clean:\n{}", lines.join("\n"))
    })
}

#[test]
fn every_example_lints_clean_and_together_they_cover_every_step_and_target_kind() {
    let mut actions = BTreeSet::new();
    let mut targets = BTreeSet::new();
    let mut root = false;
    let mut replaces = false;
    for (path, text) in examples() {
        let hook = parse(&text, &path.display().to_string());
        targets.insert(hook.target.kind());
        for step in &hook.steps {
            actions.insert(step.action.kind());
            root |= step.run_as == RunAs::Root;
            replaces |= step.replaces;
        }
    }
    assert_eq!(actions, ACTIONS.iter().copied().collect());
    assert_eq!(targets, TARGET_KINDS.iter().copied().collect());
    assert!(root, "no example has a root step");
    assert!(replaces, "no example re-sets a standard field");
}

/// The lightdm hook of the issue, field by field: defaults filled in from
/// the configuration, bare command names resolved in the fixed PATH.
#[test]
fn the_lightdm_example_parses_to_the_expected_model() {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/lightdm.toml")).unwrap();
    let hook = parse(&text, "lightdm.toml");
    let cfg = LintConfig::default();
    assert_eq!(hook.name, "lightdm-seat-start");
    assert_eq!(
        hook.target,
        Target::CrashSignature("/usr/sbin/lightdm:11:seat_start:display_manager_start:main".into())
    );
    assert_eq!(
        hook.when,
        BTreeMap::from([
            (
                "DistroRelease".to_owned(),
                Condition::OneOf(vec!["Ubuntu 24.04".into(), "Ubuntu 24.10".into()])
            ),
            (
                "Package".to_owned(),
                Condition::Matches(r"^lightdm 1\.30".into())
            ),
        ])
    );
    assert_eq!(
        hook.limits,
        HookLimits {
            reports: 10,
            days: 7
        }
    );
    let keys: Vec<&str> = hook.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "LightdmLog",
            "XorgLogs",
            "CurrentDmesg",
            "LightdmJournal",
            "RelatedPackageVersions",
            "LightdmConffiles"
        ]
    );
    let log = &hook.steps[0];
    assert_eq!(
        log.action,
        Action::File("/var/log/lightdm/lightdm.log".into())
    );
    assert_eq!(
        (log.run_as, log.optional, log.replaces),
        (RunAs::Root, true, false)
    );
    assert_eq!((log.max_bytes, log.timeout_secs), (1_048_576, 10));
    let xorg = &hook.steps[1];
    assert_eq!(xorg.action, Action::Glob("/var/log/Xorg.*.log".into()));
    assert_eq!((xorg.run_as, xorg.optional), (RunAs::User, false));
    assert_eq!(
        (xorg.max_bytes, xorg.timeout_secs),
        (cfg.default_max_bytes, cfg.default_timeout_secs)
    );
    let Action::Command(argv) = &hook.steps[2].action else {
        panic!("step 3 is not a command: {:?}", hook.steps[2].action)
    };
    assert!(
        FIXED_PATH
            .split(':')
            .any(|d| argv[0] == format!("{d}/dmesg")),
        "{argv:?}"
    );
    assert_eq!(argv[1..], ["--level=err,warn"]);
    assert_eq!(
        hook.steps[3].action,
        Action::Journal(JournalQuery {
            unit: Some("lightdm.service".into()),
            priority: Some("warning".into()),
            lines: Some(300),
            grep: Some("seat".into()),
            this_boot: true,
        })
    );
    assert_eq!(
        hook.steps[4].action,
        Action::PackageVersions(vec!["lightdm".into(), "libgtk-3-0*".into()])
    );
    assert_eq!(hook.steps[5].action, Action::Conffiles("lightdm".into()));
}

/// A real report, through the report module.
fn report(name: &str) -> Report {
    Report::open(format!("{REPORTS}/{name}"), &ReportLimits::default()).unwrap()
}

#[test]
fn example_conditions_hold_on_the_reports_they_were_written_for_and_no_others() {
    let load = |file: &str| {
        let text = std::fs::read_to_string(format!("{EXAMPLES}/{file}")).unwrap();
        parse(&text, file)
    };
    let lightdm = load("lightdm.toml");
    let update_manager = load("update-manager.toml");
    let grub = load("grub-postinst-failure.toml");
    let signal = report("signal_crash.crash");
    let python = report("python_crash.crash");
    let package = report("package_failure.crash");
    let holds = |hook: &Hook, report: &Report| {
        conditions_hold(hook, |k| report.get_str(k).map(str::to_owned)).unwrap()
    };
    assert!(holds(&lightdm, &signal));
    assert!(!holds(&lightdm, &python));
    assert!(holds(&update_manager, &python));
    assert!(!holds(&update_manager, &signal));
    assert!(holds(&grub, &package));
    assert!(!holds(&grub, &signal));
    // The grub hook targets exactly the DuplicateSignature of the real report.
    assert_eq!(
        Some(grub.target.value()),
        package.get_str("DuplicateSignature")
    );
}
