//! The validated data model of a hook, shared by the linter, the bundle
//! encoder, daisy and apportd's step executor.
//!
//! The serde representation of these types is part of the signed bundle
//! format: field order and names are canonical, so change them only with a
//! new bundle format version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A hook as its author wrote it, after static analysis accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// `[a-z0-9-]`, unique per server.
    pub name: String,
    /// Why the developer needs this data; shown to machine owners.
    pub description: String,
    /// Which crashes the hook is for.
    pub target: Target,
    /// Conditions on the client's report; all must hold. Keyed by report field.
    pub when: BTreeMap<String, Condition>,
    /// Author-editable expiry.
    pub limits: HookLimits,
    /// What to collect, in order.
    pub steps: Vec<Step>,
}

/// The one thing a hook targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A crash signature (bucket), e.g. `/usr/sbin/lightdm:11:seat_start:main`.
    CrashSignature(String),
    /// A `StacktraceAddressSignature`.
    Sas(String),
    /// A `DuplicateSignature` value.
    DuplicateSignature(String),
    /// A binary package name.
    Package(String),
    /// A source package name.
    SourcePackage(String),
}

/// A condition on one report field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The field's value is exactly one of these.
    OneOf(Vec<String>),
    /// The field's value matches this regular expression (Rust `regex` syntax).
    Matches(String),
}

/// Author-editable expiry; the server bounds both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookLimits {
    /// Stop after this many results.
    pub reports: u32,
    /// Stop after this many days.
    pub days: u32,
}

/// Whose privileges a step runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunAs {
    /// The report's owner (default).
    #[default]
    User,
    /// root, authorized by polkit action `com.ubuntu.apport.package-hook`.
    Root,
}

/// One collection step: one key (or a family of keys for a glob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The report key the step writes.
    pub key: String,
    /// Whose privileges the step runs with.
    pub run_as: RunAs,
    /// A missing file is not an error.
    pub optional: bool,
    /// The step may re-set one of the few standard fields that hooks may change.
    pub replaces: bool,
    /// Per-step output cap in bytes; for a glob step, the cap on all its
    /// keys together.
    pub max_bytes: u32,
    /// Per-step time cap in seconds.
    pub timeout_secs: u32,
    /// What the step does.
    pub action: Action,
}

/// What a step collects. Mirrors apport's `hookutils`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `attach_file` / `attach_file_if_exists`: one absolute path.
    File(String),
    /// One key per matching file: `Key.<path_to_key(file name)>`.
    ///
    /// Python `glob.glob` semantics: `*`, `?` and `[...]` never match `/`,
    /// and a name starting with `.` is matched only by a pattern component
    /// that starts with a literal `.` (the deny-list analysis relies on
    /// this). No `**`, no braces, no escapes.
    Glob(String),
    /// `command_output`: argv, never a shell. In a hook from
    /// `parse_hook`, `argv[0]` is an absolute path in
    /// [`crate::hook::FIXED_PATH`]'s directories.
    Command(Vec<String>),
    /// `attach_journal_errors`-like query.
    Journal(JournalQuery),
    /// `attach_related_packages`: versions of these packages (globs allowed).
    PackageVersions(Vec<String>),
    /// `attach_conffiles`: modified conffiles of this package.
    Conffiles(String),
}

/// A journal query, run with `journalctl`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JournalQuery {
    /// `--unit`.
    pub unit: Option<String>,
    /// `--priority` (syslog level name).
    pub priority: Option<String>,
    /// `--lines`. `parse_hook` fills in the configured default when the
    /// author omits it, so a validated hook always has a bound.
    pub lines: Option<u32>,
    /// `--grep`.
    pub grep: Option<String>,
    /// `--boot` (this boot only).
    pub this_boot: bool,
}

impl Target {
    /// The field name this target is written as in `[target]`
    /// (`crash_signature`, `sas`, `duplicate_signature`, `package`, `source_package`).
    pub fn kind(&self) -> &'static str {
        match self {
            Target::CrashSignature(_) => "crash_signature",
            Target::Sas(_) => "sas",
            Target::DuplicateSignature(_) => "duplicate_signature",
            Target::Package(_) => "package",
            Target::SourcePackage(_) => "source_package",
        }
    }

    /// The targeted signature or package name.
    pub fn value(&self) -> &str {
        match self {
            Target::CrashSignature(v)
            | Target::Sas(v)
            | Target::DuplicateSignature(v)
            | Target::Package(v)
            | Target::SourcePackage(v) => v,
        }
    }
}

impl Action {
    /// The field name this action is written as in a step (`file`, `glob`,
    /// `command`, `journal`, `package_versions`, `conffiles`).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::File(_) => "file",
            Action::Glob(_) => "glob",
            Action::Command(_) => "command",
            Action::Journal(_) => "journal",
            Action::PackageVersions(_) => "package_versions",
            Action::Conffiles(_) => "conffiles",
        }
    }
}
