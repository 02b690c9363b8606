//! The per-step launcher: `apportd --internal-supervise PROGRAM ARGS…`.
//!
//! A process group is no boundary: a step's child that calls `setsid` (or
//! double-forks into a new session) leaves its group, and `killpg` at the
//! step's timeout misses it; it would run on as root, or as the user, long
//! after apportd reported the step finished. So every command step runs under
//! this launcher, which stays root and:
//!
//! - makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`): every
//!   orphaned descendant, whatever its session or group, is re-parented to it
//!   instead of to init, so the whole tree stays below it;
//! - closes every inherited descriptor but 0–2, spawns the program (for a user
//!   step: apportd's privilege-dropping helper, which becomes the user and
//!   execs the program) with stdin `/dev/null`;
//! - waits for the program to end, for `SIGTERM` from apportd (timeout, cancel,
//!   output cap), or for its stdin, a pipe apportd holds, to close (apportd
//!   gone);
//! - then kills the whole descendant tree, not just the program: every
//!   process whose parent chain leads here is stopped (`SIGSTOP`, top down, so
//!   none can fork or reap any more) and then killed (`SIGKILL`), and this
//!   repeats until `waitpid` says there are no children left (`ECHILD`). A
//!   fork racing the kill only adds a child that is re-parented here and
//!   killed in the next round; with no child left there is no descendant
//!   left. Signals go through a pidfd taken before the process's parent is
//!   checked, so a pid that was reused in between is never signalled;
//! - exits the way the program ended (its exit code, or the same signal).
//!
//! So a step ends only when all its processes are gone, and a background
//! process a step leaves behind (`setsid sleep 1000 &`) is killed when the
//! step's program exits, like everything else in the tree.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::principal::{close_inherited_fds, exit};

/// First argument that turns `apportd` into the per-step launcher.
pub const SUPERVISE_ARG: &str = "--internal-supervise";

/// Signals that ask the launcher to end the step (apportd sends `SIGTERM`).
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The body of `apportd --internal-supervise PROGRAM ARGS…`.
pub fn supervise_main(args: &[OsString]) -> ExitCode {
    let Some((program, program_args)) = args.split_first() else {
        say("apportd: internal launcher called wrongly");
        return ExitCode::from(exit::USAGE);
    };
    close_inherited_fds();
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        say(&format!("apportd: cannot become a child subreaper: {e}"));
        return ExitCode::from(exit::DROP_FAILED);
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for signal in STOP_SIGNALS {
        mask.add(signal);
    }
    // Blocked here and read from a signalfd; the standard library clears the
    // mask in the child before exec, so the program starts with none blocked.
    let signals = match mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK))
    {
        Ok(fd) => fd,
        Err(e) => {
            say(&format!("apportd: cannot set up the step launcher: {e}"));
            return ExitCode::from(exit::DROP_FAILED);
        }
    };
    let child = match Command::new(program)
        .args(program_args)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            say(&format!(
                "apportd: cannot run {}: {e}",
                std::path::Path::new(program).display()
            ));
            return ExitCode::from(exit::EXEC_FAILED);
        }
    };
    let main = i32::try_from(child.id()).map_or(Pid::from_raw(0), Pid::from_raw);
    // `child` is never waited through std: this process reaps every child itself.
    drop(child);
    let ended = wait_for_end(&signals, main);
    kill_descendants();
    match ended {
        Some(status) => exit_like(status),
        // Stopped by apportd: the step's result is decided there.
        None => ExitCode::from(exit::STOPPED),
    }
}

/// Wait until `main` ends (its status) or apportd asks to stop (`None`).
fn wait_for_end(signals: &SignalFd, main: Pid) -> Option<ExitStatus> {
    let stdin = std::io::stdin();
    // Only a pipe is a control channel; anything else (a terminal, /dev/null
    // when run by hand) is not watched.
    let control = nix::sys::stat::fstat(stdin.as_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    loop {
        // Reap whatever ended (orphans re-parented here included).
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) if status.pid() == Some(main) => return Some(to_exit_status(status)),
                Ok(_) | Err(Errno::EINTR) => {}
                // No child at all: main was reaped (cannot happen) or never ran.
                Err(_) => return Some(ExitStatus::from_raw(exit_code_raw(exit::EXEC_FAILED))),
            }
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if control {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return None,
        }
        let control_closed = fds
            .get(1)
            .and_then(PollFd::revents)
            .is_some_and(|r| !r.is_empty());
        if control_closed {
            return None;
        }
        while let Ok(Some(info)) = signals.read_signal() {
            let stop = i32::try_from(info.ssi_signo)
                .ok()
                .and_then(|n| Signal::try_from(n).ok())
                .is_some_and(|s| STOP_SIGNALS.contains(&s));
            if stop {
                return None;
            }
        }
    }
}

/// Kill every descendant of this process and reap them all, until no child
/// is left. Returns once `waitpid` answers `ECHILD`.
pub fn kill_descendants() {
    let me = std::process::id();
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return, // ECHILD: no child, so no descendant.
            }
        }
        let tree = descendants(me);
        // Top down: a stopped parent can neither fork nor reap, so the pids
        // found below it stay theirs until they are killed.
        for &(pid, parent) in &tree {
            signal_descendant(pid, parent, Signal::SIGSTOP);
        }
        for &(pid, parent) in &tree {
            signal_descendant(pid, parent, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Signal `pid` only if its parent is still `parent`: the process is pinned
/// by a pidfd first and its parent checked after, so a pid reused in between
/// is left alone.
fn signal_descendant(pid: u32, parent: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    match crate::sys::pidfd_open(raw) {
        Ok(Some(pidfd)) => {
            if stat_of(pid).is_some_and(|s| s.ppid == parent) {
                let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), signal as i32);
            }
        }
        // No pidfds on this kernel: check, then signal by pid.
        Ok(None) => {
            if stat_of(pid).is_some_and(|s| s.ppid == parent) {
                let _ = nix::sys::signal::kill(Pid::from_raw(raw), signal);
            }
        }
        Err(_) => {} // Gone already.
    }
}

/// Every descendant of `root` as `(pid, parent)`, parents before their children.
pub fn descendants(root: u32) -> Vec<(u32, u32)> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(stat) = stat_of(pid) {
                children.entry(stat.ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = Vec::new();
    let mut queue = VecDeque::from([root]);
    while let Some(parent) = queue.pop_front() {
        for &child in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
            // A pid cannot be its own ancestor; the bound guards a torn read.
            if tree.len() < 1_000_000 && child != root {
                tree.push((child, parent));
                queue.push_back(child);
            }
        }
    }
    tree
}

/// What this module reads from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `T`, `Z`, …).
    pub state: char,
    /// The parent's pid.
    pub ppid: u32,
    /// The session id.
    pub session: u32,
}

/// `/proc/PID/stat` of `pid`, if it exists and parses.
pub fn stat_of(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parse a `/proc/PID/stat` line. The command name is in parentheses and may
/// itself hold `)` and spaces, so fields are counted after the last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let after = line.get(line.rfind(')')?.checked_add(1)?..)?;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let session = fields.next()?.parse().ok()?;
    Some(ProcStat {
        state,
        ppid,
        session,
    })
}

fn to_exit_status(status: WaitStatus) -> ExitStatus {
    match status {
        WaitStatus::Exited(_, code) => ExitStatus::from_raw((code & 0xff) << 8),
        WaitStatus::Signaled(_, signal, _) => ExitStatus::from_raw(signal as i32),
        _ => ExitStatus::from_raw(exit_code_raw(exit::EXEC_FAILED)),
    }
}

fn exit_code_raw(code: u8) -> i32 {
    i32::from(code) << 8
}

/// End this process the way the program ended: same exit code, or killed
/// by the same signal (core dumps off), so apportd tells them apart as before.
fn exit_like(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(exit::EXEC_FAILED));
    }
    if let Some(signal) = status.signal().and_then(|s| Signal::try_from(s).ok()) {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
        let mut only = SigSet::empty();
        only.add(signal);
        let _ = only.thread_unblock();
        let _ = nix::sys::signal::raise(signal);
        // Still here: a signal whose default is not to terminate.
        let code = 128u8.saturating_add(u8::try_from(signal as i32).unwrap_or(0));
        return ExitCode::from(code);
    }
    ExitCode::from(exit::EXEC_FAILED)
}

/// Best effort: stderr is the step's output pipe and may be closed.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stat_lines_parse_after_the_last_parenthesis() {
        let line = "4242 (we ird) (x) S 17 4242 4242 0 -1 4194560 100 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                ppid: 17,
                session: 4242
            })
        );
        assert_eq!(parse_stat("12 (sh) Z"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_parent_and_is_nobodys_descendant_of_itself() {
        let me = std::process::id();
        let stat = stat_of(me).unwrap();
        assert_eq!(stat.ppid, std::os::unix::process::parent_id());
        assert!(descendants(me).iter().all(|(pid, _)| *pid != me));
    }
}
