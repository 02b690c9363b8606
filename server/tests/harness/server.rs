//! A real daisy on `127.0.0.1:0`, over a real database.

use std::net::SocketAddr;
use std::sync::Arc;

use daisy::app::{App, AppState};
use daisy::config::{CommonArgs, Config};
use daisy::storage::{PostgresStorage, SqliteStorage, Storage};
use tokio::sync::oneshot;

use super::postgres::Postgres;

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A running server; shut down (gracefully) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: AppState,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _pg: Option<Postgres>,
}

impl TestServer {
    /// Starts daisy with configuration `toml` (limits etc.) on `engine`.
    /// `None` only when PostgreSQL is unavailable outside CI.
    pub async fn start(engine: Engine, toml: &str) -> Option<TestServer> {
        let dir = tempfile::tempdir().unwrap();
        let (storage, pg): (Arc<dyn Storage>, Option<Postgres>) = match engine {
            Engine::Sqlite => (
                Arc::new(
                    SqliteStorage::open(&dir.path().join("daisy.sqlite3"))
                        .await
                        .unwrap(),
                ),
                None,
            ),
            Engine::Postgres => {
                let pg = Postgres::start()?;
                let url = pg.fresh_database().await;
                (
                    Arc::new(PostgresStorage::connect(&url).await.unwrap()),
                    Some(pg),
                )
            }
        };
        let common = CommonArgs {
            config: None,
            data_dir: Some(dir.path().to_owned()),
            database: None,
        };
        let mut config = Config::from_toml(toml, &common, Some("127.0.0.1:0")).unwrap();
        config.create_data_dir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.listen = addr;
        config.public_url = format!("http://{addr}");
        let app = App::new(config, storage);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(daisy::server::serve(listener, app.clone(), async move {
            let _ = rx.await;
        }));
        Some(TestServer {
            addr,
            app,
            dir,
            shutdown: Some(tx),
            task: Some(task),
            _pg: pg,
        })
    }

    /// Asks for a graceful shutdown and waits for it.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
