//! The client's trusted signing keys and the list of revoked ones.
//!
//! Every `*.pub` file (minisign public key format) in each key directory is
//! trusted. Several keys may be trusted at once so the server can rotate:
//! ship the new key, sign with it, then revoke the old one. A revoked key id
//! is refused even while its `.pub` file is still installed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::key_id::KeyId;
use super::regular_file::{
    RegularFileError, check_trusted_dir, check_trusted_parent, read_trusted_file,
};

/// Key directory shipped by the distribution package.
pub const DEFAULT_KEY_DIR: &str = "/usr/share/apport-hooks/keys/";

/// Key directory for keys the local administrator adds.
pub const LOCAL_KEY_DIR: &str = "/etc/apport-hooks/keys.d/";

/// Both default key directories, in the order they are read.
pub const DEFAULT_KEY_DIRS: [&str; 2] = [DEFAULT_KEY_DIR, LOCAL_KEY_DIR];

/// Default revocation list: one key id per line.
pub const DEFAULT_REVOKED_KEYS: &str = "/etc/apport-hooks/revoked-keys";

/// Largest `.pub` file read, in bytes (a real one is about 100).
pub const MAX_PUBLIC_KEY_FILE_BYTES: u64 = 4096;

/// Largest revocation list read, in bytes.
pub const MAX_REVOCATION_LIST_BYTES: u64 = 256 * 1024;

/// Most `.pub` files read from one directory; the rest are skipped.
pub const MAX_KEY_FILES_PER_DIR: usize = 256;

/// A key file that was not trusted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKeyFile {
    /// The file.
    pub path: PathBuf,
    /// Why it is not trusted.
    pub reason: String,
}

/// A trusted public key and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct TrustedKey {
    pub path: PathBuf,
    pub key: minisign_verify::PublicKey,
    /// The 32 Ed25519 key bytes, to spot one key under two ids.
    pub ed25519: [u8; 32],
}

/// Why the key ring could not be loaded. Loading fails closed: an
/// unreadable revocation list is an error, not an empty list.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A key directory exists but cannot be listed.
    #[error("cannot list key directory {}: {source}; fix its permissions or remove it", path.display())]
    KeyDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A key directory, or a directory above it, can be written by a user
    /// other than root: anyone could add a key hooks would run as root for.
    #[error("key directory {} is not trusted: {source}", path.display())]
    InsecureKeyDir {
        /// The key directory.
        path: PathBuf,
        /// What is wrong, and with which directory.
        #[source]
        source: RegularFileError,
    },
    /// The revocation list exists but cannot be read safely, or it (or a
    /// directory above it) can be written by a user other than root, who
    /// could un-revoke a key by editing or deleting it.
    #[error("cannot read the revocation list: {0}; no bundle is trusted until it is fixed")]
    RevocationList(#[source] RegularFileError),
    /// A line of the revocation list is not a key id.
    #[error(
        "{}:{line}: `{text}` is not a key id (16 hex digits as minisign prints them, or a `#` comment); no bundle is trusted until it is fixed",
        path.display()
    )]
    RevocationLine {
        /// The revocation list.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending text (truncated).
        text: String,
    },
}

/// The keys a client trusts to sign hook bundles.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    pub(crate) keys: BTreeMap<KeyId, TrustedKey>,
    pub(crate) revoked: BTreeSet<KeyId>,
    skipped: Vec<SkippedKeyFile>,
}

impl KeyRing {
    /// Loads every `*.pub` in each of `dirs` and the optional revocation list.
    ///
    /// A missing directory or revocation list counts as empty. Key files are
    /// opened without following symlinks and must be regular files of at
    /// most [`MAX_PUBLIC_KEY_FILE_BYTES`]; files that are not (or that do not
    /// hold a minisign public key) are not trusted and are listed by
    /// [`KeyRing::skipped`]. Hidden files (`.name.pub`) are ignored. When two
    /// files hold the same key id, the first one read wins. A key held by
    /// two files under two different ids is not trusted at all (signatures
    /// do not sign the key id, so it would defeat revoking one of the ids).
    ///
    /// Trust material must be writable only by root or the current user: a
    /// key file that is not is skipped; a key directory, the revocation list
    /// or a directory above either that is not makes loading fail.
    pub fn load(dirs: &[PathBuf], revoked: Option<&Path>) -> Result<Self, KeyRingError> {
        let mut ring = Self::default();
        for dir in dirs {
            ring.load_dir(dir)?;
        }
        ring.drop_keys_under_two_ids();
        if let Some(path) = revoked {
            ring.revoked = load_revocation_list(path)?;
        }
        Ok(ring)
    }

    /// Loads [`DEFAULT_KEY_DIRS`] and [`DEFAULT_REVOKED_KEYS`].
    pub fn load_default() -> Result<Self, KeyRingError> {
        let dirs: Vec<PathBuf> = DEFAULT_KEY_DIRS.iter().map(PathBuf::from).collect();
        Self::load(&dirs, Some(Path::new(DEFAULT_REVOKED_KEYS)))
    }

    /// The ids of the trusted keys (revoked ones included), sorted.
    pub fn trusted_key_ids(&self) -> Vec<KeyId> {
        self.keys.keys().copied().collect()
    }

    /// Where the trusted key with this id was loaded from.
    pub fn key_path(&self, id: KeyId) -> Option<&Path> {
        self.keys.get(&id).map(|k| k.path.as_path())
    }

    /// True when the revocation list names this key id.
    pub fn is_revoked(&self, id: KeyId) -> bool {
        self.revoked.contains(&id)
    }

    /// Key files that were found but not trusted, with the reason.
    pub fn skipped(&self) -> &[SkippedKeyFile] {
        &self.skipped
    }

    fn skip(&mut self, path: PathBuf, reason: String) {
        tracing::warn!(path = %path.display(), %reason, "key file not trusted");
        self.skipped.push(SkippedKeyFile { path, reason });
    }

    /// Distrusts every key that is installed under more than one id.
    ///
    /// minisign signs neither the key id in a signature nor the one in a
    /// public key file. With one key trusted under two ids, revoking one id
    /// would not stop it: relabel a signature with the other id and it
    /// verifies. Which of the two files is the "real" one cannot be told, so
    /// neither is trusted (fail closed).
    fn drop_keys_under_two_ids(&mut self) {
        let shared: Vec<KeyId> = self
            .keys
            .iter()
            .filter(|(id, k)| {
                self.keys
                    .iter()
                    .any(|(other, o)| other != *id && o.ed25519 == k.ed25519)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in shared {
            if let Some(key) = self.keys.remove(&id) {
                let reason = format!(
                    "it holds a key that another trusted file holds under another id \
                     (this one says {id}); neither is trusted: remove the copy"
                );
                self.skip(key.path, reason);
            }
        }
    }

    fn load_dir(&mut self, dir: &Path) -> Result<(), KeyRingError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(KeyRingError::KeyDir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        check_trusted_dir(dir).map_err(|source| KeyRingError::InsecureKeyDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| KeyRingError::KeyDir {
                path: dir.to_path_buf(),
                source,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".pub") && !name.starts_with('.') {
                paths.push(entry.path());
            }
        }
        paths.sort();
        let overflow = paths.split_off(paths.len().min(MAX_KEY_FILES_PER_DIR));
        for path in overflow {
            let reason = format!("more than {MAX_KEY_FILES_PER_DIR} key files in the directory");
            self.skip(path, reason);
        }
        for path in paths {
            match read_public_key_file(&path) {
                Ok((id, key, ed25519)) => {
                    if let Some(first) = self.keys.get(&id) {
                        let reason = format!(
                            "key id {id} is already trusted from {}",
                            first.path.display()
                        );
                        self.skip(path, reason);
                    } else {
                        self.keys.insert(id, TrustedKey { path, key, ed25519 });
                    }
                }
                Err(reason) => self.skip(path, reason),
            }
        }
        Ok(())
    }
}

/// A parsed public key file: its id, the key, and the raw Ed25519 bytes.
type ParsedPublicKey = (KeyId, minisign_verify::PublicKey, [u8; 32]);

/// Reads one minisign public key file; the error is the reason it is skipped.
fn read_public_key_file(path: &Path) -> Result<ParsedPublicKey, String> {
    let bytes = read_trusted_file(path, MAX_PUBLIC_KEY_FILE_BYTES).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_string())?;
    parse_public_key(text)
}

/// Parses the minisign public key file format: an untrusted comment line,
/// then the base64 of `Ed` + 8-byte key id + 32-byte Ed25519 key.
fn parse_public_key(text: &str) -> Result<ParsedPublicKey, String> {
    let mut lines = text.lines();
    let comment = lines.next().unwrap_or_default();
    if !comment.starts_with("untrusted comment:") {
        return Err("not a minisign public key: the first line is not a comment".into());
    }
    let b64 = lines.next().unwrap_or_default().trim();
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("not a minisign public key: more than two lines".into());
    }
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| "not a minisign public key: the key line is not base64".to_string())?;
    let [b'E', b'd', k0, k1, k2, k3, k4, k5, k6, k7, key @ ..] = raw.as_slice() else {
        return Err("not a minisign Ed25519 public key".into());
    };
    let ed25519: [u8; 32] = key
        .try_into()
        .map_err(|_| "not a minisign public key: wrong key length".to_string())?;
    let key = minisign_verify::PublicKey::from_base64(b64)
        .map_err(|e| format!("not a minisign public key: {e}"))?;
    Ok((
        KeyId::from_bytes([*k0, *k1, *k2, *k3, *k4, *k5, *k6, *k7]),
        key,
        ed25519,
    ))
}

fn load_revocation_list(path: &Path) -> Result<BTreeSet<KeyId>, KeyRingError> {
    // Checked even when the list is missing: deleting it un-revokes keys.
    check_trusted_parent(path).map_err(KeyRingError::RevocationList)?;
    let bytes = match read_trusted_file(path, MAX_REVOCATION_LIST_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(BTreeSet::new()),
        Err(e) => return Err(KeyRingError::RevocationList(e)),
    };
    let bad_line = |line: usize, text: &str| KeyRingError::RevocationLine {
        path: path.to_path_buf(),
        line,
        text: text.chars().take(80).collect(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad_line(0, "(not UTF-8)"))?;
    let mut revoked = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let content = line
            .split_once('#')
            .map_or(line, |(before, _)| before)
            .trim();
        if content.is_empty() {
            continue;
        }
        let id = content
            .parse::<KeyId>()
            .map_err(|_| bad_line(index.saturating_add(1), content))?;
        revoked.insert(id);
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PUB: &str = "untrusted comment: minisign public key E7620F1842B4E81F\n\
                       RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n";

    /// Mode 0644 whatever the umask: the list must not be writable by others.
    fn make_private(path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    #[test]
    fn public_key_file_gives_its_key_id() {
        let (id, _, _) = parse_public_key(PUB).unwrap();
        assert_eq!(id.to_string(), "E7620F1842B4E81F");
    }

    #[test]
    fn revocation_list_allows_comments_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked-keys");
        std::fs::write(
            &path,
            "# rotated 2026-11\n\ne7620f1842b4e81f  # old key\n  0123456789ABCDEF\n",
        )
        .unwrap();
        make_private(&path);
        let ids = load_revocation_list(&path).unwrap();
        let mut printed: Vec<String> = ids.iter().map(ToString::to_string).collect();
        printed.sort();
        assert_eq!(printed, ["0123456789ABCDEF", "E7620F1842B4E81F"]);
    }

    #[test]
    fn bad_revocation_line_fails_closed_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked-keys");
        std::fs::write(&path, "# ok\nnot-a-key\n").unwrap();
        make_private(&path);
        let err = load_revocation_list(&path).unwrap_err();
        assert!(
            matches!(err, KeyRingError::RevocationLine { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_directories_and_list_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load(
            &[dir.path().join("none")],
            Some(&dir.path().join("no-list")),
        )
        .unwrap();
        assert!(ring.trusted_key_ids().is_empty());
    }
}
