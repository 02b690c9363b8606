//! Running a whole hook: authorization of root work, the job's byte cap and
//! deadline, cancellation, and one journal line per step and per job.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::command::{CancelSignal, STOP_GRACE, cancelled};
use super::limits::Limits;
use super::principal::{Launcher, Principal, UserCreds};
use super::steps::{Collected, StepCaps, StepEnv, StepFailure, run_step};
use crate::hook::standard_fields::is_replaceable;
use crate::hook::{Hook, RunAs, Step, Target};

/// What polkit (or a test) is asked before any root step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRequest {
    /// The caller's uid, from the bus.
    pub caller_uid: u32,
    /// The hook's id (its name).
    pub hook_id: String,
    /// The bundle's version of the hook.
    pub hook_version: u32,
    /// The package the hook targets, when it targets one.
    pub package: Option<String>,
}

/// Decides whether a job's root work may run. Any error must answer `false`.
pub trait Authorizer: Sync {
    /// `true` only if the caller is authorized for the root steps of this hook.
    fn authorize_root(&self, request: &RootRequest) -> impl Future<Output = bool> + Send;
}

/// An [`Authorizer`] with a fixed answer (the unsigned-hook test path uses
/// `Fixed(false)` for callers without the test-hook authorization).
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub bool);

impl Authorizer for Fixed {
    fn authorize_root(&self, _request: &RootRequest) -> impl Future<Output = bool> + Send {
        std::future::ready(self.0)
    }
}

/// The outcome of one step, as the status dict reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// All output collected.
    Collected,
    /// Output cut at the step's (or the job's) byte cap.
    Truncated,
    /// An optional file was absent, or a glob matched nothing.
    Missing,
    /// Root work the caller is not authorized for; nothing ran.
    NotAuthorized,
    /// Refused by apportd (symlink, FIFO, device, `..`, unknown command).
    Refused,
    /// The step failed.
    Failed,
    /// The step ran past its timeout and was killed with its processes.
    TimedOut,
    /// The job was cancelled.
    Cancelled,
    /// Not run: the job had stopped (byte cap or deadline).
    Skipped,
}

impl Outcome {
    /// The kebab-case name used on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Collected => "collected",
            Outcome::Truncated => "truncated",
            Outcome::Missing => "missing",
            Outcome::NotAuthorized => "not-authorized",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One step's line in the status dict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepStatus {
    /// The step's key.
    pub key: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, for anything but `collected` (never a collected value).
    pub detail: String,
    /// Bytes of values it produced.
    pub bytes: u64,
    /// How long it took.
    pub duration: Duration,
}

/// Everything a job produced: the new keys and a status per step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobOutput {
    /// New report fields, in step order, including `HookError_<key>` fields.
    pub fields: Vec<(String, Vec<u8>)>,
    /// One status per step of the hook.
    pub steps: Vec<StepStatus>,
    /// Why the job stopped before its last step, if it did.
    pub stopped: Option<String>,
}

impl JobOutput {
    /// Bytes of all values.
    pub fn bytes(&self) -> u64 {
        self.fields
            .iter()
            .map(|(_, v)| u64::try_from(v.len()).unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add)
    }

    /// The value of field `key`.
    pub fn field(&self, key: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// Which hook runs, for whom, against whose report.
#[derive(Debug, Clone)]
pub struct JobRequest<'a> {
    /// The verified hook.
    pub hook: &'a Hook,
    /// The bundle's version of it (0 for an unsigned local hook).
    pub version: u32,
    /// The caller's uid, from the bus.
    pub caller_uid: u32,
    /// The report's owner, from `fstat` of the descriptor the caller passed.
    pub report_owner: u32,
    /// Keys the report already has: a step may not overwrite them, except a
    /// `replaces` step for one of the few replaceable standard fields.
    pub existing_keys: &'a BTreeSet<String>,
}

/// Longest wait for polkit's answer about a job's root steps (within the
/// job's deadline): an authentication dialog left open, or an agent that
/// never answers, must not hold a job slot for ever.
pub const AUTHORIZATION_WAIT: Duration = Duration::from_secs(120);

/// Runs jobs: the launcher for step processes and the limits in force.
#[derive(Debug, Clone)]
pub struct Executor {
    launcher: Launcher,
    limits: Limits,
}

impl Executor {
    /// An executor whose user steps re-execute `launcher`'s helper.
    pub fn new(launcher: Launcher, limits: Limits) -> Self {
        Executor { launcher, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Run every step of `request.hook`, in order. Never fails: a failing step
    /// becomes a `HookError_<key>` field, as in apport; a job stopped by its
    /// byte cap or deadline gets a `HookError` field.
    ///
    /// `progress(done, total)` is called after each step.
    pub async fn run<A: Authorizer>(
        &self,
        request: &JobRequest<'_>,
        authorizer: &A,
        cancel: Option<CancelSignal>,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> JobOutput {
        let hook = request.hook;
        let started = Instant::now();
        let deadline = started
            .checked_add(self.limits.job_deadline())
            .unwrap_or(started);
        let needs_root = hook.steps.iter().any(|s| s.run_as == RunAs::Root);
        // The question may wait on a person (an authentication dialog the
        // caller's agent shows): bounded by the job's deadline, capped at
        // AUTHORIZATION_WAIT, and given up on Cancel; any of them is "no".
        let root_allowed = needs_root && {
            let question = RootRequest {
                caller_uid: request.caller_uid,
                hook_id: hook.name.clone(),
                hook_version: request.version,
                package: match &hook.target {
                    Target::Package(p) | Target::SourcePackage(p) => Some(p.clone()),
                    _ => None,
                },
            };
            let wait = self.limits.job_deadline().min(AUTHORIZATION_WAIT);
            let mut cancel_wait = cancel.clone();
            tokio::select! {
                answer = tokio::time::timeout(wait, authorizer.authorize_root(&question)) => {
                    answer.unwrap_or(false)
                }
                () = cancelled(&mut cancel_wait) => false,
            }
        };
        // "As the report's owner" would be root for a root-owned report:
        // its user steps run as `nobody` instead, unprivileged as they were
        // reviewed and linted.
        let user = if request.report_owner == 0 {
            UserCreds::nobody()
        } else {
            UserCreds::for_uid(request.report_owner)
        }
        .map(Principal::User);
        let mut output = JobOutput::default();
        let mut cancel_watch = cancel.clone();
        let total = hook.steps.len();
        for (index, step) in hook.steps.iter().enumerate() {
            let step_started = Instant::now();
            let left = self.limits.job_bytes.saturating_sub(output.bytes());
            let time_left = deadline.saturating_duration_since(step_started);
            let mut status = StepStatus {
                key: step.key.clone(),
                outcome: Outcome::Skipped,
                detail: String::new(),
                bytes: 0,
                duration: Duration::ZERO,
            };
            if is_cancelled(&cancel) {
                status.outcome = Outcome::Cancelled;
                output.stopped.get_or_insert_with(|| "cancelled".to_owned());
            } else if let Some(why) = &output.stopped {
                status.detail = why.clone();
            } else if time_left.is_zero() {
                let why = format!(
                    "job deadline of {} s reached",
                    self.limits.job_deadline_secs
                );
                output.fields.push((
                    "HookError".into(),
                    format!("job stopped: {why}").into_bytes(),
                ));
                status.detail = why.clone();
                output.stopped = Some(why);
            } else {
                let principal = match (step.run_as, &user) {
                    (RunAs::User, Ok(principal)) => Ok(principal.clone()),
                    (RunAs::User, Err(e)) => Err((Outcome::Failed, e.to_string())),
                    (RunAs::Root, _) if root_allowed => Ok(Principal::Root),
                    _ => Err((
                        Outcome::NotAuthorized,
                        "root steps need polkit action com.ubuntu.apport.package-hook".to_owned(),
                    )),
                };
                match principal {
                    Err((outcome, detail)) => {
                        status.outcome = outcome;
                        if outcome == Outcome::Failed {
                            output.fields.push((
                                format!("HookError_{}", step.key),
                                detail.clone().into_bytes(),
                            ));
                        }
                        status.detail = detail;
                    }
                    Ok(principal) => {
                        let env = StepEnv {
                            launcher: &self.launcher,
                            principal: &principal,
                            max_glob_matches: self.limits.max_glob_matches,
                            cancel: cancel.clone(),
                        };
                        let step_cap = u64::from(step.max_bytes);
                        let caps = StepCaps {
                            max_bytes: step_cap.min(left),
                            timeout: Duration::from_secs(u64::from(step.timeout_secs))
                                .min(time_left),
                        };
                        // The step sees the cancellation itself and waits until its
                        // processes are gone; dropping it here is only the backstop.
                        let running = run_step(&env, step, caps);
                        tokio::pin!(running);
                        let result = tokio::select! {
                            result = &mut running => result,
                            () = cancelled(&mut cancel_watch) => {
                                let grace = STOP_GRACE.saturating_add(Duration::from_secs(1));
                                match tokio::time::timeout(grace, &mut running).await {
                                    Ok(Err(StepFailure::TimedOut(_))) | Err(_) => Err(StepFailure::Cancelled),
                                    Ok(result) => result,
                                }
                            }
                        };
                        let result = result.and_then(|collected| {
                            refuse_clobbering(step, collected, request.existing_keys)
                        });
                        match result {
                            Ok(collected) => {
                                status.bytes = collected.bytes();
                                status.outcome = if collected.truncated {
                                    Outcome::Truncated
                                } else {
                                    Outcome::Collected
                                };
                                status.detail = collected.note.clone().unwrap_or_default();
                                // Cut at a cap that was the job's remaining budget, not
                                // the step's own: the job's total is reached. (Not
                                // `status.bytes >= left`: command output is trimmed of
                                // surrounding whitespace after the cut, so a cut step can
                                // keep a few bytes less than its cap.)
                                if collected.truncated && left < step_cap {
                                    let why = format!(
                                        "total output cap of {} bytes per job reached",
                                        self.limits.job_bytes
                                    );
                                    status.detail = why.clone();
                                    output.stopped = Some(why);
                                } else if collected.truncated {
                                    status.detail =
                                        format!("output cut at {} bytes", caps.max_bytes);
                                }
                                output.fields.extend(collected.fields);
                                if let Some(why) = &output.stopped {
                                    output.fields.push((
                                        "HookError".into(),
                                        format!("job stopped: {why}").into_bytes(),
                                    ));
                                }
                            }
                            Err(StepFailure::Missing) => status.outcome = Outcome::Missing,
                            Err(failure) => {
                                status.outcome = match failure {
                                    StepFailure::Refused(_) => Outcome::Refused,
                                    StepFailure::TimedOut(_) => Outcome::TimedOut,
                                    StepFailure::Cancelled => Outcome::Cancelled,
                                    _ => Outcome::Failed,
                                };
                                status.detail = failure.to_string();
                                if status.outcome == Outcome::Cancelled {
                                    output.stopped = Some("cancelled".to_owned());
                                } else {
                                    output.fields.push((
                                        format!("HookError_{}", step.key),
                                        failure.to_string().into_bytes(),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            status.duration = step_started.elapsed();
            tracing::info!(
                hook = %hook.name,
                version = request.version,
                caller_uid = request.caller_uid,
                key = %status.key,
                bytes = status.bytes,
                outcome = status.outcome.as_str(),
                "hook step finished"
            );
            output.steps.push(status);
            progress(index.saturating_add(1), total);
        }
        tracing::info!(
            hook = %hook.name,
            version = request.version,
            caller_uid = request.caller_uid,
            keys = %output.fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(","),
            bytes = output.bytes(),
            outcome = output.stopped.as_deref().unwrap_or("completed"),
            "hook job finished"
        );
        output
    }
}

/// A hook adds keys; it does not rewrite the report (apport's `new_keys`
/// would not even send a changed existing key). Only a `replaces` step may
/// re-set one of [`REPLACEABLE_FIELDS`](crate::hook::standard_fields::REPLACEABLE_FIELDS).
fn refuse_clobbering(
    step: &Step,
    collected: Collected,
    existing: &BTreeSet<String>,
) -> Result<Collected, StepFailure> {
    let clobbered: Vec<&str> = collected
        .fields
        .iter()
        .map(|(key, _)| key.as_str())
        .filter(|key| existing.contains(*key) && !(step.replaces && is_replaceable(key)))
        .collect();
    if clobbered.is_empty() {
        Ok(collected)
    } else {
        Err(StepFailure::Refused(format!(
            "would overwrite existing report field(s) {}",
            clobbered.join(", ")
        )))
    }
}

fn is_cancelled(cancel: &Option<CancelSignal>) -> bool {
    cancel.as_ref().is_some_and(|c| *c.borrow())
}
