//! The crash directory as `apport-hook watch` sees it: new `.uploaded`
//! markers (whoopsie writes `X.uploaded` after the server took `X.crash`)
//! through inotify, and the markers already there at start.
//!
//! Only names are taken from the directory: `/var/crash` is world-writable,
//! so a marker is a file name ending in `.uploaded` that is not hidden, and
//! the report is the same name with `.crash`. The files themselves are
//! opened later without following links (`collect`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use thiserror::Error;

/// The crash directory apport and whoopsie use.
pub const DEFAULT_CRASH_DIR: &str = "/var/crash";
/// The suffix of whoopsie's marker.
pub const MARKER_SUFFIX: &str = ".uploaded";
/// Most markers looked at in one scan (a directory flooded by a local user
/// cannot make the watcher allocate without bound).
pub const MAX_SCAN: usize = 4096;

/// Watching the crash directory failed.
#[derive(Debug, Error)]
pub enum WatchError {
    /// inotify could not be set up or read.
    #[error(
        "cannot watch {dir}: {source}; check that it exists and that fs.inotify.max_user_watches is not exhausted"
    )]
    Inotify {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The directory was removed or moved away.
    #[error("{dir} was removed or moved; restart the watcher once it exists again")]
    Gone {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory cannot be listed.
    #[error("cannot list {dir}: {source}")]
    Scan {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Whether `name` is a marker name: `X.uploaded` with a non-empty `X`, not
/// hidden (our own temporary files start with `.`), UTF-8.
pub fn is_marker_name(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| {
        !n.starts_with('.')
            && n.strip_suffix(MARKER_SUFFIX)
                .is_some_and(|stem| !stem.is_empty())
    })
}

/// The report a marker stands for (`X.uploaded` → `X.crash`).
pub fn report_for_marker(marker: &Path) -> Option<PathBuf> {
    let name = marker.file_name()?.to_str()?;
    let stem = name.strip_suffix(MARKER_SUFFIX)?;
    Some(marker.with_file_name(format!("{stem}.crash")))
}

/// Whether the marker at `path` was written by the uploader: owned by root
/// or by `uid` (the watcher's own user, `whoopsie` under systemd). Anyone
/// can create files in `/var/crash`; a marker planted by another user could
/// otherwise point the watcher's hook phase at a report of that user's
/// choosing under a real OOPS id.
///
/// # Errors
/// The I/O error of `lstat`.
pub fn marker_owned_by_uploader(path: &Path, uid: u32) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::symlink_metadata(path)?.uid();
    Ok(owner == 0 || owner == uid)
}

/// The markers in `dir` modified within `max_age`, oldest first, at most
/// [`MAX_SCAN`] (the newest are kept). Links, other non-regular files and
/// markers not written by the uploader (root or this process's user, see
/// [`marker_owned_by_uploader`]) are skipped before the cap: anyone can
/// create files in `/var/crash`, and thousands of planted markers dated in
/// the future would otherwise push the uploader's own out of every scan.
///
/// # Errors
/// [`WatchError::Scan`].
pub fn pending_markers(dir: &Path, max_age: Duration) -> Result<Vec<PathBuf>, WatchError> {
    let scan = |source| WatchError::Scan {
        dir: dir.to_path_buf(),
        source,
    };
    let oldest = SystemTime::now()
        .checked_sub(max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut found = Vec::new();
    let mut foreign = 0usize;
    for entry in std::fs::read_dir(dir).map_err(scan)? {
        let entry = entry.map_err(scan)?;
        if !is_marker_name(&entry.file_name()) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let Ok(mtime) = meta.modified() else {
            continue;
        };
        let owner = std::os::unix::fs::MetadataExt::uid(&meta);
        if !meta.file_type().is_file() || mtime < oldest {
            continue;
        }
        if owner == 0 || owner == crate::sys::effective_uid() {
            found.push((mtime, entry.path()));
        } else {
            foreign = foreign.saturating_add(1);
        }
    }
    if foreign > 0 {
        // One line per scan, not one per file: they may be thousands.
        tracing::warn!(
            "ignoring {foreign} marker(s) in {} not owned by root or by this user (the uploader)",
            dir.display()
        );
    }
    found.sort();
    let excess = found.len().saturating_sub(MAX_SCAN);
    if excess > 0 {
        tracing::warn!(
            "{} holds {} markers; only the newest {MAX_SCAN} are looked at",
            dir.display(),
            found.len()
        );
    }
    Ok(found.into_iter().skip(excess).map(|(_, p)| p).collect())
}

/// What the reader thread saw.
enum Seen {
    Markers(Vec<PathBuf>),
    Overflow,
    Gone,
    Failed(nix::Error),
}

/// An inotify watch on the crash directory for markers written or renamed
/// into it. A thread blocks on the inotify descriptor and hands over what it
/// read (no `unsafe` registration of a raw descriptor with the reactor); it
/// ends with the watch.
#[derive(Debug)]
pub struct CrashDirWatch {
    dir: PathBuf,
    events: tokio::sync::mpsc::Receiver<SeenBox>,
}

/// [`Seen`] behind a debuggable name.
struct SeenBox(Seen);

impl std::fmt::Debug for SeenBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seen")
    }
}

fn read_loop(inotify: &Inotify, dir: &Path, to: &tokio::sync::mpsc::Sender<SeenBox>) {
    loop {
        let seen = match inotify.read_events() {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => Seen::Failed(e),
            Ok(events) => {
                let mut markers: Vec<PathBuf> = Vec::new();
                let mut special = None;
                for event in events {
                    if event.mask.intersects(
                        AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF
                            | AddWatchFlags::IN_IGNORED,
                    ) {
                        special = Some(Seen::Gone);
                        break;
                    }
                    if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        special = Some(Seen::Overflow);
                        break;
                    }
                    if let Some(name) = event.name
                        && is_marker_name(&name)
                    {
                        let path = dir.join(name);
                        if !markers.contains(&path) {
                            markers.push(path);
                        }
                    }
                }
                special.unwrap_or(Seen::Markers(markers))
            }
        };
        let last = matches!(seen, Seen::Gone | Seen::Failed(_));
        if to.blocking_send(SeenBox(seen)).is_err() || last {
            return;
        }
    }
}

impl CrashDirWatch {
    /// Starts watching `dir`. Set it up before scanning for pending markers,
    /// so none falls in between.
    ///
    /// # Errors
    /// [`WatchError::Inotify`].
    pub fn new(dir: &Path) -> Result<Self, WatchError> {
        let err = |e: nix::Error| WatchError::Inotify {
            dir: dir.to_path_buf(),
            source: std::io::Error::from(e),
        };
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(err)?;
        // CLOSE_WRITE: written in place; MOVED_TO: renamed in (whoopsie and
        // our own `upload` write a temporary file and rename it).
        inotify
            .add_watch(
                dir,
                AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_ONLYDIR
                    | AddWatchFlags::IN_DONT_FOLLOW
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF,
            )
            .map_err(err)?;
        let (to, events) = tokio::sync::mpsc::channel(64);
        let thread_dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || read_loop(&inotify, &thread_dir, &to))
            .map_err(|source| WatchError::Inotify {
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            events,
        })
    }

    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for events and returns the markers they name (possibly none,
    /// e.g. after other files changed), each once, in event order. When the
    /// kernel's queue overflowed, returns every pending marker instead.
    ///
    /// # Errors
    /// [`WatchError`]; [`WatchError::Gone`] when the directory went away.
    pub async fn next_markers(&mut self, max_age: Duration) -> Result<Vec<PathBuf>, WatchError> {
        let gone = || WatchError::Gone {
            dir: self.dir.clone(),
        };
        match self.events.recv().await.map(|s| s.0) {
            None | Some(Seen::Gone) => Err(gone()),
            Some(Seen::Failed(e)) => Err(WatchError::Inotify {
                dir: self.dir.clone(),
                source: e.into(),
            }),
            Some(Seen::Overflow) => {
                tracing::warn!(
                    "inotify queue overflowed: rescanning {}",
                    self.dir.display()
                );
                pending_markers(&self.dir, max_age)
            }
            Some(Seen::Markers(markers)) => Ok(markers),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_visible_uploaded_names_are_markers() {
        for good in ["_usr_bin_x.1000.uploaded", "a.uploaded"] {
            assert!(is_marker_name(OsStr::new(good)), "{good}");
        }
        for bad in [
            ".uploaded",
            ".x.uploaded",
            "x.crash",
            "x.upload",
            "x.uploaded.tmp",
            ".x.uploaded.0123.tmp",
        ] {
            assert!(!is_marker_name(OsStr::new(bad)), "{bad}");
        }
        assert_eq!(
            report_for_marker(Path::new("/var/crash/_usr_bin_x.1000.uploaded")).unwrap(),
            Path::new("/var/crash/_usr_bin_x.1000.crash")
        );
    }

    #[test]
    fn old_markers_and_links_are_not_pending() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("new.uploaded"), "x\n").unwrap();
        std::fs::write(dir.path().join("other.crash"), "x\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link.uploaded")).unwrap();
        let old = dir.path().join("old.uploaded");
        std::fs::write(&old, "x\n").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(30 * 86_400))
            .unwrap();
        // Planted by another user, dated in the future: never scanned.
        let planted = dir.path().join("planted.uploaded");
        std::fs::write(&planted, "x\n").unwrap();
        let f = std::fs::File::options().write(true).open(&planted).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(86_400))
            .unwrap();
        let other = crate::sys::effective_uid().wrapping_add(4242);
        let chowned = std::os::unix::fs::chown(&planted, Some(other), None);
        let pending = pending_markers(dir.path(), Duration::from_secs(7 * 86_400)).unwrap();
        if chowned.is_ok() {
            assert_eq!(pending, vec![dir.path().join("new.uploaded")]);
        } else {
            // Not root: the file stays ours, and is found as ours.
            assert_eq!(pending.len(), 2);
        }
        let me = nix::unistd::geteuid().as_raw();
        assert!(marker_owned_by_uploader(&dir.path().join("new.uploaded"), me).unwrap());
    }
}
