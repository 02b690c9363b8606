//! Writing a file so that readers see the old contents or the new, never a
//! part, and so that nothing in the directory can redirect the write.
//!
//! `/var/crash` is world-writable (mode 3777): any local user can plant a
//! symlink or a FIFO under the name the agent is about to write. So the data
//! goes to a fresh temporary file created with `O_CREAT | O_EXCL |
//! O_NOFOLLOW` under a random name (nothing can already be there, and a
//! planted link makes the create fail), is `fsync`ed, then renamed over the
//! final name (`rename` replaces a symlink itself, it never follows it; the
//! sticky bit stops us from replacing another user's file, which is then an
//! error, not a redirect), and the directory is `fsync`ed so the rename
//! survives a crash.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::Rng as _;

/// How many random names to try before giving up on a crowded directory.
pub const TEMP_NAME_ATTEMPTS: u32 = 16;

/// Creates a new, empty temporary file in `dir` with `mode`, never through a
/// link. Returns the open file and its path.
///
/// # Errors
/// The creation error after [`TEMP_NAME_ATTEMPTS`] collisions, or any other
/// I/O error at once.
pub fn create_temp(dir: &Path, stem: &str, mode: u32) -> io::Result<(File, PathBuf)> {
    let mut rng = rand::rng();
    let mut last = io::Error::other("no attempt made");
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let suffix: u64 = rng.random();
        let path = dir.join(format!(".{stem}.{suffix:016x}.tmp"));
        match OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => {
                adopt_dir_owner(&file, dir)?;
                return Ok((file, path));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Gives a file root just created in `dir` to `dir`'s owner. The agent's
/// directories belong to the user its service runs as (`whoopsie`); an
/// administrator running `apport-hook upload` or `collect` as root would
/// otherwise leave root-owned files there (a lock file, spool entries) that
/// the service can no longer open, and its spool and state would stop
/// working. Nothing happens for any other user or a root-owned directory.
///
/// # Errors
/// Reading the directory's owner or changing the file's failed.
pub fn adopt_dir_owner(file: &File, dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if crate::sys::effective_uid() != 0 {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.uid() == 0 {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))
}

/// Opens `dir`'s lock file `name` for `flock`: read-only when it exists (a
/// lock needs no write access, so a lock file some other user created
/// still works), created with `mode` and given to `dir`'s owner when not.
///
/// # Errors
/// Opening or creating the file failed.
pub fn open_lock(dir: &Path, name: &str, mode: u32) -> io::Result<File> {
    let path = dir.join(name);
    let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    match OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(&path)
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(mode)
                .custom_flags(flags)
                .open(&path)?;
            adopt_dir_owner(&file, dir)?;
            Ok(file)
        }
        other => other,
    }
}

/// `fsync`s a directory so that a rename into it is durable.
///
/// # Errors
/// Opening or syncing the directory failed.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)?
        .sync_all()
}

/// Makes a written temporary file durable and gives it its final `name` in
/// `dir`, replacing whatever was there (a symlink is replaced, not followed).
/// On error the temporary file is removed.
///
/// # Errors
/// Syncing, renaming or syncing the directory failed.
pub fn commit(file: File, temp: &Path, dir: &Path, name: &str) -> io::Result<()> {
    let result = (|| {
        file.sync_all()?;
        drop(file);
        std::fs::rename(temp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the temporary name is ours and random.
        let _ = std::fs::remove_file(temp);
    }
    result
}

/// Writes `data` to `dir/name` atomically with `mode` (see the module doc).
///
/// # Errors
/// Any I/O error; the final name is then untouched.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8], mode: u32) -> io::Result<()> {
    let (mut file, temp) = create_temp(dir, name, mode)?;
    if let Err(e) = file.write_all(data) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    commit(file, &temp, dir, name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("x.uploaded")).unwrap();
        write_atomic(dir.path(), "x.uploaded", b"oops\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let meta = std::fs::symlink_metadata(dir.path().join("x.uploaded")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::read(dir.path().join("x.uploaded")).unwrap(),
            b"oops\n"
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
