-- The duplicate check led by the crash's own time (its `Date`, see
-- bucketing::crash_time). System ids are SHA-512 hashes, so an index that
-- starts with them puts each new crash on a random page: one 4 KiB page
-- written to the WAL (and later to the database) per crash, and a page
-- read whenever the index outgrows the cache. Led by the crash time, new
-- crashes land at the end of the index, in the few pages of the last
-- seconds. Duplicates share their `Date` (it is part of the digest), so
-- they still meet on the same key.
--
-- Rows from before this migration have no crash time and move over with
-- 0; the intake also looks for a duplicate under 0 (insert_oops_in), so
-- they keep catching re-uploads.
CREATE TABLE oops_dedup_0004 (
    crash_time INTEGER NOT NULL,
    system_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    oops_id TEXT NOT NULL,
    PRIMARY KEY (crash_time, system_id, digest)
) WITHOUT ROWID;
INSERT INTO oops_dedup_0004 (crash_time, system_id, digest, oops_id)
SELECT 0, system_id, digest, oops_id FROM oops_dedup ORDER BY system_id, digest;
DROP TABLE oops_dedup;
ALTER TABLE oops_dedup_0004 RENAME TO oops_dedup;
