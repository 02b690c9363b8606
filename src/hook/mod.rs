//! Hook files: the TOML an Ubuntu developer writes, its data model and its
//! static analysis.
//!
//! [`parse_hook`] turns a hook file into a validated [`Hook`] or a list of
//! [`Diagnostic`]s (`file:line:column: lint-name: message`); [`lint`] gives
//! just the diagnostics. [`conditions_hold`] evaluates a hook's `[when]` on
//! the client. The format is documented in `docs/formats.md`.

mod command;
mod command_rules;
pub mod conditions;
mod config;
pub mod denylist;
mod diagnostic;
mod fields;
pub mod grammar;
pub mod lints;
pub mod model;
mod parse;
mod paths;
mod pattern;
pub mod standard_fields;
mod steps;

pub use command::FIXED_PATH;
pub use conditions::{ConditionError, compile_regex, conditions_hold};
pub use config::{ConfigError, LintConfig};
pub use diagnostic::Diagnostic;
pub use model::{Action, Condition, Hook, HookLimits, JournalQuery, RunAs, Step, Target};
pub use parse::{HOOK_FIELDS, MAX_SIGNATURE_LEN, TARGET_KINDS, lint, parse_hook, parse_hook_bytes};
pub use paths::{MAX_PATH_LEN, USER_WRITABLE_DIRS};
pub use steps::{ACTIONS, JOURNAL_FIELDS, MAX_COMMAND_ARGS, STEP_FIELDS};
