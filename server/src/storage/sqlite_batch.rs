//! Group commit of crash intake on SQLite: one writer thread with its own
//! connection takes every waiting crash, stores them in one transaction
//! (a savepoint each, so one bad row fails alone) and answers each caller
//! only after the commit, so every acknowledged crash is durable while the
//! fsync is shared by the whole batch.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::sqlite::{connect, insert_oops_in};
use super::{InsertOops, NewOops, StorageError};

/// Most crashes committed together.
pub const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<InsertOops, StorageError>>;

/// Handle of the writer thread; the thread ends when the handle is dropped.
pub(super) struct OopsWriter {
    jobs: mpsc::Sender<(NewOops, Reply)>,
}

impl OopsWriter {
    /// Opens the writer's connection and starts its thread.
    pub(super) fn start(path: &Path) -> Result<OopsWriter, StorageError> {
        let conn = connect(path)?;
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("daisy-sqlite-writer".into())
            .spawn(move || run(conn, &rx))
            .map_err(|e| StorageError::Open(format!("cannot start the SQLite writer: {e}")))?;
        Ok(OopsWriter { jobs })
    }

    /// Stores one crash; resolves after its batch is committed.
    pub(super) async fn insert(&self, oops: NewOops) -> Result<InsertOops, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((oops, reply))
            .map_err(|_| StorageError::WorkerGone)?;
        answer.await.map_err(|_| StorageError::WorkerGone)?
    }
}

fn run(mut conn: Connection, rx: &mpsc::Receiver<(NewOops, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match write_batch(&mut conn, &batch) {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!("SQLite group commit failed: {message}");
                for (_, reply) in batch {
                    let _ =
                        reply.send(Err(StorageError::Open(format!("commit failed: {message}"))));
                }
            }
        }
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: &[(NewOops, Reply)],
) -> Result<Vec<Result<InsertOops, StorageError>>, StorageError> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (oops, _) in batch {
        let sp = tx.savepoint()?;
        match insert_oops_in(&sp, oops) {
            Ok(outcome) => {
                sp.commit()?;
                outcomes.push(Ok(outcome));
            }
            // Dropping the savepoint rolls this one crash back.
            Err(e) => outcomes.push(Err(e)),
        }
    }
    tx.commit()?;
    Ok(outcomes)
}
