-- Bumped whenever the set of active hook targets may change, so that each
-- intake writer reloads its in-memory target index only then (hook_index.rs).
-- Counter updates (results, bytes, offers) do not bump it.
CREATE TABLE hook_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO hook_generation (id, value) VALUES (1, 0);
CREATE TRIGGER hooks_generation_insert AFTER INSERT ON hooks
BEGIN
    UPDATE hook_generation SET value = value + 1 WHERE id = 1;
END;
CREATE TRIGGER hooks_generation_delete AFTER DELETE ON hooks
BEGIN
    UPDATE hook_generation SET value = value + 1 WHERE id = 1;
END;
CREATE TRIGGER hooks_generation_update AFTER UPDATE ON hooks
WHEN OLD.state IS NOT NEW.state OR OLD.target_kind IS NOT NEW.target_kind
  OR OLD.target_value IS NOT NEW.target_value OR OLD.not_after IS NOT NEW.not_after
BEGIN
    UPDATE hook_generation SET value = value + 1 WHERE id = 1;
END;
