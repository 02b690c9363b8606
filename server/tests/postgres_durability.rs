//! daisy's PostgreSQL sessions commit durably whatever the database's
//! default: with `synchronous_commit = off` a `COMMIT` answers before its
//! WAL is flushed, and daisy would acknowledge crashes a server crash then
//! loses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use daisy::storage::{PostgresStorage, require_durable_commits};
use harness::Postgres;
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

async fn synchronous_commit(client: &Client) -> String {
    client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sessions_commit_durably_even_when_the_database_default_is_off() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let db = pg.create_database().await;
    let admin = connect(&pg.url("postgres")).await;
    admin
        .batch_execute(&format!("ALTER DATABASE {db} SET synchronous_commit = off"))
        .await
        .unwrap();
    let url = pg.url(&db);

    // What a plain session gets there, and what daisy makes of it.
    let session = connect(&url).await;
    assert_eq!(synchronous_commit(&session).await, "off");
    require_durable_commits(&session).await.unwrap();
    assert_eq!(synchronous_commit(&session).await, "on");

    // A stronger setting is kept.
    let strict = connect(&url).await;
    strict
        .batch_execute("SET synchronous_commit = remote_apply")
        .await
        .unwrap();
    require_durable_commits(&strict).await.unwrap();
    assert_eq!(synchronous_commit(&strict).await, "remote_apply");

    // The storage opens and migrates on such a database. Its sessions'
    // settings are not visible from outside; every connection it opens
    // goes through `connect_one`, which calls the function checked above.
    let storage = PostgresStorage::connect(&url).await.unwrap();
    drop(storage);
}
