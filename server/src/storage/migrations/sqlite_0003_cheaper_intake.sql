-- Cheaper crash intake (docs/daisy.md, Storage). Each index on a random key
-- dirties one random page per crash, written to the WAL at every commit
-- that touches it and again at the checkpoint.
--
-- No query looks crashes up by system id (set_core goes by OOPS id), so
-- this index was pure write cost.
DROP INDEX IF EXISTS oops_system;

-- The duplicate check as one B-tree keyed by (system_id, digest) instead
-- of a rowid table plus the index of its primary key: one random page per
-- crash instead of two, and each key stored once. Existing rows move over.
CREATE TABLE oops_dedup_0003 (
    system_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    oops_id TEXT NOT NULL,
    PRIMARY KEY (system_id, digest)
) WITHOUT ROWID;
INSERT INTO oops_dedup_0003 (system_id, digest, oops_id)
SELECT system_id, digest, oops_id FROM oops_dedup ORDER BY system_id, digest;
DROP TABLE oops_dedup;
ALTER TABLE oops_dedup_0003 RENAME TO oops_dedup;
