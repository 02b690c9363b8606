//! Opening a report file safely.
//!
//! `/var/crash` is world-writable: any local user can put a symlink, a FIFO
//! or a huge file there under a report's name. apport's root helpers that
//! followed symlinks or blocked on FIFOs were CVE-2021-32547…32555 and
//! CVE-2021-3710. So: `O_NOFOLLOW` (a symlink fails the open), `O_NONBLOCK`
//! (opening a FIFO cannot block), `O_NOCTTY`, then `fstat` on the open
//! descriptor (no race with a rename) must show a regular file, and its size
//! is checked against the cap before anything is read.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Report;
use super::limits::ReportLimits;
use super::parse::ParseError;

/// Why a report file could not be opened or read.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The path is a symbolic link; reports are never read through one.
    #[error("{path} is a symbolic link; reports are never read through links")]
    Symlink {
        /// The path given.
        path: PathBuf,
    },
    /// The file is not a regular file.
    #[error("{path} is a {kind}, not a regular file")]
    NotRegular {
        /// The path given (or `<descriptor>`).
        path: PathBuf,
        /// What it is instead (`directory`, `FIFO`, …).
        kind: &'static str,
    },
    /// The file is larger than [`ReportLimits::max_file_bytes`].
    #[error(
        "{path} is {size} bytes, over the limit of {max} bytes; \
         raise ReportLimits::max_file_bytes if reports this large are expected"
    )]
    TooLarge {
        /// The path given (or `<descriptor>`).
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Opening or reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path given (or `<descriptor>`).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The contents are not a valid report.
    #[error("{path}: {source}")]
    Parse {
        /// The path given (or `<descriptor>`).
        path: PathBuf,
        /// The parse error, with its line.
        source: ParseError,
    },
}

fn kind_name(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

fn read_report(file: File, path: &Path, limits: &ReportLimits) -> Result<Report, OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_name(meta.file_type()),
        });
    }
    let too_large = |size| OpenError::TooLarge {
        path: path.to_path_buf(),
        size,
        max: limits.max_file_bytes,
    };
    if meta.len() > limits.max_file_bytes {
        return Err(too_large(meta.len()));
    }
    // The file may grow after fstat: read at most one byte past the cap.
    let mut data = Vec::new();
    let expected = usize::try_from(meta.len()).map_err(|_| too_large(meta.len()))?;
    data.try_reserve(expected)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)))?;
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io)?;
    let read = u64::try_from(data.len()).unwrap_or(u64::MAX);
    if read > limits.max_file_bytes {
        return Err(too_large(read));
    }
    Report::parse(&data, limits).map_err(|source| OpenError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

impl Report {
    /// Opens and parses the report at `path`.
    ///
    /// Refuses a symlink (`O_NOFOLLOW`) and anything that is not a regular
    /// file (checked with `fstat` on the opened descriptor; `O_NONBLOCK`
    /// keeps a FIFO from blocking the open). The size is checked against
    /// [`ReportLimits::max_file_bytes`] before reading.
    ///
    /// # Errors
    /// [`OpenError`] naming the path and what to do.
    pub fn open(path: impl AsRef<Path>, limits: &ReportLimits) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|source| {
                if source.raw_os_error() == Some(libc::ELOOP) {
                    OpenError::Symlink {
                        path: path.to_path_buf(),
                    }
                } else {
                    OpenError::Io {
                        path: path.to_path_buf(),
                        source,
                    }
                }
            })?;
        read_report(file, path, limits)
    }

    /// Parses the report behind an already opened descriptor (apportd
    /// receives descriptors over D-Bus). Applies the same checks as
    /// [`Report::open`] after the open: regular file, size cap.
    ///
    /// # Errors
    /// [`OpenError`]; the path in it reads `<descriptor>`.
    pub fn from_file(file: File, limits: &ReportLimits) -> Result<Self, OpenError> {
        read_report(file, Path::new("<descriptor>"), limits)
    }
}
