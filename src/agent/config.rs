//! The agent's settings, read the way whoopsie reads its own.
//!
//! | setting | first | then | default |
//! | --- | --- | --- | --- |
//! | server URL | `CRASH_DB_URL` | `server_url` in `hooks.conf` | [`DEFAULT_SERVER_URL`] |
//! | opt-out | `report_crashes=false` in `/etc/default/whoopsie` | `enabled = false` in `hooks.conf` | enabled |
//! | system id | `CRASH_DB_IDENTIFIER` | `/var/lib/whoopsie/whoopsie-id` | SHA-512 hex of the DMI product UUID, else of `/etc/machine-id` |
//! | CA file | `ca_file` in `hooks.conf` | | the system trust store |
//! | spool | `spool_dir`, `spool_max_bytes` | | [`DEFAULT_SPOOL_DIR`], [`DEFAULT_SPOOL_MAX_BYTES`] |
//! | timeout | `timeout_secs` (whole request) | | [`DEFAULT_TIMEOUT_SECS`] |
//! | crash directory (`watch`) | `crash_dir` | | `/var/crash` |
//! | state directory | `state_dir` | | `/var/lib/apport-hooks` |
//!
//! `hooks.conf` is TOML; unknown keys are refused (a typo such as
//! `enable = false` must not silently leave hooks on). A missing file means
//! the defaults; an unreadable or invalid one is an error (the agent cannot
//! know whether the administrator opted out). `/etc/default/whoopsie` is read
//! as `KEY=value` lines without a shell (CVE-2016-9949 was apport `eval`ing
//! data); `[section]` lines and `#` comments are skipped, so both the old
//! shell-variable form and the current `[General]` key-file form work.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha512};
use thiserror::Error;

use super::ids::{IdError, SystemId};

/// The server whoopsie uses when nothing else is configured.
pub const DEFAULT_SERVER_URL: &str = "https://daisy.ubuntu.com";
/// The agent's own configuration file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/apport-hooks/hooks.conf";
/// whoopsie's settings (`report_crashes`).
pub const WHOOPSIE_DEFAULTS_FILE: &str = "/etc/default/whoopsie";
/// Where whoopsie keeps the system id it computed.
pub const WHOOPSIE_ID_FILE: &str = "/var/lib/whoopsie/whoopsie-id";
/// The DMI product UUID whoopsie hashes into the system id.
pub const DMI_PRODUCT_UUID_FILE: &str = "/sys/class/dmi/id/product_uuid";
/// The fallback source of the system id (no DMI, e.g. most ARM machines).
pub const MACHINE_ID_FILE: &str = "/etc/machine-id";
/// Where undeliverable results wait.
pub const DEFAULT_SPOOL_DIR: &str = "/var/spool/apport-hooks";
/// The spool's bound: the spec's "client-side disk cap of 50 MB".
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 50 * 1024 * 1024;
/// The cap on one whole request (connect, send, reply), in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// The cap on establishing a connection (TCP and TLS), in seconds.
pub const CONNECT_TIMEOUT_SECS: u64 = 20;
/// Largest settings file read (they are a few lines).
pub const MAX_SETTINGS_FILE_BYTES: u64 = 64 * 1024;
/// Largest `timeout_secs` accepted (one day).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Length of the DMI product UUID text whoopsie hashes.
const DMI_UUID_CHARS: usize = 36;

/// Every file the settings are read from; tests point them at a temporary
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `hooks.conf` ([`DEFAULT_CONFIG_FILE`]).
    pub config_file: PathBuf,
    /// whoopsie's settings ([`WHOOPSIE_DEFAULTS_FILE`]).
    pub whoopsie_defaults: PathBuf,
    /// whoopsie's stored id ([`WHOOPSIE_ID_FILE`]).
    pub whoopsie_id: PathBuf,
    /// The DMI product UUID ([`DMI_PRODUCT_UUID_FILE`]).
    pub dmi_product_uuid: PathBuf,
    /// The machine id ([`MACHINE_ID_FILE`]).
    pub machine_id: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            config_file: DEFAULT_CONFIG_FILE.into(),
            whoopsie_defaults: WHOOPSIE_DEFAULTS_FILE.into(),
            whoopsie_id: WHOOPSIE_ID_FILE.into(),
            dmi_product_uuid: DMI_PRODUCT_UUID_FILE.into(),
            machine_id: MACHINE_ID_FILE.into(),
        }
    }
}

/// The environment variables whoopsie honours (injectable for tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `CRASH_DB_URL`.
    pub crash_db_url: Option<String>,
    /// `CRASH_DB_IDENTIFIER`.
    pub crash_db_identifier: Option<String>,
}

impl Environment {
    /// Reads `CRASH_DB_URL` and `CRASH_DB_IDENTIFIER` from this process;
    /// empty or non-UTF-8 values count as unset.
    pub fn from_process() -> Self {
        let get = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            crash_db_url: get("CRASH_DB_URL"),
            crash_db_identifier: get("CRASH_DB_IDENTIFIER"),
        }
    }
}

/// Why the settings could not be read.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A settings file exists but could not be read.
    #[error("cannot read {path}: {source}; fix its permissions or remove it")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A settings file is larger than [`MAX_SETTINGS_FILE_BYTES`].
    #[error("{path} is over {MAX_SETTINGS_FILE_BYTES} bytes; it should be a few lines")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// `hooks.conf` is not valid.
    #[error("{path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (from the TOML parser, with the line).
        message: String,
    },
    /// A server URL is not an `http://` or `https://` URL.
    #[error(
        "the server URL {url:?} from {source_name} is not usable: {reason}; \
         give an http:// or https:// URL without query or credentials"
    )]
    BadServerUrl {
        /// The URL.
        url: String,
        /// Where it came from.
        source_name: &'static str,
        /// Why.
        reason: String,
    },
    /// No system id could be found or computed.
    #[error(
        "no system id: set CRASH_DB_IDENTIFIER, or make {whoopsie_id}, {dmi} or {machine_id} readable"
    )]
    NoSystemId {
        /// whoopsie's id file.
        whoopsie_id: PathBuf,
        /// The DMI file.
        dmi: PathBuf,
        /// The machine-id file.
        machine_id: PathBuf,
    },
    /// `CRASH_DB_IDENTIFIER` is not a usable id.
    #[error("CRASH_DB_IDENTIFIER: {0}")]
    BadIdentifier(#[source] IdError),
}

/// Where a setting's value came from (shown by `apport-hook status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable.
    Environment,
    /// `hooks.conf`.
    ConfigFile,
    /// The built-in default.
    Default,
}

impl Origin {
    /// A short name for display and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::ConfigFile => "config-file",
            Self::Default => "default",
        }
    }
}

/// Why hooks are not run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptOut {
    /// `report_crashes=false` in whoopsie's settings.
    WhoopsieReportCrashes {
        /// The file that says so.
        path: PathBuf,
    },
    /// `enabled = false` in `hooks.conf`.
    HooksDisabled {
        /// The file that says so.
        path: PathBuf,
    },
}

impl std::fmt::Display for OptOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WhoopsieReportCrashes { path } => {
                write!(
                    f,
                    "crash reporting is off (report_crashes=false in {})",
                    path.display()
                )
            }
            Self::HooksDisabled { path } => {
                write!(f, "hooks are off (enabled = false in {})", path.display())
            }
        }
    }
}

/// `hooks.conf` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    server_url: Option<String>,
    enabled: Option<bool>,
    ca_file: Option<PathBuf>,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    timeout_secs: Option<u64>,
    crash_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
}

/// The resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The server's base URL, without a trailing `/`.
    pub server_url: String,
    /// Where [`Settings::server_url`] came from.
    pub server_url_origin: Origin,
    /// Set when the machine opted out: no hook may run.
    pub opt_out: Option<OptOut>,
    /// A PEM file of CA certificates to trust instead of the system store.
    pub ca_file: Option<PathBuf>,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// The spool's bound in bytes.
    pub spool_max_bytes: u64,
    /// The cap on one whole request.
    pub timeout: Duration,
    /// The cap on connecting.
    pub connect_timeout: Duration,
    /// The directory `watch` watches for `.uploaded` markers.
    pub crash_dir: PathBuf,
    /// The agent's state (handled uploads, last runs).
    pub state_dir: PathBuf,
}

impl Settings {
    /// Reads the settings from `paths` and `env` (see the module doc for the
    /// order).
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable or invalid file or a bad URL.
    pub fn load(paths: &Paths, env: &Environment) -> Result<Self, ConfigError> {
        let file = match read_capped(&paths.config_file)? {
            None => FileSettings::default(),
            Some(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
                    path: paths.config_file.clone(),
                    message: "not UTF-8".into(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: paths.config_file.clone(),
                    message: e.to_string(),
                })?
            }
        };
        let (url, origin, source_name) = if let Some(url) = &env.crash_db_url {
            (url.clone(), Origin::Environment, "CRASH_DB_URL")
        } else if let Some(url) = &file.server_url {
            (url.clone(), Origin::ConfigFile, "hooks.conf")
        } else {
            (
                DEFAULT_SERVER_URL.to_owned(),
                Origin::Default,
                "the default",
            )
        };
        let server_url =
            normalize_server_url(&url).map_err(|reason| ConfigError::BadServerUrl {
                url: url.clone(),
                source_name,
                reason,
            })?;

        let opt_out = if whoopsie_reports_off(&paths.whoopsie_defaults)? {
            Some(OptOut::WhoopsieReportCrashes {
                path: paths.whoopsie_defaults.clone(),
            })
        } else if file.enabled == Some(false) {
            Some(OptOut::HooksDisabled {
                path: paths.config_file.clone(),
            })
        } else {
            None
        };

        let timeout_secs = file.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
            return Err(ConfigError::Invalid {
                path: paths.config_file.clone(),
                message: format!(
                    "timeout_secs must be 1 to {MAX_TIMEOUT_SECS}, got {timeout_secs}"
                ),
            });
        }
        Ok(Self {
            server_url,
            server_url_origin: origin,
            opt_out,
            ca_file: file.ca_file,
            spool_dir: file.spool_dir.unwrap_or_else(|| DEFAULT_SPOOL_DIR.into()),
            spool_max_bytes: file.spool_max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES),
            timeout: Duration::from_secs(timeout_secs),
            connect_timeout: Duration::from_secs(CONNECT_TIMEOUT_SECS.min(timeout_secs)),
            crash_dir: file
                .crash_dir
                .unwrap_or_else(|| super::crash_watch::DEFAULT_CRASH_DIR.into()),
            state_dir: file
                .state_dir
                .unwrap_or_else(|| super::state_dir::DEFAULT_STATE_DIR.into()),
        })
    }

    /// Whether hooks may run on this machine.
    pub fn hooks_enabled(&self) -> bool {
        self.opt_out.is_none()
    }

    /// Replaces the server URL (the `--server` flag), with the same checks.
    ///
    /// # Errors
    /// [`ConfigError::BadServerUrl`].
    pub fn with_server_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.server_url =
            normalize_server_url(url).map_err(|reason| ConfigError::BadServerUrl {
                url: url.to_owned(),
                source_name: "--server",
                reason,
            })?;
        self.server_url_origin = Origin::Environment;
        Ok(self)
    }
}

/// Checks a server URL and drops trailing slashes: `http` or `https`, a
/// host, no credentials, no query or fragment (the agent appends path
/// segments to it).
pub fn normalize_server_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not allowed".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a query or fragment is not allowed".into());
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Reads a small settings file; `None` when it does not exist.
fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut data = Vec::new();
    file.take(MAX_SETTINGS_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > MAX_SETTINGS_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(data))
}

/// The value of `key` in a `KEY=value` file: the last assignment wins (as
/// when a shell sources it); quotes around the value are removed; an
/// `export ` prefix is allowed. Nothing is expanded or executed.
pub fn shell_variable(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.trim() != key {
            continue;
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        found = Some(unquoted.to_owned());
    }
    found
}

/// Whether whoopsie's settings say `report_crashes=false`.
fn whoopsie_reports_off(path: &Path) -> Result<bool, ConfigError> {
    let Some(bytes) = read_capped(path)? else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(shell_variable(&text, "report_crashes").is_some_and(|v| v.eq_ignore_ascii_case("false")))
}

/// Where the system id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrigin {
    /// `CRASH_DB_IDENTIFIER`.
    Environment,
    /// whoopsie's stored id.
    WhoopsieIdFile,
    /// SHA-512 of the DMI product UUID (what whoopsie computes).
    DmiProductUuid,
    /// SHA-512 of `/etc/machine-id`.
    MachineId,
}

impl IdOrigin {
    /// A short name for display and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "CRASH_DB_IDENTIFIER",
            Self::WhoopsieIdFile => "whoopsie-id",
            Self::DmiProductUuid => "dmi-product-uuid",
            Self::MachineId => "machine-id",
        }
    }
}

/// Lowercase hex SHA-512, the form of whoopsie's system id.
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

/// Reads a small file, trimmed; `None` if it is missing, unreadable (the DMI
/// file is root-only) or empty.
fn read_trimmed(path: &Path) -> Option<String> {
    match read_capped(path) {
        Ok(Some(bytes)) => {
            let text = String::from_utf8(bytes).ok()?;
            let trimmed = text.trim();
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        }
        Ok(None) => None,
        Err(e) => {
            tracing::debug!("{e}");
            None
        }
    }
}

/// Finds the system id the way whoopsie does: `CRASH_DB_IDENTIFIER`, then
/// whoopsie's stored id, then the SHA-512 hex of the 36-character DMI product
/// UUID, then of `/etc/machine-id`.
///
/// # Errors
/// [`ConfigError::BadIdentifier`] for an unusable `CRASH_DB_IDENTIFIER`,
/// [`ConfigError::NoSystemId`] when no source is available.
pub fn system_id(paths: &Paths, env: &Environment) -> Result<(SystemId, IdOrigin), ConfigError> {
    if let Some(id) = &env.crash_db_identifier {
        let id = SystemId::parse(id).map_err(ConfigError::BadIdentifier)?;
        return Ok((id, IdOrigin::Environment));
    }
    if let Some(text) = read_trimmed(&paths.whoopsie_id) {
        match SystemId::parse(&text) {
            Ok(id) => return Ok((id, IdOrigin::WhoopsieIdFile)),
            Err(e) => tracing::warn!(
                "ignoring {}: {e}; remove it so whoopsie writes a new one",
                paths.whoopsie_id.display()
            ),
        }
    }
    if let Some(uuid) = read_trimmed(&paths.dmi_product_uuid)
        && uuid.len() == DMI_UUID_CHARS
    {
        return Ok((
            SystemId::parse(&sha512_hex(uuid.as_bytes())).map_err(ConfigError::BadIdentifier)?,
            IdOrigin::DmiProductUuid,
        ));
    }
    if let Some(machine_id) = read_trimmed(&paths.machine_id) {
        return Ok((
            SystemId::parse(&sha512_hex(machine_id.as_bytes()))
                .map_err(ConfigError::BadIdentifier)?,
            IdOrigin::MachineId,
        ));
    }
    Err(ConfigError::NoSystemId {
        whoopsie_id: paths.whoopsie_id.clone(),
        dmi: paths.dmi_product_uuid.clone(),
        machine_id: paths.machine_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_variables_are_read_without_a_shell() {
        let text = "# comment\n[General]\nreport_crashes=true\nexport report_crashes=\"false\"\n";
        assert_eq!(
            shell_variable(text, "report_crashes").as_deref(),
            Some("false")
        );
        assert_eq!(
            shell_variable("x=$(rm -rf /)\n", "x").as_deref(),
            Some("$(rm -rf /)")
        );
        assert_eq!(
            shell_variable("report_crashes = 'true'\n", "report_crashes").as_deref(),
            Some("true")
        );
        assert_eq!(shell_variable("other=1\n", "report_crashes"), None);
    }

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(
            normalize_server_url("https://daisy.ubuntu.com/").as_deref(),
            Ok("https://daisy.ubuntu.com")
        );
        assert_eq!(
            normalize_server_url("http://127.0.0.1:5000/daisy/").as_deref(),
            Ok("http://127.0.0.1:5000/daisy")
        );
        for bad in [
            "ftp://x",
            "https://",
            "file:///etc",
            "https://u:p@x",
            "https://x/?a=b",
            "daisy.ubuntu.com",
        ] {
            assert!(normalize_server_url(bad).is_err(), "{bad}");
        }
    }
}
