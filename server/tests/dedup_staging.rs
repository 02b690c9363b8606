//! SQLite's duplicate check stages new keys in `oops_dedup_recent` and
//! merges them into `oops_dedup` in sorted runs (storage/sqlite_dedup.rs).
//! A re-upload must be "already reported" at every stage of a key's life:
//! staged, merged, after a restart, seen from a second writer on the same
//! file (a second daisy process), and a crash whose transaction rolled back
//! must leave no key behind, and no bucket id in the writer's memory
//! (storage/bucket_ids.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod harness;

use std::path::Path;
use std::sync::Arc;

use daisy::storage::{InsertOops, NewOops, SQLITE_DEDUP_MERGE_AT, SqliteStorage, Storage};
use harness::crashes::NOW;
use rusqlite::Connection;
use sha2::Digest;

/// The OOPS id of the crash a test calls `name`: a canonical UUID, as
/// daisy hands out, so the duplicate tables store it as 16 bytes (migration
/// 0008); text ids take the other path, covered by `sqlite_migration.rs`.
fn oops_id(name: &str) -> String {
    let hash = sha2::Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 16];
    for (out, byte) in bytes.iter_mut().zip(hash.iter()) {
        *out = *byte;
    }
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

fn crash(id: &str, system: &str, digest: &str) -> NewOops {
    harness::crashes::crash(&oops_id(id), system, digest, NOW - 60)
}

/// Rows in (`oops_dedup`, `oops_dedup_recent`).
fn key_rows(path: &Path) -> (i64, i64) {
    let conn = Connection::open(path).unwrap();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    (count("oops_dedup"), count("oops_dedup_recent"))
}

/// Stores enough distinct crashes, concurrently so that they share
/// batches, for the staged keys to reach the merge threshold, then one more
/// on its own: a merge happens at the start of the first batch that finds
/// the threshold reached, which the concurrent ones may all have missed.
async fn fill_past_merge(storage: &Arc<SqliteStorage>, prefix: &str) {
    let n = usize::try_from(SQLITE_DEDUP_MERGE_AT).unwrap() + 10;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let storage = Arc::clone(storage);
        let oops = crash(
            &format!("{prefix}-{i}"),
            &format!("{prefix}-system-{i}"),
            "digest",
        );
        tasks.spawn(async move { storage.insert_oops(oops).await });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert_eq!(outcome.unwrap().unwrap(), InsertOops::Inserted);
    }
    let last = crash(
        &format!("{prefix}-last"),
        &format!("{prefix}-last"),
        "digest",
    );
    assert_eq!(
        storage.insert_oops(last).await.unwrap(),
        InsertOops::Inserted
    );
}

async fn assert_duplicate(storage: &dyn Storage, id: &str, system: &str, digest: &str, of: &str) {
    assert_eq!(
        storage
            .insert_oops(crash(id, system, digest))
            .await
            .unwrap(),
        InsertOops::Duplicate(oops_id(of)),
        "{id} should be a duplicate of {of}"
    );
}

#[tokio::test]
async fn reupload_is_caught_while_staged_after_the_merge_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    let storage = Arc::new(SqliteStorage::open(&path).await.unwrap());

    assert_eq!(
        storage
            .insert_oops(crash("a", "system-a", "d"))
            .await
            .unwrap(),
        InsertOops::Inserted
    );
    assert_duplicate(&*storage, "a-again", "system-a", "d", "a").await;
    assert_eq!(key_rows(&path), (0, 1), "the key is staged, not merged");

    fill_past_merge(&storage, "fill").await;
    let (merged, staged) = key_rows(&path);
    assert!(
        merged >= SQLITE_DEDUP_MERGE_AT,
        "a merge moved the staged keys: {merged} merged, {staged} staged"
    );
    // 1 + MERGE_AT + 11 keys; the merge keeps its last row staged as well.
    assert_eq!(merged + staged, 1 + SQLITE_DEDUP_MERGE_AT + 11 + 1);
    assert_duplicate(&*storage, "a-merged", "system-a", "d", "a").await;

    // A key staged after the merge survives a restart: the new writer
    // reads the staged table back.
    assert_eq!(
        storage
            .insert_oops(crash("b", "system-b", "d"))
            .await
            .unwrap(),
        InsertOops::Inserted
    );
    drop(storage);
    let storage = SqliteStorage::open(&path).await.unwrap();
    assert_duplicate(&storage, "b-again", "system-b", "d", "b").await;
    assert_duplicate(&storage, "a-restarted", "system-a", "d", "a").await;
    assert_duplicate(&storage, "fill-again", "fill-system-7", "digest", "fill-7").await;
    // Same system, another crash: not a duplicate.
    assert_eq!(
        storage
            .insert_oops(crash("a2", "system-a", "other"))
            .await
            .unwrap(),
        InsertOops::Inserted
    );
}

#[tokio::test]
async fn two_writers_on_one_file_see_each_others_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    // Each storage has its own writer thread and connection, as two daisy
    // processes on one data directory would.
    let one = Arc::new(SqliteStorage::open(&path).await.unwrap());
    let two = Arc::new(SqliteStorage::open(&path).await.unwrap());

    assert_eq!(
        one.insert_oops(crash("a", "system-a", "d")).await.unwrap(),
        InsertOops::Inserted
    );
    assert_duplicate(&*two, "a-via-two", "system-a", "d", "a").await;

    // One merges; the other's memory of the merged keys goes stale but
    // the keys are found in oops_dedup.
    fill_past_merge(&one, "fill").await;
    assert_duplicate(&*two, "a-after-merge", "system-a", "d", "a").await;
    assert_duplicate(&*two, "fill-via-two", "fill-system-3", "digest", "fill-3").await;

    // Keys the second writer stages after the first one's merge are caught
    // by the first (it reads what was appended after the seq it saw).
    assert_eq!(
        two.insert_oops(crash("c", "system-c", "d")).await.unwrap(),
        InsertOops::Inserted
    );
    assert_duplicate(&*one, "c-via-one", "system-c", "d", "c").await;

    // And the other way round, after the second writer merges.
    fill_past_merge(&two, "more").await;
    assert_eq!(
        one.insert_oops(crash("e", "system-e", "d")).await.unwrap(),
        InsertOops::Inserted
    );
    assert_duplicate(&*two, "e-via-two", "system-e", "d", "e").await;
    assert_duplicate(&*one, "more-via-one", "more-system-5", "digest", "more-5").await;
}

#[tokio::test]
async fn a_crash_whose_write_failed_leaves_no_staged_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    let storage = SqliteStorage::open(&path).await.unwrap();
    assert_eq!(
        storage
            .insert_oops(crash("x", "system-x", "d1"))
            .await
            .unwrap(),
        InsertOops::Inserted
    );
    // Same OOPS id, new key: the key is staged, then the row insert fails
    // on the id, and the job is rolled back.
    let failed = storage.insert_oops(crash("x", "system-x", "d2")).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        key_rows(&path),
        (0, 1),
        "the failed crash's key is not staged"
    );

    // The crash, sent again under a fresh id, is new: the rolled-back key
    // left the writer's memory too.
    assert_eq!(
        storage
            .insert_oops(crash("y", "system-x", "d2"))
            .await
            .unwrap(),
        InsertOops::Inserted
    );
    assert_duplicate(&storage, "y-again", "system-x", "d2", "y").await;
}

#[tokio::test]
async fn a_bucket_id_made_by_a_failed_crash_is_not_reused_for_its_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let in_bucket = |id: &str, system: &str, digest: &str, bucket: &str| {
        let mut oops = crash(id, system, digest);
        oops.bucket = Some(bucket.into());
        oops
    };
    storage
        .insert_oops(in_bucket("x", "system-x", "d1", "first"))
        .await
        .unwrap();
    // A new signature gets its id inside the failing job's transaction;
    // the row insert then fails on the OOPS id and the job rolls back.
    let failed = storage
        .insert_oops(in_bucket("x", "system-x", "d2", "rolled-back"))
        .await;
    assert!(failed.is_err(), "{failed:?}");
    // The id SQLite hands out next goes to another signature; a writer that
    // still remembered the rolled-back one would file the next crash of
    // "rolled-back" under "other".
    storage
        .insert_oops(in_bucket("y", "system-y", "d3", "other"))
        .await
        .unwrap();
    storage
        .insert_oops(in_bucket("z", "system-z", "d4", "rolled-back"))
        .await
        .unwrap();
    assert_eq!(
        storage.oopses_in_bucket("other", 10).await.unwrap(),
        [oops_id("y")]
    );
    assert_eq!(
        storage.oopses_in_bucket("rolled-back", 10).await.unwrap(),
        [oops_id("z")]
    );
    assert_eq!(
        storage.oopses_in_bucket("first", 10).await.unwrap(),
        [oops_id("x")]
    );
}
