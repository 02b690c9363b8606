//! Reading trust material and bundles from disk without being tricked.
//!
//! apport's root file reads followed symlinks and FIFOs (CVE-2021-32547…32555,
//! CVE-2021-3710), and whoopsie sized allocations from the file
//! (CVE-2020-15570). Every file this module reads is opened with
//! `O_NOFOLLOW` (a symlink as the last component is refused, not followed)
//! and `O_NONBLOCK` (opening a FIFO cannot hang), must then be a regular file
//! by `fstat` of the open descriptor (no race between check and use), and is
//! read up to a cap that is fixed before anything is allocated.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
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
