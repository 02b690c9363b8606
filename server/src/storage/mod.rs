//! daisy's storage: one trait, two engines (SQLite, PostgreSQL).
//!
//! Every rule that must hold across several daisy processes (duplicate
//! crashes, one result per OOPS and hook, a hook's `reports` limit and disk
//! cap) is enforced by the database in one conditional statement inside a
//! transaction, never by a read followed by a write in Rust. Times are Unix
//! seconds.

mod bucket_ids;
mod capped_map;
mod hook_index;
mod postgres;
mod postgres_batch;
mod result_room;
mod sas_cache;
mod sqlite;
mod sqlite_batch;
mod sqlite_dedup;

use std::sync::Arc;

pub use postgres::{PostgresStorage, connect_one as postgres_session};
pub use result_room::HookRoom;
pub use sqlite::SqliteStorage;
pub use sqlite_batch::{
    WRITER_THREAD as SQLITE_WRITER_THREAD, writer_connection as sqlite_writer_connection,
};
pub use sqlite_dedup::MERGE_AT as SQLITE_DEDUP_MERGE_AT;

use crate::config::Database;

/// Unix time in seconds.
pub type UnixTime = i64;

/// Refuses a database at schema `current` when this daisy knows only
/// `known` migrations: a newer daisy upgraded it, and running on it would
/// fail later, statement by statement, on what the newer schema changed.
fn known_schema(current: i64, known: usize) -> Result<(), StorageError> {
    let known = i64::try_from(known).unwrap_or(i64::MAX);
    if current > known {
        return Err(StorageError::Open(format!(
            "the database is at schema {current}, newer than this daisy knows ({known}); \
             run the daisy that upgraded it, or a newer one"
        )));
    }
    Ok(())
}

/// The current Unix time in seconds.
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A storage failure. Callers answer `500`/`503`; the message says which
/// engine failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite said no.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The blocking SQLite worker went away (the server is shutting down).
    #[error("the SQLite worker stopped; restart daisy")]
    WorkerGone,
    /// A stored value cannot be read back (a hand-edited database?).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Open(String),
}

/// An OOPS as the intake stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOops {
    /// The OOPS id (a UUID).
    pub id: String,
    /// The submitting machine.
    pub system_id: String,
    /// When it arrived.
    pub received: UnixTime,
    /// md5 of `Date:ExecutablePath:ProcStatus` when all three are present.
    pub dedup_digest: Option<String>,
    /// The crash's own time, read from its `Date` (0 when absent or
    /// unreadable): it leads the SQLite duplicate index, so that new
    /// crashes go to the index's end, not to a random page each.
    pub crash_time: UnixTime,
    /// The crash signature, `None` while parked under an unknown SAS.
    pub bucket: Option<String>,
    /// `StacktraceAddressSignature`.
    pub sas: Option<String>,
    /// The binary package name (without version).
    pub package: Option<String>,
    /// The source package name.
    pub source_package: Option<String>,
    /// The report's `DuplicateSignature`.
    pub duplicate_signature: Option<String>,
    /// The report fields, as the BSON document that was received.
    pub report: Vec<u8>,
}

/// A crash for [`Storage::intake`]: the OOPS (its `bucket` is filled in
/// from `keys` and the SAS index) and the keys bucketing and matching need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// The OOPS; `bucket` is ignored and set by the intake.
    pub oops: NewOops,
    /// The report's bucketing keys.
    pub keys: crate::bucketing::CrashKeys,
}

/// The outcome of [`Storage::intake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// The same crash from the same system was stored before, under this id.
    Duplicate(String),
    /// Stored (committed).
    Stored {
        /// The SAS was in the index (no retrace needed).
        sas_known: bool,
        /// At least one active hook matches the OOPS.
        hooks_match: bool,
    },
}

/// The outcome of storing a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOops {
    /// Stored.
    Inserted,
    /// The same crash from the same system was stored before, under this id.
    Duplicate(String),
}

/// A stored OOPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oops {
    /// The fields it was stored with.
    pub oops: NewOops,
    /// Size of the core dump received for it.
    pub core_size: Option<i64>,
}

/// A hook's target, as matched against an OOPS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    /// `crash_signature`, `sas`, `duplicate_signature`, `package` or `source_package`.
    pub kind: String,
    /// The value to match exactly.
    pub value: String,
}

/// The target kinds daisy knows, in the bundle's spelling.
pub const TARGET_KINDS: [&str; 5] = [
    "crash_signature",
    "sas",
    "duplicate_signature",
    "package",
    "source_package",
];

/// A hook's life cycle on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookState {
    /// Offered to matching crashes.
    Active,
    /// `reports` reached.
    Completed,
    /// `days` passed.
    Expired,
    /// Switched off by an operator or by the disk cap.
    Disabled,
}

impl HookState {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HookState::Active => "active",
            HookState::Completed => "completed",
            HookState::Expired => "expired",
            HookState::Disabled => "disabled",
        }
    }

    /// Parses the database spelling.
    pub fn parse(text: &str) -> Result<HookState, StorageError> {
        Ok(match text {
            "active" => HookState::Active,
            "completed" => HookState::Completed,
            "expired" => HookState::Expired,
            "disabled" => HookState::Disabled,
            other => return Err(StorageError::Corrupt(format!("hook state {other:?}"))),
        })
    }
}

/// A hook to activate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHook {
    /// The hook's name; versions count per name.
    pub name: String,
    /// 1 for the first activation of a name, then +1 (see
    /// [`next_version`]); `(name, version)` is unique.
    pub version: i64,
    /// What it matches.
    pub target: TargetKey,
    /// Stop after this many results.
    pub max_reports: u32,
    /// Stop after this many days.
    pub max_days: u32,
    /// When `days` runs out.
    pub not_after: UnixTime,
    /// Total result bytes before the hook is disabled.
    pub disk_cap: i64,
    /// The hook file's text, kept for the audit log.
    pub source: String,
    /// The signed bundle clients download.
    pub bundle: Vec<u8>,
    /// Hex SHA-256 of `bundle`.
    pub sha256: String,
    /// Who activated it.
    pub actor: String,
    /// When.
    pub created: UnixTime,
}

/// A stored hook with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRecord {
    /// Server-wide id.
    pub id: i64,
    /// The hook's name.
    pub name: String,
    /// 1 for the first activation of a name, then +1.
    pub version: i64,
    /// Life-cycle state.
    pub state: HookState,
    /// Why it left `active` (e.g. the disk cap), if it did.
    pub state_reason: Option<String>,
    /// What it matches.
    pub target: TargetKey,
    /// `reports` limit.
    pub max_reports: i64,
    /// `days` limit.
    pub max_days: i64,
    /// Expiry time.
    pub not_after: UnixTime,
    /// Disk cap in bytes.
    pub disk_cap: i64,
    /// Hex SHA-256 of the bundle.
    pub sha256: String,
    /// Activation time.
    pub created: UnixTime,
    /// Times the hook was put in a hook list.
    pub offered: i64,
    /// Times it matched but was left out (over-offer bound).
    pub offers_refused: i64,
    /// Results accepted.
    pub results: i64,
    /// Result uploads refused (any reason except an unknown token).
    pub results_refused: i64,
    /// Bytes of results accepted.
    pub bytes: i64,
    /// Accepted results that carry `HookError`.
    pub failures: i64,
}

/// Why an active hook was disabled when a new version of its name was
/// activated: the new version replaces it (its outstanding tokens then get
/// `410`, as for any hook no longer active).
pub fn superseded_reason(version: i64) -> String {
    format!("superseded by version {version}")
}

/// The audit entry of hook `old`, disabled by the activation of `new`.
pub(crate) fn superseded_audit(new: &NewHook, old: i64, reason: &str) -> AuditEntry {
    AuditEntry {
        at: new.created,
        actor: new.actor.clone(),
        action: "hook.disabled".into(),
        subject: old.to_string(),
        detail: reason.to_owned(),
    }
}

/// Why a hook whose `days` have passed is expired.
pub const EXPIRED_REASON: &str = "days limit reached";

impl HookRecord {
    /// The hook as of `now`, as the API and the CLI show it: an active
    /// hook whose `days` have passed is expired, whether or not a late
    /// result has written that into its row yet (no offer or result goes
    /// to it either way: both check `not_after`).
    pub fn as_of(mut self, now: UnixTime) -> HookRecord {
        if self.state == HookState::Active && self.not_after <= now {
            self.state = HookState::Expired;
            self.state_reason = Some(EXPIRED_REASON.to_owned());
        }
        self
    }
}

/// Parameters of one hook list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRequest {
    /// The OOPS the list is for.
    pub oops_id: String,
    /// What the OOPS matches.
    pub targets: Vec<TargetKey>,
    /// SHA-256 (hex) of the fresh token.
    pub token_hash: String,
    /// Now.
    pub now: UnixTime,
    /// Token expiry.
    pub expires: UnixTime,
    /// Offer while outstanding tokens + results < `offer_multiple` × reports.
    pub offer_multiple: u32,
}

/// A result upload, after decompression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewResult {
    /// SHA-256 (hex) of the bearer token.
    pub token_hash: String,
    /// The hook it answers.
    pub hook_id: i64,
    /// The OOPS it belongs to.
    pub oops_id: String,
    /// The new keys, one BSON document.
    pub keys: Vec<u8>,
    /// Size counted against the disk cap (decompressed).
    pub bytes: i64,
    /// The run failed (`HookError` present).
    pub failed: bool,
    /// Now.
    pub now: UnixTime,
}

/// A result token as the database knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Never issued for this hook and OOPS, or expired.
    Unknown,
    /// Issued, unexpired, no result taken with it yet.
    Unused,
    /// A result was taken with it: another upload is a duplicate.
    Used,
}

impl TokenCheck {
    /// From the `used` flag of the token's row, if it has one.
    pub fn of_row(used: Option<bool>) -> Self {
        match used {
            None => TokenCheck::Unknown,
            Some(false) => TokenCheck::Unused,
            Some(true) => TokenCheck::Used,
        }
    }
}

/// What happened to a result upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    /// Stored; `completed` when it was the last one the hook wanted.
    Accepted {
        /// The hook reached `reports` with this result.
        completed: bool,
    },
    /// No such token for this hook and OOPS, or expired (`401`).
    UnknownToken,
    /// A result for this OOPS and hook exists (`409`).
    Duplicate,
    /// The hook is no longer active (`410`).
    Gone(HookState),
    /// The result would take the hook over its disk cap; the hook is now
    /// disabled (`413`).
    OverDiskCap,
}

/// A stored hook result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookResult {
    /// The OOPS.
    pub oops_id: String,
    /// The hook.
    pub hook_id: i64,
    /// The hook's version at the time.
    pub hook_version: i64,
    /// The OOPS's bucket when the result came.
    pub bucket: Option<String>,
    /// The OOPS's package.
    pub package: Option<String>,
    /// When.
    pub received: UnixTime,
    /// The keys, one BSON document.
    pub keys: Vec<u8>,
    /// Its size.
    pub bytes: i64,
    /// `HookError` present.
    pub failed: bool,
}

/// Both engines' query behind [`Storage::users`].
pub(super) const USERS: &str = "SELECT u.name, u.team, u.created, \
    (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked IS NULL) \
    FROM users u ORDER BY u.name";

/// A user as `daisy admin user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// Login name.
    pub name: String,
    /// Team.
    pub team: String,
    /// When it was added.
    pub created: UnixTime,
    /// Tokens not revoked.
    pub active_tokens: i64,
}

/// An API user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Team (e.g. `core-dev`, `retracer`, `admin`).
    pub team: String,
}

/// One audit log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: UnixTime,
    /// Who (user name, `admin-cli`, `daisy`).
    pub actor: String,
    /// What (`hook.activate`, `hook.disable`, `user.add`, `sas.map`…).
    pub action: String,
    /// On what (hook id, user name, SAS).
    pub subject: String,
    /// Details, e.g. the hook's full text.
    pub detail: String,
}

impl AuditEntry {
    /// An entry about user `name` (`user.add`, `user.revoke`, `user.token`).
    pub fn of_user(at: UnixTime, actor: &str, action: &str, name: &str, detail: String) -> Self {
        AuditEntry {
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: name.to_owned(),
            detail,
        }
    }
}

/// Both engines' statement giving a user a token (`$1`/`?1` hash, user id,
/// time).
pub(super) const INSERT_TOKEN_SQLITE: &str =
    "INSERT INTO api_tokens (token_hash, user_id, created) VALUES (?1, ?2, ?3)";
/// [`INSERT_TOKEN_SQLITE`] in PostgreSQL's placeholders.
pub(super) const INSERT_TOKEN_POSTGRES: &str =
    "INSERT INTO api_tokens (token_hash, user_id, created) VALUES ($1, $2, $3)";

/// Totals for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Stored OOPSes.
    pub oopses: i64,
    /// Hooks in state `active`.
    pub hooks_active: i64,
    /// Stored hook results.
    pub results: i64,
}

/// The one storage interface both engines implement.
#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Which engine (`sqlite` or `postgres`), for logs and metrics.
    fn engine(&self) -> &'static str;

    /// Stores a crash unless the same crash came from the same system before.
    async fn insert_oops(&self, oops: NewOops) -> Result<InsertOops, StorageError>;
    /// The whole crash intake: SAS index lookup, bucketing, the insert
    /// (acknowledged after commit) and whether active hooks match. This
    /// default makes three calls; an engine may do it in one trip.
    async fn intake(&self, crash: Intake) -> Result<IntakeOutcome, StorageError> {
        let Intake { mut oops, keys } = crash;
        let known = match &keys.sas {
            Some(sas) => self.sas_signature(sas).await?,
            None => None,
        };
        oops.bucket = keys.bucket(known.as_deref());
        let targets = crate::bucketing::targets(
            oops.bucket.as_deref(),
            oops.sas.as_deref(),
            oops.duplicate_signature.as_deref(),
            oops.package.as_deref(),
            oops.source_package.as_deref(),
        );
        let now = oops.received;
        if let InsertOops::Duplicate(existing) = self.insert_oops(oops).await? {
            return Ok(IntakeOutcome::Duplicate(existing));
        }
        let hooks_match = !self.matching_hooks(&targets, now).await?.is_empty();
        Ok(IntakeOutcome::Stored {
            sas_known: known.is_some(),
            hooks_match,
        })
    }
    /// Reads an OOPS.
    async fn oops(&self, id: &str) -> Result<Option<Oops>, StorageError>;
    /// Records that the core dump for an OOPS was stored; `false` when the
    /// OOPS does not exist for that system.
    async fn set_core(&self, id: &str, system_id: &str, size: i64) -> Result<bool, StorageError>;
    /// OOPS ids in a bucket, newest first.
    async fn oopses_in_bucket(&self, bucket: &str, limit: i64)
    -> Result<Vec<String>, StorageError>;

    /// The crash signature a SAS maps to.
    async fn sas_signature(&self, sas: &str) -> Result<Option<String>, StorageError>;
    /// Maps a SAS to a crash signature and buckets the OOPSes parked under
    /// it; returns how many were re-bucketed.
    async fn map_sas(
        &self,
        sas: &str,
        signature: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<u64, StorageError>;

    /// Activates a new hook version (the audit entry is written in the same
    /// transaction); the active earlier versions of its name are disabled
    /// in that transaction ([`superseded_reason`], audited), since a new
    /// version replaces them.
    async fn insert_hook(&self, hook: NewHook) -> Result<HookRecord, StorageError>;
    /// One hook.
    async fn hook(&self, id: i64) -> Result<Option<HookRecord>, StorageError>;
    /// The signed bundle of a hook that is active at `now`: a disabled,
    /// completed, superseded or expired hook's bundle is withdrawn.
    async fn hook_bundle(&self, id: i64, now: UnixTime) -> Result<Option<Vec<u8>>, StorageError>;
    /// All hooks, newest first.
    async fn hooks(&self) -> Result<Vec<HookRecord>, StorageError>;
    /// Moves an active hook to another state; `false` when it was not active.
    async fn set_hook_state(
        &self,
        id: i64,
        state: HookState,
        reason: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError>;
    /// Active hooks matching any of the targets (an index lookup per target).
    async fn matching_hooks(
        &self,
        targets: &[TargetKey],
        now: UnixTime,
    ) -> Result<Vec<HookRecord>, StorageError>;
    /// Issues one token row per matching hook still under its offer bound;
    /// returns the hooks offered.
    async fn offer_hooks(&self, offer: OfferRequest) -> Result<Vec<HookRecord>, StorageError>;
    /// A hook's disk cap and stored bytes for a result upload about to be
    /// read (`None`: no such hook). The engines answer from a per-process
    /// cache refreshed by their result commits, so it may lag other
    /// processes by a few seconds: only ever by over-estimating the room,
    /// which the atomic claim of [`Storage::accept_result`] then refuses.
    async fn hook_room(&self, id: i64) -> Result<Option<HookRoom>, StorageError> {
        Ok(self.hook(id).await?.as_ref().map(HookRoom::of))
    }
    /// Counts a result refused before it reached [`Storage::accept_result`]
    /// (bad encoding, too large, undecodable, invalid BSON) in the hook's
    /// `results_refused` and its daily statistics, only when `token_hash`
    /// is a known, unused token of this hook and OOPS (strangers' uploads
    /// are counted by the metrics alone, and a used token cannot run the
    /// count up); `true` when counted.
    async fn refuse_result(
        &self,
        token_hash: &str,
        hook_id: i64,
        oops_id: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError>;
    /// Whether `token_hash` was issued for this hook and OOPS, has not
    /// expired, and was used: a read, for a result upload that must prove
    /// its token before daisy decodes more of it; [`Storage::accept_result`]
    /// still decides.
    async fn result_token(
        &self,
        token_hash: &str,
        hook_id: i64,
        oops_id: &str,
        now: UnixTime,
    ) -> Result<TokenCheck, StorageError>;
    /// Accepts or refuses a result, atomically against the hook's limits.
    async fn accept_result(&self, result: NewResult) -> Result<ResultOutcome, StorageError>;
    /// Results of one hook, newest first.
    async fn hook_results(&self, hook_id: i64, limit: i64)
    -> Result<Vec<HookResult>, StorageError>;
    /// Results stored for one OOPS.
    async fn oops_results(&self, oops_id: &str) -> Result<Vec<HookResult>, StorageError>;

    /// Adds a user with its first API token (hashed).
    async fn add_user(
        &self,
        name: &str,
        team: &str,
        token_hash: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<User, StorageError>;
    /// The user a token hash belongs to.
    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, StorageError>;
    /// Number of users.
    async fn user_count(&self) -> Result<i64, StorageError>;
    /// Every user, by name, with how many of its tokens are not revoked.
    async fn users(&self) -> Result<Vec<UserSummary>, StorageError>;
    /// Revokes every token of user `name` (audited `user.revoke`); with
    /// `new_token_hash`, in the same transaction gives it that new token
    /// (audited `user.token`). `None` when there is no such user.
    async fn replace_tokens(
        &self,
        name: &str,
        new_token_hash: Option<&str>,
        actor: &str,
        now: UnixTime,
    ) -> Result<Option<u64>, StorageError>;

    /// Appends to the audit log.
    async fn audit(&self, entry: AuditEntry) -> Result<(), StorageError>;
    /// The newest audit entries.
    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StorageError>;
    /// A daily statistic (`day` = Unix day number, hook 0 = server-wide).
    async fn daily_stat(&self, day: i64, hook_id: i64, metric: &str) -> Result<i64, StorageError>;
    /// Totals for metrics (counts whole tables: see `totals_cache`).
    async fn totals(&self) -> Result<Totals, StorageError>;
    /// Whether the database answers a trivial query (`/healthz`).
    async fn ping(&self) -> Result<(), StorageError>;
}

/// Opens (and migrates) the configured database.
pub async fn open(database: &Database) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(SqliteStorage::open(path).await?),
        Database::Postgres(url) => Arc::new(PostgresStorage::connect(url).await?),
    })
}

/// The version the next activation of `name` gets, given the stored hooks.
pub fn next_version(hooks: &[HookRecord], name: &str) -> i64 {
    hooks
        .iter()
        .filter(|h| h.name == name)
        .map(|h| h.version)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

/// The Unix day number of a time, for daily statistics.
pub fn day_of(t: UnixTime) -> i64 {
    t.div_euclid(86_400)
}
