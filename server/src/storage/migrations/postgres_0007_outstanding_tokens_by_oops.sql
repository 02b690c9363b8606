-- A second hook list for one OOPS retires that OOPS's outstanding token of
-- each offered hook (storage/postgres.rs, offer_hooks): found by key here,
-- instead of reading every outstanding token of the hook. Built under the
-- migration's lock like the other indexes; hook_tokens holds at most a few
-- thousand outstanding tokens per hook.
CREATE INDEX hook_tokens_outstanding_oops ON hook_tokens (hook_id, oops_id) WHERE NOT used;
