-- Duplicate keys in 40 bytes instead of about 200: a key's system id (128
-- hex digits from whoopsie) and digest (32) become 16 bytes of SHA-256 over
-- them (daisy_dedup_key: storage/sqlite_dedup.rs, key_hash), and an OOPS
-- id that is a canonical UUID its 16 bytes (daisy_dedup_oops_id; other ids
-- keep their text). Staging and merging the keys wrote about an eighth
-- of the intake's WAL pages; the lookup is the same equality on the same
-- crash time. Both functions exist only on the connection that migrates.
--
-- oops_id has no declared type, so SQLite keeps each value as it is given
-- (bytes or text).
CREATE TABLE oops_dedup_0008 (
    crash_time INTEGER NOT NULL,
    key_hash BLOB NOT NULL,
    oops_id NOT NULL,
    PRIMARY KEY (crash_time, key_hash)
) WITHOUT ROWID;
-- The grammar needs a WHERE before an upsert clause on INSERT … SELECT.
-- Two old keys can only meet here through a SHA-256 collision; one of
-- them stays.
INSERT INTO oops_dedup_0008 (crash_time, key_hash, oops_id)
SELECT crash_time, daisy_dedup_key(system_id, digest), daisy_dedup_oops_id(oops_id)
FROM oops_dedup WHERE true ORDER BY 1, 2
ON CONFLICT DO NOTHING;
DROP TABLE oops_dedup;
ALTER TABLE oops_dedup_0008 RENAME TO oops_dedup;

-- Staged keys keep their seqs; a writer reads the whole table back after a
-- restart. A daisy older than this migration must not run on the file any
-- more (since this one, daisy refuses a schema newer than it knows).
CREATE TABLE oops_dedup_recent_0008 (
    seq INTEGER PRIMARY KEY,
    crash_time INTEGER NOT NULL,
    key_hash BLOB NOT NULL,
    oops_id NOT NULL
);
INSERT INTO oops_dedup_recent_0008 (seq, crash_time, key_hash, oops_id)
SELECT seq, crash_time, daisy_dedup_key(system_id, digest), daisy_dedup_oops_id(oops_id)
FROM oops_dedup_recent ORDER BY seq;
DROP TABLE oops_dedup_recent;
ALTER TABLE oops_dedup_recent_0008 RENAME TO oops_dedup_recent;
