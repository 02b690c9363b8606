//! The PostgreSQL engine: a small fixed set of connections. Several daisy
//! processes may share one database; the conditional `UPDATE … RETURNING`
//! statements below are what keeps them within a hook's limits (PostgreSQL
//! re-checks the `WHERE` clause on the newest row version after waiting for
//! a concurrent writer).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use super::postgres_batch::PgWriter;
use super::result_room::{HookRoom, RoomCache};
use super::sqlite::HOOK_COLUMNS;
use super::{
    AuditEntry, HookRecord, HookResult, HookState, INSERT_TOKEN_POSTGRES, InsertOops, Intake,
    IntakeOutcome, NewHook, NewOops, NewResult, OfferRequest, Oops, ResultOutcome, Storage,
    StorageError, TargetKey, TokenCheck, Totals, USERS, UnixTime, User, UserSummary,
};

/// Ordered migrations; index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres_0001_initial.sql"),
    include_str!("migrations/postgres_0002_hook_generation.sql"),
    include_str!("migrations/postgres_0003_cheaper_intake.sql"),
    include_str!("migrations/postgres_0004_dedup_by_crash_time.sql"),
    include_str!("migrations/postgres_0005_cheaper_writes.sql"),
    include_str!("migrations/postgres_0006_drop_oops_package.sql"),
    include_str!("migrations/postgres_0007_outstanding_tokens_by_oops.sql"),
];

/// Connections per daisy process.
pub const POOL_SIZE: usize = 4;

/// Advisory lock key that serialises migrations of several processes.
const MIGRATION_LOCK: i64 = 0x0064_6169_7379;

/// The advisory lock of one SAS, taken by `map_sas` (exclusive) and by the
/// crash writer's re-check of crashes it parked under that SAS (shared):
/// see `postgres_batch::rebucket_parked`. Keyed by a hash of the SAS, so
/// that mapping one SAS never waits for or stalls the intake of others (a
/// collision only makes two SASes share a lock).
pub(super) const SAS_LOCK: &str = "hashtextextended($1, 7099766)";

const OOPS_COLUMNS: &str = "id, system_id, received, bucket, sas, package, source_package, \
    duplicate_signature, report, core_size";

const RESULT_COLUMNS: &str =
    "oops_id, hook_id, hook_version, bucket, package, received, keys, bytes, failed";

/// PostgreSQL storage.
pub struct PostgresStorage {
    url: String,
    writer: PgWriter,
    clients: Vec<Mutex<Client>>,
    next: AtomicUsize,
    /// One connection shared without a lock by the hot single-statement
    /// reads (hooks, and the disk-cap room of a result upload when the
    /// cache has none): concurrent queries are pipelined on it instead of
    /// queueing for the pool's four mutexes. The write lock is taken only
    /// to reconnect.
    shared: RwLock<Client>,
    /// The hooks' disk-cap room as last seen, refreshed by the result
    /// writer's batches.
    rooms: Arc<RoomCache>,
}

/// Opens a PostgreSQL session with daisy's settings (see
/// [`require_durable_commits`]); every connection daisy opens, the
/// writers' and the reconnections included, comes from here.
pub async fn connect_one(url: &str) -> Result<Client, StorageError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection closed: {e}");
        }
    });
    require_durable_commits(&client).await?;
    Ok(client)
}

/// `synchronous_commit` values under which a `COMMIT` answers only after
/// the local WAL is flushed (`on` and `remote_apply` with synchronous
/// standbys wait for more).
const DURABLE_COMMITS: [&str; 4] = ["local", "remote_write", "on", "remote_apply"];

/// Makes the session's commits durable whatever the server's, database's
/// or role's default says: under `synchronous_commit = off` PostgreSQL
/// answers a `COMMIT` before its WAL is flushed, and daisy would
/// acknowledge crashes and results a server crash then loses. A value in
/// [`DURABLE_COMMITS`] is kept; any other (`off`, or one this version does
/// not know) becomes `on` for the session, with a warning once. Also warns
/// once when the server runs with `fsync = off`, which no session can
/// override.
async fn require_durable_commits(client: &Client) -> Result<(), StorageError> {
    static WARNED_COMMIT: std::sync::Once = std::sync::Once::new();
    static WARNED_FSYNC: std::sync::Once = std::sync::Once::new();
    let row = client
        .query_one(
            "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
            &[],
        )
        .await?;
    let (current, fsync): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    if !DURABLE_COMMITS.contains(&current.as_str()) {
        WARNED_COMMIT.call_once(|| {
            tracing::warn!(
                "PostgreSQL's default synchronous_commit is {current}; daisy's sessions use on, \
                 so that what daisy acknowledges is on disk"
            );
        });
        client.batch_execute("SET synchronous_commit = on").await?;
    }
    if fsync != "on" {
        WARNED_FSYNC.call_once(|| {
            tracing::warn!(
                "PostgreSQL runs with fsync = off: nothing daisy stores there survives a crash \
                 of the machine; set fsync = on in postgresql.conf"
            );
        });
    }
    Ok(())
}

impl PostgresStorage {
    /// Connects and migrates. `url` is a `postgres://` URL or a key=value
    /// string (a `host=/dir` names a unix socket directory).
    pub async fn connect(url: &str) -> Result<PostgresStorage, StorageError> {
        let mut clients = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            clients.push(Mutex::new(connect_one(url).await?));
        }
        // Migrate before the writers start: they prepare statements on the
        // tables the migrations create.
        if let Some(first) = clients.first() {
            migrate(&mut *first.lock().await).await?;
        }
        let rooms = Arc::new(RoomCache::default());
        Ok(PostgresStorage {
            url: url.to_owned(),
            writer: PgWriter::start(url, Arc::clone(&rooms)).await?,
            clients,
            next: AtomicUsize::new(0),
            shared: RwLock::new(connect_one(url).await?),
            rooms,
        })
    }

    async fn shared(&self) -> Result<RwLockReadGuard<'_, Client>, StorageError> {
        {
            let client = self.shared.read().await;
            if !client.is_closed() {
                return Ok(client);
            }
        }
        {
            let mut client = self.shared.write().await;
            if client.is_closed() {
                *client = connect_one(&self.url).await?;
            }
        }
        Ok(self.shared.read().await)
    }

    async fn client(&self) -> Result<MutexGuard<'_, Client>, StorageError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let len = self.clients.len().max(1);
        let mut guard = None;
        for i in 0..len {
            if let Some(slot) = self
                .clients
                .get(start.wrapping_add(i).checked_rem(len).unwrap_or(0))
                && let Ok(g) = slot.try_lock()
            {
                guard = Some(g);
                break;
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => match self.clients.get(start.checked_rem(len).unwrap_or(0)) {
                Some(slot) => slot.lock().await,
                None => return Err(StorageError::Open("no PostgreSQL connections".into())),
            },
        };
        if guard.is_closed() {
            *guard = connect_one(&self.url).await?;
        }
        Ok(guard)
    }
}

/// Applies the missing migrations, under an advisory lock so that replicas
/// starting together do not race.
async fn migrate(client: &mut Client) -> Result<(), StorageError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    super::known_schema(current, MIGRATIONS.len())?;
    for (version, sql) in (1_i64..).zip(MIGRATIONS) {
        if version > current {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                &[&version, &super::now()],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

fn hook_from_row(r: &Row) -> Result<HookRecord, StorageError> {
    let state: String = r.try_get(3)?;
    Ok(HookRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        version: r.try_get(2)?,
        state: HookState::parse(&state)?,
        state_reason: r.try_get(4)?,
        target: TargetKey {
            kind: r.try_get(5)?,
            value: r.try_get(6)?,
        },
        max_reports: r.try_get(7)?,
        max_days: r.try_get(8)?,
        not_after: r.try_get(9)?,
        disk_cap: r.try_get(10)?,
        sha256: r.try_get(11)?,
        created: r.try_get(12)?,
        offered: r.try_get(13)?,
        offers_refused: r.try_get(14)?,
        results: r.try_get(15)?,
        results_refused: r.try_get(16)?,
        bytes: r.try_get(17)?,
        failures: r.try_get(18)?,
    })
}

fn result_from_row(r: &Row) -> Result<HookResult, StorageError> {
    Ok(HookResult {
        oops_id: r.try_get(0)?,
        hook_id: r.try_get(1)?,
        hook_version: r.try_get(2)?,
        bucket: r.try_get(3)?,
        package: r.try_get(4)?,
        received: r.try_get(5)?,
        keys: r.try_get(6)?,
        bytes: r.try_get(7)?,
        failed: r.try_get(8)?,
    })
}

async fn get_hook(c: &impl GenericClient, id: i64) -> Result<Option<HookRecord>, StorageError> {
    let sql = format!("SELECT {HOOK_COLUMNS} FROM hooks WHERE id = $1");
    c.query_opt(&sql, &[&id])
        .await?
        .map(|r| hook_from_row(&r))
        .transpose()
}

async fn audit_in(c: &impl GenericClient, e: &AuditEntry) -> Result<(), StorageError> {
    c.execute(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&e.at, &e.actor, &e.action, &e.subject, &e.detail],
    )
    .await?;
    Ok(())
}

async fn active_for_targets(
    c: &impl GenericClient,
    targets: &[TargetKey],
    now: UnixTime,
) -> Result<Vec<HookRecord>, StorageError> {
    let sql = format!(
        "SELECT {HOOK_COLUMNS} FROM hooks WHERE target_kind = $1 AND target_value = $2 \
         AND state = 'active' AND not_after > $3 ORDER BY id"
    );
    let stmt = c.prepare(&sql).await?;
    let mut out = Vec::new();
    for t in targets {
        for row in c.query(&stmt, &[&t.kind, &t.value, &now]).await? {
            out.push(hook_from_row(&row)?);
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Storage for PostgresStorage {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn insert_oops(&self, oops: NewOops) -> Result<InsertOops, StorageError> {
        self.writer.insert(oops).await
    }

    async fn intake(&self, crash: Intake) -> Result<IntakeOutcome, StorageError> {
        self.writer.intake(crash).await
    }

    async fn oops(&self, id: &str) -> Result<Option<Oops>, StorageError> {
        let client = self.client().await?;
        let sql = format!("SELECT {OOPS_COLUMNS} FROM oops WHERE id = $1");
        let Some(r) = client.query_opt(&sql, &[&id]).await? else {
            return Ok(None);
        };
        Ok(Some(Oops {
            oops: NewOops {
                id: r.try_get(0)?,
                system_id: r.try_get(1)?,
                received: r.try_get(2)?,
                dedup_digest: None,
                crash_time: 0,
                bucket: r.try_get(3)?,
                sas: r.try_get(4)?,
                package: r.try_get(5)?,
                source_package: r.try_get(6)?,
                duplicate_signature: r.try_get(7)?,
                report: r.try_get(8)?,
            },
            core_size: r.try_get(9)?,
        }))
    }

    async fn set_core(&self, id: &str, system_id: &str, size: i64) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE oops SET core_size = $1 WHERE id = $2 AND system_id = $3",
                &[&size, &id, &system_id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn oopses_in_bucket(
        &self,
        bucket: &str,
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM oops WHERE bucket = $1 ORDER BY received DESC, id LIMIT $2",
                &[&bucket, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StorageError::from))
            .collect()
    }

    async fn sas_signature(&self, sas: &str) -> Result<Option<String>, StorageError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT signature FROM sas_signature WHERE sas = $1",
                &[&sas],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    async fn map_sas(
        &self,
        sas: &str,
        signature: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<u64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Held to the commit: a crash writer that parked a crash under this
        // SAS before seeing the mapping re-checks it under the shared lock.
        tx.execute(
            &format!("SELECT pg_advisory_xact_lock({SAS_LOCK})"),
            &[&sas],
        )
        .await?;
        tx.execute(
            "INSERT INTO sas_signature (sas, signature, updated) VALUES ($1, $2, $3) \
             ON CONFLICT (sas) DO UPDATE SET signature = excluded.signature, \
             updated = excluded.updated",
            &[&sas, &signature, &now],
        )
        .await?;
        let moved = tx
            .execute(
                "UPDATE oops SET bucket = $1 WHERE sas = $2 AND bucket IS NULL",
                &[&signature, &sas],
            )
            .await?;
        audit_in(
            &tx,
            &AuditEntry {
                at: now,
                actor: actor.to_owned(),
                action: "sas.map".into(),
                subject: sas.to_owned(),
                detail: signature.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn insert_hook(&self, hook: NewHook) -> Result<HookRecord, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let version = hook.version;
        let id: i64 = tx
            .query_one(
                "INSERT INTO hooks (name, version, state, target_kind, target_value, \
                 max_reports, max_days, not_after, disk_cap, source, bundle, sha256, created) \
                 VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 RETURNING id",
                &[
                    &hook.name,
                    &version,
                    &hook.target.kind,
                    &hook.target.value,
                    &i64::from(hook.max_reports),
                    &i64::from(hook.max_days),
                    &hook.not_after,
                    &hook.disk_cap,
                    &hook.source,
                    &hook.bundle,
                    &hook.sha256,
                    &hook.created,
                ],
            )
            .await?
            .try_get(0)?;
        audit_in(
            &tx,
            &AuditEntry {
                at: hook.created,
                actor: hook.actor.clone(),
                action: "hook.activate".into(),
                subject: format!("{id} {} v{version}", hook.name),
                detail: hook.source.clone(),
            },
        )
        .await?;
        // A new version replaces the active ones of its name.
        let reason = super::superseded_reason(version);
        let superseded = tx
            .query(
                "UPDATE hooks SET state = 'disabled', state_reason = $1 \
                 WHERE name = $2 AND state = 'active' AND id <> $3 RETURNING id",
                &[&reason, &hook.name, &id],
            )
            .await?;
        for row in superseded {
            let old: i64 = row.try_get(0)?;
            audit_in(&tx, &super::superseded_audit(&hook, old, &reason)).await?;
        }
        let record = get_hook(&tx, id)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("hook {id} vanished")))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn hook(&self, id: i64) -> Result<Option<HookRecord>, StorageError> {
        let client = self.shared().await?;
        get_hook(&*client, id).await
    }

    async fn hook_room(&self, id: i64) -> Result<Option<HookRoom>, StorageError> {
        if let Some(room) = self.rooms.fresh(id) {
            return Ok(Some(room));
        }
        let client = self.shared().await?;
        // Typed: one round trip, no separate `Parse` and describe.
        let room = client
            .query_typed_opt(
                "SELECT disk_cap, bytes FROM hooks WHERE id = $1",
                &[(&id, Type::INT8)],
            )
            .await?
            .map(|r| {
                Ok::<_, StorageError>(HookRoom {
                    disk_cap: r.try_get(0)?,
                    bytes: r.try_get(1)?,
                })
            })
            .transpose()?;
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
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let counted = tx
            .execute(
                "UPDATE hooks SET results_refused = results_refused + 1 WHERE id = $1 \
                 AND EXISTS (SELECT 1 FROM hook_tokens WHERE token_hash = $2 \
                 AND hook_id = $1 AND oops_id = $3 AND expires > $4 AND NOT used)",
                &[&hook_id, &token_hash, &oops_id, &now],
            )
            .await?
            == 1;
        if counted {
            // The result writer's statement, for a batch of one.
            tx.execute(
                super::postgres_batch::BUMP_STATS,
                &[
                    &vec![super::day_of(now)],
                    &vec![hook_id],
                    &vec!["results_refused"],
                    &vec![1_i64],
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(counted)
    }

    async fn result_token(
        &self,
        token_hash: &str,
        hook_id: i64,
        oops_id: &str,
        now: UnixTime,
    ) -> Result<TokenCheck, StorageError> {
        let client = self.shared().await?;
        let used: Option<bool> = client
            .query_typed(
                "SELECT used FROM hook_tokens WHERE token_hash = $1 \
                 AND hook_id = $2 AND oops_id = $3 AND expires > $4",
                &[
                    (&token_hash, Type::TEXT),
                    (&hook_id, Type::INT8),
                    (&oops_id, Type::TEXT),
                    (&now, Type::INT8),
                ],
            )
            .await?
            .first()
            .map(|r| r.try_get(0))
            .transpose()?;
        Ok(TokenCheck::of_row(used))
    }

    async fn hook_bundle(&self, id: i64, now: UnixTime) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT bundle FROM hooks WHERE id = $1 AND state = 'active' AND not_after > $2",
                &[&id, &now],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    async fn hooks(&self) -> Result<Vec<HookRecord>, StorageError> {
        let client = self.client().await?;
        let sql = format!("SELECT {HOOK_COLUMNS} FROM hooks ORDER BY id DESC");
        client
            .query(&sql, &[])
            .await?
            .iter()
            .map(hook_from_row)
            .collect()
    }

    async fn set_hook_state(
        &self,
        id: i64,
        state: HookState,
        reason: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE hooks SET state = $1, state_reason = $2 WHERE id = $3 AND state = 'active'",
                &[&state.as_str(), &reason, &id],
            )
            .await?;
        if n == 1 {
            audit_in(
                &tx,
                &AuditEntry {
                    at: now,
                    actor: actor.to_owned(),
                    action: format!("hook.{}", state.as_str()),
                    subject: id.to_string(),
                    detail: reason.to_owned(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn matching_hooks(
        &self,
        targets: &[TargetKey],
        now: UnixTime,
    ) -> Result<Vec<HookRecord>, StorageError> {
        let client = self.client().await?;
        active_for_targets(&*client, targets, now).await
    }

    async fn offer_hooks(&self, offer: OfferRequest) -> Result<Vec<HookRecord>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut candidates = active_for_targets(&tx, &offer.targets, offer.now).await?;
        candidates.sort_by_key(|h| h.id);
        candidates.dedup_by_key(|h| h.id);
        let multiple = i64::from(offer.offer_multiple);
        let mut offered = Vec::new();
        for hook in candidates {
            // The row lock taken by the UPDATEs of `hooks` below serialises
            // concurrent offers of one hook; the bound is soft (a token may
            // expire unused). Lock it first, so that two lists for one OOPS
            // cannot both find no token to retire.
            tx.execute("SELECT 1 FROM hooks WHERE id = $1 FOR UPDATE", &[&hook.id])
                .await?;
            // A second list for the same OOPS retires the token of the
            // first: one outstanding token per (OOPS, hook), so asking again
            // cannot use up the hook's offer bound.
            let retired = tx
                .execute(
                    "UPDATE hook_tokens SET expires = $3 WHERE hook_id = $1 AND oops_id = $2 \
                     AND NOT used AND expires > $3",
                    &[&hook.id, &offer.oops_id, &offer.now],
                )
                .await?;
            // A re-offer replaces its token, so it is not held to the bound.
            let claimed = tx
                .execute(
                    "UPDATE hooks SET offered = offered + 1 WHERE id = $1 \
                     AND state = 'active' AND not_after > $2 \
                     AND ($5 OR (SELECT COUNT(*) FROM hook_tokens t WHERE t.hook_id = hooks.id \
                      AND NOT t.used AND t.expires > $2) + results < max_reports * $3) \
                     AND NOT EXISTS (SELECT 1 FROM hook_results r \
                      WHERE r.hook_id = hooks.id AND r.oops_id = $4)",
                    &[
                        &hook.id,
                        &offer.now,
                        &multiple,
                        &offer.oops_id,
                        &(retired > 0),
                    ],
                )
                .await?;
            if claimed == 1 {
                tx.execute(
                    "INSERT INTO hook_tokens (token_hash, hook_id, oops_id, issued, expires) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &offer.token_hash,
                        &hook.id,
                        &offer.oops_id,
                        &offer.now,
                        &offer.expires,
                    ],
                )
                .await?;
                offered.push(hook);
            } else {
                tx.execute(
                    "UPDATE hooks SET offers_refused = offers_refused + 1 WHERE id = $1",
                    &[&hook.id],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(offered)
    }

    async fn accept_result(&self, result: NewResult) -> Result<ResultOutcome, StorageError> {
        self.writer.accept_result(result).await
    }

    async fn hook_results(
        &self,
        hook_id: i64,
        limit: i64,
    ) -> Result<Vec<HookResult>, StorageError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {RESULT_COLUMNS} FROM hook_results WHERE hook_id = $1 \
             ORDER BY received DESC, oops_id LIMIT $2"
        );
        client
            .query(&sql, &[&hook_id, &limit])
            .await?
            .iter()
            .map(result_from_row)
            .collect()
    }

    async fn oops_results(&self, oops_id: &str) -> Result<Vec<HookResult>, StorageError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {RESULT_COLUMNS} FROM hook_results WHERE oops_id = $1 ORDER BY hook_id"
        );
        client
            .query(&sql, &[&oops_id])
            .await?
            .iter()
            .map(result_from_row)
            .collect()
    }

    async fn add_user(
        &self,
        name: &str,
        team: &str,
        token_hash: &str,
        actor: &str,
        now: UnixTime,
    ) -> Result<User, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO users (name, team, created) VALUES ($1, $2, $3) RETURNING id",
                &[&name, &team, &now],
            )
            .await?
            .try_get(0)?;
        tx.execute(INSERT_TOKEN_POSTGRES, &[&token_hash, &id, &now])
            .await?;
        audit_in(
            &tx,
            &AuditEntry::of_user(now, actor, "user.add", name, format!("team {team}")),
        )
        .await?;
        tx.commit().await?;
        Ok(User {
            id,
            name: name.to_owned(),
            team: team.to_owned(),
        })
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT u.id, u.name, u.team FROM api_tokens t JOIN users u \
                 ON u.id = t.user_id WHERE t.token_hash = $1 AND t.revoked IS NULL",
                &[&token_hash],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(User {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            team: r.try_get(2)?,
        }))
    }

    async fn user_count(&self) -> Result<i64, StorageError> {
        let client = self.client().await?;
        Ok(client
            .query_one("SELECT COUNT(*) FROM users", &[])
            .await?
            .try_get(0)?)
    }

    async fn users(&self) -> Result<Vec<UserSummary>, StorageError> {
        let client = self.client().await?;
        client
            .query(USERS, &[])
            .await?
            .iter()
            .map(|r| {
                Ok(UserSummary {
                    name: r.try_get(0)?,
                    team: r.try_get(1)?,
                    created: r.try_get(2)?,
                    active_tokens: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn replace_tokens(
        &self,
        name: &str,
        new_token_hash: Option<&str>,
        actor: &str,
        now: UnixTime,
    ) -> Result<Option<u64>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt("SELECT id FROM users WHERE name = $1 FOR UPDATE", &[&name])
            .await?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0)?;
        let revoked = tx
            .execute(
                "UPDATE api_tokens SET revoked = $1 WHERE user_id = $2 AND revoked IS NULL",
                &[&now, &id],
            )
            .await?;
        audit_in(
            &tx,
            &AuditEntry::of_user(
                now,
                actor,
                "user.revoke",
                name,
                format!("{revoked} token(s)"),
            ),
        )
        .await?;
        if let Some(hash) = new_token_hash {
            tx.execute(INSERT_TOKEN_POSTGRES, &[&hash, &id, &now])
                .await?;
            audit_in(
                &tx,
                &AuditEntry::of_user(now, actor, "user.token", name, "new token".into()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn audit(&self, entry: AuditEntry) -> Result<(), StorageError> {
        let client = self.client().await?;
        audit_in(&*client, &entry).await
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT at, actor, action, subject, detail FROM audit_log \
                 ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    subject: r.try_get(3)?,
                    detail: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn daily_stat(&self, day: i64, hook_id: i64, metric: &str) -> Result<i64, StorageError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT value FROM daily_stats WHERE day = $1 AND hook_id = $2 AND metric = $3",
                &[&day, &hook_id, &metric],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn totals(&self) -> Result<Totals, StorageError> {
        let client = self.client().await?;
        let r = client
            .query_one(
                "SELECT (SELECT COUNT(*) FROM oops), \
                 (SELECT COUNT(*) FROM hooks WHERE state = 'active' AND not_after > $1), \
                 (SELECT COUNT(*) FROM hook_results)",
                &[&super::now()],
            )
            .await?;
        Ok(Totals {
            oopses: r.try_get(0)?,
            hooks_active: r.try_get(1)?,
            results: r.try_get(2)?,
        })
    }
}
