//! `apport-hook lint HOOK.toml... [--json]`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use apport_hooks::hook::{Diagnostic, Hook, LintConfig, lints, parse_hook_bytes};
use serde::Serialize;

/// Arguments of `apport-hook lint`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 every file is clean; 1 at least one problem was printed; 3 a \
                  file or the --config file could not be read or is inconsistent."
)]
pub struct Args {
    /// Hook files to check (`-` reads standard input).
    #[arg(required_unless_present = "list_lints", value_name = "HOOK.toml")]
    files: Vec<PathBuf>,
    /// Print every lint's name and what it catches, then exit.
    #[arg(long, conflicts_with = "files")]
    list_lints: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Lint against these server bounds (a TOML file of `LintConfig` fields,
    /// e.g. `max_days = 14`) instead of the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<LintConfig> {
    let Some(path) = path else {
        return Ok(LintConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read lint configuration {}", path.display()))?;
    let cfg: LintConfig = toml::from_str(&text)
        .with_context(|| format!("invalid lint configuration {}", path.display()))?;
    cfg.validate()?;
    Ok(cfg)
}

/// The result for one file, as printed by `--json`.
#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    ok: bool,
    /// Number of steps, when the hook is clean.
    steps: Option<usize>,
    /// Target kind, when the hook is clean.
    target: Option<&'static str>,
    /// Why the file could not be read, if it could not.
    error: Option<String>,
    diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Serialize)]
struct JsonReport {
    ok: bool,
    problems: usize,
    files: Vec<FileReport>,
}

fn read(path: &PathBuf, cap: usize) -> anyhow::Result<Vec<u8>> {
    // Read one byte past the cap so an oversized file is reported as such
    // without reading all of it.
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        file.take(limit)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(bytes)
}

fn check(path: &PathBuf, cfg: &LintConfig) -> FileReport {
    let file = if path.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let outcome = read(path, cfg.max_file_bytes).map(|bytes| parse_hook_bytes(&bytes, &file, cfg));
    let summary = |hook: &Hook| (Some(hook.steps.len()), Some(hook.target.kind()));
    match outcome {
        Ok(Ok(hook)) => {
            let (steps, target) = summary(&hook);
            FileReport {
                file,
                ok: true,
                steps,
                target,
                error: None,
                diagnostics: Vec::new(),
            }
        }
        Ok(Err(diagnostics)) => FileReport {
            file,
            ok: false,
            steps: None,
            target: None,
            error: None,
            diagnostics,
        },
        Err(e) => FileReport {
            file,
            ok: false,
            steps: None,
            target: None,
            error: Some(format!("{e:#}")),
            diagnostics: Vec::new(),
        },
    }
}

#[derive(Debug, Serialize)]
struct LintInfo {
    name: &'static str,
    summary: &'static str,
}

fn list_lints(json: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        let all: Vec<LintInfo> = lints::ALL
            .iter()
            .map(|l| LintInfo {
                name: l.name,
                summary: l.summary,
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &all)?;
        writeln!(out)?;
    } else {
        let width = lints::ALL.iter().map(|l| l.name.len()).max().unwrap_or(0);
        for l in lints::ALL {
            writeln!(out, "{:width$}  {}", l.name, l.summary)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `apport-hook lint`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.list_lints {
        return list_lints(args.json);
    }
    let cfg = load_config(args.config.as_ref())?;
    let reports: Vec<FileReport> = args.files.iter().map(|p| check(p, &cfg)).collect();
    let problems: usize = reports.iter().map(|r| r.diagnostics.len()).sum();
    let unreadable = reports.iter().any(|r| r.error.is_some());
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = JsonReport {
            ok: problems == 0 && !unreadable,
            problems,
            files: reports,
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        for r in &reports {
            if let Some(e) = &r.error {
                eprintln!("apport-hook: {e}");
            }
            for d in &r.diagnostics {
                writeln!(out, "{d}")?;
            }
            if let (true, Some(steps), Some(target)) = (r.ok, r.steps, r.target) {
                let plural = if steps == 1 { "" } else { "s" };
                writeln!(
                    out,
                    "{}: ok ({steps} step{plural}, target {target})",
                    r.file
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if unreadable {
        ExitCode::from(crate::EXIT_RUNTIME_ERROR)
    } else if problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
