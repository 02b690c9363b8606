//! `apportd.toml`: trusted key directories, the revocation list and the limits.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::limits::{IDLE_EXIT, Limits};
use super::rollback::DEFAULT_STATE_DIR;
use crate::bundle::{DEFAULT_KEY_DIRS, DEFAULT_REVOKED_KEYS};

/// Read when `--config` is not given and the file exists.
pub const DEFAULT_CONFIG: &str = "/etc/apport-hooks/apportd.toml";

/// apportd's configuration, every field optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directories whose `*.pub` minisign keys are trusted.
    pub key_dirs: Vec<PathBuf>,
    /// File listing revoked key ids.
    pub revoked_keys: PathBuf,
    /// Seconds without jobs or calls before apportd exits.
    pub idle_exit_secs: u64,
    /// Where apportd keeps its state (the bundle high-water marks), a
    /// root-only directory it creates 0700 when missing.
    pub state_dir: PathBuf,
    /// Job limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key_dirs: DEFAULT_KEY_DIRS.iter().map(PathBuf::from).collect(),
            revoked_keys: PathBuf::from(DEFAULT_REVOKED_KEYS),
            idle_exit_secs: IDLE_EXIT.as_secs(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            limits: Limits::default(),
        }
    }
}

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading failed.
    #[error("{path}: {source}; pass an existing file with --config or remove it")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
}

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

impl Config {
    /// Load `explicit`, or [`DEFAULT_CONFIG`] if it exists, or the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None => return Ok(Config::default()),
        };
        let read = |source| ConfigError::Read {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(read)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_CONFIG_BYTES), &mut text)
            .map_err(read)?;
        Config::parse(&text).map_err(|source| ConfigError::Parse { path, source })
    }

    /// Parse a configuration text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_config_means_the_documented_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.limits.job_bytes, 50_000_000);
        assert_eq!(config.idle_exit_secs, 30);
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/apportd"));
    }

    #[test]
    fn config_overrides_and_rejects_unknown_keys() {
        let config =
            Config::parse("key_dirs = [\"/k\"]\nidle_exit_secs = 2\n[limits]\nmax_jobs = 1\n")
                .unwrap();
        assert_eq!(config.key_dirs, [PathBuf::from("/k")]);
        assert_eq!(config.limits.max_jobs, 1);
        assert_eq!(config.limits.job_bytes, 50_000_000);
        assert!(Config::parse("keydirs = []").is_err());
    }
}
