//! daisy's PostgreSQL sessions commit durably whatever the database's
//! default: with `synchronous_commit = off` a `COMMIT` answers before its
//! WAL is flushed, and daisy would acknowledge crashes a server crash then
//! loses. Every connection daisy opens comes from `postgres_session`.
//! And what daisy acknowledged survives a crash of PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::sync::Arc;

use daisy::bucketing::CrashKeys;
use daisy::storage::{
    Intake, IntakeOutcome, NewHook, NewResult, OfferRequest, PostgresStorage, ResultOutcome,
    Storage, TargetKey, postgres_session,
};
use harness::Postgres;
use harness::crashes::NOW;
use tokio_postgres::Client;

async fn synchronous_commit(client: &Client) -> String {
    client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sessions_commit_durably_whatever_the_database_default() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let db = pg.create_database().await;
    let url = pg.url(&db);
    let admin = harness::postgres::client(&pg.url("postgres")).await;
    // (database default, what a plain session gets, what daisy's gets)
    for (default, daisy) in [
        ("off", "on"),
        ("local", "local"),
        ("remote_write", "remote_write"),
        ("on", "on"),
        ("remote_apply", "remote_apply"),
    ] {
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {db} SET synchronous_commit = {default}"
            ))
            .await
            .unwrap();
        assert_eq!(
            synchronous_commit(&harness::postgres::client(&url).await).await,
            default
        );
        let session = postgres_session(&url).await.unwrap();
        assert_eq!(
            synchronous_commit(&session).await,
            daisy,
            "default {default}"
        );
    }

    // The storage opens, migrates and stores on a database whose default
    // is off (its sessions come from `postgres_session`).
    admin
        .batch_execute(&format!("ALTER DATABASE {db} SET synchronous_commit = off"))
        .await
        .unwrap();
    let storage = PostgresStorage::connect(&url).await.unwrap();
    drop(storage);
}

/// The WAL writer's pid: stopped, it no longer writes what asynchronous
/// commits leave in shared memory; killed, it makes the postmaster reset
/// every process and recover from the WAL that reached the kernel, which
/// is what a crash of PostgreSQL keeps.
async fn walwriter(pg: &Postgres) -> i32 {
    harness::postgres::client(&pg.url("postgres"))
        .await
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn signal(pid: i32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Kills the (stopped) WAL writer and connects once PostgreSQL has
/// recovered.
async fn crash_and_recover(walwriter: i32, url: &str) -> Client {
    signal(walwriter, "-KILL");
    // Not merely a connection: one made before the postmaster noticed the
    // death would be cut by the reset that follows. A new WAL writer runs
    // only once the reset and the recovery are done.
    for _ in 0..300 {
        if let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            let new_writer = client
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'",
                    &[],
                )
                .await
                .ok()
                .and_then(|rows| rows.first().map(|r| r.get::<_, i32>(0)))
                .is_some_and(|pid| pid != walwriter);
            if new_writer {
                return client;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("PostgreSQL did not come back after its crash");
}

async fn count(
    client: &Client,
    query: &str,
    param: &(dyn tokio_postgres::types::ToSql + Sync),
) -> i64 {
    client.query_one(query, &[param]).await.unwrap().get(0)
}

/// Crash `i` (its own system and duplicate key), with the keys intake
/// buckets it by.
fn crash(i: u32) -> Intake {
    let id = format!("00000000-0000-7000-8000-{i:012}");
    Intake {
        oops: harness::crashes::crash(
            &id,
            &format!("system-{i}"),
            &format!("digest-{i}"),
            NOW - 10,
        ),
        keys: CrashKeys {
            duplicate_signature: Some(format!("sig-{i}")),
            early_signature: None,
            stacktrace_signature: None,
            sas: None,
            package: Some("foo".into()),
            source_package: None,
        },
    }
}

/// Every hook result and every crash the storage acknowledged survives a
/// crash of PostgreSQL that loses whatever was only in its shared memory
/// (see [`walwriter`]). Each writer is checked on its own, right before a
/// crash, since any later durable commit would flush an earlier writer's
/// WAL too. A writer that answered before its commit's WAL was written (an
/// asynchronous commit, or a flush barrier that flushes nothing, see
/// "Session 10" in `docs/daisy.md`) loses what it acknowledged here.
#[tokio::test]
async fn acknowledged_writes_survive_a_postgresql_crash() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.url(&pg.create_database().await);
    let target = TargetKey {
        kind: "package".into(),
        value: "foo".into(),
    };

    // Results: 16 crashes and their tokens first, durably.
    let storage = Arc::new(PostgresStorage::connect(&url).await.unwrap());
    let hook = storage
        .insert_hook(NewHook {
            name: "durable".into(),
            version: 1,
            target: target.clone(),
            max_reports: 100,
            max_days: 7,
            not_after: NOW + 7 * 86_400,
            disk_cap: 1_000_000,
            source: "name = \"durable\"\n".into(),
            bundle: b"bundle bytes".to_vec(),
            sha256: "00".repeat(32),
            actor: "tester".into(),
            created: NOW,
        })
        .await
        .unwrap();
    let mut results = Vec::new();
    for i in 0..16 {
        let intake = crash(i);
        let id = intake.oops.id.clone();
        storage.intake(intake).await.unwrap();
        let token = format!("token-{i}");
        let offered = storage
            .offer_hooks(OfferRequest {
                oops_id: id.clone(),
                targets: vec![target.clone()],
                token_hash: token.clone(),
                now: NOW,
                expires: NOW + 3600,
                offer_multiple: 2,
            })
            .await
            .unwrap();
        assert_eq!(offered.len(), 1);
        results.push(NewResult {
            token_hash: token,
            hook_id: hook.id,
            oops_id: id,
            keys: vec![5, 0, 0, 0, 0],
            bytes: 5,
            failed: false,
            now: NOW + 10,
        });
    }
    let pid = walwriter(&pg).await;
    signal(pid, "-STOP");
    let uploads: Vec<_> = results
        .into_iter()
        .map(|result| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move { storage.accept_result(result).await })
        })
        .collect();
    for upload in uploads {
        let outcome = upload.await.unwrap().unwrap();
        assert!(
            matches!(outcome, ResultOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
    drop(storage);
    let client = crash_and_recover(pid, &url).await;
    let sql = "SELECT count(*) FROM hook_results WHERE hook_id = $1";
    assert_eq!(
        count(&client, sql, &hook.id).await,
        16,
        "acknowledged results lost in PostgreSQL's crash"
    );

    // Crashes.
    let storage = Arc::new(PostgresStorage::connect(&url).await.unwrap());
    let pid = walwriter(&pg).await;
    signal(pid, "-STOP");
    let intakes: Vec<_> = (100..164)
        .map(|i| {
            let storage = Arc::clone(&storage);
            let intake = crash(i);
            let id = intake.oops.id.clone();
            tokio::spawn(async move { (id, storage.intake(intake).await) })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for intake in intakes {
        let (id, outcome) = intake.await.unwrap();
        let outcome = outcome.unwrap();
        assert!(
            matches!(outcome, IntakeOutcome::Stored { .. }),
            "{outcome:?}"
        );
        acknowledged.push(id);
    }
    drop(storage);
    let client = crash_and_recover(pid, &url).await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM oops WHERE id = ANY($1)",
            &acknowledged
        )
        .await,
        64,
        "acknowledged crashes lost in PostgreSQL's crash"
    );
}
