//! Reading trust material and bundles from disk without being tricked.
//!
//! apport's root file reads followed symlinks and FIFOs (CVE-2021-32547…32555,
//! CVE-2021-3710), and whoopsie sized allocations from the file
//! (CVE-2020-15570). Every file this module reads is opened with
//! `O_NOFOLLOW` (a symlink as the last component is refused, not followed)
//! and `O_NONBLOCK` (opening a FIFO cannot hang), must then be a regular file
//! by `fstat` of the open descriptor (no race between check and use), and is
//! read up to a cap that is fixed before anything is allocated.
//!
//! Trust material (key files, key directories, the revocation list) must
//! also be safe from other local users: hooks run as root, so a key file or
//! key directory that another user can write is a local root exploit, and a
//! revocation list another user can delete or edit silently un-revokes a
//! leaked key. Like sshd's `StrictModes` and sudo's checks on `sudoers`, such
//! a file, the directory holding it and every directory above must be owned
//! by root (or by the user running the check) and not writable by group or
//! others; a directory above may be world-writable only with the sticky bit
//! (`/tmp`), which stops others from renaming what is in it.

use std::fs::{Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be read safely.
#[derive(Debug, thiserror::Error)]
pub enum RegularFileError {
    /// The last path component is a symbolic link.
    #[error(
        "{} is a symbolic link; it is not followed: put the file itself there",
        path.display()
    )]
    Symlink {
        /// The path as given.
        path: PathBuf,
    },
    /// A directory, FIFO, socket or device.
    #[error("{} is not a regular file: put a regular file there", path.display())]
    NotRegular {
        /// The path as given.
        path: PathBuf,
    },
    /// Bigger than the cap for this kind of file.
    #[error(
        "{} is larger than {max} bytes, the cap for this kind of file: it is not one",
        path.display()
    )]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// The cap in bytes.
        max: u64,
    },
    /// Trust material that a user other than root (or the user running the
    /// check) could have written.
    #[error(
        "{} {reason}, so another local user could have changed it: it is not trusted; make it \
         owned by root and writable only by its owner (`chown root: PATH; chmod go-w PATH`)",
        path.display()
    )]
    WritableByOthers {
        /// The file or directory at fault.
        path: PathBuf,
        /// Who else can write it.
        reason: String,
    },
    /// Any other I/O error (missing file, permissions…).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl RegularFileError {
    /// True when the file does not exist (callers may treat that as "empty").
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Reads a whole regular file of at most `max` bytes, refusing symlinks,
/// FIFOs, devices and anything larger than `max`.
pub(crate) fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, RegularFileError> {
    read_checked(path, max, |_| Ok(()))
}

/// Reads trust material: like [`read_regular_file`], and the open file must
/// be owned by root or the current user and not writable by group or others.
/// The directories above it are checked separately ([`check_trusted_dir`],
/// [`check_trusted_parent`]), once per directory.
pub(crate) fn read_trusted_file(path: &Path, max: u64) -> Result<Vec<u8>, RegularFileError> {
    read_checked(path, max, |meta| check_owner_and_mode(path, meta, false))
}

/// Checks the directories above `path` (which need not exist): whoever can
/// write them can delete, replace or create `path`. A sticky world-writable
/// parent (`/tmp`) is fine: others cannot remove or rename what they do not
/// own there, and a file they create fails [`read_trusted_file`].
pub(crate) fn check_trusted_parent(path: &Path) -> Result<(), RegularFileError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_trusted_ancestors(parent, true)
}

/// Checks that `dir` (an existing directory whose entries are trusted) and
/// every directory above it are writable only by root or the current user.
/// `dir` itself may not rely on the sticky bit: anyone could add an entry.
///
/// daisy checks the directory of its signing key with this too: whoever can
/// write it can swap in a key of their own.
pub fn check_trusted_dir(dir: &Path) -> Result<(), RegularFileError> {
    check_trusted_ancestors(dir, false)
}

/// Checks `start` and each directory above it (after resolving symlinks, so
/// the directories checked are the ones actually used). When `start` does
/// not exist, its nearest existing ancestor is where the walk starts: only
/// who can create `start` matters then.
fn check_trusted_ancestors(start: &Path, sticky_start_ok: bool) -> Result<(), RegularFileError> {
    let io_err = |path: &Path, source: io::Error| RegularFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut existing = start;
    let mut sticky_ok = sticky_start_ok;
    let real = loop {
        match std::fs::canonicalize(existing) {
            Ok(real) => break real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Whoever can create the missing directory decides what is
                // in it: check its parent as if it were the directory itself.
                existing = match existing.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                sticky_ok = false;
            }
            Err(e) => return Err(io_err(existing, e)),
        }
    };
    for (depth, dir) in real.ancestors().enumerate() {
        let meta = std::fs::metadata(dir).map_err(|e| io_err(dir, e))?;
        check_owner_and_mode(dir, &meta, depth > 0 || sticky_ok)?;
    }
    Ok(())
}

/// Owner root or the current user; no write bit for group or others, unless
/// `sticky_ok` and the sticky bit is set.
fn check_owner_and_mode(
    path: &Path,
    meta: &Metadata,
    sticky_ok: bool,
) -> Result<(), RegularFileError> {
    let uid = meta.uid();
    let mode = meta.mode();
    let reason = if uid != 0 && uid != crate::sys::effective_uid() {
        Some(format!("is owned by uid {uid}"))
    } else if mode & 0o022 != 0 && !(sticky_ok && mode & 0o1000 != 0) {
        Some(format!(
            "is writable by {} (mode {:o})",
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            mode & 0o7777
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(RegularFileError::WritableByOthers {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

fn read_checked(
    path: &Path,
    max: u64,
    check: impl FnOnce(&Metadata) -> Result<(), RegularFileError>,
) -> Result<Vec<u8>, RegularFileError> {
    let io_err = |source: io::Error| RegularFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                RegularFileError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(e)
            }
        })?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.file_type().is_file() {
        return Err(RegularFileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    check(&meta)?;
    let too_large = || RegularFileError::TooLarge {
        path: path.to_path_buf(),
        max,
    };
    if meta.len() > max {
        return Err(too_large());
    }
    // The size came from fstat and is already below the cap; the file may
    // still grow while we read, so the read itself is capped at max + 1.
    let capacity = usize::try_from(meta.len()).map_err(|_| too_large())?;
    let mut bytes = Vec::with_capacity(capacity);
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > max) {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn symlink_fifo_directory_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"0123456789").unwrap();
        assert_eq!(read_regular_file(&real, 10).unwrap(), b"0123456789");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            read_regular_file(&link, 10),
            Err(RegularFileError::Symlink { .. })
        ));

        assert!(matches!(
            read_regular_file(&real, 9),
            Err(RegularFileError::TooLarge { max: 9, .. })
        ));
        assert!(matches!(
            read_regular_file(dir.path(), 10),
            Err(RegularFileError::NotRegular { .. })
        ));

        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(
            read_regular_file(&fifo, 10),
            Err(RegularFileError::NotRegular { .. })
        ));

        let missing = read_regular_file(&dir.path().join("missing"), 10).unwrap_err();
        assert!(missing.is_not_found());
    }
}
