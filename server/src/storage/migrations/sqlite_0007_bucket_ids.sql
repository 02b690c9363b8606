-- Each crash signature gets a small integer id, and new crashes are
-- indexed by that id instead of by the signature's text. The text index
-- (bucket, received) cost the writer about 8k instructions per crash, a
-- sixth of its work, even with every crash in one bucket: each insert
-- compares the signature (tens of bytes, the same within a bucket) at
-- every level of the tree, and its entries are several times the size.
-- `oops.bucket` keeps the text, so every reader of a row is unchanged; only
-- the index and the problems query go through the id. A signature's id
-- never changes and no row of `buckets` is ever deleted, so the writer may
-- remember ids (storage/bucket_ids.rs).
--
-- Rows stored before this migration keep `bucket_id` NULL rather than being
-- rewritten (an UPDATE of every row would copy the whole table, reports
-- and all, through the WAL in one transaction); they stay findable through
-- a partial text index that only they are in, and the problems query reads
-- both indexes.
CREATE TABLE buckets (
    id INTEGER PRIMARY KEY,
    signature TEXT NOT NULL UNIQUE
);
ALTER TABLE oops ADD COLUMN bucket_id INTEGER;
CREATE INDEX oops_bucket_legacy ON oops (bucket, received)
    WHERE bucket_id IS NULL AND bucket IS NOT NULL;
DROP INDEX IF EXISTS oops_bucket;
CREATE INDEX oops_bucket_id ON oops (bucket_id, received) WHERE bucket_id IS NOT NULL;
