//! The hook file: TOML text to a validated [`Hook`], with every problem
//! reported at its line and column.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

use super::conditions::compile_regex;
use super::config::LintConfig;
use super::diagnostic::{Diagnostic, Sink};
use super::fields::{self, Got, Span, reject_unknown};
use super::grammar;
use super::lints;
use super::model::{Condition, Hook, HookLimits, Step, Target};
use super::standard_fields;
use super::steps::{self, StepKey};

/// Top-level fields of a hook file.
pub const HOOK_FIELDS: &[&str] = &["name", "description", "target", "when", "limits", "step"];

/// The target kinds, as written in `[target]`.
pub const TARGET_KINDS: &[&str] = &[
    "crash_signature",
    "sas",
    "duplicate_signature",
    "package",
    "source_package",
];

/// daisy truncates `DuplicateSignature` to this many characters before
/// bucketing, so a longer target could never match.
pub const MAX_SIGNATURE_LEN: usize = 32_768;

/// Parses and lints a hook file given as bytes (size and UTF-8 are checked
/// before anything else).
pub fn parse_hook_bytes(
    bytes: &[u8],
    file_name: &str,
    cfg: &LintConfig,
) -> Result<Hook, Vec<Diagnostic>> {
    if bytes.len() > cfg.max_file_bytes {
        let mut sink = Sink::new(file_name, "");
        sink.at(
            &(0..0),
            lints::FILE_TOO_LARGE,
            format!(
                "the file has {} bytes, more than the {} allowed: a hook is a short declaration",
                bytes.len(),
                cfg.max_file_bytes
            ),
        );
        return Err(sink.finish());
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_hook(text, file_name, cfg),
        Err(e) => {
            let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let text = std::str::from_utf8(valid).unwrap_or_default();
            let mut sink = Sink::new(file_name, text);
            sink.at(
                &(text.len()..text.len()),
                lints::NOT_UTF8,
                "the file is not UTF-8 (invalid byte sequence here): save it as UTF-8",
            );
            Err(sink.finish())
        }
    }
}

/// Parses and lints a hook file. `file_name` is only used in diagnostics.
/// Returns the hook with all defaults filled in and bare command names
/// resolved, or every problem found, in file order.
pub fn parse_hook(text: &str, file_name: &str, cfg: &LintConfig) -> Result<Hook, Vec<Diagnostic>> {
    if text.len() > cfg.max_file_bytes {
        return parse_hook_bytes(text.as_bytes(), file_name, cfg);
    }
    let mut sink = Sink::new(file_name, text);
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            sink.at(
                &span,
                lints::SYNTAX_ERROR,
                e.message().trim_end().to_owned(),
            );
        }
        return Err(sink.finish());
    }
    let doc = doc.get_ref();
    reject_unknown(&mut sink, doc, HOOK_FIELDS, "the hook");

    let name = match fields::string(&mut sink, doc, "name") {
        Got::Ok(name, span) => {
            if !grammar::is_hook_name(&name) {
                sink.at(
                    &span,
                    lints::BAD_NAME,
                    format!(
                        "hook name `{}` must be 1 to {} characters of `a-z`, `0-9` and `-`, not starting or ending with `-`",
                        name.escape_debug(),
                        grammar::MAX_NAME_LEN
                    ),
                );
            }
            name
        }
        Got::Absent => {
            sink.at(
                &(0..0),
                lints::MISSING_FIELD,
                "the hook has no `name`: add `name = \"package-problem\"`",
            );
            String::new()
        }
        Got::Bad => String::new(),
    };
    let description = match fields::string(&mut sink, doc, "description") {
        Got::Ok(d, span) => {
            if d.trim().is_empty() {
                sink.at(
                    &span,
                    lints::EMPTY_VALUE,
                    "`description` is empty: machine owners are shown why you need this data",
                );
            }
            d
        }
        Got::Absent => {
            sink.at(
                &(0..0),
                lints::MISSING_FIELD,
                "the hook has no `description`: machine owners are shown why you need this data",
            );
            String::new()
        }
        Got::Bad => String::new(),
    };
    let target = parse_target(&mut sink, doc);
    let when = parse_when(&mut sink, doc);
    let limits = parse_limits(&mut sink, doc, cfg);
    let steps = parse_steps(&mut sink, doc, cfg);

    match (target, sink.is_clean()) {
        (Some(target), true) => Ok(Hook {
            name,
            description,
            target,
            when,
            limits,
            steps,
        }),
        _ => Err(sink.finish()),
    }
}

/// Lints a hook file: every problem, in file order; empty when it is clean.
pub fn lint(text: &str, file_name: &str, cfg: &LintConfig) -> Vec<Diagnostic> {
    parse_hook(text, file_name, cfg).err().unwrap_or_default()
}

fn parse_target(sink: &mut Sink<'_>, doc: &DeTable<'_>) -> Option<Target> {
    let (table, span) = match fields::table(sink, doc, "target") {
        Got::Ok(t, s) => (t, s),
        Got::Absent => {
            sink.at(
                &(0..0),
                lints::MISSING_TARGET,
                format!(
                    "the hook has no `[target]`: add one of {}",
                    TARGET_KINDS.join(", ")
                ),
            );
            return None;
        }
        Got::Bad => return None,
    };
    reject_unknown(sink, table, TARGET_KINDS, "`[target]`");
    let mut present: Vec<(&str, Span)> = TARGET_KINDS
        .iter()
        .filter_map(|k| fields::key_span(table, k).map(|s| (*k, s)))
        .collect();
    present.sort_by_key(|(_, s)| s.start);
    let Some((kind, _)) = present.first().cloned() else {
        sink.at(
            &span,
            lints::MISSING_TARGET,
            format!(
                "`[target]` names nothing: add exactly one of {}",
                TARGET_KINDS.join(", ")
            ),
        );
        return None;
    };
    if let Some((second, second_span)) = present.get(1) {
        sink.at(
            second_span,
            lints::SEVERAL_TARGETS,
            format!("`[target]` already has `{kind}`; a hook targets exactly one thing, so remove `{second}` or write a second hook"),
        );
        return None;
    }
    let (value, vspan) = fields::string(sink, table, kind).ok()?;
    if value.is_empty() {
        sink.at(&vspan, lints::EMPTY_VALUE, format!("`{kind}` is empty"));
        return None;
    }
    let target = match kind {
        "package" | "source_package" => {
            if !grammar::is_package_name(&value, false) {
                sink.at(
                    &vspan,
                    lints::BAD_PACKAGE_NAME,
                    format!(
                        "`{}` is not a Debian package name (`[a-z0-9][a-z0-9+.-]+`)",
                        value.escape_debug()
                    ),
                );
                return None;
            }
            if kind == "package" {
                Target::Package(value)
            } else {
                Target::SourcePackage(value)
            }
        }
        _ => {
            let problem = if value.chars().any(char::is_control) {
                Some("contains a control character".to_owned())
            } else if value.trim() != value {
                Some("has whitespace at the start or end".to_owned())
            } else if value.chars().count() > MAX_SIGNATURE_LEN {
                Some(format!(
                    "is longer than the {MAX_SIGNATURE_LEN} characters daisy keeps"
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                sink.at(
                    &vspan,
                    lints::BAD_TARGET,
                    format!("`{kind}` {p}, so it can never match a report"),
                );
                return None;
            }
            match kind {
                "crash_signature" => Target::CrashSignature(value),
                "sas" => Target::Sas(value),
                _ => Target::DuplicateSignature(value),
            }
        }
    };
    Some(target)
}

fn parse_when(sink: &mut Sink<'_>, doc: &DeTable<'_>) -> BTreeMap<String, Condition> {
    let mut when = BTreeMap::new();
    let Some((table, _)) = fields::table(sink, doc, "when").ok() else {
        return when;
    };
    for (key, value) in table.iter() {
        let field: &str = key.get_ref();
        if !grammar::is_report_key(field) {
            sink.at(
                &key.span(),
                lints::BAD_KEY,
                format!(
                    "`{}` is not a report field name (ASCII letters, digits, `.`, `-`, `_`)",
                    field.escape_debug()
                ),
            );
            continue;
        }
        if !standard_fields::is_standard(field)
            && let Some(standard) = fields::closest(field, standard_fields::STANDARD_FIELDS)
        {
            sink.at(
                &key.span(),
                lints::MISSPELLED_FIELD,
                format!(
                    "`{field}` is not a standard report field; did you mean `{standard}`? A field the report lacks fails its condition"
                ),
            );
            continue;
        }
        let condition = match value.get_ref() {
            DeValue::Array(_) => match fields::string_list(sink, value, field) {
                Got::Ok(values, span) => {
                    if values.is_empty() {
                        sink.at(
                            &span,
                            lints::EMPTY_VALUE,
                            format!("`{field} = []` can never hold: list at least one value"),
                        );
                        continue;
                    }
                    if let Some((value, vspan)) = values.iter().find(|(v, _)| !can_hold(field, v)) {
                        sink.at(vspan, lints::INVALID_VALUE, never_holds(field, value));
                        continue;
                    }
                    Condition::OneOf(values.into_iter().map(|(v, _)| v).collect())
                }
                Got::Absent | Got::Bad => continue,
            },
            DeValue::Table(t) => {
                reject_unknown(sink, t, &["matches"], &format!("the `{field}` condition"));
                match fields::string(sink, t, "matches") {
                    Got::Ok(re, span) => {
                        if let Err(e) = compile_regex(&re) {
                            sink.at(
                                &span,
                                lints::INVALID_REGEX,
                                format!(
                                    "`{field}` regex does not compile: {}",
                                    one_line(&e.to_string())
                                ),
                            );
                            continue;
                        }
                        Condition::Matches(re)
                    }
                    Got::Absent => {
                        sink.at(
                            &value.span(),
                            lints::MISSING_FIELD,
                            format!("the `{field}` condition needs `matches = '…'`"),
                        );
                        continue;
                    }
                    Got::Bad => continue,
                }
            }
            other => {
                sink.at(
                    &value.span(),
                    lints::WRONG_TYPE,
                    format!(
                        "`{field}` must be a list of exact values (`[\"…\"]`) or `{{ matches = '…' }}`, not {}",
                        other.type_str()
                    ),
                );
                continue;
            }
        };
        when.insert(field.to_owned(), condition);
    }
    when
}

/// apport's problem types: a `ProblemType` condition on anything else never holds.
pub const PROBLEM_TYPES: &[&str] = &[
    "Crash",
    "Package",
    "KernelOops",
    "KernelCrash",
    "Bug",
    "Hang",
    "RecoverableProblem",
];

/// Whether an exact value could ever equal the report field `field`.
fn can_hold(field: &str, value: &str) -> bool {
    match field {
        "ProblemType" => PROBLEM_TYPES.contains(&value),
        // apport writes `Package: name version`.
        "Package" => value.trim().contains(' '),
        _ => true,
    }
}

fn never_holds(field: &str, value: &str) -> String {
    match field {
        "ProblemType" => format!(
            "`ProblemType` is never \"{}\": apport writes one of {}",
            value.escape_debug(),
            PROBLEM_TYPES.join(", ")
        ),
        _ => format!(
            "`Package` is \"name version\", never just \"{v}\": list full values or write `Package = {{ matches = '^{v} ' }}`",
            v = value.escape_debug()
        ),
    }
}

/// Regex errors span several lines (a caret diagram); diagnostics are one line.
pub(crate) fn one_line(message: &str) -> String {
    let last = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message);
    last.trim().trim_start_matches("error: ").to_owned()
}

fn parse_limits(sink: &mut Sink<'_>, doc: &DeTable<'_>, cfg: &LintConfig) -> HookLimits {
    let mut limits = HookLimits {
        reports: cfg.default_reports,
        days: cfg.default_days,
    };
    let Some((table, _)) = fields::table(sink, doc, "limits").ok() else {
        return limits;
    };
    reject_unknown(sink, table, &["reports", "days"], "`[limits]`");
    if let Some(n) = bounded(sink, table, "reports", cfg.max_reports, "results") {
        limits.reports = n;
    }
    if let Some(n) = bounded(sink, table, "days", cfg.max_days, "days") {
        limits.days = n;
    }
    limits
}

/// Reads a count that must be in `1..=max`.
pub(crate) fn bounded(
    sink: &mut Sink<'_>,
    table: &DeTable<'_>,
    name: &str,
    max: u32,
    unit: &str,
) -> Option<u32> {
    let (n, span) = fields::count(sink, table, name).ok()?;
    if n == 0 {
        sink.at(
            &span,
            lints::ZERO_LIMIT,
            format!("`{name} = 0` would make this useless: omit it for the default"),
        );
        return None;
    }
    match u32::try_from(n) {
        Ok(n) if n <= max => Some(n),
        _ => {
            sink.at(
                &span,
                lints::LIMIT_TOO_HIGH,
                format!("`{name} = {n}` is above the server's upper bound of {max} {unit}"),
            );
            None
        }
    }
}

fn parse_steps(sink: &mut Sink<'_>, doc: &DeTable<'_>, cfg: &LintConfig) -> Vec<Step> {
    let Some(value) = fields::value(doc, "step") else {
        sink.at(
            &(0..0),
            lints::NO_STEPS,
            "the hook has no steps: add at least one `[[step]]`",
        );
        return Vec::new();
    };
    let DeValue::Array(items) = value.get_ref() else {
        sink.at(
            &value.span(),
            lints::WRONG_TYPE,
            "`step` must be an array of tables: write `[[step]]` (two brackets) for each step",
        );
        return Vec::new();
    };
    if items.is_empty() {
        sink.at(
            &value.span(),
            lints::NO_STEPS,
            "`step` is empty: add at least one step",
        );
        return Vec::new();
    }
    let max_steps = usize::try_from(cfg.max_steps).unwrap_or(usize::MAX);
    let mut parsed: Vec<(Step, Span)> = Vec::new();
    let mut keys: Vec<StepKey> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i == max_steps {
            sink.at(
                &item.span(),
                lints::TOO_MANY_STEPS,
                format!("more than {max_steps} steps: split the hook, or collect less"),
            );
            break;
        }
        let DeValue::Table(table) = item.get_ref() else {
            sink.at(
                &item.span(),
                lints::WRONG_TYPE,
                format!("a step must be a table, not {}", item.get_ref().type_str()),
            );
            continue;
        };
        let (step, key) = steps::parse_step(sink, table, item.span(), cfg);
        if let Some(key) = key {
            check_collisions(sink, &keys, &key);
            keys.push(key);
        }
        if let Some(step) = step {
            parsed.push((step, item.span()));
        }
    }
    let mut total: u64 = 0;
    for (step, span) in &parsed {
        total = total.saturating_add(u64::from(step.max_bytes));
        if total > cfg.max_total_bytes {
            sink.at(
                span,
                lints::LIMIT_TOO_HIGH,
                format!(
                    "with this step the hook may collect {total} bytes, above the client's cap of {} bytes: lower `max_bytes`",
                    cfg.max_total_bytes
                ),
            );
            break;
        }
    }
    parsed.into_iter().map(|(step, _)| step).collect()
}

/// Two steps writing one key would silently overwrite each other; a glob
/// step owns every key `Key.<file name>`.
fn check_collisions(sink: &mut Sink<'_>, earlier: &[StepKey], step: &StepKey) {
    let key = &step.key;
    let inside = |k: &str, fam: &str| k.strip_prefix(fam).is_some_and(|r| r.starts_with('.'));
    for e in earlier {
        let ekey = &e.key;
        let line = sink.line_of(&e.step_span);
        let message = if ekey == key {
            format!("key `{key}` is already written by the step at line {line}")
        } else if e.family && inside(key, ekey) {
            format!(
                "key `{key}` is inside the key family `{ekey}.*` of the glob step at line {line}"
            )
        } else if step.family && inside(ekey, key) {
            format!(
                "this glob's key family `{key}.*` contains key `{ekey}` of the step at line {line}"
            )
        } else {
            continue;
        };
        sink.at(&step.key_span, lints::DUPLICATE_KEY, message);
        return;
    }
}
