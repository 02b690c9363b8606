//! `apport-hook status`: what the agent would do on this machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use apport_hooks::agent::config::{self, Environment, Paths, Settings};
use apport_hooks::agent::runlog;
use apport_hooks::agent::spool::Spool;
use apport_hooks::agent::state_dir::StateDir;
use apport_hooks::agent::text::printable;
use apport_hooks::bundle::KeyRing;

/// Show the agent's settings, opt-out state, system id, trusted keys and
/// spooled results.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 the settings were read (problems with keys or the \
                  spool are shown, not fatal); 3 the settings could not be read."
)]
pub struct Args {
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Read the last runs from DIR (default: `state_dir` in hooks.conf, else
    /// /var/lib/apport-hooks).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Runs `apport-hook status`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::default();
    let env = Environment::from_process();
    let settings = Settings::load(&paths, &env)?;
    let system_id = config::system_id(&paths, &env);
    let keys = KeyRing::load_default();
    let spool = if settings.spool_dir.exists() {
        Some(Spool::inspect(&settings.spool_dir))
    } else {
        None
    };
    let state_dir = args.state_dir.unwrap_or(settings.state_dir.clone());
    let runs = runlog::read(&StateDir::existing(&state_dir));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    if args.json {
        let value = serde_json::json!({
            "server_url": settings.server_url,
            "server_url_origin": settings.server_url_origin.as_str(),
            "hooks_enabled": settings.hooks_enabled(),
            "opt_out": settings.opt_out.as_ref().map(ToString::to_string),
            "ca_file": settings.ca_file.as_ref().map(|p| p.display().to_string()),
            "timeout_secs": settings.timeout.as_secs(),
            "system_id": match &system_id {
                Ok((id, origin)) => serde_json::json!({"id": id.as_str(), "origin": origin.as_str()}),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            },
            "trusted_keys": match &keys {
                Ok(ring) => serde_json::json!(ring.trusted_key_ids().iter().map(ToString::to_string).collect::<Vec<_>>()),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            },
            "spool": {
                "dir": settings.spool_dir.display().to_string(),
                "max_bytes": settings.spool_max_bytes,
                "entries": match &spool {
                    None => serde_json::json!([]),
                    Some(Err(e)) => serde_json::json!({"error": e.to_string()}),
                    Some(Ok((entries, _))) => entries.iter().map(|e| serde_json::json!({
                        "oops_id": e.key().oops().as_str(),
                        "hook_id": e.key().hook_id(),
                        "hook_version": e.key().hook_version(),
                        "bytes": e.file_bytes(),
                        "attempts": e.attempts(),
                        "next_attempt_at": e.next_attempt_at(),
                        "due": e.is_due(now),
                        "last_error": e.last_error(),
                    })).collect::<serde_json::Value>(),
                },
                "unreadable_entries": spool.as_ref().and_then(|s| s.as_ref().ok()).map_or(0, |(_, n)| *n),
            },
            "state_dir": state_dir.display().to_string(),
            "crash_dir": settings.crash_dir.display().to_string(),
            "last_runs": match &runs {
                Ok(runs) => serde_json::to_value(runs)?,
                Err(e) => serde_json::json!({"error": e.to_string()}),
            },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }

    println!(
        "server:      {} ({})",
        settings.server_url,
        settings.server_url_origin.as_str()
    );
    match &settings.opt_out {
        None => println!("hooks:       enabled"),
        Some(opt_out) => println!("hooks:       off: {opt_out}"),
    }
    match &settings.ca_file {
        Some(ca) => println!("TLS trust:   only the CAs in {}", ca.display()),
        None => println!("TLS trust:   the system trust store"),
    }
    println!("timeout:     {} s per request", settings.timeout.as_secs());
    match &system_id {
        Ok((id, origin)) => println!("system id:   {id} (from {})", origin.as_str()),
        Err(e) => println!("system id:   none: {e}"),
    }
    match &keys {
        Ok(ring) => {
            let ids = ring.trusted_key_ids();
            if ids.is_empty() {
                println!("trusted keys: none (no hook bundle can be verified)");
            } else {
                println!("trusted keys:");
                for id in ids {
                    let path = ring
                        .key_path(id)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    println!("  {id}  {path}");
                }
            }
        }
        Err(e) => println!("trusted keys: cannot be loaded: {e}"),
    }
    println!(
        "spool:       {} (at most {} bytes)",
        settings.spool_dir.display(),
        settings.spool_max_bytes
    );
    match &spool {
        None => println!("  empty (the directory does not exist yet)"),
        Some(Err(e)) => println!("  cannot be read: {e}"),
        Some(Ok((entries, unreadable))) => {
            if entries.is_empty() {
                println!("  empty");
            }
            for e in entries {
                println!(
                    "  {}: {} bytes, {} failed attempts, {}{}",
                    e.key(),
                    e.file_bytes(),
                    e.attempts(),
                    if e.is_due(now) {
                        "due now".to_owned()
                    } else {
                        format!("next attempt at {} (Unix time)", e.next_attempt_at())
                    },
                    e.last_error()
                        .map(|m| format!(", last error: {}", printable(m)))
                        .unwrap_or_default()
                );
            }
            if *unreadable > 0 {
                println!(
                    "  {unreadable} unreadable entries (quarantined at the next delivery run)"
                );
            }
        }
    }
    println!(
        "crash dir:   {} (watched by `apport-hook watch`)",
        settings.crash_dir.display()
    );
    println!("last runs:   {}", state_dir.display());
    match &runs {
        Err(e) => println!("  cannot be read: {e}"),
        Ok(runs) if runs.is_empty() => println!("  none recorded"),
        Ok(runs) => {
            for run in runs.iter().rev() {
                println!(
                    "  {} {} OOPS {}: {}{}, {} bytes sent",
                    run.time,
                    run.report,
                    run.oops_id.as_deref().unwrap_or("-"),
                    run.outcome,
                    run.message
                        .as_deref()
                        .map(|m| format!(" ({})", printable(m)))
                        .unwrap_or_default(),
                    run.sent_bytes
                );
                for hook in &run.hooks {
                    println!(
                        "    hook {} v{}: {} {} [{}]",
                        hook.id,
                        hook.version,
                        hook.outcome,
                        hook.delivery.as_deref().unwrap_or(""),
                        hook.keys.join(", ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
