//! How daisy maps a crash to a problem (bucket), and which hook targets an
//! OOPS matches. Pure functions over the report; the SAS index lookup is
//! the caller's.
//!
//! Order, as daisy does it: `DuplicateSignature`; the Python signature
//! computed here from the traceback; the SAS → crash-signature index the
//! retracer fills; the signature of a complete `StacktraceTop`. A crash
//! with none of these is parked under its SAS until a retrace maps it.

use apport_hooks::report::ReportFields;
use apport_hooks::report::signature;
use md5::{Digest, Md5};

use crate::storage::TargetKey;

/// The fields of a report that bucketing and hook matching need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CrashKeys {
    /// `DuplicateSignature` (truncated as daisy does).
    pub duplicate_signature: Option<String>,
    /// Signature known without the SAS index (rules 1 and 2).
    pub early_signature: Option<String>,
    /// Signature of a complete `StacktraceTop` (rule 4).
    pub stacktrace_signature: Option<String>,
    /// `StacktraceAddressSignature`.
    pub sas: Option<String>,
    /// Binary package name.
    pub package: Option<String>,
    /// Source package name.
    pub source_package: Option<String>,
}

impl CrashKeys {
    /// Reads the keys from a report.
    pub fn of(report: &(impl ReportFields + ?Sized)) -> CrashKeys {
        let duplicate_signature = signature::duplicate_signature(report);
        let early_signature = duplicate_signature
            .clone()
            .or_else(|| signature::python_signature(report));
        CrashKeys {
            duplicate_signature,
            early_signature,
            stacktrace_signature: signature::binary_signature(report),
            sas: signature::stacktrace_address_signature(report)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            package: signature::package_name(report).map(str::to_owned),
            source_package: signature::source_package(report).map(str::to_owned),
        }
    }

    /// The bucket, given what the SAS index says about this crash's SAS.
    pub fn bucket(&self, sas_signature: Option<&str>) -> Option<String> {
        self.early_signature
            .clone()
            .or_else(|| sas_signature.map(str::to_owned))
            .or_else(|| self.stacktrace_signature.clone())
    }
}

/// Every hook target an OOPS with these columns matches.
pub fn targets(
    bucket: Option<&str>,
    sas: Option<&str>,
    duplicate_signature: Option<&str>,
    package: Option<&str>,
    source_package: Option<&str>,
) -> Vec<TargetKey> {
    [
        ("crash_signature", bucket),
        ("sas", sas),
        ("duplicate_signature", duplicate_signature),
        ("package", package),
        ("source_package", source_package),
    ]
    .into_iter()
    .filter_map(|(kind, value)| {
        value.map(|v| TargetKey {
            kind: kind.to_owned(),
            value: v.to_owned(),
        })
    })
    .collect()
}

/// md5 of `Date:ExecutablePath:ProcStatus`, daisy's duplicate key, when all
/// three are present.
pub fn dedup_digest(report: &(impl ReportFields + ?Sized)) -> Option<String> {
    let date = report.text("Date")?;
    let exe = report.text("ExecutablePath")?;
    let status = report.text("ProcStatus")?;
    let mut md5 = Md5::new();
    md5.update(date);
    md5.update(b":");
    md5.update(exe);
    md5.update(b":");
    md5.update(status);
    Some(hex::encode(md5.finalize()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use apport_hooks::report::{Key, Report, Value};

    fn report(fields: &[(&str, &str)]) -> Report {
        let mut r = Report::new();
        for (k, v) in fields {
            r.insert(Key::new(*k).unwrap(), Value::text(v.as_bytes()).unwrap());
        }
        r
    }

    #[test]
    fn duplicate_signature_wins_over_everything() {
        let r = report(&[
            ("DuplicateSignature", "dup"),
            ("ExecutablePath", "/usr/bin/x"),
            ("Signal", "11"),
            ("StacktraceTop", "main ()"),
        ]);
        assert_eq!(
            CrashKeys::of(&r).bucket(Some("from-sas")).as_deref(),
            Some("dup")
        );
    }

    #[test]
    fn the_sas_index_wins_over_a_client_stacktrace() {
        let r = report(&[
            ("ExecutablePath", "/usr/bin/x"),
            ("Signal", "11"),
            ("StacktraceTop", "main ()"),
            ("StacktraceAddressSignature", "/usr/bin/x:11:/usr/bin/x+1"),
        ]);
        let keys = CrashKeys::of(&r);
        assert_eq!(keys.bucket(Some("retraced")).as_deref(), Some("retraced"));
        assert_eq!(keys.bucket(None).as_deref(), Some("/usr/bin/x:11:main"));
        assert_eq!(keys.sas.as_deref(), Some("/usr/bin/x:11:/usr/bin/x+1"));
    }

    #[test]
    fn an_incomplete_stacktrace_is_parked() {
        let r = report(&[
            ("ExecutablePath", "/usr/bin/x"),
            ("Signal", "11"),
            ("StacktraceTop", "?? ()\nmain ()"),
        ]);
        assert_eq!(CrashKeys::of(&r).bucket(None), None);
    }

    #[test]
    fn dedup_needs_all_three_fields() {
        let full = report(&[("Date", "d"), ("ExecutablePath", "/e"), ("ProcStatus", "s")]);
        // md5("d:/e:s")
        assert_eq!(
            dedup_digest(&full).as_deref(),
            Some(hex::encode(Md5::digest(b"d:/e:s")).as_str())
        );
        assert_eq!(dedup_digest(&report(&[("Date", "d")])), None);
    }
}
