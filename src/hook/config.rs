//! The server-configurable bounds the linter enforces, with their defaults.
//!
//! The spec makes `reports` and `days` "editable fields with upper bounds"
//! and asks for a client-side disk cap of "50MB or so"; every other cap here
//! exists so that a reviewed hook has a known worst case on the machine.

use serde::{Deserialize, Serialize};

/// Bounds and defaults for hook files. `Default` gives the documented values;
/// daisy may embed this in its configuration (unknown fields are refused,
/// omitted ones take their defaults) and should call
/// [`LintConfig::validate`] once when loading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LintConfig {
    /// Largest hook file accepted, in bytes (default 256 KiB).
    pub max_file_bytes: usize,
    /// `limits.reports` when omitted (default 10).
    pub default_reports: u32,
    /// Upper bound of `limits.reports` (default 1000).
    pub max_reports: u32,
    /// `limits.days` when omitted (default 7).
    pub default_days: u32,
    /// Upper bound of `limits.days` (default 30).
    pub max_days: u32,
    /// Most steps in one hook (default 64).
    pub max_steps: u32,
    /// A step's `max_bytes` when omitted (default 1 MiB).
    pub default_max_bytes: u32,
    /// Upper bound of a step's `max_bytes` (default 10 MiB).
    pub max_max_bytes: u32,
    /// Upper bound of the sum of all steps' `max_bytes` (default 50 MiB, the
    /// spec's client-side disk cap).
    pub max_total_bytes: u64,
    /// A step's `timeout_secs` when omitted (default 10).
    pub default_timeout_secs: u32,
    /// Upper bound of a step's `timeout_secs` (default 60).
    pub max_timeout_secs: u32,
    /// A journal step's `lines` when omitted (default 1000).
    pub default_journal_lines: u32,
    /// Upper bound of a journal step's `lines` (default 10000).
    pub max_journal_lines: u32,
    /// Root of the file system in which bare command names are resolved
    /// against [`crate::hook::FIXED_PATH`] (default `/`; daisy may point it at
    /// an Ubuntu tree).
    pub command_root: std::path::PathBuf,
}

impl Default for LintConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 256 * 1024,
            default_reports: 10,
            max_reports: 1000,
            default_days: 7,
            max_days: 30,
            max_steps: 64,
            default_max_bytes: 1024 * 1024,
            max_max_bytes: 10 * 1024 * 1024,
            max_total_bytes: 50 * 1024 * 1024,
            default_timeout_secs: 10,
            max_timeout_secs: 60,
            default_journal_lines: 1000,
            max_journal_lines: 10_000,
            command_root: std::path::PathBuf::from("/"),
        }
    }
}

/// A [`LintConfig`] that contradicts itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A default is 0 or above its upper bound.
    #[error(
        "lint configuration: `{default_name}` = {default} must be between 1 and `{max_name}` = {max}; fix the server configuration"
    )]
    DefaultOutOfBounds {
        /// The default's field name.
        default_name: &'static str,
        /// Its value.
        default: u64,
        /// The bound's field name.
        max_name: &'static str,
        /// Its value.
        max: u64,
    },
}

impl LintConfig {
    /// Checks that every default lies within its bound, so that a hook
    /// relying on defaults never violates the configuration it was linted
    /// with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pairs: [(&'static str, u64, &'static str, u64); 6] = [
            (
                "default_reports",
                self.default_reports.into(),
                "max_reports",
                self.max_reports.into(),
            ),
            (
                "default_days",
                self.default_days.into(),
                "max_days",
                self.max_days.into(),
            ),
            (
                "default_max_bytes",
                self.default_max_bytes.into(),
                "max_max_bytes",
                self.max_max_bytes.into(),
            ),
            (
                "max_max_bytes",
                self.max_max_bytes.into(),
                "max_total_bytes",
                self.max_total_bytes,
            ),
            (
                "default_timeout_secs",
                self.default_timeout_secs.into(),
                "max_timeout_secs",
                self.max_timeout_secs.into(),
            ),
            (
                "default_journal_lines",
                self.default_journal_lines.into(),
                "max_journal_lines",
                self.max_journal_lines.into(),
            ),
        ];
        for (default_name, default, max_name, max) in pairs {
            if default == 0 || default > max {
                return Err(ConfigError::DefaultOutOfBounds {
                    default_name,
                    default,
                    max_name,
                    max,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_documented_defaults_are_consistent() {
        LintConfig::default().validate().unwrap();
    }

    #[test]
    fn a_default_above_its_bound_is_refused() {
        let cfg = LintConfig {
            default_days: 31,
            ..LintConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::DefaultOutOfBounds {
                default_name: "default_days",
                ..
            })
        ));
        let cfg = LintConfig {
            default_reports: 0,
            ..LintConfig::default()
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn a_server_config_overrides_only_what_it_names() {
        let cfg: LintConfig = toml::from_str("max_days = 14\ndefault_days = 3\n").unwrap();
        assert_eq!((cfg.max_days, cfg.default_days), (14, 3));
        assert_eq!(cfg.max_reports, LintConfig::default().max_reports);
        assert!(toml::from_str::<LintConfig>("max_dayz = 14").is_err());
    }
}
