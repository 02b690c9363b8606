//! Shared test harness: real SQLite files, a real throwaway PostgreSQL.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod crashes;
pub mod http;
pub mod postgres;
pub mod server;

use std::future::Future;
use std::sync::Arc;

use daisy::storage::{PostgresStorage, SqliteStorage, Storage};

#[allow(unused_imports)]
pub use postgres::{Postgres, in_ci};
#[allow(unused_imports)]
pub use server::{Engine, TestServer};

/// Runs `scenario` against a fresh SQLite database, then against a fresh
/// PostgreSQL database (see [`Postgres::start`] for when that half cannot run).
pub async fn on_both_engines<F, Fut>(scenario: F)
where
    F: Fn(Arc<dyn Storage>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStorage::open(&dir.path().join("daisy.sqlite3"))
        .await
        .expect("open SQLite");
    scenario(Arc::new(sqlite)).await;
    if let Some(pg) = Postgres::start() {
        let url = pg.fresh_database().await;
        let storage = PostgresStorage::connect(&url)
            .await
            .expect("connect PostgreSQL");
        scenario(Arc::new(storage)).await;
    }
}
