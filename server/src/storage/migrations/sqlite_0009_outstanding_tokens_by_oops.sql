-- A second hook list for one OOPS retires that OOPS's outstanding token of
-- each offered hook (storage/sqlite.rs, offer_hooks): found by key here,
-- instead of reading every outstanding token of the hook.
CREATE INDEX hook_tokens_outstanding_oops ON hook_tokens (hook_id, oops_id) WHERE used = 0;
