//! An existing SQLite database keeps its crashes across schema upgrades:
//! migration 0003 rebuilds `oops_dedup` (WITHOUT ROWID) and drops the
//! unused `oops_system` index, 0004 leads its key with the crash time, 0005
//! stages new keys in `oops_dedup_recent` and drops the unused
//! `oops_package` index, 0006 adds the SAS generation that the writer's SAS
//! cache follows, 0007 gives each bucket an id and indexes crashes by it,
//! 0008 stores duplicate keys as 16-byte hashes and UUID ids as bytes; a
//! database written at schema 2 must open, still answer "already reported"
//! for its old crashes, find them in their bucket, and keep working. A
//! database at schema 7 keeps its merged and its staged keys through 0008,
//! and a database newer than daisy knows is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod harness;

use daisy::storage::{InsertOops, NewOops, SqliteStorage, Storage};
use rusqlite::{Connection, params};

use harness::crashes::NOW;

/// Writes a database exactly as a daisy at schema 2 left it.
fn schema_2_database(path: &std::path::Path, rows: usize) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )
    .unwrap();
    conn.execute_batch(include_str!(
        "../src/storage/migrations/sqlite_0001_initial.sql"
    ))
    .unwrap();
    conn.execute_batch(include_str!(
        "../src/storage/migrations/sqlite_0002_hook_generation.sql"
    ))
    .unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied) VALUES (1, ?1), (2, ?1)",
        params![NOW],
    )
    .unwrap();
    for i in 0..rows {
        let (id, system) = (format!("old-{i}"), format!("system-{}", i % 7));
        conn.execute(
            "INSERT INTO oops (id, system_id, received, bucket, package, report) \
             VALUES (?1, ?2, ?3, 'bucket', 'foo', x'0500000000')",
            params![id, system, NOW],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO oops_dedup (system_id, digest, oops_id) VALUES (?1, ?2, ?3)",
            params![system, format!("digest-{i}"), id],
        )
        .unwrap();
    }
}

fn crash(id: &str, system: &str, digest: &str) -> NewOops {
    harness::crashes::crash(id, system, digest, 0)
}

#[tokio::test]
async fn a_schema_2_database_keeps_its_crashes_and_duplicates_after_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    schema_2_database(&path, 500);

    let storage = SqliteStorage::open(&path).await.expect("open and migrate");
    // Every old (system, digest) pair is still "already reported", also
    // when the re-upload's `Date` gives it a crash time (old rows have 0).
    for i in [0_usize, 1, 250, 499] {
        let mut again = crash(
            &format!("new-dup-{i}"),
            &format!("system-{}", i % 7),
            &format!("digest-{i}"),
        );
        again.crash_time = if i % 2 == 0 { 0 } else { NOW - 3_600 };
        assert_eq!(
            storage.insert_oops(again).await.unwrap(),
            InsertOops::Duplicate(format!("old-{i}"))
        );
    }
    // New crashes are stored and deduplicated in the rebuilt table.
    let mut fresh = crash("new-1", "system-0", "digest-new");
    fresh.crash_time = NOW - 60;
    assert_eq!(
        storage.insert_oops(fresh.clone()).await.unwrap(),
        InsertOops::Inserted
    );
    let mut again = fresh;
    again.id = "new-2".into();
    assert_eq!(
        storage.insert_oops(again).await.unwrap(),
        InsertOops::Duplicate("new-1".into())
    );
    assert_eq!(storage.totals().await.unwrap().oopses, 501);
    // The old crashes are found in their bucket through its new id, next to
    // the new one, newest first.
    let in_bucket = storage.oopses_in_bucket("bucket", 1_000).await.unwrap();
    assert_eq!(in_bucket.len(), 501);
    assert_eq!(in_bucket[0], "new-1");
    assert!(in_bucket.contains(&"old-499".to_owned()));
    let old = storage
        .oops("old-42")
        .await
        .unwrap()
        .expect("old crash kept");
    assert_eq!(old.oops.system_id, "system-0");
    assert!(storage.set_core("old-42", "system-0", 7).await.unwrap());
    drop(storage);

    let conn = Connection::open(&path).unwrap();
    let dedup_sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'oops_dedup'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(dedup_sql.contains("WITHOUT ROWID"), "{dedup_sql}");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM oops_dedup", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 500, "the old keys moved over");
    let staged: i64 = conn
        .query_row("SELECT COUNT(*) FROM oops_dedup_recent", [], |r| r.get(0))
        .unwrap();
    assert_eq!(staged, 1, "the one new key is staged");
    for dropped in ["oops_system", "oops_package", "oops_bucket"] {
        let index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = ?1",
                [dropped],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0, "{dropped}");
    }
    let version: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, 9);
    // The old rows were not rewritten: they are found through the partial
    // text index, the new one through its bucket's id.
    let (legacy, linked): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM oops WHERE bucket_id IS NULL), \
                    (SELECT COUNT(*) FROM oops o JOIN buckets b ON b.id = o.bucket_id \
                     WHERE b.signature = o.bucket)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((legacy, linked), (500, 1));
    let sas_generation: i64 = conn
        .query_row("SELECT value FROM sas_generation WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(sas_generation, 0);
    let times: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM oops_dedup_recent WHERE crash_time = ?1",
            [NOW - 60],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(times, 1, "the new crash is filed under its crash time");
}

/// The migrations up to 0007, as files.
const UP_TO_7: [&str; 7] = [
    include_str!("../src/storage/migrations/sqlite_0001_initial.sql"),
    include_str!("../src/storage/migrations/sqlite_0002_hook_generation.sql"),
    include_str!("../src/storage/migrations/sqlite_0003_cheaper_intake.sql"),
    include_str!("../src/storage/migrations/sqlite_0004_dedup_by_crash_time.sql"),
    include_str!("../src/storage/migrations/sqlite_0005_staged_dedup.sql"),
    include_str!("../src/storage/migrations/sqlite_0006_sas_generation.sql"),
    include_str!("../src/storage/migrations/sqlite_0007_bucket_ids.sql"),
];

/// A merged key, a staged key (seq 41) and a staged key whose OOPS id is
/// not a UUID, as a daisy at schema 7 wrote them.
fn schema_7_database(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )
    .unwrap();
    for (version, sql) in (1_i64..).zip(UP_TO_7) {
        conn.execute_batch(sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, NOW],
        )
        .unwrap();
    }
    conn.execute_batch(&format!(
        "INSERT INTO oops_dedup (crash_time, system_id, digest, oops_id) \
             VALUES ({merged_time}, 'system-m', 'digest-m', '{MERGED}'); \
         INSERT INTO oops_dedup_recent (seq, crash_time, system_id, digest, oops_id) \
             VALUES (41, {staged_time}, 'system-s', 'digest-s', '{STAGED}'), \
                    (42, {staged_time}, 'system-t', 'digest-t', 'not-a-uuid');",
        merged_time = NOW - 600,
        staged_time = NOW - 60,
    ))
    .unwrap();
}

const MERGED: &str = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
const STAGED: &str = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c";

#[tokio::test]
async fn a_schema_7_database_keeps_its_merged_and_staged_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    schema_7_database(&path);

    let storage = SqliteStorage::open(&path).await.expect("open and migrate");
    for (system, digest, time, of) in [
        ("system-m", "digest-m", NOW - 600, MERGED),
        ("system-s", "digest-s", NOW - 60, STAGED),
        ("system-t", "digest-t", NOW - 60, "not-a-uuid"),
    ] {
        let mut again = crash("again", system, digest);
        again.crash_time = time;
        assert_eq!(
            storage.insert_oops(again).await.unwrap(),
            InsertOops::Duplicate(of.into()),
            "{system}"
        );
    }
    // Another system's same digest is not a duplicate; it is staged after
    // the old seqs.
    let mut other = crash("other", "system-x", "digest-m");
    other.crash_time = NOW - 600;
    assert_eq!(
        storage.insert_oops(other).await.unwrap(),
        InsertOops::Inserted
    );
    drop(storage);

    let conn = Connection::open(&path).unwrap();
    let forms: Vec<(String, i64, String)> = conn
        .prepare(
            "SELECT typeof(key_hash), length(key_hash), typeof(oops_id) FROM oops_dedup \
             UNION ALL SELECT typeof(key_hash), length(key_hash), typeof(oops_id) \
             FROM oops_dedup_recent ORDER BY 3, 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let blob = ("blob".to_owned(), 16, "blob".to_owned());
    let text = ("blob".to_owned(), 16, "text".to_owned());
    assert_eq!(forms, [blob.clone(), blob.clone(), text.clone(), text]);
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM oops_dedup_recent ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs, [41, 42, 43]);
    let version: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, 9);
}

#[tokio::test]
async fn a_database_newer_than_daisy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    drop(SqliteStorage::open(&path).await.unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied) VALUES (999, ?1)",
        params![NOW],
    )
    .unwrap();
    drop(conn);
    let Err(error) = SqliteStorage::open(&path).await else {
        panic!("a database at schema 999 was opened");
    };
    let message = error.to_string();
    assert!(message.contains("schema 999"), "{message}");
}
