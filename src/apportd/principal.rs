//! Whose privileges a step runs with, and how a user step gets them.
//!
//! A user step must never be root acting on the user's behalf: apport's
//! root-reads-for-the-user bugs (CVE-2021-32547…32555) came from exactly that.
//! So everything a user step does, commands *and* file reads, happens in a
//! process that has already become the user: apportd re-executes itself with
//! the hidden first argument [`DROP_PRIVILEGES_ARG`], that process sets the
//! supplementary groups, gid and uid (in that order, all three real, effective
//! and saved), checks that root cannot be regained, sets `no_new_privs`, and
//! only then execs the step's command or does the read, streaming bytes back
//! over a pipe. No `pre_exec` closure (and so no `unsafe`) is needed, and the
//! standard library's `CommandExt::groups` (unstable) is not either.

use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use nix::unistd::{Gid, Uid, User};

use super::limits::FIXED_PATH;
use super::safe_file::{FileError, read_file};

/// First argument that turns `apportd` into the privilege-dropping helper.
pub const DROP_PRIVILEGES_ARG: &str = "--internal-drop-privileges";

pub use super::subreaper::SUPERVISE_ARG;

/// The launcher executable apportd prefers, installed next to it.
pub const LAUNCHER_EXE: &str = "apportd-launch";

/// The helper's exit codes (and how the parent reads them back).
pub mod exit {
    /// The read or glob finished and was complete.
    pub const OK: u8 = 0;
    /// The read or glob hit its cap.
    pub const TRUNCATED: u8 = 10;
    /// `FileError::BadPath`.
    pub const BAD_PATH: u8 = 20;
    /// `FileError::Symlink`.
    pub const SYMLINK: u8 = 21;
    /// `FileError::NotRegular`.
    pub const NOT_REGULAR: u8 = 22;
    /// `FileError::NotFound`.
    pub const NOT_FOUND: u8 = 23;
    /// `FileError::Io`.
    pub const IO: u8 = 24;
    /// Dropping privileges failed: nothing was run.
    pub const DROP_FAILED: u8 = 30;
    /// The helper was called wrongly.
    pub const USAGE: u8 = 31;
    /// The step launcher was told to stop (timeout, cancel, cap) and killed the step's processes.
    pub const STOPPED: u8 = 32;
    /// `exec` of the step's command failed.
    pub const EXEC_FAILED: u8 = 127;
}

/// A non-root user a step runs as: the report's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCreds {
    /// The user's uid (never 0).
    pub uid: u32,
    /// The user's primary gid.
    pub gid: u32,
    /// All the user's groups, as `initgroups` would set them.
    pub groups: Vec<u32>,
    /// The login name.
    pub name: String,
    /// The home directory.
    pub home: PathBuf,
}

/// The account that runs the user steps of a root-owned report.
pub const NOBODY: &str = "nobody";

/// Why a user's credentials could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    /// No passwd entry.
    #[error("uid {0} has no passwd entry; a report owned by an unknown uid cannot run user steps")]
    UnknownUser(u32),
    /// uid 0 is never a user principal.
    #[error("uid 0 is root, never a user step's principal")]
    Root,
    /// No unprivileged account for the user steps of a root-owned report.
    #[error("no `{NOBODY}` account: user steps of a root-owned report have nobody to run as")]
    NoNobody,
    /// NSS lookup failed.
    #[error("looking up uid {uid}: {source}")]
    Lookup {
        /// The uid.
        uid: u32,
        /// What failed.
        source: nix::Error,
    },
}

impl UserCreds {
    /// Look up `uid` in NSS, with its supplementary groups.
    pub fn for_uid(uid: u32) -> Result<Self, PrincipalError> {
        if uid == 0 {
            return Err(PrincipalError::Root);
        }
        let user = User::from_uid(Uid::from_raw(uid))
            .map_err(|source| PrincipalError::Lookup { uid, source })?
            .ok_or(PrincipalError::UnknownUser(uid))?;
        let name =
            CString::new(user.name.as_bytes()).map_err(|_| PrincipalError::UnknownUser(uid))?;
        let groups = nix::unistd::getgrouplist(&name, user.gid)
            .map_err(|source| PrincipalError::Lookup { uid, source })?;
        Ok(UserCreds {
            uid,
            gid: user.gid.as_raw(),
            groups: groups.into_iter().map(Gid::as_raw).collect(),
            name: user.name,
            home: user.dir,
        })
    }

    /// The unprivileged account ([`NOBODY`]) that runs the user steps of
    /// a root-owned report: "as the report's owner" would be root there,
    /// and user steps are reviewed and linted as unprivileged work (they
    /// may read where users write, which root must not).
    pub fn nobody() -> Result<Self, PrincipalError> {
        let user = User::from_name(NOBODY)
            .ok()
            .flatten()
            .ok_or(PrincipalError::NoNobody)?;
        match user.uid.as_raw() {
            0 => Err(PrincipalError::NoNobody),
            uid => Self::for_uid(uid),
        }
    }

    /// The environment of that user's steps: fixed PATH and locale, the user's
    /// home, and their session directory and bus if they are logged in.
    pub fn environment(&self) -> Vec<(OsString, OsString)> {
        let mut env = base_environment();
        env.push(("HOME".into(), self.home.clone().into_os_string()));
        let runtime = PathBuf::from(format!("/run/user/{}", self.uid));
        if runtime.is_dir() {
            let bus = runtime.join("bus");
            if bus.exists() {
                let mut address = OsString::from("unix:path=");
                address.push(bus.as_os_str());
                env.push(("DBUS_SESSION_BUS_ADDRESS".into(), address));
            }
            env.push(("XDG_RUNTIME_DIR".into(), runtime.into_os_string()));
        }
        env
    }
}

/// Who a step runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// root, for authorized root steps.
    Root,
    /// The report's owner.
    User(UserCreds),
}

/// `PATH` and `LANG`, the whole environment of a root step.
pub fn base_environment() -> Vec<(OsString, OsString)> {
    vec![
        ("PATH".into(), FIXED_PATH.into()),
        ("LANG".into(), "C.UTF-8".into()),
    ]
}

/// Builds the processes steps run in.
#[derive(Debug, Clone)]
pub struct Launcher {
    helper: PathBuf,
}

impl Launcher {
    /// `helper` is the apportd executable, which understands [`DROP_PRIVILEGES_ARG`].
    pub fn new(helper: PathBuf) -> Self {
        Launcher { helper }
    }

    /// What apportd itself uses: [`LAUNCHER_EXE`] next to the current
    /// executable when it is installed there (a small binary, quick to start
    /// for every step), else the current executable, which understands the
    /// same arguments.
    pub fn current_exe() -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let small = exe.with_file_name(LAUNCHER_EXE);
        Ok(Launcher::new(if is_executable(&small) {
            small
        } else {
            exe
        }))
    }

    /// A process running `program args` as `principal`, environment cleared
    /// except for that principal's [`UserCreds::environment`].
    ///
    /// Every command runs under the step launcher ([`SUPERVISE_ARG`], see
    /// [`subreaper`](super::subreaper)), which stays root, closes inherited
    /// descriptors and kills the program's whole process tree when it ends or
    /// is stopped; a user step's program is started by the launcher through
    /// the privilege-dropping helper.
    pub fn command(&self, principal: &Principal, program: &Path, args: &[String]) -> Command {
        let mut command = Command::new(&self.helper);
        command.arg(SUPERVISE_ARG);
        match principal {
            Principal::Root => {
                command
                    .arg(program)
                    .args(args)
                    .env_clear()
                    .envs(base_environment())
                    .current_dir("/");
            }
            Principal::User(user) => {
                command
                    .arg(&self.helper)
                    .args(Self::drop_args(user, "exec"))
                    .arg(program)
                    .args(args)
                    .env_clear()
                    .envs(user.environment())
                    .current_dir("/");
            }
        }
        command
    }

    fn drop_args(user: &UserCreds, op: &str) -> [String; 5] {
        let groups: Vec<String> = user.groups.iter().map(u32::to_string).collect();
        [
            DROP_PRIVILEGES_ARG.to_owned(),
            user.uid.to_string(),
            user.gid.to_string(),
            if groups.is_empty() {
                "-".to_owned()
            } else {
                groups.join(",")
            },
            op.to_owned(),
        ]
    }

    /// The helper doing `op` (`read`, `glob`) as `user`.
    pub fn helper_command(&self, user: &UserCreds, op: &str) -> Command {
        let mut command = Command::new(&self.helper);
        command
            .args(Self::drop_args(user, op))
            .env_clear()
            .envs(user.environment())
            .current_dir("/");
        command
    }
}

/// Find `name` in [`FIXED_PATH`]. An absolute name is accepted only if it is
/// itself one of the fixed directories' entries.
pub fn resolve_program(name: &str) -> Option<PathBuf> {
    let dirs = FIXED_PATH.split(':').map(Path::new);
    if name.starts_with('/') {
        let path = Path::new(name);
        let parent = path.parent()?;
        return (dirs.clone().any(|d| d == parent) && is_executable(path)).then(|| path.into());
    }
    if name.is_empty() || name.contains('/') {
        return None;
    }
    dirs.map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The body of `apportd --internal-drop-privileges UID GID GROUPS OP ARGS…`.
///
/// OPs: `exec PROGRAM ARGS…`; `read MAX PATH` (bytes to stdout); `glob MAX
/// PATTERN` (NUL-separated paths to stdout). Errors go to stderr, kinds to the
/// exit code ([`exit`]).
pub fn drop_privileges_main(args: &[OsString]) -> ExitCode {
    let Some((uid, gid, groups, op, rest)) = parse_helper_args(args) else {
        eprintln!("apportd: internal helper called wrongly");
        return ExitCode::from(exit::USAGE);
    };
    close_inherited_fds();
    if let Err(e) = become_user(uid, gid, &groups) {
        eprintln!("apportd: cannot drop privileges to uid {uid}: {e}");
        return ExitCode::from(exit::DROP_FAILED);
    }
    match (op.as_bytes(), rest) {
        (b"exec", [program, program_args @ ..]) => {
            let error = Command::new(program).args(program_args).exec();
            eprintln!(
                "apportd: cannot run {}: {error}",
                Path::new(program).display()
            );
            ExitCode::from(exit::EXEC_FAILED)
        }
        (b"read", [max, path]) => {
            let Some(max) = max.to_str().and_then(|m| m.parse::<u64>().ok()) else {
                return ExitCode::from(exit::USAGE);
            };
            match read_file(Path::new(path), max) {
                Ok(contents) => {
                    if std::io::stdout().lock().write_all(&contents.bytes).is_err() {
                        return ExitCode::from(exit::IO);
                    }
                    ExitCode::from(if contents.truncated {
                        exit::TRUNCATED
                    } else {
                        exit::OK
                    })
                }
                Err(e) => file_error_exit(&e),
            }
        }
        (b"glob", [max, pattern]) => {
            let Some(max) = max.to_str().and_then(|m| m.parse::<usize>().ok()) else {
                return ExitCode::from(exit::USAGE);
            };
            match super::glob::expand(Path::new(pattern), max) {
                Ok(matches) => {
                    let mut out = std::io::stdout().lock();
                    for path in &matches.paths {
                        if out.write_all(path.as_os_str().as_bytes()).is_err()
                            || out.write_all(b"\0").is_err()
                        {
                            return ExitCode::from(exit::IO);
                        }
                    }
                    ExitCode::from(if matches.truncated {
                        exit::TRUNCATED
                    } else {
                        exit::OK
                    })
                }
                Err(e) => file_error_exit(&e),
            }
        }
        _ => ExitCode::from(exit::USAGE),
    }
}

type HelperArgs<'a> = (u32, u32, Vec<u32>, &'a OsStr, &'a [OsString]);

fn parse_helper_args(args: &[OsString]) -> Option<HelperArgs<'_>> {
    let [uid, gid, groups, op, rest @ ..] = args else {
        return None;
    };
    let uid = uid.to_str()?.parse().ok()?;
    let gid = gid.to_str()?.parse().ok()?;
    let groups = match groups.to_str()? {
        "-" => Vec::new(),
        list => list
            .split(',')
            .map(|g| g.parse().ok())
            .collect::<Option<Vec<u32>>>()?,
    };
    Some((uid, gid, groups, op.as_os_str(), rest))
}

/// zbus receives descriptors without `MSG_CMSG_CLOEXEC`, so a report
/// descriptor another caller passed could still be open in apportd when this
/// helper was spawned. Nothing but stdin, stdout and stderr may reach a user
/// step: close everything else before anything runs as the user.
pub(crate) fn close_inherited_fds() {
    let inherited: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .filter(|fd: &i32| *fd > 2)
                .collect()
        })
        .unwrap_or_default();
    for fd in inherited {
        // EBADF for the directory descriptor read_dir already closed.
        let _ = nix::unistd::close(fd);
    }
}

fn become_user(uid: u32, gid: u32, groups: &[u32]) -> Result<(), String> {
    if uid == 0 {
        return Err("refusing to 'drop' to uid 0".into());
    }
    let groups: Vec<Gid> = groups.iter().copied().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))?;
    let ids = nix::unistd::getresuid().map_err(|e| format!("getresuid: {e}"))?;
    let gids = nix::unistd::getresgid().map_err(|e| format!("getresgid: {e}"))?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3]
        || [gids.real, gids.effective, gids.saved] != [gid; 3]
    {
        return Err("ids did not change as asked".into());
    }
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after dropping privileges".into());
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    Ok(())
}

fn file_error_exit(error: &FileError) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(match error {
        FileError::BadPath { .. } => exit::BAD_PATH,
        FileError::Symlink { .. } => exit::SYMLINK,
        FileError::NotRegular { .. } => exit::NOT_REGULAR,
        FileError::NotFound { .. } => exit::NOT_FOUND,
        FileError::Io { .. } => exit::IO,
    })
}

/// Rebuild the [`FileError`] a helper reported through its exit code.
pub fn file_error_from_exit(code: i32, path: &Path, stderr: &[u8]) -> FileError {
    let path = path.to_path_buf();
    let message = String::from_utf8_lossy(stderr).trim().to_owned();
    match u8::try_from(code).unwrap_or(exit::IO) {
        exit::BAD_PATH => FileError::BadPath {
            path,
            why: "refused by the helper",
        },
        exit::SYMLINK => FileError::Symlink { path },
        exit::NOT_REGULAR => FileError::NotRegular {
            path,
            kind: "not a regular file",
        },
        exit::NOT_FOUND => FileError::NotFound { path },
        _ => FileError::Io {
            path,
            source: std::io::Error::other(message),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_only_in_the_fixed_path() {
        assert!(resolve_program("sh").is_some());
        assert!(resolve_program("/usr/bin/sh").is_some() || resolve_program("/bin/sh").is_some());
        assert!(resolve_program("/tmp/sh").is_none());
        assert!(resolve_program("./sh").is_none());
        assert!(resolve_program("../bin/sh").is_none());
        assert!(resolve_program("").is_none());
        assert!(resolve_program("no-such-program-anywhere").is_none());
    }

    #[test]
    fn helper_arguments_parse_strictly() {
        let args: Vec<OsString> = ["1000", "1000", "4,27", "read", "10", "/x"]
            .iter()
            .map(OsString::from)
            .collect();
        let (uid, gid, groups, op, rest) =
            parse_helper_args(&args).unwrap_or_else(|| unreachable!("valid arguments"));
        assert_eq!(
            (uid, gid, groups, op),
            (1000, 1000, vec![4, 27], OsStr::new("read"))
        );
        assert_eq!(rest.len(), 2);
        let bad: Vec<OsString> = ["x", "1", "-", "read"].iter().map(OsString::from).collect();
        assert!(parse_helper_args(&bad).is_none());
    }
}
