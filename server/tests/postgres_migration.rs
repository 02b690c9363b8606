//! An existing PostgreSQL database keeps working across migrations 0005
//! (byte-order collation on the key columns, no foreign keys to `hooks` on
//! `hook_results` and `hook_tokens`) and 0006 (the unused `oops_package`
//! index dropped): a database written at schema 4 must
//! open, keep its crashes, duplicates, tokens and results, and go on
//! taking crashes and results with the same answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod harness;

use daisy::storage::{
    InsertOops, NewOops, NewResult, PostgresStorage, ResultOutcome, Storage, day_of,
};
use harness::Postgres;
use tokio_postgres::Client;

use harness::crashes::NOW;

/// Migrations 1 to 4 exactly as a daisy at schema 4 applied them.
const SCHEMA_4: [&str; 4] = [
    include_str!("../src/storage/migrations/postgres_0001_initial.sql"),
    include_str!("../src/storage/migrations/postgres_0002_hook_generation.sql"),
    include_str!("../src/storage/migrations/postgres_0003_cheaper_intake.sql"),
    include_str!("../src/storage/migrations/postgres_0004_dedup_by_crash_time.sql"),
];

/// Writes a database as a daisy at schema 4 left it: crashes with their
/// duplicate keys (one filed before 0004, under crash time 0), a hook
/// with two tokens, one of them used by a stored result.
async fn schema_4_database(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
        )
        .await
        .unwrap();
    for (version, sql) in (1_i64..).zip(SCHEMA_4) {
        client.batch_execute(sql).await.unwrap();
        client
            .execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                &[&version, &NOW],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO oops (id, system_id, received, bucket, package, report) VALUES \
                 ('old-a', 'system-a', 1, 'bucket', 'foo', '\\x0500000000'), \
                 ('old-b', 'system-b', 1, 'bucket', 'foo', '\\x0500000000'), \
                 ('old-c', 'system-c', 1, 'bucket', 'foo', '\\x0500000000'); \
             INSERT INTO oops_dedup (crash_time, system_id, digest, oops_id) VALUES \
                 (0, 'system-a', 'digest-a', 'old-a'), \
                 (1700000000, 'system-b', 'digest-b', 'old-b'); \
             INSERT INTO hooks (name, version, state, target_kind, target_value, max_reports, \
                 max_days, not_after, disk_cap, source, bundle, sha256, created, results, bytes) \
                 VALUES ('old', 1, 'active', 'package', 'foo', 3, 30, 1900000000, 1000000, \
                 '', '\\x', '', 1, 1, 5); \
             INSERT INTO hook_tokens (token_hash, hook_id, oops_id, issued, expires, used) VALUES \
                 ('hash-b', 1, 'old-b', 1, 1900000000, TRUE), \
                 ('hash-c', 1, 'old-c', 1, 1900000000, FALSE); \
             INSERT INTO hook_results (oops_id, hook_id, hook_version, bucket, package, \
                 received, keys, bytes, failed) \
                 VALUES ('old-b', 1, 1, 'bucket', 'foo', 1, '\\x0500000000', 5, FALSE);",
        )
        .await
        .unwrap();
}

fn crash(id: &str, system: &str, digest: &str, crash_time: i64) -> NewOops {
    harness::crashes::crash(id, system, digest, crash_time)
}

fn result(oops: &str, token_hash: &str) -> NewResult {
    NewResult {
        token_hash: token_hash.into(),
        hook_id: 1,
        oops_id: oops.into(),
        keys: vec![5, 0, 0, 0, 0],
        bytes: 5,
        failed: false,
        now: NOW,
    }
}

#[tokio::test]
async fn a_schema_4_database_keeps_its_crashes_tokens_and_results_after_0005() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.fresh_database().await;
    let client = harness::postgres::client(&url).await;
    schema_4_database(&client).await;

    let storage = PostgresStorage::connect(&url).await.unwrap();

    let version: i64 = client
        .query_one("SELECT MAX(version) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 7);
    let oops_indexes: Vec<String> = client
        .query(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'oops' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        oops_indexes,
        ["oops_bucket", "oops_parked_sas", "oops_pkey"],
        "migration 0006 dropped oops_package"
    );
    let collation: String = client
        .query_one(
            "SELECT collation_name FROM information_schema.columns \
             WHERE table_name = 'oops_dedup' AND column_name = 'system_id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(collation, "C", "the duplicate key compares bytes");
    let foreign_keys: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f' \
             AND conrelid IN ('hook_results'::regclass, 'hook_tokens'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(foreign_keys, 0);

    // The old crashes are there and still catch their re-uploads, the one
    // filed before 0004 included.
    assert_eq!(
        storage.oops("old-a").await.unwrap().unwrap().oops.id,
        "old-a"
    );
    assert_eq!(
        storage
            .insert_oops(crash("again-a", "system-a", "digest-a", NOW - 60))
            .await
            .unwrap(),
        InsertOops::Duplicate("old-a".into())
    );
    assert_eq!(
        storage
            .insert_oops(crash("again-b", "system-b", "digest-b", 1_700_000_000))
            .await
            .unwrap(),
        InsertOops::Duplicate("old-b".into())
    );
    assert_eq!(
        storage
            .insert_oops(crash("new", "system-b", "digest-new", NOW - 60))
            .await
            .unwrap(),
        InsertOops::Inserted
    );
    assert_eq!(
        storage.oopses_in_bucket("bucket", 10).await.unwrap().len(),
        4
    );

    // The used token and the stored result keep refusing a second upload;
    // the unused token is still good; the hook's counters go on from
    // where they were.
    assert_eq!(
        storage
            .accept_result(result("old-b", "hash-b"))
            .await
            .unwrap(),
        ResultOutcome::Duplicate
    );
    assert_eq!(
        storage
            .accept_result(result("old-c", "hash-c"))
            .await
            .unwrap(),
        ResultOutcome::Accepted { completed: false }
    );
    assert_eq!(
        storage
            .accept_result(result("old-c", "hash-c"))
            .await
            .unwrap(),
        ResultOutcome::Duplicate
    );
    assert_eq!(
        storage
            .accept_result(result("old-a", "hash-x"))
            .await
            .unwrap(),
        ResultOutcome::UnknownToken
    );
    let results = storage.oops_results("old-c").await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].bucket.as_deref(), Some("bucket"));
    let hook = storage.hook(1).await.unwrap().unwrap();
    assert_eq!((hook.results, hook.bytes, hook.results_refused), (2, 10, 2));
    assert_eq!(storage.hook_results(1, 10).await.unwrap().len(), 2);
    assert_eq!(
        storage.daily_stat(day_of(NOW), 1, "results").await.unwrap(),
        1
    );
}

/// A database upgraded by a newer daisy is refused, not half-used.
#[tokio::test]
async fn a_database_newer_than_daisy_is_refused() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.fresh_database().await;
    drop(PostgresStorage::connect(&url).await.unwrap());
    let client = harness::postgres::client(&url).await;
    client
        .execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (999, $1)",
            &[&NOW],
        )
        .await
        .unwrap();
    let Err(error) = PostgresStorage::connect(&url).await else {
        panic!("a database at schema 999 was opened");
    };
    let message = error.to_string();
    assert!(message.contains("schema 999"), "{message}");
}
