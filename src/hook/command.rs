//! `command` steps: where the program is, and what it must not be.
//!
//! A command is an argv, never a shell (apport's `root_info_wrapper` was
//! `exec sh "$@"`). A bare program name is resolved at lint time in
//! [`FIXED_PATH`] and the hook then names the absolute path, so a machine's
//! own `PATH` never decides what runs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::command_rules::{
    DPKG_QUERY_OPTIONS, EXEC_OPTIONS, FIND_EXEC_ACTIONS, FIND_WRITE_ACTIONS, INDIRECT_TOOLS,
    INTERACTIVE_TOOLS, INTERPRETERS, IP_WRITE_WORDS, Inline, JOURNALCTL_WRITE_OPTIONS,
    PRIVILEGE_TOOLS, READ_ONLY_VERBS, RECURSIVE_READERS, SECRET_COMMANDS, SECRET_OPTION_STEMS,
    SHELL_OPERATORS, STATE_CHANGING_TOOLS, SYSCTL_WRITE_OPTIONS,
};
use super::config::LintConfig;
use super::denylist::{denied, denied_anchored, denied_literal};
use super::lints;
use super::paths::{MAX_PATH_LEN, check_canonical, normalize_lexically, user_writable_dir};
use super::pattern::Pattern;

/// The only directories commands may come from, in lookup order.
pub const FIXED_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A problem with one element of a command's argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Index into argv of the element the problem is about.
    pub(crate) index: usize,
    pub(crate) lint: &'static str,
    pub(crate) message: String,
}

fn finding(index: usize, lint: &'static str, message: String) -> Finding {
    Finding {
        index,
        lint,
        message,
    }
}

/// Checks a command; returns its argv with the program resolved to an
/// absolute path, and the problems found.
pub(crate) fn check(argv: &[String], cfg: &LintConfig) -> (Vec<String>, Vec<Finding>) {
    let mut findings = Vec::new();
    let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
        findings.push(finding(
            0,
            lints::EMPTY_COMMAND,
            "the command has no program: write `command = [\"/usr/bin/prog\", \"arg\"…]`".into(),
        ));
        return (argv.to_vec(), findings);
    };
    let mut resolved = argv.to_vec();
    let located = match locate(program, cfg) {
        Ok(located) => Some(located),
        Err((lint, message)) => {
            findings.push(finding(0, lint, message));
            None
        }
    };
    let args = argv.get(1..).unwrap_or_default();
    // A program that is not there is one clear error; what it would have
    // been is only judged for programs that exist.
    if let Some((absolute, real_name)) = located {
        if let Some(first) = resolved.first_mut() {
            *first = absolute;
        }
        let mut names = vec![base_name(program).to_owned()];
        if let Some(n) = real_name
            && !names.contains(&n)
        {
            names.push(n);
        }
        // Debian names variants of one program by a suffix after a dot
        // (`vim.tiny`, `vim.basic` behind `editor`, `sh.distrib`,
        // `mkfs.ext4`): each is judged as the program it is.
        for stem in names.clone() {
            if let Some((before, _)) = stem.split_once('.')
                && !before.is_empty()
                && !names.iter().any(|n| n == before)
            {
                names.push(before.to_owned());
            }
        }
        if let Some(f) = classify(&names, args) {
            findings.push(f);
        }
    }
    let bases = directory_bases(args);
    for (i, arg) in args.iter().enumerate() {
        let index = i.saturating_add(1);
        if let Some(message) = shell_syntax(arg) {
            findings.push(finding(index, lints::SHELL_SYNTAX, message));
        }
        if let Some(path) = path_in_argument(arg)
            && let Err((lint, message)) = check_canonical(path)
        {
            findings.push(finding(index, lint, message));
        } else if arg.split('/').any(|c| c == "..") {
            // A relative, attached or embedded path too: the deny-list
            // normalises `..` lexically, while the kernel resolves it after
            // symlinks (`var/run/../etc/shadow` from `/` is `/etc/shadow`).
            findings.push(finding(
                index,
                lints::NON_CANONICAL_PATH,
                format!("argument `{arg}` contains a `..` path component: name the path itself"),
            ));
        }
        if let Some((path, entry, pattern)) = denied_in_argument(arg, &bases) {
            findings.push(finding(
                index,
                lints::DENIED_PATH,
                format!(
                    "argument `{arg}` can name `{path}`, which is in the secret deny-list ({}: `{pattern}`)",
                    entry.reason
                ),
            ));
        }
    }
    (resolved, findings)
}

/// Most directories a relative argument is resolved against (see
/// [`directory_bases`]); bounds the linter's work on long argvs.
const MAX_DIRECTORY_BASES: usize = 16;

/// The directories a relative argument may be resolved in at run time:
/// apportd runs commands in `/`, and a program may change directory first
/// (`tar -C /etc -c shadow`, `--directory=/etc`), so every absolute path
/// named by another argument is a possible base too.
fn directory_bases(args: &[String]) -> Vec<String> {
    let mut bases = vec!["/".to_owned()];
    let absolute = args
        .iter()
        .flat_map(|a| absolute_candidates(a))
        .map(normalize_lexically);
    // A directory named relative to `/`: a word with a `/` (`var/lib`) or an
    // option value (`--directory=etc`). A bare word is a user or unit name
    // more often than a directory (`id root`). File names are at most 255
    // bytes, so longer words are no directory a program enters in one step.
    let relative = args
        .iter()
        .flat_map(|a| {
            let word = (!a.starts_with('-') && !a.starts_with('/') && a.contains('/'))
                .then_some(a.as_str());
            let value = a
                .split_once('=')
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty() && !v.starts_with('/'));
            word.into_iter().chain(value)
        })
        .filter(|r| r.len() <= MAX_NAME_LEN)
        .map(|r| normalize_lexically(&format!("/{r}")));
    for path in absolute.chain(relative) {
        if bases.len() >= MAX_DIRECTORY_BASES {
            break;
        }
        if !bases.contains(&path) {
            bases.push(path);
        }
    }
    bases
}

/// Longest relative word taken as a directory for other arguments.
const MAX_NAME_LEN: usize = 255;

/// Most paths looked for in one argument; an argument that embeds more is
/// refused rather than checked in part.
const MAX_PATHS_PER_ARGUMENT: usize = 32;

/// The absolute paths an argument may carry: the argument itself, the value
/// of `--opt=/x`, a short option with its value attached (`-f/x`), and a
/// path after a separator (`file:///x`, `@/x`, `a,/x`). At most
/// [`MAX_PATHS_PER_ARGUMENT`] plus one (the caller refuses the argument then).
pub(crate) fn absolute_candidates(arg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (at, _) in arg.match_indices('/') {
        if out.len() > MAX_PATHS_PER_ARGUMENT {
            break;
        }
        let before = arg.get(..at).unwrap_or_default();
        let boundary = match before.chars().next_back() {
            None => true,
            Some(c) => !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '~')),
        };
        // `-f/etc/x`, `-Cetc`-style clusters: the value starts at the first `/`.
        let short_option = before.starts_with('-')
            && !before.starts_with("--")
            && !before.contains('/')
            && before.chars().skip(1).all(|c| c.is_ascii_alphanumeric());
        if (boundary || short_option)
            && let Some(path) = arg.get(at..)
        {
            out.push(path);
        }
    }
    out
}

/// The relative paths an argument may carry: a non-option argument, or the
/// value of `--opt=x`.
fn relative_candidates(arg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if !arg.is_empty() && !arg.starts_with('-') && !arg.starts_with('/') {
        out.push(arg);
    }
    if let Some((_, value)) = arg.split_once('=')
        && !value.is_empty()
        && !value.starts_with('/')
    {
        out.push(value);
    }
    out
}

/// What an argument with too many embedded paths to check is refused as.
static TOO_MANY_PATHS: super::denylist::DenyEntry = super::denylist::DenyEntry {
    patterns: &[],
    reason: "too many paths in one argument to check them all",
};

/// The first denied path `arg` can name at run time, with its deny entry.
/// Commands run in `/` (so `cat etc/shadow` reads `/etc/shadow`), and a
/// relative argument is also tried in every directory in `bases`.
fn denied_in_argument(
    arg: &str,
    bases: &[String],
) -> Option<(String, &'static super::denylist::DenyEntry, &'static str)> {
    let absolute = absolute_candidates(arg);
    if absolute.len() > MAX_PATHS_PER_ARGUMENT {
        return Some((
            format!("one of more than {MAX_PATHS_PER_ARGUMENT} embedded paths"),
            &TOO_MANY_PATHS,
            "(not checked)",
        ));
    }
    // The kernel refuses longer paths (ENAMETOOLONG) before resolving them.
    let absolute = absolute
        .into_iter()
        .filter(|p| p.len() <= MAX_PATH_LEN)
        .map(normalize_lexically);
    let relative = relative_candidates(arg)
        .into_iter()
        .filter(|r| r.len() <= MAX_PATH_LEN)
        .flat_map(|r| {
            // A bare word (no `/`) in `/` is a user or unit name more often
            // than a path (`getent passwd root`, `id root`): it is only
            // resolved in the directories other arguments name.
            let skip = usize::from(!r.contains('/'));
            bases
                .iter()
                .skip(skip)
                .map(move |base| normalize_lexically(&format!("{base}/{r}")))
        });
    absolute
        .chain(relative)
        .find_map(|path| denied_literal(&path).map(|(entry, pattern)| (path, entry, pattern)))
}

fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// Finds `program` in the fixed PATH under the configured root; returns the
/// absolute path to run and, if it is a symlink, the name it points to
/// (`/bin/sh` → `dash`), so `sh -c` is caught whatever `sh` is.
fn locate(
    program: &str,
    cfg: &LintConfig,
) -> Result<(String, Option<String>), (&'static str, String)> {
    let dirs: Vec<&str> = FIXED_PATH.split(':').collect();
    let candidates: Vec<String> = if program.contains('/') {
        check_canonical(program)?;
        let dir = program.rsplit_once('/').map_or("", |(d, _)| d);
        if !dirs.contains(&dir) {
            return Err((
                lints::COMMAND_OUTSIDE_PATH,
                format!("`{program}` is not in one of the fixed PATH directories {FIXED_PATH}"),
            ));
        }
        vec![program.to_owned()]
    } else {
        if program.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err((
                lints::COMMAND_NOT_FOUND,
                format!("`{}` is not a program name", program.escape_debug()),
            ));
        }
        dirs.iter().map(|d| format!("{d}/{program}")).collect()
    };
    for candidate in candidates {
        let on_disk = cfg.command_root.join(candidate.trim_start_matches('/'));
        if is_executable(&on_disk) {
            let real_name = std::fs::canonicalize(&on_disk)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            return Ok((candidate, real_name));
        }
    }
    Err((
        lints::COMMAND_NOT_FOUND,
        format!(
            "`{program}` is not an executable in {FIXED_PATH} (looked under `{}`): use a program the target machines have",
            cfg.command_root.display()
        ),
    ))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `python3.12` → `python`, `perl5.38` → `perl`, `lua5.4` → `lua`.
fn strip_version(name: &str) -> &str {
    let stripped = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    if stripped.is_empty() { name } else { stripped }
}

fn classify(names: &[String], args: &[String]) -> Option<Finding> {
    for name in names {
        let plain = strip_version(name);
        let is = |list: &[&str]| list.contains(&name.as_str()) || list.contains(&plain);
        if is(PRIVILEGE_TOOLS) {
            return Some(finding(
                0,
                lints::PRIVILEGE_TOOL,
                format!(
                    "`{name}` changes privileges: drop it and declare `as = \"root\"`, which polkit authorizes"
                ),
            ));
        }
        if is(INDIRECT_TOOLS) {
            return Some(finding(
                0,
                lints::INDIRECT_COMMAND,
                format!("`{name}` runs another program: name that program directly"),
            ));
        }
        if is(INTERACTIVE_TOOLS) {
            return Some(finding(
                0,
                lints::INTERACTIVE_COMMAND,
                format!(
                    "`{name}` is interactive (a pager or editor); as root it is a shell escape"
                ),
            ));
        }
        if let Some((_, rule)) = INTERPRETERS.iter().find(|(n, _)| *n == name || *n == plain)
            && let Some(index) = inline_code(*rule, args, name == "gdb" || plain == "gdb")
        {
            return Some(finding(
                index,
                lints::INLINE_CODE,
                format!(
                    "`{name}` is given code inline: ship the program in a package and run it by path, or use the step kinds"
                ),
            ));
        }
        if let Some(index) = exec_option(name, plain, args) {
            let option = args.get(index.wrapping_sub(1)).map_or("", String::as_str);
            return Some(finding(
                index,
                lints::INDIRECT_COMMAND,
                format!("`{name} {option}` runs another program: name that program directly"),
            ));
        }
        if let Some(f) = state_changing(name, plain, args) {
            return Some(f);
        }
        if let Some(f) = prints_secrets(name, plain, args) {
            return Some(f);
        }
        if let Some(f) = reads_denied_tree(name, plain, args) {
            return Some(f);
        }
    }
    None
}

/// The argv index of the inline-code flag, if any. Only options before the
/// script path count (`bash /usr/share/x.sh -c` passes `-c` to the script).
/// A path right after an option may be that option's value (`perl -I
/// /usr/lib -e …`), so only a path after a non-option ends the options:
/// `bash -x /usr/share/x.sh -c` is refused too, rather than guess which
/// options take values. gdb reorders its arguments and takes long options
/// after one dash, by any prefix (`gdb /usr/bin/x -batch -eval-comm …`),
/// so all of its arguments count, each way.
fn inline_code(rule: Inline, args: &[String], gdb: bool) -> Option<usize> {
    let script = args.iter().enumerate().position(|(i, a)| {
        a.starts_with('/')
            && i.checked_sub(1)
                .and_then(|p| args.get(p))
                .is_none_or(|before| !before.starts_with('-'))
    });
    let scanned = if gdb {
        args.len()
    } else {
        script.unwrap_or(args.len())
    };
    let options = args.iter().enumerate().take(scanned);
    match rule {
        Inline::Flags { letters, long } => {
            for (i, arg) in options {
                let name = arg.split_once('=').map_or(arg.as_str(), |(o, _)| o);
                let long_hit = long.iter().any(|l| {
                    name == *l
                        || gnu_prefix(name, l)
                        || (gdb
                            && name.starts_with('-')
                            && !name.trim_start_matches('-').is_empty()
                            && l.trim_start_matches('-')
                                .starts_with(name.trim_start_matches('-')))
                });
                // Letters and digits (`perl -0777e`) up to the first
                // other character: the rest of a cluster may be an option's
                // value (`-cimport os…` is `-c` with its code attached).
                let short_hit = arg.strip_prefix('-').is_some_and(|cluster| {
                    !cluster.starts_with('-')
                        && cluster
                            .chars()
                            .take_while(char::is_ascii_alphanumeric)
                            .any(|c| letters.contains(&c))
                });
                if long_hit || short_hit {
                    return Some(i.saturating_add(1));
                }
            }
            None
        }
        Inline::ProgramArgument => {
            // `-e` adds code to a script file (`sed -f x -e '1e id'`,
            // `gawk -f x -e …`).
            let expression = args.iter().position(|a| {
                a.starts_with("--expression")
                    || a.starts_with("--source")
                    || a.strip_prefix('-').is_some_and(|cluster| {
                        !cluster.starts_with('-')
                            && cluster
                                .chars()
                                .take_while(char::is_ascii_alphanumeric)
                                .any(|c| c == 'e')
                    })
            });
            if let Some(i) = expression {
                return Some(i.saturating_add(1));
            }
            let from_file = args.iter().any(|a| {
                a == "-f"
                    || a.starts_with("--file")
                    || (a.starts_with("-f") && !a.starts_with("--"))
            });
            (!from_file).then_some(1)
        }
        Inline::Statements => {
            let mut operands = 0usize;
            let mut options_ended = false;
            for (i, a) in args.iter().enumerate() {
                if !options_ended && a == "--" {
                    options_ended = true;
                    continue;
                }
                // The shell takes `--opt` as `-opt`. `-cmd` and `-init`
                // run statements, `-A…` extracts an archive (writes files).
                // After `--` everything is an operand.
                let option = a
                    .strip_prefix('-')
                    .filter(|_| !options_ended)
                    .map(|o| o.strip_prefix('-').unwrap_or(o));
                let code_option =
                    option.is_some_and(|o| o == "cmd" || o == "init" || o.starts_with('A'));
                if option.is_none() {
                    operands = operands.saturating_add(1);
                }
                if code_option || operands > 1 {
                    return Some(i.saturating_add(1));
                }
            }
            None
        }
    }
}

/// The argv index of an option that makes the program run another
/// program ([`EXEC_OPTIONS`]), if any.
fn exec_option(name: &str, plain: &str, args: &[String]) -> Option<usize> {
    let rule = EXEC_OPTIONS
        .iter()
        .find(|e| e.program == name || e.program == plain)?;
    args.iter()
        .enumerate()
        .position(|(i, arg)| {
            let option = arg.split_once('=').map_or(arg.as_str(), |(o, _)| o);
            let single_dash = arg.starts_with('-') && !arg.starts_with("--");
            let long_hit = !rule.own_options.contains(&option)
                && rule.long.iter().any(|full| {
                    option == *full
                        || gnu_prefix(option, full)
                        || (single_dash
                            && !full.starts_with("--")
                            && arg.contains(full.trim_start_matches('-')))
                });
            let cluster = match arg.strip_prefix('-') {
                Some(cluster) => Some(cluster),
                None if i == 0 && rule.bundled_first => Some(arg.as_str()),
                None => None,
            };
            let short_hit = cluster.is_some_and(|c| {
                !c.starts_with('-') && c.chars().any(|l| rule.letters.contains(&l))
            });
            long_hit || short_hit
        })
        .map(|i| i.saturating_add(1))
}

/// Whether `option` is a `--` option that getopt_long would take as an
/// abbreviation of `full`.
fn gnu_prefix(option: &str, full: &str) -> bool {
    option.starts_with("--")
        && option.len() > 2
        && full.starts_with("--")
        && full.starts_with(option)
}

fn state_changing(name: &str, plain: &str, args: &[String]) -> Option<Finding> {
    let hit = |index: usize, why: String| Some(finding(index, lints::STATE_CHANGING_COMMAND, why));
    if STATE_CHANGING_TOOLS.contains(&name) || name.starts_with("mkfs") {
        return hit(
            0,
            format!("`{name}` changes the machine; a hook only collects data"),
        );
    }
    let read_only = READ_ONLY_VERBS
        .iter()
        .find(|(n, _)| *n == name || *n == plain);
    // The verb comes first: an option before it may take a value
    // (`systemctl -p status poweroff` runs `poweroff`), and these programs
    // take their options after the verb just as well.
    if let Some((_, verbs)) = read_only
        && args.first().is_some_and(|a| a.starts_with('-'))
    {
        return hit(
            1,
            format!(
                "`{name}` takes its verb first, options after it; read-only verbs are: {}",
                verbs.join(", ")
            ),
        );
    }
    let first_verb = args.iter().enumerate().find(|(_, a)| !a.starts_with('-'));
    if let Some((_, verbs)) = read_only
        && let Some((i, verb)) = first_verb
        && !verbs.contains(&verb.as_str())
    {
        return hit(
            i.saturating_add(1),
            format!(
                "`{name} {verb}` changes the machine; read-only verbs are: {}",
                verbs.join(", ")
            ),
        );
    }
    let any_arg = |list: &[&str]| {
        args.iter().position(|a| {
            list.iter()
                .any(|l| a == l || a.strip_prefix(l).is_some_and(|r| r.starts_with('=')))
        })
    };
    let why = |i: usize| {
        format!(
            "`{name}` with `{}` changes the machine",
            args.get(i).map_or("", String::as_str)
        )
    };
    let found = match name {
        "dpkg" => args.iter().position(|a| a.starts_with('-')).filter(|&i| {
            let opt = args.get(i).map_or("", String::as_str);
            let opt = opt.split_once('=').map_or(opt, |(o, _)| o);
            !DPKG_QUERY_OPTIONS.contains(&opt)
        }),
        "ip" => any_arg(IP_WRITE_WORDS),
        "journalctl" => any_arg(JOURNALCTL_WRITE_OPTIONS),
        "sysctl" => {
            any_arg(SYSCTL_WRITE_OPTIONS).or_else(|| args.iter().position(|a| a.contains('=')))
        }
        "find" => any_arg(FIND_WRITE_ACTIONS),
        "mount" => args.iter().position(|a| a != "-l" && a != "--show-labels"),
        _ => None,
    };
    if name == "find"
        && let Some(i) = any_arg(FIND_EXEC_ACTIONS)
    {
        return Some(finding(
            i.saturating_add(1),
            lints::INDIRECT_COMMAND,
            format!(
                "`find {}` runs another program: name that program directly",
                args.get(i).map_or("", String::as_str)
            ),
        ));
    }
    found.and_then(|i| hit(i.saturating_add(1), why(i)))
}

/// A recursive reader (`tar`, `grep -r`) given a directory that holds a
/// denied path.
fn reads_denied_tree(name: &str, plain: &str, args: &[String]) -> Option<Finding> {
    let (_, recursion) = RECURSIVE_READERS
        .iter()
        .find(|(n, _)| *n == name || *n == plain)?;
    if let Some(r) = recursion {
        let on = args.iter().any(|a| {
            r.long
                .iter()
                .any(|l| a == l || a.strip_prefix(l).is_some_and(|v| v.starts_with('=')))
                || a.strip_prefix('-').is_some_and(|cluster| {
                    !cluster.starts_with('-')
                        && !cluster.is_empty()
                        && cluster.chars().all(|c| c.is_ascii_alphanumeric())
                        && cluster.chars().any(|c| r.letters.contains(&c))
                })
        });
        if !on {
            return None;
        }
    }
    for (i, arg) in args.iter().enumerate() {
        let dirs = absolute_candidates(arg)
            .into_iter()
            .map(normalize_lexically)
            .chain(
                relative_candidates(arg)
                    .into_iter()
                    .filter(|r| r.contains('/'))
                    .map(|r| normalize_lexically(&format!("/{r}"))),
            );
        for dir in dirs {
            let tree = if dir == "/" {
                "/**".to_owned()
            } else {
                format!("{dir}/**")
            };
            let tree = Pattern::deny(&tree);
            // Patterns like `**/.ssh/**` could match under any directory;
            // they count for trees that reach homes or user-writable places
            // (`tar -c /home`), where such names live.
            let hit = if user_writable_dir(&tree).is_some() {
                denied(&tree)
            } else {
                denied_anchored(&tree)
            };
            if let Some((entry, pattern)) = hit {
                return Some(finding(
                    i.saturating_add(1),
                    lints::DENIED_PATH,
                    format!(
                        "`{name}` reads every file under `{dir}`, which holds paths in the secret deny-list ({}: `{pattern}`): name the files you need",
                        entry.reason
                    ),
                ));
            }
        }
    }
    None
}

fn prints_secrets(name: &str, plain: &str, args: &[String]) -> Option<Finding> {
    let (_, words) = SECRET_COMMANDS
        .iter()
        .find(|(n, _)| *n == name || *n == plain)?;
    let index = if words.is_empty() {
        0
    } else {
        args.iter()
            .position(|a| {
                let option = a.split_once('=').map_or(a.as_str(), |(o, _)| o);
                words.iter().any(|w| a == w || option == *w)
                    // The tools take a long option by any unambiguous
                    // prefix (`--show-secr`, `--export-secret-key`).
                    || SECRET_OPTION_STEMS
                        .iter()
                        .filter(|(n, _)| *n == name || *n == plain)
                        .any(|(_, stems)| stems.iter().any(|st| option.starts_with(st)))
            })?
            .saturating_add(1)
    };
    let what = args.get(index.wrapping_sub(1)).filter(|_| index > 0);
    Some(finding(
        index,
        lints::SECRET_COMMAND,
        match what {
            Some(word) => format!(
                "`{name} {word}` prints secrets (the secret deny-list applies to programs too)"
            ),
            None => {
                format!("`{name}` prints secrets (the secret deny-list applies to programs too)")
            }
        },
    ))
}

/// Why `arg` looks like shell syntax, if it does.
fn shell_syntax(arg: &str) -> Option<String> {
    let why = if SHELL_OPERATORS.contains(&arg) {
        "is a shell operator"
    } else if arg.contains("$(") || arg.contains('`') || arg.starts_with("${") {
        "is a shell substitution"
    } else if arg.starts_with('$') && arg.len() > 1 {
        "is a shell variable"
    } else if arg == "~" || arg.starts_with("~/") {
        "uses `~`, which only a shell expands"
    } else if arg.starts_with('/') && arg.contains(['*', '?', '[']) {
        "is a glob, which only a shell expands: use a `glob` step"
    } else if (arg.starts_with("2>") || arg.starts_with('>') || arg.starts_with('<'))
        && arg.len() > 1
    {
        "is a shell redirection"
    } else {
        return None;
    };
    Some(format!(
        "`{arg}` {why}; the command runs without a shell, so it would be passed literally"
    ))
}

/// The absolute path an argument names, if it names one (`/x`, `--file=/x`).
fn path_in_argument(arg: &str) -> Option<&str> {
    if arg.starts_with('/') {
        return Some(arg);
    }
    arg.split_once('=')
        .map(|(_, v)| v)
        .filter(|v| v.starts_with('/'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A tiny file system with the programs the tests name, so the tests do
    /// not depend on what the build machine has installed.
    fn fixture_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        for name in [
            "dmesg",
            "uname",
            "ls",
            "dash",
            "bash",
            "python3.12",
            "perl",
            "mawk",
            "sudo",
            "env",
            "less",
            "find",
            "rm",
            "systemctl",
            "ip",
            "dpkg",
            "apt-mark",
            "getent",
            "debconf-get-selections",
            "wg",
            "nmcli",
            "tar",
            "grep",
            "cat",
            "busctl",
            "loginctl",
            "dbus-send",
            "gdbus",
            "sqlite3",
            "rsync",
            "sort",
            "zip",
            "tcpdump",
            "scp",
            "sftp",
            "split",
            "setarch",
            "sed",
            "gdb",
            "gdb-multiarch",
            "vim.tiny",
            "mkfs.ext4",
            "sh.distrib",
            "notexec",
        ] {
            let p = bin.join(name);
            std::fs::write(&p, b"").unwrap();
            let mode = if name == "notexec" { 0o644 } else { 0o755 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::os::unix::fs::symlink("../usr/bin/dash", root.path().join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("python3.12", bin.join("python3")).unwrap();
        std::os::unix::fs::symlink("mawk", bin.join("awk")).unwrap();
        root
    }

    fn lint_of(argv: &[&str]) -> Vec<(usize, &'static str)> {
        let root = fixture_root();
        let cfg = LintConfig {
            command_root: root.path().to_owned(),
            ..LintConfig::default()
        };
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        check(&argv, &cfg)
            .1
            .into_iter()
            .map(|f| (f.index, f.lint))
            .collect()
    }

    #[test]
    fn bare_names_resolve_to_the_first_fixed_path_directory_that_has_them() {
        let root = fixture_root();
        let cfg = LintConfig {
            command_root: root.path().to_owned(),
            ..LintConfig::default()
        };
        let (argv, findings) = check(&["dmesg".to_owned(), "-T".to_owned()], &cfg);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(argv, ["/usr/bin/dmesg", "-T"]);
        let (argv, _) = check(&["sh".to_owned()], &cfg);
        assert_eq!(argv, ["/bin/sh"]);
    }

    #[test]
    fn symlinked_interpreters_are_recognised_by_their_target() {
        // /bin/sh -> dash; python3 -> python3.12; awk -> mawk.
        assert_eq!(lint_of(&["/bin/sh", "-c", "id"]), [(1, lints::INLINE_CODE)]);
        assert_eq!(
            lint_of(&["python3", "-Ic", "print(1)"]),
            [(1, lints::INLINE_CODE)]
        );
        assert_eq!(
            lint_of(&["awk", "-F:", "{print $1}"]),
            [(1, lints::INLINE_CODE)]
        );
    }

    #[test]
    fn bare_names_resolve_in_the_real_fixed_path() {
        let (argv, findings) = check(&["dmesg".to_owned()], &LintConfig::default());
        assert!(findings.is_empty(), "{findings:?}");
        assert!(
            FIXED_PATH
                .split(':')
                .any(|d| argv[0] == format!("{d}/dmesg")),
            "{argv:?}"
        );
    }

    #[test]
    fn programs_that_are_not_executable_are_not_found() {
        assert_eq!(lint_of(&["notexec"]), [(0, lints::COMMAND_NOT_FOUND)]);
        // Not found: no guess about what it would have been.
        assert_eq!(lint_of(&["pkexec", "id"]), [(0, lints::COMMAND_NOT_FOUND)]);
    }

    #[test]
    fn programs_outside_the_fixed_path_are_refused() {
        assert_eq!(
            lint_of(&["no-such-program-anywhere"]),
            [(0, lints::COMMAND_NOT_FOUND)]
        );
        assert_eq!(
            lint_of(&["/usr/local/bin/x"]),
            [(0, lints::COMMAND_OUTSIDE_PATH)]
        );
        assert_eq!(
            lint_of(&["/usr/bin/no-such-program"]),
            [(0, lints::COMMAND_NOT_FOUND)]
        );
        assert_eq!(lint_of(&["bin/dmesg"]), [(0, lints::RELATIVE_PATH)]);
        assert_eq!(lint_of(&[""]), [(0, lints::EMPTY_COMMAND)]);
    }

    #[test]
    fn inline_code_is_refused_for_every_interpreter_kind() {
        assert_eq!(lint_of(&["sh", "-c", "id"]), [(1, lints::INLINE_CODE)]);
        assert_eq!(
            lint_of(&["bash", "-o", "pipefail", "-ec", "id"]),
            [(3, lints::INLINE_CODE)]
        );
        assert_eq!(
            lint_of(&["python3", "-c", "print(1)"]),
            [(1, lints::INLINE_CODE)]
        );
        assert_eq!(
            lint_of(&["perl", "-ne", "print"]),
            [(1, lints::INLINE_CODE)]
        );
        assert_eq!(lint_of(&["awk", "{print}"]), [(1, lints::INLINE_CODE)]);
        // A script on disk is fine, and so are its own options.
        assert!(lint_of(&["bash", "/usr/share/apport/x.sh", "-c"]).is_empty());
        // A path right after an option may be its value, not the script.
        assert_eq!(
            lint_of(&["perl", "-I", "/usr/share/perl5", "-e", "print"]),
            [(3, lints::INLINE_CODE)]
        );
        assert_eq!(
            lint_of(&["bash", "-x", "/usr/share/apport/x.sh", "-c"]),
            [(3, lints::INLINE_CODE)],
            "which options take a value is not guessed"
        );
        // Code attached to its flag, after letters or not.
        assert_eq!(
            lint_of(&["python3", "-cimport os;os.system('id')"]),
            [(1, lints::INLINE_CODE)]
        );
        assert_eq!(
            lint_of(&["perl", "-esystem q(id)"]),
            [(1, lints::INLINE_CODE)]
        );
        // Digits in a cluster (`perl -0777e`, `-l0e`).
        for argv in [&["perl", "-0e", "system q(id)"][..], &["perl", "-l0e", "1"]] {
            assert_eq!(lint_of(argv), [(1, lints::INLINE_CODE)], "{argv:?}");
        }
        // A module is a program of its own (`-m timeit CODE`).
        assert_eq!(
            lint_of(&["python3", "-m", "timeit", "__import__('os')"]),
            [(1, lints::INLINE_CODE)]
        );
        // sed and awk: code added to a script file.
        assert_eq!(
            lint_of(&["sed", "-f", "/usr/share/x.sed", "-e", "1e id", "/var/log/x"]),
            [(3, lints::INLINE_CODE)]
        );
        assert_eq!(
            lint_of(&["sed", "-n", "-f", "/usr/share/x.sed", "/var/log/x"]),
            []
        );
        // gdb reorders its arguments and takes `-eval-comm` for
        // `--eval-command`.
        for argv in [
            &["gdb", "/usr/bin/ls", "-batch", "-ex", "shell id"][..],
            &["gdb", "-batch", "-eval-comm", "shell id", "/usr/bin/ls"],
            &["gdb", "--batch", "--ev=shell id", "/usr/bin/ls"],
            &["gdb", "-batch", "-eiex", "shell id"],
            &["gdb-multiarch", "-batch", "-ex", "shell id"],
        ] {
            assert!(
                lint_of(argv).contains(&(3, lints::INLINE_CODE))
                    || lint_of(argv).contains(&(2, lints::INLINE_CODE)),
                "{argv:?}: {:?}",
                lint_of(argv)
            );
        }
        // SQL is code in sqlite3's shell (`.shell`, `load_extension`).
        assert!(lint_of(&["sqlite3", "/var/lib/x.db"]).is_empty());
        for (argv, index) in [
            (&["sqlite3", "/var/lib/x.db", ".shell id"][..], 2),
            (&["sqlite3", "-readonly", "/var/lib/x.db", "select 1"], 3),
            (&["sqlite3", "-cmd", ".system id", "/var/lib/x.db"], 1),
            (&["sqlite3", "--cmd", ".system id"], 1),
            (&["sqlite3", "--init", "/var/lib/x.sql"], 1),
            (&["sqlite3", "-Ax", "/var/lib/x.db"], 1),
            (&["sqlite3", "/var/lib/x.db", "--Ax"], 2),
            (
                &["sqlite3", ":memory:", "--", "--\nSELECT edit('','id')"],
                3,
            ),
        ] {
            assert_eq!(lint_of(argv), [(index, lints::INLINE_CODE)], "{argv:?}");
        }
    }

    #[test]
    fn variants_named_by_a_dotted_suffix_are_judged_as_their_program() {
        for (argv, lint) in [
            (
                &["vim.tiny", "/var/log/syslog"][..],
                lints::INTERACTIVE_COMMAND,
            ),
            (&["mkfs.ext4", "/dev/sda1"], lints::STATE_CHANGING_COMMAND),
            (&["sh.distrib", "-c", "id"], lints::INLINE_CODE),
        ] {
            assert!(
                lint_of(argv).iter().any(|(_, l)| *l == lint),
                "{argv:?}: {:?}",
                lint_of(argv)
            );
        }
    }

    #[test]
    fn options_that_run_another_program_are_refused() {
        for (argv, index) in [
            (&["tar", "-xf", "/var/log/a.tar", "--to-command=id"][..], 3),
            (&["tar", "--to-comm", "id", "-xf", "/var/log/a.tar"], 1),
            (&["tar", "-xIid", "-f", "/var/log/a.tar"], 1),
            (
                &["tar", "--use-compress-prog=id", "-tf", "/var/log/a.tar"],
                1,
            ),
            (
                &[
                    "tar",
                    "--checkpoint-action=exec=id",
                    "-tf",
                    "/var/log/a.tar",
                ],
                1,
            ),
            (&["rsync", "-avze", "id", "/var/log/a", "/var/log/b"], 1),
            (&["rsync", "--rsync-path=id", "/var/log/a", "/var/log/b"], 1),
            (&["sort", "--compress-program=id", "/var/log/a"], 1),
            (&["zip", "-TT", "id", "/var/log/a.zip", "/var/log/a"], 1),
            (&["tcpdump", "-w", "/var/log/x.pcap", "-z", "id"], 3),
            // Any unambiguous prefix of a long option.
            (&["tar", "--use=id", "-tf", "/var/log/a.tar"], 1),
            (
                &["tar", "--checkpoint-=exec=id", "-tf", "/var/log/a.tar"],
                1,
            ),
            (&["tar", "--rs=id", "-tf", "/var/log/a.tar"], 1),
            (&["sort", "--co=id", "/var/log/a"], 1),
            (&["sort", "--compress=id", "/var/log/a"], 1),
            // tar's traditional first argument, and clusters that do not
            // start with a letter.
            (&["tar", "xIf", "id", "/var/log/a.tar"], 1),
            (&["rsync", "-4e", "id", "/var/log/a", "/var/log/b"], 1),
            (&["scp", "-4o", "ProxyCommand=id", "h:/a", "/var/log/b"], 1),
            (&["tcpdump", "-#z", "id"], 1),
            (&["zip", "-TTid", "/var/log/a.zip", "/var/log/a"], 1),
            (&["zip", "-qTT", "id", "/var/log/a.zip", "/var/log/a"], 1),
            (&["split", "--filter=id", "/var/log/a"], 1),
            (&["sftp", "-D", "id", "h"], 1),
        ] {
            assert_eq!(
                lint_of(argv),
                [(index, lints::INDIRECT_COMMAND)],
                "{argv:?}"
            );
        }
        // Their ordinary options pass.
        assert_eq!(
            lint_of(&["tar", "--checkpoint=10", "-tvf", "/var/log/a.tar"]),
            []
        );
        assert!(lint_of(&["tar", "--totals", "-tf", "/var/log/a.tar"]).is_empty());
        assert!(lint_of(&["sort", "-u", "/var/log/a"]).is_empty());
    }

    #[test]
    fn wrappers_pagers_and_privilege_tools_are_refused() {
        assert_eq!(lint_of(&["sudo", "dmesg"]), [(0, lints::PRIVILEGE_TOOL)]);
        assert_eq!(lint_of(&["env", "dmesg"]), [(0, lints::INDIRECT_COMMAND)]);
        assert_eq!(
            lint_of(&["setarch", "x86_64", "dmesg"]),
            [(0, lints::INDIRECT_COMMAND)]
        );
        assert_eq!(
            lint_of(&["less", "/var/log/syslog"]),
            [(0, lints::INTERACTIVE_COMMAND)]
        );
        assert_eq!(
            lint_of(&["find", "/var/log", "-exec", "cat", "{}", ";"]).first(),
            Some(&(2, lints::INDIRECT_COMMAND))
        );
    }

    #[test]
    fn state_changes_are_refused_but_queries_pass() {
        assert_eq!(
            lint_of(&["rm", "-f", "/var/log/x"]),
            [(0, lints::STATE_CHANGING_COMMAND)]
        );
        assert_eq!(
            lint_of(&["systemctl", "restart", "lightdm"]),
            [(1, lints::STATE_CHANGING_COMMAND)]
        );
        assert!(lint_of(&["systemctl", "status", "lightdm"]).is_empty());
        assert_eq!(
            lint_of(&["ip", "link", "set", "eth0", "down"]),
            [(2, lints::STATE_CHANGING_COMMAND)]
        );
        assert!(lint_of(&["ip", "addr"]).is_empty());
        assert_eq!(
            lint_of(&["dpkg", "--purge", "x"]),
            [(1, lints::STATE_CHANGING_COMMAND)]
        );
        assert!(lint_of(&["dpkg", "-l", "lightdm"]).is_empty());
        assert!(lint_of(&["apt-mark", "showhold"]).is_empty());
        assert_eq!(
            lint_of(&["apt-mark", "hold", "x"]),
            [(1, lints::STATE_CHANGING_COMMAND)]
        );
    }

    #[test]
    fn shell_syntax_and_secret_paths_in_arguments_are_refused() {
        assert_eq!(lint_of(&["dmesg", "|", "tail"]), [(1, lints::SHELL_SYNTAX)]);
        assert_eq!(lint_of(&["uname", "$HOME"]), [(1, lints::SHELL_SYNTAX)]);
        assert_eq!(lint_of(&["uname", "$(id)"]), [(1, lints::SHELL_SYNTAX)]);
        // dpkg-query's own format syntax is not shell syntax.
        assert!(lint_of(&["ls", "--format=${Version}"]).is_empty());
        assert_eq!(
            lint_of(&["ls", "/var/log/*.log"]),
            [(1, lints::SHELL_SYNTAX)]
        );
        assert_eq!(
            lint_of(&["ls", "/etc/ssl/private"]),
            [(1, lints::DENIED_PATH)]
        );
        assert_eq!(
            lint_of(&["ls", "--directory=/var/log/../../root"]),
            [(1, lints::NON_CANONICAL_PATH), (1, lints::DENIED_PATH)]
        );
    }

    #[test]
    fn programs_that_print_secrets_are_refused() {
        assert_eq!(lint_of(&["getent", "shadow"]), [(1, lints::SECRET_COMMAND)]);
        assert_eq!(
            lint_of(&["getent", "gshadow", "root"]),
            [(1, lints::SECRET_COMMAND)]
        );
        assert!(lint_of(&["getent", "passwd", "lightdm"]).is_empty());
        assert_eq!(
            lint_of(&["debconf-get-selections"]),
            [(0, lints::SECRET_COMMAND)]
        );
        assert_eq!(
            lint_of(&["wg", "showconf", "wg0"]),
            [(1, lints::SECRET_COMMAND)]
        );
        assert!(lint_of(&["wg", "show", "wg0", "latest-handshakes"]).is_empty());
        assert_eq!(
            lint_of(&["nmcli", "--show-secrets", "connection", "show", "Home"]),
            [(1, lints::SECRET_COMMAND)]
        );
        assert_eq!(
            lint_of(&["ip", "xfrm", "state"]),
            [(1, lints::SECRET_COMMAND)]
        );
    }

    #[test]
    fn recursive_readers_of_a_directory_holding_secrets_are_refused() {
        assert_eq!(lint_of(&["tar", "-c", "/etc"]), [(2, lints::DENIED_PATH)]);
        assert!(lint_of(&["tar", "-cf", "-", "/"]).contains(&(3, lints::DENIED_PATH)));
        assert_eq!(
            lint_of(&["grep", "-rn", "password", "/etc"]),
            [(3, lints::DENIED_PATH)]
        );
        assert_eq!(
            lint_of(&["grep", "--recursive", "x", "/home"]),
            [(3, lints::DENIED_PATH)]
        );
        assert_eq!(
            lint_of(&["tar", "-c", "/var/lib"]),
            [(2, lints::DENIED_PATH)]
        );
        // Not recursive, or a tree without secrets: fine.
        assert!(lint_of(&["grep", "-n", "error", "/var/log/syslog"]).is_empty());
        assert!(lint_of(&["grep", "-rn", "drm", "/var/log/lightdm"]).is_empty());
        assert!(lint_of(&["tar", "-c", "/var/log/lightdm"]).is_empty());
        assert!(lint_of(&["tar", "-c", "var/log/lightdm"]).is_empty());
        assert_eq!(
            lint_of(&["tar", "-c", "var/lib"]),
            [(2, lints::DENIED_PATH)]
        );
    }

    #[test]
    fn a_command_of_many_long_relative_arguments_is_checked_in_linear_work() {
        // 240 arguments of 4 KiB against 16 directories: the product
        // automaton per deny pattern took minutes here; the regex set is
        // one pass per candidate.
        let started = std::time::Instant::now();
        let mut argv = vec!["ls"];
        let words: Vec<String> = (0..15).map(|i| format!("d{i}")).collect();
        argv.extend(words.iter().map(String::as_str));
        let long: Vec<String> = (0..240)
            .map(|i| format!("{}{i}", "a/".repeat(2000)))
            .collect();
        argv.extend(long.iter().map(String::as_str));
        assert!(lint_of(&argv).is_empty());
        println!(
            "256 long relative arguments linted in {:?}",
            started.elapsed()
        );
        let embedded = format!("x{}", "=/a".repeat(40));
        assert_eq!(lint_of(&["ls", &embedded]), [(1, lints::DENIED_PATH)]);
    }

    #[test]
    fn bus_clients_verbs_behind_options_dotdot_and_secret_prefixes_are_refused() {
        // A bus call to PID 1 is `systemd-run` by another name.
        let start_unit = [
            "busctl",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
        ];
        assert_eq!(lint_of(&start_unit), [(1, lints::STATE_CHANGING_COMMAND)]);
        assert!(lint_of(&["busctl", "status"]).is_empty());
        assert_eq!(
            lint_of(&[
                "dbus-send",
                "--system",
                "--print-reply",
                "--dest=x",
                "/",
                "y.z"
            ])
            .first(),
            Some(&(0, lints::PRIVILEGE_TOOL))
        );
        assert_eq!(
            lint_of(&["gdbus", "call", "--system"]).first(),
            Some(&(0, lints::PRIVILEGE_TOOL))
        );
        assert!(lint_of(&["loginctl", "list-seats", "--no-legend"]).is_empty());
        assert_eq!(
            lint_of(&["loginctl", "terminate-session", "2"]),
            [(1, lints::STATE_CHANGING_COMMAND)]
        );
        // `-p` takes a value: the verb is `poweroff`, not `status`.
        assert_eq!(
            lint_of(&["systemctl", "-p", "status", "poweroff"]),
            [(1, lints::STATE_CHANGING_COMMAND)]
        );
        assert!(lint_of(&["systemctl", "status", "--no-pager", "lightdm"]).is_empty());
        // `..` after a symlinked directory: `/var/run/..` is `/`.
        assert!(
            lint_of(&["cat", "var/run/../etc/shadow"]).contains(&(1, lints::NON_CANONICAL_PATH))
        );
        assert!(
            lint_of(&["cat", "-f/var/run/../etc/shadow"]).contains(&(1, lints::NON_CANONICAL_PATH))
        );
        // Secret options by prefix, and nmcli's password subcommand.
        for argv in [
            &["nmcli", "device", "wifi", "show-password"][..],
            &["nmcli", "--show-secr", "c", "s", "Home"],
            &["nmcli", "-show-secrets", "c", "s", "Home"],
        ] {
            assert!(
                lint_of(argv)
                    .iter()
                    .any(|(_, l)| *l == lints::SECRET_COMMAND),
                "{argv:?}"
            );
        }
    }

    #[test]
    fn relative_attached_and_embedded_secret_paths_in_arguments_are_refused() {
        // apportd runs commands in `/`: `ls etc/shadow` names /etc/shadow.
        assert_eq!(lint_of(&["ls", "etc/shadow"]), [(1, lints::DENIED_PATH)]);
        assert_eq!(
            lint_of(&["ls", "--", "root/.bashrc"]),
            [(2, lints::DENIED_PATH)]
        );
        // A bare word is a user or unit name more often than a path.
        assert!(lint_of(&["getent", "passwd", "root"]).is_empty());
        assert_eq!(
            lint_of(&["ls", "var/log/../../etc/gshadow"]),
            [(1, lints::NON_CANONICAL_PATH), (1, lints::DENIED_PATH)]
        );
        // A program that changes directory first (`tar -C /etc -c shadow`).
        assert_eq!(
            lint_of(&["ls", "-C", "/etc", "shadow"]),
            [(3, lints::DENIED_PATH)]
        );
        assert_eq!(
            lint_of(&["ls", "--directory=etc", "--file=shadow"]),
            [(2, lints::DENIED_PATH)]
        );
        // Values glued to a short option or behind a separator.
        assert_eq!(lint_of(&["ls", "-f/etc/shadow"]), [(1, lints::DENIED_PATH)]);
        assert_eq!(
            lint_of(&["ls", "file:///etc/shadow"]),
            [(1, lints::DENIED_PATH)]
        );
        assert_eq!(lint_of(&["ls", "@/etc/shadow"]), [(1, lints::DENIED_PATH)]);
        // Programs follow /var/run -> /run and /proc/self/root -> /.
        assert_eq!(
            lint_of(&["ls", "/var/run/credentials/x.service/token"]),
            [(1, lints::DENIED_PATH)]
        );
        assert_eq!(
            lint_of(&["ls", "/proc/self/root/etc/shadow"]),
            [(1, lints::DENIED_PATH)]
        );
        // Ordinary relative words stay fine.
        assert!(lint_of(&["ls", "-l", "lightdm", "/var/log"]).is_empty());
        assert!(lint_of(&["dpkg", "-l", "lightdm"]).is_empty());
        assert!(lint_of(&["ls", "/srv/root", "/var/log/root.log"]).is_empty());
    }
}
