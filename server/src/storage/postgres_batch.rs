//! Group commit of crash intake on PostgreSQL: one task with its own
//! connection takes every waiting crash and stores them in one transaction,
//! the statements of a batch pipelined on the connection. Callers are
//! answered after the commit (durable acknowledgement). If the batch fails,
//! each crash is retried alone so that one bad row fails alone.

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, GenericClient};

use super::postgres::connect_one;
use super::{InsertOops, NewOops, StorageError};

/// Most crashes committed together.
pub const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<InsertOops, StorageError>>;

const INSERT_DEDUP: &str = "INSERT INTO oops_dedup (system_id, digest, oops_id) \
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const SELECT_DEDUP: &str = "SELECT oops_id FROM oops_dedup WHERE system_id = $1 AND digest = $2";
const INSERT_OOPS: &str = "INSERT INTO oops (id, system_id, received, bucket, sas, package, \
    source_package, duplicate_signature, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Handle of the writer task; it ends when the handle is dropped.
pub(super) struct PgOopsWriter {
    jobs: mpsc::UnboundedSender<(NewOops, Reply)>,
}

impl PgOopsWriter {
    /// Connects the writer and starts its task.
    pub(super) async fn start(url: &str) -> Result<PgOopsWriter, StorageError> {
        let client = connect_one(url).await?;
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(url.to_owned(), client, rx));
        Ok(PgOopsWriter { jobs })
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

async fn run(url: String, mut client: Client, mut rx: mpsc::UnboundedReceiver<(NewOops, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if client.is_closed() {
            match connect_one(&url).await {
                Ok(c) => client = c,
                Err(e) => {
                    let message = e.to_string();
                    for (_, reply) in batch {
                        let _ = reply.send(Err(StorageError::Open(message.clone())));
                    }
                    continue;
                }
            }
        }
        let oopses: Vec<&NewOops> = batch.iter().map(|(o, _)| o).collect();
        match write_batch(&mut client, &oopses).await {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!("PostgreSQL group commit failed, retrying one by one: {e}");
                for (oops, reply) in batch {
                    let _ = reply.send(write_batch(&mut client, &[&oops]).await.and_then(|o| {
                        o.into_iter()
                            .next()
                            .ok_or_else(|| StorageError::Corrupt("empty batch result".into()))
                    }));
                }
            }
        }
    }
}

async fn write_batch(
    client: &mut Client,
    batch: &[&NewOops],
) -> Result<Vec<InsertOops>, StorageError> {
    let tx = client.transaction().await?;
    let insert_dedup = tx.prepare(INSERT_DEDUP).await?;
    let insert_oops = tx.prepare(INSERT_OOPS).await?;
    // Phase 1, pipelined: claim the duplicate keys. Statements run in order,
    // so a duplicate inside the batch sees the first one's row.
    let claims = join_all(batch.iter().map(|o| {
        let stmt = &insert_dedup;
        let tx = &tx;
        async move {
            match &o.dedup_digest {
                Some(digest) => tx
                    .execute(stmt, &[&o.system_id, digest, &o.id])
                    .await
                    .map(|n| n == 1),
                None => Ok(true),
            }
        }
    }))
    .await;
    let mut fresh = Vec::with_capacity(batch.len());
    for claim in claims {
        fresh.push(claim?);
    }
    // Phase 2, pipelined: store the new crashes, look up the duplicates.
    let outcomes = join_all(batch.iter().zip(&fresh).map(|(o, fresh)| {
        let tx = &tx;
        let stmt = &insert_oops;
        async move {
            if *fresh {
                insert_one(tx, stmt, o).await.map(|()| InsertOops::Inserted)
            } else {
                let row = tx
                    .query_one(SELECT_DEDUP, &[&o.system_id, &o.dedup_digest])
                    .await?;
                Ok(InsertOops::Duplicate(row.try_get(0)?))
            }
        }
    }))
    .await;
    let outcomes = outcomes
        .into_iter()
        .collect::<Result<Vec<_>, StorageError>>()?;
    tx.commit().await?;
    Ok(outcomes)
}

async fn insert_one(
    tx: &impl GenericClient,
    stmt: &tokio_postgres::Statement,
    o: &NewOops,
) -> Result<(), StorageError> {
    tx.execute(
        stmt,
        &[
            &o.id,
            &o.system_id,
            &o.received,
            &o.bucket,
            &o.sas,
            &o.package,
            &o.source_package,
            &o.duplicate_signature,
            &o.report,
        ],
    )
    .await?;
    Ok(())
}
