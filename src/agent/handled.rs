//! Which `.uploaded` markers `apport-hook watch` already collected for, so
//! each upload gets its hook phase once, across restarts.
//!
//! An upload is identified by the marker's name, inode and modification time
//! (whoopsie rewriting a marker for a new upload changes them) and by its
//! OOPS id (the same OOPS is never collected twice, even under another
//! name). The record is bounded to [`MAX_HANDLED`] entries, oldest dropped
//! first; `watch` only looks at markers younger than its `--max-age`, so an
//! entry dropped long ago cannot bring an old upload back.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state_dir::{StateDir, StateError};

/// The file in the state directory.
pub const HANDLED_FILE: &str = "handled.json";
/// Most uploads remembered.
pub const MAX_HANDLED: usize = 4096;

/// One upload, as seen on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadKey {
    /// The marker's file name (`X.uploaded`).
    pub name: String,
    /// Its inode.
    pub inode: u64,
    /// Its modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

impl UploadKey {
    /// The key of the marker at `path`, without following a link (a link is
    /// not a marker whoopsie wrote).
    ///
    /// # Errors
    /// The I/O error; `InvalidInput` for a non-regular file or a name that is
    /// not UTF-8.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::symlink_metadata(path)?;
        if !meta.file_type().is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad name"))?
            .to_owned();
        let mtime_ns = meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec());
        Ok(Self {
            name,
            inode: meta.ino(),
            mtime_ns,
        })
    }
}

/// One handled upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handled {
    /// The marker.
    #[serde(flatten)]
    pub key: UploadKey,
    /// Its OOPS id, when it held a valid one.
    pub oops_id: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HandledFile {
    version: u32,
    entries: Vec<Handled>,
}

/// The handled uploads (a snapshot; [`HandledSet::record`] writes through).
#[derive(Debug, Default)]
pub struct HandledSet {
    entries: Vec<Handled>,
}

impl HandledSet {
    /// Reads the record. A corrupt file is reported and treated as empty
    /// (pending uploads are then collected again; the server answers `409`
    /// for results it already has and offers no hook twice for one OOPS).
    ///
    /// # Errors
    /// [`StateError::Io`] when the file cannot be read.
    pub fn load(state: &StateDir) -> Result<Self, StateError> {
        match state.read_json::<HandledFile>(HANDLED_FILE) {
            Ok(file) => Ok(Self {
                entries: file.map(|f| f.entries).unwrap_or_default(),
            }),
            Err(e @ StateError::Corrupt { .. }) => {
                tracing::warn!("{e}");
                Ok(Self::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether this upload (same marker, or same OOPS id) was handled.
    pub fn contains(&self, key: &UploadKey, oops_id: Option<&str>) -> bool {
        self.entries
            .iter()
            .any(|h| h.key == *key || (oops_id.is_some() && h.oops_id.as_deref() == oops_id))
    }

    /// How many uploads are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records an upload as handled and writes the record (under the state
    /// lock, merged with what another process wrote meanwhile), dropping the
    /// oldest entries past [`MAX_HANDLED`].
    ///
    /// # Errors
    /// [`StateError`] when it cannot be written.
    pub fn record(&mut self, state: &StateDir, handled: Handled) -> Result<(), StateError> {
        self.record_capped(state, handled, MAX_HANDLED)
    }

    fn record_capped(
        &mut self,
        state: &StateDir,
        handled: Handled,
        cap: usize,
    ) -> Result<(), StateError> {
        let _lock = state.lock()?;
        let mut current = Self::load(state)?;
        current.entries.retain(|h| h.key != handled.key);
        current.entries.push(handled);
        let excess = current.entries.len().saturating_sub(cap);
        current.entries.drain(..excess);
        state.write_json(
            HANDLED_FILE,
            &HandledFile {
                version: 1,
                entries: current.entries.clone(),
            },
        )?;
        self.entries = current.entries;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(n: usize) -> UploadKey {
        UploadKey {
            name: format!("{n}.uploaded"),
            inode: u64::try_from(n).unwrap(),
            mtime_ns: 7,
        }
    }

    #[test]
    fn the_record_survives_a_reload_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let mut set = HandledSet::load(&state).unwrap();
        for n in 0..5 {
            let handled = Handled {
                key: key(n),
                oops_id: Some(format!("oops-{n}")),
            };
            set.record_capped(&state, handled, 3).unwrap();
        }
        let again = HandledSet::load(&state).unwrap();
        assert_eq!(again.len(), 3);
        assert!(again.contains(&key(4), None));
        assert!(
            !again.contains(&key(0), None),
            "the oldest is dropped first"
        );
        let other = UploadKey {
            name: "renamed.uploaded".into(),
            inode: 99_999,
            mtime_ns: 1,
        };
        assert!(again.contains(&other, Some("oops-3")));
        assert!(!again.contains(&other, Some("oops-0")));
    }

    #[test]
    fn a_corrupt_record_is_treated_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HANDLED_FILE), b"{not json").unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(HandledSet::load(&state).unwrap().is_empty());
    }
}
