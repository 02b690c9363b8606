//! Group commit on SQLite: one writer thread with its own connection takes
//! every waiting crash and hook result, stores them in one transaction and
//! answers each caller only after the commit, so every acknowledged request
//! is durable (`synchronous=FULL`: the WAL is fsynced at each commit) while
//! the fsync is shared by the whole batch. One bad job fails alone (see
//! [`write_batch`]). Whether a crash matches an active hook is answered
//! from the writer's in-memory index (`hook_index`), not the database; new
//! duplicate keys are staged (`sqlite_dedup`).

use std::borrow::Cow;
use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::bucket_ids::BucketIds;
use super::hook_index::HookIndex;
use super::sas_cache::SasCache;
use super::sqlite::{
    CrashStatements, accept_result_in, connect, generations_in, insert_oops_in,
    refresh_hook_index_in,
};
use super::sqlite_dedup::StagedKeys;
use super::{InsertOops, Intake, IntakeOutcome, NewOops, NewResult, ResultOutcome, StorageError};

/// Most crashes committed together.
pub const MAX_BATCH: usize = 256;

/// Name of the writer thread (`/proc/PID/task/TID/comm` shows its first 15
/// bytes): the benchmark charges it its own CPU time.
pub const WRITER_THREAD: &str = "daisy-sqlite-writer";

/// A connection with the writer's settings (daisy's usual ones, and more
/// page cache). Public for the benchmark's floor, which inserts the same
/// rows through such a connection without daisy around it.
pub fn writer_connection(path: &Path) -> Result<Connection, StorageError> {
    let conn = connect(path)?;
    // 8 MiB of page cache (default 2 MiB): the random keys of the OOPS
    // and duplicate indexes otherwise cost a read() per page per batch.
    conn.pragma_update(None, "cache_size", -8192)?;
    Ok(conn)
}

type Reply = oneshot::Sender<Result<Outcome, StorageError>>;

/// What the writer answers.
enum Outcome {
    Crash(IntakeOutcome),
    Result(ResultOutcome),
}

/// What the writer is asked to do with one crash.
enum Job {
    /// Store as given (`insert_oops`).
    Insert(NewOops),
    /// The whole intake: SAS lookup, bucket, store, hook match — on the
    /// writer's connection, so a crash costs one thread hop, not three.
    Intake(Intake),
    /// A hook result (`accept_result`): results share the batch's commit
    /// too, each still under the conditional hook update.
    Result(NewResult),
}

/// Handle of the writer thread; the thread ends when the handle is dropped.
pub(super) struct OopsWriter {
    jobs: mpsc::Sender<(Job, Reply)>,
}

impl OopsWriter {
    /// Opens the writer's connection and starts its thread.
    pub(super) fn start(path: &Path) -> Result<OopsWriter, StorageError> {
        let conn = writer_connection(path)?;
        let (jobs, rx) = mpsc::channel();
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || run(conn, &rx, runtime.as_ref()))
            .map_err(|e| StorageError::Open(format!("cannot start the SQLite writer: {e}")))?;
        Ok(OopsWriter { jobs })
    }

    /// Stores one crash; resolves after its batch is committed.
    pub(super) async fn insert(&self, oops: NewOops) -> Result<InsertOops, StorageError> {
        Ok(match self.crash(Job::Insert(oops)).await? {
            IntakeOutcome::Duplicate(existing) => InsertOops::Duplicate(existing),
            IntakeOutcome::Stored { .. } => InsertOops::Inserted,
        })
    }

    /// The whole intake of one crash; resolves after its batch is committed.
    pub(super) async fn intake(&self, crash: Intake) -> Result<IntakeOutcome, StorageError> {
        self.crash(Job::Intake(crash)).await
    }

    /// Stores one hook result; resolves after its batch is committed.
    pub(super) async fn accept_result(
        &self,
        result: NewResult,
    ) -> Result<ResultOutcome, StorageError> {
        match self.submit(Job::Result(result)).await? {
            Outcome::Result(outcome) => Ok(outcome),
            Outcome::Crash(_) => Err(StorageError::WorkerGone),
        }
    }

    async fn crash(&self, job: Job) -> Result<IntakeOutcome, StorageError> {
        match self.submit(job).await? {
            Outcome::Crash(outcome) => Ok(outcome),
            Outcome::Result(_) => Err(StorageError::WorkerGone),
        }
    }

    async fn submit(&self, job: Job) -> Result<Outcome, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((job, reply))
            .map_err(|_| StorageError::WorkerGone)?;
        answer.await.map_err(|_| StorageError::WorkerGone)?
    }
}

/// What the writer thread keeps between batches.
#[derive(Default)]
struct WriterState {
    /// The active hooks' targets.
    index: HookIndex,
    /// Duplicate keys not yet merged into `oops_dedup`.
    staged: StagedKeys,
    /// SAS index lookups at the database's current SAS generation.
    sas: SasCache,
    /// Bucket ids by crash signature.
    buckets: BucketIds,
}

impl WriterState {
    /// The batch's transaction rolled back: what it staged or cached
    /// leaves memory with it.
    fn rolled_back(&mut self) {
        self.staged.rolled_back();
        self.buckets.forget_all();
    }
}

fn run(
    mut conn: Connection,
    rx: &mpsc::Receiver<(Job, Reply)>,
    runtime: Option<&tokio::runtime::Handle>,
) {
    let mut state = WriterState::default();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let answers: Vec<(Reply, Result<Outcome, StorageError>)> =
            match write_batch(&mut conn, &mut state, &mut batch) {
                Ok(outcomes) => batch
                    .into_iter()
                    .zip(outcomes)
                    .map(|((_, reply), outcome)| (reply, outcome))
                    .collect(),
                Err(e) => {
                    let message = e.to_string();
                    tracing::error!("SQLite group commit failed: {message}");
                    batch
                        .into_iter()
                        .map(|(_, reply)| {
                            let failed = StorageError::Open(format!("commit failed: {message}"));
                            (reply, Err(failed))
                        })
                        .collect()
                }
            };
        deliver(runtime, answers);
    }
}

/// Hands a batch's answers to their callers. From this thread, each answer
/// would wake its task separately, and on a busy core every wake can switch
/// to the woken runtime thread and back (a context switch pair per crash);
/// one task spawned on the runtime instead wakes them all from inside it,
/// which costs one cross-thread wake per batch. Without a runtime (or once
/// it is shutting down, when the task is dropped and the callers see the
/// writer gone) the answers go directly.
fn deliver(
    runtime: Option<&tokio::runtime::Handle>,
    answers: Vec<(Reply, Result<Outcome, StorageError>)>,
) {
    let send_all = move || {
        for (reply, answer) in answers {
            let _ = reply.send(answer);
        }
    };
    match runtime {
        Some(runtime) => drop(runtime.spawn(async move { send_all() })),
        None => send_all(),
    }
}

/// One job inside the batch's transaction.
fn write_one(
    conn: &Connection,
    crash_statements: Option<&mut CrashStatements<'_>>,
    state: &mut WriterState,
    job: &mut Job,
) -> Result<Outcome, StorageError> {
    match (job, crash_statements) {
        (Job::Result(result), _) => accept_result_in(conn, result).map(Outcome::Result),
        (job, Some(stmts)) => write_crash(stmts, state, job).map(Outcome::Crash),
        // A batch with crashes always prepares their statements.
        (_, None) => Err(StorageError::WorkerGone),
    }
}

fn write_crash(
    stmts: &mut CrashStatements<'_>,
    state: &mut WriterState,
    job: &mut Job,
) -> Result<IntakeOutcome, StorageError> {
    match job {
        Job::Result(_) => Err(StorageError::WorkerGone),
        Job::Insert(oops) => Ok(
            match insert_oops_in(stmts, &mut state.staged, &mut state.buckets, oops)? {
                InsertOops::Duplicate(existing) => IntakeOutcome::Duplicate(existing),
                InsertOops::Inserted => IntakeOutcome::Stored {
                    sas_known: false,
                    hooks_match: false,
                },
            },
        ),
        Job::Intake(Intake { oops, keys }) => {
            let known = match keys.sas.as_deref() {
                Some(sas) => sas_signature(stmts, &mut state.sas, sas)?,
                None => None,
            };
            oops.bucket = keys.bucket(known.as_deref());
            let sas_known = known.is_some();
            let stored = &*oops;
            if let InsertOops::Duplicate(existing) =
                insert_oops_in(stmts, &mut state.staged, &mut state.buckets, stored)?
            {
                return Ok(IntakeOutcome::Duplicate(existing));
            }
            Ok(IntakeOutcome::Stored {
                sas_known,
                hooks_match: state.index.matches(stored),
            })
        }
    }
}

/// The SAS index entry of `sas`, from the cache or else the database.
fn sas_signature<'a>(
    stmts: &mut CrashStatements<'_>,
    cache: &'a mut SasCache,
    sas: &str,
) -> Result<Option<Cow<'a, str>>, StorageError> {
    if cache.get(sas).is_none() {
        let found = stmts.sas_signature(sas)?;
        if !SasCache::keeps(sas) {
            return Ok(found.map(Cow::Owned));
        }
        cache.insert(sas, found);
    }
    Ok(cache.get(sas).flatten().map(Cow::Borrowed))
}

/// Writes a batch in one transaction. First optimistically without
/// savepoints (each costs a copy of every page it touches into the
/// sub-journal); if any job fails, that transaction is rolled back and the
/// batch is written again with a savepoint per job, so one bad job fails
/// alone. Whatever a rolled-back transaction or savepoint staged leaves the
/// writer's memory with it.
fn write_batch(
    conn: &mut Connection,
    state: &mut WriterState,
    batch: &mut [(Job, Reply)],
) -> Result<Vec<Result<Outcome, StorageError>>, StorageError> {
    let written = write_batch_in(conn, state, batch);
    match &written {
        Ok(_) => state.staged.committed(),
        Err(_) => state.rolled_back(),
    }
    written
}

/// At the start of each transaction that stores crashes (under the write
/// lock): what the writer keeps in memory catches up with the database.
fn begin_crashes(tx: &Connection, state: &mut WriterState) -> Result<(), StorageError> {
    let generations = generations_in(tx)?;
    refresh_hook_index_in(tx, &mut state.index, generations.hooks)?;
    state.sas.refresh(generations.sas);
    state.staged.begin(tx)
}

fn write_batch_in(
    conn: &mut Connection,
    state: &mut WriterState,
    batch: &mut [(Job, Reply)],
) -> Result<Vec<Result<Outcome, StorageError>>, StorageError> {
    let has_crashes = batch
        .iter()
        .any(|(job, _)| matches!(job, Job::Intake(_) | Job::Insert(_)));
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if has_crashes {
            begin_crashes(&tx, state)?;
        }
        let mut stmts = has_crashes
            .then(|| CrashStatements::prepare(&tx))
            .transpose()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (job, _) in batch.iter_mut() {
            match write_one(&tx, stmts.as_mut(), state, job) {
                Ok(outcome) => outcomes.push(Ok(outcome)),
                Err(_) => break,
            }
        }
        drop(stmts);
        if outcomes.len() == batch.len() {
            tx.commit()?;
            return Ok(outcomes);
        }
        // Dropping the transaction rolls the partial batch back.
    }
    state.rolled_back();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if has_crashes {
        begin_crashes(&tx, state)?;
    }
    let mut stmts = has_crashes
        .then(|| CrashStatements::prepare(&tx))
        .transpose()?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (job, _) in batch.iter_mut() {
        // Savepoints by SQL, not `Transaction::savepoint`, which needs the
        // transaction mutably while the prepared statements borrow it.
        tx.execute_batch("SAVEPOINT daisy_job")?;
        let mark = state.staged.mark();
        match write_one(&tx, stmts.as_mut(), state, job) {
            Ok(outcome) => {
                tx.execute_batch("RELEASE daisy_job")?;
                outcomes.push(Ok(outcome));
            }
            // This one job is rolled back.
            Err(e) => {
                tx.execute_batch("ROLLBACK TO daisy_job; RELEASE daisy_job")?;
                state.staged.roll_back_to(mark);
                state.buckets.forget_all();
                outcomes.push(Err(e));
            }
        }
    }
    drop(stmts);
    tx.commit()?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What durability and the cost figures in docs/daisy.md rest on: a
    /// change to any of these must be deliberate.
    #[test]
    fn writer_connection_is_durable_wal_with_the_documented_settings() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_connection(&dir.path().join("daisy.sqlite3")).unwrap();
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        // 2 = FULL: the WAL is synced at every commit, before any answer.
        assert_eq!(pragma("synchronous"), "2");
        assert_eq!(pragma("foreign_keys"), "1");
        assert_eq!(pragma("wal_autocheckpoint"), "16000");
        assert_eq!(pragma("cache_size"), "-8192");
        assert_eq!(pragma("journal_size_limit"), (64 * 1024 * 1024).to_string());
        assert_eq!(pragma("busy_timeout"), "10000");
    }
}
