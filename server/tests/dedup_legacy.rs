//! Duplicate keys filed before migration 0004 (crash time 0) keep catching
//! re-uploads whose `Date` now gives them a crash time, on both engines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use daisy::storage::{InsertOops, NewOops, PostgresStorage, SqliteStorage, Storage};
use harness::Postgres;
use sha2::Digest;

use harness::crashes::NOW;

fn crash(id: &str, crash_time: i64) -> NewOops {
    harness::crashes::crash(id, "system-a", "digest-a", crash_time)
}

/// The legacy row is filed under 0; the same crash uploaded again with a
/// crash time is a duplicate of it, and a different crash from the same
/// system is not.
async fn legacy_row_catches_reupload(storage: &dyn Storage) {
    assert_eq!(
        storage.insert_oops(crash("again", NOW - 60)).await.unwrap(),
        InsertOops::Duplicate("legacy".into())
    );
    let mut other = crash("other", NOW - 60);
    other.dedup_digest = Some("digest-b".into());
    assert_eq!(
        storage.insert_oops(other).await.unwrap(),
        InsertOops::Inserted
    );
    assert_eq!(
        storage.insert_oops(crash("twice", 0)).await.unwrap(),
        InsertOops::Duplicate("legacy".into()),
        "a crash without a readable Date meets the legacy row on its own key"
    );
}

#[tokio::test]
async fn sqlite_rows_filed_before_0004_still_catch_reuploads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO oops (id, system_id, received, report) \
             VALUES ('legacy', 'system-a', 1, x'0500000000');",
    )
    .unwrap();
    // The stored key since migration 0008: SHA-256 of system id, NUL,
    // digest, cut to 16 bytes, written here without daisy's code.
    let hash = sha2::Sha256::digest(b"system-a\0digest-a");
    conn.execute(
        "INSERT INTO oops_dedup (crash_time, key_hash, oops_id) VALUES (0, ?1, 'legacy')",
        [&hash[..16]],
    )
    .unwrap();
    legacy_row_catches_reupload(&storage).await;
}

#[tokio::test]
async fn postgres_rows_filed_before_0004_still_catch_reuploads() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.fresh_database().await;
    let storage = PostgresStorage::connect(&url).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute(
            "INSERT INTO oops (id, system_id, received, report) \
                 VALUES ('legacy', 'system-a', 1, '\\x0500000000'); \
             INSERT INTO oops_dedup (crash_time, system_id, digest, oops_id) \
                 VALUES (0, 'system-a', 'digest-a', 'legacy');",
        )
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    legacy_row_catches_reupload(&storage).await;
}
