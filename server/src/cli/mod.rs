//! The `daisy serve` and `daisy admin` commands: argument types (clap) and
//! their logic, so that `main.rs` only dispatches.

pub mod admin;
pub mod serve;

use crate::config::ConfigError;
use crate::storage::StorageError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What daisy was doing.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The command cannot do what was asked.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}
