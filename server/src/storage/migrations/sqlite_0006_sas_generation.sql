-- Bumped by every change to the SAS index, so that each intake writer can
-- keep the SAS lookups it made in memory and drop them only then
-- (storage/sas_cache.rs), instead of querying sas_signature once per crash.
CREATE TABLE sas_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO sas_generation (id, value) VALUES (1, 0);
CREATE TRIGGER sas_generation_insert AFTER INSERT ON sas_signature
BEGIN
    UPDATE sas_generation SET value = value + 1 WHERE id = 1;
END;
CREATE TRIGGER sas_generation_delete AFTER DELETE ON sas_signature
BEGIN
    UPDATE sas_generation SET value = value + 1 WHERE id = 1;
END;
CREATE TRIGGER sas_generation_update AFTER UPDATE OF sas, signature ON sas_signature
BEGIN
    UPDATE sas_generation SET value = value + 1 WHERE id = 1;
END;
