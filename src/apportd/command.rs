//! Running one process for a step: own process group, a control pipe as
//! stdin, capped output, stopped with its whole process tree at the timeout,
//! on cancellation or when dropped.

use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill, killpg};
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

/// How long a stopped step's launcher gets to kill its process tree before
/// its process group is killed outright.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A spawned step process (the step launcher, or a user file helper) until
/// it is reaped.
///
/// Its stdin is a pipe only this struct holds the write end of: closing it
/// (or `SIGTERM`) asks the launcher to kill the step's whole process tree
/// (see [`subreaper`](super::subreaper)). The process is its own group
/// leader and is reaped only after its group was killed, so neither its pid
/// nor its group id can have been reused when they are signalled. A dropped
/// step future (job cancelled, caller gone) still stops and reaps it, on a
/// background task.
struct Running {
    child: Option<tokio::process::Child>,
    pid: Option<Pid>,
    control: Option<OwnedFd>,
}

impl Running {
    /// Ask the process to stop its step: close its control pipe, send `SIGTERM`.
    fn ask_to_stop(&mut self) {
        self.control = None;
        if let Some(pid) = self.pid {
            // The process is not reaped yet: this pid is still ours.
            let _ = kill(pid, Signal::SIGTERM);
        }
    }

    /// End the process: if `stop`, ask it to stop and give it [`STOP_GRACE`]
    /// to exit; then kill its group (stragglers) while it is still unreaped,
    /// and reap it.
    async fn finish(&mut self, stop: bool) -> std::io::Result<ExitStatus> {
        if stop {
            self.ask_to_stop();
            let _ = tokio::time::timeout(STOP_GRACE, exited_unreaped(self.pid)).await;
        }
        kill_group(self.pid);
        self.control = None;
        match self.child.take() {
            Some(mut child) => child.wait().await,
            None => Err(std::io::Error::other("process already reaped")),
        }
    }
}

fn kill_group(pgid: Option<Pid>) {
    if let Some(pgid) = pgid {
        // ESRCH (group already gone) is the expected case.
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.ask_to_stop();
        let pid = self.pid;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(STOP_GRACE, exited_unreaped(pid)).await;
                    kill_group(pid);
                    let _ = child.wait().await;
                });
            }
            // No runtime to wait on: kill the group now; tokio reaps the
            // orphaned child when it can.
            Err(_) => kill_group(pid),
        }
    }
}

type Source = Pin<Box<dyn AsyncRead + Send>>;

/// Spawn `command` in its own process group and capture at most
/// `max_bytes` of output within `timeout`.
///
/// The caller sets the program, arguments, environment and working
/// directory. stdin is a control pipe: step commands run under the step
/// launcher, which gives the program `/dev/null` and stops the whole process
/// tree when the pipe closes or on `SIGTERM`.
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
    let (control_read, control_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    command
        .stdin(Stdio::from(control_read))
        .process_group(0)
        .kill_on_drop(false);
    let (mut first, mut second): (Option<Source>, Option<Source>);
    let child = match streams {
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
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut running = Running {
        child: Some(child),
        pid,
        control: Some(control_write),
    };
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
            () = exited_unreaped(pid) => {
                // Kill stragglers of its group that closed their output but
                // kept running, while the leader is still an unreaped zombie:
                // its id (the group's) cannot have been reused yet. Reap only after.
                let status = running.finish(false).await?;
                return Ok(Captured { output, stderr, end: exit_end(status) });
            }
            () = tokio::time::sleep_until(deadline) => forced_end = Some(CommandEnd::TimedOut),
            () = cancelled(&mut cancel) => forced_end = Some(CommandEnd::Cancelled),
        }
    }
    // Drop our read ends first: a tree blocked writing to a full pipe gets
    // EPIPE instead of waiting for a reader that is gone.
    drop((first, second));
    running.finish(true).await?;
    Ok(Captured {
        output,
        stderr,
        end: forced_end.unwrap_or(CommandEnd::Cancelled),
    })
}

/// Resolves once process `pid` has exited, without reaping it: until
/// `Child::wait` reaps it, its pid and so its process group id stay ours, and
/// `killpg` cannot hit an unrelated group that reused the id.
///
/// Waits on a pidfd (readable once the process has exited) on the runtime
/// itself; only kernels without pidfds use a blocking `waitid(WNOWAIT)` thread.
async fn exited_unreaped(pid: Option<Pid>) {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    let Some(pid) = pid else {
        return std::future::pending().await;
    };
    // tokio deprecates its safe AsyncFd constructors for borrowed descriptors
    // that may be closed under the registration; this one is an OwnedFd the
    // AsyncFd itself owns, so that cannot happen.
    #[allow(deprecated)]
    let watch = crate::sys::pidfd_open(pid.as_raw())
        .ok()
        .flatten()
        .and_then(|pidfd| {
            tokio::io::unix::AsyncFd::with_interest(pidfd, tokio::io::Interest::READABLE).ok()
        });
    if let Some(watch) = watch {
        let _ = watch.readable().await;
        return;
    }
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
