//! The report fields apport, whoopsie and daisy own. This is the one list the
//! linter checks step keys against.
//!
//! A hook only adds keys; the final revision of the spec lets hook results
//! change exactly three existing fields, [`REPLACEABLE_FIELDS`], and the
//! linter asks for an explicit `replaces = true` there. Every other field in
//! [`STANDARD_FIELDS`] is written by apport itself (`apport/report.py`
//! `add_*_info`, `apport/ui.py`) or is one daisy buckets on, so a hook that
//! overwrote it would corrupt bucketing or mislead the developer.

/// Fields a hook may re-set, with `replaces = true`.
pub const REPLACEABLE_FIELDS: &[&str] = &["Package", "Dependencies", "DuplicateSignature"];

/// Fields written by apport or used by the error tracker, sorted.
pub const STANDARD_FIELDS: &[&str] = &[
    "ApportVersion",
    "Architecture",
    "AssertionMessage",
    "CasperMD5CheckResult",
    "CoreDump",
    "CrashCounter",
    "CrashDB",
    "CurrentDesktop",
    "Date",
    "Dependencies",
    "Disassembly",
    "DistroRelease",
    "DistroVariant",
    "DpkgTerminalLog",
    "DuplicateSignature",
    "ErrorMessage",
    "ExecutablePath",
    "ExecutableTimestamp",
    "Failure",
    "InstallationDate",
    "InstallationMedia",
    "InterpreterPath",
    "JournalErrors",
    "KernelCrash",
    "LiveMediaBuild",
    "MachineType",
    "NonfreeKernelModules",
    "OopsText",
    "OpenFds",
    "Package",
    "PackageArchitecture",
    "ProblemType",
    "ProcAttrCurrent",
    "ProcCmdline",
    "ProcCpuinfo",
    "ProcCpuinfoMinimal",
    "ProcCwd",
    "ProcEnviron",
    "ProcKernelCmdline",
    "ProcMaps",
    "ProcStatus",
    "ProcVersionSignature",
    "PythonArgs",
    "Registers",
    "SegvAnalysis",
    "SegvReason",
    "Signal",
    "SignalName",
    "Snap",
    "SnapSource",
    "SnapTags",
    "SourcePackage",
    "Stacktrace",
    "StacktraceAddressSignature",
    "StacktraceSource",
    "StacktraceTop",
    "SystemImageInfo",
    "Tags",
    "ThreadStacktrace",
    "Title",
    "Traceback",
    "Uname",
    "UnreportableReason",
    "UpgradeStatus",
    "UserGroups",
    "VmCore",
];

/// Key prefixes reserved for apport (`_MarkForUpload`, `_HooksRun`…) and for
/// the hook runner's own error keys (apport writes a failing hook's traceback
/// to `HookError_<name>`; the spec has daisy treat that field as "hook failed").
pub const RESERVED_PREFIXES: &[&str] = &["_", "HookError"];

/// Whether `key` is a standard field.
pub fn is_standard(key: &str) -> bool {
    STANDARD_FIELDS.binary_search(&key).is_ok()
}

/// The standard field `key` differs from only in ASCII case, if any.
pub fn case_variant_of(key: &str) -> Option<&'static str> {
    STANDARD_FIELDS
        .iter()
        .copied()
        .find(|f| f.eq_ignore_ascii_case(key) && *f != key)
}

/// Whether a hook may re-set `key` (with `replaces = true`).
pub fn is_replaceable(key: &str) -> bool {
    REPLACEABLE_FIELDS.contains(&key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn standard_fields_are_sorted_and_contain_the_replaceable_ones() {
        assert!(STANDARD_FIELDS.windows(2).all(|w| w[0] < w[1]));
        for f in REPLACEABLE_FIELDS {
            assert!(is_standard(f));
        }
        assert!(!is_standard("LightdmLog"));
        assert_eq!(case_variant_of("package"), Some("Package"));
        assert_eq!(case_variant_of("Package"), None);
    }
}
