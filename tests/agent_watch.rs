//! `apport-hook watch` as the real binary over a real directory with inotify
//! and a loopback server: every upload collected once, across restarts;
//! opt-out read again for every upload; sd-notify; SIGTERM; idle exit; the
//! last runs in `status`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod harness;
mod hooklist_server;

use std::io::BufRead as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use apport_hooks::agent::collect::{PendingResult, spool_result};
use apport_hooks::agent::spool::{EntryKey, Spool};
use apport_hooks::agent::token::now_secs;
use hooklist_server::Server;

const SYSTEM: &str = "i-am-a-machine";

fn oops(n: u32) -> String {
    format!("4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7{n:03}")
}

/// A temporary crash, state and spool directory with settings files.
struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for d in ["crash", "state", "spool"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        Self { root }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
    fn crash(&self) -> PathBuf {
        self.path("crash")
    }
    /// Writes `NAME.crash`, then its marker in place.
    fn upload_in_place(&self, name: &str, oops: &str) {
        std::fs::write(
            self.crash().join(format!("{name}.crash")),
            "ProblemType: Crash\n",
        )
        .unwrap();
        std::fs::write(
            self.crash().join(format!("{name}.uploaded")),
            format!("{oops}\n"),
        )
        .unwrap();
    }
    /// Writes `NAME.crash`, then its marker under another name and renames it in.
    fn upload_by_rename(&self, name: &str, oops: &str) {
        std::fs::write(
            self.crash().join(format!("{name}.crash")),
            "ProblemType: Crash\n",
        )
        .unwrap();
        let temp = self.crash().join(format!(".{name}.uploaded.tmp"));
        std::fs::write(&temp, format!("{oops}\n")).unwrap();
        std::fs::rename(&temp, self.crash().join(format!("{name}.uploaded"))).unwrap();
    }
}

/// A running watcher with its stderr collected.
struct Watch {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

fn start(dirs: &Dirs, server: &Server, idle: u64, notify: Option<&Path>) -> Watch {
    let mut command = Command::new(env!("CARGO_BIN_EXE_apport-hook"));
    command
        .args(["watch", "--json", "--idle-exit", &idle.to_string()])
        .arg("--crash-dir")
        .arg(dirs.crash())
        .arg("--state-dir")
        .arg(dirs.path("state"))
        .arg("--spool")
        .arg(dirs.path("spool"))
        .arg("--config")
        .arg(dirs.path("hooks.conf"))
        .arg("--whoopsie-config")
        .arg(dirs.path("whoopsie"))
        .arg("--server")
        .arg(server.url())
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .env_remove("CRASH_DB_URL")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(socket) = notify {
        command.env("NOTIFY_SOCKET", socket);
    }
    let mut child = command.spawn().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let line = line.unwrap_or_default();
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    Watch { child, stderr }
}

/// Waits (up to a minute) for `done`; panics with `what` otherwise.
fn wait_for(what: &str, watch: Option<&Watch>, done: impl FnMut() -> bool) {
    wait_within(60, what, watch, done);
}

/// Waits up to `secs` seconds for `done`; panics with `what` otherwise.
fn wait_within(secs: u64, what: &str, watch: Option<&Watch>, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; watcher log:\n{}",
            watch
                .map(|w| w.stderr.lock().unwrap().clone())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Watch {
    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
    /// Waits for the watcher to exit; its status and stdout.
    fn finish(mut self) -> (i32, String, String) {
        let status = self.child.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut out).unwrap();
        // The stderr thread ends with the pipe.
        std::thread::sleep(Duration::from_millis(100));
        (status.code().unwrap_or(-1), out, self.log())
    }
}

/// Spool a result of hook 5 for `oops` with a token valid for an hour.
fn spool_a_result(dirs: &Dirs, server: &Server, oops: &str) -> (Spool, EntryKey) {
    let spool = Spool::open(dirs.path("spool"), 1 << 20).unwrap();
    let key = EntryKey::new(oops, "5", 1).unwrap();
    let pending = PendingResult {
        url: format!("{}/hooks/5/results/{oops}", server.url()),
        token: "tok".into(),
        expires: now_secs() + 3600,
    };
    spool_result(&spool, &key, &pending, || &b"r"[..]).unwrap();
    (spool, key)
}

/// `state/last-runs.json` as the watcher left it.
fn last_runs(dirs: &Dirs) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dirs.path("state/last-runs.json")).unwrap()).unwrap()
}

/// The outcome of every run in `last_runs`, oldest first.
fn run_outcomes(runs: &serde_json::Value) -> Vec<&str> {
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect()
}

fn hook_lists(server: &Server, oops: &str) -> usize {
    server.count("GET", &format!("/{oops}/hooks/{SYSTEM}"))
}

/// Start a watcher, upload `name` as `oops`, send SIGTERM once the watcher
/// asked for its hook list; how the watcher then ended.
fn stop_during_a_hook_phase(
    dirs: &Dirs,
    server: &Server,
    name: &str,
    oops: &str,
) -> (i32, String, String) {
    let watch = start(dirs, server, 0, None);
    dirs.upload_in_place(name, oops);
    wait_for("the hook list requested", Some(&watch), || {
        hook_lists(server, oops) == 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(watch.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    watch.finish()
}

#[test]
fn each_upload_is_collected_once_across_restarts() {
    let server = Server::start();
    let dirs = Dirs::new();
    // Uploaded while no watcher ran: collected at start.
    dirs.upload_in_place("_usr_bin_missed.0", &oops(1));
    // Too old: never collected.
    dirs.upload_in_place("_usr_bin_ancient.0", &oops(9));
    std::fs::File::options()
        .write(true)
        .open(dirs.crash().join("_usr_bin_ancient.0.uploaded"))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30 * 86_400))
        .unwrap();
    let watch = start(&dirs, &server, 3, None);
    wait_for("the missed upload collected", Some(&watch), || {
        hook_lists(&server, &oops(1)) == 1
    });
    dirs.upload_by_rename("_usr_bin_renamed.0", &oops(2));
    wait_for("the renamed-in upload collected", Some(&watch), || {
        hook_lists(&server, &oops(2)) == 1
    });
    dirs.upload_in_place("_usr_bin_written.0", &oops(3));
    wait_for("the written upload collected", Some(&watch), || {
        hook_lists(&server, &oops(3)) == 1
    });
    // Rewriting a marker for the same OOPS is not a new upload.
    std::fs::write(
        dirs.crash().join("_usr_bin_written.0.uploaded"),
        format!("{}\n", oops(3)),
    )
    .unwrap();
    // Not a marker: ignored.
    std::fs::write(dirs.crash().join("_usr_bin_x.0.crash"), "x").unwrap();
    let (code, out, log) = watch.finish();
    assert_eq!(code, 0, "{log}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["stopped"], "idle for 3 s", "{out}");
    assert_eq!(summary["collected"], 3);
    assert_eq!(hook_lists(&server, &oops(3)), 1, "{log}");
    assert_eq!(hook_lists(&server, &oops(9)), 0, "too old");

    // A restart collects nothing again.
    let again = start(&dirs, &server, 1, None);
    let (code, out, log) = again.finish();
    assert_eq!(code, 0, "{log}");
    assert!(out.contains("\"collected\":0"), "{out}");
    for n in 1..=3 {
        assert_eq!(hook_lists(&server, &oops(n)), 1, "OOPS {n}: {log}");
    }

    // `status` shows the runs.
    let status = Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(["status", "--json", "--state-dir"])
        .arg(dirs.path("state"))
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let runs = json["last_runs"].as_array().unwrap();
    let oopses: Vec<&str> = runs
        .iter()
        .map(|r| r["oops_id"].as_str().unwrap())
        .collect();
    assert_eq!(oopses, [oops(1), oops(2), oops(3)]);
    assert!(
        runs.iter()
            .all(|r| r["outcome"] == "ok" && r["time"].is_i64())
    );
    let text = Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(["status", "--state-dir"])
        .arg(dirs.path("state"))
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(&format!("OOPS {}: ok", oops(2))), "{text}");
}

fn notifications(socket: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[test]
fn opt_out_is_read_again_for_every_upload_and_sigterm_stops_cleanly() {
    let server = Server::start();
    let dirs = Dirs::new();
    let socket_path = dirs.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let watch = start(&dirs, &server, 0, Some(&socket_path));
    let mut seen = Vec::new();
    wait_for("READY=1", Some(&watch), || {
        seen.extend(notifications(&socket));
        seen.iter().any(|m| m.contains("READY=1"))
    });
    dirs.upload_in_place("a.0", &oops(1));
    wait_for("the first upload collected", Some(&watch), || {
        hook_lists(&server, &oops(1)) == 1
    });

    std::fs::write(dirs.path("hooks.conf"), "enabled = false\n").unwrap();
    dirs.upload_in_place("b.0", &oops(2));
    wait_for("hooks off noticed", Some(&watch), || {
        watch.log().contains("hooks are off")
    });

    std::fs::write(dirs.path("hooks.conf"), "enabled = true\n").unwrap();
    std::fs::write(dirs.path("whoopsie"), "[General]\nreport_crashes=false\n").unwrap();
    dirs.upload_by_rename("c.0", &oops(3));
    wait_for("crash reporting off noticed", Some(&watch), || {
        watch.log().contains("crash reporting is off")
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(watch.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, out, log) = watch.finish();
    assert_eq!(code, 0, "{log}");
    assert!(out.contains("\"stopped\":\"SIGTERM\""), "{out}");
    assert_eq!(hook_lists(&server, &oops(2)), 0, "{log}");
    assert_eq!(hook_lists(&server, &oops(3)), 0, "{log}");
    seen.extend(notifications(&socket));
    assert!(seen.iter().any(|m| m.contains("STATUS=")), "{seen:?}");
    assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");

    // Opted-out uploads are handled (never collected later) and recorded.
    let runs = last_runs(&dirs);
    let outcomes = run_outcomes(&runs);
    assert_eq!(outcomes, ["ok", "off", "off"]);
    std::fs::remove_file(dirs.path("whoopsie")).unwrap();
    let (_, out, log) = start(&dirs, &server, 1, None).finish();
    assert!(out.contains("\"collected\":0"), "{out}\n{log}");
    assert_eq!(hook_lists(&server, &oops(2)), 0);
}

#[test]
fn due_spooled_results_are_sent_by_the_watcher() {
    let server = Server::start();
    let dirs = Dirs::new();
    let (spool, _) = spool_a_result(&dirs, &server, &oops(4));
    let watch = start(&dirs, &server, 1, None);
    let (code, _, log) = watch.finish();
    assert_eq!(code, 0, "{log}");
    assert_eq!(server.count("POST", "/hooks/5/results/"), 1, "{log}");
    assert!(spool.pending().unwrap().is_empty());
}

#[test]
fn a_missing_crash_directory_is_a_runtime_error_that_says_what_to_do() {
    let server = Server::start();
    let dirs = Dirs::new();
    std::fs::remove_dir(dirs.crash()).unwrap();
    let (code, _, log) = start(&dirs, &server, 1, None).finish();
    assert_eq!(code, 3, "{log}");
    assert!(log.contains("cannot watch"), "{log}");
}

#[test]
fn a_failed_hook_phase_is_tried_again_with_backoff_while_running() {
    let server = Server::start();
    // The server fails the first hook list, then answers.
    server.list(hooklist_server::ListReply::Status(503));
    let dirs = Dirs::new();
    // Idle exit after 1 s: a pending retry must keep the watcher alive.
    let watch = start(&dirs, &server, 1, None);
    dirs.upload_in_place("r.0", &oops(5));
    wait_for("the failure logged", Some(&watch), || {
        watch.log().contains("trying again in")
    });
    // The first retry comes after 30 to 60 s (the spool's backoff).
    wait_within(150, "the retry", Some(&watch), || {
        hook_lists(&server, &oops(5)) == 2
    });
    let (code, out, log) = watch.finish();
    assert_eq!(code, 0, "{log}");
    assert!(out.contains("\"collected\":1"), "{out}");
    let runs = last_runs(&dirs);
    let outcomes = run_outcomes(&runs);
    assert_eq!(outcomes, ["error", "ok"]);
    assert!(runs["runs"][0]["message"].as_str().unwrap().contains("503"));
}

#[test]
fn a_hook_list_the_server_refuses_for_good_is_not_asked_for_again() {
    let server = Server::start();
    // daisy's answer for an OOPS it does not have under this system id.
    server.list(hooklist_server::ListReply::Text(404, "No such OOPS."));
    let dirs = Dirs::new();
    let watch = start(&dirs, &server, 1, None);
    dirs.upload_in_place("r.0", &oops(6));
    // No retry is pending, so the idle exit comes after the one attempt.
    let (code, _out, log) = watch.finish();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("not tried again"), "{log}");
    assert!(!log.contains("trying again in"), "{log}");
    assert_eq!(hook_lists(&server, &oops(6)), 1);
    let runs = last_runs(&dirs);
    assert_eq!(run_outcomes(&runs), ["error"]);
    assert!(runs["runs"][0]["message"].as_str().unwrap().contains("404"));
    // Handled: the next start does not ask again either.
    let (code, _out, log) = start(&dirs, &server, 1, None).finish();
    assert_eq!(code, 0, "{log}");
    assert_eq!(hook_lists(&server, &oops(6)), 1, "{log}");
}

#[test]
fn sigterm_lets_the_hook_phase_in_progress_finish() {
    let server = Server::start();
    server.delay_lists(Duration::from_secs(3));
    let dirs = Dirs::new();
    let (code, out, log) = stop_during_a_hook_phase(&dirs, &server, "slow.0", &oops(6));
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("letting the hook phase"), "{log}");
    assert!(out.contains("\"collected\":1"), "{out}");
    // Finished, so marked: a restart does not collect it again.
    let (_, out, log) = start(&dirs, &server, 1, None).finish();
    assert!(out.contains("\"collected\":0"), "{out}\n{log}");
    assert_eq!(hook_lists(&server, &oops(6)), 1);
}

#[test]
fn the_watcher_stays_up_for_a_spooled_result_and_sends_it_when_due() {
    let server = Server::start();
    let dirs = Dirs::new();
    let (spool, key) = spool_a_result(&dirs, &server, &oops(7));
    // One failed attempt "25 s ago": the next is due 5 to 35 s from now.
    let entry = spool
        .record_failure(&key, "503", SystemTime::now() - Duration::from_secs(25))
        .unwrap();
    assert!(entry.next_attempt_at() > u64::try_from(now_secs()).unwrap());
    // Idle exit after 1 s: the waiting entry must keep it running.
    let watch = start(&dirs, &server, 1, None);
    wait_within(90, "the spooled result sent", Some(&watch), || {
        server.count("POST", "/hooks/5/results/") == 1
    });
    let (code, _, log) = watch.finish();
    assert_eq!(code, 0, "{log}");
    assert!(spool.pending().unwrap().is_empty(), "{log}");
}

#[test]
fn a_marker_planted_by_another_user_is_not_collected() {
    if !harness::have_root("a_marker_planted_by_another_user_is_not_collected") {
        return;
    }
    let server = Server::start();
    let dirs = Dirs::new();
    let watch = start(&dirs, &server, 2, None);
    // Owned by nobody before it is renamed in: never the uploader's.
    std::fs::write(dirs.crash().join("planted.0.crash"), "ProblemType: Crash\n").unwrap();
    let temp = dirs.crash().join(".planted.tmp");
    std::fs::write(&temp, format!("{}\n", oops(8))).unwrap();
    nix::unistd::chown(&temp, Some(nix::unistd::Uid::from_raw(65_534)), None).unwrap();
    std::fs::rename(&temp, dirs.crash().join("planted.0.uploaded")).unwrap();
    wait_for("the planted marker refused", Some(&watch), || {
        watch.log().contains("not owned by root or by this user")
    });
    // The uploader's own marker still is collected.
    dirs.upload_in_place("mine.0", &oops(10));
    let (code, _, log) = watch.finish();
    assert_eq!(code, 0, "{log}");
    assert_eq!(hook_lists(&server, &oops(8)), 0, "{log}");
    assert_eq!(hook_lists(&server, &oops(10)), 1, "{log}");
}

#[test]
fn a_hook_phase_outlasting_the_stop_grace_is_abandoned_and_collected_at_the_next_start() {
    let server = Server::start();
    // Slower than the 30 s the watcher waits after SIGTERM.
    server.delay_lists(Duration::from_secs(45));
    let dirs = Dirs::new();
    let (code, out, log) = stop_during_a_hook_phase(&dirs, &server, "stuck.0", &oops(11));
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("abandoned the hook phase"), "{log}");
    assert!(out.contains("\"collected\":0"), "{out}");
    // Not recorded as handled: the next start collects it.
    server.delay_lists(Duration::ZERO);
    let (_, out, log) = start(&dirs, &server, 1, None).finish();
    assert!(out.contains("\"collected\":1"), "{out}\n{log}");
    assert_eq!(hook_lists(&server, &oops(11)), 2);
}
