//! One `[[step]]`: its key, its privileges, its caps and its action.

use toml::de::DeTable;

use super::command;
use super::conditions::compile_regex;
use super::config::LintConfig;
use super::denylist::denied;
use super::diagnostic::Sink;
use super::fields::{self, Got, Span, reject_unknown};
use super::grammar;
use super::lints;
use super::model::{Action, JournalQuery, RunAs, Step};
use super::parse::{bounded, one_line};
use super::paths::{check_canonical, user_writable_dir};
use super::pattern::Pattern;
use super::standard_fields;

/// The action fields; a step has exactly one.
pub const ACTIONS: &[&str] = &[
    "file",
    "glob",
    "command",
    "journal",
    "package_versions",
    "conffiles",
];

/// The fields of a step other than its action.
pub const STEP_FIELDS: &[&str] = &[
    "key",
    "as",
    "optional",
    "replaces",
    "max_bytes",
    "timeout_secs",
];

/// Most elements in a `command` argv (each path argument is checked against
/// the deny-list, so this also bounds the linter's work).
pub const MAX_COMMAND_ARGS: usize = 256;

/// The fields of a `journal` action.
pub const JOURNAL_FIELDS: &[&str] = &["unit", "priority", "lines", "grep", "this_boot"];

/// A step's key and where it is, known even when the rest of the step has
/// problems, so that key collisions are reported in the same run.
#[derive(Debug)]
pub(crate) struct StepKey {
    pub(crate) key: String,
    /// The step writes `key.<file name>` for each match (a glob step).
    pub(crate) family: bool,
    /// The `[[step]]` header (or inline table).
    pub(crate) step_span: Span,
    /// The `key` value.
    pub(crate) key_span: Span,
}

/// Parses one step: the step when it has no problems (problems are
/// reported), and its key when it has one.
pub(crate) fn parse_step(
    sink: &mut Sink<'_>,
    table: &DeTable<'_>,
    span: Span,
    cfg: &LintConfig,
) -> (Option<Step>, Option<StepKey>) {
    let allowed: Vec<&str> = STEP_FIELDS.iter().chain(ACTIONS).copied().collect();
    reject_unknown(sink, table, &allowed, "a step");
    let before = sink.diagnostics.len();

    let key = match fields::string(sink, table, "key") {
        Got::Ok(k, s) => Some((k, s)),
        Got::Absent => {
            sink.at(
                &span,
                lints::MISSING_FIELD,
                "the step has no `key`: name the report key it writes",
            );
            None
        }
        Got::Bad => None,
    };
    let run_as = match fields::string(sink, table, "as") {
        Got::Ok(v, s) => match v.as_str() {
            "user" => RunAs::User,
            "root" => RunAs::Root,
            _ => {
                sink.at(
                    &s,
                    lints::INVALID_VALUE,
                    format!(
                        "`as` must be \"user\" or \"root\", not \"{}\"",
                        v.escape_debug()
                    ),
                );
                RunAs::User
            }
        },
        Got::Absent | Got::Bad => RunAs::User,
    };
    let optional = fields::boolean(sink, table, "optional")
        .ok()
        .is_some_and(|(b, _)| b);
    let replaces = fields::boolean(sink, table, "replaces").ok();
    let max_bytes = bounded(sink, table, "max_bytes", cfg.max_max_bytes, "bytes")
        .unwrap_or(cfg.default_max_bytes);
    let timeout_secs = bounded(sink, table, "timeout_secs", cfg.max_timeout_secs, "seconds")
        .unwrap_or(cfg.default_timeout_secs);

    let mut present: Vec<(&str, Span)> = ACTIONS
        .iter()
        .filter_map(|a| fields::key_span(table, a).map(|s| (*a, s)))
        .collect();
    present.sort_by_key(|(_, s)| s.start);
    let family = matches!(present.as_slice(), [("glob", _)]);
    if let Some((key, key_span)) = &key {
        check_key(sink, key, key_span, replaces.as_ref(), family);
    }
    let action = match present.as_slice() {
        [] => {
            sink.at(
                &span,
                lints::MISSING_ACTION,
                format!("the step does nothing: add one of {}", ACTIONS.join(", ")),
            );
            None
        }
        [(first, _), (second, second_span), ..] => {
            sink.at(
                second_span,
                lints::SEVERAL_ACTIONS,
                format!("the step already has `{first}`; one step does one thing, so move `{second}` to its own step"),
            );
            None
        }
        [(kind, _)] => parse_action(sink, table, kind, run_as, cfg),
    };

    let step_key = key.as_ref().map(|(k, ks)| StepKey {
        key: k.clone(),
        family,
        step_span: span.clone(),
        key_span: ks.clone(),
    });
    let step = match (key, action) {
        (Some((key, _)), Some(action)) if sink.diagnostics.len() == before => Some(Step {
            key,
            run_as,
            optional,
            replaces: replaces.is_some_and(|(b, _)| b),
            max_bytes,
            timeout_secs,
            action,
        }),
        _ => None,
    };
    (step, step_key)
}

/// Key grammar, standard fields and `replaces`.
fn check_key(
    sink: &mut Sink<'_>,
    key: &str,
    span: &Span,
    replaces: Option<&(bool, Span)>,
    family: bool,
) {
    if !grammar::is_report_key(key) {
        sink.at(
            span,
            lints::BAD_KEY,
            format!(
                "key `{}` must be 1 to {} characters of ASCII letters, digits, `.`, `-` and `_`",
                key.escape_debug(),
                grammar::MAX_KEY_LEN
            ),
        );
        return;
    }
    let replaces_set = replaces.is_some_and(|(b, _)| *b);
    if let Some(prefix) = standard_fields::RESERVED_PREFIXES
        .iter()
        .find(|p| key.starts_with(**p))
    {
        sink.at(
            span,
            lints::RESERVED_KEY,
            format!("keys starting with `{prefix}` are reserved for apport and apportd: choose another key"),
        );
        return;
    }
    if standard_fields::is_standard(key) {
        if standard_fields::is_replaceable(key) {
            if !replaces_set && !family {
                sink.at(
                    span,
                    lints::STANDARD_FIELD,
                    format!("`{key}` is a standard report field: add `replaces = true` if the hook must re-set it"),
                );
                return;
            }
        } else {
            sink.at(
                span,
                lints::STANDARD_FIELD,
                format!(
                    "`{key}` is a standard report field a hook may not change (only {} may be re-set): choose a new key",
                    standard_fields::REPLACEABLE_FIELDS.join(", ")
                ),
            );
            return;
        }
    } else if let Some(field) = standard_fields::case_variant_of(key) {
        sink.at(
            span,
            lints::STANDARD_FIELD,
            format!("`{key}` differs from the standard report field `{field}` only in case: choose a distinct key"),
        );
        return;
    }
    if let Some((true, rspan)) = replaces
        && (family || !standard_fields::is_replaceable(key))
    {
        sink.at(
            rspan,
            lints::MISPLACED_REPLACES,
            format!(
                "`replaces = true` only applies to a single-key step writing one of {}: remove it",
                standard_fields::REPLACEABLE_FIELDS.join(", ")
            ),
        );
    }
}

fn parse_action(
    sink: &mut Sink<'_>,
    table: &DeTable<'_>,
    kind: &str,
    run_as: RunAs,
    cfg: &LintConfig,
) -> Option<Action> {
    let before = sink.diagnostics.len();
    let action = match kind {
        "file" => {
            let (path, span) = fields::string(sink, table, "file").ok()?;
            if let Err((lint, message)) = check_canonical(&path) {
                sink.at(&span, lint, message);
            } else if path.contains(['*', '?', '[']) {
                sink.at(
                    &span,
                    lints::WILDCARD_IN_FILE,
                    "`file` takes one path; for a pattern use `glob`, which writes one key per match",
                );
            } else {
                check_reach(sink, &Pattern::literal(&path), &path, &span, run_as);
            }
            Action::File(path)
        }
        "glob" => {
            let (glob, span) = fields::string(sink, table, "glob").ok()?;
            if let Err((lint, message)) = check_canonical(&glob) {
                sink.at(&span, lint, message);
            } else {
                match Pattern::glob(&glob) {
                    Err(e) => sink.at(&span, lints::BAD_GLOB, format!("`{glob}`: {e}")),
                    Ok(p) if !p.has_wildcard() => sink.at(
                        &span,
                        lints::GLOB_WITHOUT_WILDCARD,
                        format!("`{glob}` has no `*`, `?` or `[`: use `file = \"{glob}\"`"),
                    ),
                    Ok(p) => check_reach(sink, &p, &glob, &span, run_as),
                }
            }
            Action::Glob(glob)
        }
        "command" => {
            let (argv, span) = fields::strings(sink, table, "command").ok()?;
            if argv.len() > MAX_COMMAND_ARGS {
                sink.at(
                    &span,
                    lints::LIMIT_TOO_HIGH,
                    format!(
                        "the command has {} arguments, more than {MAX_COMMAND_ARGS}",
                        argv.len()
                    ),
                );
                return None;
            }
            let words: Vec<String> = argv.iter().map(|(w, _)| w.clone()).collect();
            let (resolved, findings) = command::check(&words, cfg);
            for f in findings {
                let at = argv.get(f.index).map_or(&span, |(_, s)| s);
                sink.at(at, f.lint, f.message);
            }
            // A root command reading where users can write follows what
            // they plant there, as a root `file` step would.
            if run_as == RunAs::Root {
                for (word, wspan) in argv.iter().skip(1) {
                    let dir = command::absolute_candidates(word)
                        .into_iter()
                        .find_map(|path| user_writable_dir(&Pattern::literal(path)));
                    if let Some(dir) = dir {
                        sink.at(
                            wspan,
                            lints::ROOT_IN_USER_DIR,
                            format!(
                                "`{word}` is under `{dir}`, where users can plant symlinks: use \
                                 `as = \"user\"`"
                            ),
                        );
                    }
                }
            }
            for (word, wspan) in &argv {
                if word.contains('\0') {
                    sink.at(
                        wspan,
                        lints::INVALID_VALUE,
                        "a command argument cannot contain a NUL character",
                    );
                }
            }
            Action::Command(resolved)
        }
        "journal" => Action::Journal(parse_journal(sink, table, cfg)?),
        "package_versions" => {
            let (names, span) = fields::strings(sink, table, "package_versions").ok()?;
            if names.is_empty() {
                sink.at(
                    &span,
                    lints::EMPTY_VALUE,
                    "`package_versions` is empty: list at least one package",
                );
            }
            for (name, nspan) in &names {
                if !grammar::is_package_name(name, true) {
                    sink.at(
                        nspan,
                        lints::BAD_PACKAGE_NAME,
                        format!(
                            "`{}` is not a Debian package name or pattern",
                            name.escape_debug()
                        ),
                    );
                }
            }
            Action::PackageVersions(names.into_iter().map(|(n, _)| n).collect())
        }
        _ => {
            let (name, span) = fields::string(sink, table, "conffiles").ok()?;
            if !grammar::is_package_name(&name, false) {
                sink.at(
                    &span,
                    lints::BAD_PACKAGE_NAME,
                    format!("`{}` is not a Debian package name", name.escape_debug()),
                );
            }
            Action::Conffiles(name)
        }
    };
    (sink.diagnostics.len() == before).then_some(action)
}

/// The deny-list, and root steps in user-writable directories.
fn check_reach(sink: &mut Sink<'_>, pattern: &Pattern, text: &str, span: &Span, run_as: RunAs) {
    if let Some((entry, deny)) = denied(pattern) {
        let could = if pattern.has_wildcard() {
            "could match"
        } else {
            "is"
        };
        sink.at(
            span,
            lints::DENIED_PATH,
            format!(
                "`{text}` {could} a path in the secret deny-list ({}: `{deny}`)",
                entry.reason
            ),
        );
        return;
    }
    if run_as == RunAs::Root
        && let Some(dir) = user_writable_dir(pattern)
    {
        sink.at(
            span,
            lints::ROOT_IN_USER_DIR,
            format!(
                "`{text}` is under `{dir}`, where users can plant symlinks: use `as = \"user\"`"
            ),
        );
    }
}

fn parse_journal(
    sink: &mut Sink<'_>,
    step: &DeTable<'_>,
    cfg: &LintConfig,
) -> Option<JournalQuery> {
    let (table, _) = fields::table(sink, step, "journal").ok()?;
    reject_unknown(sink, table, JOURNAL_FIELDS, "`journal`");
    let mut query = JournalQuery {
        lines: Some(cfg.default_journal_lines),
        ..JournalQuery::default()
    };
    if let Some((unit, span)) = fields::string(sink, table, "unit").ok() {
        if !grammar::is_unit_name(&unit) {
            sink.at(
                &span,
                lints::BAD_UNIT_NAME,
                format!("`{}` is not a systemd unit name", unit.escape_debug()),
            );
        }
        query.unit = Some(unit);
    }
    if let Some((priority, span)) = fields::string(sink, table, "priority").ok() {
        if !grammar::is_journal_priority(&priority) {
            sink.at(
                &span,
                lints::BAD_JOURNAL_PRIORITY,
                format!(
                    "`{}` is not a syslog level: use one of {} (or 0-7, or a range like `err..warning`)",
                    priority.escape_debug(),
                    grammar::SYSLOG_LEVELS.join(", ")
                ),
            );
        }
        query.priority = Some(priority);
    }
    if let Some(n) = bounded(sink, table, "lines", cfg.max_journal_lines, "lines") {
        query.lines = Some(n);
    }
    if let Some((grep, span)) = fields::string(sink, table, "grep").ok() {
        if let Err(e) = compile_regex(&grep) {
            sink.at(
                &span,
                lints::INVALID_REGEX,
                format!("`grep` does not compile: {}", one_line(&e.to_string())),
            );
        }
        query.grep = Some(grep);
    }
    if let Some((b, _)) = fields::boolean(sink, table, "this_boot").ok() {
        query.this_boot = b;
    }
    Some(query)
}
