-- daisy schema, SQLite. Times are Unix seconds.
CREATE TABLE oops (
    id TEXT PRIMARY KEY,
    system_id TEXT NOT NULL,
    received INTEGER NOT NULL,
    bucket TEXT,
    sas TEXT,
    package TEXT,
    source_package TEXT,
    duplicate_signature TEXT,
    report BLOB NOT NULL,
    core_size INTEGER
);
CREATE INDEX oops_bucket ON oops (bucket, received);
CREATE INDEX oops_parked_sas ON oops (sas) WHERE bucket IS NULL;
CREATE INDEX oops_package ON oops (package);
CREATE INDEX oops_system ON oops (system_id);

-- md5(Date:ExecutablePath:ProcStatus) per system: "Crash already reported."
CREATE TABLE oops_dedup (
    system_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    oops_id TEXT NOT NULL,
    PRIMARY KEY (system_id, digest)
);

CREATE TABLE sas_signature (
    sas TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE hooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    target_kind TEXT NOT NULL,
    target_value TEXT NOT NULL,
    max_reports INTEGER NOT NULL,
    max_days INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    disk_cap INTEGER NOT NULL,
    source TEXT NOT NULL,
    bundle BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    created INTEGER NOT NULL,
    offered INTEGER NOT NULL DEFAULT 0,
    offers_refused INTEGER NOT NULL DEFAULT 0,
    results INTEGER NOT NULL DEFAULT 0,
    results_refused INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    UNIQUE (name, version)
);
-- Matching is one index probe per target of the OOPS, whatever the number of hooks.
CREATE INDEX hooks_active_target ON hooks (target_kind, target_value) WHERE state = 'active';

-- One row per (token, hook): a token is good for one result per hook.
CREATE TABLE hook_tokens (
    token_hash TEXT NOT NULL,
    hook_id INTEGER NOT NULL REFERENCES hooks (id),
    oops_id TEXT NOT NULL,
    issued INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (token_hash, hook_id)
);
CREATE INDEX hook_tokens_outstanding ON hook_tokens (hook_id, expires) WHERE used = 0;

CREATE TABLE hook_results (
    oops_id TEXT NOT NULL,
    hook_id INTEGER NOT NULL REFERENCES hooks (id),
    hook_version INTEGER NOT NULL,
    bucket TEXT,
    package TEXT,
    received INTEGER NOT NULL,
    keys BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    PRIMARY KEY (oops_id, hook_id)
);
CREATE INDEX hook_results_hook ON hook_results (hook_id, received);
CREATE INDEX hook_results_bucket ON hook_results (bucket);
CREATE INDEX hook_results_package ON hook_results (package);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    team TEXT NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    created INTEGER NOT NULL,
    revoked INTEGER
);

CREATE TABLE daily_stats (
    day INTEGER NOT NULL,
    hook_id INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (day, hook_id, metric)
);
