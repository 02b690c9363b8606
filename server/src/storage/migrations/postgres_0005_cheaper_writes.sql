-- Cheaper crash intake and result ingestion (docs/daisy.md, Storage).
--
-- 1. Byte order for the keys. The database's default collation (C.UTF-8,
-- en_US.UTF-8, ...) compares text through the C library's strcoll, which
-- was a visible share of PostgreSQL's CPU per crash and per result (every
-- index insert and probe compares keys many times). These columns hold
-- hex digests, UUIDs, token hashes and crash signatures that daisy only
-- ever compares for equality or orders by time: "C" compares bytes. The
-- tables are not rewritten; their indexes are rebuilt once.
ALTER TABLE oops
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN system_id TYPE TEXT COLLATE "C",
    ALTER COLUMN bucket TYPE TEXT COLLATE "C",
    ALTER COLUMN sas TYPE TEXT COLLATE "C",
    ALTER COLUMN package TYPE TEXT COLLATE "C";
ALTER TABLE oops_dedup
    ALTER COLUMN system_id TYPE TEXT COLLATE "C",
    ALTER COLUMN digest TYPE TEXT COLLATE "C",
    ALTER COLUMN oops_id TYPE TEXT COLLATE "C";
ALTER TABLE hook_tokens
    ALTER COLUMN token_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN oops_id TYPE TEXT COLLATE "C";
ALTER TABLE hook_results
    ALTER COLUMN oops_id TYPE TEXT COLLATE "C",
    ALTER COLUMN bucket TYPE TEXT COLLATE "C",
    ALTER COLUMN package TYPE TEXT COLLATE "C";
ALTER TABLE sas_signature
    ALTER COLUMN sas TYPE TEXT COLLATE "C";

-- 2. No foreign keys to hooks on the hot tables. Each inserted result
-- (and each offered token) ran the foreign-key trigger: one more query
-- per row that locks the hook row FOR KEY SHARE, about a quarter of
-- PostgreSQL's CPU per result. daisy never deletes a hook, and every
-- writer of these tables holds the hook row locked while it writes
-- (the result batch FOR UPDATE, the offer by its UPDATE of the hook's
-- counters), so the rows these keys point to always exist.
ALTER TABLE hook_results DROP CONSTRAINT IF EXISTS hook_results_hook_id_fkey;
ALTER TABLE hook_tokens DROP CONSTRAINT IF EXISTS hook_tokens_hook_id_fkey;
