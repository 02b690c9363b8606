//! Every bound apportd enforces, with its default, and admission of new jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The only `PATH` commands are looked up in and run with (the linter's).
pub use crate::hook::FIXED_PATH;
/// The client-side disk cap of the spec: at most 50 MB of new keys per job.
pub const JOB_BYTE_CAP: u64 = 50 * 1000 * 1000;
/// A job stops, whatever its steps' own timeouts, after this long.
pub const JOB_DEADLINE: Duration = Duration::from_secs(600);
/// At most this many jobs run at once.
pub const MAX_CONCURRENT_JOBS: usize = 4;
/// At most this many jobs run at once for one caller uid.
pub const MAX_JOBS_PER_CALLER: usize = 2;
/// Results waiting to be fetched hold at most this many bytes together.
pub const PENDING_RESULT_BYTES: u64 = 4 * JOB_BYTE_CAP;
/// Default finished results waiting to be fetched, all jobs together: each
/// holds a descriptor and a bus match rule, so their number is bounded as
/// well as their bytes (quick jobs whose results are never fetched would
/// otherwise use up apportd's descriptors).
pub const PENDING_RESULTS: usize = 64;
/// At most this many files one glob step attaches.
pub const MAX_GLOB_MATCHES: usize = 100;
/// Conffiles larger than this are reported as not checked rather than hashed.
pub const CONFFILE_HASH_CAP: u64 = 4 * 1024 * 1024;
/// apportd exits after this long with no job and no call.
pub const IDLE_EXIT: Duration = Duration::from_secs(30);
/// At most this many method calls of one caller uid are in progress at once
/// (each may wait on polkit or on reading a report).
pub const MAX_CALLS_PER_CALLER: usize = 8;
/// Reading and parsing a caller's report gives up after this long.
pub const REPORT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits in force, as configured (`[limits]` in `apportd.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Total bytes of new keys per job.
    pub job_bytes: u64,
    /// Wall-clock deadline of a job, in seconds.
    pub job_deadline_secs: u64,
    /// Jobs running at once.
    pub max_jobs: usize,
    /// Jobs running at once per caller uid.
    pub max_jobs_per_caller: usize,
    /// Files one glob step attaches.
    pub max_glob_matches: usize,
    /// Bytes of finished jobs' results waiting to be fetched, all jobs
    /// together; over it, the oldest unfetched results are dropped.
    pub pending_result_bytes: u64,
    /// Finished jobs' results waiting to be fetched, all jobs together;
    /// over it, the oldest unfetched results are dropped.
    pub pending_results: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            job_bytes: JOB_BYTE_CAP,
            job_deadline_secs: JOB_DEADLINE.as_secs(),
            max_jobs: MAX_CONCURRENT_JOBS,
            max_jobs_per_caller: MAX_JOBS_PER_CALLER,
            max_glob_matches: MAX_GLOB_MATCHES,
            pending_result_bytes: PENDING_RESULT_BYTES,
            pending_results: PENDING_RESULTS,
        }
    }
}

impl Limits {
    /// The job deadline as a duration.
    pub fn job_deadline(&self) -> Duration {
        Duration::from_secs(self.job_deadline_secs)
    }
}

/// Why a job was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// Too many jobs are running.
    #[error("{0} jobs are already running; try again when one has finished")]
    Busy(usize),
    /// This caller already has its share of calls in progress.
    #[error("uid {uid} already has {calls} calls in progress; wait for one to return")]
    TooManyCalls {
        /// The caller.
        uid: u32,
        /// How many calls it has in progress.
        calls: usize,
    },
    /// This caller already runs its share.
    #[error("uid {uid} already runs {running} jobs; wait for one to finish")]
    CallerBusy {
        /// The caller.
        uid: u32,
        /// How many it runs.
        running: usize,
    },
}

#[derive(Debug, Default)]
struct SlotCounts {
    running: usize,
    per_caller: HashMap<u32, usize>,
}

/// Counts running jobs against [`Limits::max_jobs`] and [`Limits::max_jobs_per_caller`].
#[derive(Debug, Clone)]
pub struct JobSlots {
    counts: Arc<Mutex<SlotCounts>>,
    max_jobs: usize,
    max_per_caller: usize,
}

/// A held job slot, released when dropped.
#[derive(Debug)]
pub struct JobSlot {
    counts: Arc<Mutex<SlotCounts>>,
    uid: u32,
}

impl JobSlots {
    /// Slots for these limits.
    pub fn new(limits: &Limits) -> Self {
        JobSlots {
            counts: Arc::default(),
            max_jobs: limits.max_jobs,
            max_per_caller: limits.max_jobs_per_caller,
        }
    }

    /// Take a slot for a job of caller `uid`, or say why not.
    pub fn try_acquire(&self, uid: u32) -> Result<JobSlot, AdmissionError> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.running >= self.max_jobs {
            return Err(AdmissionError::Busy(counts.running));
        }
        let mine = counts.per_caller.get(&uid).copied().unwrap_or(0);
        if mine >= self.max_per_caller {
            return Err(AdmissionError::CallerBusy { uid, running: mine });
        }
        counts.running = counts.running.saturating_add(1);
        counts.per_caller.insert(uid, mine.saturating_add(1));
        Ok(JobSlot {
            counts: Arc::clone(&self.counts),
            uid,
        })
    }

    /// How many jobs run now.
    pub fn running(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.running = counts.running.saturating_sub(1);
        if let Some(mine) = counts.per_caller.get_mut(&self.uid) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                counts.per_caller.remove(&self.uid);
            }
        }
    }
}

/// Counts method calls in progress, per caller uid: a call that waits (on
/// polkit, on a slow report) holds apportd's resources and keeps it alive.
#[derive(Debug, Clone)]
pub struct CallCounter {
    counts: Arc<Mutex<HashMap<u32, usize>>>,
    max_per_caller: usize,
}

/// A call in progress, counted until dropped.
#[derive(Debug)]
pub struct CallInProgress {
    counts: Arc<Mutex<HashMap<u32, usize>>>,
    uid: u32,
}

impl CallCounter {
    /// A counter allowing `max_per_caller` calls in progress per uid.
    pub fn new(max_per_caller: usize) -> Self {
        CallCounter {
            counts: Arc::default(),
            max_per_caller,
        }
    }

    /// Count a call of `uid`, or refuse it when `uid` has too many in progress.
    pub fn enter(&self, uid: u32) -> Result<CallInProgress, AdmissionError> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let calls = counts.get(&uid).copied().unwrap_or(0);
        if calls >= self.max_per_caller {
            return Err(AdmissionError::TooManyCalls { uid, calls });
        }
        counts.insert(uid, calls.saturating_add(1));
        Ok(CallInProgress {
            counts: Arc::clone(&self.counts),
            uid,
        })
    }

    /// Calls in progress, all callers together.
    pub fn in_progress(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .fold(0, |a, b| a.saturating_add(*b))
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(calls) = counts.get_mut(&self.uid) {
            *calls = calls.saturating_sub(1);
            if *calls == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slots_bound_total_and_per_caller_jobs() {
        let slots = JobSlots::new(&Limits {
            max_jobs: 3,
            max_jobs_per_caller: 2,
            ..Limits::default()
        });
        let a1 = slots.try_acquire(1000).unwrap();
        let _a2 = slots.try_acquire(1000).unwrap();
        assert!(matches!(
            slots.try_acquire(1000),
            Err(AdmissionError::CallerBusy {
                uid: 1000,
                running: 2
            })
        ));
        let _b1 = slots.try_acquire(1001).unwrap();
        assert_eq!(
            slots.try_acquire(1002).unwrap_err(),
            AdmissionError::Busy(3)
        );
        drop(a1);
        assert_eq!(slots.running(), 2);
        let _a3 = slots.try_acquire(1000).unwrap();
    }

    #[test]
    fn calls_in_progress_are_counted_and_bounded_per_caller() {
        let calls = CallCounter::new(2);
        let a1 = calls.enter(1000).unwrap();
        let _a2 = calls.enter(1000).unwrap();
        assert_eq!(
            calls.enter(1000).unwrap_err(),
            AdmissionError::TooManyCalls {
                uid: 1000,
                calls: 2
            }
        );
        let b1 = calls.enter(1001).unwrap();
        assert_eq!(calls.in_progress(), 3);
        drop(a1);
        drop(b1);
        assert_eq!(calls.in_progress(), 1);
        let _a3 = calls.enter(1000).unwrap();
    }
}
