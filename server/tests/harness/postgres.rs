//! A throwaway PostgreSQL for tests: `initdb` once per build into a template
//! under `CARGO_TARGET_TMPDIR`, then per test a copy of it started with
//! `pg_ctl` on a unix socket in a temporary directory, as a non-root user
//! (PostgreSQL refuses to run as root; tests run as root here and in CI).
//! Stopped (`-m immediate`) and removed when the guard drops.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Whether this run is CI's, where a missing tool fails a test instead of
/// skipping it. (Here rather than in the harness root: other crates'
/// harnesses include this file by path.)
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A plain client (none of daisy's session settings) for `url`, its
/// connection driven by a task on the current runtime.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    client
}

/// The unprivileged account the server runs as when the tests are root.
const PG_USER: &str = "daisy-pgtest";

static TEMPLATE_LOCK: Mutex<()> = Mutex::new(());

/// A running PostgreSQL.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    next_db: std::sync::atomic::AtomicUsize,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").is_file() && dir.join("initdb").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn id_of(flag: &str) -> Result<u32, String> {
    output(Command::new("id").args([flag, PG_USER]))?
        .parse()
        .map_err(|e| format!("id {flag} {PG_USER}: {e}"))
}

/// `(uid, gid)` to run PostgreSQL as; `None` when we are not root.
fn owner() -> Result<Option<(u32, u32)>, String> {
    if output(Command::new("id").arg("-u"))? != "0" {
        return Ok(None);
    }
    if id_of("-u").is_err() {
        // A parallel test may create it at the same time: check again after.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_USER,
            ])
            .output();
    }
    Ok(Some((id_of("-u")?, id_of("-g")?)))
}

fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

fn template(bin: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let _guard = TEMPLATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let version = output(Command::new(bin.join("pg_ctl")).arg("--version"))?;
    let tag: String = version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let template = base.join(format!("pg-template-{tag}"));
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    // initdb runs as the unprivileged user, which may not be able to enter
    // the target directory: build in /tmp, then copy.
    let work = tempfile::Builder::new()
        .prefix("daisy-pg-initdb-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    chown(work.path(), owner)?;
    let data = work.path().join("data");
    output(as_owner(
        Command::new(bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]),
        owner,
    ))?;
    let partial = base.join(format!("pg-template-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    output(Command::new("cp").arg("-a").arg(&data).arg(&partial))?;
    let _ = std::fs::remove_dir_all(&template);
    std::fs::rename(&partial, &template).map_err(|e| e.to_string())?;
    Ok(template)
}

impl Postgres {
    /// Starts a fresh server. Outside CI, `Ok(None)` with a loud message when
    /// PostgreSQL is not installed; in CI that is a failure.
    pub fn start() -> Option<Postgres> {
        Postgres::start_with(false)
    }

    /// Like [`Postgres::start`], with `fsync` on (tests run with it off):
    /// for benchmarks whose figures must be those of a durable database.
    pub fn start_durable() -> Option<Postgres> {
        Postgres::start_with(true)
    }

    fn start_with(fsync: bool) -> Option<Postgres> {
        match Postgres::try_start(fsync) {
            Ok(pg) => Some(pg),
            Err(e) if !in_ci() && e.starts_with("not installed") => {
                eprintln!("WARNING: PostgreSQL half of this test NOT RUN: {e}");
                None
            }
            Err(e) => panic!("cannot start the test PostgreSQL: {e}"),
        }
    }

    fn try_start(fsync: bool) -> Result<Postgres, String> {
        let bin = find_bin().ok_or("not installed: no pg_ctl/initdb on PATH or in /usr/lib/postgresql (apt-get install postgresql)")?;
        let owner = owner()?;
        let template = template(&bin, owner)?;
        let dir = tempfile::Builder::new()
            .prefix("daisy-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        chown(dir.path(), owner)?;
        let data = dir.path().join("data");
        output(Command::new("cp").arg("-a").arg(&template).arg(&data))?;
        let pg = Postgres {
            dir,
            bin,
            owner,
            next_db: std::sync::atomic::AtomicUsize::new(0),
        };
        let options = format!(
            "-k {} -c listen_addresses='' -c max_connections=200{}",
            pg.dir.path().display(),
            if fsync { "" } else { " -F" }
        );
        output(as_owner(
            Command::new(pg.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(pg.dir.path().join("log"))
                .args(["-o", &options, "-w", "start"]),
            owner,
        ))
        .map_err(|e| {
            let log = std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default();
            format!("{e}\n{log}")
        })?;
        Ok(pg)
    }

    /// Connection string for a database on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "host={} user=postgres dbname={db}",
            self.dir.path().display()
        )
    }

    /// A `postgresql://` URI for a database on this server (what `--database` takes).
    pub fn uri(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@localhost/{db}?host={}",
            self.dir.path().display()
        )
    }

    /// Creates an empty database and returns its name.
    pub async fn create_database(&self) -> String {
        let n = self
            .next_db
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("daisy_test_{n}");
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        drop(client);
        let _ = task.await;
        name
    }

    /// Creates an empty database and returns its connection string.
    pub async fn fresh_database(&self) -> String {
        let name = self.create_database().await;
        self.url(&name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_owner(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "immediate", "-w", "stop"]),
            self.owner,
        )
        .output();
    }
}
