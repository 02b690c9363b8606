//! Anti-rollback: a per-hook high-water mark of the bundles this machine ran.
//!
//! A signature says the server issued a bundle, not that it is the current
//! one. A compromised server or mirror (or anyone who kept an old download)
//! could replay an older, validly signed bundle of the same hook, one the
//! server since replaced, say because it read too much, until that old
//! bundle expires. So apportd remembers, per hook name (every version of a
//! hook has a bundle id of its own, `NAME-VERSION` from daisy, so ids would
//! never compare two versions), the newest `issued_at` and `version` it
//! accepted, and refuses a bundle older in either. The same bundle again
//! (equal `issued_at` and `version`) is allowed.
//!
//! The marks live in one small root-only file, `STATE_DIR/bundle-high-water`,
//! one `NAME ISSUED_AT VERSION` line per hook, rewritten atomically (a new file
//! created `O_EXCL|O_NOFOLLOW`, fsynced, renamed over the old one). A file that
//! cannot be trusted fails closed: a malformed line refuses that hook's
//! bundles, an unreadable or oversized file refuses every bundle, each with
//! an error naming the file and what to do. Marks older than any bundle that
//! could still be valid (`MAX_BUNDLE_DAYS` plus the clock-skew allowance) are
//! pruned: every bundle they would refuse is refused as expired anyway.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::bundle::{CLOCK_SKEW_SECS, MAX_BUNDLE_LIFETIME_SECS, check_bundle_id};

/// Where apportd keeps its state unless the configuration says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/apportd";
/// The high-water file's name in the state directory.
pub const STATE_FILE: &str = "bundle-high-water";
/// The largest high-water file read.
pub const MAX_STATE_BYTES: u64 = 1024 * 1024;
/// At most this many hooks are remembered; over it, the oldest marks go.
pub const MAX_ENTRIES: usize = 10_000;

const TEMP_FILE: &str = ".bundle-high-water.new";
const HEADER: &str = "# apportd: newest bundle seen per hook: NAME ISSUED_AT VERSION\n";
/// The header of files written before marks were kept per hook name: their
/// lines are keyed by bundle id (`NAME-VERSION` from daisy), which would be
/// taken for the marks of other hooks (hook `foo-2` for bundle `foo-2` of
/// hook `foo`), so such a file's marks are dropped and the file is written
/// anew with the next mark.
const HEADER_BY_BUNDLE_ID: &str = "# apportd: newest bundle seen per hook id: ID ISSUED_AT VERSION";

/// The newest bundle of one hook accepted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Its `issued_at`, Unix seconds.
    pub issued_at: i64,
    /// Its version.
    pub version: u32,
}

/// Why a bundle was refused, or the marks could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// An older bundle of a hook than one already run.
    #[error(
        "hook {id} version {version} issued at {issued_at} (Unix time) is older than one this \
         machine already ran (version {seen_version}, issued at {seen_issued_at}); an old bundle \
         replayed is refused: fetch the hook's current bundle from the server"
    )]
    Older {
        /// The bundle id.
        id: String,
        /// The refused bundle's version.
        version: u32,
        /// The refused bundle's `issued_at`.
        issued_at: i64,
        /// The newest version seen.
        seen_version: u32,
        /// The newest `issued_at` seen.
        seen_issued_at: i64,
    },
    /// This hook's line in the state file is malformed.
    #[error(
        "{path} line {line} (hook {id}) is corrupt: {why}; bundles of this hook are refused \
         until an administrator fixes or deletes that line"
    )]
    CorruptEntry {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The hook id on that line.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// The state file as a whole cannot be trusted.
    #[error(
        "{path} is corrupt: {why}; every signed bundle is refused until an administrator fixes \
         or deletes it"
    )]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A hook name that cannot be a key of the state file.
    #[error("hook name {id:?} cannot be remembered: {why}; the bundle is refused")]
    BadName {
        /// The name.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// The state directory or file could not be used.
    #[error(
        "{path}: {why}; signed bundles are refused until apportd can keep its state there (a \
         root-owned directory, mode 0700)"
    )]
    State {
        /// The directory or file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
}

impl RollbackError {
    /// A short reason code, like the bundle module's, for the start of the bus error.
    pub fn code(&self) -> &'static str {
        match self {
            RollbackError::Older { .. } => "rolled-back",
            RollbackError::CorruptEntry { .. } | RollbackError::CorruptFile { .. } => {
                "rollback-state-corrupt"
            }
            RollbackError::State { .. } => "rollback-state-unavailable",
            RollbackError::BadName { .. } => "invalid-hook-name",
        }
    }
}

/// The marks, as read from the file.
#[derive(Debug, Default)]
struct Marks {
    marks: BTreeMap<String, Mark>,
    /// Ids whose line is malformed: line number, what is wrong, the line.
    poisoned: BTreeMap<String, (usize, String, String)>,
}

/// The high-water marks in one state directory.
#[derive(Debug)]
pub struct HighWater {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl HighWater {
    /// Marks kept in `dir` (created 0700 on first use).
    pub fn new(dir: PathBuf) -> Self {
        HighWater {
            dir,
            lock: Mutex::new(()),
        }
    }

    /// The state file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Refuse a bundle of hook `id` (its name) if it is older (`issued_at`
    /// or `version`) than the newest one accepted before; otherwise record
    /// it and return `Ok`.
    /// Call only for a bundle whose signature and validity were verified.
    pub fn check_and_record(
        &self,
        id: &str,
        version: u32,
        issued_at: i64,
        now: i64,
    ) -> Result<(), RollbackError> {
        // The key goes into a line-based file: the grammar the file's
        // reader accepts, checked before anything is read or written.
        check_bundle_id(id).map_err(|why| RollbackError::BadName {
            id: id.to_owned(),
            why,
        })?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.ensure_dir()?;
        let path = self.file();
        let mut state = read_marks(&path)?;
        if let Some((line, why, _)) = state.poisoned.get(id) {
            return Err(RollbackError::CorruptEntry {
                path,
                line: *line,
                id: id.to_owned(),
                why: why.clone(),
            });
        }
        let new = Mark { issued_at, version };
        match state.marks.get(id) {
            Some(seen) if issued_at < seen.issued_at || version < seen.version => {
                return Err(RollbackError::Older {
                    id: id.to_owned(),
                    version,
                    issued_at,
                    seen_version: seen.version,
                    seen_issued_at: seen.issued_at,
                });
            }
            Some(seen) if *seen == new => return Ok(()),
            _ => {}
        }
        state.marks.insert(id.to_owned(), new);
        prune(&mut state.marks, now);
        self.write(&state)
    }

    /// Create the directory (0700) if missing; refuse one that is a
    /// symlink, not a directory, not ours, or writable by others.
    fn ensure_dir(&self) -> Result<(), RollbackError> {
        let state_error = |why: String| RollbackError::State {
            path: self.dir.clone(),
            why,
        };
        match std::fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.dir)
                    .map_err(|e| state_error(format!("cannot create it: {e}")))?;
            }
            Err(e) => return Err(state_error(e.to_string())),
            Ok(_) => {}
        }
        let meta = std::fs::symlink_metadata(&self.dir).map_err(|e| state_error(e.to_string()))?;
        if !meta.file_type().is_dir() {
            return Err(state_error("not a directory (or a symlink)".into()));
        }
        if meta.uid() != crate::sys::effective_uid() {
            return Err(state_error(format!(
                "owned by uid {}, not by apportd",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(state_error(format!(
                "mode {:o} lets others write it",
                meta.mode() & 0o7777
            )));
        }
        Ok(())
    }

    fn write(&self, state: &Marks) -> Result<(), RollbackError> {
        let temp = self.dir.join(TEMP_FILE);
        let io_error = |what: &str, e: std::io::Error| RollbackError::State {
            path: temp.clone(),
            why: format!("{what}: {e}"),
        };
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error("removing a stale copy", e));
            }
            _ => {}
        }
        let mut text = String::from(HEADER);
        for (id, mark) in &state.marks {
            text.push_str(&format!("{id} {} {}\n", mark.issued_at, mark.version));
        }
        // Malformed lines stay as they were: the administrator fixes them.
        for (_, _, line) in state.poisoned.values() {
            text.push_str(line);
            text.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .map_err(|e| io_error("creating", e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("writing", e))?;
        drop(file);
        std::fs::rename(&temp, self.file()).map_err(|e| io_error("renaming into place", e))?;
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io_error("syncing the directory", e))
    }
}

/// Drop marks no valid bundle could be older than, then the oldest marks
/// over [`MAX_ENTRIES`].
fn prune(marks: &mut BTreeMap<String, Mark>, now: i64) {
    let horizon = now
        .saturating_sub(MAX_BUNDLE_LIFETIME_SECS)
        .saturating_sub(CLOCK_SKEW_SECS);
    marks.retain(|_, mark| mark.issued_at >= horizon);
    let excess = marks.len().saturating_sub(MAX_ENTRIES);
    if excess > 0 {
        let mut by_age: Vec<(i64, String)> = marks
            .iter()
            .map(|(id, mark)| (mark.issued_at, id.clone()))
            .collect();
        by_age.sort();
        for (_, id) in by_age.into_iter().take(excess) {
            tracing::warn!(hook = %id, "bundle high-water marks are full: forgetting the oldest");
            marks.remove(&id);
        }
    }
}

/// Read the marks; a missing file is empty.
fn read_marks(path: &Path) -> Result<Marks, RollbackError> {
    let corrupt = |why: String| RollbackError::CorruptFile {
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Marks::default()),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(corrupt("it is a symlink".into()));
        }
        Err(e) => {
            return Err(RollbackError::State {
                path: path.to_path_buf(),
                why: e.to_string(),
            });
        }
    };
    let meta = file.metadata().map_err(|e| corrupt(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(corrupt("not a regular file".into()));
    }
    if meta.len() > MAX_STATE_BYTES {
        return Err(corrupt(format!(
            "{} bytes, over the {MAX_STATE_BYTES}-byte cap",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8".into()))?;
    parse_marks(&text).map_err(corrupt)
}

/// Parse the file's text. A line whose hook id is readable but whose rest is
/// not poisons that id; a line without a readable id, or too many lines,
/// makes the whole file untrustworthy (`Err`).
fn parse_marks(text: &str) -> Result<Marks, String> {
    let mut state = Marks::default();
    if text.lines().next().map(str::trim) == Some(HEADER_BY_BUNDLE_ID) {
        return Ok(state);
    }
    for (index, line) in text.lines().enumerate() {
        let number = index.saturating_add(1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if state.marks.len().saturating_add(state.poisoned.len()) >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let mut words = line.split_whitespace();
        let id = words.next().unwrap_or_default();
        check_bundle_id(id).map_err(|why| format!("line {number}: {why}"))?;
        let fields: Vec<&str> = words.collect();
        let parsed = match fields.as_slice() {
            [issued_at, version] => issued_at
                .parse::<i64>()
                .ok()
                .filter(|t| *t >= 0)
                .zip(version.parse::<u32>().ok())
                .map(|(issued_at, version)| Mark { issued_at, version }),
            _ => None,
        };
        let duplicate = state.marks.contains_key(id) || state.poisoned.contains_key(id);
        match parsed {
            Some(mark) if !duplicate => {
                state.marks.insert(id.to_owned(), mark);
            }
            _ => {
                let why = if duplicate {
                    "the hook appears twice"
                } else {
                    "expected `NAME ISSUED_AT VERSION` with ISSUED_AT >= 0"
                };
                state.marks.remove(id);
                state.poisoned.entry(id.to_owned()).or_insert((
                    number,
                    why.to_owned(),
                    line.to_owned(),
                ));
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn high_water() -> (tempfile::TempDir, HighWater) {
        let dir = tempfile::tempdir().unwrap();
        let marks = HighWater::new(dir.path().join("state"));
        (dir, marks)
    }

    #[test]
    fn an_older_bundle_of_a_hook_is_refused_and_the_same_one_again_is_not() {
        let (_dir, marks) = high_water();
        marks.check_and_record("hook-a", 2, NOW - 10, NOW).unwrap();
        marks.check_and_record("hook-a", 2, NOW - 10, NOW).unwrap();
        let older = marks
            .check_and_record("hook-a", 1, NOW - 100, NOW)
            .unwrap_err();
        assert_eq!(older.code(), "rolled-back", "{older}");
        // Older in either: an old version signed again later, an early signature.
        assert!(marks.check_and_record("hook-a", 1, NOW, NOW).is_err());
        assert!(marks.check_and_record("hook-a", 3, NOW - 20, NOW).is_err());
        // Other hooks are not affected; newer is accepted and raises the mark.
        marks.check_and_record("hook-b", 1, NOW - 100, NOW).unwrap();
        marks.check_and_record("hook-a", 3, NOW, NOW).unwrap();
        assert!(marks.check_and_record("hook-a", 2, NOW - 10, NOW).is_err());
        let meta = std::fs::metadata(marks.file()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let dir_meta = std::fs::metadata(marks.file().parent().unwrap()).unwrap();
        assert_eq!(dir_meta.mode() & 0o777, 0o700);
    }

    #[test]
    fn marks_of_the_bundle_id_format_are_dropped_not_taken_for_names() {
        let (_dir, marks) = high_water();
        marks.check_and_record("seed", 1, NOW, NOW).unwrap();
        // Bundle `foo-2` (hook `foo`, version 2) as an earlier apportd kept it.
        std::fs::write(
            marks.file(),
            format!("{HEADER_BY_BUNDLE_ID}\nfoo-2 {} 2\n", NOW - 10),
        )
        .unwrap();
        // Hook `foo-2`, version 1, older: not a rollback of bundle `foo-2`.
        marks.check_and_record("foo-2", 1, NOW - 100, NOW).unwrap();
        let text = std::fs::read_to_string(marks.file()).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        assert!(text.contains(&format!("foo-2 {} 1", NOW - 100)), "{text}");
    }

    #[test]
    fn a_hook_name_that_cannot_be_a_key_is_refused_and_nothing_is_written() {
        let (_dir, marks) = high_water();
        for name in ["", "two words", "line\nbreak", ".hidden"] {
            let err = marks.check_and_record(name, 1, NOW, NOW).unwrap_err();
            assert_eq!(err.code(), "invalid-hook-name", "{name:?}: {err}");
        }
        assert!(!marks.file().exists());
    }

    #[test]
    fn a_corrupt_line_fails_closed_for_its_hook_only() {
        let (_dir, marks) = high_water();
        marks.check_and_record("hook-a", 1, NOW, NOW).unwrap();
        std::fs::write(marks.file(), "hook-a 12x 1\nhook-b 5 1\n").unwrap();
        let error = marks.check_and_record("hook-a", 9, NOW, NOW).unwrap_err();
        assert!(
            matches!(error, RollbackError::CorruptEntry { line: 1, .. }),
            "{error}"
        );
        assert_eq!(error.code(), "rollback-state-corrupt");
        marks.check_and_record("hook-b", 1, NOW, NOW).unwrap();
        // Still refused after another hook's mark was written.
        assert!(marks.check_and_record("hook-a", 9, NOW, NOW).is_err());
    }

    #[test]
    fn an_unreadable_file_fails_closed_for_every_hook() {
        let (_dir, marks) = high_water();
        marks.check_and_record("hook-a", 1, NOW, NOW).unwrap();
        for garbage in [&b"\xff\xfe binary"[..], b"../etc/passwd 1 1\n"] {
            std::fs::write(marks.file(), garbage).unwrap();
            let error = marks.check_and_record("hook-new", 1, NOW, NOW).unwrap_err();
            assert!(
                matches!(error, RollbackError::CorruptFile { .. }),
                "{error}"
            );
        }
        std::fs::write(marks.file(), vec![b'#'; 2 * 1024 * 1024]).unwrap();
        assert!(marks.check_and_record("hook-new", 1, NOW, NOW).is_err());
        std::fs::remove_file(marks.file()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", marks.file()).unwrap();
        let error = marks.check_and_record("hook-new", 1, NOW, NOW).unwrap_err();
        assert!(error.to_string().contains("symlink"), "{error}");
    }

    #[test]
    fn marks_no_valid_bundle_could_be_older_than_are_pruned() {
        let mut marks = BTreeMap::from([
            (
                "old".to_owned(),
                Mark {
                    issued_at: NOW - MAX_BUNDLE_LIFETIME_SECS - CLOCK_SKEW_SECS - 1,
                    version: 1,
                },
            ),
            (
                "new".to_owned(),
                Mark {
                    issued_at: NOW - 5,
                    version: 1,
                },
            ),
        ]);
        prune(&mut marks, NOW);
        assert_eq!(marks.keys().collect::<Vec<_>>(), ["new"]);
    }

    #[test]
    fn a_state_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, marks) = high_water();
        marks.check_and_record("hook-a", 1, NOW, NOW).unwrap();
        let dir = marks.file().parent().unwrap().to_path_buf();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = marks.check_and_record("hook-a", 1, NOW, NOW).unwrap_err();
        assert_eq!(error.code(), "rollback-state-unavailable", "{error}");
    }
}
