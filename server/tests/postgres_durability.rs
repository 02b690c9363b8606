//! daisy's PostgreSQL sessions commit durably whatever the database's
//! default: with `synchronous_commit = off` a `COMMIT` answers before its
//! WAL is flushed, and daisy would acknowledge crashes a server crash then
//! loses. Every connection daisy opens comes from `postgres_session`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use daisy::storage::{PostgresStorage, postgres_session};
use harness::Postgres;
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
