//! `apportd.toml`: trusted key directories, the revocation list and the limits.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::limits::{IDLE_EXIT, Limits};
use super::rollback::DEFAULT_STATE_DIR;
use crate::bundle::regular_file::{RegularFileError, check_trusted_parent, read_trusted_file};
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
    /// It could not be read as trust material: a symbolic link, not a
    /// regular file, too large, or writable (it or a directory above it)
    /// by a user other than root.
    #[error(
        "{path}: {reason}; the configuration chooses the trusted keys, so it must be a \
         regular file only root can write, in directories only root can write"
    )]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
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
        // It names the trusted keys, the revocation list and the state
        // directory of the anti-rollback marks: checked like the keys
        // themselves, failing closed.
        let untrusted = |e: RegularFileError| match e {
            RegularFileError::Io { source, .. } => ConfigError::Read {
                path: path.clone(),
                source,
            },
            other => ConfigError::Untrusted {
                path: path.clone(),
                reason: other.to_string(),
            },
        };
        check_trusted_parent(&path).map_err(untrusted)?;
        let bytes = read_trusted_file(&path, MAX_CONFIG_BYTES).map_err(untrusted)?;
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Read {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
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
    fn a_config_others_could_write_or_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apportd.toml");
        std::fs::write(&path, "idle_exit_secs = 5\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Config::load(Some(&path)).unwrap().idle_exit_secs, 5);
        // World-writable: its writer would choose the trusted keys.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = Config::load(Some(&path)).unwrap_err();
        assert!(matches!(err, ConfigError::Untrusted { .. }), "{err}");
        // A link to a file elsewhere.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = Config::load(Some(&link)).unwrap_err();
        assert!(matches!(err, ConfigError::Untrusted { .. }), "{err}");
        // In a directory others may write into.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let inside = open.join("apportd.toml");
        std::fs::write(&inside, "").unwrap();
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::load(Some(&inside)).unwrap_err();
        assert!(matches!(err, ConfigError::Untrusted { .. }), "{err}");
    }

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
