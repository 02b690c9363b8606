-- The duplicate key led by the crash's own time (its `Date`, see
-- bucketing::crash_time and sqlite_0004): system ids are SHA-512 hashes, so
-- a key that starts with them puts each new crash on a random leaf page,
-- and after each checkpoint the first write of each such page costs a full
-- page image in the WAL. Led by the crash time, new crashes land at the
-- end of the index. Duplicates share their `Date` (it is part of the
-- digest), so they still meet on the same key. Rows from before this
-- migration keep crash time 0, and the intake also looks under 0
-- (postgres_batch.rs), so they keep catching re-uploads.
ALTER TABLE oops_dedup ADD COLUMN crash_time BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oops_dedup DROP CONSTRAINT oops_dedup_pkey;
ALTER TABLE oops_dedup ADD PRIMARY KEY (crash_time, system_id, digest);
