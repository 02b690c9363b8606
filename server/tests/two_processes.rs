//! Two real `daisy serve` processes on one PostgreSQL: concurrent result
//! uploads never go past a hook's `reports` limit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use bson::Document;
use daisy::activation::{ActivateRequest, activate};
use daisy::config::Limits;
use daisy::storage::{PostgresStorage, Storage};
use harness::Postgres;
use harness::http::request;
use tokio::process::{Child, Command};

/// Activates the example hook `lightdm.toml` with `reports = 10`, as an
/// operator's `daisy admin hook activate` does.
async fn activate_lightdm(
    storage: &Arc<dyn Storage>,
    secret: &apport_hooks::bundle::SecretKey,
) -> Result<daisy::storage::HookRecord, daisy::activation::ActivateError> {
    let text = std::fs::read(format!(
        "{}/../examples/hooks/lightdm.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    activate(
        storage,
        &Limits::default(),
        secret,
        ActivateRequest {
            text: &text,
            file_name: "lightdm.toml",
            reports: Some(10),
            days: None,
            actor: "test",
            now: daisy::storage::now(),
        },
    )
    .await
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn start_daisy(uri: &str, data_dir: &Path, config: &Path) -> (Child, SocketAddr) {
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_daisy"))
        .args(["serve", "--listen", &addr.to_string(), "--database", uri])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let r = request(addr, "GET", "/healthz", &[], b"").await;
            assert_eq!(r.status, 200);
            return (child, addr);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("daisy did not start on {addr}");
}

async fn stop(mut child: Child) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().await.unwrap();
    assert!(exit.success(), "daisy exits cleanly on SIGTERM: {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daisy_processes_accept_exactly_reports_results_of_200() {
    let Some(pg) = Postgres::start() else { return };
    let db = pg.create_database().await;
    let uri = pg.uri(&db);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("daisy.toml");
    std::fs::write(&config, "[limits]\noffer_multiple = 30\n").unwrap();

    // The operator activates the hook on the shared database.
    let storage: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(&uri).await.unwrap());
    daisy::signing::ensure_signing_key(dir.path()).unwrap();
    let secret = daisy::signing::load_signing_key(dir.path()).unwrap();
    let hook = activate_lightdm(&storage, &secret).await.unwrap();

    let (a, addr_a) = start_daisy(&uri, &dir.path().join("a"), &config).await;
    let (b, addr_b) = start_daisy(&uri, &dir.path().join("b"), &config).await;
    let upload = std::fs::read(format!(
        "{}/../../shared/testdata/uploads/signal_crash.bson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();

    let mut uploads = Vec::new();
    for i in 0..200 {
        let (intake, other) = if i % 2 == 0 {
            (addr_a, addr_b)
        } else {
            (addr_b, addr_a)
        };
        let system = format!("system{i}");
        let r = request(intake, "POST", &format!("/{system}"), &[], &upload).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let oops = r.text().split(' ').next().unwrap().to_owned();
        // The list comes from the other process: state is in the database only.
        let r = request(other, "GET", &format!("/{oops}/hooks/{system}"), &[], b"").await;
        assert_eq!(r.status, 200);
        let list = Document::from_reader(&mut std::io::Cursor::new(&r.body)).unwrap();
        let hooks = list.get_array("hooks").unwrap();
        assert_eq!(hooks.len(), 1, "offer {i}");
        let token = list.get_str("token").unwrap().to_owned();
        uploads.push((
            if i % 3 == 0 { addr_a } else { addr_b },
            hook.id,
            oops,
            token,
        ));
    }

    let body = bson::doc! { "LightdmLog": "seat0 failed" }
        .to_vec()
        .unwrap();
    let mut tasks = Vec::new();
    for (addr, hook_id, oops, token) in uploads {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {token}");
            request(
                addr,
                "POST",
                &format!("/hooks/{hook_id}/results/{oops}"),
                &[("Authorization", &auth)],
                &body,
            )
            .await
            .status
        }));
    }
    let mut accepted = 0;
    let mut gone = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => accepted += 1,
            410 => gone += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((accepted, gone), (10, 190));
    let stored = storage.hook(hook.id).await.unwrap().unwrap();
    assert_eq!(stored.results, 10);
    assert_eq!(
        stored.results_refused, 190,
        "every refused result is counted"
    );
    assert_eq!(storage.hook_results(hook.id, 1000).await.unwrap().len(), 10);
    stop(a).await;
    stop(b).await;
}

/// Two operators activating one hook name at once (two `daisy admin`
/// processes): each activation is stored under its own version, or told
/// that the other took its version and to run it again; never the
/// database's own words, and never both versions the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_activations_of_one_name_get_versions_or_a_clear_refusal() {
    use daisy::activation::ActivateError;
    let Some(pg) = Postgres::start() else { return };
    let db = pg.create_database().await;
    let uri = pg.uri(&db);
    let dir = tempfile::tempdir().unwrap();
    daisy::signing::ensure_signing_key(dir.path()).unwrap();
    let secret = daisy::signing::load_signing_key(dir.path()).unwrap();
    let first: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(&uri).await.unwrap());
    let second: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(&uri).await.unwrap());
    let mut stored = 0;
    for _ in 0..5 {
        let run = |storage: Arc<dyn Storage>| {
            let secret = secret.clone();
            tokio::spawn(async move { activate_lightdm(&storage, &secret).await })
        };
        let (a, b) = tokio::join!(run(Arc::clone(&first)), run(Arc::clone(&second)));
        for outcome in [a.unwrap(), b.unwrap()] {
            match outcome {
                Ok(_) => stored += 1,
                Err(ActivateError::Raced { .. }) => {}
                Err(other) => panic!("not a clear answer: {other}"),
            }
        }
    }
    let hooks = first.hooks().await.unwrap();
    assert_eq!(hooks.len(), stored);
    let mut versions: Vec<i64> = hooks.iter().map(|h| h.version).collect();
    versions.dedup();
    assert_eq!(versions.len(), stored, "each version stored once");
}
