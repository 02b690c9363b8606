//! `daisy keygen` and reading the signing key back.
//!
//! The secret key is a minisign secret key file without a password: daisy
//! signs unattended. Its only protection is its file mode, so the file is
//! created with mode 0600 in the same `open` call (never `chmod` afterwards,
//! which would leave a window where it is world-readable), and never
//! overwritten.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use apport_hooks::bundle::{LOCAL_KEY_DIR, SecretKey, check_trusted_dir, generate_key_pair};

use daisy::signing::read_secret_key_file;

/// File name of the secret key `daisy keygen` writes.
pub const SECRET_KEY_FILE: &str = "daisy.key";
/// File name of the public key `daisy keygen` writes.
pub const PUBLIC_KEY_FILE: &str = "daisy.pub";

/// Arguments of `daisy keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Directory to write daisy.key (secret, mode 0600) and daisy.pub into;
    /// created with mode 0700 if missing. Existing keys are never overwritten.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `daisy keygen`: prints the new key id on stdout.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    check_key_dir(&args.out)?;
    let secret_path = args.out.join(SECRET_KEY_FILE);
    let public_path = args.out.join(PUBLIC_KEY_FILE);
    for path in [&secret_path, &public_path] {
        if path.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; keygen never overwrites a key: choose another --out \
                 directory, or move the old keys away first",
                path.display()
            );
        }
    }
    let pair = generate_key_pair()?;
    write_new_file(&secret_path, pair.secret_key_file.as_bytes(), 0o600)?;
    if let Err(e) = write_new_file(&public_path, pair.public_key_file.as_bytes(), 0o644) {
        // Do not leave a secret key without its public half behind.
        let _ = std::fs::remove_file(&secret_path);
        return Err(e);
    }
    println!("{}", pair.key_id);
    eprintln!(
        "wrote {} (secret, unencrypted, mode 0600: keep it on the server only) and {}; \
         install {PUBLIC_KEY_FILE} into {LOCAL_KEY_DIR} on the clients that should trust it",
        secret_path.display(),
        public_path.display()
    );
    Ok(())
}

/// Refuses an `--out` directory (or a directory above it) that another user
/// can write: they could not read the new secret key, but they could swap in
/// a key pair of their own before daisy signs with it or before the operator
/// ships daisy.pub, and then sign hooks that run as root on every client.
/// Warns when others can list it (an existing directory keygen did not make).
fn check_key_dir(dir: &Path) -> anyhow::Result<()> {
    check_trusted_dir(dir).with_context(|| {
        format!(
            "--out {} is not a safe place for a signing key; use a directory only you can write",
            dir.display()
        )
    })?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?
        .mode();
    if mode & 0o077 != 0 {
        eprintln!(
            "warning: {} can be listed by other users (mode {:o}); the secret key itself is \
             mode 0600, but `chmod 700` the directory",
            dir.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

/// Creates `path` with `mode` (fails if it exists, even as a symlink) and
/// writes `contents` to it; removes it again if writing fails, so no
/// truncated key is left behind to block the next keygen.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Refuses a FIFO, device, socket or directory before it is opened: opening a
/// FIFO for reading blocks until someone writes to it, and daisy would hang.
/// (The descriptor is checked again after `open`; this is only about not
/// blocking in `open` itself.)
pub fn refuse_special_file(path: &Path, what: &str) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot open the {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "the {what} {} is not a regular file (a FIFO, device or directory); pass the file itself",
            path.display()
        );
    }
    Ok(())
}

/// Reads a secret key file written by `daisy keygen` (or `minisign -G -W`)
/// for `daisy hook compile`: [`read_secret_key_file`], following a
/// symbolic link (secret stores often mount keys through them).
pub fn read_secret_key(path: &Path) -> anyhow::Result<SecretKey> {
    let file = read_secret_key_file(path, true)?;
    if file.exposed {
        eprintln!(
            "warning: {} is readable by other users; run `chmod 600` on it",
            path.display()
        );
    }
    Ok(file.key)
}
