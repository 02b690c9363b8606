//! `apport-hook verify FILE`: check a bundle the way apportd will.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use apport_hooks::bundle::{
    BundleError, DEFAULT_KEY_DIRS, DEFAULT_REVOKED_KEYS, KeyRing, VerifiedBundle, read_bundle_file,
};

/// Exit status when the bundle is refused.
const EXIT_REFUSED: u8 = 1;

/// Check a signed hook bundle exactly as apportd does before it runs one.
///
/// Exit status: 0 the bundle is valid and trusted, 1 it is refused (the
/// reason is printed), 3 it could not be checked (unreadable file, key
/// directory or revocation list).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 the bundle is valid and trusted; 1 it is refused (the reason \
                  and what to do are printed); 3 it could not be checked (unreadable bundle, key \
                  directory or revocation list)."
)]
pub struct Args {
    /// The bundle file (as served by daisy or written by `daisy hook compile`).
    file: PathBuf,
    /// A directory of trusted `*.pub` minisign keys; repeat for several.
    /// Default: /usr/share/apport-hooks/keys/ and /etc/apport-hooks/keys.d/.
    #[arg(long = "keys", value_name = "DIR")]
    keys: Vec<PathBuf>,
    /// The revocation list: one key id per line, `#` comments.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_REVOKED_KEYS)]
    revoked: PathBuf,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `apport-hook verify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970; set the clock")?
        .as_secs();
    let now = i64::try_from(now).context("the system clock is too far in the future")?;
    let dirs = if args.keys.is_empty() {
        DEFAULT_KEY_DIRS.iter().map(PathBuf::from).collect()
    } else {
        args.keys.clone()
    };

    let checked = KeyRing::load(&dirs, Some(&args.revoked))
        .map_err(|e| e.to_string())
        .and_then(|ring| {
            let bytes = read_bundle_file(&args.file).map_err(|e| e.to_string())?;
            Ok((ring.verify(&bytes, now), ring))
        });
    let (outcome, ring) = match checked {
        Ok(pair) => pair,
        Err(message) => {
            report_cannot_check(&args, &message)?;
            return Ok(ExitCode::from(crate::EXIT_RUNTIME_ERROR));
        }
    };
    if !args.json {
        for skipped in ring.skipped() {
            eprintln!(
                "warning: {} is not trusted: {}",
                skipped.path.display(),
                skipped.reason
            );
        }
    }
    match outcome {
        Ok(bundle) => {
            report_valid(&args, &ring, &bundle)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            report_refused(&args, &ring, &error)?;
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

fn report_valid(args: &Args, ring: &KeyRing, bundle: &VerifiedBundle) -> anyhow::Result<()> {
    let key_file = ring
        .key_path(bundle.key_id())
        .map(|p| p.display().to_string());
    if args.json {
        let value = serde_json::json!({
            "ok": true,
            "file": args.file.display().to_string(),
            "id": bundle.id(),
            "version": bundle.version(),
            "target": bundle.target(),
            "issued_at": bundle.issued_at(),
            "not_after": bundle.not_after(),
            "key_id": bundle.key_id().to_string(),
            "key_file": key_file,
            "sha256": bundle.sha256_hex(),
            "hook": bundle.hook(),
            "skipped_key_files": skipped_json(ring),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{}: valid: hook {:?} id {} version {}, signed by key {} ({}), valid until {} (Unix time)",
            args.file.display(),
            bundle.hook().name,
            bundle.id(),
            bundle.version(),
            bundle.key_id(),
            key_file.unwrap_or_default(),
            bundle.not_after(),
        );
        println!("target: {}", serde_json::to_string(bundle.target())?);
        println!("sha256: {}", bundle.sha256_hex());
    }
    Ok(())
}

/// Key files found but not trusted, for `--json` output.
fn skipped_json(ring: &KeyRing) -> serde_json::Value {
    ring.skipped()
        .iter()
        .map(|s| serde_json::json!({ "path": s.path.display().to_string(), "reason": s.reason }))
        .collect()
}

fn report_refused(args: &Args, ring: &KeyRing, error: &BundleError) -> anyhow::Result<()> {
    if args.json {
        let value = serde_json::json!({
            "ok": false,
            "file": args.file.display().to_string(),
            "error": error.code(),
            "message": error.to_string(),
            "skipped_key_files": skipped_json(ring),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        eprintln!(
            "{}: refused ({}): {error}",
            args.file.display(),
            error.code()
        );
    }
    Ok(())
}

fn report_cannot_check(args: &Args, message: &str) -> anyhow::Result<()> {
    if args.json {
        let value = serde_json::json!({
            "ok": false,
            "file": args.file.display().to_string(),
            "error": "cannot-check",
            "message": message,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        eprintln!("{}: cannot check: {message}", args.file.display());
    }
    Ok(())
}
