//! `daisy admin`: operator commands that work on the database directly,
//! also while a server runs on it.

use std::io::Write;
use std::sync::Arc;

use std::io::Read as _;

use super::CliError;
use crate::activation::{ActivateError, ActivateRequest, activate};
use crate::auth::{hash_token, new_token};
use crate::config::{CommonArgs, Config};
use crate::signing::load_signing_key;
use crate::storage::{self, HookRecord, HookState, Storage};

/// Options of `daisy admin`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// Database, data directory and configuration file.
    #[command(flatten)]
    pub common: CommonArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `daisy admin …` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Manage hooks.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Manage API users.
    #[command(subcommand)]
    User(UserCommand),
}

/// `daisy admin hook …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HookCommand {
    /// Lint, compile, sign and activate a hook file (audited with its text).
    Activate {
        /// The hook file (TOML).
        file: std::path::PathBuf,
        /// Override the file's `reports` (bounded by the server's limits).
        #[arg(long)]
        reports: Option<u32>,
        /// Override the file's `days` (bounded by the server's limits).
        #[arg(long)]
        days: Option<u32>,
    },
    /// List all hooks with state and counters.
    List,
    /// Show one hook.
    Show {
        /// Hook id (from `list`).
        id: i64,
    },
    /// Stop offering a hook and refuse its results.
    Disable {
        /// Hook id.
        id: i64,
        /// Why (kept in the audit log).
        #[arg(long, default_value = "disabled by an operator")]
        reason: String,
    },
}

/// `daisy admin user …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user and print its API token (shown once).
    Add {
        /// Login name.
        name: String,
        /// Team: core-dev, retracer or admin.
        #[arg(long, default_value = "core-dev")]
        team: String,
    },
    /// List users with their team and how many tokens they hold.
    List,
    /// Revoke every API token of a user (audited); the user stays listed.
    Revoke {
        /// Login name.
        name: String,
    },
    /// Give a user a new API token and revoke its others (audited); prints
    /// the new token (shown once).
    Token {
        /// Login name.
        name: String,
    },
}

fn no_such_user(name: &str) -> CliError {
    CliError::Usage(format!(
        "no user {name:?}: `daisy admin user list` shows the users"
    ))
}

/// After the admin user's tokens were replaced or revoked, the bootstrap
/// token file holds a dead token: removed, so that nobody takes it for a
/// working one. Said on standard error, since standard output may be the
/// new token alone.
fn forget_bootstrap_token(config: &Config, user: &str) -> Result<(), CliError> {
    if user != crate::bootstrap::ADMIN_USER {
        return Ok(());
    }
    let path = config.data_dir.join(crate::bootstrap::TOKEN_FILE);
    let removed = crate::bootstrap::remove_token_file(&config.data_dir)
        .map_err(CliError::io(format!("removing {}", path.display())))?;
    if removed {
        eprintln!("removed {}: its token no longer works", path.display());
    }
    Ok(())
}

/// The actor recorded in the audit log for CLI actions.
const ACTOR: &str = "admin-cli";

/// Runs an admin command, writing its output to `out`.
pub async fn run(args: AdminArgs, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let config = Config::load(&args.common, None)?;
    config.create_data_dir().map_err(CliError::io(format!(
        "creating {}",
        config.data_dir.display()
    )))?;
    let storage = storage::open(&config.database).await?;
    run_on(&config, &storage, args.command, out).await
}

/// Largest hook file read.
const MAX_HOOK_FILE_BYTES: u64 = 1 << 20;

/// Runs an admin command on an open database.
pub async fn run_on(
    config: &Config,
    storage: &Arc<dyn Storage>,
    command: AdminCommand,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let w = CliError::io("writing output");
    match command {
        AdminCommand::User(UserCommand::Add { name, team }) => {
            if !["core-dev", "retracer", "admin"].contains(&team.as_str()) {
                return Err(CliError::Usage(format!(
                    "unknown team {team:?}: use core-dev, retracer or admin"
                )));
            }
            let token = new_token();
            storage
                .add_user(&name, &team, &hash_token(&token), ACTOR, storage::now())
                .await?;
            writeln!(out, "{token}").map_err(w)?;
        }
        AdminCommand::User(UserCommand::List) => {
            writeln!(
                out,
                "{:<24} {:<10} {:>6}  created",
                "name", "team", "tokens"
            )
            .map_err(w)?;
            for u in storage.users().await? {
                writeln!(
                    out,
                    "{:<24} {:<10} {:>6}  {}",
                    u.name, u.team, u.active_tokens, u.created
                )
                .map_err(CliError::io("writing output"))?;
            }
        }
        AdminCommand::User(UserCommand::Revoke { name }) => {
            let Some(revoked) = storage
                .replace_tokens(&name, None, ACTOR, storage::now())
                .await?
            else {
                return Err(no_such_user(&name));
            };
            forget_bootstrap_token(config, &name)?;
            writeln!(out, "revoked {revoked} token(s) of {name}").map_err(w)?;
        }
        AdminCommand::User(UserCommand::Token { name }) => {
            let token = new_token();
            let hash = hash_token(&token);
            if storage
                .replace_tokens(&name, Some(&hash), ACTOR, storage::now())
                .await?
                .is_none()
            {
                return Err(no_such_user(&name));
            }
            forget_bootstrap_token(config, &name)?;
            writeln!(out, "{token}").map_err(w)?;
        }
        AdminCommand::Hook(HookCommand::Activate {
            file,
            reports,
            days,
        }) => {
            let mut text = Vec::new();
            std::fs::File::open(&file)
                .and_then(|f| {
                    std::io::Read::read_to_end(&mut f.take(MAX_HOOK_FILE_BYTES), &mut text)
                })
                .map_err(CliError::io(format!("reading {}", file.display())))?;
            let secret =
                load_signing_key(&config.data_dir).map_err(|e| CliError::Usage(e.to_string()))?;
            let record = activate(
                storage,
                &config.limits,
                &secret,
                ActivateRequest {
                    text: &text,
                    file_name: &file.display().to_string(),
                    reports,
                    days,
                    actor: ACTOR,
                    now: storage::now(),
                },
            )
            .await
            .map_err(|e| match e {
                ActivateError::Storage(e) => CliError::Storage(e),
                other => CliError::Usage(other.to_string()),
            })?;
            writeln!(
                out,
                "activated hook {} ({} version {}), sha256 {}",
                record.id, record.name, record.version, record.sha256
            )
            .map_err(w)?;
        }
        AdminCommand::Hook(HookCommand::List) => {
            writeln!(
                out,
                "{:>6} {:<24} {:>4} {:<10} {:>9} {:>9} {:>10} {:>8}  target",
                "id", "name", "ver", "state", "offered", "results", "bytes", "failures"
            )
            .map_err(w)?;
            let now = storage::now();
            for h in storage.hooks().await?.into_iter().map(|h| h.as_of(now)) {
                writeln!(
                    out,
                    "{:>6} {:<24} {:>4} {:<10} {:>9} {:>9} {:>10} {:>8}  {}={}",
                    h.id,
                    h.name,
                    h.version,
                    h.state.as_str(),
                    h.offered,
                    format!("{}/{}", h.results, h.max_reports),
                    h.bytes,
                    h.failures,
                    h.target.kind,
                    h.target.value
                )
                .map_err(CliError::io("writing output"))?;
            }
        }
        AdminCommand::Hook(HookCommand::Show { id }) => {
            let h = storage
                .hook(id)
                .await?
                .ok_or_else(|| {
                    CliError::Usage(format!("no hook {id} (see `daisy admin hook list`)"))
                })?
                .as_of(storage::now());
            write_hook(out, &h).map_err(w)?;
        }
        AdminCommand::Hook(HookCommand::Disable { id, reason }) => {
            if !storage
                .set_hook_state(id, HookState::Disabled, &reason, ACTOR, storage::now())
                .await?
            {
                return Err(CliError::Usage(format!(
                    "hook {id} is not active (see `daisy admin hook show {id}`)"
                )));
            }
            writeln!(out, "hook {id} disabled").map_err(w)?;
        }
    }
    Ok(())
}

fn write_hook(out: &mut (dyn Write + Send), h: &HookRecord) -> std::io::Result<()> {
    writeln!(out, "id:         {}", h.id)?;
    writeln!(out, "name:       {} (version {})", h.name, h.version)?;
    writeln!(out, "state:      {}", h.state.as_str())?;
    if let Some(reason) = &h.state_reason {
        writeln!(out, "reason:     {reason}")?;
    }
    writeln!(out, "target:     {} = {}", h.target.kind, h.target.value)?;
    writeln!(out, "reports:    {} of {}", h.results, h.max_reports)?;
    writeln!(
        out,
        "days:       {} (until {} Unix time)",
        h.max_days, h.not_after
    )?;
    writeln!(out, "bytes:      {} of {}", h.bytes, h.disk_cap)?;
    writeln!(out, "failures:   {}", h.failures)?;
    writeln!(
        out,
        "offered:    {} (left out: {})",
        h.offered, h.offers_refused
    )?;
    writeln!(out, "refused:    {}", h.results_refused)?;
    writeln!(out, "sha256:     {}", h.sha256)?;
    Ok(())
}
