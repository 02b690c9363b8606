//! The D-Bus adapter: `com.ubuntu.Apport1` and its job objects.
//!
//! Methods here only plumb arguments into [`caller`](super::caller),
//! [`polkit`](super::polkit) and [`job`](super::job) and map errors into
//! [`Error`]; all behaviour lives in those modules.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use zbus::message::{Flags, Header};
use zbus::names::{BusName, OwnedUniqueName};
use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedObjectPath, OwnedVariant, interface};
use zbus_polkit::policykit1::Subject;

use super::applicable::check_applicable;
use super::caller::{
    BusCallerResolver, Caller, CallerCache, CallerError, CallerResolver, report_owner,
};
use super::command::cancelled;
use super::job::{AUTHORIZATION_WAIT, Authorizer, Executor, Fixed, JobOutput, JobRequest};
use super::limits::{
    AdmissionError, CallCounter, CallInProgress, JobSlot, JobSlots, MAX_CALLS_PER_CALLER,
    REPORT_READ_TIMEOUT,
};
use super::output::{encode_fields, sealed_memfd};
use super::polkit::{PolkitAuthorizer, TEST_HOOK_ACTION, answered_within, is_authorized};
use super::proxy::StepReport;
use super::rollback::{DEFAULT_STATE_DIR, HighWater};
use super::unsigned::validate_unsigned;
use crate::bundle::{KeyRing, MAX_PAYLOAD_DEPTH, MAX_PAYLOAD_FIELDS};
use crate::hook::Hook;
use crate::report::{Report, ReportLimits};
use crate::wire::{WireLimits, check_raw};

/// The well-known name apportd owns.
pub const BUS_NAME: &str = "com.ubuntu.apport";
/// The manager object.
pub const OBJECT_PATH: &str = "/com/ubuntu/Apport";
/// Job objects live below this path.
pub const JOBS_PATH: &str = "/com/ubuntu/Apport/jobs";
/// apportd's version, as the `Version` property reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest hook accepted on the bus.
pub const MAX_HOOK_BYTES: usize = 1024 * 1024;
/// What polkit's dialog says for an unsigned hook, always the same.
pub const UNSIGNED_HOOK_MESSAGE: &str =
    "Run an unsigned crash hook (a hook author's test) with full privileges";
/// A finished job's result stays fetchable this long.
pub const RESULT_KEEP: Duration = Duration::from_secs(60);

/// Errors on the bus, named `com.ubuntu.Apport1.Error.*`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "com.ubuntu.Apport1.Error")]
pub enum Error {
    /// A bus error.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller may not use this report or job.
    AccessDenied(String),
    /// polkit did not authorize the caller.
    NotAuthorized(String),
    /// An argument is malformed.
    InvalidArgs(String),
    /// Too many jobs run.
    Busy(String),
    /// The job has not finished yet.
    NotFinished(String),
    /// The job's result was dropped (its caller left, or results waiting to
    /// be fetched went over their cap).
    ResultDropped(String),
    /// The bundle failed verification (signature, key, revocation, expiry, format).
    BundleRejected(String),
    /// The hook's target or `when` conditions do not match the report.
    NotApplicable(String),
}

impl From<CallerError> for Error {
    fn from(error: CallerError) -> Self {
        match error {
            CallerError::NotOwner { .. } | CallerError::Unknown(_) => {
                Error::AccessDenied(error.to_string())
            }
            CallerError::NotAFile | CallerError::BadDescriptor(_) => {
                Error::InvalidArgs(error.to_string())
            }
        }
    }
}

impl From<AdmissionError> for Error {
    fn from(error: AdmissionError) -> Self {
        Error::Busy(error.to_string())
    }
}

/// Where apportd reads its trusted keys and revocation list from.
#[derive(Debug, Clone)]
pub struct KeySource {
    /// Directories of trusted public keys.
    pub key_dirs: Vec<std::path::PathBuf>,
    /// The revocation list.
    pub revoked_keys: std::path::PathBuf,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State shared by the manager, its jobs and the idle loop.
#[derive(Debug)]
pub struct Shared {
    executor: Executor,
    /// The trusted keys as last loaded.
    keyring: Mutex<Arc<KeyRing>>,
    /// Where the keys come from, when they are read again for every bundle.
    key_source: Option<KeySource>,
    high_water: HighWater,
    slots: JobSlots,
    calls: CallCounter,
    whoopsie_uid: Option<u32>,
    /// Callers' uids by unique name, as the bus daemon gave them.
    callers: Arc<CallerCache>,
    next_job: AtomicU64,
    jobs: Mutex<Vec<OwnedObjectPath>>,
    /// Finished jobs' results not fetched yet, oldest first, with their sizes.
    pending: Mutex<std::collections::VecDeque<(OwnedObjectPath, u64, Arc<JobShared>)>>,
    last_activity: Mutex<std::time::Instant>,
    /// Woken when a job starts or ends (for the sd-notify status).
    changed: Notify,
    /// Memory report reads may hold at once.
    report_budget: ReportBudget,
}

impl Shared {
    /// State for `executor`; bundles are verified with `keyring`;
    /// `whoopsie_uid` may use anyone's report. Bundle high-water marks are
    /// kept in [`DEFAULT_STATE_DIR`] unless [`Shared::with_high_water`] says otherwise.
    pub fn new(executor: Executor, keyring: KeyRing, whoopsie_uid: Option<u32>) -> Self {
        Shared {
            keyring: Mutex::new(Arc::new(keyring)),
            key_source: None,
            high_water: HighWater::new(DEFAULT_STATE_DIR.into()),
            slots: JobSlots::new(executor.limits()),
            calls: CallCounter::new(MAX_CALLS_PER_CALLER),
            executor,
            whoopsie_uid,
            callers: Arc::new(CallerCache::new()),
            next_job: AtomicU64::new(1),
            jobs: Mutex::new(Vec::new()),
            pending: Mutex::new(std::collections::VecDeque::new()),
            last_activity: Mutex::new(std::time::Instant::now()),
            changed: Notify::new(),
            report_budget: ReportBudget::new(REPORT_READ_BUDGET_BYTES),
        }
    }

    /// Read the trusted keys and the revocation list again from `source`
    /// before every bundle is verified: a key revoked or removed while
    /// apportd runs (and any caller can keep it running) is refused at
    /// once, not at its next start.
    #[must_use]
    pub fn with_key_source(mut self, source: KeySource) -> Self {
        self.key_source = Some(source);
        self
    }

    /// The trusted keys to verify a bundle with now: read again when a
    /// [`KeySource`] is set, off the runtime's one thread (up to 512 small
    /// files; callers are already bounded by [`Shared::enter_call`]). A
    /// trust store that cannot be read refuses the bundle (fail closed),
    /// never falls back to the keys read before.
    async fn current_keyring(&self) -> Result<Arc<KeyRing>, Error> {
        let Some(source) = self.key_source.clone() else {
            return Ok(Arc::clone(&lock(&self.keyring)));
        };
        let loaded = tokio::task::spawn_blocking(move || {
            KeyRing::load(&source.key_dirs, Some(&source.revoked_keys))
        })
        .await
        .map_err(|e| {
            Error::BundleRejected(format!("trust-store: reading the trusted keys: {e}"))
        })?;
        let ring = Arc::new(loaded.map_err(|e| {
            tracing::error!("reading the trusted keys: {e}");
            Error::BundleRejected(format!("trust-store: reading the trusted keys: {e}"))
        })?);
        *lock(&self.keyring) = Arc::clone(&ring);
        Ok(ring)
    }

    /// The trusted keys as last read (for the properties).
    fn last_keyring(&self) -> Arc<KeyRing> {
        Arc::clone(&lock(&self.keyring))
    }

    /// Keep bundle high-water marks with `high_water`.
    #[must_use]
    pub fn with_high_water(mut self, high_water: HighWater) -> Self {
        self.high_water = high_water;
        self
    }

    /// Who sent the message with `header`, from the bus daemon (or its
    /// earlier answer for the same unique name).
    async fn resolve_caller(
        &self,
        header: &Header<'_>,
        connection: &Connection,
    ) -> Result<Caller, CallerError> {
        BusCallerResolver::new(connection.clone(), Arc::clone(&self.callers))
            .resolve(header)
            .await
    }

    fn touch(&self) {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = std::time::Instant::now();
    }

    /// Jobs holding a slot now (running, not finished).
    pub fn running_jobs(&self) -> usize {
        self.slots.running()
    }

    /// Resolves once a job started or ended since the last call.
    pub async fn jobs_changed(&self) {
        self.changed.notified().await;
    }

    fn note_jobs_changed(&self) {
        self.changed.notify_one();
    }

    /// Job objects that exist now.
    pub fn job_paths(&self) -> Vec<OwnedObjectPath> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// No job exists, no call is in progress and nothing was called for `idle`.
    pub fn idle_for(&self, idle: Duration) -> bool {
        self.slots.running() == 0
            && self.calls.in_progress() == 0
            && self.job_paths().is_empty()
            && self
                .last_activity
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed()
                >= idle
    }

    /// Count a call of `uid` until the returned guard drops.
    fn enter_call(&self, uid: u32) -> Result<CallInProgress, Error> {
        self.touch();
        Ok(self.calls.enter(uid)?)
    }

    fn forget_job(&self, path: &OwnedObjectPath) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|p| p != path);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(p, _, _)| p != path);
        self.touch();
    }

    /// Account for a new result of `bytes` waiting at `path`; while the
    /// results waiting together exceed the byte cap or their number cap,
    /// drop the oldest (never the new one), so unfetched results cannot pile
    /// up in root's memory or use up its descriptors.
    fn hold_result(&self, path: &OwnedObjectPath, bytes: u64, job: &Arc<JobShared>) {
        let cap = self.executor.limits().pending_result_bytes;
        let most = self.executor.limits().pending_results.max(1);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.push_back((path.clone(), bytes, Arc::clone(job)));
        let mut total = pending
            .iter()
            .fold(0u64, |sum, (_, b, _)| sum.saturating_add(*b));
        while (total > cap || pending.len() > most) && pending.len() > 1 {
            let Some((old_path, old_bytes, old_job)) = pending.pop_front() else {
                break;
            };
            total = total.saturating_sub(old_bytes);
            tracing::warn!(
                job = %old_path,
                bytes = old_bytes,
                cap,
                most,
                "results waiting to be fetched are over their caps: dropping the oldest"
            );
            old_job.drop_result();
        }
    }
}

/// `com.ubuntu.Apport1` at [`OBJECT_PATH`].
#[derive(Debug)]
pub struct Manager {
    shared: Arc<Shared>,
}

impl Manager {
    /// The manager over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Manager { shared }
    }
}

#[interface(name = "com.ubuntu.Apport1")]
impl Manager {
    /// Run a signed hook bundle against the report behind `report`. Root
    /// steps need polkit action `com.ubuntu.apport.package-hook`; user steps
    /// run as the report's owner. Returns the job's object path.
    #[zbus(out_args("job"))]
    async fn run_bundle(
        &self,
        bundle: Vec<u8>,
        report: zbus::OwnedFd,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.touch();
        if let Some(option) = options.keys().next() {
            return Err(Error::InvalidArgs(format!("unknown option {option}")));
        }
        let caller = self.shared.resolve_caller(&header, connection).await?;
        let _call = self.shared.enter_call(caller.uid)?;
        let report = close_on_exec(OwnedFd::from(report))?;
        let owner = report_owner(&report, caller.uid, self.shared.whoopsie_uid)?;
        // Signature first: nothing from an untrusted bundle is parsed or run.
        let verified = self
            .shared
            .current_keyring()
            .await?
            .verify(&bundle, unix_now())
            .map_err(|e| Error::BundleRejected(format!("{}: {e}", e.code())))?;
        // Admission before work: a caller over its limits gets no report read.
        let slot = self.shared.slots.try_acquire(caller.uid)?;
        let (parsed, _budget) = read_report(&self.shared.report_budget, &report).await?;
        check_applicable(verified.hook(), &parsed)
            .map_err(|e| Error::NotApplicable(e.to_string()))?;
        // A validly signed but older bundle of this hook (a replay by a
        // compromised server or mirror) is refused before anything runs.
        // Checked and recorded only once the bundle applies to the report:
        // a bundle run against a report it does not apply to must not
        // raise the mark (any user could otherwise lock out a later
        // version with a bundle they only downloaded).
        // Marked per hook name, not bundle id: daisy gives every version
        // its own id (`NAME-VERSION`), so an id's mark never meets an older
        // version.
        self.shared
            .high_water
            .check_and_record(
                &verified.hook().name,
                verified.version(),
                verified.issued_at(),
                unix_now(),
            )
            .map_err(|e| {
                tracing::warn!(bundle = verified.id(), error = %e, "bundle refused");
                Error::BundleRejected(format!("{}: {e}", e.code()))
            })?;
        let interactive = header
            .primary()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH);
        let subject = Subject::new_for_message_header(&header).ok();
        tracing::info!(
            bundle = verified.id(),
            version = verified.version(),
            key = %verified.key_id(),
            caller_uid = caller.uid,
            report_owner = owner,
            "running signed hook"
        );
        let version = verified.version();
        let job = JobStart {
            caller,
            owner,
            existing_keys: parsed.keys().map(|k| k.as_str().to_owned()).collect(),
            hook: verified.into_payload().hook,
            version,
            authorizer: PolkitAuthorizer::new(connection.clone(), subject, interactive),
            slot,
        };
        start_job(&self.shared, connection, job).await
    }

    /// Run an unsigned hook, given as the canonical BSON encoding of the hook
    /// model, against the report behind `report`. Needs polkit action
    /// `com.ubuntu.apport.test-hook`. Returns the job's object path.
    #[zbus(out_args("job"))]
    async fn run_unsigned_hook(
        &self,
        hook: Vec<u8>,
        report: zbus::OwnedFd,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<OwnedObjectPath, Error> {
        self.shared.touch();
        if let Some(option) = options.keys().next() {
            return Err(Error::InvalidArgs(format!("unknown option {option}")));
        }
        let caller = self.shared.resolve_caller(&header, connection).await?;
        let _call = self.shared.enter_call(caller.uid)?;
        let report = close_on_exec(OwnedFd::from(report))?;
        let owner = report_owner(&report, caller.uid, self.shared.whoopsie_uid)?;
        let hook = decode_hook(&hook)?;
        // The client's linter is no boundary: apportd checks again.
        validate_unsigned(&hook).map_err(|problems| {
            Error::InvalidArgs(format!(
                "the unsigned hook is not valid (run `apport-hook lint` on it): {}",
                problems.join("; ")
            ))
        })?;
        let interactive = header
            .primary()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH);
        // A fixed message: nothing the caller sends is shown as polkit's own
        // words in the authentication dialog; the hook's name goes in details.
        let details = HashMap::from([
            ("hook_id", hook.name.as_str()),
            ("hook_version", "unsigned"),
            ("polkit.message", UNSIGNED_HOOK_MESSAGE),
        ]);
        // Bounded like a root step's authorization (`AUTHORIZATION_WAIT`).
        let authorized = match Subject::new_for_message_header(&header) {
            Ok(subject) => {
                answered_within(
                    AUTHORIZATION_WAIT,
                    is_authorized(
                        connection,
                        &subject,
                        TEST_HOOK_ACTION,
                        &details,
                        interactive,
                    ),
                )
                .await
            }
            Err(_) => false,
        };
        if !authorized {
            return Err(Error::NotAuthorized(format!(
                "unsigned hooks need polkit action {TEST_HOOK_ACTION}"
            )));
        }
        // Authorized and admitted before the report is read at all.
        let slot = self.shared.slots.try_acquire(caller.uid)?;
        let (parsed, _budget) = read_report(&self.shared.report_budget, &report).await?;
        let job = JobStart {
            caller,
            owner,
            existing_keys: parsed.keys().map(|k| k.as_str().to_owned()).collect(),
            hook,
            version: 0,
            authorizer: Fixed(true),
            slot,
        };
        start_job(&self.shared, connection, job).await
    }

    /// Ids of the trusted signing keys (revoked ones included, see `RevokedKeys`).
    #[zbus(property)]
    fn trusted_keys(&self) -> Vec<String> {
        self.shared
            .last_keyring()
            .trusted_key_ids()
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// Ids of trusted keys that are revoked.
    #[zbus(property)]
    fn revoked_keys(&self) -> Vec<String> {
        let ring = self.shared.last_keyring();
        ring.trusted_key_ids()
            .into_iter()
            .filter(|id| ring.is_revoked(*id))
            .map(|id| id.to_string())
            .collect()
    }

    /// apportd's version.
    #[zbus(property)]
    fn version(&self) -> String {
        VERSION.to_owned()
    }

    /// The limits in force.
    #[zbus(property)]
    fn limits(&self) -> HashMap<String, u64> {
        let limits = self.shared.executor.limits();
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        HashMap::from([
            ("job_bytes".to_owned(), limits.job_bytes),
            ("job_deadline_secs".to_owned(), limits.job_deadline_secs),
            ("max_jobs".to_owned(), as_u64(limits.max_jobs)),
            (
                "max_jobs_per_caller".to_owned(),
                as_u64(limits.max_jobs_per_caller),
            ),
            (
                "max_glob_matches".to_owned(),
                as_u64(limits.max_glob_matches),
            ),
            (
                "pending_result_bytes".to_owned(),
                limits.pending_result_bytes,
            ),
            ("pending_results".to_owned(), as_u64(limits.pending_results)),
        ])
    }

    /// Jobs that exist now (running, or finished and holding a result).
    #[zbus(property)]
    fn running_jobs(&self) -> Vec<OwnedObjectPath> {
        self.shared.job_paths()
    }
}

/// Parse the report behind the caller's descriptor, with the report module's limits.
/// Descriptors arrive from zbus without close-on-exec; the report must not
/// reach any step process.
fn close_on_exec(fd: OwnedFd) -> Result<OwnedFd, Error> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| Error::InvalidArgs(format!("report descriptor: {e}")))?;
    Ok(fd)
}

/// Read and parse the report off the async workers (a slow file must not
/// stall the bus), giving up after [`REPORT_READ_TIMEOUT`].
async fn read_report(
    budget: &ReportBudget,
    report: &OwnedFd,
) -> Result<(Report, OwnedSemaphorePermit), Error> {
    read_report_within(budget, report, REPORT_READ_TIMEOUT).await
}

/// File systems whose reads another process or machine answers, by their
/// `statfs` magic (`linux/magic.h`): a report there is refused, since a
/// FUSE daemon or a hung server can keep apportd's read waiting for ever.
pub fn served_elsewhere(magic: i64) -> Option<&'static str> {
    match magic {
        0x6573_5546 => Some("FUSE"),
        0x6969 => Some("NFS"),
        0xFF53_4D42 => Some("CIFS"),
        0xFE53_4D42 => Some("SMB2"),
        0x517B => Some("SMB"),
        0x0102_1997 => Some("9P"),
        0x7375_7245 => Some("Coda"),
        0x5346_414F => Some("AFS"),
        0x00C3_6400 => Some("Ceph"),
        _ => None,
    }
}

/// A file system's `statfs` magic as a number: `fs_type_t` is an `i64` here,
/// 32 bits wide on some other targets.
#[allow(clippy::useless_conversion)]
fn fs_magic(kind: nix::sys::statfs::FsType) -> i64 {
    i64::from(kind.0)
}

/// Memory that report reads may hold at once. A report is read whole and
/// then parsed, about twice its size at the peak, and the unit caps apportd
/// at `MemoryMax=768M` beside up to 400 MB of job output: without a budget
/// one caller's 500 MB file, or a few callers' smaller ones at once, got
/// apportd killed by the kernel with every job in it.
pub const REPORT_READ_BUDGET_BYTES: u64 = 256 * 1024 * 1024;

/// The budget's unit: permits count these.
const BUDGET_UNIT: u64 = 64 * 1024;

/// The memory budget of report reads.
#[derive(Debug)]
pub struct ReportBudget {
    permits: Arc<Semaphore>,
    units: u64,
}

impl ReportBudget {
    /// A budget of `bytes`.
    fn new(bytes: u64) -> Self {
        let units = bytes / BUDGET_UNIT;
        ReportBudget {
            permits: Arc::new(Semaphore::new(
                usize::try_from(units).unwrap_or(Semaphore::MAX_PERMITS),
            )),
            units,
        }
    }

    /// The largest report that fits the whole budget.
    fn largest_report(&self) -> u64 {
        self.units.saturating_mul(BUDGET_UNIT) / 2
    }
}

/// Waits at most `timeout` for the report's share of the budget, then reads
/// and parses the report within `timeout`. The permit holds that share
/// while the caller uses the parsed report; a read given up on keeps it
/// until its thread ends, since the thread still holds the memory.
async fn read_report_within(
    budget: &ReportBudget,
    report: &OwnedFd,
    timeout: Duration,
) -> Result<(Report, OwnedSemaphorePermit), Error> {
    // Before any of the budget is taken: a read that never returns keeps
    // its share (its thread still holds it) and its blocking thread for
    // good, and a caller can make one on a file system another process
    // serves.
    if let Some(kind) = nix::sys::statfs::fstatfs(report)
        .ok()
        .and_then(|fs| served_elsewhere(fs_magic(fs.filesystem_type())))
    {
        return Err(Error::InvalidArgs(format!(
            "the report is on a {kind} file system, whose reads may never return; copy it to a \
             local file system (such as /var/crash) first"
        )));
    }
    let size = fd_size(report);
    // Twice the file for the read and the parse, plus a unit for rounding.
    let units = size
        .saturating_mul(2)
        .div_ceil(BUDGET_UNIT)
        .saturating_add(1);
    let units = u32::try_from(units)
        .ok()
        .filter(|u| u64::from(*u) <= budget.units)
        .ok_or_else(|| {
            Error::InvalidArgs(format!(
                "the report is {size} bytes; apportd reads reports of up to {} bytes (its memory \
                 budget for reports); leave out the core dump or other large binary values",
                budget.largest_report()
            ))
        })?;
    let permit = tokio::time::timeout(
        timeout,
        Arc::clone(&budget.permits).acquire_many_owned(units),
    )
    .await
    .map_err(|_| {
        Error::InvalidArgs(format!(
            "the report could not be read within {} ms (other reports are being read); retry \
             later",
            timeout.as_millis()
        ))
    })?
    .map_err(|_| Error::InvalidArgs("the report budget is closed".into()))?;
    let fd = report
        .try_clone()
        .map_err(|e| Error::InvalidArgs(format!("report descriptor: {e}")))?;
    // Not a byte more than the size paid for: a file that grows while it is
    // read is refused.
    let limits = ReportLimits {
        max_file_bytes: size.min(ReportLimits::default().max_file_bytes),
        ..ReportLimits::default()
    };
    let (parsed, permit) = blocking_within(timeout, "the report", move || {
        (Report::from_file(std::fs::File::from(fd), &limits), permit)
    })
    .await?;
    let parsed = parsed.map_err(|e| Error::InvalidArgs(format!("report: {e}")))?;
    Ok((parsed, permit))
}

/// Run `work` off the async workers and give up on it after `timeout` (the
/// thread is left to finish on its own: a blocking read cannot be interrupted).
async fn blocking_within<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Err(_) => Err(Error::InvalidArgs(format!(
            "{what} could not be read within {} ms; pass a regular, local file",
            timeout.as_millis()
        ))),
        Ok(Err(e)) => Err(Error::InvalidArgs(format!("reading {what} failed: {e}"))),
        Ok(Ok(value)) => Ok(value),
    }
}

/// Bytes behind a result descriptor (0 if it cannot be asked).
fn fd_size(fd: &OwnedFd) -> u64 {
    nix::sys::stat::fstat(fd).map_or(0, |st| u64::try_from(st.st_size).unwrap_or(0))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Limits of an unsigned hook's BSON, checked before serde sees it: serde
/// skips unknown fields by descending into them, one stack frame per level
/// with no bound of its own, so a deeply nested document from any local
/// user would otherwise overflow apportd's stack before polkit is asked.
const UNSIGNED_HOOK_LIMITS: WireLimits = WireLimits {
    max_document_bytes: MAX_HOOK_BYTES,
    // A signed payload's depth less the payload's own level.
    max_depth: MAX_PAYLOAD_DEPTH - 1,
    max_fields: MAX_PAYLOAD_FIELDS,
};

fn decode_hook(bytes: &[u8]) -> Result<Hook, Error> {
    if bytes.len() > MAX_HOOK_BYTES {
        return Err(Error::InvalidArgs(format!(
            "hook larger than {MAX_HOOK_BYTES} bytes"
        )));
    }
    check_raw(bytes, &UNSIGNED_HOOK_LIMITS).map_err(|e| {
        Error::InvalidArgs(format!("not a hook in its canonical BSON encoding: {e}"))
    })?;
    bson::deserialize_from_slice(bytes)
        .map_err(|e| Error::InvalidArgs(format!("not a hook in its canonical BSON encoding: {e}")))
}

struct JobStart<A> {
    caller: Caller,
    owner: u32,
    existing_keys: BTreeSet<String>,
    hook: Hook,
    version: u32,
    authorizer: A,
    slot: JobSlot,
}

#[derive(Debug, Default)]
struct JobShared {
    state: Mutex<String>,
    done: AtomicU32,
    total: AtomicU32,
    result: Mutex<Option<(OwnedFd, Vec<StepReport>, String)>>,
    dropped: std::sync::atomic::AtomicBool,
    fetched: Notify,
}

impl JobShared {
    /// Free the result and let the job's task remove the object.
    fn drop_result(&self) {
        self.dropped.store(true, Ordering::SeqCst);
        *self.result.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.fetched.notify_one();
    }
}

/// `com.ubuntu.Apport1.Job` on one job's path.
#[derive(Debug)]
pub struct JobObject {
    shared: Arc<JobShared>,
    caller: Caller,
    cancel: Arc<watch::Sender<bool>>,
    callers: Arc<CallerCache>,
}

impl JobObject {
    async fn check_caller(
        &self,
        header: &Header<'_>,
        connection: &Connection,
    ) -> Result<(), Error> {
        let caller = BusCallerResolver::new(connection.clone(), Arc::clone(&self.callers))
            .resolve(header)
            .await?;
        if caller.uid == 0 || caller.uid == self.caller.uid {
            Ok(())
        } else {
            Err(Error::AccessDenied(format!(
                "uid {} did not start this job",
                caller.uid
            )))
        }
    }

    /// [`check_caller`](Self::check_caller) for a property read. Without a
    /// message (`PropertiesChanged`, which goes to the caller alone) there
    /// is nobody to check. zbus reads properties without a message only
    /// for those emissions and for `GetManagedObjects`; apportd serves no
    /// ObjectManager, and must not without revisiting this.
    async fn check_reader(
        &self,
        header: Option<&Header<'_>>,
        connection: &Connection,
    ) -> zbus::fdo::Result<()> {
        let Some(header) = header else {
            return Ok(());
        };
        self.check_caller(header, connection)
            .await
            .map_err(|e| match e {
                Error::AccessDenied(message) => zbus::fdo::Error::AccessDenied(message),
                other => zbus::fdo::Error::Failed(other.to_string()),
            })
    }
}

#[interface(name = "com.ubuntu.Apport1.Job")]
impl JobObject {
    /// Stop the job; its running processes are killed. Only its caller or root may.
    async fn cancel(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), Error> {
        self.check_caller(&header, connection).await?;
        self.cancel.send_replace(true);
        Ok(())
    }

    /// The result of a finished job: new keys (sealed memfd, BSON), step statuses, outcome.
    #[zbus(out_args("result", "steps", "outcome"))]
    async fn result(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(zbus::OwnedFd, Vec<StepReport>, String), Error> {
        self.check_caller(&header, connection).await?;
        let result = self
            .shared
            .result
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((fd, steps, outcome)) = result.as_ref() else {
            if self.shared.dropped.load(Ordering::SeqCst) {
                return Err(Error::ResultDropped(
                    "the result was dropped (its caller left, or too many results were \
                     waiting); run the hook again"
                        .into(),
                ));
            }
            return Err(Error::NotFinished(
                "the job is still running; wait for Finished".into(),
            ));
        };
        let copy = fd
            .try_clone()
            .map_err(|e| Error::ZBus(zbus::Error::InputOutput(Arc::new(e))))?;
        self.shared.fetched.notify_one();
        Ok((copy.into(), steps.clone(), outcome.clone()))
    }

    /// `running`, `finished` or `cancelled`. Readable by the job's caller
    /// and root only, like everything else about a job.
    #[zbus(property)]
    async fn state(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<String> {
        self.check_reader(header.as_ref(), connection).await?;
        Ok(self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    /// Steps done and total. Caller and root only, as `State`.
    #[zbus(property)]
    async fn progress(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] connection: &Connection,
    ) -> zbus::fdo::Result<(u32, u32)> {
        self.check_reader(header.as_ref(), connection).await?;
        Ok((
            self.shared.done.load(Ordering::SeqCst),
            self.shared.total.load(Ordering::SeqCst),
        ))
    }

    /// Emitted once when the job ends.
    #[zbus(signal)]
    async fn finished(
        emitter: &SignalEmitter<'_>,
        result: zbus::Fd<'_>,
        steps: Vec<StepReport>,
        outcome: &str,
    ) -> zbus::Result<()>;
}

async fn start_job<A: Authorizer + Send + 'static>(
    shared: &Arc<Shared>,
    connection: &Connection,
    start: JobStart<A>,
) -> Result<OwnedObjectPath, Error> {
    let id = shared.next_job.fetch_add(1, Ordering::SeqCst);
    let path = OwnedObjectPath::try_from(format!("{JOBS_PATH}/{id}")).map_err(Error::ZBus)?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let cancel = Arc::new(cancel_tx);
    let (gone_tx, gone_rx) = watch::channel(false);
    let job_shared = Arc::new(JobShared::default());
    *job_shared
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = "running".into();
    job_shared.total.store(
        u32::try_from(start.hook.steps.len()).unwrap_or(u32::MAX),
        Ordering::SeqCst,
    );
    let object = JobObject {
        shared: Arc::clone(&job_shared),
        caller: start.caller.clone(),
        cancel: Arc::clone(&cancel),
        callers: Arc::clone(&shared.callers),
    };
    connection.object_server().at(&path, object).await?;
    shared
        .jobs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(path.clone());
    shared.note_jobs_changed();
    let watcher = tokio::spawn(cancel_on_disconnect(
        connection.clone(),
        Arc::clone(&shared.callers),
        start.caller.name.clone(),
        Arc::clone(&cancel),
        gone_tx,
    ));
    let task = JobTask {
        shared: Arc::clone(shared),
        job: job_shared,
        connection: connection.clone(),
        path: path.clone(),
        caller_name: start.caller.name.clone(),
    };
    tokio::spawn(async move {
        task.run(start, cancel_rx, gone_rx).await;
        watcher.abort();
    });
    Ok(path)
}

/// The caller disconnecting cancels its job (and so kills its processes)
/// and, through `gone`, drops a finished job's result nobody can fetch.
async fn cancel_on_disconnect(
    connection: Connection,
    callers: Arc<CallerCache>,
    caller: OwnedUniqueName,
    cancel: Arc<watch::Sender<bool>>,
    gone: watch::Sender<bool>,
) {
    use futures_util::StreamExt;
    let Ok(proxy) = zbus::fdo::DBusProxy::new(&connection).await else {
        return;
    };
    let Ok(mut changes) = proxy
        .receive_name_owner_changed_with_args(&[(0, caller.as_str())])
        .await
    else {
        return;
    };
    // The caller may have gone before we subscribed.
    if !proxy
        .name_has_owner(BusName::Unique(caller.as_ref()))
        .await
        .unwrap_or(false)
    {
        callers.forget(&caller);
        cancel.send_replace(true);
        gone.send_replace(true);
        return;
    }
    while let Some(signal) = changes.next().await {
        if let Ok(args) = signal.args()
            && args.new_owner().is_none()
        {
            tracing::info!(caller = %caller, "caller left the bus: cancelling its job");
            callers.forget(&caller);
            cancel.send_replace(true);
            gone.send_replace(true);
            return;
        }
    }
}

struct JobTask {
    shared: Arc<Shared>,
    job: Arc<JobShared>,
    connection: Connection,
    path: OwnedObjectPath,
    /// The caller's unique bus name: the only destination of the job's signals.
    caller_name: OwnedUniqueName,
}

/// An emitter for `path`'s signals addressed to `caller` alone. A job's
/// signals (its result descriptor, its state) are nobody else's business.
fn caller_emitter(
    connection: &Connection,
    path: &OwnedObjectPath,
    caller: &OwnedUniqueName,
) -> zbus::Result<SignalEmitter<'static>> {
    Ok(SignalEmitter::new(connection, path.clone())?
        .set_destination(BusName::Unique(caller.clone().into_inner())))
}

impl JobTask {
    async fn run<A: Authorizer>(
        self,
        start: JobStart<A>,
        cancel: watch::Receiver<bool>,
        gone: watch::Receiver<bool>,
    ) {
        let JobStart {
            caller,
            owner,
            existing_keys,
            hook,
            version,
            authorizer,
            slot,
        } = start;
        let request = JobRequest {
            hook: &hook,
            version,
            caller_uid: caller.uid,
            report_owner: owner,
            existing_keys: &existing_keys,
        };
        let job = Arc::clone(&self.job);
        let connection = self.connection.clone();
        let path = self.path.clone();
        let caller_name = self.caller_name.clone();
        let progress = move |done: usize, _total: usize| {
            job.done
                .store(u32::try_from(done).unwrap_or(u32::MAX), Ordering::SeqCst);
            let (connection, path, caller_name) =
                (connection.clone(), path.clone(), caller_name.clone());
            tokio::spawn(async move {
                let Ok(emitter) = caller_emitter(&connection, &path, &caller_name) else {
                    return;
                };
                if let Ok(iface) = connection
                    .object_server()
                    .interface::<_, JobObject>(&path)
                    .await
                {
                    let _ = iface.get().await.progress_changed(&emitter).await;
                }
            });
        };
        let output = self
            .shared
            .executor
            .run(&request, &authorizer, Some(cancel.clone()), &progress)
            .await;
        drop(slot);
        self.shared.note_jobs_changed();
        let was_cancelled = *cancel.borrow();
        self.finish(output, was_cancelled).await;
        // Keep the result for the caller to fetch, then go away; at once if
        // the caller left (no one else may fetch it) or the result was dropped.
        let mut gone = Some(gone);
        tokio::select! {
            _ = tokio::time::timeout(RESULT_KEEP, self.job.fetched.notified()) => {}
            () = cancelled(&mut gone) => {
                tracing::info!(job = %self.path, "caller left: dropping its job's result");
            }
        }
        self.job.drop_result();
        let _ = self
            .connection
            .object_server()
            .remove::<JobObject, _>(&self.path)
            .await;
        self.shared.forget_job(&self.path);
    }

    async fn finish(&self, output: JobOutput, cancelled: bool) {
        let steps: Vec<StepReport> = output
            .steps
            .iter()
            .map(|s| StepReport {
                key: s.key.clone(),
                outcome: s.outcome.as_str().to_owned(),
                detail: s.detail.clone(),
                bytes: s.bytes,
                duration_ms: u64::try_from(s.duration.as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        let outcome = if cancelled || output.stopped.as_deref() == Some("cancelled") {
            "cancelled".to_owned()
        } else {
            output
                .stopped
                .clone()
                .map_or_else(|| "completed".to_owned(), |why| format!("stopped: {why}"))
        };
        let fd = match encode_fields(&output.fields)
            .and_then(|bytes| sealed_memfd("apportd-result", &bytes))
        {
            Ok(fd) => fd,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the result descriptor");
                // An empty BSON document: the status still says what happened.
                match sealed_memfd("apportd-result", &[5, 0, 0, 0, 0]) {
                    Ok(fd) => fd,
                    Err(_) => return,
                }
            }
        };
        let state = if outcome == "cancelled" {
            "cancelled"
        } else {
            "finished"
        };
        // The result is in place before anyone can hear that it exists.
        let signal_fd = fd.try_clone();
        let result_bytes = fd_size(&fd);
        *self
            .job
            .result
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((fd, steps.clone(), outcome.clone()));
        *self
            .job
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = state.to_owned();
        self.shared.hold_result(&self.path, result_bytes, &self.job);
        // Unicast to the caller only: a broadcast signal reaches every
        // connection with a matching rule, and this one carries the result
        // descriptor (root steps' output) into any process that receives it.
        if let (Ok(emitter), Ok(signal_fd)) = (
            caller_emitter(&self.connection, &self.path, &self.caller_name),
            signal_fd,
        ) {
            let _ =
                JobObject::finished(&emitter, zbus::Fd::from(signal_fd.as_fd()), steps, &outcome)
                    .await;
            if let Ok(iface) = self
                .connection
                .object_server()
                .interface::<_, JobObject>(&self.path)
                .await
            {
                let _ = iface.get().await.state_changed(&emitter).await;
                let _ = iface.get().await.progress_changed(&emitter).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::arithmetic_side_effects)]
    use super::*;

    #[tokio::test]
    async fn a_report_that_cannot_be_read_in_time_is_given_up() {
        // A read that blocks until released, like one on a stuck file system.
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let result = blocking_within(Duration::from_millis(100), "the report", move || {
            blocked.recv().ok()
        })
        .await;
        match result {
            Err(Error::InvalidArgs(message)) => assert!(
                message.contains("the report could not be read within 100 ms"),
                "{message}"
            ),
            other => panic!("expected a read timeout, got {other:?}"),
        }
        drop(release);
    }

    #[tokio::test]
    async fn a_report_read_in_time_is_parsed() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"ProblemType: Crash\nPackage: bash 5.2\n").unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let budget = ReportBudget::new(REPORT_READ_BUDGET_BYTES);
        let (report, _permit) =
            read_report_within(&budget, &OwnedFd::from(file), Duration::from_secs(30))
                .await
                .unwrap();
        assert_eq!(report.get_str("Package"), Some("bash 5.2"));
    }

    fn report_file(size: usize) -> OwnedFd {
        let mut file = tempfile::tempfile().unwrap();
        let head = b"ProblemType: Crash\nPackage: bash 5.2\nLog:\n";
        let mut text = head.to_vec();
        while text.len() < size {
            text.extend_from_slice(b" xxx\n");
        }
        std::io::Write::write_all(&mut file, &text).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        OwnedFd::from(file)
    }

    #[tokio::test]
    async fn reports_on_file_systems_served_elsewhere_are_refused() {
        assert_eq!(served_elsewhere(0x6573_5546), Some("FUSE"));
        assert_eq!(served_elsewhere(0x6969), Some("NFS"));
        assert_eq!(served_elsewhere(0xFE53_4D42), Some("SMB2"));
        // ext4 and tmpfs: read as before.
        assert_eq!(served_elsewhere(0xEF53), None);
        assert_eq!(served_elsewhere(0x0102_1994), None);
        // A report here (a local file system) is read.
        let budget = ReportBudget::new(REPORT_READ_BUDGET_BYTES);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "ProblemType: Crash\n").unwrap();
        let fd = OwnedFd::from(std::fs::File::open(file.path()).unwrap());
        assert!(read_report(&budget, &fd).await.is_ok());
    }

    #[tokio::test]
    async fn report_reads_stay_within_their_memory_budget() {
        // A budget of 1 MiB: reports up to 512 KiB, one at a time here.
        let budget = ReportBudget::new(1024 * 1024);
        let wait = Duration::from_millis(300);
        match read_report_within(&budget, &report_file(600 * 1024), wait).await {
            Err(Error::InvalidArgs(m)) => assert!(
                m.contains("apportd reads reports of up to 524288 bytes"),
                "{m}"
            ),
            other => panic!("a report over the budget was read: {other:?}"),
        }
        let (_first, permit) = read_report_within(&budget, &report_file(300 * 1024), wait)
            .await
            .unwrap();
        // While the first one's memory is held, the second waits, then gives up.
        match read_report_within(&budget, &report_file(300 * 1024), wait).await {
            Err(Error::InvalidArgs(m)) => assert!(m.contains("other reports"), "{m}"),
            other => panic!("two reports over the budget at once: {other:?}"),
        }
        drop(permit);
        let _again = read_report_within(&budget, &report_file(300 * 1024), wait)
            .await
            .unwrap();
    }

    /// `levels` documents nested in each other under empty names, the
    /// innermost empty: 7 bytes per level.
    fn nested_bson(levels: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(levels * 7 + 5);
        for level in 0..levels {
            let len = i32::try_from((levels - level) * 7 + 5).unwrap();
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&[0x03, 0x00]);
        }
        out.extend_from_slice(&[5, 0, 0, 0, 0]);
        out.resize(out.len() + levels, 0);
        out
    }

    #[test]
    fn a_deeply_nested_unsigned_hook_is_refused_before_serde_reads_it() {
        // Without the depth check this overflowed the stack (serde skips the
        // unknown field by descending into it).
        let bytes = nested_bson((MAX_HOOK_BYTES - 5) / 7);
        assert!(bytes.len() <= MAX_HOOK_BYTES);
        match decode_hook(&bytes) {
            Err(Error::InvalidArgs(message)) => {
                assert!(message.contains("nest"), "{message}");
            }
            other => panic!("expected InvalidArgs, got {other:?}"),
        }
        // A shallow unknown field is still only ignored or refused by serde.
        assert!(matches!(
            decode_hook(&nested_bson(2)),
            Err(Error::InvalidArgs(_))
        ));
    }
}
