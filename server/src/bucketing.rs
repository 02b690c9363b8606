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

use crate::digest_hex::lower_hex;
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
    Some(lower_hex(&md5.finalize()))
}

/// The crash's own time from its `Date` (`Wed Nov 25 10:02:13 2026`, C's
/// `ctime` format, in the machine's local time, read as if UTC), in Unix
/// seconds; 0 when absent or not in that format. Only the order matters:
/// it leads the duplicate index so that new crashes land at its end, and
/// since `Date` is part of the duplicate digest, two duplicates always get
/// the same value.
pub fn crash_time(report: &(impl ReportFields + ?Sized)) -> i64 {
    report.text("Date").and_then(parse_ctime).unwrap_or(0)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn parse_ctime(date: &str) -> Option<i64> {
    let mut parts = date.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let month = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month)?;
    let day: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: i64 = clock.next()?.parse().ok()?;
    let minute: i64 = clock.next()?.parse().ok()?;
    let second: i64 = clock.next()?.parse().ok()?;
    let year: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some()
        || clock.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
        || !(1970..=9999).contains(&year)
    {
        return None;
    }
    let month = i64::try_from(month).ok()?.checked_add(1)?;
    let days = days_from_civil(year, month, day)?;
    days.checked_mul(86_400)?
        .checked_add(hour.checked_mul(3_600)?)?
        .checked_add(minute.checked_mul(60)?)?
        .checked_add(second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), for the years `parse_ctime` accepts.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y.checked_div(400)?;
    let yoe = y.checked_sub(era.checked_mul(400)?)?;
    let shifted = if month > 2 {
        month.checked_sub(3)?
    } else {
        month.checked_add(9)?
    };
    let doy = shifted
        .checked_mul(153)?
        .checked_add(2)?
        .checked_div(5)?
        .checked_add(day)?
        .checked_sub(1)?;
    let doe = yoe
        .checked_mul(365)?
        .checked_add(yoe.checked_div(4)?)?
        .checked_sub(yoe.checked_div(100)?)?
        .checked_add(doy)?;
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)
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

    #[test]
    fn crash_time_reads_ctime_dates() {
        let at = |d: &str| crash_time(&report(&[("Date", d)]));
        assert_eq!(at("Thu Jan  1 00:00:00 1970"), 0);
        assert_eq!(at("Wed Nov 25 10:02:13 2026"), 1_795_600_933);
        assert_eq!(at("Thu Feb 29 23:59:59 2024"), 1_709_251_199);
        assert_eq!(at("Sat Mar  1 00:00:00 2025"), 1_740_787_200);
        for bad in [
            "",
            "yesterday",
            "Wed Nov 25 10:02:13",
            "Wed Foo 25 10:02:13 2026",
            "Wed Nov 32 10:02:13 2026",
            "Wed Nov 25 24:00:00 2026",
            "Wed Nov 25 10:02 2026",
            "Wed Nov 25 10:02:13 2026 extra",
            "Wed Nov 25 10:02:13 99999999999999999999",
        ] {
            assert_eq!(at(bad), 0, "{bad:?}");
        }
        assert_eq!(crash_time(&report(&[])), 0);
    }
}
