//! `apport-hook upload REPORT`: send a crash report the way whoopsie does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use apport_hooks::agent::config::{self, Environment, OptOut, Paths, Settings};
use apport_hooks::agent::http::ClientSettings;
use apport_hooks::agent::progress::{ProgressDisplay, TransferBar};
use apport_hooks::agent::upload::{
    CoreOutcome, ReplyCommand, UploadOutcome, Uploader, write_uploaded_marker,
};
use apport_hooks::report::{Report, ReportLimits};

/// Exit status when the server refuses the report or crash reporting is off.
const EXIT_REFUSED: u8 = 1;

/// Upload a crash report to the error tracker (the whoopsie protocol) and
/// write REPORT.uploaded with the OOPS id.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 uploaded (or the server already had it); 1 the server \
                  refused the report for good (400; it is marked as handled, as whoopsie \
                  does) or crash reporting is turned off (report_crashes=false in \
                  /etc/default/whoopsie); 3 the upload failed and can be retried later \
                  (network error, timeout, server error), or the report or settings could \
                  not be read."
)]
pub struct Args {
    /// The report (`/var/crash/*.crash`).
    report: PathBuf,
    /// The server's base URL; default: CRASH_DB_URL, then server_url in
    /// /etc/apport-hooks/hooks.conf, then https://daisy.ubuntu.com.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Only upload and write REPORT.uploaded; do not run the hook phase.
    #[arg(long)]
    no_hooks: bool,
    /// For the hook phase: trust the signing keys in DIR instead of the
    /// installed ones (repeatable).
    #[arg(long = "keys", value_name = "DIR")]
    keys: Vec<PathBuf>,
    /// For the hook phase: the spool directory (default: the settings').
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `apport-hook upload`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::default();
    let env = Environment::from_process();
    let mut settings = Settings::load(&paths, &env)?;
    if let Some(url) = &args.server {
        settings = settings.with_server_url(url)?;
    }
    if let Some(opt_out @ OptOut::WhoopsieReportCrashes { .. }) = &settings.opt_out {
        let message = format!(
            "{opt_out}: not uploading; set report_crashes=true there to send crash reports"
        );
        print_result(&args, false, "crash-reporting-off", &message, None, None)?;
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let report = Report::open(&args.report, &ReportLimits::default())?;
    let (system_id, _) = config::system_id(&paths, &env)?;
    let uploader = Uploader::new(
        &settings.server_url,
        system_id,
        &ClientSettings::from(&settings),
    )?;
    let body = Uploader::encode(&report)?;
    let display = ProgressDisplay::for_command(args.json);
    let bar = display.bar(
        u64::try_from(body.len()).unwrap_or(u64::MAX),
        "uploading report",
    );
    let progress = bar.as_ref().map(TransferBar::progress);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(uploader.upload_encoded(body, progress));
    drop(bar);

    let marker = if outcome.is_done() {
        Some(
            write_uploaded_marker(&args.report, outcome.oops()).with_context(|| {
                format!(
                    "uploaded, but cannot write the .uploaded file next to {}",
                    args.report.display()
                )
            })?,
        )
    } else {
        None
    };

    let mut core = None;
    if let UploadOutcome::Accepted(reply) = &outcome
        && reply.command == ReplyCommand::Core
        && let Some(oops) = &reply.oops
    {
        let size = report.get("CoreDump").map_or(0, |v| v.wire_bytes().len());
        let bar = display.bar(
            u64::try_from(size).unwrap_or(u64::MAX),
            "uploading core dump",
        );
        let progress = bar.as_ref().map(TransferBar::progress);
        let result = runtime.block_on(uploader.upload_core(oops, &report, progress));
        drop(bar);
        core = Some(result);
    }

    let hook_phase: serde_json::Value = if args.no_hooks {
        "skipped (--no-hooks)".into()
    } else if let Some(opt_out) = &settings.opt_out {
        format!("skipped: {opt_out}").into()
    } else if let Some(oops) = outcome.oops().filter(|_| marker.is_some()) {
        let collect_args = crate::collect::Args {
            report: args.report.clone(),
            server: args.server.clone(),
            keys: args.keys.clone(),
            spool: args.spool.clone(),
            json: args.json,
        };
        match runtime.block_on(crate::collect::collect(
            &collect_args,
            &settings,
            &paths,
            &env,
            display,
        )) {
            Ok(value) => value,
            Err(e) => {
                format!("failed for OOPS {oops}: {e:#}; retry with `apport-hook collect`").into()
            }
        }
    } else {
        "skipped: the server sent no OOPS id".into()
    };

    let (ok, code, status, message) = match &outcome {
        UploadOutcome::Accepted(reply) => (
            true,
            ExitCode::SUCCESS,
            "accepted",
            match &reply.oops {
                Some(oops) => format!("uploaded: OOPS id {oops}"),
                None => "uploaded, but the server sent no OOPS id".to_owned(),
            },
        ),
        UploadOutcome::AlreadyReported { message } => (
            true,
            ExitCode::SUCCESS,
            "already-reported",
            format!("the server already has this crash: {message}"),
        ),
        UploadOutcome::Refused { message } => (
            false,
            ExitCode::from(EXIT_REFUSED),
            "refused",
            format!("the server refused the report for good: {message}; it is marked as handled"),
        ),
        UploadOutcome::RetryLater { status, message } => (
            false,
            ExitCode::from(crate::EXIT_RUNTIME_ERROR),
            "retry-later",
            match status {
                Some(status) => format!("the server answered {status}: {message}; try again later"),
                None => {
                    format!("the upload failed: {message}; check the network and try again later")
                }
            },
        ),
    };
    if args.json {
        let core_json = core.as_ref().map(|c| match c {
            CoreOutcome::Sent => serde_json::json!({"sent": true}),
            CoreOutcome::Unavailable(m) | CoreOutcome::Failed(m) => {
                serde_json::json!({"sent": false, "message": m})
            }
        });
        let value = serde_json::json!({
            "ok": ok,
            "status": status,
            "message": message,
            "report": args.report.display().to_string(),
            "server": uploader.base_url(),
            "oops_id": outcome.oops().map(ToString::to_string),
            "uploaded_file": marker.as_ref().map(|p| p.display().to_string()),
            "core": core_json,
            "hook_phase": hook_phase,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        if ok {
            println!("{}: {message}", args.report.display());
        } else {
            eprintln!("{}: {message}", args.report.display());
        }
        if let Some(marker) = &marker {
            println!("wrote {}", marker.display());
        }
        match &core {
            Some(CoreOutcome::Sent) => println!("core dump sent (the server asked for it)"),
            Some(CoreOutcome::Unavailable(m)) => {
                println!("the server asked for the core dump, but {m}")
            }
            Some(CoreOutcome::Failed(m)) => {
                eprintln!("the core dump upload failed (not retried): {m}")
            }
            None => {}
        }
        if outcome.is_done() {
            match &hook_phase {
                serde_json::Value::String(text) => println!("hook phase: {text}"),
                value => println!(
                    "hook phase: {} hook(s) offered; see `apport-hook collect --json`",
                    value["hooks"].as_array().map_or(0, Vec::len)
                ),
            }
        }
    }
    Ok(code)
}

fn print_result(
    args: &Args,
    ok: bool,
    status: &str,
    message: &str,
    oops: Option<&str>,
    marker: Option<&str>,
) -> anyhow::Result<()> {
    if args.json {
        let value = serde_json::json!({
            "ok": ok,
            "status": status,
            "message": message,
            "report": args.report.display().to_string(),
            "oops_id": oops,
            "uploaded_file": marker,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        eprintln!("{}: {message}", args.report.display());
    }
    Ok(())
}
