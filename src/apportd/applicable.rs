//! Whether a verified hook applies to the report it is asked to run on.
//!
//! The signature says the server wants this hook run somewhere; only the
//! report can say it is run where it was meant to be: its target and its
//! `when` conditions are checked before any step.

use crate::hook::conditions::{ConditionError, conditions_hold};
use crate::hook::{Hook, Target};
use crate::report::Report;

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
/// A crash-signature target is the server's bucketing, which a client cannot
/// recompute; the server offered the bundle for this crash, so it is accepted
/// here and bounded by the signature and the `when` conditions.
pub fn check_applicable(hook: &Hook, report: &Report) -> Result<(), NotApplicable> {
    let field = |key: &str| report.get_str(key).map(str::trim);
    let target_holds = match &hook.target {
        Target::Package(name) => field("Package")
            .and_then(|p| p.split_whitespace().next())
            .is_some_and(|p| p == name),
        Target::SourcePackage(name) => field("SourcePackage").is_some_and(|p| p == name),
        Target::DuplicateSignature(sig) => field("DuplicateSignature").is_some_and(|d| d == sig),
        Target::Sas(sas) => field("StacktraceAddressSignature").is_some_and(|s| s == sas),
        Target::CrashSignature(_) => true,
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
            Target::CrashSignature("/usr/sbin/lightdm:11:main".into()),
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
        ] {
            assert!(matches!(
                check_applicable(&hook(target, &[]), &r),
                Err(NotApplicable::Target { .. })
            ));
        }
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
