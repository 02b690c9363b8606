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
