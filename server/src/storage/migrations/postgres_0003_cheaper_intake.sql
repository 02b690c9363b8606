-- Cheaper crash intake (docs/daisy.md, Storage): no query looks crashes up
-- by system id (set_core goes by OOPS id), so this index only cost one
-- random index page write per crash. oops_dedup stays as it is: its
-- primary-key index is the one lookup structure PostgreSQL needs.
DROP INDEX IF EXISTS oops_system;
