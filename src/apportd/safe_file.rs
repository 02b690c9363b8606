//! Reading a file named by a hook without following any symlink, FIFO, device or `..`.
//!
//! Every check here exists because apport, running as root, once read what an
//! attacker pointed it at: symlinks and `../` in report-derived paths
//! (CVE-2021-32547…32555), FIFOs that blocked it forever and device nodes
//! (CVE-2021-3710). The path is resolved with `openat2(RESOLVE_NO_SYMLINKS)` (or,
//! on kernels without it, one `O_NOFOLLOW` component at a time) into an `O_PATH`
//! descriptor, which cannot read and has no side effects on device nodes; only
//! after `fstat` shows a regular file is it re-opened for reading through its own
//! `/proc/self/fd` entry, so nothing can be swapped in between the check and the read.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

/// The bytes read from a file, at most the cap asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContents {
    /// The file's first bytes, up to the cap.
    pub bytes: Vec<u8>,
    /// The file held more than the cap.
    pub truncated: bool,
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path is relative, has `.`/`..` components or a NUL byte.
    #[error("{path}: refused: {why}; hook paths must be absolute and normalised")]
    BadPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Some component of the path is a symbolic link.
    #[error("{path}: refused: a component of the path is a symbolic link")]
    Symlink {
        /// The path as given.
        path: PathBuf,
    },
    /// The final component is not a regular file.
    #[error("{path}: refused: not a regular file ({kind})")]
    NotRegular {
        /// The path as given.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file or a directory above it does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// Permission denied or another I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl FileError {
    /// A short machine-readable name for the failure, used in step status.
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::BadPath { .. } => "bad-path",
            FileError::Symlink { .. } => "symlink",
            FileError::NotRegular { .. } => "not-regular",
            FileError::NotFound { .. } => "not-found",
            FileError::Io { .. } => "io",
        }
    }
}

/// How the path is resolved; [`Resolver::Auto`] is right everywhere but tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_NO_SYMLINKS)`, falling back to [`Resolver::ComponentWalk`] on `ENOSYS`.
    Auto,
    /// One `openat(O_NOFOLLOW)` per component (kernels before 5.6).
    ComponentWalk,
}

/// Read at most `max_bytes` of the regular file at `path`, following no symlink.
pub fn read_file(path: &Path, max_bytes: u64) -> Result<FileContents, FileError> {
    read_file_with(path, max_bytes, Resolver::Auto)
}

/// [`read_file`] with an explicit resolver (tests exercise both).
pub fn read_file_with(
    path: &Path,
    max_bytes: u64,
    resolver: Resolver,
) -> Result<FileContents, FileError> {
    let handle = open_path(path, resolver)?;
    let stat = fstat(handle.as_fd()).map_err(|e| io_error(path, e))?;
    require_regular(path, &stat)?;
    let file = reopen_for_reading(path, &handle, &stat)?;
    read_capped(path, file, max_bytes)
}

/// Check that `path` is absolute and normalised: no `.`/`..`/empty components.
pub fn check_path(path: &Path) -> Result<(), FileError> {
    let bytes = path.as_os_str().as_bytes();
    let bad = |why| {
        Err(FileError::BadPath {
            path: path.to_path_buf(),
            why,
        })
    };
    if bytes.first() != Some(&b'/') {
        return bad("not absolute");
    }
    if bytes.contains(&0) {
        return bad("contains a NUL byte");
    }
    if bytes == b"/" {
        return Ok(());
    }
    if bytes.ends_with(b"/") {
        return bad("ends with /");
    }
    for component in bytes.split(|b| *b == b'/').skip(1) {
        match component {
            b"" => return bad("empty component (//)"),
            b"." => return bad("`.` component"),
            b".." => return bad("`..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Resolve `path` to an `O_PATH` descriptor of its final component, following no
/// symlink. The descriptor may name anything (directory, FIFO, device): callers check.
pub fn open_path(path: &Path, resolver: Resolver) -> Result<OwnedFd, FileError> {
    check_path(path)?;
    if resolver == Resolver::Auto {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(nix::fcntl::AT_FDCWD, path, how) {
            Ok(fd) => return finish_open(path, fd),
            // openat2 reports a refused symlink as ELOOP.
            Err(Errno::ELOOP) => {
                return Err(FileError::Symlink {
                    path: path.to_path_buf(),
                });
            }
            Err(Errno::ENOSYS) => {}
            Err(e) => return Err(errno_error(path, e)),
        }
    }
    walk_components(path)
}

/// The final component opened with `O_PATH|O_NOFOLLOW` is the link itself if it
/// is one; refuse it here so every caller sees the same error.
fn finish_open(path: &Path, fd: OwnedFd) -> Result<OwnedFd, FileError> {
    let stat = fstat(fd.as_fd()).map_err(|e| io_error(path, e))?;
    if file_type(&stat) == SFlag::S_IFLNK {
        return Err(FileError::Symlink {
            path: path.to_path_buf(),
        });
    }
    Ok(fd)
}

fn walk_components(path: &Path) -> Result<OwnedFd, FileError> {
    let root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno_error(path, e))?;
    let bytes = path.as_os_str().as_bytes();
    let components: Vec<&[u8]> = bytes
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let mut current = root;
    let last = components.len().saturating_sub(1);
    for (index, component) in components.iter().enumerate() {
        let name = Path::new(std::ffi::OsStr::from_bytes(component));
        let mut flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if index < last {
            flags |= OFlag::O_DIRECTORY;
        }
        let next = match openat(current.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            // O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR: find out which.
            Err(Errno::ENOTDIR) => {
                let st = nix::sys::stat::fstatat(
                    current.as_fd(),
                    name,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                );
                return match st {
                    Ok(st) if file_type(&st) == SFlag::S_IFLNK => Err(FileError::Symlink {
                        path: path.to_path_buf(),
                    }),
                    _ => Err(FileError::NotFound {
                        path: path.to_path_buf(),
                    }),
                };
            }
            Err(e) => return Err(errno_error(path, e)),
        };
        current = next;
    }
    finish_open(path, current)
}

fn require_regular(path: &Path, stat: &FileStat) -> Result<(), FileError> {
    let kind = match file_type(stat) {
        SFlag::S_IFREG => return Ok(()),
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFLNK => "symbolic link",
        _ => "unknown type",
    };
    Err(FileError::NotRegular {
        path: path.to_path_buf(),
        kind,
    })
}

/// `O_PATH` descriptors cannot be read. Re-open the very inode we checked through
/// its descriptor's magic link (no path lookup by name happens again), then make
/// sure it is still the same inode.
fn reopen_for_reading(
    path: &Path,
    handle: &OwnedFd,
    checked: &FileStat,
) -> Result<File, FileError> {
    let proc_path = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let fd = open(
        proc_path.as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno_error(path, e))?;
    let stat = fstat(fd.as_fd()).map_err(|e| io_error(path, e))?;
    require_regular(path, &stat)?;
    if stat.st_dev != checked.st_dev || stat.st_ino != checked.st_ino {
        return Err(FileError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("file changed while it was being opened"),
        });
    }
    Ok(File::from(fd))
}

fn read_capped(path: &Path, file: File, max_bytes: u64) -> Result<FileContents, FileError> {
    let mut bytes = Vec::new();
    // Read one byte past the cap to learn whether the file was longer; `take`
    // bounds the allocation whatever the file claims its size is.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let truncated = bytes.len() > cap;
    bytes.truncate(cap);
    Ok(FileContents { bytes, truncated })
}

/// The `S_IFMT` bits of a stat result.
pub(crate) fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

fn errno_error(path: &Path, errno: Errno) -> FileError {
    match errno {
        Errno::ENOENT => FileError::NotFound {
            path: path.to_path_buf(),
        },
        Errno::ELOOP => FileError::Symlink {
            path: path.to_path_buf(),
        },
        e => io_error(path, e),
    }
}

fn io_error(path: &Path, errno: Errno) -> FileError {
    FileError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::from(errno),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn relative_and_dotdot_paths_are_refused() {
        for p in [
            "etc/passwd",
            "/etc/../etc/passwd",
            "/etc/./passwd",
            "//etc",
            "/etc/",
        ] {
            assert!(
                matches!(check_path(Path::new(p)), Err(FileError::BadPath { .. })),
                "{p}"
            );
        }
        check_path(Path::new("/etc/passwd")).unwrap();
        check_path(Path::new("/")).unwrap();
    }
}
