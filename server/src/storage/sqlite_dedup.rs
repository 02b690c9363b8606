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
//!
//! Since migration 0008 both tables store a key as its crash time and 16
//! bytes ([`DedupKey::new`]: SHA-256 of the system id and the digest, cut
//! to 128 bits), and the OOPS id as its 16 UUID bytes (other ids as their
//! text): about 40 bytes a key instead of about 200 (a 128-digit system id,
//! a 32-digit digest, a 36-character id). Measured under load, the WAL
//! frames these two tables cost per commit fell from 3.8 to 1.6.

use std::collections::HashMap;

use ahash::RandomState;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Statement, params};
use sha2::{Digest, Sha256};

use super::{StorageError, UnixTime};

/// Staged keys that trigger a merge into `oops_dedup`. Larger runs fill
/// the index's pages more densely per merge; the merge's batch pays for
/// all of them at once (about 8k sorted B-tree inserts, tens of ms).
pub const MERGE_AT: i64 = 8_192;

/// The statement [`StagedKeys::stage`] runs, prepared by the caller once
/// per batch with the crash's other statements.
pub(super) const STAGE_KEY: &str = "INSERT INTO oops_dedup_recent \
     (crash_time, key_hash, oops_id) VALUES (?1, ?2, ?3)";

/// Bytes of a stored key's hash.
pub const KEY_HASH_BYTES: usize = 16;

/// One duplicate key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct DedupKey {
    /// The crash's own time (0 for legacy rows and unreadable dates).
    pub crash_time: UnixTime,
    /// [`key_hash`] of the submitting machine and the crash's digest.
    pub hash: [u8; KEY_HASH_BYTES],
}

impl DedupKey {
    /// The key of a crash from `system_id` with `digest` (md5 of
    /// `Date:ExecutablePath:ProcStatus`, lower-case hex).
    pub(super) fn new(crash_time: UnixTime, system_id: &str, digest: &str) -> DedupKey {
        DedupKey {
            crash_time,
            hash: key_hash(system_id.as_bytes(), digest.as_bytes()),
        }
    }

    /// A key as stored: its hash must have [`KEY_HASH_BYTES`] bytes. The
    /// error says what is wrong; the caller names the row.
    fn stored(crash_time: UnixTime, hash: ValueRef<'_>) -> Result<DedupKey, String> {
        let ValueRef::Blob(hash) = hash else {
            return Err("its key_hash is not bytes".into());
        };
        let hash = hash.try_into().map_err(|_| {
            format!(
                "its key_hash has {} bytes, not {KEY_HASH_BYTES}",
                hash.len()
            )
        })?;
        Ok(DedupKey { crash_time, hash })
    }
}

/// SHA-256 of `system id, NUL, digest`, cut to [`KEY_HASH_BYTES`]. System
/// ids hold no NUL (`[A-Za-z0-9._-]`), so the hashed input encodes the pair
/// unambiguously. A collision would refuse a crash as "already
/// reported"; at 128 bits of a cryptographic hash nobody can make one, also
/// not a client that picks its own system ids and reports. Migration 0008
/// converts older keys with the same function (registered as the SQL
/// function `daisy_dedup_key`).
pub fn key_hash(system_id: &[u8], digest: &[u8]) -> [u8; KEY_HASH_BYTES] {
    let mut sha = Sha256::new();
    sha.update(system_id);
    sha.update([0]);
    sha.update(digest);
    let full = sha.finalize();
    let mut hash = [0; KEY_HASH_BYTES];
    for (out, byte) in hash.iter_mut().zip(full.iter()) {
        *out = *byte;
    }
    hash
}

/// An OOPS id as the duplicate tables store it: the 16 bytes of a UUID in
/// its canonical text (lower-case, hyphenated: what daisy hands out), else
/// the text itself (ids that tests made), so that every id reads back as
/// it was.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StoredOopsId<'a> {
    /// A canonical UUID's bytes.
    Uuid([u8; 16]),
    /// Any other id.
    Text(&'a str),
}

impl StoredOopsId<'_> {
    pub(super) fn new(id: &str) -> StoredOopsId<'_> {
        // At 36 characters `try_parse` accepts only the hyphenated form, so
        // without upper-case letters the id is the canonical text of what
        // it parses to (no encoding back to compare, once per crash).
        let canonical = id.len() == 36 && !id.bytes().any(|b| b.is_ascii_uppercase());
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) if canonical => StoredOopsId::Uuid(*uuid.as_bytes()),
            _ => StoredOopsId::Text(id),
        }
    }
}

impl rusqlite::ToSql for StoredOopsId<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match self {
            StoredOopsId::Uuid(bytes) => ValueRef::Blob(bytes),
            StoredOopsId::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

/// The OOPS id of a duplicate table's `oops_id` column. The error says
/// what is wrong; the caller names the row.
pub(super) fn oops_id_from(value: ValueRef<'_>) -> Result<String, String> {
    match value {
        ValueRef::Blob(bytes) => uuid::Uuid::from_slice(bytes)
            .map(|uuid| uuid.hyphenated().to_string())
            .map_err(|_| format!("its oops_id has {} bytes, not 16", bytes.len())),
        ValueRef::Text(text) => std::str::from_utf8(text)
            .map(str::to_owned)
            .map_err(|_| "its oops_id is not UTF-8".to_owned()),
        _ => Err("its oops_id is neither text nor bytes".into()),
    }
}

/// The error for a duplicate table's row that daisy cannot read: which row,
/// and how to get past it. Every batch reads the staged rows again, so one
/// bad row would otherwise stop the intake for good.
pub(super) fn bad_key_row(row: &str, what: &str) -> StorageError {
    StorageError::Corrupt(format!(
        "{row}: {what}. Delete that row with sqlite3 while daisy is stopped; its crash stays \
         stored, only a re-upload of it is no longer refused"
    ))
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
    /// Keyed by a randomly seeded aHash, not std's SipHash: the keys derive
    /// from the client's system ids and digests, and a client can grind
    /// SHA-256 outputs into chosen hash buckets of an unseeded table, so
    /// the seed must be secret; SipHash (then over a 128-digit id) was a
    /// twentieth of the writer's instructions.
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
        let seq = insert.insert(params![
            key.crash_time,
            &key.hash[..],
            StoredOopsId::new(oops_id)
        ])?;
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
            "SELECT seq, crash_time, key_hash, oops_id FROM oops_dedup_recent \
             WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![self.seen_upto])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let bad = |what: String| bad_key_row(&format!("oops_dedup_recent seq {seq}"), &what);
            let key = DedupKey::stored(row.get(1)?, row.get_ref(2)?).map_err(bad)?;
            let oops_id = oops_id_from(row.get_ref(3)?).map_err(bad)?;
            self.keys.insert(key, Staged { seq, oops_id });
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
                "INSERT INTO oops_dedup (crash_time, key_hash, oops_id) \
                 SELECT crash_time, key_hash, oops_id FROM oops_dedup_recent \
                 WHERE seq <= ?1 ORDER BY crash_time, key_hash \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![upto])?;
        // Keep the last row, empty the table in one step (SQLite frees its
        // pages instead of deleting row by row), put the row back.
        let last = tx
            .prepare_cached(
                "SELECT crash_time, key_hash, oops_id FROM oops_dedup_recent WHERE seq = ?1",
            )?
            .query_row(params![upto], |r| {
                Ok((
                    r.get::<_, Value>(0)?,
                    r.get::<_, Value>(1)?,
                    r.get::<_, Value>(2)?,
                ))
            })?;
        tx.prepare_cached("DELETE FROM oops_dedup_recent")?
            .execute([])?;
        tx.prepare_cached(
            "INSERT INTO oops_dedup_recent (seq, crash_time, key_hash, oops_id) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![upto, last.0, last.1, last.2])?;
        tracing::debug!(moved, "merged staged duplicate keys into oops_dedup");
        self.merging_upto = Some(upto);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(system_id: &str) -> DedupKey {
        DedupKey::new(1_700_000_000, system_id, &"d".repeat(32))
    }

    /// The stored form is pinned: changing it needs a migration.
    #[test]
    fn key_hash_is_sha256_of_system_nul_digest_cut_to_16_bytes() {
        let hash = key_hash(b"system-a", b"digest-a");
        let full = Sha256::digest(b"system-a\0digest-a");
        assert_eq!(Some(&hash[..]), full.get(..KEY_HASH_BYTES));
        assert_ne!(key_hash(b"system-a", b"digest-b"), hash);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(key_hash(b"ab", b"c"), key_hash(b"a", b"bc"));
    }

    #[test]
    fn oops_ids_are_stored_as_uuid_bytes_or_else_as_text() -> Result<(), String> {
        let id = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
        let stored = StoredOopsId::new(id);
        let uuid = uuid::Uuid::try_parse(id).map_err(|e| e.to_string())?;
        assert_eq!(stored, StoredOopsId::Uuid(*uuid.as_bytes()));
        assert_eq!(oops_id_from(ValueRef::Blob(uuid.as_bytes()))?, id);
        // Canonical ids read back as the same text.
        for _ in 0..100 {
            let id = uuid::Uuid::now_v7().to_string();
            let StoredOopsId::Uuid(bytes) = StoredOopsId::new(&id) else {
                return Err(format!("{id} not stored as bytes"));
            };
            assert_eq!(oops_id_from(ValueRef::Blob(&bytes))?, id);
        }
        // Ids that are not canonical UUID text keep their text exactly.
        for other in [
            "{0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b}",
            "urn:uuid:0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
            "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2B",
            "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2g",
            "0193a1b2c3d4-7e5f-8a6b-7c8d9e0f1a2b-",
            "legacy",
            "0193A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B",
            "0193a1b2c3d47e5f8a6b7c8d9e0f1a2b",
        ] {
            assert_eq!(StoredOopsId::new(other), StoredOopsId::Text(other));
        }
        assert_eq!(oops_id_from(ValueRef::Text(b"legacy"))?, "legacy");
        assert!(oops_id_from(ValueRef::Blob(&[1, 2, 3])).is_err());
        assert!(oops_id_from(ValueRef::Integer(7)).is_err());
        assert!(DedupKey::stored(1, ValueRef::Blob(&[0; 15])).is_err());
        assert!(DedupKey::stored(1, ValueRef::Text(b"0123456789abcdef")).is_err());
        let message = bad_key_row("oops_dedup_recent seq 7", "its oops_id is not UTF-8");
        assert!(message.to_string().contains("seq 7"), "{message}");
        assert!(message.to_string().contains("Delete that row"), "{message}");
        Ok(())
    }

    /// A savepoint rollback inside a batch takes out only the keys staged
    /// after the mark: the earlier jobs of the batch stay staged.
    #[test]
    fn roll_back_to_keeps_the_keys_staged_before_the_mark() -> Result<(), StorageError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE oops_dedup_recent (seq INTEGER PRIMARY KEY, crash_time INTEGER, \
             key_hash BLOB, oops_id); \
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
