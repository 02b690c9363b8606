//! The agent's state directory (default [`DEFAULT_STATE_DIR`], systemd's
//! `StateDirectory=apport-hooks`): which uploads were handled and the last
//! runs, both small JSON files replaced atomically under one lock so that
//! `watch` and a `collect` started by hand never interleave their writes.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::atomic_file::write_atomic;

/// Where the agent keeps its state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/apport-hooks";
/// Largest state file read back (both files are bounded far below this).
pub const MAX_STATE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The state directory could not be used.
#[derive(Debug, Error)]
pub enum StateError {
    /// An I/O error on a state file.
    #[error(
        "{path}: {source}; check that the state directory is writable by this user (`--state-dir DIR`)"
    )]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A state file is not what this version writes.
    #[error("{path} is corrupt ({message}); remove it, it is rebuilt")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// An open state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// Holds the state directory's lock until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateDir {
    /// Uses `dir`, creating it (mode 0755: `status` is readable by everyone)
    /// when it is missing.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        if let Err(source) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
        {
            return Err(StateError::Io { path: dir, source });
        }
        Ok(Self { dir })
    }

    /// Uses `dir` as it is, without creating it (reading a directory that
    /// does not exist finds no files; writing into it fails).
    pub fn existing(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock (`.lock` in the directory).
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn lock(&self) -> Result<StateLock, StateError> {
        let path = self.dir.join(".lock");
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let file = super::atomic_file::open_lock(&self.dir, ".lock", 0o644).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(StateLock { _file: file })
    }

    /// Reads `name`; `None` when it does not exist.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.dir.join(name);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATE_FILE_BYTES.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_STATE_FILE_BYTES {
            return Err(StateError::Corrupt {
                path,
                message: format!("over {MAX_STATE_FILE_BYTES} bytes"),
            });
        }
        Ok(Some(bytes))
    }

    /// Replaces `name` atomically (mode 0644).
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn write(&self, name: &str, data: &[u8]) -> Result<(), StateError> {
        write_atomic(&self.dir, name, data, 0o644).map_err(|source| StateError::Io {
            path: self.dir.join(name),
            source,
        })
    }

    /// Reads and decodes the JSON file `name`; `None` when it does not exist.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StateError> {
        let Some(bytes) = self.read(name)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: self.dir.join(name),
                message: e.to_string(),
            })
    }

    /// Encodes `value` as JSON and replaces `name` with it.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StateError::Corrupt {
            path: self.dir.join(name),
            message: e.to_string(),
        })?;
        self.write(name, &bytes)
    }
}
