//! Hook files: the TOML an Ubuntu developer writes, its data model and its
//! static analysis.

pub mod model;

pub use model::{Action, Condition, Hook, HookLimits, JournalQuery, RunAs, Step, Target};
