//! The fields daisy buckets a report by.
//!
//! Rules (those of apport's `Report.crash_signature()`, which daisy calls for
//! Python crashes and the retracer calls after symbolising a binary crash):
//!
//! 1. `DuplicateSignature`, if present, truncated to
//!    [`MAX_DUPLICATE_SIGNATURE_CHARS`] characters.
//! 2. Python crash (`Traceback` and `ExecutablePath` present):
//!    `ExecutablePath:Exception:func1:func2:…` where `Exception` is the last
//!    traceback line up to its first `:` and the functions are those of the
//!    `File "…", line N, in func` frames, outermost first. The traceback must
//!    have at least two lines and start with `Traceback`.
//! 3. Binary crash (`ExecutablePath`, `Signal`, `StacktraceTop`):
//!    `ExecutablePath:Signal:func1:func2:…`, one function per `StacktraceTop`
//!    line: the leading run of letters, digits, `_`, `:` and `~` (C++ names),
//!    or `<signal handler called>`. A line without a name (`?? ()`) means the
//!    trace is incomplete and there is no signature.
//!
//! All helpers are pure and return `None` when the report lacks what they need.

use super::ReportFields;

/// Longest `DuplicateSignature` daisy keeps, in characters.
pub const MAX_DUPLICATE_SIGNATURE_CHARS: usize = 32_768;

/// The signature daisy buckets the report by (rules 1–3 of the module docs),
/// or `None` if none can be computed on the client (a binary crash without a
/// complete `StacktraceTop` is bucketed by its SAS after a retrace).
#[must_use]
pub fn crash_signature(report: &(impl ReportFields + ?Sized)) -> Option<String> {
    duplicate_signature(report)
        .or_else(|| python_signature(report))
        .or_else(|| binary_signature(report))
}

/// `DuplicateSignature`, truncated to [`MAX_DUPLICATE_SIGNATURE_CHARS`] characters.
#[must_use]
pub fn duplicate_signature(report: &(impl ReportFields + ?Sized)) -> Option<String> {
    let sig = report.text("DuplicateSignature")?;
    Some(sig.chars().take(MAX_DUPLICATE_SIGNATURE_CHARS).collect())
}

/// The function name of one `  File "…", line N, in func` traceback line.
fn traceback_function(line: &str) -> Option<&str> {
    if !line.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (_file, rest) = rest.split_once("\", line ")?;
    let (number, func) = rest.split_once(", in ")?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(func)
}

/// The signature of a Python crash (rule 2), or `None`.
#[must_use]
pub fn python_signature(report: &(impl ReportFields + ?Sized)) -> Option<String> {
    let exe = report.text("ExecutablePath")?;
    let trace: Vec<&str> = report.text("Traceback")?.lines().collect();
    if trace.len() < 2 || !trace.first()?.starts_with("Traceback") {
        return None;
    }
    let last = trace.last()?.trim();
    if last.is_empty() {
        return None;
    }
    let exception = last.split(':').next().unwrap_or(last);
    let mut sig = format!("{exe}:{exception}");
    for func in trace.iter().filter_map(|line| traceback_function(line)) {
        sig.push(':');
        sig.push_str(func);
    }
    Some(sig)
}

/// The function name of one `StacktraceTop` line, or `None` for `?? ()`.
fn stacktrace_function(line: &str) -> Option<&str> {
    if line.trim_end() == "<signal handler called>" {
        return Some("<signal handler called>");
    }
    let end = line
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | ':' | '~')))
        .map_or(line.len(), |(i, _)| i);
    let name = line.get(..end)?;
    (!name.is_empty()).then_some(name)
}

/// The signature of a binary crash from a complete `StacktraceTop` (rule 3),
/// or `None` if a frame has no function name or a field is missing.
#[must_use]
pub fn binary_signature(report: &(impl ReportFields + ?Sized)) -> Option<String> {
    let exe = report.text("ExecutablePath")?;
    let signal = report.text("Signal")?;
    let top = report.text("StacktraceTop")?;
    // Never longer than the three fields and a separator per line; sized
    // once instead of through `format!` and regrowth (callgrind: a third of
    // this function per crash on daisy's intake).
    let mut sig = String::with_capacity(
        exe.len()
            .saturating_add(signal.len())
            .saturating_add(top.len())
            .saturating_add(2),
    );
    sig.push_str(exe);
    sig.push(':');
    sig.push_str(signal);
    let mut frames = 0usize;
    for line in top.lines() {
        sig.push(':');
        sig.push_str(stacktrace_function(line)?);
        frames = frames.saturating_add(1);
    }
    (frames > 0).then_some(sig)
}

/// `StacktraceAddressSignature` (the SAS: `ExecutablePath:Signal:` and
/// frames as `file+offset`, computed on the client without symbols).
#[must_use]
pub fn stacktrace_address_signature(report: &(impl ReportFields + ?Sized)) -> Option<&str> {
    report.text("StacktraceAddressSignature")
}

/// The package name: the first word of `Package` (`lightdm 1.30.0-0ubuntu14`
/// gives `lightdm`).
#[must_use]
pub fn package_name(report: &(impl ReportFields + ?Sized)) -> Option<&str> {
    report.text("Package")?.split_whitespace().next()
}

/// `SourcePackage`, trimmed.
#[must_use]
pub fn source_package(report: &(impl ReportFields + ?Sized)) -> Option<&str> {
    let source = report.text("SourcePackage")?.trim();
    (!source.is_empty()).then_some(source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stacktrace_function_names() {
        assert_eq!(
            stacktrace_function("seat_start (seat=0x1) at seat.c:1"),
            Some("seat_start")
        );
        assert_eq!(
            stacktrace_function("Foo::~Foo (this=0x1)"),
            Some("Foo::~Foo")
        );
        assert_eq!(stacktrace_function("?? ()"), None);
        assert_eq!(
            stacktrace_function("<signal handler called>"),
            Some("<signal handler called>")
        );
    }

    #[test]
    fn traceback_function_names() {
        assert_eq!(
            traceback_function("  File \"/usr/bin/x\", line 115, in <module>"),
            Some("<module>")
        );
        assert_eq!(traceback_function("File \"/x\", line 1, in f"), None);
        assert_eq!(traceback_function("  File \"/x\", line a, in f"), None);
    }
}
