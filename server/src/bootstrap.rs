//! The bootstrap admin token: made at the first start, when the database
//! has no user, and handed to the operator exactly once.
//!
//! A human at a terminal reads it there. Anywhere else (systemd, a pipe, a
//! log file) standard output ends up in a log that others may read
//! (`journalctl` for members of `adm` and `systemd-journal`), so the token
//! goes into a file only daisy's user can read, in the data directory
//! (mode 0700), and the output names the file. Replacing or revoking the
//! admin user's tokens (`daisy admin user token|revoke admin`) removes the
//! file, since the token in it no longer works.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::{hash_token, new_token};
use crate::storage::{self, Storage, StorageError};

/// The user the first start creates (team `admin`).
pub const ADMIN_USER: &str = "admin";

/// Name of the token file inside the data directory.
pub const TOKEN_FILE: &str = "bootstrap-admin-token";

/// Creates the bootstrap admin user when there is no user yet; returns its
/// token (stored hashed only).
pub async fn create_admin(storage: &Arc<dyn Storage>) -> Result<Option<String>, StorageError> {
    if storage.user_count().await? > 0 {
        return Ok(None);
    }
    let token = new_token();
    storage
        .add_user(
            ADMIN_USER,
            "admin",
            &hash_token(&token),
            "daisy",
            storage::now(),
        )
        .await?;
    Ok(Some(token))
}

/// Writes `token` to [`TOKEN_FILE`] in `data_dir`, readable by its owner
/// only; returns the file's path.
///
/// A file left there (from a database that was since replaced) is removed
/// first: it holds a token of no database. `create_new` then refuses
/// anything put in its place meanwhile, a symbolic link included (`O_EXCL`
/// does not follow one).
pub fn write_token_file(data_dir: &Path, token: &str) -> std::io::Result<PathBuf> {
    let path = data_dir.join(TOKEN_FILE);
    remove_token_file(data_dir)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())?;
    Ok(path)
}

/// Removes [`TOKEN_FILE`] from `data_dir` if it is there; returns whether
/// it was. Unlinking never follows a symbolic link.
pub fn remove_token_file(data_dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(data_dir.join(TOKEN_FILE)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_token_file_is_for_its_owner_only_and_replaces_a_leftover() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), "old\n").unwrap();
        let path = write_token_file(dir.path(), "new-token").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new-token\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(remove_token_file(dir.path()).unwrap());
        assert!(!remove_token_file(dir.path()).unwrap());
    }

    #[test]
    fn a_symbolic_link_in_its_place_is_removed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "keep").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(TOKEN_FILE)).unwrap();
        write_token_file(dir.path(), "t").unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep");
        let meta = std::fs::symlink_metadata(dir.path().join(TOKEN_FILE)).unwrap();
        assert!(meta.is_file());
    }
}
