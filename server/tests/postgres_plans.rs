//! The PostgreSQL writers probe the tables by key, one row per crash or
//! result, however the planner saw the tables when it made their plans. A
//! prepared statement's plan is kept per connection; one made while the
//! tables were nearly empty used to scan all of `hook_results` (or every
//! duplicate key) for each batch once they had grown. Here the plans are
//! made on tiny tables, the tables then grow behind daisy's back, and the
//! rows PostgreSQL read for the next crashes and results are counted
//! (`pg_stat_user_tables`): a scan per batch reads the whole table each
//! time, probes read a few rows per request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod harness;

use daisy::storage::{
    InsertOops, NewHook, NewOops, NewResult, PostgresStorage, ResultOutcome, Storage, TargetKey,
};
use harness::Postgres;
use tokio_postgres::Client;

use harness::crashes::NOW;
/// Rows each table grows by behind daisy's back.
const GROWTH: i64 = 20_000;
/// Crashes and results sent, one batch each, before and after the growth.
const BEFORE: usize = 8;
const AFTER: usize = 40;

fn crash(i: usize) -> NewOops {
    harness::crashes::crash(
        &format!("crash-{i}"),
        &format!("system-{i}"),
        &format!("digest-{i}"),
        NOW - 60,
    )
}

fn result(i: usize, hook_id: i64) -> NewResult {
    NewResult {
        token_hash: format!("token-{i}"),
        hook_id,
        oops_id: format!("crash-{i}"),
        keys: vec![5, 0, 0, 0, 0],
        bytes: 5,
        failed: false,
        now: NOW,
    }
}

/// One figure from the statistics collector, read afresh.
async fn fresh_stat(client: &Client, sql: &str) -> i64 {
    client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Rows read from the tables the writers probe, by sequential and index
/// scans, as far as the statistics collector has them.
async fn rows_read(client: &Client) -> i64 {
    fresh_stat(
        client,
        "SELECT COALESCE(SUM(COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0)), 0)::BIGINT \
         FROM pg_stat_user_tables \
         WHERE relname IN ('oops', 'oops_dedup', 'hook_tokens', 'hook_results')",
    )
    .await
}

async fn inserted_results(client: &Client) -> i64 {
    fresh_stat(
        client,
        "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'hook_results'",
    )
    .await
}

/// Stores crash `i` and a result for it, each accepted, for every `i`.
async fn store(storage: &PostgresStorage, hook_id: i64, range: std::ops::Range<usize>) {
    for i in range {
        assert_eq!(
            storage.insert_oops(crash(i)).await.unwrap(),
            InsertOops::Inserted
        );
        assert_eq!(
            storage.accept_result(result(i, hook_id)).await.unwrap(),
            ResultOutcome::Accepted { completed: false }
        );
    }
}

#[tokio::test]
async fn writers_probe_by_key_after_the_tables_grow_under_their_plans() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.fresh_database().await;
    let client = harness::postgres::client(&url).await;
    let storage = PostgresStorage::connect(&url).await.unwrap();
    let hook = storage
        .insert_hook(NewHook {
            name: "probe".into(),
            version: 1,
            target: TargetKey {
                kind: "package".into(),
                value: "foo".into(),
            },
            max_reports: 1000,
            max_days: 30,
            not_after: NOW + 86_400,
            disk_cap: 1 << 30,
            source: String::new(),
            bundle: vec![],
            sha256: String::new(),
            actor: "test".into(),
            created: NOW,
        })
        .await
        .unwrap();
    let total = BEFORE + AFTER;
    client
        .execute(
            "INSERT INTO hook_tokens (token_hash, hook_id, oops_id, issued, expires) \
             SELECT 'token-' || i, $1, 'crash-' || i, $2, $3 FROM generate_series(0, $4) i",
            &[
                &hook.id,
                &NOW,
                &(NOW + 86_400),
                &i32::try_from(total).unwrap(),
            ],
        )
        .await
        .unwrap();
    // The statistics say the tables are (almost) empty, as after an
    // autovacuum ANALYZE of a new database; then each writer runs more
    // than the five batches after which PostgreSQL settles on a plan.
    client.batch_execute("ANALYZE").await.unwrap();
    store(&storage, hook.id, 0..BEFORE).await;

    // The tables grow behind the writers' backs.
    client
        .execute(
            "WITH o AS (INSERT INTO oops (id, system_id, received, package, report) \
                 SELECT 'grown-' || i, 'grown-' || i, $1, 'foo', '\\x0500000000'::bytea \
                 FROM generate_series(1, $2) i RETURNING id), \
             d AS (INSERT INTO oops_dedup (crash_time, system_id, digest, oops_id) \
                 SELECT $1 - 60, id, 'digest', id FROM o), \
             t AS (INSERT INTO hook_tokens (token_hash, hook_id, oops_id, issued, expires) \
                 SELECT 'token-' || id, $3, id, $1, $1 + 86400 FROM o) \
             INSERT INTO hook_results (oops_id, hook_id, hook_version, received, keys, bytes, \
                 failed) SELECT id, $3, 1, $1, '\\x0500000000'::bytea, 5, FALSE FROM o",
            &[&NOW, &i32::try_from(GROWTH).unwrap(), &hook.id],
        )
        .await
        .unwrap();

    store(&storage, hook.id, BEFORE..total).await;
    // The writers' backends report their counts when they exit.
    drop(storage);
    let expected = GROWTH + i64::try_from(total).unwrap();
    let mut waited = 0;
    while inserted_results(&client).await < expected {
        waited += 1;
        assert!(waited < 300, "the writers' statistics never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let read = rows_read(&client).await;
    eprintln!("rows read by the writers: {read}");
    // A handful of rows per crash and per result (each probe reads one);
    // one scan of any grown table per batch would read GROWTH rows.
    let bound = 20 * i64::try_from(total).unwrap();
    assert!(
        read < bound,
        "the writers read {read} rows for {total} crashes and {total} results \
         (bound {bound}): a plan scans a table per batch"
    );
}
