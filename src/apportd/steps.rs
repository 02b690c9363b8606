//! One hook step → report fields, with the privileges, caps and timeout it asks for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::time::Instant;

use super::command::{CancelSignal, Captured, CommandEnd, STOP_GRACE, Streams, run_captured};
use super::glob::{GlobMatches, expand, path_to_key};
use super::limits::CONFFILE_HASH_CAP;
use super::principal::{Launcher, Principal, exit, file_error_from_exit, resolve_program};
use super::safe_file::{FileContents, FileError, read_file};
use crate::hook::denylist::is_denied_path;
use crate::hook::{Action, JournalQuery, Step};

/// At most this many conffiles of one package are checked.
const MAX_CONFFILES: usize = 1000;
/// Bytes of a helper's `glob` output allowed per match (a path plus NUL).
const GLOB_BYTES_PER_MATCH: u64 = 4097;

/// What a step runs with.
#[derive(Debug, Clone)]
pub struct StepEnv<'a> {
    /// Builds the step's processes.
    pub launcher: &'a Launcher,
    /// Whose privileges the step has (already authorized).
    pub principal: &'a Principal,
    /// Bound on one glob step's files.
    pub max_glob_matches: usize,
    /// Cancels the step's job.
    pub cancel: Option<CancelSignal>,
}

/// The effective caps of one step: its own, narrowed by what the job has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCaps {
    /// Bytes of values the step may produce.
    pub max_bytes: u64,
    /// Time the step may take.
    pub timeout: Duration,
}

/// What a successful step produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Collected {
    /// New report fields, in order.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Some output was cut at the byte cap.
    pub truncated: bool,
    /// A note for the status dict (never a value).
    pub note: Option<String>,
}

impl Collected {
    /// Bytes of values produced.
    pub fn bytes(&self) -> u64 {
        self.fields
            .iter()
            .map(|(_, v)| u64::try_from(v.len()).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add)
    }
}

/// Why a step produced nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepFailure {
    /// An optional file is absent (not an error, no field).
    #[error("optional file is absent")]
    Missing,
    /// The step asked for something apportd refuses (symlink, FIFO, device, `..`, unknown command).
    #[error("refused: {0}")]
    Refused(String),
    /// The step failed.
    #[error("failed: {0}")]
    Failed(String),
    /// The step ran past its timeout and was killed with its process group.
    #[error("timed out after {0} s; its processes were killed")]
    TimedOut(u64),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Run `step` under `env` within `caps`.
pub async fn run_step(
    env: &StepEnv<'_>,
    step: &Step,
    caps: StepCaps,
) -> Result<Collected, StepFailure> {
    let deadline = Instant::now()
        .checked_add(caps.timeout)
        .unwrap_or_else(Instant::now);
    let work = collect(env, step, caps.max_bytes, deadline);
    // The step's processes stop themselves at `deadline` and are waited for
    // until all of them are gone; this outer bound is only a backstop (a
    // root file read stuck in the kernel), so it leaves them time to.
    let backstop = deadline
        .checked_add(STOP_GRACE.saturating_add(Duration::from_secs(1)))
        .unwrap_or(deadline);
    match tokio::time::timeout_at(backstop, work).await {
        // Report the timeout the step had: the process path only knows its
        // deadline, by then 0 s away.
        Ok(Err(StepFailure::TimedOut(_))) | Err(_) => {
            Err(StepFailure::TimedOut(caps.timeout.as_secs()))
        }
        Ok(result) => result,
    }
}

async fn collect(
    env: &StepEnv<'_>,
    step: &Step,
    max_bytes: u64,
    deadline: Instant,
) -> Result<Collected, StepFailure> {
    match &step.action {
        Action::File(path) => match read_as(env, Path::new(path), max_bytes, deadline).await {
            Ok(contents) => Ok(Collected {
                fields: vec![(step.key.clone(), contents.bytes)],
                truncated: contents.truncated,
                note: None,
            }),
            Err(Failure::File(FileError::NotFound { .. })) if step.optional => {
                Err(StepFailure::Missing)
            }
            Err(failure) => Err(failure.into()),
        },
        Action::Glob(pattern) => {
            glob_step(env, step, Path::new(pattern), max_bytes, deadline).await
        }
        Action::Command(argv) => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| StepFailure::Refused("empty command".into()))?;
            command_step(env, step, program, args, max_bytes, deadline).await
        }
        Action::Journal(query) => {
            let argv = journal_argv(query);
            command_step(env, step, "journalctl", &argv, max_bytes, deadline).await
        }
        Action::PackageVersions(patterns) => {
            let argv = package_versions_argv(patterns);
            command_step(env, step, "dpkg-query", &argv, max_bytes, deadline).await
        }
        Action::Conffiles(package) => conffiles_step(env, step, package, max_bytes, deadline).await,
    }
}

/// `journalctl` arguments for a query; values are passed as `--opt=value` so
/// none can be taken for an option.
pub fn journal_argv(query: &JournalQuery) -> Vec<String> {
    let mut argv = vec![
        "--no-pager".to_owned(),
        "-o".to_owned(),
        "short-iso".to_owned(),
    ];
    if let Some(unit) = &query.unit {
        argv.push(format!("--unit={unit}"));
    }
    if let Some(priority) = &query.priority {
        argv.push(format!("--priority={priority}"));
    }
    if let Some(lines) = query.lines {
        argv.push(format!("--lines={lines}"));
    }
    if let Some(grep) = &query.grep {
        argv.push(format!("--grep={grep}"));
    }
    if query.this_boot {
        argv.push("--boot".to_owned());
    }
    argv
}

/// `dpkg-query` arguments listing `name version` for each matching package.
pub fn package_versions_argv(patterns: &[String]) -> Vec<String> {
    let mut argv = vec![
        "-W".to_owned(),
        "--showformat=${binary:Package} ${Version}\\n".to_owned(),
        "--".to_owned(),
    ];
    argv.extend(patterns.iter().cloned());
    argv
}

enum Failure {
    File(FileError),
    Step(StepFailure),
}

impl From<Failure> for StepFailure {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Step(step) => step,
            Failure::File(FileError::Io { .. } | FileError::NotFound { .. }) => {
                StepFailure::Failed(file_failure_text(&failure))
            }
            Failure::File(_) => StepFailure::Refused(file_failure_text(&failure)),
        }
    }
}

fn file_failure_text(failure: &Failure) -> String {
    match failure {
        Failure::File(e) => e.to_string(),
        Failure::Step(e) => e.to_string(),
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn process_failure(end: CommandEnd, deadline: Instant) -> Option<StepFailure> {
    match end {
        CommandEnd::TimedOut => Some(StepFailure::TimedOut(remaining(deadline).as_secs())),
        CommandEnd::Cancelled => Some(StepFailure::Cancelled),
        _ => None,
    }
}

/// Read a file with the principal's own privileges.
///
/// Every path actually read (a file step's, each glob match, each conffile) is
/// checked against the linter's deny-list of secret locations first: the
/// server lints hooks, but a compromised server or signing key must still not
/// get `/etc/shadow` or `~/.ssh` out of a machine.
async fn read_as(
    env: &StepEnv<'_>,
    path: &Path,
    max_bytes: u64,
    deadline: Instant,
) -> Result<FileContents, Failure> {
    if path.to_str().is_none_or(is_denied_path) {
        return Err(Failure::Step(StepFailure::Refused(format!(
            "{}: on the deny-list of secret locations",
            path.display()
        ))));
    }
    match env.principal {
        Principal::Root => {
            let owned = path.to_path_buf();
            tokio::task::spawn_blocking(move || read_file(&owned, max_bytes))
                .await
                .map_err(|e| Failure::Step(StepFailure::Failed(format!("reader: {e}"))))?
                .map_err(Failure::File)
        }
        Principal::User(user) => {
            let mut command = env.launcher.helper_command(user, "read");
            command.arg(max_bytes.to_string()).arg(path);
            let (bytes, truncated) =
                helper_output(env, command, max_bytes, deadline, path, "file reader").await?;
            Ok(FileContents { truncated, bytes })
        }
    }
}

async fn glob_as(
    env: &StepEnv<'_>,
    pattern: &Path,
    deadline: Instant,
) -> Result<GlobMatches, Failure> {
    let max = env.max_glob_matches;
    match env.principal {
        Principal::Root => {
            let owned = pattern.to_path_buf();
            tokio::task::spawn_blocking(move || expand(&owned, max))
                .await
                .map_err(|e| Failure::Step(StepFailure::Failed(format!("glob: {e}"))))?
                .map_err(Failure::File)
        }
        Principal::User(user) => {
            let mut command = env.launcher.helper_command(user, "glob");
            command.arg(max.to_string()).arg(pattern);
            let cap = GLOB_BYTES_PER_MATCH.saturating_mul(u64::try_from(max).unwrap_or(u64::MAX));
            let (output, truncated) =
                helper_output(env, command, cap, deadline, pattern, "glob helper").await?;
            use std::os::unix::ffi::OsStrExt;
            let paths = output
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
                .collect();
            Ok(GlobMatches { paths, truncated })
        }
    }
}

/// The failure a privilege-dropping helper reported: its exit code names a file
/// error (see `principal::exit`); anything else (a signal, the deadline) is a
/// step failure.
/// Run a file or glob helper: its output and whether it stopped at its cap,
/// or the failure its exit stands for.
async fn helper_output(
    env: &StepEnv<'_>,
    command: std::process::Command,
    cap: u64,
    deadline: Instant,
    path: &Path,
    what: &str,
) -> Result<(Vec<u8>, bool), Failure> {
    let captured = helper(env, command, cap, deadline).await?;
    match captured.end {
        CommandEnd::Exited(code)
            if code == i32::from(exit::OK) || code == i32::from(exit::TRUNCATED) =>
        {
            Ok((captured.output, code == i32::from(exit::TRUNCATED)))
        }
        other => Err(helper_failure(other, path, &captured.stderr, what)),
    }
}

fn helper_failure(end: CommandEnd, path: &Path, stderr: &[u8], what: &str) -> Failure {
    match end {
        CommandEnd::Exited(code) => Failure::File(file_error_from_exit(code, path, stderr)),
        other => Failure::Step(StepFailure::Failed(format!(
            "{what} ended abnormally: {other:?}"
        ))),
    }
}

async fn helper(
    env: &StepEnv<'_>,
    command: std::process::Command,
    cap: u64,
    deadline: Instant,
) -> Result<Captured, Failure> {
    let captured = run_captured(
        command,
        Streams::Separate,
        cap,
        remaining(deadline),
        env.cancel.clone(),
    )
    .await
    .map_err(|e| Failure::Step(StepFailure::Failed(format!("cannot start helper: {e}"))))?;
    if let Some(failure) = process_failure(captured.end, deadline) {
        return Err(Failure::Step(failure));
    }
    if captured.end == CommandEnd::Exited(i32::from(exit::DROP_FAILED)) {
        return Err(Failure::Step(StepFailure::Failed(
            String::from_utf8_lossy(&captured.stderr).trim().to_owned(),
        )));
    }
    Ok(captured)
}

async fn glob_step(
    env: &StepEnv<'_>,
    step: &Step,
    pattern: &Path,
    max_bytes: u64,
    deadline: Instant,
) -> Result<Collected, StepFailure> {
    let matches = glob_as(env, pattern, deadline)
        .await
        .map_err(StepFailure::from)?;
    if matches.paths.is_empty() {
        return Err(StepFailure::Missing);
    }
    let mut collected = Collected {
        truncated: matches.truncated,
        ..Collected::default()
    };
    let mut skipped = Vec::new();
    let mut used = 0u64;
    for path in &matches.paths {
        let left = max_bytes.saturating_sub(used);
        if left == 0 {
            collected.truncated = true;
            break;
        }
        use std::os::unix::ffi::OsStrExt;
        let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        let mut key = format!("{}.{}", step.key, path_to_key(name));
        if collected.fields.iter().any(|(k, _)| *k == key) {
            let full = path.as_os_str().as_bytes();
            key = format!(
                "{}.{}",
                step.key,
                path_to_key(full.strip_prefix(b"/").unwrap_or(full))
            );
        }
        match read_as(env, path, left, deadline).await {
            Ok(contents) => {
                used = used.saturating_add(u64::try_from(contents.bytes.len()).unwrap_or(u64::MAX));
                collected.truncated |= contents.truncated;
                collected.fields.push((key, contents.bytes));
            }
            Err(Failure::Step(StepFailure::Refused(why))) => skipped.push(why),
            Err(Failure::Step(failure)) => return Err(failure),
            // A file that vanished or changed type since the walk is left out.
            Err(Failure::File(e)) => skipped.push(format!("{}: {}", path.display(), e.kind())),
        }
    }
    if !skipped.is_empty() {
        collected.note = Some(format!("skipped {}", skipped.join(", ")));
    }
    Ok(collected)
}

async fn command_step(
    env: &StepEnv<'_>,
    step: &Step,
    program: &str,
    args: &[String],
    max_bytes: u64,
    deadline: Instant,
) -> Result<Collected, StepFailure> {
    let resolved = resolve_program(program)
        .ok_or_else(|| StepFailure::Refused(format!("{program}: not found in the fixed PATH")))?;
    let command = env.launcher.command(env.principal, &resolved, args);
    let captured = run_captured(
        command,
        Streams::Merged,
        max_bytes,
        remaining(deadline),
        env.cancel.clone(),
    )
    .await
    .map_err(|e| StepFailure::Failed(format!("cannot start {program}: {e}")))?;
    if let Some(failure) = process_failure(captured.end, deadline) {
        return Err(failure);
    }
    let truncated = captured.truncated();
    let value = match captured.end {
        CommandEnd::Exited(0) | CommandEnd::OverCap => trim_ascii(captured.output),
        CommandEnd::Exited(code) => {
            if matches!(env.principal, Principal::User(_))
                && code == i32::from(exit::DROP_FAILED)
                && captured
                    .output
                    .starts_with(b"apportd: cannot drop privileges")
            {
                return Err(StepFailure::Failed(
                    String::from_utf8_lossy(&captured.output).trim().to_owned(),
                ));
            }
            // apport's command_output keeps a failing command's output, prefixed.
            let mut value =
                format!("Error: command {program} failed with exit code {code}: ").into_bytes();
            value.extend_from_slice(&captured.output);
            value
        }
        CommandEnd::Signaled(signal) => {
            let mut value =
                format!("Error: command {program} was killed by signal {signal}: ").into_bytes();
            value.extend_from_slice(&captured.output);
            value
        }
        CommandEnd::TimedOut | CommandEnd::Cancelled => return Err(StepFailure::Cancelled),
    };
    let mut value = value;
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let truncated = truncated || value.len() > cap;
    value.truncate(cap);
    Ok(Collected {
        fields: vec![(step.key.clone(), value)],
        truncated,
        note: None,
    })
}

fn trim_ascii(bytes: Vec<u8>) -> Vec<u8> {
    bytes.trim_ascii().to_vec()
}

async fn conffiles_step(
    env: &StepEnv<'_>,
    step: &Step,
    package: &str,
    max_bytes: u64,
    deadline: Instant,
) -> Result<Collected, StepFailure> {
    let program = resolve_program("dpkg-query")
        .ok_or_else(|| StepFailure::Refused("dpkg-query: not found in the fixed PATH".into()))?;
    let args = vec![
        "-W".to_owned(),
        "--showformat=${Conffiles}\\n".to_owned(),
        "--".to_owned(),
        package.to_owned(),
    ];
    let command = env.launcher.command(env.principal, &program, &args);
    let cap = 1024u64.saturating_mul(u64::try_from(MAX_CONFFILES).unwrap_or(u64::MAX));
    let captured = run_captured(
        command,
        Streams::Separate,
        cap,
        remaining(deadline),
        env.cancel.clone(),
    )
    .await
    .map_err(|e| StepFailure::Failed(format!("cannot start dpkg-query: {e}")))?;
    if let Some(failure) = process_failure(captured.end, deadline) {
        return Err(failure);
    }
    if captured.end != CommandEnd::Exited(0) {
        return Err(StepFailure::Failed(format!(
            "dpkg-query: {}",
            String::from_utf8_lossy(&captured.stderr).trim()
        )));
    }
    let mut summary = String::new();
    let mut collected = Collected::default();
    let mut used = 0u64;
    for (path, md5sum) in parse_conffiles(&captured.output)
        .into_iter()
        .take(MAX_CONFFILES)
    {
        let state = match read_as(env, Path::new(&path), CONFFILE_HASH_CAP, deadline).await {
            Ok(contents) if contents.truncated => "too large to check".to_owned(),
            Ok(contents) => {
                if hex::encode(Md5::digest(&contents.bytes)) == md5sum {
                    continue;
                }
                let left = usize::try_from(max_bytes.saturating_sub(used)).unwrap_or(usize::MAX);
                let mut value = contents.bytes;
                if value.len() > left {
                    value.truncate(left);
                    collected.truncated = true;
                }
                used = used.saturating_add(u64::try_from(value.len()).unwrap_or(u64::MAX));
                let full = path.strip_prefix('/').unwrap_or(&path);
                collected.fields.push((
                    format!("{}.{}", step.key, path_to_key(full.as_bytes())),
                    value,
                ));
                "modified".to_owned()
            }
            Err(Failure::File(FileError::NotFound { .. })) => "deleted".to_owned(),
            Err(Failure::File(e)) => format!("inaccessible ({})", e.kind()),
            Err(Failure::Step(StepFailure::Refused(_))) => "not read (deny-listed)".to_owned(),
            Err(Failure::Step(failure)) => return Err(failure),
        };
        summary.push_str(&format!("{path}: {state}\n"));
    }
    if summary.is_empty() {
        summary.push_str("no modified conffiles\n");
    }
    collected
        .fields
        .insert(0, (step.key.clone(), summary.into_bytes()));
    Ok(collected)
}

/// `(path, md5)` of each current conffile in `dpkg-query -f '${Conffiles}'` output.
pub fn parse_conffiles(output: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(output)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let path = words.next()?;
            let md5sum = words.next()?;
            let flags: Vec<&str> = words.collect();
            (path.starts_with('/')
                && md5sum.len() == 32
                && !flags.contains(&"obsolete")
                && !flags.contains(&"newconffile"))
            .then(|| (path.to_owned(), md5sum.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_values_cannot_become_options() {
        let argv = journal_argv(&JournalQuery {
            unit: Some("-x".into()),
            priority: Some("err".into()),
            lines: Some(50),
            grep: Some("fail".into()),
            this_boot: true,
        });
        assert_eq!(
            argv,
            [
                "--no-pager",
                "-o",
                "short-iso",
                "--unit=-x",
                "--priority=err",
                "--lines=50",
                "--grep=fail",
                "--boot"
            ]
        );
    }

    #[test]
    fn conffiles_listing_skips_obsolete_and_new() {
        let out = b" /etc/a.conf 0123456789abcdef0123456789abcdef\n /etc/b 0123456789abcdef0123456789abcdef obsolete\n /etc/c newconffile\n\n";
        assert_eq!(
            parse_conffiles(out),
            [(
                "/etc/a.conf".to_owned(),
                "0123456789abcdef0123456789abcdef".to_owned()
            )]
        );
    }
}
