//! The real `daisy` binary as a child process on loopback, over SQLite or a
//! throwaway PostgreSQL (the server crate's own test harness, included, not
//! copied), operated with the real `daisy admin` CLI, killable and
//! restartable on the same data, database and address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[path = "../../server/tests/harness/postgres.rs"]
#[allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod postgres;

pub use postgres::Postgres;

/// Which database daisy runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `daisy.sqlite3` in the data directory.
    Sqlite,
    /// A fresh database on a throwaway PostgreSQL server.
    Postgres,
}

/// The `daisy` binary `cargo test --workspace` builds next to the test
/// executables (a benchmark also finds a debug build). Panics with what to
/// run when it is missing: the end-to-end tests need the real server.
pub fn daisy_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("the test executable's directory");
    let profile = deps.parent().expect("the profile directory");
    let candidates = [
        profile.join("daisy"),
        profile
            .parent()
            .map(|t| t.join("debug").join("daisy"))
            .unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the daisy binary is missing (looked for {candidates:?}): build it with \
                 `cargo build -p daisy` or run `cargo test --workspace`"
            )
        })
}

/// A daisy server process and everything it keeps across restarts.
pub struct DaisyProcess {
    /// Where daisy listens (the same after a restart).
    pub addr: SocketAddr,
    /// An API token of a `core-dev` user.
    pub api_token: String,
    /// Data directory (signing key, SQLite database, logs).
    pub dir: tempfile::TempDir,
    config: PathBuf,
    database: Option<String>,
    child: Option<Child>,
    starts: u32,
    _pg: Option<Postgres>,
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

impl DaisyProcess {
    /// Starts daisy on `engine`; it tells clients to use `public_url` (a
    /// proxy in front of it) or its own address. `limits` is TOML for the
    /// `[limits]` table. `None` only when PostgreSQL is not installed outside
    /// CI (the harness says so loudly).
    pub fn start(engine: Engine, public_url: Option<&str>, limits: &str) -> Option<DaisyProcess> {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_port();
        let (pg, database) = match engine {
            Engine::Sqlite => (None, None),
            Engine::Postgres => {
                let pg = Postgres::start()?;
                let db = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(pg.create_database());
                let uri = pg.uri(&db);
                (Some(pg), Some(uri))
            }
        };
        let public_url = public_url.map_or_else(|| format!("http://{addr}"), str::to_owned);
        let config = dir.path().join("daisy.toml");
        std::fs::write(
            &config,
            format!("public_url = \"{public_url}\"\n\n[limits]\n{limits}\n"),
        )
        .unwrap();
        let mut daisy = DaisyProcess {
            addr,
            api_token: String::new(),
            dir,
            config,
            database,
            child: None,
            starts: 0,
            _pg: pg,
        };
        daisy.spawn();
        daisy.api_token = daisy.admin(&["user", "add", "reader"]).trim().to_owned();
        Some(daisy)
    }

    /// Its own base URL (not the proxy's).
    pub fn direct_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(daisy_binary());
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("RUST_LOG", "info");
        command
    }

    fn common_args<'a>(&'a self, command: &'a mut Command) -> &'a mut Command {
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.dir.path());
        if let Some(db) = &self.database {
            command.arg("--database").arg(db);
        }
        command
    }

    fn log(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("daisy-{n}.log"))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log(self.starts)).unwrap();
        let mut command = self.command();
        command.arg("serve");
        self.common_args(&mut command);
        let child = command
            .arg("--listen")
            .arg(self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", daisy_binary().display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        for _ in 0..600 {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "daisy exited ({status}) before it listened:\n{}",
                    std::fs::read_to_string(self.log(self.starts)).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daisy did not listen on {} within 30 s", self.addr);
    }

    /// SIGKILL, no goodbye (and wait until it is gone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts it again on the same data, database and address.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.spawn();
    }

    /// Runs `daisy admin ARGS…` on its data and database; its stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let mut command = self.command();
        command.arg("admin");
        self.common_args(&mut command);
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "daisy admin {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `daisy admin hook activate` of `hook` (TOML text); the hook id.
    pub fn activate(&self, hook: &str, reports: Option<u32>) -> i64 {
        let file = self.dir.path().join("hook.toml");
        std::fs::write(&file, hook).unwrap();
        let mut args = vec!["hook", "activate", file.to_str().unwrap()];
        let reports = reports.map(|r| r.to_string());
        if let Some(r) = &reports {
            args.extend(["--reports", r]);
        }
        let text = self.admin(&args);
        text.split_whitespace()
            .nth(2)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no hook id in {text:?}"))
    }

    /// The bundle signing public key daisy created on its first start.
    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("keys").join("daisy.pub")
    }

    /// `GET path` of the JSON API with the reader's token.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let client =
            apport_hooks::agent::http::build_client(&apport_hooks::agent::http::ClientSettings {
                ca_file: None,
                connect_timeout: Duration::from_secs(10),
                timeout: Duration::from_secs(60),
            })
            .unwrap();
        let url = format!("{}{path}", self.direct_url());
        let token = self.api_token.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let r = client.get(url).bearer_auth(token).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 200, "{path}");
                serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
            })
    }
}

impl Drop for DaisyProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
