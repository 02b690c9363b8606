//! daisy's configuration: defaults, then the TOML file, then environment
//! variables and command-line flags (clap reads both, flags win).
//!
//! Every limit lives here with its default, documented once in
//! `docs/daisy.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The configuration file read when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/daisy/daisy.toml";
/// Where `daisy serve` listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The data directory for a user; the systemd unit passes `/var/lib/daisy`.
pub const DEFAULT_DATA_DIR: &str = "./daisy-data";
/// The SQLite database file inside the data directory.
pub const SQLITE_FILE_NAME: &str = "daisy.sqlite3";

/// What went wrong while building the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for daisy.
    #[error("invalid configuration file {path}: {message} (see docs/daisy.md for the keys)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A value does not make sense.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The options `serve` and `admin` share, as given on the command line or in
/// the environment; `None` means "not given here".
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// Configuration file (TOML). Default: /etc/daisy/daisy.toml when it exists.
    #[arg(long, env = "DAISY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (created when missing). Default: ./daisy-data.
    #[arg(long, env = "DAISY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite` (a file in the data directory) or a `postgres://` URL. Default: sqlite.
    #[arg(long, env = "DAISY_DATABASE", value_name = "URL")]
    pub database: Option<String>,
}

/// The file's shape; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    public_url: Option<String>,
    retracer: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_report_bytes: Option<usize>,
    max_core_bytes: Option<usize>,
    core_free_disk_bytes: Option<u64>,
    max_result_bytes: Option<usize>,
    max_api_body_bytes: Option<usize>,
    body_bytes_in_flight: Option<usize>,
    max_connections: Option<usize>,
    request_timeout_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    max_hook_reports: Option<u32>,
    max_hook_days: Option<u32>,
    hook_disk_cap_bytes: Option<u64>,
    offer_multiple: Option<u32>,
    token_ttl_secs: Option<u64>,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://…` or key=value form).
    Postgres(String),
}

/// Server-wide bounds. Hook authors cannot change these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest crash upload body (BSON, core left out). Default 16 MiB.
    pub max_report_bytes: usize,
    /// Largest core dump upload (base64 text). Default 256 MiB.
    pub max_core_bytes: usize,
    /// Free space a core upload must leave on the data directory's file
    /// system (checked before it starts, as free space minus
    /// `max_core_bytes`): cores never fill the disk the database needs.
    /// Default 1 GiB.
    pub core_free_disk_bytes: u64,
    /// Largest hook result after decompression. Default 50 MiB (the client's own cap).
    pub max_result_bytes: usize,
    /// Largest JSON API body. Default 1 MiB.
    pub max_api_body_bytes: usize,
    /// Bytes that crash and result bodies may hold in memory at once,
    /// beyond the first 64 KiB of each (`body_budget`); a body that would
    /// pass it is refused with `503`. Default 256 MiB.
    pub body_bytes_in_flight: usize,
    /// Client connections served at once. When they are all taken, daisy
    /// stops accepting (new clients wait in the kernel's listen queue)
    /// until one closes. Lowered at start to what the open-file limit
    /// leaves room for (`fd_limit`). Default 1024.
    pub max_connections: usize,
    /// Whole-request timeout, body included, in seconds. Default 60.
    pub request_timeout_secs: u64,
    /// Time a client has to send a request's head (and, on TLS, to finish
    /// the handshake), in seconds; then the connection is closed, so a
    /// client that never finishes its headers (slowloris) cannot hold it.
    /// Default 10.
    pub header_read_timeout_secs: u64,
    /// Upper bound of a hook's `reports` limit. Default 1000.
    pub max_hook_reports: u32,
    /// Upper bound of a hook's `days` limit. Default 30.
    pub max_hook_days: u32,
    /// Total result bytes one hook may store before it is disabled. Default 100 MiB.
    pub hook_disk_cap_bytes: u64,
    /// A hook is offered while outstanding tokens + results < this × `reports`. Default 2.
    pub offer_multiple: u32,
    /// How long a hook token stays valid, in seconds. Default 7 days.
    pub token_ttl_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_report_bytes: 16 << 20,
            max_core_bytes: 256 << 20,
            core_free_disk_bytes: 1 << 30,
            max_result_bytes: 50 << 20,
            max_api_body_bytes: 1 << 20,
            body_bytes_in_flight: 256 << 20,
            max_connections: 1024,
            request_timeout_secs: 60,
            header_read_timeout_secs: 10,
            max_hook_reports: 1000,
            max_hook_days: 30,
            hook_disk_cap_bytes: 100 << 20,
            offer_multiple: 2,
            token_ttl_secs: 7 * 24 * 3600,
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address of `serve`.
    pub listen: SocketAddr,
    /// The data directory (cores, keys, the SQLite file).
    pub data_dir: PathBuf,
    /// The database.
    pub database: Database,
    /// Base URL clients reach this server at, used in hook lists. Default
    /// `http://<listen>`.
    pub public_url: String,
    /// A retracer is deployed: answer `CORE` for unknown SASes.
    pub retracer: bool,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Server-wide bounds.
    pub limits: Limits,
}

/// The PEM files of the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first (`tls_cert`).
    pub cert: PathBuf,
    /// Private key of the leaf: PKCS#8, PKCS#1 or SEC1 (`tls_key`).
    pub key: PathBuf,
}

fn tls_files(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        _ => Err(ConfigError::Invalid(
            "TLS needs both tls_cert and tls_key (--tls-cert and --tls-key); give both or neither"
                .into(),
        )),
    }
}

impl Config {
    /// Builds the configuration: defaults < file < environment < flags.
    /// `listen` is the `serve` flag (None for `admin`).
    pub fn load(common: &CommonArgs, listen: Option<&str>) -> Result<Config, ConfigError> {
        let file = match &common.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                read_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => FileConfig::default(),
        };
        Config::resolve(common, listen, file)
    }

    /// Builds a configuration from TOML text, flags still winning.
    pub fn from_toml(
        text: &str,
        common: &CommonArgs,
        listen: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let file = parse_file(text, Path::new("<string>"))?;
        Config::resolve(common, listen, file)
    }

    fn resolve(
        common: &CommonArgs,
        listen: Option<&str>,
        file: FileConfig,
    ) -> Result<Config, ConfigError> {
        let listen_text = listen
            .map(str::to_owned)
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "listen address {listen_text:?} is not IP:PORT (e.g. 127.0.0.1:8080)"
            ))
        })?;
        let data_dir = common
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database = match common.database.clone().or(file.database).as_deref() {
            None | Some("sqlite") => Database::Sqlite(data_dir.join(SQLITE_FILE_NAME)),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url.to_owned())
            }
            Some(path) if path.starts_with("sqlite:") => {
                Database::Sqlite(PathBuf::from(path.trim_start_matches("sqlite:")))
            }
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "database {other:?}: use `sqlite`, `sqlite:/path/file` or a postgres:// URL"
                )));
            }
        };
        let scheme = if file.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let public_url = file
            .public_url
            .unwrap_or_else(|| format!("{scheme}://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        let d = Limits::default();
        let f = file.limits;
        let limits = Limits {
            max_report_bytes: f.max_report_bytes.unwrap_or(d.max_report_bytes),
            max_core_bytes: f.max_core_bytes.unwrap_or(d.max_core_bytes),
            core_free_disk_bytes: f.core_free_disk_bytes.unwrap_or(d.core_free_disk_bytes),
            max_result_bytes: f.max_result_bytes.unwrap_or(d.max_result_bytes),
            max_api_body_bytes: f.max_api_body_bytes.unwrap_or(d.max_api_body_bytes),
            body_bytes_in_flight: f.body_bytes_in_flight.unwrap_or(d.body_bytes_in_flight),
            max_connections: f.max_connections.unwrap_or(d.max_connections),
            request_timeout_secs: f.request_timeout_secs.unwrap_or(d.request_timeout_secs),
            header_read_timeout_secs: f
                .header_read_timeout_secs
                .unwrap_or(d.header_read_timeout_secs),
            max_hook_reports: f.max_hook_reports.unwrap_or(d.max_hook_reports),
            max_hook_days: f.max_hook_days.unwrap_or(d.max_hook_days),
            hook_disk_cap_bytes: f.hook_disk_cap_bytes.unwrap_or(d.hook_disk_cap_bytes),
            offer_multiple: f.offer_multiple.unwrap_or(d.offer_multiple),
            token_ttl_secs: f.token_ttl_secs.unwrap_or(d.token_ttl_secs),
        };
        if limits.request_timeout_secs == 0
            || limits.header_read_timeout_secs == 0
            || limits.offer_multiple == 0
            || limits.max_connections == 0
        {
            return Err(ConfigError::Invalid(
                "limits.request_timeout_secs, limits.header_read_timeout_secs, \
                 limits.offer_multiple and limits.max_connections must be at least 1"
                    .into(),
            ));
        }
        let max_days = apport_hooks::bundle::MAX_BUNDLE_DAYS;
        if limits.max_hook_reports == 0 || limits.max_hook_days == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_hook_reports and limits.max_hook_days must be at least 1".into(),
            ));
        }
        if u64::from(limits.max_hook_days) > u64::from(max_days) {
            return Err(ConfigError::Invalid(format!(
                "limits.max_hook_days is {}, but a signed bundle lives at most {max_days} days",
                limits.max_hook_days
            )));
        }
        let tls = tls_files(file.tls_cert, file.tls_key)?;
        Ok(Config {
            listen,
            data_dir,
            database,
            public_url,
            retracer: file.retracer.unwrap_or(false),
            tls,
            limits,
        })
    }

    /// Applies `--tls-cert` / `--tls-key` (flags win over the file); both or
    /// neither must end up set. A `public_url` that was derived from the
    /// listen address follows the scheme.
    pub fn set_tls(
        &mut self,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<(), ConfigError> {
        if cert.is_none() && key.is_none() {
            return Ok(());
        }
        let (old_cert, old_key) = match self.tls.take() {
            Some(t) => (Some(t.cert), Some(t.key)),
            None => (None, None),
        };
        let derived = format!("http://{}", self.listen);
        self.tls = tls_files(cert.or(old_cert), key.or(old_key))?;
        if self.tls.is_some() && self.public_url == derived {
            self.public_url = format!("https://{}", self.listen);
        }
        Ok(())
    }

    /// Creates the data directory (and its `cores/` folder) when missing.
    pub fn create_data_dir(&self) -> std::io::Result<()> {
        // 0700 whatever the umask: the signing keys live here, and a
        // group-writable directory above them is refused (`signing`).
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.data_dir.join("cores"))
    }

    /// Removes core uploads' temporary files (`cores/*.partial`) last
    /// changed more than `older_than` ago: left by a process that was
    /// killed mid-upload (a live upload removes its own). Not younger ones:
    /// another daisy may share the data directory. Returns how many went.
    pub fn sweep_partial_cores(&self, older_than: std::time::Duration) -> std::io::Result<usize> {
        let mut removed = 0usize;
        for entry in std::fs::read_dir(self.data_dir.join("cores"))? {
            let entry = entry?;
            let name = entry.file_name();
            let meta = entry.metadata()?;
            let old = changed_longer_ago_than(&meta, older_than);
            if name.to_string_lossy().ends_with(".partial") && meta.is_file() && old {
                std::fs::remove_file(entry.path())?;
                removed = removed.saturating_add(1);
            }
        }
        Ok(removed)
    }
}

/// Whether a file was last written more than `age` ago (`false` when its
/// time cannot be read or lies in the future): the test for core files no
/// upload in progress can still own.
pub(crate) fn changed_longer_ago_than(meta: &std::fs::Metadata, age: std::time::Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn old_unfinished_core_uploads_are_swept_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let flags = CommonArgs {
            data_dir: Some(dir.path().to_owned()),
            ..CommonArgs::default()
        };
        let config = Config::from_toml("", &flags, None).unwrap();
        config.create_data_dir().unwrap();
        let cores = dir.path().join("cores");
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for name in ["old.1.partial", "new.2.partial", "stored-core"] {
            let file = std::fs::File::create(cores.join(name)).unwrap();
            if name != "new.2.partial" {
                file.set_modified(hour_ago).unwrap();
            }
        }
        let removed = config
            .sweep_partial_cores(std::time::Duration::from_secs(3600))
            .unwrap();
        assert_eq!(removed, 1);
        assert!(!cores.join("old.1.partial").exists());
        assert!(
            cores.join("new.2.partial").exists(),
            "maybe still uploading"
        );
        assert!(cores.join("stored-core").exists(), "a stored core is kept");
    }

    #[test]
    fn defaults_are_loopback_and_sqlite_in_data_dir() {
        let c = Config::from_toml("", &CommonArgs::default(), None).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            c.database,
            Database::Sqlite(PathBuf::from(DEFAULT_DATA_DIR).join(SQLITE_FILE_NAME))
        );
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn flags_override_the_file() {
        let text = "listen = \"0.0.0.0:9000\"\ndatabase = \"postgres://db/daisy\"\n\
                    [limits]\nmax_hook_reports = 10\n";
        let from_file = Config::from_toml(text, &CommonArgs::default(), None).unwrap();
        assert_eq!(from_file.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(
            from_file.database,
            Database::Postgres("postgres://db/daisy".into())
        );
        assert_eq!(from_file.limits.max_hook_reports, 10);
        let flags = CommonArgs {
            database: Some("sqlite".into()),
            data_dir: Some("/srv/d".into()),
            ..CommonArgs::default()
        };
        let c = Config::from_toml(text, &flags, Some("127.0.0.1:1")).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
        assert_eq!(
            c.database,
            Database::Sqlite(PathBuf::from("/srv/d/daisy.sqlite3"))
        );
    }

    #[test]
    fn tls_needs_both_files_and_makes_the_public_url_https() {
        let half = Config::from_toml("tls_cert = \"/c.pem\"", &CommonArgs::default(), None);
        assert!(half.unwrap_err().to_string().contains("tls_key"));
        let mut c = Config::from_toml("", &CommonArgs::default(), None).unwrap();
        assert!(c.set_tls(None, Some("/k.pem".into())).is_err());
        c.set_tls(Some("/c.pem".into()), Some("/k.pem".into()))
            .unwrap();
        assert_eq!(c.public_url, "https://127.0.0.1:8080");
        assert_eq!(c.tls.unwrap().key, PathBuf::from("/k.pem"));
    }

    #[test]
    fn hook_limits_a_signed_bundle_cannot_carry_are_refused() {
        for toml in [
            "[limits]\nmax_hook_days = 91\n",
            "[limits]\nmax_hook_days = 0\n",
            "[limits]\nmax_hook_reports = 0\n",
        ] {
            let err = Config::from_toml(toml, &CommonArgs::default(), None).unwrap_err();
            assert!(
                err.to_string().contains("limits.max_hook_"),
                "{toml}: {err}"
            );
        }
        assert!(
            Config::from_toml(
                "[limits]\nmax_hook_days = 90\n",
                &CommonArgs::default(),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_toml("lisen = \"x\"", &CommonArgs::default(), None).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
