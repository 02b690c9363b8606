//! The hook phase end to end (issue 5 §5, needs root): the real `daisy`
//! binary on loopback over SQLite and over PostgreSQL, a hook for the lightdm
//! crash with a root step and a user step activated with `daisy admin hook
//! activate`, and `apport-hook upload` / `collect` run as test users against
//! apportd on a private system bus with the real polkitd.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

#[path = "agent_support/daisy_process.rs"]
mod daisy_process;
#[path = "agent_support/fronts.rs"]
mod fronts;
mod harness;
#[path = "agent_support/world.rs"]
#[allow(dead_code)]
mod world;

use std::sync::atomic::Ordering;
use std::time::Duration;

use daisy_process::Engine;
use harness::{TestUser, have_root};
use world::{
    FrontKind, HOOK, World, json_of, key_names, run_json, spool_entries, step_outcome, users_report,
};

/// Admin, plain user, stock-whoopsie flow, until the hook's `reports` is
/// reached; then it is completed and no longer offered.
fn users_until_reports_is_reached(engine: Engine) {
    let Some(world) = World::start_with(engine, FrontKind::Direct, HOOK, Some(3), "", "") else {
        return;
    };
    let admin = TestUser::create("ea", &["sudo"], false);
    let plain = TestUser::create("ep", &[], false);

    // 1. The admin's `apport-hook upload` runs the hook phase itself.
    let (dir, report) = users_report(Some(&admin), 1);
    let spool = dir.path().join("spool");
    let uploaded = run_json(world.client(
        Some(&admin),
        &[
            "upload",
            report.to_str().unwrap(),
            "--server",
            &world.url,
            "--keys",
            world.keys.to_str().unwrap(),
            "--spool",
            spool.to_str().unwrap(),
            "--json",
        ],
    ));
    let oops = uploaded["oops_id"].as_str().unwrap();
    let hook = &uploaded["hook_phase"]["hooks"][0];
    assert_eq!(hook["id"], world.hook_id, "{uploaded:#}");
    assert_eq!(hook["outcome"], "completed", "{uploaded:#}");
    assert_eq!(hook["delivery"], "delivered", "{uploaded:#}");
    assert_eq!(
        key_names(hook),
        ["OsReleaseFile", "UserIdentity"],
        "{uploaded:#}"
    );
    let stored = world.hook_results(oops);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let os_release = std::fs::read_to_string("/usr/lib/os-release").unwrap();
    assert_eq!(
        stored[0]["keys"]["OsReleaseFile"].as_str().unwrap().trim(),
        os_release.trim()
    );
    assert!(
        stored[0]["keys"]["UserIdentity"]
            .as_str()
            .unwrap()
            .contains(&format!("uid={}({})", admin.uid, admin.name)),
        "{stored:#?}"
    );
    assert_eq!(world.hook()["results"], 1);

    // 2. A plain user, stock-whoopsie flow: upload --no-hooks, then collect.
    let (dir, report) = users_report(Some(&plain), 2);
    let oops = world.upload(Some(&plain), &report);
    let collected = world.collect(Some(&plain), &report, &dir.path().join("spool"));
    assert_eq!(collected["oops_id"], oops.as_str());
    let hook = &collected["hooks"][0];
    assert_eq!(
        step_outcome(hook, "OsReleaseFile"),
        "not-authorized",
        "{collected:#}"
    );
    assert_eq!(step_outcome(hook, "UserIdentity"), "collected");
    assert_eq!(hook["delivery"], "delivered", "{collected:#}");
    let stored = world.hook_results(&oops);
    let keys = stored[0]["keys"].as_object().unwrap();
    assert!(!keys.contains_key("OsReleaseFile"), "{stored:#?}");
    assert!(
        keys["UserIdentity"]
            .as_str()
            .unwrap()
            .contains(&format!("uid={}({})", plain.uid, plain.name)),
        "{stored:#?}"
    );
    let hook = world.hook();
    assert_eq!(
        (hook["results"].as_i64(), hook["state"].as_str()),
        (Some(2), Some("active"))
    );

    // 3. The third report reaches `reports`: the hook is completed.
    let (dir, report) = users_report(Some(&admin), 3);
    world.upload(Some(&admin), &report);
    let collected = world.collect(Some(&admin), &report, &dir.path().join("spool"));
    assert_eq!(
        collected["hooks"][0]["delivery"], "delivered",
        "{collected:#}"
    );
    let hook = world.hook();
    assert_eq!(hook["results"], 3, "{hook:#}");
    assert_eq!(hook["state"], "completed", "{hook:#}");

    // 4. … and no longer offered.
    let (dir, report) = users_report(Some(&plain), 4);
    world.upload(Some(&plain), &report);
    let collected = world.collect(Some(&plain), &report, &dir.path().join("spool"));
    assert_eq!(
        collected["hooks"].as_array().unwrap().len(),
        0,
        "{collected:#}"
    );
    assert_eq!(world.hook()["results"], 3);
}

#[test]
fn users_results_arrive_until_reports_is_reached_on_sqlite() {
    if have_root("users_results_arrive_until_reports_is_reached_on_sqlite") {
        users_until_reports_is_reached(Engine::Sqlite);
    }
}

#[test]
fn users_results_arrive_until_reports_is_reached_on_postgresql() {
    if have_root("users_results_arrive_until_reports_is_reached_on_postgresql") {
        users_until_reports_is_reached(Engine::Postgres);
    }
}

/// daisy is SIGKILLed while a result upload is in its body; after a restart
/// on the same data the spool delivers the result, exactly once.
fn killed_mid_upload(engine: Engine) {
    let Some(mut world) = World::start(engine, FrontKind::Cut) else {
        return;
    };
    let admin = TestUser::create("ek", &["sudo"], false);
    let (dir, report) = users_report(Some(&admin), 1);
    let spool = dir.path().join("spool");
    let oops = world.upload(Some(&admin), &report);

    world.cut().0.arm();
    let collect = world
        .client(Some(&admin), &world.collect_args(&report, &spool))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if world
        .cut()
        .1
        .recv_timeout(Duration::from_secs(120))
        .is_err()
    {
        let out = collect.wait_with_output().unwrap();
        panic!(
            "the result upload never reached the proxy: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    world.daisy.kill();
    world.cut().0.release();
    let first = json_of(&collect.wait_with_output().unwrap());
    let hook = &first["hooks"][0];
    assert_eq!(hook["delivery"], "spooled", "{first:#}");
    assert!(
        hook["delivery_detail"]
            .as_str()
            .unwrap()
            .contains("cannot reach the server"),
        "{first:#}"
    );
    assert_eq!(spool_entries(&spool), 1);

    world.daisy.restart();
    assert_eq!(
        world.hook_results(&oops).len(),
        0,
        "a cut upload stored nothing"
    );
    let second = world.collect(Some(&admin), &report, &spool);
    let retried = second["spool_retried"].as_array().unwrap();
    assert_eq!(retried.len(), 1, "{second:#}");
    assert_eq!(retried[0]["delivery"], "delivered", "{second:#}");
    assert_eq!(second["hooks"].as_array().unwrap().len(), 0, "{second:#}");
    assert_eq!(spool_entries(&spool), 0);

    let third = world.collect(Some(&admin), &report, &spool);
    assert_eq!(
        third["spool_retried"].as_array().unwrap().len(),
        0,
        "{third:#}"
    );
    let stored = world.hook_results(&oops);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert!(stored[0]["keys"]["UserIdentity"].is_string(), "{stored:#?}");
    let hook = world.hook();
    assert_eq!(hook["results"], 1, "{hook:#}");
    assert_eq!(hook["state"], "completed", "{hook:#}");
}

#[test]
fn daisy_killed_mid_upload_gets_the_result_once_from_the_spool_on_sqlite() {
    if have_root("daisy_killed_mid_upload_gets_the_result_once_from_the_spool_on_sqlite") {
        killed_mid_upload(Engine::Sqlite);
    }
}

#[test]
fn daisy_killed_mid_upload_gets_the_result_once_from_the_spool_on_postgresql() {
    if have_root("daisy_killed_mid_upload_gets_the_result_once_from_the_spool_on_postgresql") {
        killed_mid_upload(Engine::Postgres);
    }
}

#[test]
fn a_result_stored_whose_answer_was_lost_is_spooled_and_counted_once() {
    if !have_root("a_result_stored_whose_answer_was_lost_is_spooled_and_counted_once") {
        return;
    }
    let world = World::start(Engine::Sqlite, FrontKind::Cut).unwrap();
    let admin = TestUser::create("el", &["sudo"], false);
    let (dir, report) = users_report(Some(&admin), 1);
    let spool = dir.path().join("spool");
    let oops = world.upload(Some(&admin), &report);

    world.cut().0.lose_next_answer();
    let first = world.collect(Some(&admin), &report, &spool);
    assert_eq!(first["hooks"][0]["delivery"], "spooled", "{first:#}");
    // daisy has it; the agent cannot know.
    assert_eq!(world.hook_results(&oops).len(), 1);
    assert_eq!(spool_entries(&spool), 1);

    // The retry is answered 409 (already have it): delivered, not stored again.
    let second = world.collect(Some(&admin), &report, &spool);
    let retried = second["spool_retried"].as_array().unwrap();
    assert_eq!(retried.len(), 1, "{second:#}");
    assert_eq!(
        (
            retried[0]["delivery"].as_str(),
            retried[0]["detail"].as_str()
        ),
        (Some("delivered"), Some("409")),
        "{second:#}"
    );
    assert_eq!(spool_entries(&spool), 0);
    assert_eq!(world.hook_results(&oops).len(), 1);
    assert_eq!(world.hook()["results"], 1);
}

#[test]
fn a_result_daisy_cannot_take_is_spooled_and_delivered_exactly_once() {
    if !have_root("a_result_daisy_cannot_take_is_spooled_and_delivered_exactly_once") {
        return;
    }
    let world = World::start(Engine::Sqlite, FrontKind::Gate).unwrap();
    let admin = TestUser::create("cs", &["sudo"], false);
    let (dir, report) = users_report(Some(&admin), 1);
    let spool = dir.path().join("spool");
    let oops = world.upload(Some(&admin), &report);

    world.gate().results_down.store(true, Ordering::SeqCst);
    let first = world.collect(Some(&admin), &report, &spool);
    assert_eq!(first["hooks"][0]["delivery"], "spooled", "{first:#}");
    assert_eq!(world.hook_results(&oops).len(), 0);
    assert_eq!(spool_entries(&spool), 1);

    world.gate().results_down.store(false, Ordering::SeqCst);
    let second = world.collect(Some(&admin), &report, &spool);
    let retried = second["spool_retried"].as_array().unwrap();
    assert_eq!(retried.len(), 1, "{second:#}");
    assert_eq!(retried[0]["delivery"], "delivered", "{second:#}");
    // The hook reached its one report: nothing is offered again.
    assert_eq!(second["hooks"].as_array().unwrap().len(), 0, "{second:#}");

    let third = world.collect(Some(&admin), &report, &spool);
    assert_eq!(
        third["spool_retried"].as_array().unwrap().len(),
        0,
        "{third:#}"
    );
    assert_eq!(world.hook_results(&oops).len(), 1);
    assert_eq!(world.hook()["results"], 1);
}

#[test]
fn a_bundle_altered_on_the_way_runs_nothing_and_sends_nothing() {
    if !have_root("a_bundle_altered_on_the_way_runs_nothing_and_sends_nothing") {
        return;
    }
    let world = World::start(Engine::Sqlite, FrontKind::Gate).unwrap();
    let admin = TestUser::create("ct", &["sudo"], false);
    let (dir, report) = users_report(Some(&admin), 1);
    let oops = world.upload(Some(&admin), &report);

    world.gate().tamper_bundles.store(true, Ordering::SeqCst);
    let collected = world.collect(Some(&admin), &report, &dir.path().join("spool"));
    let hook = &collected["hooks"][0];
    assert_eq!(hook["outcome"], "refused", "{collected:#}");
    assert!(
        hook["message"].as_str().unwrap().contains("sha256"),
        "{collected:#}"
    );
    assert!(hook.get("steps").is_none(), "{collected:#}");
    assert_eq!(world.hook_results(&oops).len(), 0);
    // apportd was never asked: nothing activated it on the private bus.
    assert!(!world.bus.name_has_owner("com.ubuntu.apport"));
}

#[test]
fn a_result_refused_for_good_is_dropped_not_spooled() {
    if !have_root("a_result_refused_for_good_is_dropped_not_spooled") {
        return;
    }
    let world = World::start(Engine::Sqlite, FrontKind::Gate).unwrap();
    let admin = TestUser::create("cr", &["sudo"], false);
    let (dir, report) = users_report(Some(&admin), 1);
    let spool = dir.path().join("spool");
    let oops = world.upload(Some(&admin), &report);

    world.gate().wrong_token.store(true, Ordering::SeqCst);
    let collected = world.collect(Some(&admin), &report, &spool);
    let hook = &collected["hooks"][0];
    assert_eq!(hook["delivery"], "dropped", "{collected:#}");
    assert!(
        hook["delivery_detail"].as_str().unwrap().contains("401"),
        "{collected:#}"
    );
    assert_eq!(spool_entries(&spool), 0);
    assert_eq!(world.hook_results(&oops).len(), 0);
}

/// 2,000,000 bytes of 76-character lines of pseudo-random base64: about
/// 1.5 MB compressed, so both the result (read from apportd's descriptor)
/// and its spooled, compressed body pass the 1 MB progress threshold.
fn write_big_log(path: &std::path::Path) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = Vec::with_capacity(2_000_000);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while text.len() < 2_000_000 {
        for _ in 0..76 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(ALPHABET[(state & 63) as usize]);
        }
        text.push(b'\n');
    }
    text.truncate(2_000_000);
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
}

/// `apport-hook ARGS…` as root under `script` (util-linux), which gives it a
/// pseudo-terminal as an interactive shell would; its exit status and
/// everything the terminal showed.
fn on_a_terminal(world: &World, args: &[&str]) -> (Option<i32>, String) {
    let client = world.client(None, &[]);
    let mut command = String::from(env!("CARGO_BIN_EXE_apport-hook"));
    for arg in args {
        assert!(!arg.contains([' ', '\'', '"']), "{arg}");
        command.push(' ');
        command.push_str(arg);
    }
    let mut script = std::process::Command::new("script");
    script
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_clear()
        .env("TERM", "xterm");
    for (name, value) in client.get_envs() {
        if let Some(value) = value {
            script.env(name, value);
        }
    }
    let out = script
        .output()
        .expect("util-linux `script` is needed for this test");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// issue 5 §4: a result over 1 MB (and a spooled one) draws a progress bar on
/// a terminal; without a terminal, or with `--json`, nothing is drawn.
#[test]
fn a_large_result_shows_a_progress_bar_only_on_a_terminal() {
    if !have_root("a_large_result_shows_a_progress_bar_only_on_a_terminal") {
        return;
    }
    let data = harness::shared_tempdir();
    let big = data.path().join("big.log");
    write_big_log(&big);
    let hook = format!(
        r#"
name = "big-log"
description = "a 2 MB result, to see the progress bar of its upload"

[target]
crash_signature = "/usr/sbin/lightdm:11:seat_start:display_manager_start:main"

[limits]
reports = 4
days = 7

[[step]]
key = "BigLog"
file = "{}"
max_bytes = 4194304
"#,
        big.display()
    );
    let world = World::start_with(Engine::Sqlite, FrontKind::Gate, &hook, None, "", "").unwrap();
    let bar = format!("sending the result of hook {}", world.hook_id);
    let spooled_bar = format!("sending the spooled result of hook {}", world.hook_id);
    let text_args = |report: &std::path::Path, spool: &std::path::Path| {
        let mut args: Vec<String> = world
            .collect_args(report, spool)
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        assert_eq!(args.pop().as_deref(), Some("--json"));
        args
    };

    // 1. Without a terminal: delivered, nothing drawn.
    let (dir, report) = users_report(None, 1);
    let spool = dir.path().join("spool");
    let oops = world.upload(None, &report);
    let args = text_args(&report, &spool);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = world.client(None, &args).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("completed delivered"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("sending the"), "{stderr}");
    assert!(!stdout.contains("sending the"), "{stdout}");
    let results = world.hook_results(&oops);
    assert_eq!(results.len(), 1);

    // 2. On a terminal: the bar, then the same summary.
    let (dir, report) = users_report(None, 2);
    let spool = dir.path().join("spool");
    let oops = world.upload(None, &report);
    let args = text_args(&report, &spool);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, screen) = on_a_terminal(&world, &args);
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains(&bar), "{screen}");
    assert!(screen.contains("completed delivered"), "{screen}");
    assert_eq!(world.hook_results(&oops).len(), 1);

    // 3. With --json on a terminal: no bar (the output is for a script).
    let (dir, report) = users_report(None, 3);
    let spool = dir.path().join("spool");
    let oops = world.upload(None, &report);
    let (code, screen) = on_a_terminal(&world, &world.collect_args(&report, &spool));
    assert_eq!(code, Some(0), "{screen}");
    assert!(!screen.contains("sending the"), "{screen}");
    assert!(screen.contains("\"delivered\""), "{screen}");
    assert_eq!(world.hook_results(&oops).len(), 1);

    // 4. A spooled result (compressed, still over 1 MB) sent on a terminal.
    let (dir, report) = users_report(None, 4);
    let spool = dir.path().join("spool");
    let oops = world.upload(None, &report);
    world.gate().results_down.store(true, Ordering::SeqCst);
    let first = world.collect(None, &report, &spool);
    assert_eq!(first["hooks"][0]["delivery"], "spooled", "{first:#}");
    assert_eq!(spool_entries(&spool), 1);
    world.gate().results_down.store(false, Ordering::SeqCst);
    let args = text_args(&report, &spool);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, screen) = on_a_terminal(&world, &args);
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains(&spooled_bar), "{screen}");
    assert!(!screen.contains(&bar), "{screen}");
    assert_eq!(spool_entries(&spool), 0);
    assert_eq!(world.hook_results(&oops).len(), 1);
}
