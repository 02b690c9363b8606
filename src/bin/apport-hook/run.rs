//! `apport-hook run`: drive apportd by hand and print the new keys.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use apport_hooks::agent::job::wait_for_job;
use apport_hooks::apportd::proxy::{Apport1Proxy, StepReport};

/// Exit status when the job was cancelled or stopped before its last step.
const EXIT_INCOMPLETE: u8 = 4;

/// Arguments of `apport-hook run`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("hook").required(true).args(["bundle", "unsigned"])),
    after_help = "Exit status: 0 the hook ran to the end; 3 a runtime error (unreadable file, \
                  apportd refused the hook or is unreachable); 4 the job was cancelled or a \
                  step stopped it."
)]
pub struct Args {
    /// A signed hook bundle, as the server sent it.
    #[arg(value_name = "BUNDLE")]
    bundle: Option<PathBuf>,
    /// Instead of a bundle: an unsigned hook file (TOML, linted here first) or
    /// its canonical BSON encoding; the hook author's test mechanism, needs an
    /// administrator's password. apportd itself only ever decodes the BSON.
    #[arg(long, value_name = "HOOK")]
    unsigned: Option<PathBuf>,
    /// The crash report the hook runs against; opened by you and passed to
    /// apportd as a descriptor.
    #[arg(long, value_name = "FILE")]
    report: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Run the hook through apportd and print what it collected.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    // Non-blocking, so that a FIFO named by mistake is refused instead of
    // hanging the open; links are followed (the caller's own file, opened
    // with the caller's rights).
    let report = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&args.report)
        .with_context(|| format!("opening {}", args.report.display()))?;
    if !report.metadata()?.is_file() {
        bail!(
            "{} is not a regular file: pass a crash report",
            args.report.display()
        );
    }
    let connection = zbus::Connection::system()
        .await
        .context("connecting to the system bus")?;
    let apportd = Apport1Proxy::new(&connection).await?;
    let report_fd = zbus::Fd::from(report.as_fd());
    let path = match (&args.bundle, &args.unsigned) {
        (Some(bundle), _) => {
            let bytes = apport_hooks::bundle::read_bundle_file(bundle)
                .with_context(|| format!("reading {}", bundle.display()))?;
            apportd.run_bundle(&bytes, report_fd, HashMap::new()).await
        }
        (None, Some(hook)) => {
            let bytes = unsigned_hook_bson(hook)?;
            apportd
                .run_unsigned_hook(&bytes, report_fd, HashMap::new())
                .await
        }
        (None, None) => bail!("name a BUNDLE or --unsigned HOOK"),
    }
    .context("apportd refused the hook")?;
    let result = wait_for_job(&connection, path).await?;
    let (steps, outcome) = (result.steps, result.outcome);
    let fields: Vec<(String, Vec<u8>)> = result
        .report
        .iter()
        .map(|(key, value)| (key.as_str().to_owned(), value.wire_bytes().to_vec()))
        .collect();
    print_result(&fields, &steps, &outcome, args.json)?;
    Ok(if outcome.as_str() == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INCOMPLETE)
    })
}

/// The canonical BSON of an unsigned hook: a BSON file is sent as it is (its
/// length prefix is the file's length); anything else is parsed and linted as
/// a hook file, and refused with the linter's diagnostics.
fn unsigned_hook_bson(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use apport_hooks::hook::{LintConfig, parse_hook_bytes};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let declared = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok());
    if declared == Some(bytes.len()) && bytes.last() == Some(&0) {
        return Ok(bytes);
    }
    let name = path.display().to_string();
    match parse_hook_bytes(&bytes, &name, &LintConfig::default()) {
        Ok(hook) => Ok(bson::serialize_to_vec(&hook)?),
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            bail!("{name}: the hook file has {} problem(s)", diagnostics.len())
        }
    }
}

fn print_result(
    fields: &[(String, Vec<u8>)],
    steps: &[StepReport],
    outcome: &str,
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let keys: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned().into()))
            .collect();
        let steps: Vec<serde_json::Value> = steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "key": s.key, "outcome": s.outcome, "detail": s.detail,
                    "bytes": s.bytes, "duration_ms": s.duration_ms,
                })
            })
            .collect();
        let document = serde_json::json!({ "outcome": outcome, "keys": keys, "steps": steps });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        return Ok(());
    }
    // The report format: multi-line values continue on lines starting with a space.
    for (key, value) in fields {
        let text = String::from_utf8_lossy(value);
        if text.contains('\n') {
            writeln!(out, "{key}:")?;
            for line in text.lines() {
                writeln!(out, " {line}")?;
            }
        } else {
            writeln!(out, "{key}: {text}")?;
        }
    }
    for step in steps {
        if step.outcome != "collected" {
            eprintln!("{}: {} {}", step.key, step.outcome, step.detail);
        }
    }
    if outcome != "completed" {
        eprintln!("job {outcome}");
    }
    Ok(())
}
