//! Whether a verified hook applies to the report it is asked to run on.
//!
//! The signature says the server wants this hook run somewhere; only the
//! report can say it is run where it was meant to be: its target and its
//! `when` conditions are checked before any step.

use crate::hook::conditions::{ConditionError, conditions_hold};
use crate::hook::{Hook, Target};
use crate::report::Report;
use crate::report::signature::crash_signature;

/// Why a hook does not apply to a report.
#[derive(Debug, thiserror::Error)]
pub enum NotApplicable {
    /// The report is not for the hook's target.
    #[error("the hook targets {target}, which this report is not for")]
    Target {
        /// The hook's target, described.
        target: String,
    },
    /// A `when` condition does not hold.
    #[error("a `when` condition of the hook does not hold for this report")]
    Conditions,
    /// A condition could not be evaluated.
    #[error(transparent)]
    BadCondition(#[from] ConditionError),
}

/// Check the hook's target and `when` conditions against `report`.
///
/// A crash-signature target must equal the report's own crash signature
/// when the client can compute it (apport's rules, see
/// [`crash_signature`]); when it cannot (a binary crash not yet retraced),
/// the signature must at least start with the report's
/// `ExecutablePath:Signal:`. Accepting any report would let a bundle signed
/// for one crash run against every report on the machine.
pub fn check_applicable(hook: &Hook, report: &Report) -> Result<(), NotApplicable> {
    let field = |key: &str| report.get_str(key).map(str::trim);
    let target_holds = match &hook.target {
        Target::Package(name) => field("Package")
            .and_then(|p| p.split_whitespace().next())
            .is_some_and(|p| p == name),
        Target::SourcePackage(name) => field("SourcePackage").is_some_and(|p| p == name),
        Target::DuplicateSignature(sig) => field("DuplicateSignature").is_some_and(|d| d == sig),
        Target::Sas(sas) => field("StacktraceAddressSignature").is_some_and(|s| s == sas),
        Target::CrashSignature(sig) => crash_signature_matches(sig, report),
    };
    if !target_holds {
        return Err(NotApplicable::Target {
            target: format!("{:?}", hook.target),
        });
    }
    if conditions_hold(hook, |key| report.get_str(key).map(str::to_owned))? {
        Ok(())
    } else {
        Err(NotApplicable::Conditions)
    }
}

fn crash_signature_matches(sig: &str, report: &Report) -> bool {
    if let Some(computed) = crash_signature(report) {
        return computed == sig;
    }
    let field = |key: &str| report.get_str(key).map(str::trim);
    match (field("ExecutablePath"), field("Signal")) {
        (Some(exe), Some(signal)) if !exe.is_empty() && !signal.is_empty() => sig
            .strip_prefix(exe)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.strip_prefix(signal))
            .is_some_and(|rest| rest.starts_with(':')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::hook::{Condition, HookLimits};
    use crate::report::ReportLimits;

    fn hook(target: Target, when: &[(&str, Condition)]) -> Hook {
        Hook {
            name: "h".into(),
            description: "d".into(),
            target,
            when: when
                .iter()
                .map(|(k, c)| ((*k).to_owned(), c.clone()))
                .collect::<BTreeMap<_, _>>(),
            limits: HookLimits {
                reports: 1,
                days: 1,
            },
            steps: Vec::new(),
        }
    }

    fn report() -> Report {
        Report::parse(
            b"ProblemType: Crash\nPackage: lightdm 1.30.0-0ubuntu4\nSourcePackage: lightdm\nDistroRelease: Ubuntu 24.04\nDuplicateSignature: dup:1\nStacktraceAddressSignature: /usr/sbin/lightdm:11:/usr/sbin/lightdm+2a\n",
            &ReportLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn targets_match_their_report_fields() {
        let r = report();
        for target in [
            Target::Package("lightdm".into()),
            Target::SourcePackage("lightdm".into()),
            Target::DuplicateSignature("dup:1".into()),
            Target::Sas("/usr/sbin/lightdm:11:/usr/sbin/lightdm+2a".into()),
            // With a DuplicateSignature, that is the crash signature.
            Target::CrashSignature("dup:1".into()),
        ] {
            check_applicable(&hook(target.clone(), &[]), &r).unwrap_or_else(|e| {
                unreachable!("{target:?}: {e}");
            });
        }
        for target in [
            Target::Package("light".into()),
            Target::SourcePackage("gdm3".into()),
            Target::DuplicateSignature("dup:2".into()),
            Target::Sas("other".into()),
            Target::CrashSignature("/usr/sbin/lightdm:11:main".into()),
        ] {
            assert!(matches!(
                check_applicable(&hook(target, &[]), &r),
                Err(NotApplicable::Target { .. })
            ));
        }
    }

    fn binary_report(top: &str) -> Report {
        Report::parse(
            format!(
                "ProblemType: Crash\nExecutablePath: /usr/sbin/lightdm\nSignal: 11\nStacktraceTop:\n {top}\n"
            )
            .as_bytes(),
            &ReportLimits::default(),
        )
        .unwrap()
    }

    fn applies(sig: &str, report: &Report) -> bool {
        check_applicable(&hook(Target::CrashSignature(sig.into()), &[]), report).is_ok()
    }

    #[test]
    fn a_crash_signature_must_equal_the_reports_when_it_can_be_computed() {
        let r = binary_report("main (argc=1) at main.c:10");
        assert!(applies("/usr/sbin/lightdm:11:main", &r));
        // Same executable and signal, another crash: not this bundle's.
        assert!(!applies("/usr/sbin/lightdm:11:other_function", &r));
        assert!(!applies("/usr/bin/gdm3:11:main", &r));
        assert!(!applies("/usr/sbin/lightdm:6:main", &r));
    }

    #[test]
    fn an_uncomputable_crash_signature_must_match_executable_and_signal() {
        // `?? ()`: not retraced, so no signature on the client.
        let r = binary_report("?? ()");
        assert!(applies("/usr/sbin/lightdm:11:main", &r));
        assert!(!applies("/usr/sbin/lightdm:6:main", &r));
        assert!(!applies("/usr/bin/gdm3:11:main", &r));
        assert!(!applies("/usr/sbin/lightdm:111:main", &r));
        // A report with neither gives nothing to compare: never applicable.
        let bare = Report::parse(b"ProblemType: Crash\n", &ReportLimits::default()).unwrap();
        assert!(!applies("/usr/sbin/lightdm:11:main", &bare));
    }

    #[test]
    fn when_conditions_must_all_hold() {
        let r = report();
        let ok = hook(
            Target::Package("lightdm".into()),
            &[
                (
                    "DistroRelease",
                    Condition::OneOf(vec!["Ubuntu 24.04".into()]),
                ),
                ("Package", Condition::Matches(r"^lightdm 1\.30".into())),
            ],
        );
        check_applicable(&ok, &r).unwrap();
        let missing_field = hook(
            Target::Package("lightdm".into()),
            &[("Architecture", Condition::OneOf(vec!["amd64".into()]))],
        );
        assert!(matches!(
            check_applicable(&missing_field, &r),
            Err(NotApplicable::Conditions)
        ));
    }
}
