//! Running one process for a step: own process group, no stdin, capped output,
//! killed with its whole group at the timeout, on cancellation or when dropped.

use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// Set to `true` to cancel the job a step belongs to.
pub type CancelSignal = watch::Receiver<bool>;

/// How a process's output is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// stdout and stderr share one pipe, in the order written (apport's
    /// `command_output` merges them the same way).
    Merged,
    /// stdout is the data; stderr (first 4 KiB) only explains failures.
    Separate,
}

/// Bytes of stderr kept in [`Streams::Separate`] mode.
const STDERR_KEEP: usize = 4096;

/// How a captured process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandEnd {
    /// It exited with this status.
    Exited(i32),
    /// It was killed by this signal (not by us).
    Signaled(i32),
    /// It ran past its timeout; its group was killed.
    TimedOut,
    /// Its output went past the cap; its group was killed.
    OverCap,
    /// The job was cancelled; its group was killed.
    Cancelled,
}

/// What a process wrote and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// stdout (and stderr when merged), at most the cap.
    pub output: Vec<u8>,
    /// The first bytes of stderr when captured separately.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub end: CommandEnd,
}

impl Captured {
    /// Output went past the cap and was cut.
    pub fn truncated(&self) -> bool {
        self.end == CommandEnd::OverCap
    }
}

/// Kills a process group when dropped, so a step future that is dropped (job
/// cancelled, caller gone) leaves no process behind. The group leader is not
/// reaped before this runs, so its id cannot have been reused.
struct GroupKiller(Option<Pid>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (group already gone) is the expected case.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

type Source = Pin<Box<dyn AsyncRead + Send>>;

/// Spawn `command` in its own process group with stdin `/dev/null` and capture
/// at most `max_bytes` of output within `timeout`.
///
/// The caller sets the program, arguments, environment and working directory.
pub async fn run_captured(
    command: std::process::Command,
    streams: Streams,
    max_bytes: u64,
    timeout: Duration,
    cancel: Option<CancelSignal>,
) -> std::io::Result<Captured> {
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(far_future);
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let (mut first, mut second): (Option<Source>, Option<Source>);
    let mut child = match streams {
        Streams::Merged => {
            let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            let write_clone: OwnedFd = write_end.try_clone()?;
            command
                .stdout(Stdio::from(write_end))
                .stderr(Stdio::from(write_clone));
            let child = command.spawn()?;
            // Our copies of the write end must go, or EOF never comes.
            drop(command);
            let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end)?;
            first = Some(Box::pin(receiver));
            second = None;
            child
        }
        Streams::Separate => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command.spawn()?;
            drop(command);
            first = child.stdout.take().map(|s| Box::pin(s) as Source);
            second = child.stderr.take().map(|s| Box::pin(s) as Source);
            child
        }
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut killer = GroupKiller(pgid);
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut output = Vec::new();
    let mut stderr = Vec::new();
    let mut buf_first = vec![0u8; 16 * 1024];
    let mut buf_second = vec![0u8; 4096];
    let mut cancel = cancel;
    let mut forced_end = None;
    while first.is_some() || second.is_some() {
        tokio::select! {
            read = read_some(&mut first, &mut buf_first) => match read {
                Some(chunk) => output.extend_from_slice(chunk),
                None => first = None,
            },
            read = read_some(&mut second, &mut buf_second) => match read {
                Some(chunk) => {
                    if streams == Streams::Merged || stderr.len() < STDERR_KEEP {
                        let target = if streams == Streams::Merged { &mut output } else { &mut stderr };
                        target.extend_from_slice(chunk);
                    }
                }
                None => second = None,
            },
            () = tokio::time::sleep_until(deadline) => { forced_end = Some(CommandEnd::TimedOut); break; }
            () = cancelled(&mut cancel) => { forced_end = Some(CommandEnd::Cancelled); break; }
        }
        if output.len() > cap {
            output.truncate(cap);
            forced_end = Some(CommandEnd::OverCap);
            break;
        }
    }
    stderr.truncate(STDERR_KEEP);
    if forced_end.is_none() {
        // The output is closed, but the process may still run.
        tokio::select! {
            () = exited_unreaped(pgid) => {
                // Kill stragglers that closed their output but kept running
                // while the leader is still an unreaped zombie: its id (the
                // group's) cannot have been reused yet. Reap only after.
                killer.kill();
                let status = child.wait().await?;
                return Ok(Captured { output, stderr, end: exit_end(status) });
            }
            () = tokio::time::sleep_until(deadline) => forced_end = Some(CommandEnd::TimedOut),
            () = cancelled(&mut cancel) => forced_end = Some(CommandEnd::Cancelled),
        }
    }
    killer.kill();
    child.wait().await?;
    Ok(Captured {
        output,
        stderr,
        end: forced_end.unwrap_or(CommandEnd::Cancelled),
    })
}

/// Resolves once process `pid` has exited, without reaping it (`WNOWAIT`):
/// until `Child::wait` reaps it, its pid and so its process group id stay
/// ours, and `killpg` cannot hit an unrelated group that reused the id.
async fn exited_unreaped(pid: Option<Pid>) {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    let Some(pid) = pid else {
        return std::future::pending().await;
    };
    let waiting = tokio::task::spawn_blocking(move || {
        while waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            == Err(nix::errno::Errno::EINTR)
        {}
    });
    let _ = waiting.await;
}

/// Read once from `source`; `None` at EOF or error, pending forever when there is no source.
async fn read_some<'a>(source: &mut Option<Source>, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    match source {
        Some(reader) => match reader.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => buf.get(..n),
        },
        None => std::future::pending().await,
    }
}

/// Resolves when the job is cancelled; never when there is no signal or its sender is gone.
pub async fn cancelled(cancel: &mut Option<CancelSignal>) {
    if let Some(receiver) = cancel
        && receiver.wait_for(|c| *c).await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

fn exit_end(status: ExitStatus) -> CommandEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => CommandEnd::Exited(code),
        (None, Some(signal)) => CommandEnd::Signaled(signal),
        (None, None) => CommandEnd::Exited(-1),
    }
}

fn far_future() -> Instant {
    Instant::now()
        .checked_add(Duration::from_secs(86_400 * 365))
        .unwrap_or_else(Instant::now)
}
