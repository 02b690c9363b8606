-- daisy schema, PostgreSQL. Times are Unix seconds.
CREATE TABLE oops (
    id TEXT PRIMARY KEY,
    system_id TEXT NOT NULL,
    received BIGINT NOT NULL,
    bucket TEXT,
    sas TEXT,
    package TEXT,
    source_package TEXT,
    duplicate_signature TEXT,
    report BYTEA NOT NULL,
    core_size BIGINT
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
    updated BIGINT NOT NULL
);

CREATE TABLE hooks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    target_kind TEXT NOT NULL,
    target_value TEXT NOT NULL,
    max_reports BIGINT NOT NULL,
    max_days BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    disk_cap BIGINT NOT NULL,
    source TEXT NOT NULL,
    bundle BYTEA NOT NULL,
    sha256 TEXT NOT NULL,
    created BIGINT NOT NULL,
    offered BIGINT NOT NULL DEFAULT 0,
    offers_refused BIGINT NOT NULL DEFAULT 0,
    results BIGINT NOT NULL DEFAULT 0,
    results_refused BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    UNIQUE (name, version)
);
-- Matching is one index probe per target of the OOPS, whatever the number of hooks.
CREATE INDEX hooks_active_target ON hooks (target_kind, target_value) WHERE state = 'active';

-- One row per (token, hook): a token is good for one result per hook.
CREATE TABLE hook_tokens (
    token_hash TEXT NOT NULL,
    hook_id BIGINT NOT NULL REFERENCES hooks (id),
    oops_id TEXT NOT NULL,
    issued BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (token_hash, hook_id)
);
CREATE INDEX hook_tokens_outstanding ON hook_tokens (hook_id, expires) WHERE NOT used;

CREATE TABLE hook_results (
    oops_id TEXT NOT NULL,
    hook_id BIGINT NOT NULL REFERENCES hooks (id),
    hook_version BIGINT NOT NULL,
    bucket TEXT,
    package TEXT,
    received BIGINT NOT NULL,
    keys BYTEA NOT NULL,
    bytes BIGINT NOT NULL,
    failed BOOLEAN NOT NULL,
    PRIMARY KEY (oops_id, hook_id)
);
CREATE INDEX hook_results_hook ON hook_results (hook_id, received);
CREATE INDEX hook_results_bucket ON hook_results (bucket);
CREATE INDEX hook_results_package ON hook_results (package);

CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    team TEXT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created BIGINT NOT NULL,
    revoked BIGINT
);

CREATE TABLE daily_stats (
    day BIGINT NOT NULL,
    hook_id BIGINT NOT NULL,
    metric TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (day, hook_id, metric)
);
