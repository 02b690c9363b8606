-- Bumped whenever the set of active hook targets may change, so that each
-- intake writer reloads its in-memory target index only then (hook_index.rs).
-- Counter updates (results, bytes, offers) do not bump it.
CREATE TABLE hook_generation (
    id INT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO hook_generation (id, value) VALUES (1, 0);
CREATE FUNCTION daisy_bump_hook_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE hook_generation SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER hooks_generation_insert_delete AFTER INSERT OR DELETE ON hooks
FOR EACH STATEMENT EXECUTE FUNCTION daisy_bump_hook_generation();
CREATE TRIGGER hooks_generation_update AFTER UPDATE ON hooks
FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
    OR OLD.target_kind IS DISTINCT FROM NEW.target_kind
    OR OLD.target_value IS DISTINCT FROM NEW.target_value
    OR OLD.not_after IS DISTINCT FROM NEW.not_after)
EXECUTE FUNCTION daisy_bump_hook_generation();
