//! The SQLite writer answers only after the WAL holding a batch is synced
//! (storage/wal_sync.rs). When that sync cannot be made, what reached the
//! disk is unknown, so nothing more may be acknowledged: the waiting request
//! and every later one fail with an error that says to restart daisy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use daisy::storage::{InsertOops, NewOops, SqliteStorage, Storage};

fn crash(id: &str) -> NewOops {
    NewOops {
        id: id.into(),
        system_id: format!("system-{id}"),
        received: 1_800_000_000,
        dedup_digest: Some("digest".into()),
        crash_time: 1_800_000_000,
        bucket: Some("bucket".into()),
        sas: None,
        package: Some("foo".into()),
        source_package: None,
        duplicate_signature: None,
        report: vec![5, 0, 0, 0, 0],
    }
}

#[tokio::test]
async fn a_failed_wal_sync_stops_every_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    let storage = SqliteStorage::open(&path).await.unwrap();
    assert_eq!(
        storage.insert_oops(crash("a")).await.unwrap(),
        InsertOops::Inserted
    );
    storage.check_writable().unwrap();

    // The WAL is deleted under the running writer (a stray `rm`, a backup
    // restored over a live database): SQLite keeps writing to the file it
    // has open, which no sync can make reachable any more.
    std::fs::remove_file(dir.path().join("daisy.sqlite3-wal")).unwrap();
    for id in ["b", "c"] {
        let refused = storage.insert_oops(crash(id)).await;
        let message = match refused {
            Err(e) => e.to_string(),
            Ok(outcome) => panic!("{id} was acknowledged without a sync: {outcome:?}"),
        };
        assert!(message.contains("restart daisy"), "{message}");
    }
    // What `/healthz` asks: the server reports itself unhealthy.
    let unwritable = storage.check_writable().unwrap_err().to_string();
    assert!(unwritable.contains("restart daisy"), "{unwritable}");
}
