//! Running a bundle through apportd and waiting for its result: shared by
//! `apport-hook run` (by hand) and `apport-hook collect` (the hook phase).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use futures_util::StreamExt;
use thiserror::Error;

use super::result_file::{ResultFile, ResultFileError};
use crate::apportd::output::{OutputError, read_result};
use crate::apportd::proxy::{Apport1Proxy, JobProxy, StepReport};
use crate::report::Report;

/// What a job produced.
#[derive(Debug)]
pub struct JobResult {
    /// The new keys only.
    pub report: Report,
    /// One entry per step, in order.
    pub steps: Vec<StepReport>,
    /// `completed`, `cancelled`, ….
    pub outcome: String,
}

impl JobResult {
    /// Whether every step ran to the end.
    pub fn completed(&self) -> bool {
        self.outcome == "completed"
    }
}

/// Talking to apportd failed.
#[derive(Debug, Error)]
pub enum JobError {
    /// apportd refused the call (not authorized, bad bundle, …) or the bus failed.
    #[error("apportd refused the hook: {0}")]
    Refused(#[source] zbus::Error),
    /// The bus failed while waiting.
    #[error("lost apportd while waiting for the job: {0}")]
    Bus(#[from] zbus::Error),
    /// apportd left the bus before the job ended.
    #[error("apportd left the bus before the job ended; check `journalctl -u apportd`")]
    Gone,
    /// The result descriptor could not be read.
    #[error("cannot read the job's result: {0}")]
    Output(#[from] OutputError),
    /// The result descriptor is unusable or its document invalid.
    #[error("cannot use the job's result: {0}")]
    ResultFile(#[from] ResultFileError),
}

/// What a job produced, its result left in apportd's sealed descriptor
/// (validated, never read whole: see [`ResultFile`]).
#[derive(Debug)]
pub struct JobOutput {
    /// The new keys.
    pub result: ResultFile,
    /// One entry per step, in order.
    pub steps: Vec<StepReport>,
    /// `completed`, `cancelled`, ….
    pub outcome: String,
}

/// Waits for the job at `path` to end and fetches its result.
///
/// # Errors
/// [`JobError`].
pub async fn wait_for_job(
    connection: &zbus::Connection,
    path: zbus::OwnedObjectPath,
) -> Result<JobResult, JobError> {
    let (fd, steps, outcome) = wait_for_descriptor(connection, path).await?;
    let report = read_result(fd)?;
    Ok(JobResult {
        report,
        steps,
        outcome,
    })
}

async fn wait_for_descriptor(
    connection: &zbus::Connection,
    path: zbus::OwnedObjectPath,
) -> Result<(OwnedFd, Vec<StepReport>, String), JobError> {
    // No property cache: `State` is read once, and a cache would cost a
    // PropertiesChanged subscription and a `GetAll` per job.
    let job = JobProxy::builder(connection)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    // Subscribe before looking at the state, so the end cannot be missed.
    let mut finished = job.receive_finished().await?;
    if job.state().await? == "running" {
        finished.next().await.ok_or(JobError::Gone)?;
    }
    let (fd, steps, outcome) = job.result().await?;
    Ok((OwnedFd::from(fd), steps, outcome))
}

/// As [`run_bundle`], but the result stays in its descriptor (validated in
/// one streaming pass), for callers that send it on without holding it.
///
/// # Errors
/// [`JobError`].
pub async fn run_bundle_streaming(
    connection: &zbus::Connection,
    bundle: &[u8],
    report: &impl AsFd,
) -> Result<JobOutput, JobError> {
    let apportd = Apport1Proxy::new(connection).await?;
    let path = apportd
        .run_bundle(bundle, zbus::Fd::from(report.as_fd()), HashMap::new())
        .await
        .map_err(JobError::Refused)?;
    let (fd, steps, outcome) = wait_for_descriptor(connection, path).await?;
    Ok(JobOutput {
        result: ResultFile::from_fd(fd)?,
        steps,
        outcome,
    })
}

/// Asks apportd to run the signed `bundle` against `report` (passed as a
/// descriptor: apportd never opens a path the caller names) and waits for
/// the result.
///
/// # Errors
/// [`JobError`].
pub async fn run_bundle(
    connection: &zbus::Connection,
    bundle: &[u8],
    report: &impl AsFd,
) -> Result<JobResult, JobError> {
    let apportd = Apport1Proxy::new(connection).await?;
    let path = apportd
        .run_bundle(bundle, zbus::Fd::from(report.as_fd()), HashMap::new())
        .await
        .map_err(JobError::Refused)?;
    wait_for_job(connection, path).await
}
