//! Recording each hook phase in the state directory's last runs (shown by
//! `apport-hook status`).

use std::path::Path;

use apport_hooks::agent::runlog::{self, HookRun, RunRecord};
use apport_hooks::agent::state_dir::StateDir;
use apport_hooks::agent::token::now_secs;

fn hook_run(hook: &serde_json::Value) -> HookRun {
    let text = |key: &str| hook.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    HookRun {
        id: hook
            .get("id")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(-1),
        version: hook
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        outcome: text("outcome").unwrap_or_default(),
        delivery: text("delivery"),
        keys: hook
            .get("keys")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|k| k.get("key").and_then(|v| v.as_str()).map(str::to_owned))
            .collect(),
        sent_bytes: hook
            .get("sent_bytes")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    }
}

/// The record of one run from `collect`'s JSON summary or its error.
pub fn from_result(report: &Path, result: &anyhow::Result<serde_json::Value>) -> RunRecord {
    let mut record = RunRecord {
        time: now_secs(),
        report: report.display().to_string(),
        oops_id: None,
        outcome: "ok".into(),
        message: None,
        hooks: Vec::new(),
        sent_bytes: 0,
    };
    match result {
        Ok(value) => {
            record.oops_id = value
                .get("oops_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            record.hooks = value
                .get("hooks")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .map(hook_run)
                .collect();
            // Only what actually left the machine (or waits in the spool).
            record.sent_bytes = record
                .hooks
                .iter()
                .filter(|h| matches!(h.delivery.as_deref(), Some("delivered" | "spooled")))
                .fold(0_u64, |sum, h| sum.saturating_add(h.sent_bytes));
        }
        Err(e) => {
            record.outcome = "error".into();
            record.message = Some(format!("{e:#}"));
        }
    }
    record
}

/// Appends `record` to the last runs in `state_dir`. The directory is not
/// created here (the package or systemd's `StateDirectory=` does, and
/// `watch` at start): a `collect` on a machine without it, or by a user who
/// cannot write it, only costs a debug line.
pub fn append(state_dir: &Path, record: RunRecord) {
    if !state_dir.is_dir() {
        tracing::debug!(
            "the run is not recorded: {} does not exist",
            state_dir.display()
        );
        return;
    }
    let written = runlog::append(&StateDir::existing(state_dir), record);
    if let Err(e) = written {
        tracing::debug!("the run is not recorded: {e}");
    }
}

/// Records the outcome of one hook phase.
pub fn record(state_dir: &Path, report: &Path, result: &anyhow::Result<serde_json::Value>) {
    append(state_dir, from_result(report, result));
}
