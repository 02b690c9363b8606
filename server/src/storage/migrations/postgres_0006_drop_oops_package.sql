-- No query looks crashes up by package: hook matching by package reads the
-- hooks' own index, and the per-package view of results is hook_results's.
-- With real traffic the index's key spreads over every package, so each
-- crash paid a random index page for nothing. (SQLite dropped it in its
-- migration 0005; each engine numbers its own migrations.)
DROP INDEX IF EXISTS oops_package;
