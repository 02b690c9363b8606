//! `apport-hook test HOOK.toml --report FILE`: the hook author's test. Lints
//! the hook like `lint`, runs it through apportd's unsigned-hook method (an
//! administrator's authentication, asked for by polkit when the session has
//! an agent), and prints exactly the keys and values an upload would send,
//! with their sizes and the compressed size of the result.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use apport_hooks::agent::collect::open_report;
use apport_hooks::agent::job::wait_for_job;
use apport_hooks::apportd::proxy::Apport1Proxy;
use apport_hooks::hook::{LintConfig, parse_hook_bytes};
use apport_hooks::wire::{WireLimits, decode_untrusted, report_to_strings_bson};

/// Exit status when the hook has lint problems.
const EXIT_LINT: u8 = 1;
/// Exit status when the job was cancelled or stopped before its last step.
const EXIT_INCOMPLETE: u8 = 4;

/// Lint a hook, run it against a report through apportd, show what would be sent.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The hook runs unsigned, so apportd asks polkit for an administrator \
                  (com.ubuntu.apport.test-hook); a password prompt appears where the \
                  session has a polkit agent (pkttyagent on a terminal). Exit status: 0 the \
                  hook ran to the end; 1 lint problems (nothing ran); 3 a runtime error \
                  (unreadable file, apportd refused or is unreachable); 4 the job was \
                  cancelled or a step stopped it."
)]
pub struct Args {
    /// The hook file (TOML).
    #[arg(value_name = "HOOK.toml")]
    hook: PathBuf,
    /// The crash report to run it against (opened here, passed to apportd as a descriptor).
    #[arg(long, value_name = "FILE")]
    report: PathBuf,
    /// Lint against these server bounds (as `lint --config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `apport-hook test`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = match &args.config {
        None => LintConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read lint configuration {}", path.display()))?;
            let cfg: LintConfig = toml::from_str(&text)
                .with_context(|| format!("invalid lint configuration {}", path.display()))?;
            cfg.validate()?;
            cfg
        }
    };
    let name = args.hook.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(&args.hook)
        .with_context(|| format!("cannot open {name}"))?
        .take(
            u64::try_from(cfg.max_file_bytes)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        )
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    let hook = match parse_hook_bytes(&bytes, &name, &cfg) {
        Ok(hook) => hook,
        Err(diagnostics) => {
            let mut out = std::io::stdout().lock();
            if args.json {
                let value = serde_json::json!({
                    "ok": false, "stage": "lint", "file": name, "diagnostics": diagnostics,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                for d in &diagnostics {
                    writeln!(out, "{d}")?;
                }
                eprintln!(
                    "apport-hook: {name}: {} problem(s); fix them (see `apport-hook lint --list-lints`), nothing was run",
                    diagnostics.len()
                );
            }
            return Ok(ExitCode::from(EXIT_LINT));
        }
    };
    let hook_bson = bson::serialize_to_vec(&hook).context("encoding the hook")?;
    let report = open_report(&args.report)
        .with_context(|| format!("cannot open the report {}", args.report.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let connection = zbus::Connection::system().await.context(
            "cannot connect to the system bus; is dbus running (DBUS_SYSTEM_BUS_ADDRESS)?",
        )?;
        let apportd = Apport1Proxy::new(&connection).await?;
        let path = apportd
            .run_unsigned_hook(&hook_bson, zbus::Fd::from(report.as_fd()), HashMap::new())
            .await
            .context(
                "apportd refused the hook; an unsigned hook needs an administrator: run it \
                 as a member of sudo (a polkit agent asks for the password)",
            )?;
        anyhow::Ok(wait_for_job(&connection, path).await?)
    })?;

    // Exactly what `collect` would send: the strings-only BSON of the new
    // keys, decoded back, and its zstd size.
    let encoded = report_to_strings_bson(&result.report).context("encoding the result")?;
    // zstd level 3, as `collect` compresses results.
    let compressed = zstd::stream::encode_all(&encoded[..], 3).context("compressing the result")?;
    let sent = decode_untrusted(
        &encoded,
        &WireLimits {
            max_document_bytes: encoded.len().max(1),
            ..WireLimits::default()
        },
    )
    .context("decoding the result")?;
    let keys: Vec<(String, String)> = sent
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let completed = result.completed();
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "ok": completed,
            "outcome": result.outcome,
            "keys": keys.iter().map(|(k, v)| serde_json::json!({
                "key": k, "bytes": v.len(), "value": v,
            })).collect::<Vec<_>>(),
            "steps": result.steps.iter().map(|s| serde_json::json!({
                "key": s.key, "outcome": s.outcome, "detail": s.detail,
                "bytes": s.bytes, "duration_ms": s.duration_ms,
            })).collect::<Vec<_>>(),
            "bson_bytes": encoded.len(),
            "compressed_bytes": if keys.is_empty() { 0 } else { compressed.len() },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        for (key, value) in &keys {
            writeln!(out, "{key} ({} bytes):", value.len())?;
            for line in value.lines() {
                writeln!(out, " {line}")?;
            }
        }
        for step in &result.steps {
            if step.outcome != "collected" {
                writeln!(out, "step {}: {} {}", step.key, step.outcome, step.detail)?;
            }
        }
        if keys.is_empty() {
            writeln!(out, "nothing would be sent (no new keys)")?;
        } else {
            writeln!(
                out,
                "would send {} key(s): {} bytes, {} bytes compressed (zstd)",
                keys.len(),
                encoded.len(),
                compressed.len()
            )?;
        }
        if !completed {
            writeln!(out, "job {}", result.outcome)?;
        }
    }
    out.flush()?;
    Ok(if completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INCOMPLETE)
    })
}
