-- New duplicate keys are staged here, in arrival order, and moved into
-- oops_dedup sorted, a few thousand at a time (storage/sqlite_dedup.rs):
-- an index insert per crash dirtied one random page of oops_dedup each,
-- about half of everything the intake wrote. A crash is a duplicate when
-- its key is here or in oops_dedup.
--
-- A writer reads what others appended since the highest seq it saw, so a
-- seq must never be handed out twice: a merge keeps the table's last row
-- (it is in oops_dedup as well), so that max(seq) + 1 only grows.
CREATE TABLE oops_dedup_recent (
    seq INTEGER PRIMARY KEY,
    crash_time INTEGER NOT NULL,
    system_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    oops_id TEXT NOT NULL
);

-- No query looks crashes up by package (the per-package views are over
-- hook_results, which keeps its own index). With real traffic, thousands
-- of packages, this index cost a random page per crash.
DROP INDEX IF EXISTS oops_package;
