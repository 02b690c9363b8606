//! The server's bundle signing key in the data directory: created on first
//! start, read when a hook is activated.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use apport_hooks::bundle::{SecretKey, check_trusted_dir, generate_key_pair, load_secret_key};

/// Folder of the key pair inside the data directory (mode 0700).
pub const KEY_DIR: &str = "keys";
/// The secret key (minisign, unencrypted, mode 0600).
pub const SECRET_KEY_FILE: &str = "daisy.key";
/// The public key clients install into their trust directory.
pub const PUBLIC_KEY_FILE: &str = "daisy.pub";
/// Largest secret key file read (a real one is about 250 bytes).
/// Largest secret key file read, in bytes (a real one is about 250).
pub const MAX_SECRET_KEY_BYTES: u64 = 4096;

/// Why the key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No key yet.
    #[error(
        "no signing key at {0}: start `daisy serve` once (it creates one) or run \
         `daisy keygen --out` with that directory"
    )]
    Missing(PathBuf),
    /// The key file is unusable, or signing failed.
    #[error("signing key: {0}")]
    Key(String),
    /// Someone else could replace the keys: the clients would then trust
    /// whatever key was put there.
    #[error(
        "{dir} is not a safe place for the signing keys ({reason}): it and every directory \
         above it must belong to root or to daisy's user and not be writable by group or others"
    )]
    Unsafe {
        /// The keys' directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Refuses a keys directory that another user could write into (or one of
/// whose ancestors they could): `daisy.pub` is what clients install as
/// trusted, and `daisy.key` signs what runs as root on them.
fn check_key_dir(dir: &Path) -> Result<(), SigningError> {
    let Err(e) = check_trusted_dir(dir) else {
        return Ok(());
    };
    // Root running `daisy admin` on a service's data directory: the keys
    // belong to daisy's (possibly dynamic) user, not to root. They are
    // still trusted when only that user could have written them: the keys
    // directory and the data directory belong to it, neither is writable
    // by group or others, and everything above is trusted.
    if apport_hooks::sys::effective_uid() == 0
        && let Some(data_dir) = dir.parent()
        && owned_alike_and_private(dir, data_dir)
        && data_dir
            .parent()
            .is_some_and(|above| check_trusted_dir(above).is_ok())
    {
        return Ok(());
    }
    Err(SigningError::Unsafe {
        dir: dir.to_owned(),
        reason: e.to_string(),
    })
}

/// Whether `a` and `b` are directories of one owner, neither writable by
/// group or others.
fn owned_alike_and_private(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(ma), Ok(mb)) = (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) else {
        return false;
    };
    ma.is_dir() && mb.is_dir() && ma.uid() == mb.uid() && (ma.mode() | mb.mode()) & 0o022 == 0
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SigningError + '_ {
    move |source| SigningError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Path of the secret key.
pub fn secret_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_DIR).join(SECRET_KEY_FILE)
}

/// Creates the key pair when there is none; returns the public key's path
/// when it did.
pub fn ensure_signing_key(data_dir: &Path) -> Result<Option<PathBuf>, SigningError> {
    let dir = data_dir.join(KEY_DIR);
    let secret = dir.join(SECRET_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    check_key_dir(&dir)?;
    if secret.symlink_metadata().is_ok() {
        return Ok(None);
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    // Checked again now that it exists (it may have been made meanwhile).
    check_key_dir(&dir)?;
    let pair = generate_key_pair().map_err(|e| SigningError::Key(e.to_string()))?;
    // Mode set in the same open call: never a moment where the secret is readable.
    write_new(&secret, pair.secret_key_file.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, pair.public_key_file.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&secret);
        return Err(e);
    }
    Ok(Some(public))
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), SigningError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io(path))
}

/// Reads the secret key.
pub fn load_signing_key(data_dir: &Path) -> Result<SecretKey, SigningError> {
    let path = secret_key_path(data_dir);
    check_key_dir(&data_dir.join(KEY_DIR))?;
    // Not through a link: the keys directory is daisy's own.
    match read_secret_key_file(&path, false) {
        Ok(file) => {
            if file.exposed {
                tracing::warn!(
                    "{} can be read or written by others than its owner: chmod 600 it",
                    path.display()
                );
            }
            Ok(file.key)
        }
        Err(SigningError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(SigningError::Missing(path))
        }
        Err(e) => Err(e),
    }
}

/// A secret key file as [`read_secret_key_file`] read it.
pub struct SecretKeyFile {
    /// The key.
    pub key: SecretKey,
    /// Users other than its owner may read or write the file.
    pub exposed: bool,
}

/// Reads a minisign secret key file without a password (`daisy keygen`,
/// `minisign -G -W`), for `serve`, `admin hook activate` and `hook
/// compile` alike. It is opened without blocking, since a FIFO in its place
/// would hang the open, and must be a regular file of at most
/// [`MAX_SECRET_KEY_BYTES`]. A symbolic link as its last component is
/// followed only with `follow_links` (secret stores mount keys through
/// links; daisy's own keys directory has none).
pub fn read_secret_key_file(
    path: &Path,
    follow_links: bool,
) -> Result<SecretKeyFile, SigningError> {
    let flags = if follow_links {
        nix::libc::O_NONBLOCK
    } else {
        nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() || meta.len() > MAX_SECRET_KEY_BYTES {
        return Err(SigningError::Key(format!(
            "{} is not a minisign secret key file (not a regular file of at most \
             {MAX_SECRET_KEY_BYTES} bytes); put the daisy.key written by `daisy keygen` there",
            path.display()
        )));
    }
    let exposed = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0;
    let mut text = String::new();
    file.take(MAX_SECRET_KEY_BYTES)
        .read_to_string(&mut text)
        .map_err(io(path))?;
    let key = load_secret_key(&text)
        .map_err(|e| SigningError::Key(format!("in {}: {e}", path.display())))?;
    Ok(SecretKeyFile { key, exposed })
}

#[cfg(test)]
mod fifo_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_fifo_in_place_of_the_secret_key_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join(KEY_DIR);
        DirBuilder::new().mode(0o700).create(&keys).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(keys.join(SECRET_KEY_FILE))
            .status()
            .unwrap();
        assert!(made.success());
        let err = load_signing_key(dir.path()).err().unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
