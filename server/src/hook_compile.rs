//! `daisy hook compile`: a hook file in, a signed bundle out.

use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use apport_hooks::bundle::{BundlePayload, check_bundle_id, key_id_of, sign_bundle};
use apport_hooks::hook::{Hook, LintConfig, parse_hook_bytes};

use crate::keys::{read_secret_key, refuse_special_file};

/// Longest validity of a bundle, in days: the library's cap, which clients
/// enforce too. Short lifetimes bound how long a withdrawn hook's bundle can
/// be replayed, and how long a bundle signed with a key that is later revoked
/// keeps working on clients that have not yet got the revocation list.
pub const MAX_BUNDLE_DAYS: u32 = apport_hooks::bundle::MAX_BUNDLE_DAYS;

const SECONDS_PER_DAY: i64 = 86_400;

/// Arguments of `daisy hook compile`.
#[derive(Debug, clap::Args)]
pub struct CompileArgs {
    /// The hook file (TOML).
    hook: PathBuf,
    /// The secret key file written by `daisy keygen`.
    #[arg(long, value_name = "SECRET")]
    key: PathBuf,
    /// The hook's id on this server: 1 to 128 of `[A-Za-z0-9._-]`.
    #[arg(long)]
    id: String,
    /// The hook's version on this server.
    #[arg(long)]
    version: u32,
    /// How many days the bundle stays valid, 1 to 90.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BUNDLE_DAYS)))]
    days: u32,
    /// Where to write the bundle (replaced atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Runs `daisy hook compile`.
pub fn compile(args: &CompileArgs) -> anyhow::Result<()> {
    let hook = load_hook(&args.hook)?;
    let secret = read_secret_key(&args.key)?;
    let now = unix_now()?;
    let payload = payload_for(hook, &args.id, args.version, args.days, now)?;
    let bytes = sign_bundle(&payload, &secret)?;
    write_atomically(&args.out, &bytes)?;
    println!(
        "wrote {}: hook {:?} id {} version {}, signed by key {}, valid until {} (Unix time)",
        args.out.display(),
        payload.hook.name,
        payload.id,
        payload.version,
        key_id_of(&secret)?,
        payload.not_after
    );
    Ok(())
}

/// The payload for `hook`, valid from `now` for `days` days.
pub fn payload_for(
    hook: Hook,
    id: &str,
    version: u32,
    days: u32,
    now: i64,
) -> anyhow::Result<BundlePayload> {
    check_bundle_id(id).map_err(|e| anyhow::anyhow!("--id: {e}"))?;
    if days == 0 || days > MAX_BUNDLE_DAYS {
        bail!("--days must be 1 to {MAX_BUNDLE_DAYS}, got {days}");
    }
    let not_after = i64::from(days)
        .checked_mul(SECONDS_PER_DAY)
        .and_then(|d| now.checked_add(d))
        .context("--days overflows the clock")?;
    Ok(BundlePayload::new(
        id.to_string(),
        version,
        hook,
        now,
        not_after,
    ))
}

/// Reads, parses and lints the hook file with the default bounds; every
/// problem is printed as `file:line:column: lint: message`.
fn load_hook(path: &Path) -> anyhow::Result<Hook> {
    let cfg = LintConfig::default();
    // One byte past the cap, so an oversized file is reported by the linter
    // without being read whole.
    let limit = u64::try_from(cfg.max_file_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    refuse_special_file(path, "hook file")?;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read the hook file {}", path.display()))?;
    match parse_hook_bytes(&bytes, &path.display().to_string(), &cfg) {
        Ok(hook) => Ok(hook),
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            bail!(
                "{} has {} problem(s); fix them (`apport-hook lint` shows the same) and compile again",
                path.display(),
                diagnostics.len()
            )
        }
    }
}

fn unix_now() -> anyhow::Result<i64> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    i64::try_from(secs).context("the system clock is too far in the future")
}

/// Writes `bytes` to a new file next to `path`, then renames it over `path`,
/// so a client or web server never sees half a bundle.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("--out {} has no file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use apport_hooks::hook::{Action, HookLimits, RunAs, Step, Target};

    use super::*;

    fn hook() -> Hook {
        Hook {
            name: "bash-crash".into(),
            description: "Shell state".into(),
            target: Target::Package("bash".into()),
            when: BTreeMap::new(),
            limits: HookLimits {
                reports: 5,
                days: 3,
            },
            steps: vec![Step {
                key: "BashRc".into(),
                run_as: RunAs::User,
                optional: true,
                replaces: false,
                max_bytes: 4096,
                timeout_secs: 5,
                action: Action::File("/etc/bash.bashrc".into()),
            }],
        }
    }

    #[test]
    fn bundle_is_valid_from_now_for_the_given_days() {
        let payload = payload_for(hook(), "bash-1", 2, 7, 1_000).unwrap();
        assert_eq!(payload.issued_at, 1_000);
        assert_eq!(payload.not_after, 1_000 + 7 * 86_400);
        assert_eq!(payload.target, Target::Package("bash".into()));
        assert_eq!((payload.id.as_str(), payload.version), ("bash-1", 2));
    }

    #[test]
    fn days_and_id_are_bounded() {
        assert!(payload_for(hook(), "bash-1", 1, 0, 0).is_err());
        assert!(payload_for(hook(), "bash-1", 1, MAX_BUNDLE_DAYS + 1, 0).is_err());
        assert!(payload_for(hook(), "../etc", 1, 1, 0).is_err());
        assert!(payload_for(hook(), "bash-1", 1, 1, i64::MAX).is_err());
    }
}
