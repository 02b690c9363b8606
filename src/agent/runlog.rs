//! The last runs of the hook phase (`collect`, `upload`, `watch`), shown by
//! `apport-hook status`: when, which OOPS, which hooks with which outcome,
//! how many bytes were sent. Bounded to [`MAX_RUNS`], oldest dropped first,
//! written atomically under the state lock. Key names and sizes only, never
//! values (they may hold private data).

use serde::{Deserialize, Serialize};

use super::state_dir::{StateDir, StateError};

/// The file in the state directory.
pub const RUNS_FILE: &str = "last-runs.json";
/// Most runs kept.
pub const MAX_RUNS: usize = 50;

/// What one hook did in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// Server-side hook id.
    pub id: i64,
    /// Its version.
    pub version: u32,
    /// The job's outcome (`completed`, …) or why it did not run (`refused`,
    /// `not-run`, `token-expired`, …).
    pub outcome: String,
    /// `delivered`, `spooled`, `dropped`, `nothing-to-send`, or none.
    pub delivery: Option<String>,
    /// The keys collected.
    pub keys: Vec<String>,
    /// Compressed bytes sent or spooled.
    pub sent_bytes: u64,
}

/// One run of the hook phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When it ended (Unix seconds).
    pub time: i64,
    /// The report.
    pub report: String,
    /// Its OOPS id, when known.
    pub oops_id: Option<String>,
    /// `ok`, `off` (opted out), `error`.
    pub outcome: String,
    /// The error or opt-out message.
    pub message: Option<String>,
    /// Per hook.
    pub hooks: Vec<HookRun>,
    /// Compressed bytes sent or spooled in total.
    pub sent_bytes: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RunsFile {
    version: u32,
    runs: Vec<RunRecord>,
}

/// Appends `run`, keeping the last [`MAX_RUNS`].
///
/// # Errors
/// [`StateError`] when the log cannot be written.
pub fn append(state: &StateDir, run: RunRecord) -> Result<(), StateError> {
    let _lock = state.lock()?;
    let mut runs = match state.read_json::<RunsFile>(RUNS_FILE) {
        Ok(file) => file.map(|f| f.runs).unwrap_or_default(),
        Err(e @ StateError::Corrupt { .. }) => {
            tracing::warn!("{e}");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    runs.push(run);
    let excess = runs.len().saturating_sub(MAX_RUNS);
    runs.drain(..excess);
    state.write_json(RUNS_FILE, &RunsFile { version: 1, runs })
}

/// The recorded runs, oldest first (none when the log does not exist).
///
/// # Errors
/// [`StateError`].
pub fn read(state: &StateDir) -> Result<Vec<RunRecord>, StateError> {
    Ok(state
        .read_json::<RunsFile>(RUNS_FILE)?
        .map(|f| f.runs)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn run(n: i64) -> RunRecord {
        RunRecord {
            time: n,
            report: format!("/var/crash/{n}.crash"),
            oops_id: None,
            outcome: "ok".into(),
            message: None,
            hooks: Vec::new(),
            sent_bytes: 0,
        }
    }

    #[test]
    fn the_log_keeps_the_last_runs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(read(&state).unwrap().is_empty());
        for n in 0..i64::try_from(MAX_RUNS).unwrap() + 2 {
            append(&state, run(n)).unwrap();
        }
        let runs = read(&state).unwrap();
        assert_eq!(runs.len(), MAX_RUNS);
        assert_eq!(runs[0].time, 2);
        assert_eq!(
            runs[MAX_RUNS - 1].time,
            i64::try_from(MAX_RUNS).unwrap() + 1
        );
    }
}
