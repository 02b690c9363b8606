//! Group commit on PostgreSQL: two writer tasks, one for crashes and one
//! for hook results, each with its own connection and prepared statements.
//! A writer takes every job waiting at that moment (up to [`MAX_BATCH`]),
//! writes the batch with a few set-based statements (arrays through
//! `UNNEST`) and answers each caller only after the commit, so every
//! acknowledged request is durable while the batch shares one WAL flush.
//! When a batch fails (a bad row, a deadlock with another process), each
//! job is retried alone, so one bad job fails alone.
//!
//! Crashes: the SAS index lookup and the hook generation check are sent
//! together, then one statement claims the duplicate keys and inserts the
//! new OOPSes (`INSERT … ON CONFLICT DO NOTHING RETURNING` in a CTE, one
//! implicit transaction).
//!
//! Results: the batch's hook rows are locked first (`FOR UPDATE`, in id
//! order, so two processes' batches cannot deadlock on them); while a hook
//! row is locked no other process can change the hook, its tokens or its
//! results, so each result's claim (`reports`, `days`, disk cap, one result
//! per OOPS and hook, one use per token) is decided on the current row and
//! written back with the same transaction. Several daisy processes still
//! never accept more than `reports` results. A batch is two round trips:
//! `BEGIN` and the three reads are pipelined in the first, the writes and
//! `COMMIT` in the second (every statement is prepared when the writer
//! connects, so none waits for a `Parse`). The hooks' figures seen under
//! the lock refresh the process's disk-cap room cache (`result_room`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::hook_index::HookIndex;
use super::postgres::connect_one;
use super::result_room::{HookRoom, RoomCache};
use super::sqlite::DISK_CAP_REASON;
use super::{
    HookState, InsertOops, Intake, IntakeOutcome, NewOops, NewResult, ResultOutcome, StorageError,
    UnixTime, day_of,
};

/// Most jobs committed together.
pub const MAX_BATCH: usize = 256;

/// A crash for the writer: the OOPS (bucket filled in from `keys` when
/// given) and whether to answer the hook match.
type CrashJob = (NewOops, Option<crate::bucketing::CrashKeys>);
type CrashReply = oneshot::Sender<Result<IntakeOutcome, StorageError>>;
type ResultReply = oneshot::Sender<Result<ResultOutcome, StorageError>>;

/// Answer every waiting request of a batch that could not be written.
fn fail_all<T>(
    replies: impl IntoIterator<Item = oneshot::Sender<Result<T, StorageError>>>,
    message: &str,
) {
    for reply in replies {
        // A caller that gave up no longer waits for its answer.
        let _ = reply.send(Err(StorageError::Open(message.to_owned())));
    }
}

/// The outcome of a batch of one job, retried on its own.
fn only_outcome<T>(outcomes: Result<Vec<T>, StorageError>) -> Result<T, StorageError> {
    outcomes?
        .into_iter()
        .next()
        .ok_or_else(|| StorageError::Corrupt("empty batch result".into()))
}

const GENERATION: &str = "SELECT value FROM hook_generation WHERE id = 1";
const ACTIVE_TARGETS: &str =
    "SELECT target_kind, target_value, not_after FROM hooks WHERE state = 'active'";
const SAS_LOOKUP: &str = "SELECT sas, signature FROM sas_signature WHERE sas = ANY($1::text[])";
/// Claims the duplicate keys (the first of a batch wins) and stores the
/// crashes that claimed theirs or have none; returns the stored ids. A key
/// is led by the crash time (migration 0004); one already filed under time
/// 0 (rows from before 0004) also counts as taken ([`LEGACY_PROBE`], only
/// while such rows exist). Only the claim, which must go in batch order,
/// reads the keys in order (`WITH ORDINALITY`, rows of a few hundred
/// bytes); the crashes themselves, reports and all, go straight from their
/// arrays into `oops`, neither copied into a CTE nor sorted.
fn store_crashes_sql(legacy_probe: bool) -> String {
    format!(
        "WITH claimed AS ( \
            INSERT INTO oops_dedup (crash_time, system_id, digest, oops_id) \
            SELECT crash_time, system_id, digest, id \
            FROM UNNEST($1::text[], $2::text[], $4::text[], $11::bigint[]) WITH ORDINALITY \
                AS i(id, system_id, digest, crash_time, ord) \
            WHERE digest IS NOT NULL{} \
            ORDER BY ord \
            ON CONFLICT DO NOTHING RETURNING oops_id) \
        INSERT INTO oops (id, system_id, received, bucket, sas, package, source_package, \
            duplicate_signature, report) \
        SELECT id, system_id, received, bucket, sas, package, source_package, \
            duplicate_signature, report \
        FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
            $7::text[], $8::text[], $9::text[], $10::bytea[]) \
            AS u(id, system_id, received, digest, bucket, sas, package, source_package, \
                 duplicate_signature, report) \
        WHERE digest IS NULL OR id IN (SELECT oops_id FROM claimed) \
        RETURNING id",
        if legacy_probe { LEGACY_PROBE } else { "" }
    )
}
/// A key filed under crash time 0 before migration 0004 also claims the
/// key. An index probe per crash (about a tenth of PostgreSQL's CPU per
/// crash under `perf`), so it is left out while `oops_dedup` has no key
/// under time 0, as on SQLite (`sqlite_dedup`): checked at a writer's first
/// batch, since such rows only come from before 0004. (Keys filed under 0
/// later come from a `Date` that does not parse, so they cannot share a
/// digest, which covers the `Date` text, with a crash that has a crash
/// time.)
const LEGACY_PROBE: &str = " AND NOT EXISTS (SELECT 1 FROM oops_dedup d WHERE i.crash_time <> 0 \
    AND d.crash_time = 0 AND d.system_id = i.system_id AND d.digest = i.digest OFFSET 0)";
const LEGACY_KEYS: &str = "SELECT EXISTS (SELECT 1 FROM oops_dedup WHERE crash_time = 0)";
const EXISTING_DUPLICATES: &str = "SELECT u.system_id, u.digest, d.oops_id \
    FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(system_id, digest, crash_time) \
    CROSS JOIN LATERAL (SELECT oops_id FROM oops_dedup d \
        WHERE d.crash_time IN (u.crash_time, 0) AND d.system_id = u.system_id \
        AND d.digest = u.digest LIMIT 1) d";

/// Buckets the given parked crashes whose SAS is mapped now.
const REBUCKET_PARKED: &str = "UPDATE oops o SET bucket = s.signature FROM sas_signature s \
    WHERE o.id = ANY($1::text[]) AND o.bucket IS NULL AND s.sas = o.sas \
    RETURNING o.id, o.bucket";

const LOCK_HOOKS: &str = "SELECT id, state, version, results, max_reports, not_after, bytes, \
    disk_cap FROM hooks WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE";
const TOKENS: &str = "SELECT u.token_hash, u.hook_id, t.oops_id, t.expires, t.used \
    FROM UNNEST($1::text[], $2::bigint[]) AS u(token_hash, hook_id) \
    CROSS JOIN LATERAL (SELECT oops_id, expires, used FROM hook_tokens t \
        WHERE t.token_hash = u.token_hash AND t.hook_id = u.hook_id LIMIT 1) t";
const EXISTING_RESULTS: &str = "SELECT u.oops_id, u.hook_id \
    FROM UNNEST($1::text[], $2::bigint[]) AS u(oops_id, hook_id) \
    WHERE EXISTS (SELECT 1 FROM hook_results r \
        WHERE r.oops_id = u.oops_id AND r.hook_id = u.hook_id OFFSET 0)";
/// `h.id = ANY($1)`: whichever side the plan starts from, only the
/// batch's hooks are read.
const UPDATE_HOOKS: &str = "UPDATE hooks h SET results = u.results, bytes = u.bytes, \
    failures = h.failures + u.failures, results_refused = h.results_refused + u.refused, state = u.state, \
    state_reason = COALESCE(u.reason, h.state_reason) \
    FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
        $6::text[], $7::text[]) AS u(id, results, bytes, failures, refused, state, reason) \
    WHERE h.id = u.id AND h.id = ANY($1::bigint[])";
/// The tokens' rows are found by key in an init plan, then updated by
/// their row ids: an `UPDATE … FROM UNNEST` may be planned with the table
/// as the outer side.
const USE_TOKENS: &str = "UPDATE hook_tokens SET used = TRUE \
    WHERE ctid = ANY (ARRAY(SELECT t.ctid \
        FROM UNNEST($1::text[], $2::bigint[]) AS u(token_hash, hook_id) \
        CROSS JOIN LATERAL (SELECT ctid FROM hook_tokens t \
            WHERE t.token_hash = u.token_hash AND t.hook_id = u.hook_id LIMIT 1) t))";
const INSERT_RESULTS: &str = "INSERT INTO hook_results (oops_id, hook_id, hook_version, bucket, \
    package, received, keys, bytes, failed) \
    SELECT u.oops_id, u.hook_id, u.version, o.bucket, o.package, u.received, u.keys, u.bytes, \
        u.failed \
    FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], \
        $6::bigint[], $7::bool[]) AS u(oops_id, hook_id, version, received, keys, bytes, failed) \
    CROSS JOIN LATERAL (SELECT bucket, package FROM oops o WHERE o.id = u.oops_id LIMIT 1) o";
/// Adds to daily statistics, one row per array element.
pub(super) const BUMP_STATS: &str = "INSERT INTO daily_stats (day, hook_id, metric, value) \
    SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[]) \
    ON CONFLICT (day, hook_id, metric) DO UPDATE SET value = daily_stats.value + excluded.value";
const AUDIT: &str =
    "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)";

/// Handle of the two writer tasks; they end when the handle is dropped.
pub(super) struct PgWriter {
    crashes: mpsc::UnboundedSender<(CrashJob, CrashReply)>,
    results: mpsc::UnboundedSender<(NewResult, ResultReply)>,
}

impl PgWriter {
    /// Connects both writers and starts their tasks.
    pub(super) async fn start(url: &str, rooms: Arc<RoomCache>) -> Result<PgWriter, StorageError> {
        let crash_conn = CrashConn::connect(url).await?;
        let result_conn = ResultConn::connect(url).await?;
        let (crashes, crash_rx) = mpsc::unbounded_channel();
        let (results, result_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_crashes(url.to_owned(), crash_conn, crash_rx));
        tokio::spawn(run_results(url.to_owned(), result_conn, result_rx, rooms));
        Ok(PgWriter { crashes, results })
    }

    /// Stores one crash as given; resolves after its batch is committed.
    pub(super) async fn insert(&self, oops: NewOops) -> Result<InsertOops, StorageError> {
        Ok(match self.crash((oops, None)).await? {
            IntakeOutcome::Duplicate(existing) => InsertOops::Duplicate(existing),
            IntakeOutcome::Stored { .. } => InsertOops::Inserted,
        })
    }

    /// The whole intake of one crash; resolves after its batch is committed.
    pub(super) async fn intake(&self, crash: Intake) -> Result<IntakeOutcome, StorageError> {
        self.crash((crash.oops, Some(crash.keys))).await
    }

    async fn crash(&self, job: CrashJob) -> Result<IntakeOutcome, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.crashes
            .send((job, reply))
            .map_err(|_| StorageError::WorkerGone)?;
        answer.await.map_err(|_| StorageError::WorkerGone)?
    }

    /// Accepts or refuses one result; resolves after its batch is committed.
    pub(super) async fn accept_result(
        &self,
        result: NewResult,
    ) -> Result<ResultOutcome, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.results
            .send((result, reply))
            .map_err(|_| StorageError::WorkerGone)?;
        answer.await.map_err(|_| StorageError::WorkerGone)?
    }
}

/// A writer's connection. Every statement of the writers probes the
/// tables' keys once per row of the batch's arrays, and is written so that
/// no other plan is possible whatever the planner believes about the
/// tables' sizes: the probes are `LATERAL` subqueries with `LIMIT 1` or
/// `EXISTS` subqueries with `OFFSET 0` (neither is flattened into a join
/// that could put the table on the outer side), sequential scans are ruled
/// out (a freshly created table looks empty, and a plan made then went on
/// scanning the whole table for every batch as it grew), and the plan is
/// made once per connection (`force_generic_plan`: planning every batch
/// cost a quarter of PostgreSQL's CPU per result).
async fn connect_writer(url: &str) -> Result<Client, StorageError> {
    let client = connect_one(url).await?;
    client
        .batch_execute(
            "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
             SET enable_hashjoin = off; SET enable_mergejoin = off",
        )
        .await?;
    Ok(client)
}

/// Takes the first job and every other one already waiting.
async fn next_batch<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The crash writer's connection and statements.
struct CrashConn {
    client: Client,
    generation: Statement,
    active_targets: Statement,
    sas_lookup: Statement,
    existing: Statement,
    /// Shared advisory locks of a batch's parked SASes, in order.
    lock_sases: Statement,
    /// Buckets parked crashes whose SAS is mapped now.
    rebucket: Statement,
    /// Stores a batch; prepared at the first batch, with [`LEGACY_PROBE`]
    /// only if `oops_dedup` then has keys under crash time 0.
    store: Option<Statement>,
}

impl CrashConn {
    async fn connect(url: &str) -> Result<CrashConn, StorageError> {
        let client = connect_writer(url).await?;
        // In key order, like any set of locks taken one by one.
        let lock_sases_sql = format!(
            "SELECT pg_advisory_xact_lock_shared(k) FROM (SELECT DISTINCT {} AS k \
             FROM UNNEST($1::text[]) AS s(sas) ORDER BY k) t",
            super::postgres::SAS_LOCK.replace("$1", "s.sas")
        );
        let (generation, active_targets, sas_lookup, existing, lock_sases, rebucket) = tokio::try_join!(
            client.prepare(GENERATION),
            client.prepare(ACTIVE_TARGETS),
            client.prepare(SAS_LOOKUP),
            client.prepare(EXISTING_DUPLICATES),
            client.prepare(&lock_sases_sql),
            client.prepare(REBUCKET_PARKED),
        )?;
        Ok(CrashConn {
            client,
            generation,
            active_targets,
            sas_lookup,
            existing,
            lock_sases,
            rebucket,
            store: None,
        })
    }

    /// The batch statement, prepared on first use (see [`LEGACY_PROBE`]).
    async fn store(&mut self) -> Result<Statement, StorageError> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let legacy: bool = self.client.query_one(LEGACY_KEYS, &[]).await?.try_get(0)?;
        let store = self.client.prepare(&store_crashes_sql(legacy)).await?;
        self.store = Some(store.clone());
        Ok(store)
    }
}

async fn run_crashes(
    url: String,
    mut conn: CrashConn,
    mut rx: mpsc::UnboundedReceiver<(CrashJob, CrashReply)>,
) {
    let mut index = HookIndex::default();
    while let Some(batch) = next_batch(&mut rx).await {
        if conn.client.is_closed() {
            match CrashConn::connect(&url).await {
                Ok(c) => conn = c,
                Err(e) => {
                    fail_all(batch.into_iter().map(|(_, reply)| reply), &e.to_string());
                    continue;
                }
            }
        }
        let (mut jobs, replies): (Vec<CrashJob>, Vec<CrashReply>) = batch.into_iter().unzip();
        match store_crashes(&mut conn, &mut index, &mut jobs).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if jobs.len() > 1 => {
                tracing::warn!("PostgreSQL group commit failed, retrying one by one: {e}");
                for (job, reply) in jobs.into_iter().zip(replies) {
                    let mut one = vec![job];
                    let outcome =
                        only_outcome(store_crashes(&mut conn, &mut index, &mut one).await);
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => fail_all(replies, &e.to_string()),
        }
    }
}

/// Stores a batch of crashes in one statement (one implicit transaction).
async fn store_crashes(
    conn: &mut CrashConn,
    index: &mut HookIndex,
    jobs: &mut [CrashJob],
) -> Result<Vec<IntakeOutcome>, StorageError> {
    let store = conn.store().await?;
    let conn = &*conn;
    let sases: Vec<&str> = jobs
        .iter()
        .filter(|(_, keys)| keys.is_some())
        .filter_map(|(o, _)| o.sas.as_deref())
        .collect();
    // Pipelined: both go out before either answer is read.
    let want_match = jobs.iter().any(|(_, keys)| keys.is_some());
    let generation = async {
        if want_match {
            let row = conn.client.query_one(&conn.generation, &[]).await?;
            Ok::<_, tokio_postgres::Error>(Some(row.try_get::<_, i64>(0)?))
        } else {
            Ok(None)
        }
    };
    let sas_rows = async {
        if sases.is_empty() {
            Ok(Vec::new())
        } else {
            conn.client.query(&conn.sas_lookup, &[&sases]).await
        }
    };
    let (generation, sas_rows) = tokio::join!(generation, sas_rows);
    let mut known: HashMap<String, String> = HashMap::new();
    for row in sas_rows? {
        known.insert(row.try_get(0)?, row.try_get(1)?);
    }
    if let Some(generation) = generation?
        && !index.is_current(generation)
    {
        let rows = conn.client.query(&conn.active_targets, &[]).await?;
        let mut active = Vec::with_capacity(rows.len());
        for r in rows {
            active.push((r.try_get(0)?, r.try_get(1)?, r.try_get::<_, UnixTime>(2)?));
        }
        index.reload(generation, active);
    }
    let mut sas_known = Vec::with_capacity(jobs.len());
    for (oops, keys) in jobs.iter_mut() {
        let signature = oops.sas.as_deref().and_then(|s| known.get(s));
        sas_known.push(signature.is_some());
        if let Some(keys) = keys {
            oops.bucket = keys.bucket(signature.map(String::as_str));
        }
    }
    let column = |f: fn(&NewOops) -> Option<&str>| -> Vec<Option<&str>> {
        jobs.iter().map(|(o, _)| f(o)).collect()
    };
    let ids: Vec<&str> = jobs.iter().map(|(o, _)| o.id.as_str()).collect();
    let systems: Vec<&str> = jobs.iter().map(|(o, _)| o.system_id.as_str()).collect();
    let received: Vec<i64> = jobs.iter().map(|(o, _)| o.received).collect();
    let digests = column(|o| o.dedup_digest.as_deref());
    let buckets = column(|o| o.bucket.as_deref());
    let sas = column(|o| o.sas.as_deref());
    let packages = column(|o| o.package.as_deref());
    let sources = column(|o| o.source_package.as_deref());
    let signatures = column(|o| o.duplicate_signature.as_deref());
    let reports: Vec<&[u8]> = jobs.iter().map(|(o, _)| o.report.as_slice()).collect();
    let crash_times: Vec<i64> = jobs.iter().map(|(o, _)| o.crash_time).collect();
    let stored: HashSet<String> = conn
        .client
        .query(
            &store,
            &[
                &ids,
                &systems,
                &received,
                &digests,
                &buckets,
                &sas,
                &packages,
                &sources,
                &signatures,
                &reports,
                &crash_times,
            ],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let (parked, mut parked_sases): (Vec<&str>, Vec<&str>) = jobs
        .iter()
        .filter(|(o, _)| o.bucket.is_none() && stored.contains(&o.id))
        .filter_map(|(o, _)| Some((o.id.as_str(), o.sas.as_deref()?)))
        .unzip();
    // Parked crash → the bucket the re-check moved it into.
    let mut rebucketed: HashMap<String, String> = HashMap::new();
    if !parked.is_empty() {
        parked_sases.sort_unstable();
        parked_sases.dedup();
        // Committed already: a failure leaves them parked (the retracer's
        // next mapping of their SAS moves them), never fails the batch.
        match rebucket_parked(conn, &parked, &parked_sases).await {
            Ok(moved) => rebucketed = moved,
            Err(e) => tracing::warn!("re-checking {} parked crashes: {e}", parked.len()),
        }
    }
    // The duplicates: of a crash stored earlier in this batch, or in the
    // database before it.
    let mut first_in_batch: HashMap<(&str, &str), &str> = HashMap::new();
    let mut lookup: (Vec<&str>, Vec<&str>, Vec<i64>) = (Vec::new(), Vec::new(), Vec::new());
    for (oops, _) in jobs.iter() {
        let Some(digest) = oops.dedup_digest.as_deref() else {
            continue;
        };
        if stored.contains(&oops.id) {
            first_in_batch.insert((&oops.system_id, digest), &oops.id);
        } else if !first_in_batch.contains_key(&(oops.system_id.as_str(), digest)) {
            lookup.0.push(&oops.system_id);
            lookup.1.push(digest);
            lookup.2.push(oops.crash_time);
        }
    }
    let mut earlier: HashMap<(String, String), String> = HashMap::new();
    if !lookup.0.is_empty() {
        for r in conn
            .client
            .query(&conn.existing, &[&lookup.0, &lookup.1, &lookup.2])
            .await?
        {
            earlier.insert((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?);
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for ((oops, keys), known) in jobs.iter().zip(sas_known) {
        if stored.contains(&oops.id) {
            // A crash the re-check bucketed is answered as one whose SAS
            // was known: no `CORE` for a retracer that mapped it already,
            // and the header when a hook targets its bucket.
            let outcome = match rebucketed.get(&oops.id) {
                Some(bucket) => IntakeOutcome::Stored {
                    sas_known: true,
                    hooks_match: keys.is_some() && index.matches_in_bucket(oops, Some(bucket)),
                },
                None => IntakeOutcome::Stored {
                    sas_known: known,
                    hooks_match: keys.is_some() && index.matches(oops),
                },
            };
            outcomes.push(outcome);
            continue;
        }
        let digest = oops.dedup_digest.as_deref().unwrap_or_default();
        let existing = first_in_batch
            .get(&(oops.system_id.as_str(), digest))
            .map(|id| (*id).to_owned())
            .or_else(|| {
                earlier
                    .get(&(oops.system_id.clone(), digest.to_owned()))
                    .cloned()
            })
            .ok_or_else(|| {
                StorageError::Corrupt(format!("crash {} neither stored nor a duplicate", oops.id))
            })?;
        outcomes.push(IntakeOutcome::Duplicate(existing));
    }
    Ok(outcomes)
}

/// Buckets the crashes just stored as parked whose SAS got a mapping after
/// the batch looked it up. `map_sas` re-buckets the parked crashes it can
/// see; one whose store had not committed when it looked stays parked
/// unless the writer looks again. Under the shared side of `map_sas`'s
/// advisory lock, after the store's commit: either the mapping committed
/// before this statement's snapshot (it is seen here), or `map_sas` starts
/// after it and sees these crashes itself.
async fn rebucket_parked(
    conn: &CrashConn,
    ids: &[&str],
    sases: &[&str],
) -> Result<HashMap<String, String>, StorageError> {
    // Pipelined, in order (all prepared, so none waits for a `Parse`);
    // after an error `COMMIT` ends the transaction as a rollback.
    let client = &conn.client;
    let begin = client.batch_execute("BEGIN");
    let (lock_params, update_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
        ([&sases], [&ids]);
    let lock = client.query(&conn.lock_sases, &lock_params);
    let update = client.query(&conn.rebucket, &update_params);
    let commit = client.batch_execute("COMMIT");
    let (begin, lock, update, commit) = tokio::join!(begin, lock, update, commit);
    begin?;
    lock?;
    let moved = update?;
    commit?;
    moved
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The result writer's connection and statements.
struct ResultConn {
    client: Client,
    lock_hooks: Statement,
    tokens: Statement,
    existing: Statement,
    update_hooks: Statement,
    use_tokens: Statement,
    insert_results: Statement,
    bump_stats: Statement,
    audit: Statement,
}

impl ResultConn {
    async fn connect(url: &str) -> Result<ResultConn, StorageError> {
        let client = connect_writer(url).await?;
        let (
            lock_hooks,
            tokens,
            existing,
            update_hooks,
            use_tokens,
            insert_results,
            bump_stats,
            audit,
        ) = tokio::try_join!(
            client.prepare(LOCK_HOOKS),
            client.prepare(TOKENS),
            client.prepare(EXISTING_RESULTS),
            client.prepare(UPDATE_HOOKS),
            client.prepare(USE_TOKENS),
            client.prepare(INSERT_RESULTS),
            client.prepare(BUMP_STATS),
            client.prepare(AUDIT),
        )?;
        Ok(ResultConn {
            client,
            lock_hooks,
            tokens,
            existing,
            update_hooks,
            use_tokens,
            insert_results,
            bump_stats,
            audit,
        })
    }
}

async fn run_results(
    url: String,
    mut conn: ResultConn,
    mut rx: mpsc::UnboundedReceiver<(NewResult, ResultReply)>,
    rooms: Arc<RoomCache>,
) {
    while let Some(batch) = next_batch(&mut rx).await {
        if conn.client.is_closed() {
            match ResultConn::connect(&url).await {
                Ok(c) => conn = c,
                Err(e) => {
                    fail_all(batch.into_iter().map(|(_, reply)| reply), &e.to_string());
                    continue;
                }
            }
        }
        let (jobs, replies): (Vec<NewResult>, Vec<ResultReply>) = batch.into_iter().unzip();
        match store_results(&conn, &rooms, &jobs).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if jobs.len() > 1 => {
                tracing::warn!("PostgreSQL result batch failed, retrying one by one: {e}");
                for (job, reply) in jobs.into_iter().zip(replies) {
                    let outcome = only_outcome(
                        store_results(&conn, &rooms, std::slice::from_ref(&job)).await,
                    );
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => fail_all(replies, &e.to_string()),
        }
    }
}

/// A locked hook row, changed in memory by the batch and written back.
#[derive(Debug)]
struct LockedHook {
    state: HookState,
    reason: Option<&'static str>,
    version: i64,
    results: i64,
    max_reports: i64,
    not_after: UnixTime,
    bytes: i64,
    disk_cap: i64,
    failures_added: i64,
    refused: i64,
    touched: bool,
}

/// A token row of the batch.
struct TokenRow {
    oops_id: String,
    expires: UnixTime,
    used: bool,
}

/// Decides and stores a batch of results in one transaction; on any
/// failure the transaction is rolled back before the error is returned.
async fn store_results(
    conn: &ResultConn,
    rooms: &RoomCache,
    jobs: &[NewResult],
) -> Result<Vec<ResultOutcome>, StorageError> {
    let stored = write_results(conn, rooms, jobs).await;
    if stored.is_err() {
        // A failed statement aborts the transaction and the pipelined
        // `COMMIT` then only ends it; after a failed `BEGIN` or a lost
        // connection this is a harmless warning or error.
        let _ = conn.client.batch_execute("ROLLBACK").await;
    }
    stored
}

/// The two round trips of a result batch.
async fn write_results(
    conn: &ResultConn,
    rooms: &RoomCache,
    jobs: &[NewResult],
) -> Result<Vec<ResultOutcome>, StorageError> {
    let mut hook_ids: Vec<i64> = jobs.iter().map(|r| r.hook_id).collect();
    hook_ids.sort_unstable();
    hook_ids.dedup();
    let token_hashes: Vec<&str> = jobs.iter().map(|r| r.token_hash.as_str()).collect();
    let token_hooks: Vec<i64> = jobs.iter().map(|r| r.hook_id).collect();
    let oops_ids: Vec<&str> = jobs.iter().map(|r| r.oops_id.as_str()).collect();
    let client = &conn.client;
    // Round trip 1, pipelined and executed in order: `BEGIN`, then the hook
    // rows are locked before the tokens and results are read, so those
    // reads (each statement takes its own snapshot) see the last holder's
    // commit.
    let lock_params: [&(dyn ToSql + Sync); 1] = [&hook_ids];
    let token_params: [&(dyn ToSql + Sync); 2] = [&token_hashes, &token_hooks];
    let result_params: [&(dyn ToSql + Sync); 2] = [&oops_ids, &token_hooks];
    let (begin, hook_rows, token_rows, result_rows) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query(&conn.lock_hooks, &lock_params),
        client.query(&conn.tokens, &token_params),
        client.query(&conn.existing, &result_params),
    );
    begin?;
    let mut hooks: HashMap<i64, LockedHook> = HashMap::new();
    for r in hook_rows? {
        let max_reports: i64 = r.try_get(4)?;
        let results: i64 = r.try_get(3)?;
        hooks.insert(
            r.try_get(0)?,
            LockedHook {
                state: HookState::parse(&r.try_get::<_, String>(1)?)?,
                reason: None,
                version: r.try_get(2)?,
                results,
                max_reports,
                not_after: r.try_get(5)?,
                bytes: r.try_get(6)?,
                disk_cap: r.try_get(7)?,
                failures_added: 0,
                refused: 0,
                touched: false,
            },
        );
    }
    let mut tokens: HashMap<(String, i64), TokenRow> = HashMap::new();
    for r in token_rows? {
        tokens.insert(
            (r.try_get(0)?, r.try_get(1)?),
            TokenRow {
                oops_id: r.try_get(2)?,
                expires: r.try_get(3)?,
                used: r.try_get(4)?,
            },
        );
    }
    let mut existing: HashSet<(String, i64)> = HashSet::new();
    for r in result_rows? {
        existing.insert((r.try_get(0)?, r.try_get(1)?));
    }

    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut used_tokens: (Vec<&str>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut accepted: Vec<(&NewResult, i64)> = Vec::new();
    let mut stats: HashMap<(i64, i64, &'static str), i64> = HashMap::new();
    let mut disabled: Vec<(i64, UnixTime)> = Vec::new();
    for result in jobs {
        let token = tokens
            .get_mut(&(result.token_hash.clone(), result.hook_id))
            .filter(|t| t.oops_id == result.oops_id && t.expires > result.now);
        let (Some(token), Some(hook)) = (token, hooks.get_mut(&result.hook_id)) else {
            outcomes.push(ResultOutcome::UnknownToken);
            continue;
        };
        hook.touched = true;
        let key = (result.oops_id.clone(), result.hook_id);
        let day = day_of(result.now);
        if token.used || existing.contains(&key) {
            hook.refused = hook.refused.saturating_add(1);
            bump(&mut stats, day, result.hook_id, "results_refused");
            outcomes.push(ResultOutcome::Duplicate);
            continue;
        }
        token.used = true;
        used_tokens.0.push(&result.token_hash);
        used_tokens.1.push(result.hook_id);
        let bytes = hook.bytes.saturating_add(result.bytes);
        if hook.state == HookState::Active
            && hook.results < hook.max_reports
            && hook.not_after > result.now
            && bytes <= hook.disk_cap
        {
            hook.results = hook.results.saturating_add(1);
            hook.bytes = bytes;
            hook.failures_added = hook.failures_added.saturating_add(i64::from(result.failed));
            if hook.results >= hook.max_reports {
                hook.state = HookState::Completed;
            }
            existing.insert(key);
            accepted.push((result, hook.version));
            bump(&mut stats, day, result.hook_id, "results");
            if result.failed {
                bump(&mut stats, day, result.hook_id, "failures");
            }
            outcomes.push(ResultOutcome::Accepted {
                completed: hook.results >= hook.max_reports,
            });
            continue;
        }
        // Refused: why, with the state change it implies.
        let outcome = if hook.state != HookState::Active {
            ResultOutcome::Gone(hook.state)
        } else if hook.not_after <= result.now {
            hook.state = HookState::Expired;
            hook.reason = Some(super::EXPIRED_REASON);
            ResultOutcome::Gone(HookState::Expired)
        } else if bytes > hook.disk_cap {
            hook.state = HookState::Disabled;
            hook.reason = Some(DISK_CAP_REASON);
            disabled.push((result.hook_id, result.now));
            ResultOutcome::OverDiskCap
        } else {
            ResultOutcome::Gone(HookState::Completed)
        };
        hook.refused = hook.refused.saturating_add(1);
        bump(&mut stats, day, result.hook_id, "results_refused");
        outcomes.push(outcome);
    }

    // Round trip 2: the writes and `COMMIT`, pipelined. A failed write
    // aborts the transaction, so the `COMMIT` behind it rolls back; the
    // batch counts as stored only when every write and the commit answered
    // without error. The failures counter is added, not set: reading it
    // back is not needed.
    let touched: Vec<(&i64, &LockedHook)> = hooks.iter().filter(|(_, h)| h.touched).collect();
    let hook_update = async {
        if touched.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = touched.iter().map(|(id, _)| **id).collect();
        let results: Vec<i64> = touched.iter().map(|(_, h)| h.results).collect();
        let bytes: Vec<i64> = touched.iter().map(|(_, h)| h.bytes).collect();
        let refused: Vec<i64> = touched.iter().map(|(_, h)| h.refused).collect();
        let states: Vec<&str> = touched.iter().map(|(_, h)| h.state.as_str()).collect();
        let reasons: Vec<Option<&str>> = touched.iter().map(|(_, h)| h.reason).collect();
        // failures = failures + added: expressed as an absolute value would
        // need the old value; the row is locked, so add in SQL instead.
        let failures: Vec<i64> = touched.iter().map(|(_, h)| h.failures_added).collect();
        client
            .execute(
                &conn.update_hooks,
                &[
                    &ids, &results, &bytes, &failures, &refused, &states, &reasons,
                ],
            )
            .await
    };
    let token_update = async {
        if used_tokens.0.is_empty() {
            return Ok(0);
        }
        client
            .execute(&conn.use_tokens, &[&used_tokens.0, &used_tokens.1])
            .await
    };
    let result_insert = async {
        if accepted.is_empty() {
            return Ok(0);
        }
        let oops: Vec<&str> = accepted.iter().map(|(r, _)| r.oops_id.as_str()).collect();
        let hook: Vec<i64> = accepted.iter().map(|(r, _)| r.hook_id).collect();
        let version: Vec<i64> = accepted.iter().map(|(_, v)| *v).collect();
        let received: Vec<i64> = accepted.iter().map(|(r, _)| r.now).collect();
        let keys: Vec<&[u8]> = accepted.iter().map(|(r, _)| r.keys.as_slice()).collect();
        let bytes: Vec<i64> = accepted.iter().map(|(r, _)| r.bytes).collect();
        let failed: Vec<bool> = accepted.iter().map(|(r, _)| r.failed).collect();
        client
            .execute(
                &conn.insert_results,
                &[&oops, &hook, &version, &received, &keys, &bytes, &failed],
            )
            .await
    };
    let stats_update = async {
        if stats.is_empty() {
            return Ok(0);
        }
        let mut sorted: Vec<_> = stats.iter().collect();
        sorted.sort();
        let days: Vec<i64> = sorted.iter().map(|((d, _, _), _)| *d).collect();
        let hooks: Vec<i64> = sorted.iter().map(|((_, h, _), _)| *h).collect();
        let metrics: Vec<&str> = sorted.iter().map(|((_, _, m), _)| *m).collect();
        let values: Vec<i64> = sorted.iter().map(|(_, v)| **v).collect();
        client
            .execute(&conn.bump_stats, &[&days, &hooks, &metrics, &values])
            .await
    };
    let audits = join_all(disabled.iter().map(|(hook_id, now)| {
        let subject = hook_id.to_string();
        async move {
            client
                .execute(
                    &conn.audit,
                    &[now, &"daisy", &"hook.disabled", &subject, &DISK_CAP_REASON],
                )
                .await
        }
    }));
    let (a, b, c, d, e, commit) = tokio::join!(
        hook_update,
        token_update,
        result_insert,
        stats_update,
        audits,
        client.batch_execute("COMMIT"),
    );
    a?;
    b?;
    c?;
    d?;
    for audit in e {
        audit?;
    }
    commit?;
    for (id, hook) in &hooks {
        rooms.saw(
            *id,
            HookRoom {
                disk_cap: hook.disk_cap,
                bytes: hook.bytes,
            },
        );
    }
    Ok(outcomes)
}

fn bump(
    stats: &mut HashMap<(i64, i64, &'static str), i64>,
    day: i64,
    hook_id: i64,
    metric: &'static str,
) {
    let n = stats.entry((day, hook_id, metric)).or_insert(0);
    *n = n.saturating_add(1);
}
