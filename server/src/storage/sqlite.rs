//! The SQLite engine: one connection in WAL mode, used from a blocking
//! thread. `BEGIN IMMEDIATE` takes the write lock up front so that `daisy
//! admin` and a running server can share the file.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::bucket_ids::BucketIds;
use super::hook_index::HookIndex;
use super::result_room::{HookRoom, RoomCache};
use super::sqlite_batch::OopsWriter;
use super::sqlite_dedup::{
    DedupKey, STAGE_KEY, StagedKeys, StoredOopsId, bad_key_row, key_hash, oops_id_from,
};
use super::{
    AuditEntry, HookRecord, HookResult, HookState, INSERT_TOKEN_SQLITE, InsertOops, Intake,
    IntakeOutcome, NewHook, NewOops, NewResult, OfferRequest, Oops, ResultOutcome, Storage,
    StorageError, TargetKey, TokenCheck, Totals, USERS, UnixTime, User, UserSummary, day_of,
};

/// Ordered migrations; index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite_0001_initial.sql"),
    include_str!("migrations/sqlite_0002_hook_generation.sql"),
    include_str!("migrations/sqlite_0003_cheaper_intake.sql"),
    include_str!("migrations/sqlite_0004_dedup_by_crash_time.sql"),
    include_str!("migrations/sqlite_0005_staged_dedup.sql"),
    include_str!("migrations/sqlite_0006_sas_generation.sql"),
    include_str!("migrations/sqlite_0007_bucket_ids.sql"),
    include_str!("migrations/sqlite_0008_compact_dedup_keys.sql"),
    include_str!("migrations/sqlite_0009_outstanding_tokens_by_oops.sql"),
];

/// WAL pages between two checkpoints (64 MB of WAL; SQLite's default is 1000).
const WAL_AUTOCHECKPOINT: i64 = 16_000;

/// Bytes the WAL file is cut back to after a reset when it grew larger.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) const HOOK_COLUMNS: &str = "id, name, version, state, state_reason, target_kind, \
    target_value, max_reports, max_days, not_after, disk_cap, sha256, created, offered, \
    offers_refused, results, results_refused, bytes, failures";

const OOPS_COLUMNS: &str = "id, system_id, received, bucket, sas, package, source_package, \
    duplicate_signature, report, core_size";

const RESULT_COLUMNS: &str =
    "oops_id, hook_id, hook_version, bucket, package, received, keys, bytes, failed";

/// SQLite storage.
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
    writer: Arc<OopsWriter>,
    /// The hooks' disk-cap room as last seen (see `result_room`).
    rooms: Arc<RoomCache>,
}

impl SqliteStorage {
    /// Opens (creating when missing) and migrates the database file.
    pub async fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        let path = path.to_owned();
        let writer_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, StorageError> {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StorageError::Open(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let mut conn = connect(&path)?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(|_| StorageError::WorkerGone)??;
        let writer = tokio::task::spawn_blocking(move || OopsWriter::start(&writer_path))
            .await
            .map_err(|_| StorageError::WorkerGone)??;
        Ok(SqliteStorage {
            conn: Arc::new(Mutex::new(conn)),
            writer: Arc::new(writer),
            rooms: Arc::default(),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StorageError::WorkerGone)?;
            f(&mut guard)
        })
        .await
        .map_err(|_| StorageError::WorkerGone)?
    }
}

/// Opens one connection with daisy's settings.
pub(super) fn connect(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers (the admin CLI, the API) run beside the writer;
    // synchronous=FULL makes every acknowledged commit durable.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoint every WAL_AUTOCHECKPOINT pages instead of SQLite's 1000:
    // the tail pages of the appending trees (oops rows, id, bucket and
    // package indexes) are rewritten into the WAL by every batch but copied
    // into the database once per checkpoint, so rarer checkpoints copy fewer
    // pages per crash (docs/daisy.md, "What one crash costs"). The WAL file
    // keeps its size between checkpoints (overwriting is cheaper than
    // growing a file); a WAL that ever grows past the limit (a long reader
    // held a checkpoint back) is cut back at the next reset.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    // Every statement of the writer stays prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The SAS index entry of `?1`: for the writer's crashes and for the API.
const SAS_SIGNATURE: &str = "SELECT signature FROM sas_signature WHERE sas = ?1";

/// The statements the writer runs per crash, taken from rusqlite's
/// statement cache once per batch instead of once per use: each lookup
/// hashed the SQL text, and its return to the cache hashed it again
/// (callgrind: about a tenth of the writer's instructions per crash).
pub(super) struct CrashStatements<'c> {
    sas_signature: CachedStatement<'c>,
    dedup_entry: CachedStatement<'c>,
    stage: CachedStatement<'c>,
    insert: CachedStatement<'c>,
    bucket_id: CachedStatement<'c>,
    new_bucket: CachedStatement<'c>,
}

impl<'c> CrashStatements<'c> {
    /// Prepares (or takes from the cache) every statement, on the batch's
    /// transaction.
    pub(super) fn prepare(conn: &'c Connection) -> Result<CrashStatements<'c>, StorageError> {
        Ok(CrashStatements {
            sas_signature: conn.prepare_cached(SAS_SIGNATURE)?,
            dedup_entry: conn.prepare_cached(
                "SELECT oops_id FROM oops_dedup WHERE crash_time = ?1 AND key_hash = ?2",
            )?,
            stage: conn.prepare_cached(STAGE_KEY)?,
            insert: conn.prepare_cached(
                "INSERT INTO oops (id, system_id, received, bucket, sas, package, \
                 source_package, duplicate_signature, report, bucket_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            bucket_id: conn.prepare_cached(BUCKET_ID)?,
            new_bucket: conn.prepare_cached(NEW_BUCKET)?,
        })
    }

    /// The id of `signature`'s bucket, from `cache` or else the database,
    /// made in the open transaction when it is new.
    fn bucket_id(&mut self, cache: &mut BucketIds, signature: &str) -> Result<i64, StorageError> {
        if let Some(id) = cache.get(signature) {
            return Ok(id);
        }
        let id = bucket_id_with(&mut self.bucket_id, &mut self.new_bucket, signature)?;
        cache.insert(signature, id);
        Ok(id)
    }

    /// The SAS index entry.
    pub(super) fn sas_signature(&mut self, sas: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .sas_signature
            .query_row(params![sas], |r| r.get(0))
            .optional()?)
    }

    /// The OOPS filed in `oops_dedup` under `key`'s hash at `crash_time`.
    fn dedup_entry(
        &mut self,
        crash_time: UnixTime,
        key: &DedupKey,
    ) -> Result<Option<String>, StorageError> {
        let mut rows = self.dedup_entry.query(params![crash_time, &key.hash[..]])?;
        match rows.next()? {
            Some(row) => oops_id_from(row.get_ref(0)?).map(Some).map_err(|what| {
                let hash = crate::digest_hex::lower_hex(&key.hash);
                bad_key_row(
                    &format!("oops_dedup row with crash_time {crash_time}, key_hash x'{hash}'"),
                    &what,
                )
            }),
            None => Ok(None),
        }
    }
}

/// Stores one crash inside the caller's transaction (the writer's batch):
/// the duplicate check against the staged keys and `oops_dedup`, then the
/// row. A new key is staged, not written to `oops_dedup` (`sqlite_dedup`).
pub(super) fn insert_oops_in(
    stmts: &mut CrashStatements<'_>,
    staged: &mut StagedKeys,
    buckets: &mut BucketIds,
    oops: &NewOops,
) -> Result<InsertOops, StorageError> {
    if let Some(digest) = &oops.dedup_digest {
        let key = DedupKey::new(oops.crash_time, &oops.system_id, digest);
        if let Some(existing) = staged.find(&key) {
            return Ok(InsertOops::Duplicate(existing.to_owned()));
        }
        // Rows stored before migration 0004 are filed under crash time 0.
        let mut existing = None;
        if key.crash_time != 0 && staged.legacy_keys() {
            existing = stmts.dedup_entry(0, &key)?;
        }
        if existing.is_none() {
            existing = stmts.dedup_entry(key.crash_time, &key)?;
        }
        if let Some(existing) = existing {
            return Ok(InsertOops::Duplicate(existing));
        }
        staged.stage(&mut stmts.stage, key, &oops.id)?;
    }
    let bucket_id = match &oops.bucket {
        Some(signature) => Some(stmts.bucket_id(buckets, signature)?),
        None => None,
    };
    stmts.insert.execute(params![
        oops.id,
        oops.system_id,
        oops.received,
        oops.bucket,
        oops.sas,
        oops.package,
        oops.source_package,
        oops.duplicate_signature,
        oops.report,
        bucket_id
    ])?;
    Ok(InsertOops::Inserted)
}

/// Looks up a signature's bucket id (migration 0007).
const BUCKET_ID: &str = "SELECT id FROM buckets WHERE signature = ?1";
/// Gives a new signature its bucket id.
const NEW_BUCKET: &str = "INSERT INTO buckets (signature) VALUES (?1)";

/// The bucket id of `signature`, made when it is new. Inside a write
/// transaction, so no other connection can make it in between.
fn bucket_id_with(
    lookup: &mut rusqlite::Statement<'_>,
    insert: &mut rusqlite::Statement<'_>,
    signature: &str,
) -> Result<i64, StorageError> {
    if let Some(id) = lookup
        .query_row(params![signature], |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    Ok(insert.insert(params![signature])?)
}

/// The generations of the hook targets and of the SAS index, which the
/// writer's in-memory copies follow (`hook_index`, `sas_cache`), in one
/// read.
pub(super) struct Generations {
    /// `hook_generation`.
    pub hooks: i64,
    /// `sas_generation`.
    pub sas: i64,
}

/// Reads both generations inside the caller's transaction.
pub(super) fn generations_in(conn: &Connection) -> Result<Generations, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT value FROM hook_generation WHERE id = 1), \
                    (SELECT value FROM sas_generation WHERE id = 1)",
        )?
        .query_row([], |r| {
            Ok(Generations {
                hooks: r.get(0)?,
                sas: r.get(1)?,
            })
        })?)
}

/// Brings the writer's index of active hook targets up to date, inside
/// the caller's transaction: a reload of the active targets only when the
/// generation changed (see `hook_index`).
pub(super) fn refresh_hook_index_in(
    conn: &Connection,
    index: &mut HookIndex,
    generation: i64,
) -> Result<(), StorageError> {
    if index.is_current(generation) {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT target_kind, target_value, not_after FROM hooks WHERE state = 'active'",
    )?;
    let active = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<(String, String, UnixTime)>, _>>()?;
    index.reload(generation, active);
    Ok(())
}

/// Stores one hook result inside the caller's transaction (the writer's
/// batch, a savepoint per result), with the one conditional statement that
/// enforces `reports`, `days` and the disk cap. An unknown token writes
/// nothing; every other refusal is counted.
pub(super) fn accept_result_in(
    tx: &Connection,
    result: &NewResult,
) -> Result<ResultOutcome, StorageError> {
    // The token (its row id to spend it) and whether this OOPS already has
    // a result for the hook, in one statement. (`UPDATE … RETURNING` would
    // save the spend but costs SQLite an ephemeral table per call.)
    let token: Option<(i64, bool, bool)> = tx
        .prepare_cached(
            "SELECT rowid, used, EXISTS (SELECT 1 FROM hook_results \
                 WHERE oops_id = ?3 AND hook_id = ?2) FROM hook_tokens \
                 WHERE token_hash = ?1 AND hook_id = ?2 AND oops_id = ?3 AND expires > ?4",
        )?
        .query_row(
            params![
                result.token_hash,
                result.hook_id,
                result.oops_id,
                result.now
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((token_row, used, exists)) = token else {
        return Ok(ResultOutcome::UnknownToken);
    };
    let refuse = |tx: &Connection| -> Result<(), StorageError> {
        tx.prepare_cached("UPDATE hooks SET results_refused = results_refused + 1 WHERE id = ?1")?
            .execute(params![result.hook_id])?;
        bump_stat(tx, result.now, result.hook_id, "results_refused")
    };
    if exists || used {
        refuse(tx)?;
        return Ok(ResultOutcome::Duplicate);
    }
    tx.prepare_cached("UPDATE hook_tokens SET used = 1 WHERE rowid = ?1")?
        .execute(params![token_row])?;
    // The one conditional statement that enforces `reports`, `days`
    // and the disk cap.
    let claimed: Option<(i64, i64, i64)> = tx
        .prepare_cached(
            "UPDATE hooks SET results = results + 1, bytes = bytes + ?1, \
                 failures = failures + ?2, \
                 state = CASE WHEN results + 1 >= max_reports THEN 'completed' ELSE state END \
                 WHERE id = ?3 AND state = 'active' AND results < max_reports \
                 AND not_after > ?4 AND bytes + ?1 <= disk_cap \
                 RETURNING results, max_reports, version",
        )?
        .query_row(
            params![
                result.bytes,
                i64::from(result.failed),
                result.hook_id,
                result.now
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((results, max_reports, version)) = claimed else {
        let outcome = refusal(tx, result.hook_id, result.bytes, result.now)?;
        refuse(tx)?;
        return Ok(outcome);
    };
    tx.prepare_cached(
        "INSERT INTO hook_results (oops_id, hook_id, hook_version, bucket, package, \
             received, keys, bytes, failed) \
             SELECT ?1, ?2, ?3, bucket, package, ?4, ?5, ?6, ?7 FROM oops WHERE id = ?1",
    )?
    .execute(params![
        result.oops_id,
        result.hook_id,
        version,
        result.now,
        result.keys,
        result.bytes,
        i64::from(result.failed)
    ])?;
    bump_stat(tx, result.now, result.hook_id, "results")?;
    if result.failed {
        bump_stat(tx, result.now, result.hook_id, "failures")?;
    }
    Ok(ResultOutcome::Accepted {
        completed: results >= max_reports,
    })
}

fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    super::known_schema(current, MIGRATIONS.len())?;
    if usize::try_from(current).is_ok_and(|current| current < MIGRATIONS.len()) {
        register_migration_functions(&tx)?;
    }
    for (version, sql) in (1_i64..).zip(MIGRATIONS) {
        if version > current {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
                params![version, super::now()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The SQL functions migration 0008 converts duplicate keys with.
fn register_migration_functions(conn: &Connection) -> Result<(), StorageError> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("daisy_dedup_key", 2, flags, |ctx| {
        let system_id = ctx.get_raw(0).as_bytes()?;
        let digest = ctx.get_raw(1).as_bytes()?;
        Ok(key_hash(system_id, digest).to_vec())
    })?;
    conn.create_scalar_function("daisy_dedup_oops_id", 1, flags, |ctx| {
        let id = ctx.get_raw(0).as_str()?;
        Ok(match StoredOopsId::new(id) {
            StoredOopsId::Uuid(bytes) => Value::Blob(bytes.to_vec()),
            StoredOopsId::Text(text) => Value::Text(text.to_owned()),
        })
    })?;
    Ok(())
}

fn hook_from_row(r: &Row<'_>) -> rusqlite::Result<(HookRecord, String)> {
    let state: String = r.get(3)?;
    Ok((
        HookRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            version: r.get(2)?,
            state: HookState::Active,
            state_reason: r.get(4)?,
            target: TargetKey {
                kind: r.get(5)?,
                value: r.get(6)?,
            },
            max_reports: r.get(7)?,
            max_days: r.get(8)?,
            not_after: r.get(9)?,
            disk_cap: r.get(10)?,
            sha256: r.get(11)?,
            created: r.get(12)?,
            offered: r.get(13)?,
            offers_refused: r.get(14)?,
            results: r.get(15)?,
            results_refused: r.get(16)?,
            bytes: r.get(17)?,
            failures: r.get(18)?,
        },
        state,
    ))
}

fn finish_hook((mut hook, state): (HookRecord, String)) -> Result<HookRecord, StorageError> {
    hook.state = HookState::parse(&state)?;
    Ok(hook)
}

fn query_hooks(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<HookRecord>, StorageError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, hook_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(finish_hook(row?)?);
    }
    Ok(out)
}

fn get_hook(conn: &Connection, id: i64) -> Result<Option<HookRecord>, StorageError> {
    let sql = format!("SELECT {HOOK_COLUMNS} FROM hooks WHERE id = ?1");
    Ok(query_hooks(conn, &sql, params![id])?.into_iter().next())
}

fn oops_from_row(r: &Row<'_>) -> rusqlite::Result<Oops> {
    Ok(Oops {
        oops: NewOops {
            id: r.get(0)?,
            system_id: r.get(1)?,
            received: r.get(2)?,
            dedup_digest: None,
            crash_time: 0,
            bucket: r.get(3)?,
            sas: r.get(4)?,
            package: r.get(5)?,
            source_package: r.get(6)?,
            duplicate_signature: r.get(7)?,
            report: r.get(8)?,
        },
        core_size: r.get(9)?,
    })
}

fn result_from_row(r: &Row<'_>) -> rusqlite::Result<HookResult> {
    Ok(HookResult {
        oops_id: r.get(0)?,
        hook_id: r.get(1)?,
        hook_version: r.get(2)?,
        bucket: r.get(3)?,
        package: r.get(4)?,
        received: r.get(5)?,
        keys: r.get(6)?,
        bytes: r.get(7)?,
        failed: r.get::<_, i64>(8)? != 0,
    })
}

fn audit_in(conn: &Connection, e: &AuditEntry) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![e.at, e.actor, e.action, e.subject, e.detail],
    )?;
    Ok(())
}

fn bump_stat(
    conn: &Connection,
    now: UnixTime,
    hook_id: i64,
    metric: &str,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO daily_stats (day, hook_id, metric, value) VALUES (?1, ?2, ?3, 1) \
         ON CONFLICT (day, hook_id, metric) DO UPDATE SET value = value + 1",
    )?
    .execute(params![day_of(now), hook_id, metric])?;
    Ok(())
}

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn insert_oops(&self, oops: NewOops) -> Result<InsertOops, StorageError> {
        self.writer.insert(oops).await
    }

    async fn intake(&self, crash: Intake) -> Result<IntakeOutcome, StorageError> {
        self.writer.intake(crash).await
    }

    async fn oops(&self, id: &str) -> Result<Option<Oops>, StorageError> {
        let id = id.to_owned();
        self.with(move |conn| {
            let sql = format!("SELECT {OOPS_COLUMNS} FROM oops WHERE id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row(params![id], oops_from_row)
                .optional()?)
        })
        .await
    }

    async fn set_core(&self, id: &str, system_id: &str, size: i64) -> Result<bool, StorageError> {
        let (id, system_id) = (id.to_owned(), system_id.to_owned());
        self.with(move |conn| {
            let n = conn.execute(
                "UPDATE oops SET core_size = ?1 WHERE id = ?2 AND system_id = ?3",
                params![size, id, system_id],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn oopses_in_bucket(
        &self,
        bucket: &str,
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        let bucket = bucket.to_owned();
        self.with(move |conn| {
            // Crashes stored since migration 0007 by the bucket's id, older
            // ones by the text (each arm an index range).
            let mut stmt = conn.prepare_cached(
                "SELECT id, received FROM oops \
                 WHERE bucket_id = (SELECT id FROM buckets WHERE signature = ?1) \
                 UNION ALL \
                 SELECT id, received FROM oops WHERE bucket = ?1 AND bucket_id IS NULL \
                 ORDER BY received DESC, id LIMIT ?2",
            )?;
            let ids = stmt
                .query_map(params![bucket, limit], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
        .await
    }

    async fn sas_signature(&self, sas: &str) -> Result<Option<String>, StorageError> {
        let sas = sas.to_owned();
        self.with(move |conn| {
            Ok(conn
                .prepare_cached(SAS_SIGNATURE)?
                .query_row(params![sas], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn map_sas(
        &self,
        sas: &str,
        signature: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<u64, StorageError> {
        let (sas, signature, actor) = (sas.to_owned(), signature.to_owned(), actor.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO sas_signature (sas, signature, updated) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (sas) DO UPDATE SET signature = excluded.signature, \
                 updated = excluded.updated",
                params![sas, signature, now],
            )?;
            // The bucket gets its id only when crashes move into it (the
            // writer makes it for the next crash otherwise).
            let parked: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM oops WHERE sas = ?1 AND bucket IS NULL)",
                params![sas],
                |r| r.get(0),
            )?;
            let mut moved = 0;
            if parked {
                let bucket_id = bucket_id_with(
                    &mut *tx.prepare_cached(BUCKET_ID)?,
                    &mut *tx.prepare_cached(NEW_BUCKET)?,
                    &signature,
                )?;
                moved = tx.execute(
                    "UPDATE oops SET bucket = ?1, bucket_id = ?3 WHERE sas = ?2 AND bucket IS NULL",
                    params![signature, sas, bucket_id],
                )?;
            }
            audit_in(
                &tx,
                &AuditEntry {
                    at: now,
                    actor,
                    action: "sas.map".into(),
                    subject: sas,
                    detail: signature,
                },
            )?;
            tx.commit()?;
            Ok(u64::try_from(moved).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn insert_hook(&self, hook: NewHook) -> Result<HookRecord, StorageError> {
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version = hook.version;
            let id: i64 = tx.query_row(
                "INSERT INTO hooks (name, version, state, target_kind, target_value, \
                 max_reports, max_days, not_after, disk_cap, source, bundle, sha256, created) \
                 VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 RETURNING id",
                params![
                    hook.name,
                    version,
                    hook.target.kind,
                    hook.target.value,
                    hook.max_reports,
                    hook.max_days,
                    hook.not_after,
                    hook.disk_cap,
                    hook.source,
                    hook.bundle,
                    hook.sha256,
                    hook.created
                ],
                |r| r.get(0),
            )?;
            audit_in(
                &tx,
                &AuditEntry {
                    at: hook.created,
                    actor: hook.actor.clone(),
                    action: "hook.activate".into(),
                    subject: format!("{id} {} v{version}", hook.name),
                    detail: hook.source.clone(),
                },
            )?;
            // A new version replaces the active ones of its name.
            let reason = super::superseded_reason(version);
            let superseded = tx
                .prepare(
                    "UPDATE hooks SET state = 'disabled', state_reason = ?1 \
                     WHERE name = ?2 AND state = 'active' AND id <> ?3 RETURNING id",
                )?
                .query_map(params![reason, hook.name, id], |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            for old in superseded {
                audit_in(&tx, &super::superseded_audit(&hook, old, &reason))?;
            }
            let record = get_hook(&tx, id)?
                .ok_or_else(|| StorageError::Corrupt(format!("hook {id} vanished")))?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn hook(&self, id: i64) -> Result<Option<HookRecord>, StorageError> {
        self.with(move |conn| get_hook(conn, id)).await
    }

    async fn hook_room(&self, id: i64) -> Result<Option<HookRoom>, StorageError> {
        if let Some(room) = self.rooms.fresh(id) {
            return Ok(Some(room));
        }
        let room = self
            .with(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT disk_cap, bytes FROM hooks WHERE id = ?1")?
                    .query_row(params![id], |r| {
                        Ok(HookRoom {
                            disk_cap: r.get(0)?,
                            bytes: r.get(1)?,
                        })
                    })
                    .optional()?)
            })
            .await?;
        if let Some(room) = room {
            self.rooms.saw(id, room);
        }
        Ok(room)
    }

    async fn refuse_result(
        &self,
        token_hash: &str,
        hook_id: i64,
        oops_id: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError> {
        let (token_hash, oops_id) = (token_hash.to_owned(), oops_id.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let counted = tx.execute(
                "UPDATE hooks SET results_refused = results_refused + 1 WHERE id = ?1 \
                 AND EXISTS (SELECT 1 FROM hook_tokens WHERE token_hash = ?2 \
                 AND hook_id = ?1 AND oops_id = ?3 AND expires > ?4 AND used = 0)",
                params![hook_id, token_hash, oops_id, now],
            )? == 1;
            if counted {
                bump_stat(&tx, now, hook_id, "results_refused")?;
            }
            tx.commit()?;
            Ok(counted)
        })
        .await
    }

    async fn result_token(
        &self,
        token_hash: &str,
        hook_id: i64,
        oops_id: &str,
        now: UnixTime,
    ) -> Result<TokenCheck, StorageError> {
        let (token_hash, oops_id) = (token_hash.to_owned(), oops_id.to_owned());
        self.with(move |conn| {
            let used: Option<bool> = conn
                .prepare_cached(
                    "SELECT used FROM hook_tokens WHERE token_hash = ?1 \
                     AND hook_id = ?2 AND oops_id = ?3 AND expires > ?4",
                )?
                .query_row(params![token_hash, hook_id, oops_id, now], |r| r.get(0))
                .optional()?;
            Ok(TokenCheck::of_row(used))
        })
        .await
    }

    async fn hook_bundle(&self, id: i64, now: UnixTime) -> Result<Option<Vec<u8>>, StorageError> {
        self.with(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT bundle FROM hooks WHERE id = ?1 AND state = 'active' \
                     AND not_after > ?2",
                )?
                .query_row(params![id, now], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn hooks(&self) -> Result<Vec<HookRecord>, StorageError> {
        self.with(move |conn| {
            let sql = format!("SELECT {HOOK_COLUMNS} FROM hooks ORDER BY id DESC");
            query_hooks(conn, &sql, [])
        })
        .await
    }

    async fn set_hook_state(
        &self,
        id: i64,
        state: HookState,
        reason: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError> {
        let (reason, actor) = (reason.to_owned(), actor.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE hooks SET state = ?1, state_reason = ?2 WHERE id = ?3 AND state = 'active'",
                params![state.as_str(), reason, id],
            )?;
            if n == 1 {
                audit_in(
                    &tx,
                    &AuditEntry {
                        at: now,
                        actor,
                        action: format!("hook.{}", state.as_str()),
                        subject: id.to_string(),
                        detail: reason,
                    },
                )?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn matching_hooks(
        &self,
        targets: &[TargetKey],
        now: UnixTime,
    ) -> Result<Vec<HookRecord>, StorageError> {
        let targets = targets.to_vec();
        self.with(move |conn| {
            let sql = format!(
                "SELECT {HOOK_COLUMNS} FROM hooks WHERE target_kind = ?1 AND target_value = ?2 \
                 AND state = 'active' AND not_after > ?3 ORDER BY id"
            );
            let mut out = Vec::new();
            for t in &targets {
                out.extend(query_hooks(conn, &sql, params![t.kind, t.value, now])?);
            }
            Ok(out)
        })
        .await
    }

    async fn offer_hooks(&self, offer: OfferRequest) -> Result<Vec<HookRecord>, StorageError> {
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let sql = format!(
                "SELECT {HOOK_COLUMNS} FROM hooks WHERE target_kind = ?1 AND target_value = ?2 \
                 AND state = 'active' AND not_after > ?3 ORDER BY id"
            );
            let mut candidates = Vec::new();
            for t in &offer.targets {
                candidates.extend(query_hooks(&tx, &sql, params![t.kind, t.value, offer.now])?);
            }
            candidates.sort_by_key(|h| h.id);
            candidates.dedup_by_key(|h| h.id);
            let mut offered = Vec::new();
            for hook in candidates {
                // A second list for the same OOPS retires the token of the
                // first: one outstanding token per (OOPS, hook), so asking
                // again cannot use up the hook's offer bound.
                let retired = tx.execute(
                    "UPDATE hook_tokens SET expires = ?3 WHERE hook_id = ?1 AND oops_id = ?2 \
                     AND used = 0 AND expires > ?3",
                    params![hook.id, offer.oops_id, offer.now],
                )?;
                // Under the write lock, so the count and the insert are one
                // step. A re-offer replaces its token, so it is not held to the bound.
                let claimed = tx.execute(
                    "UPDATE hooks SET offered = offered + 1 WHERE id = ?1 \
                     AND state = 'active' AND not_after > ?2 \
                     AND (?5 OR (SELECT COUNT(*) FROM hook_tokens t WHERE t.hook_id = hooks.id \
                      AND t.used = 0 AND t.expires > ?2) + results < max_reports * ?3) \
                     AND NOT EXISTS (SELECT 1 FROM hook_results r \
                      WHERE r.hook_id = hooks.id AND r.oops_id = ?4)",
                    params![
                        hook.id,
                        offer.now,
                        offer.offer_multiple,
                        offer.oops_id,
                        retired > 0
                    ],
                )?;
                if claimed == 1 {
                    tx.execute(
                        "INSERT INTO hook_tokens (token_hash, hook_id, oops_id, issued, expires) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            offer.token_hash,
                            hook.id,
                            offer.oops_id,
                            offer.now,
                            offer.expires
                        ],
                    )?;
                    offered.push(hook);
                } else {
                    tx.execute(
                        "UPDATE hooks SET offers_refused = offers_refused + 1 WHERE id = ?1",
                        params![hook.id],
                    )?;
                }
            }
            tx.commit()?;
            Ok(offered)
        })
        .await
    }

    async fn accept_result(&self, result: NewResult) -> Result<ResultOutcome, StorageError> {
        self.writer.accept_result(result).await
    }

    async fn hook_results(
        &self,
        hook_id: i64,
        limit: i64,
    ) -> Result<Vec<HookResult>, StorageError> {
        self.with(move |conn| {
            let sql = format!(
                "SELECT {RESULT_COLUMNS} FROM hook_results WHERE hook_id = ?1 \
                 ORDER BY received DESC, oops_id LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![hook_id, limit], result_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn oops_results(&self, oops_id: &str) -> Result<Vec<HookResult>, StorageError> {
        let oops_id = oops_id.to_owned();
        self.with(move |conn| {
            let sql = format!(
                "SELECT {RESULT_COLUMNS} FROM hook_results WHERE oops_id = ?1 ORDER BY hook_id"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![oops_id], result_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn add_user(
        &self,
        name: &str,
        team: &str,
        token_hash: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<User, StorageError> {
        let (name, team, token_hash, actor) = (
            name.to_owned(),
            team.to_owned(),
            token_hash.to_owned(),
            actor.to_owned(),
        );
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id: i64 = tx.query_row(
                "INSERT INTO users (name, team, created) VALUES (?1, ?2, ?3) RETURNING id",
                params![name, team, now],
                |r| r.get(0),
            )?;
            tx.execute(INSERT_TOKEN_SQLITE, params![token_hash, id, now])?;
            audit_in(
                &tx,
                &AuditEntry::of_user(now, &actor, "user.add", &name, format!("team {team}")),
            )?;
            tx.commit()?;
            Ok(User { id, name, team })
        })
        .await
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, StorageError> {
        let token_hash = token_hash.to_owned();
        self.with(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT u.id, u.name, u.team FROM api_tokens t JOIN users u \
                     ON u.id = t.user_id WHERE t.token_hash = ?1 AND t.revoked IS NULL",
                )?
                .query_row(params![token_hash], |r| {
                    Ok(User {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        team: r.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn user_count(&self) -> Result<i64, StorageError> {
        self.with(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?))
            .await
    }

    async fn users(&self) -> Result<Vec<UserSummary>, StorageError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(USERS)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(UserSummary {
                        name: r.get(0)?,
                        team: r.get(1)?,
                        created: r.get(2)?,
                        active_tokens: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn replace_tokens(
        &self,
        name: &str,
        new_token_hash: Option<&str>,
        actor: &str,
        now: UnixTime,
    ) -> Result<Option<u64>, StorageError> {
        let (name, new_token_hash, actor) = (
            name.to_owned(),
            new_token_hash.map(str::to_owned),
            actor.to_owned(),
        );
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(id) = tx
                .query_row("SELECT id FROM users WHERE name = ?1", params![name], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
            else {
                return Ok(None);
            };
            let revoked = tx.execute(
                "UPDATE api_tokens SET revoked = ?1 WHERE user_id = ?2 AND revoked IS NULL",
                params![now, id],
            )?;
            let revoked = u64::try_from(revoked).unwrap_or(u64::MAX);
            audit_in(
                &tx,
                &AuditEntry::of_user(
                    now,
                    &actor,
                    "user.revoke",
                    &name,
                    format!("{revoked} token(s)"),
                ),
            )?;
            if let Some(hash) = new_token_hash {
                tx.execute(INSERT_TOKEN_SQLITE, params![hash, id, now])?;
                audit_in(
                    &tx,
                    &AuditEntry::of_user(now, &actor, "user.token", &name, "new token".into()),
                )?;
            }
            tx.commit()?;
            Ok(Some(revoked))
        })
        .await
    }

    async fn audit(&self, entry: AuditEntry) -> Result<(), StorageError> {
        self.with(move |conn| audit_in(conn, &entry)).await
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StorageError> {
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at, actor, action, subject, detail FROM audit_log \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt
                .query_map(params![limit], |r| {
                    Ok(AuditEntry {
                        at: r.get(0)?,
                        actor: r.get(1)?,
                        action: r.get(2)?,
                        subject: r.get(3)?,
                        detail: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn daily_stat(&self, day: i64, hook_id: i64, metric: &str) -> Result<i64, StorageError> {
        let metric = metric.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT value FROM daily_stats WHERE day = ?1 AND hook_id = ?2 \
                     AND metric = ?3",
                    params![day, hook_id, metric],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.with(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn totals(&self) -> Result<Totals, StorageError> {
        self.with(|conn| {
            Ok(conn.query_row(
                "SELECT (SELECT COUNT(*) FROM oops), \
                 (SELECT COUNT(*) FROM hooks WHERE state = 'active' AND not_after > ?1), \
                 (SELECT COUNT(*) FROM hook_results)",
                [super::now()],
                |r| {
                    Ok(Totals {
                        oopses: r.get(0)?,
                        hooks_active: r.get(1)?,
                        results: r.get(2)?,
                    })
                },
            )?)
        })
        .await
    }
}

/// Why the claim failed, with the state change it implies: `days` passed →
/// expired; over the disk cap → disabled.
fn refusal(
    tx: &Connection,
    hook_id: i64,
    bytes: i64,
    now: UnixTime,
) -> Result<ResultOutcome, StorageError> {
    let row: Option<(String, i64, i64, i64)> = tx
        .query_row(
            "SELECT state, not_after, bytes, disk_cap FROM hooks WHERE id = ?1",
            params![hook_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((state, not_after, stored, cap)) = row else {
        return Ok(ResultOutcome::UnknownToken);
    };
    let state = HookState::parse(&state)?;
    if state != HookState::Active {
        return Ok(ResultOutcome::Gone(state));
    }
    if not_after <= now {
        tx.execute(
            "UPDATE hooks SET state = 'expired', state_reason = ?2 WHERE id = ?1",
            params![hook_id, super::EXPIRED_REASON],
        )?;
        return Ok(ResultOutcome::Gone(HookState::Expired));
    }
    if stored.saturating_add(bytes) > cap {
        disable_over_cap(tx, hook_id, now)?;
        return Ok(ResultOutcome::OverDiskCap);
    }
    Ok(ResultOutcome::Gone(HookState::Completed))
}

pub(super) const DISK_CAP_REASON: &str = "disk cap reached";

fn disable_over_cap(tx: &Connection, hook_id: i64, now: UnixTime) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE hooks SET state = 'disabled', state_reason = ?1 WHERE id = ?2 AND state = 'active'",
        params![DISK_CAP_REASON, hook_id],
    )?;
    audit_in(
        tx,
        &AuditEntry {
            at: now,
            actor: "daisy".into(),
            action: "hook.disabled".into(),
            subject: hook_id.to_string(),
            detail: DISK_CAP_REASON.into(),
        },
    )
}
