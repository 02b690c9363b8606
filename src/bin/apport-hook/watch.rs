//! `apport-hook watch`: the system path. Watches the crash directory for
//! `.uploaded` markers (whoopsie writes one after the server took a report)
//! and runs the hook phase for each upload once; retries the spool while it
//! runs; exits when idle (it is started by `apport-hook.path`) or on
//! SIGTERM.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use apport_hooks::agent::collect::{CollectError, Collector, read_uploaded_oops};
use apport_hooks::agent::config::{self, Environment, Paths, Settings};
use apport_hooks::agent::crash_watch::{
    CrashDirWatch, marker_owned_by_uploader, pending_markers, report_for_marker,
};
use apport_hooks::agent::handled::{Handled, HandledSet, UploadKey};
use apport_hooks::agent::http::{ClientSettings, build_client};
use apport_hooks::agent::progress::ProgressDisplay;
use apport_hooks::agent::runlog::RunRecord;
use apport_hooks::agent::spool::{Spool, backoff_delay};
use apport_hooks::agent::state_dir::StateDir;
use apport_hooks::agent::token::now_secs;
use tokio::signal::unix::{SignalKind, signal};

/// How long a collect in progress may finish after SIGTERM before it is
/// abandoned (systemd's stop timeout is 90 s by default).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The pause after a spool retry that could not start.
const DRAIN_PAUSE: Duration = Duration::from_secs(60);

/// Watch the crash directory and run the hook phase for every new upload.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Runs until idle for --idle-exit seconds (with an empty spool) or until \
                  SIGTERM/SIGINT. Each upload (X.uploaded, by name, inode and mtime, and by \
                  OOPS id) is collected once; the record survives restarts (state directory). \
                  Opt-out is read again for every upload. Exit status: 0 stopped (idle or \
                  signal); 3 a runtime error (the crash or state directory or the settings \
                  cannot be used)."
)]
pub struct Args {
    /// The directory to watch (default: `crash_dir` in hooks.conf, else /var/crash).
    #[arg(long, value_name = "DIR")]
    crash_dir: Option<PathBuf>,
    /// Where the handled uploads and the last runs are kept (default: `state_dir`
    /// in hooks.conf, else /var/lib/apport-hooks).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The server's base URL (as for `upload`).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Trust the signing keys in DIR instead of the installed ones (repeatable).
    #[arg(long = "keys", value_name = "DIR")]
    keys: Vec<PathBuf>,
    /// Spool directory (default: the settings').
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Read this file instead of /etc/apport-hooks/hooks.conf.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Read whoopsie's settings (report_crashes) from this file instead of /etc/default/whoopsie.
    #[arg(long, value_name = "FILE")]
    whoopsie_config: Option<PathBuf>,
    /// Exit after this many seconds without work and with an empty spool (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    idle_exit: u64,
    /// Uploads older than this many days are never collected (also at start).
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    max_age_days: u64,
    /// Log as JSON lines and print one JSON summary per upload on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `apport-hook watch`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.json, "info");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(Watcher::new(args)?.run())
}

/// Why the watcher stopped.
enum Stop {
    Idle,
    Signal(&'static str),
}

/// An upload whose hook phase failed (server unreachable, …), due again.
struct Retry {
    marker: PathBuf,
    at: Instant,
}

/// Failed hook phases retried while running, per upload.
const MAX_RETRIES: u32 = 6;

struct Watcher {
    retries: Vec<Retry>,
    /// Failed hook phases so far, per marker (until one succeeds).
    failures: HashMap<PathBuf, u32>,
    args: Args,
    paths: Paths,
    env: Environment,
    crash_dir: PathBuf,
    state: StateDir,
    handled: HandledSet,
    max_age: Duration,
    collected: u64,
}

impl Watcher {
    fn new(args: Args) -> anyhow::Result<Self> {
        let defaults = Paths::default();
        let paths = Paths {
            config_file: args.config.clone().unwrap_or(defaults.config_file.clone()),
            whoopsie_defaults: args
                .whoopsie_config
                .clone()
                .unwrap_or(defaults.whoopsie_defaults.clone()),
            ..defaults
        };
        let env = Environment::from_process();
        let mut watcher = Self {
            retries: Vec::new(),
            failures: HashMap::new(),
            paths,
            env,
            crash_dir: PathBuf::new(),
            state: StateDir::existing(""),
            handled: HandledSet::default(),
            max_age: Duration::from_secs(args.max_age_days.saturating_mul(86_400)),
            collected: 0,
            args,
        };
        let settings = watcher.settings()?;
        watcher.crash_dir = watcher
            .args
            .crash_dir
            .clone()
            .unwrap_or(settings.crash_dir.clone());
        watcher.state = StateDir::open(&settings.state_dir)?;
        watcher.handled = HandledSet::load(&watcher.state)?;
        Ok(watcher)
    }

    /// The settings as they are now (read again for every upload, so an
    /// opt-out takes effect at once), with the command line's overrides.
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::load(&self.paths, &self.env)?;
        if let Some(url) = &self.args.server {
            settings = settings.with_server_url(url)?;
        }
        if let Some(spool) = &self.args.spool {
            settings.spool_dir.clone_from(spool);
        }
        if let Some(state) = &self.args.state_dir {
            settings.state_dir.clone_from(state);
        }
        Ok(settings)
    }

    fn status(&self, what: &str) {
        let status = format!(
            "{what}; watching {}; {} upload(s) collected",
            self.crash_dir.display(),
            self.collected
        );
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
    }

    async fn run(mut self) -> anyhow::Result<ExitCode> {
        let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        // The watch first, then the scan: nothing written in between is missed.
        let mut watch = CrashDirWatch::new(&self.crash_dir)?;
        let mut queue: VecDeque<PathBuf> = pending_markers(&self.crash_dir, self.max_age)?.into();
        tracing::info!(
            "watching {} ({} marker(s) to look at, {} upload(s) handled before)",
            self.crash_dir.display(),
            queue.len(),
            self.handled.len()
        );
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        self.status("started");
        let mut last_work = Instant::now();
        // After a drain that could not even start (no system id, spool not
        // writable), the spool is left alone for a while instead of in a loop.
        let mut drain_not_before = Instant::now();
        let stop = 'outer: loop {
            while let Some(marker) = queue.pop_front() {
                let work = self.handle(&marker);
                tokio::pin!(work);
                let signal = tokio::select! {
                    worked = &mut work => {
                        if worked {
                            last_work = Instant::now();
                        }
                        continue;
                    }
                    _ = sigterm.recv() => "SIGTERM",
                    _ = sigint.recv() => "SIGINT",
                };
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                tracing::info!(
                    "{signal}: letting the hook phase for {} finish (at most {} s)",
                    marker.display(),
                    STOP_GRACE.as_secs()
                );
                if tokio::time::timeout(STOP_GRACE, &mut work).await.is_err() {
                    // Dropping the future closes our bus connection, which
                    // makes apportd cancel the job; results already spooled
                    // stay; the upload is not marked and is collected again
                    // at the next start.
                    tracing::warn!(
                        "abandoned the hook phase for {}: it is collected again at the next start",
                        marker.display()
                    );
                }
                break 'outer Stop::Signal(signal);
            }
            let settings = self.settings();
            let spool_next = match &settings {
                Ok(s) if s.hooks_enabled() => spool_next_attempt(&s.spool_dir),
                _ => None,
            };
            if let (Ok(s), Some(at)) = (&settings, spool_next)
                && at <= SystemTime::now()
                && Instant::now() >= drain_not_before
            {
                if !self.drain(s).await {
                    drain_not_before = Instant::now()
                        .checked_add(DRAIN_PAUSE)
                        .unwrap_or_else(Instant::now);
                }
                last_work = Instant::now();
                continue;
            }
            let now = Instant::now();
            if self.retries.iter().any(|r| r.at <= now) {
                let (due, later): (Vec<Retry>, Vec<Retry>) =
                    self.retries.drain(..).partition(|r| r.at <= now);
                self.retries = later;
                for retry in due {
                    if !queue.contains(&retry.marker) {
                        queue.push_back(retry.marker);
                    }
                }
                continue;
            }
            let retry_wake = self.retries.iter().map(|r| r.at).min();
            let idle_deadline =
                (self.args.idle_exit > 0 && spool_next.is_none() && retry_wake.is_none())
                    .then(|| last_work.checked_add(Duration::from_secs(self.args.idle_exit)))
                    .flatten();
            let spool_wake = spool_next
                .and_then(|at| {
                    Instant::now()
                        .checked_add(at.duration_since(SystemTime::now()).unwrap_or_default())
                })
                .map(|at| at.max(drain_not_before));
            let wake = [idle_deadline, spool_wake, retry_wake]
                .into_iter()
                .flatten()
                .min();
            self.status("waiting");
            tokio::select! {
                markers = watch.next_markers(self.max_age) => {
                    for marker in markers? {
                        if !queue.contains(&marker) {
                            queue.push_back(marker);
                        }
                    }
                }
                _ = sigterm.recv() => break Stop::Signal("SIGTERM"),
                _ = sigint.recv() => break Stop::Signal("SIGINT"),
                () = sleep_until(wake) => {
                    if idle_deadline.is_some_and(|d| d <= Instant::now()) {
                        break Stop::Idle;
                    }
                }
            }
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        let why = match stop {
            Stop::Idle => format!("idle for {} s", self.args.idle_exit),
            Stop::Signal(signal) => signal.to_owned(),
        };
        tracing::info!("stopping ({why}); {} upload(s) collected", self.collected);
        if self.args.json {
            println!(
                "{}",
                serde_json::json!({"ok": true, "stopped": why, "collected": self.collected})
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The hook phase for one marker, unless it was handled. Whether any
    /// work was done.
    async fn handle(&mut self, marker: &Path) -> bool {
        let Ok(key) = UploadKey::of(marker) else {
            tracing::debug!("{} is gone or not a regular file", marker.display());
            return false;
        };
        let Some(report) = report_for_marker(marker) else {
            return false;
        };
        match marker_owned_by_uploader(marker, nix::unistd::geteuid().as_raw()) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    "ignoring {}: not owned by root or by this user (the uploader); \
                     whoever wrote it can run `apport-hook collect` themselves",
                    marker.display()
                );
                return false;
            }
            Err(_) => return false,
        }
        // A marker without a valid OOPS id is final (handled below); one
        // that cannot be read now (permissions, I/O) is tried again.
        let oops = match read_uploaded_oops(&report) {
            Ok(oops) => Some(oops),
            Err(CollectError::BadOops(_)) => None,
            Err(CollectError::Uploaded { source, .. })
                if source.kind() == std::io::ErrorKind::InvalidData =>
            {
                None
            }
            Err(e) => {
                self.retry_later(marker, &anyhow::Error::new(e));
                return true;
            }
        };
        if self
            .handled
            .contains(&key, oops.as_ref().map(|o| o.as_str()))
        {
            tracing::debug!("{} was handled before", marker.display());
            return false;
        }
        let settings = match self.settings() {
            Ok(settings) => settings,
            Err(e) => {
                tracing::error!(
                    "not collecting for {}: {e:#}; it is collected at the next start once the settings are fixed",
                    marker.display()
                );
                return false;
            }
        };
        let mark = |this: &mut Self| {
            let handled = Handled {
                key: key.clone(),
                oops_id: oops.as_ref().map(|o| o.as_str().to_owned()),
            };
            if let Err(e) = this.handled.record(&this.state, handled) {
                tracing::error!("{e}; {} may be collected again", marker.display());
            }
        };
        if let Some(opt_out) = &settings.opt_out {
            tracing::info!("not collecting for {}: {opt_out}", marker.display());
            crate::last_runs::append(
                &settings.state_dir,
                RunRecord {
                    time: now_secs(),
                    report: report.display().to_string(),
                    oops_id: oops.as_ref().map(|o| o.as_str().to_owned()),
                    outcome: "off".into(),
                    message: Some(opt_out.to_string()),
                    hooks: Vec::new(),
                    sent_bytes: 0,
                },
            );
            mark(self);
            return true;
        }
        if oops.is_none() {
            tracing::info!(
                "{} holds no OOPS id (the server did not keep the report): nothing to collect",
                marker.display()
            );
            mark(self);
            return true;
        }
        tracing::info!("collecting for {}", report.display());
        self.status(&format!("collecting for {}", report.display()));
        let args = crate::collect::Args {
            report: report.clone(),
            server: None,
            keys: self.args.keys.clone(),
            spool: None,
            json: self.args.json,
        };
        match crate::collect::collect(
            &args,
            &settings,
            &self.paths,
            &self.env,
            // A service's stderr is the journal: never a bar.
            ProgressDisplay::Quiet,
        )
        .await
        {
            Ok(value) => {
                self.collected = self.collected.saturating_add(1);
                let hooks = value
                    .get("hooks")
                    .and_then(|h| h.as_array())
                    .map_or(0, Vec::len);
                tracing::info!(
                    "collected for {} (OOPS {}): {hooks} hook(s)",
                    report.display(),
                    value.get("oops_id").and_then(|v| v.as_str()).unwrap_or("")
                );
                if self.args.json {
                    println!("{value}");
                }
                self.failures.remove(marker);
                mark(self);
            }
            Err(e)
                if e.downcast_ref::<CollectError>()
                    .is_some_and(CollectError::is_final) =>
            {
                // Another try, now or at the next start, would get the
                // same answer: handled, with the error in the last runs.
                tracing::error!("the hook phase for {} failed: {e:#}", marker.display());
                self.failures.remove(marker);
                mark(self);
            }
            Err(e) => self.retry_later(marker, &e),
        }
        true
    }

    /// Schedules another hook phase for `marker` after the spool's backoff;
    /// after [`MAX_RETRIES`] failures it waits for the next start.
    fn retry_later(&mut self, marker: &Path, error: &anyhow::Error) {
        let attempts = self
            .failures
            .get(marker)
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        self.failures.insert(marker.to_path_buf(), attempts);
        self.retries.retain(|r| r.marker != marker);
        if attempts > MAX_RETRIES {
            self.failures.remove(marker);
            tracing::error!(
                "the hook phase for {} failed {MAX_RETRIES} times, last: {error:#}; \
                 it is tried again at the next start",
                marker.display()
            );
            return;
        }
        let delay = backoff_delay(attempts, &mut rand::rng());
        tracing::warn!(
            "the hook phase for {} failed: {error:#}; trying again in {} s",
            marker.display(),
            delay.as_secs()
        );
        if let Some(at) = Instant::now().checked_add(delay) {
            self.retries.push(Retry {
                marker: marker.to_path_buf(),
                at,
            });
        }
    }

    /// Sends the due spool entries; false when that could not even start.
    async fn drain(&self, settings: &Settings) -> bool {
        let result: anyhow::Result<()> = async {
            let (system_id, _) = config::system_id(&self.paths, &self.env)?;
            let client = build_client(&ClientSettings::from(settings))?;
            let collector = Collector::new(client, &settings.server_url, system_id)
                .with_token_margin(settings.timeout);
            let spool = Spool::open(&settings.spool_dir, settings.spool_max_bytes)?;
            for (key, delivery) in collector.drain(&spool).await? {
                tracing::info!("spooled result {key}: {}", delivery.as_str());
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => true,
            // Not a failure, but the entries stay due: wait as after one,
            // instead of asking again at once while the other sends.
            Err(e) if matches!(e.downcast_ref(), Some(CollectError::SpoolBusy(_))) => {
                tracing::info!("{e:#}; looking again in {} s", DRAIN_PAUSE.as_secs());
                false
            }
            Err(e) => {
                tracing::warn!(
                    "retrying the spool failed: {e:#}; trying again in {} s",
                    DRAIN_PAUSE.as_secs()
                );
                false
            }
        }
    }
}

/// When the spool's next entry is due (`None`: empty or unreadable).
fn spool_next_attempt(dir: &Path) -> Option<SystemTime> {
    let (entries, _) = Spool::inspect(dir).ok()?;
    entries
        .iter()
        .map(|e| e.next_attempt_at())
        .min()
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
