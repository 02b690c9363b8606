//! Jobs run by apportd's `Executor` inside the test process, without the
//! bus: the built apportd as the step launcher, real users, real processes.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apport_hooks::apportd::job::{Executor, Fixed, JobOutput, JobRequest};
use apport_hooks::apportd::limits::Limits;
use apport_hooks::apportd::principal::Launcher;
use apport_hooks::hook::Hook;
use tokio::sync::watch;

/// An executor launching steps through the built apportd.
pub fn executor(limits: Limits) -> Executor {
    Executor::new(Launcher::new(env!("CARGO_BIN_EXE_apportd").into()), limits)
}

/// Run `hook` (version 1) for a caller who owns the report, on a report that
/// already has `existing_keys`; polkit's answer for root steps is `root_authorized`.
pub async fn run_job(
    executor: &Executor,
    hook: &Hook,
    owner: u32,
    root_authorized: bool,
    existing_keys: &[&str],
    cancel: Option<watch::Receiver<bool>>,
) -> JobOutput {
    let existing: BTreeSet<String> = existing_keys.iter().map(|k| (*k).to_owned()).collect();
    let request = JobRequest {
        hook,
        version: 1,
        caller_uid: owner,
        report_owner: owner,
        existing_keys: &existing,
    };
    executor
        .run(&request, &Fixed(root_authorized), cancel, &|_, _| {})
        .await
}

/// A cancel signal for a job that fires once `path` exists (a step wrote it);
/// await the handle after the job to keep the sender alive until then.
pub fn cancel_when_exists(
    path: PathBuf,
) -> (
    watch::Receiver<bool>,
    tokio::task::JoinHandle<watch::Sender<bool>>,
) {
    let (tx, rx) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tx.send(true).unwrap();
        tx
    });
    (rx, watcher)
}

/// The pid a step wrote to `path`.
pub fn read_pid<T: std::str::FromStr>(path: &Path) -> T
where
    T::Err: std::fmt::Debug,
{
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("pid file {}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}
