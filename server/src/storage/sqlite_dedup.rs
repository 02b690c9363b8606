//! The SQLite duplicate check without a random index write per crash.
//!
//! A duplicate key is `(crash time, system id, md5 digest)`. System ids are
//! SHA-512 hashes, so even in an index led by the crash time each new key
//! lands on a random page among the last seconds' pages: one 4 KiB page
//! written to the WAL per crash, and once more at the checkpoint, about
//! half of everything the intake wrote (docs/daisy.md, "Duplicate check").
//!
//! So new keys are first appended, in arrival order, to the small table
//! `oops_dedup_recent` (a few keys per page, appended at its end) and kept
//! in memory by the writer. Once [`MERGE_AT`] keys have gathered, one
//! batch moves them into `oops_dedup` sorted by key, where they fill pages
//! in order instead of dirtying one page each, and empties the table. A
//! crash is a duplicate when its key is staged here or in `oops_dedup`.
//!
//! The table, not the memory, is the truth: every change to it happens
//! inside the writer's transaction under SQLite's write lock, and each
//! batch first reads what other connections (another daisy process on the
//! same file) appended since ([`StagedKeys::begin`]). A key leaves the
//! table only into `oops_dedup`, in the same transaction, so memory that
//! still holds it after someone else's merge is stale but never wrong.
//! What a rolled-back transaction staged is taken out of memory again
//! ([`StagedKeys::roll_back_to`]). After a restart the first batch reads
//! the whole table back.

use std::collections::HashMap;

use ahash::RandomState;
use rusqlite::{Connection, Statement, params};

use super::{StorageError, UnixTime};

/// Staged keys that trigger a merge into `oops_dedup`. Larger runs fill
/// the index's pages more densely per merge; the merge's batch pays for
/// all of them at once (about 8k sorted B-tree inserts, tens of ms).
pub const MERGE_AT: i64 = 8_192;

/// The statement [`StagedKeys::stage`] runs, prepared by the caller once
/// per batch with the crash's other statements.
pub(super) const STAGE_KEY: &str = "INSERT INTO oops_dedup_recent \
     (crash_time, system_id, digest, oops_id) VALUES (?1, ?2, ?3, ?4)";

/// One duplicate key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct DedupKey {
    /// The crash's own time (0 for legacy rows and unreadable dates).
    pub crash_time: UnixTime,
    /// The submitting machine.
    pub system_id: String,
    /// md5 of `Date:ExecutablePath:ProcStatus`.
    pub digest: String,
}

/// A staged key's place in `oops_dedup_recent` and its OOPS.
#[derive(Debug)]
struct Staged {
    seq: i64,
    oops_id: String,
}

/// The writer's memory of `oops_dedup_recent`.
#[derive(Debug, Default)]
pub(super) struct StagedKeys {
    /// Keyed by a randomly seeded aHash, not std's SipHash: the system ids
    /// and digests are the client's, so the seed must be secret, but SipHash
    /// over a 128-digit id was a twentieth of the writer's instructions.
    keys: HashMap<DedupKey, Staged, RandomState>,
    /// Highest `seq` read or written.
    seen_upto: i64,
    /// Keys below this `seq` were merged: gone from memory too.
    floor: i64,
    /// For each key the open transaction staged, in order, `seen_upto`
    /// from before it: a rollback takes the keys above that seq back out
    /// of memory (SQLite hands the same seqs out again then). Every seq
    /// staged in a transaction is above every seq seen before it, since
    /// the only reading of other connections' keys happens in `begin`.
    pending: Vec<i64>,
    /// The open transaction merged every key below this `seq`.
    merging_upto: Option<i64>,
    /// Whether `oops_dedup` holds keys under crash time 0, read once. Rows
    /// from before migration 0004 are filed there and must keep catching
    /// re-uploads that now have a crash time; without such rows that second
    /// probe is skipped. (Keys filed under 0 later come from a `Date` that
    /// does not parse, so they cannot share a digest, which covers the
    /// `Date` text, with a crash that has a crash time.)
    legacy_keys: Option<bool>,
}

impl StagedKeys {
    /// At the start of a batch's transaction (under the write lock): reads
    /// what other connections staged or merged since the last batch, and
    /// merges when enough keys have gathered.
    pub(super) fn begin(&mut self, tx: &Connection) -> Result<(), StorageError> {
        self.pending.clear();
        self.merging_upto = None;
        if self.legacy_keys.is_none() {
            let any: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM oops_dedup WHERE crash_time = 0)")?
                .query_row([], |r| r.get(0))?;
            self.legacy_keys = Some(any);
        }
        // Two subqueries, each a single B-tree seek; `min(seq), max(seq)`
        // in one select would scan the table.
        let (min, max): (Option<i64>, Option<i64>) = tx
            .prepare_cached(
                "SELECT (SELECT min(seq) FROM oops_dedup_recent), \
                        (SELECT max(seq) FROM oops_dedup_recent)",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let (Some(min), Some(max)) = (min, max) else {
            // Empty: whatever memory holds was merged.
            self.forget_below(self.seen_upto.saturating_add(1));
            return Ok(());
        };
        if min > self.floor {
            self.forget_below(min);
        }
        if max > self.seen_upto {
            self.catch_up(tx)?;
        }
        if max.saturating_sub(min) >= MERGE_AT.saturating_sub(1) {
            self.merge(tx, max)?;
        }
        Ok(())
    }

    /// The OOPS staged under `key`, if any.
    pub(super) fn find(&self, key: &DedupKey) -> Option<&str> {
        self.keys.get(key).map(|s| s.oops_id.as_str())
    }

    /// Whether `oops_dedup` may hold rows from before migration 0004.
    pub(super) fn legacy_keys(&self) -> bool {
        self.legacy_keys.unwrap_or(true)
    }

    /// Appends a new key inside the open transaction, through `insert`
    /// ([`STAGE_KEY`] prepared on the transaction's connection).
    pub(super) fn stage(
        &mut self,
        insert: &mut Statement<'_>,
        key: DedupKey,
        oops_id: &str,
    ) -> Result<(), StorageError> {
        let seq = insert.insert(params![key.crash_time, key.system_id, key.digest, oops_id])?;
        self.pending.push(self.seen_upto);
        self.seen_upto = self.seen_upto.max(seq);
        self.keys.insert(
            key,
            Staged {
                seq,
                oops_id: oops_id.to_owned(),
            },
        );
        Ok(())
    }

    /// How many keys the open transaction has staged: a mark for
    /// [`StagedKeys::roll_back_to`].
    pub(super) fn mark(&self) -> usize {
        self.pending.len()
    }

    /// The open transaction rolled back to a savepoint taken at `mark`: the
    /// keys staged since are not in the table, so they leave memory too.
    pub(super) fn roll_back_to(&mut self, mark: usize) {
        let Some(&seen_before) = self.pending.get(mark) else {
            return;
        };
        self.pending.truncate(mark);
        // Rare (a failed job inside a batch): one pass over the staged keys.
        self.keys.retain(|_, s| s.seq <= seen_before);
        self.seen_upto = seen_before;
    }

    /// The whole transaction rolled back.
    pub(super) fn rolled_back(&mut self) {
        self.roll_back_to(0);
        self.merging_upto = None;
    }

    /// The transaction committed: a merge it made now holds.
    pub(super) fn committed(&mut self) {
        self.pending.clear();
        if let Some(upto) = self.merging_upto.take() {
            self.forget_below(upto);
        }
    }

    fn forget_below(&mut self, floor: i64) {
        if floor <= self.floor {
            return;
        }
        self.keys.retain(|_, s| s.seq >= floor);
        self.floor = floor;
    }

    /// Reads the keys other connections appended since `seen_upto`.
    fn catch_up(&mut self, tx: &Connection) -> Result<(), StorageError> {
        let mut stmt = tx.prepare_cached(
            "SELECT seq, crash_time, system_id, digest, oops_id FROM oops_dedup_recent \
             WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![self.seen_upto])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let key = DedupKey {
                crash_time: row.get(1)?,
                system_id: row.get(2)?,
                digest: row.get(3)?,
            };
            self.keys.insert(
                key,
                Staged {
                    seq,
                    oops_id: row.get(4)?,
                },
            );
            self.seen_upto = self.seen_upto.max(seq);
        }
        Ok(())
    }

    /// Copies every staged key into `oops_dedup`, sorted, and empties the
    /// table but for its last row (`upto`, the highest seq), which keeps
    /// `max(seq) + 1` growing: a seq is never handed out twice, so a
    /// writer's "what was appended after the seq I saw" stays right. Memory
    /// forgets the merged keys only once the transaction commits.
    fn merge(&mut self, tx: &Connection, upto: i64) -> Result<(), StorageError> {
        // SQLite's grammar needs a WHERE before an upsert clause on
        // INSERT … SELECT. DO NOTHING skips the row kept by the last merge;
        // every other staged key was checked against `oops_dedup` under the
        // same write lock. (Sorting in Rust and inserting row by row cost
        // more: binding each row outweighs SQLite's sorter.)
        let moved = tx
            .prepare_cached(
                "INSERT INTO oops_dedup (crash_time, system_id, digest, oops_id) \
                 SELECT crash_time, system_id, digest, oops_id FROM oops_dedup_recent \
                 WHERE seq <= ?1 ORDER BY crash_time, system_id, digest \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![upto])?;
        // Keep the last row, empty the table in one step (SQLite frees its
        // pages instead of deleting row by row), put the row back.
        let last = tx
            .prepare_cached(
                "SELECT crash_time, system_id, digest, oops_id FROM oops_dedup_recent \
                 WHERE seq = ?1",
            )?
            .query_row(params![upto], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
        tx.prepare_cached("DELETE FROM oops_dedup_recent")?
            .execute([])?;
        tx.prepare_cached(
            "INSERT INTO oops_dedup_recent (seq, crash_time, system_id, digest, oops_id) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![upto, last.0, last.1, last.2, last.3])?;
        tracing::debug!(moved, "merged staged duplicate keys into oops_dedup");
        self.merging_upto = Some(upto);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(system_id: &str) -> DedupKey {
        DedupKey {
            crash_time: 1_700_000_000,
            system_id: system_id.to_owned(),
            digest: "d".repeat(32),
        }
    }

    /// A savepoint rollback inside a batch takes out only the keys staged
    /// after the mark: the earlier jobs of the batch stay staged.
    #[test]
    fn roll_back_to_keeps_the_keys_staged_before_the_mark() -> Result<(), StorageError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE oops_dedup_recent (seq INTEGER PRIMARY KEY, crash_time INTEGER, \
             system_id TEXT, digest TEXT, oops_id TEXT); \
             SAVEPOINT batch;",
        )?;
        let mut staged = StagedKeys::default();
        let mut insert = conn.prepare(STAGE_KEY)?;
        staged.stage(&mut insert, key("a"), "oops-a")?;
        conn.execute_batch("SAVEPOINT job")?;
        let mark = staged.mark();
        staged.stage(&mut insert, key("b"), "oops-b")?;
        staged.stage(&mut insert, key("c"), "oops-c")?;
        conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
        staged.roll_back_to(mark);
        assert_eq!(staged.find(&key("a")), Some("oops-a"));
        assert_eq!(staged.find(&key("b")), None);
        assert_eq!(staged.find(&key("c")), None);
        // SQLite hands the rolled-back seq out again; memory follows.
        staged.stage(&mut insert, key("d"), "oops-d")?;
        assert_eq!(staged.seen_upto, 2);
        assert_eq!(staged.find(&key("d")), Some("oops-d"));
        staged.rolled_back();
        assert_eq!(staged.find(&key("a")), None);
        assert_eq!(staged.find(&key("d")), None);
        assert_eq!(staged.seen_upto, 0);
        Ok(())
    }
}
