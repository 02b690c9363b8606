//! Results waiting for the server.
//!
//! One file per (OOPS id, hook id, hook version) in the spool directory,
//! named `{oops}+{hook}+{version}.entry` from validated ids only (never from
//! report data: CVE-2016-9950). A file is a magic line, one line of JSON
//! (ids, creation time, attempts, next attempt, last error, payload size)
//! and the payload. Every write goes through [`atomic_file`]
//! (temporary file, `fsync`, rename, `fsync` of the directory, mode 0600), so
//! an entry is whole or absent after a crash or a restart.
//!
//! - Bound: entry files together stay within `max_bytes` (the spec's 50 MB
//!   client cap). A new entry that would pass it first drops the oldest
//!   entries, each with a warning in the log. An entry larger than the whole
//!   bound is refused.
//! - Duplicates: putting the same key again replaces the entry.
//! - Order: [`Spool::pending`] lists the oldest first.
//! - Retry: [`Spool::record_failure`] counts the attempt and sets the next
//!   one after an exponential backoff with jitter, capped at
//!   [`BACKOFF_CAP_SECS`]; the state lives in the entry itself, so it
//!   survives restarts.
//! - Corruption: an entry that cannot be read back is moved to
//!   `quarantine/` (at most [`MAX_QUARANTINED`] files kept) with a warning,
//!   and the rest of the spool carries on.
//! - Concurrency: writers hold an exclusive lock on `.lock` in the directory;
//!   one process at a time sends the due entries (`.send-lock`, not waited
//!   for: another sender skips the spool).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod backoff;
mod key;

pub use backoff::{BACKOFF_BASE_SECS, BACKOFF_CAP_SECS, backoff_delay};
pub use key::EntryKey;

use super::atomic_file;
use super::ids::IdError;

/// First line of every entry file.
const MAGIC: &[u8] = b"apport-hooks-spool 1\n";
/// Name suffix of entry files.
pub const ENTRY_SUFFIX: &str = ".entry";
/// Where unreadable entries are moved.
pub const QUARANTINE_DIR: &str = "quarantine";
/// How many quarantined files are kept (the oldest go first).
pub const MAX_QUARANTINED: usize = 16;
/// Longest JSON header accepted.
pub const MAX_HEADER_BYTES: usize = 4096;
/// Longest error text kept in an entry.
pub const MAX_ERROR_CHARS: usize = 512;
/// Name of the lock file.
const LOCK_FILE: &str = ".lock";
/// Held by the one process sending the due entries ([`Spool::try_send_lock`]).
const SEND_LOCK_FILE: &str = ".send-lock";
/// Mode of entry files: results may hold private data.
const ENTRY_MODE: u32 = 0o600;

/// A spool operation failed.
#[derive(Debug, Error)]
pub enum SpoolError {
    /// A key part is not a valid id.
    #[error("invalid spool key: {0}")]
    BadKey(String),
    /// The entry alone is larger than the whole spool.
    #[error(
        "a result of {size} bytes does not fit in the spool ({max} bytes); \
         raise spool_max_bytes in hooks.conf if results this large are expected"
    )]
    TooLarge {
        /// The entry's size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The spool path is not a directory we may use.
    #[error("{path} is not a usable spool directory: {reason}")]
    NotADirectory {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No entry has this key.
    #[error("no spooled result for {0}")]
    NotFound(String),
    /// A file operation failed.
    #[error("spool {path}: {source}; check that the directory exists and is writable by this user")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl From<IdError> for SpoolError {
    fn from(e: IdError) -> Self {
        Self::BadKey(e.to_string())
    }
}

/// The JSON line of an entry file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    oops_id: String,
    hook_id: String,
    hook_version: u32,
    created_ns: u64,
    attempts: u32,
    next_attempt_at: u64,
    last_error: Option<String>,
    payload_bytes: u64,
}

/// One spooled result (its payload stays on disk until asked for).
#[derive(Debug, Clone)]
pub struct Entry {
    key: EntryKey,
    path: PathBuf,
    header: Header,
    payload_offset: u64,
    file_bytes: u64,
}

impl Entry {
    /// Which result this is.
    pub fn key(&self) -> &EntryKey {
        &self.key
    }

    /// When it was spooled, nanoseconds since the Unix epoch.
    pub fn created_ns(&self) -> u64 {
        self.header.created_ns
    }

    /// Failed delivery attempts so far.
    pub fn attempts(&self) -> u32 {
        self.header.attempts
    }

    /// Earliest time of the next attempt, Unix seconds.
    pub fn next_attempt_at(&self) -> u64 {
        self.header.next_attempt_at
    }

    /// Why the last attempt failed.
    pub fn last_error(&self) -> Option<&str> {
        self.header.last_error.as_deref()
    }

    /// Size of the payload in bytes.
    pub fn payload_bytes(&self) -> u64 {
        self.header.payload_bytes
    }

    /// Size of the entry file (what counts against the bound).
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Whether an attempt is due at `now` (Unix seconds).
    pub fn is_due(&self, now: u64) -> bool {
        self.header.next_attempt_at <= now
    }

    /// Opens the payload for streaming (no symlink followed).
    ///
    /// # Errors
    /// [`SpoolError::Io`]; [`SpoolError::NotFound`] if it was removed meanwhile.
    pub fn open_payload(&self) -> Result<impl Read + use<>, SpoolError> {
        let mut file = open_nofollow(&self.path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                SpoolError::NotFound(self.key.to_string())
            } else {
                SpoolError::Io {
                    path: self.path.clone(),
                    source,
                }
            }
        })?;
        file.seek(SeekFrom::Start(self.payload_offset))
            .map_err(|source| SpoolError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(file.take(self.header.payload_bytes))
    }

    /// Reads the whole payload.
    ///
    /// # Errors
    /// As [`Entry::open_payload`], or a payload shorter than its header says.
    pub fn read_payload(&self) -> Result<Vec<u8>, SpoolError> {
        let io = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        let mut data = Vec::new();
        let expected = usize::try_from(self.header.payload_bytes)
            .map_err(|e| io(io::Error::new(io::ErrorKind::OutOfMemory, e)))?;
        data.try_reserve_exact(expected)
            .map_err(|e| io(io::Error::new(io::ErrorKind::OutOfMemory, e)))?;
        self.open_payload()?.read_to_end(&mut data).map_err(io)?;
        if data.len() != expected {
            return Err(io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the payload is shorter than its header says",
            )));
        }
        Ok(data)
    }
}

/// What [`Spool::put`] did besides storing the entry.
#[derive(Debug, Default)]
pub struct PutOutcome {
    /// Entries dropped (oldest first) to stay within the bound.
    pub dropped: Vec<EntryKey>,
    /// Whether an entry with the same key was replaced.
    pub replaced: bool,
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_nanos(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn truncate_error(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

/// A spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

/// Reading one entry file failed: why, to quarantine it.
#[derive(Debug)]
enum ReadEntry {
    Ok(Entry),
    Gone,
    Corrupt(String),
}

impl Spool {
    /// Opens (creating with mode 0700 if missing) the spool at `dir` with a
    /// bound of `max_bytes`, and removes temporary files a crash left behind.
    ///
    /// # Errors
    /// [`SpoolError::NotADirectory`] for a symlink or a non-directory,
    /// [`SpoolError::Io`] otherwise.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, SpoolError> {
        let dir = dir.into();
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(SpoolError::Io { path: dir, source }),
        }
        let meta = std::fs::symlink_metadata(&dir).map_err(|source| SpoolError::Io {
            path: dir.clone(),
            source,
        })?;
        if !meta.file_type().is_dir() {
            return Err(SpoolError::NotADirectory {
                path: dir,
                reason: "it is not a directory (symbolic links are not followed)".into(),
            });
        }
        let spool = Self { dir, max_bytes };
        let _lock = spool.lock()?;
        for name in spool.names()? {
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(spool.dir.join(&name));
            }
        }
        Ok(spool)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn io(&self, path: &Path) -> impl FnOnce(io::Error) -> SpoolError + use<> {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { path, source }
    }

    fn lock(&self) -> Result<File, SpoolError> {
        let path = self.dir.join(LOCK_FILE);
        let file =
            atomic_file::open_lock(&self.dir, LOCK_FILE, ENTRY_MODE).map_err(self.io(&path))?;
        file.lock().map_err(self.io(&path))?;
        Ok(file)
    }

    /// `NotFound` when `key`'s entry is not the one created at `created_ns`
    /// (nothing to check without it); under the lock.
    fn check_same(&self, key: &EntryKey, created_ns: Option<u64>) -> Result<(), SpoolError> {
        let Some(created_ns) = created_ns else {
            return Ok(());
        };
        match self.read_entry(&key.file_name()) {
            ReadEntry::Ok(entry) if entry.header.created_ns == created_ns => Ok(()),
            _ => Err(SpoolError::NotFound(key.to_string())),
        }
    }

    /// The right to send the due entries, when no other process is
    /// sending them (`None`): two senders would post the same results and
    /// rewrite each other's entries under them. Held until dropped.
    ///
    /// # Errors
    /// The lock file cannot be opened.
    pub fn try_send_lock(&self) -> Result<Option<File>, SpoolError> {
        let path = self.dir.join(SEND_LOCK_FILE);
        let file = atomic_file::open_lock(&self.dir, SEND_LOCK_FILE, ENTRY_MODE)
            .map_err(self.io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(self.io(&path)(e)),
        }
    }

    fn names(&self) -> Result<Vec<String>, SpoolError> {
        let mut names = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(self.io(&self.dir))? {
            let item = item.map_err(self.io(&self.dir))?;
            if let Ok(name) = item.file_name().into_string() {
                names.push(name);
            } else {
                names.push(item.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn read_entry(&self, name: &str) -> ReadEntry {
        let Some(key) = EntryKey::from_file_name(name) else {
            return ReadEntry::Corrupt("the file name is not a valid entry name".into());
        };
        let path = self.dir.join(name);
        let file = match open_nofollow(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return ReadEntry::Gone,
            Err(e) => return ReadEntry::Corrupt(format!("cannot open: {e}")),
        };
        let file_bytes = match file.metadata() {
            Ok(meta) if meta.file_type().is_file() => meta.len(),
            Ok(_) => return ReadEntry::Corrupt("not a regular file".into()),
            Err(e) => return ReadEntry::Corrupt(format!("cannot stat: {e}")),
        };
        let mut reader =
            BufReader::new(file.take(
                u64::try_from(MAGIC.len().saturating_add(MAX_HEADER_BYTES)).unwrap_or(u64::MAX),
            ));
        let mut magic = vec![0u8; MAGIC.len()];
        if reader.read_exact(&mut magic).is_err() || magic != MAGIC {
            return ReadEntry::Corrupt("bad magic line".into());
        }
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).is_err() || line.last() != Some(&b'\n') {
            return ReadEntry::Corrupt("header line missing or too long".into());
        }
        let header: Header = match serde_json::from_slice(&line) {
            Ok(header) => header,
            Err(e) => return ReadEntry::Corrupt(format!("bad header: {e}")),
        };
        if header.oops_id != key.oops().as_str()
            || header.hook_id != key.hook_id()
            || header.hook_version != key.hook_version()
        {
            return ReadEntry::Corrupt("the header does not match the file name".into());
        }
        let payload_offset =
            u64::try_from(MAGIC.len().saturating_add(line.len())).unwrap_or(u64::MAX);
        if payload_offset.checked_add(header.payload_bytes) != Some(file_bytes) {
            return ReadEntry::Corrupt(format!(
                "the file is {file_bytes} bytes, its header promises {} of payload after {payload_offset}",
                header.payload_bytes
            ));
        }
        ReadEntry::Ok(Entry {
            key,
            path,
            header,
            payload_offset,
            file_bytes,
        })
    }

    fn quarantine(&self, name: &str, reason: &str) -> Result<(), SpoolError> {
        let qdir = self.dir.join(QUARANTINE_DIR);
        match std::fs::DirBuilder::new().mode(0o700).create(&qdir) {
            Ok(()) => {
                // Made by root for the service's spool: the service (the
                // spool's owner) must still be able to move entries in.
                let opened =
                    File::open(&qdir).and_then(|d| atomic_file::adopt_dir_owner(&d, &self.dir));
                if let Err(source) = opened {
                    return Err(SpoolError::Io { path: qdir, source });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(SpoolError::Io { path: qdir, source }),
        }
        let stamp = unix_nanos(SystemTime::now());
        let target = qdir.join(format!("{stamp}-{name}"));
        tracing::warn!(
            "spool entry {} is unreadable ({reason}); moved to {}",
            self.dir.join(name).display(),
            target.display()
        );
        std::fs::rename(self.dir.join(name), &target).map_err(self.io(&target))?;
        let mut kept: Vec<String> = std::fs::read_dir(&qdir)
            .map_err(self.io(&qdir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        kept.sort_by_key(|n| {
            n.split_once('-')
                .and_then(|(s, _)| s.parse::<u64>().ok())
                .unwrap_or(0)
        });
        let excess = kept.len().saturating_sub(MAX_QUARANTINED);
        for old in kept.iter().take(excess) {
            let _ = std::fs::remove_file(qdir.join(old));
        }
        Ok(())
    }

    fn entries_locked(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut entries = Vec::new();
        for name in self.names()? {
            if name.starts_with('.') || name == QUARANTINE_DIR {
                continue;
            }
            match self.read_entry(&name) {
                ReadEntry::Ok(entry) => entries.push(entry),
                ReadEntry::Gone => {}
                ReadEntry::Corrupt(reason) => self.quarantine(&name, &reason)?,
            }
        }
        entries.sort_by(|a, b| {
            (a.header.created_ns, a.key.file_name()).cmp(&(b.header.created_ns, b.key.file_name()))
        });
        Ok(entries)
    }

    /// Every entry, oldest first. Unreadable entries are quarantined.
    ///
    /// # Errors
    /// [`SpoolError::Io`] if the directory cannot be read.
    pub fn pending(&self) -> Result<Vec<Entry>, SpoolError> {
        let _lock = self.lock()?;
        self.entries_locked()
    }

    /// Lists the entries of the spool at `dir` without taking the lock,
    /// creating anything or quarantining (for `apport-hook status`, which
    /// may run as a user who can read but not write the spool). Returns the
    /// readable entries, oldest first, and the number of unreadable ones.
    ///
    /// # Errors
    /// [`SpoolError::Io`] if the directory cannot be read.
    pub fn inspect(dir: &Path) -> Result<(Vec<Entry>, usize), SpoolError> {
        let spool = Self {
            dir: dir.to_path_buf(),
            max_bytes: u64::MAX,
        };
        let mut entries = Vec::new();
        let mut unreadable = 0usize;
        for name in spool.names()? {
            if name.starts_with('.') || name == QUARANTINE_DIR {
                continue;
            }
            match spool.read_entry(&name) {
                ReadEntry::Ok(entry) => entries.push(entry),
                ReadEntry::Gone => {}
                ReadEntry::Corrupt(_) => unreadable = unreadable.saturating_add(1),
            }
        }
        entries.sort_by(|a, b| {
            (a.header.created_ns, a.key.file_name()).cmp(&(b.header.created_ns, b.key.file_name()))
        });
        Ok((entries, unreadable))
    }

    /// The entries due at `now`, oldest first.
    ///
    /// # Errors
    /// As [`Spool::pending`].
    pub fn due(&self, now: SystemTime) -> Result<Vec<Entry>, SpoolError> {
        let now = unix_secs(now);
        Ok(self
            .pending()?
            .into_iter()
            .filter(|e| e.is_due(now))
            .collect())
    }

    /// Total size of the entry files in bytes.
    ///
    /// # Errors
    /// As [`Spool::pending`].
    pub fn total_bytes(&self) -> Result<u64, SpoolError> {
        Ok(self
            .pending()?
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.file_bytes)))
    }

    fn write_entry(
        &self,
        header: &Header,
        payload: &mut dyn Read,
    ) -> Result<(File, PathBuf, u64), SpoolError> {
        let mut json =
            serde_json::to_vec(header).map_err(|e| self.io(&self.dir)(io::Error::other(e)))?;
        json.push(b'\n');
        let name = format!(
            "{}+{}+{}",
            header.oops_id, header.hook_id, header.hook_version
        );
        let (mut file, temp) =
            atomic_file::create_temp(&self.dir, &name, ENTRY_MODE).map_err(self.io(&self.dir))?;
        let written = (|| {
            file.write_all(MAGIC)?;
            file.write_all(&json)?;
            let copied = io::copy(
                &mut payload.take(header.payload_bytes.saturating_add(1)),
                &mut file,
            )?;
            if copied != header.payload_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the payload changed size while it was spooled",
                ));
            }
            Ok(u64::try_from(MAGIC.len().saturating_add(json.len()))
                .unwrap_or(u64::MAX)
                .saturating_add(copied))
        })();
        match written {
            Ok(size) => Ok((file, temp, size)),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(self.io(&temp)(e))
            }
        }
    }

    /// Stores `payload` under `key` at time `now`, replacing an entry with
    /// the same key and dropping the oldest others if the bound requires.
    ///
    /// # Errors
    /// [`SpoolError::TooLarge`] if it cannot fit even in an empty spool,
    /// [`SpoolError::Io`] otherwise (the spool is then unchanged).
    pub fn put(
        &self,
        key: &EntryKey,
        payload: &[u8],
        now: SystemTime,
    ) -> Result<PutOutcome, SpoolError> {
        let len = u64::try_from(payload.len()).unwrap_or(u64::MAX);
        self.put_reader(key, &mut &payload[..], len, now)
    }

    /// As [`Spool::put`], streaming exactly `len` payload bytes from
    /// `payload` to disk (a large result never has to sit in memory).
    ///
    /// # Errors
    /// As [`Spool::put`]; also [`SpoolError::Io`] when `payload` yields more
    /// or fewer than `len` bytes.
    pub fn put_reader(
        &self,
        key: &EntryKey,
        payload: &mut dyn Read,
        len: u64,
        now: SystemTime,
    ) -> Result<PutOutcome, SpoolError> {
        let header = Header {
            oops_id: key.oops().to_string(),
            hook_id: key.hook_id().to_owned(),
            hook_version: key.hook_version(),
            created_ns: unix_nanos(now),
            attempts: 0,
            next_attempt_at: unix_secs(now),
            last_error: None,
            payload_bytes: len,
        };
        if len > self.max_bytes {
            return Err(SpoolError::TooLarge {
                size: len,
                max: self.max_bytes,
            });
        }
        let _lock = self.lock()?;
        let (file, temp, size) = self.write_entry(&header, payload)?;
        if size > self.max_bytes {
            let _ = std::fs::remove_file(&temp);
            return Err(SpoolError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        let name = key.file_name();
        let mut outcome = PutOutcome::default();
        let others: Vec<Entry> = match self.entries_locked() {
            Ok(entries) => entries,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        let mut total = size;
        for entry in &others {
            if entry.key == *key {
                outcome.replaced = true;
            } else {
                total = total.saturating_add(entry.file_bytes);
            }
        }
        // The new entry first: if it cannot be committed, nothing older
        // has been given up for it.
        atomic_file::commit(file, &temp, &self.dir, &name).map_err(self.io(&self.dir))?;
        for entry in others.iter().filter(|e| e.key != *key) {
            if total <= self.max_bytes {
                break;
            }
            tracing::warn!(
                "spool {} is full ({} bytes max): dropping the oldest result, {} ({} bytes, {} failed attempts)",
                self.dir.display(),
                self.max_bytes,
                entry.key,
                entry.file_bytes,
                entry.header.attempts
            );
            match std::fs::remove_file(&entry.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // The spool stays over its bound until the next put.
                    tracing::warn!("cannot drop {} from the spool: {e}", entry.path.display());
                    continue;
                }
            }
            total = total.saturating_sub(entry.file_bytes);
            outcome.dropped.push(entry.key.clone());
        }
        if !outcome.dropped.is_empty() {
            atomic_file::sync_dir(&self.dir).map_err(self.io(&self.dir))?;
        }
        Ok(outcome)
    }

    /// Removes the entry for `key` after the server accepted it (or answered
    /// that it already had it).
    ///
    /// # Errors
    /// [`SpoolError::NotFound`] if there is none, [`SpoolError::Io`].
    pub fn mark_delivered(&self, key: &EntryKey) -> Result<(), SpoolError> {
        self.mark_delivered_if(key, None)
    }

    /// [`Spool::mark_delivered`], but only when the entry is still the one
    /// created at `created_ns` (when given): a result put again under the
    /// same key while the old one was being sent is not removed.
    ///
    /// # Errors
    /// [`SpoolError::NotFound`] if there is no such entry, [`SpoolError::Io`].
    pub fn mark_delivered_if(
        &self,
        key: &EntryKey,
        created_ns: Option<u64>,
    ) -> Result<(), SpoolError> {
        let _lock = self.lock()?;
        self.check_same(key, created_ns)?;
        let path = self.dir.join(key.file_name());
        match std::fs::remove_file(&path) {
            Ok(()) => atomic_file::sync_dir(&self.dir).map_err(self.io(&self.dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(SpoolError::NotFound(key.to_string()))
            }
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    /// Records a failed attempt at `now`: one more attempt, the error, and
    /// the next attempt after [`backoff_delay`]. Returns the updated entry.
    ///
    /// # Errors
    /// [`SpoolError::NotFound`] if the entry is gone, [`SpoolError::Io`].
    pub fn record_failure(
        &self,
        key: &EntryKey,
        error: &str,
        now: SystemTime,
    ) -> Result<Entry, SpoolError> {
        self.record_failure_if(key, None, error, now)
    }

    /// [`Spool::record_failure`], but only when the entry is still the one
    /// created at `created_ns` (when given).
    ///
    /// # Errors
    /// [`SpoolError::NotFound`] if the entry is gone or was replaced,
    /// [`SpoolError::Io`].
    pub fn record_failure_if(
        &self,
        key: &EntryKey,
        created_ns: Option<u64>,
        error: &str,
        now: SystemTime,
    ) -> Result<Entry, SpoolError> {
        let _lock = self.lock()?;
        let name = key.file_name();
        let entry = match self.read_entry(&name) {
            ReadEntry::Ok(entry) if created_ns.is_some_and(|c| c != entry.header.created_ns) => {
                return Err(SpoolError::NotFound(key.to_string()));
            }
            ReadEntry::Ok(entry) => entry,
            ReadEntry::Gone => return Err(SpoolError::NotFound(key.to_string())),
            ReadEntry::Corrupt(reason) => {
                self.quarantine(&name, &reason)?;
                return Err(SpoolError::NotFound(key.to_string()));
            }
        };
        let mut header = entry.header.clone();
        header.attempts = header.attempts.saturating_add(1);
        let delay = backoff_delay(header.attempts, &mut rand::rng());
        header.next_attempt_at = unix_secs(now).saturating_add(delay.as_secs());
        header.last_error = Some(truncate_error(error));
        let mut payload = entry.open_payload()?;
        let (file, temp, _) = self.write_entry(&header, &mut payload)?;
        atomic_file::commit(file, &temp, &self.dir, &name).map_err(self.io(&self.dir))?;
        match self.read_entry(&name) {
            ReadEntry::Ok(entry) => Ok(entry),
            _ => Err(SpoolError::NotFound(key.to_string())),
        }
    }
}
