//! Crash intake over real HTTP, as real whoopsie speaks it, on both engines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod harness;

use bson::{Bson, Document, doc};
use harness::http::{Response, request};
use harness::{Engine, TestServer};

const SYSTEM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
                      0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn upload(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/testdata/uploads/{name}.bson",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode(bytes: &[u8]) -> Document {
    Document::from_reader(&mut std::io::Cursor::new(bytes)).unwrap()
}

async fn post_crash(server: &TestServer, system: &str, body: &[u8]) -> Response {
    request(
        server.addr,
        "POST",
        &format!("/{system}"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("X-Whoopsie-Version", "0.2.77"),
        ],
        body,
    )
    .await
}

/// `"<uuid> OOPSID"` → the uuid.
fn oops_id(r: &Response, command: &str) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let (id, cmd) = text.split_once(' ').unwrap();
    assert_eq!(cmd, command);
    uuid::Uuid::parse_str(id).unwrap();
    id.to_owned()
}

async fn engines() -> Vec<TestServer> {
    let mut servers = Vec::new();
    for engine in [Engine::Sqlite, Engine::Postgres] {
        if let Some(s) = TestServer::start(engine, "").await {
            servers.push(s);
        }
    }
    servers
}

#[tokio::test]
async fn real_whoopsie_uploads_are_stored_and_bucketed() {
    for server in engines().await {
        let storage = &server.app.storage;
        let r = post_crash(&server, SYSTEM, &upload("signal_crash")).await;
        let id = oops_id(&r, "OOPSID");
        assert_eq!(r.header("X-Apport-Hooks"), None, "no hooks, no header");
        let stored = storage.oops(&id).await.unwrap().unwrap().oops;
        assert_eq!(stored.system_id, SYSTEM);
        assert_eq!(
            stored.bucket.as_deref(),
            Some("/usr/sbin/lightdm:11:seat_start:display_manager_start:main")
        );
        assert_eq!(stored.package.as_deref(), Some("lightdm"));
        assert!(
            stored
                .sas
                .as_deref()
                .unwrap()
                .starts_with("/usr/sbin/lightdm:11:")
        );
        assert_eq!(
            stored.report,
            upload("signal_crash"),
            "the document as received"
        );

        let id = oops_id(
            &post_crash(&server, SYSTEM, &upload("python_crash")).await,
            "OOPSID",
        );
        let stored = storage.oops(&id).await.unwrap().unwrap().oops;
        let bucket = stored.bucket.unwrap();
        assert!(bucket.contains(':'), "python signature: {bucket}");

        let id = oops_id(
            &post_crash(&server, SYSTEM, &upload("package_failure")).await,
            "OOPSID",
        );
        let stored = storage.oops(&id).await.unwrap().unwrap().oops;
        assert_eq!(
            stored.bucket.as_deref(),
            Some(
                "package:grub-pc:2.12-1ubuntu7:installed grub-pc package post-installation \
                 script subprocess returned error exit status 1"
            )
        );
        assert_eq!(stored.source_package.as_deref(), Some("grub2"));
        assert_eq!(storage.totals().await.unwrap().oopses, 3);
    }
}

#[tokio::test]
async fn the_same_crash_twice_from_one_system_is_409() {
    for server in engines().await {
        oops_id(
            &post_crash(&server, SYSTEM, &upload("signal_crash")).await,
            "OOPSID",
        );
        let again = post_crash(&server, SYSTEM, &upload("signal_crash")).await;
        assert_eq!(
            (again.status, again.text().as_str()),
            (409, "Crash already reported.")
        );
        oops_id(
            &post_crash(&server, "othersystem", &upload("signal_crash")).await,
            "OOPSID",
        );
        assert_eq!(server.app.storage.totals().await.unwrap().oopses, 2);
    }
}

fn hostile_bodies() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let good = upload("signal_crash");
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let mut long_prefix = good.clone();
    long_prefix[..4].copy_from_slice(&(good.len() as i32 + 1000).to_le_bytes());
    let mut many = Document::new();
    for i in 0..10_000 {
        many.insert(format!("Key{i}"), "x");
    }
    many.insert("Package", "foo 1");
    let mut deep = doc! { "leaf": "x" };
    for _ in 0..200 {
        deep = doc! { "d": deep };
    }
    deep.insert("Package", "foo 1");
    let huge = doc! { "Package": "foo 1", "Big": "x".repeat(100 << 20) };
    vec![
        ("truncated BSON", truncated, 400, "Invalid BSON."),
        (
            "length prefix larger than the body",
            long_prefix,
            400,
            "Invalid BSON.",
        ),
        (
            "not BSON at all",
            b"ProblemType: Crash\n".to_vec(),
            400,
            "Invalid BSON.",
        ),
        ("10,000 keys", many.to_vec().unwrap(), 400, "Invalid BSON."),
        ("deep nesting", deep.to_vec().unwrap(), 400, "Invalid BSON."),
        (
            "a non-string field",
            doc! { "Package": "foo 1", "Signal": 11 }.to_vec().unwrap(),
            400,
            "Invalid BSON.",
        ),
        (
            "an empty document",
            Document::new().to_vec().unwrap(),
            400,
            "Empty report.",
        ),
        (
            "no Package",
            doc! { "ProblemType": "Crash", "ExecutablePath": "/bin/x" }
                .to_vec()
                .unwrap(),
            400,
            "Incomplete crash report.",
        ),
        ("one 100 MB key", huge.to_vec().unwrap(), 413, ""),
    ]
}

#[tokio::test]
async fn hostile_bodies_get_their_status_and_change_nothing() {
    for server in engines().await {
        for (what, body, status, text) in hostile_bodies() {
            let r = post_crash(&server, SYSTEM, &body).await;
            assert_eq!(r.status, status, "{what}: {}", r.text());
            if !text.is_empty() {
                assert_eq!(r.text(), text, "{what}");
            }
        }
        let bad_system = post_crash(&server, "..%2F..%2Fetc", &upload("signal_crash")).await;
        assert_eq!(bad_system.status, 400);
        let totals = server.app.storage.totals().await.unwrap();
        assert_eq!(totals.oopses, 0, "nothing stored");
        // The server still works afterwards.
        oops_id(
            &post_crash(&server, SYSTEM, &upload("signal_crash")).await,
            "OOPSID",
        );
    }
}

#[tokio::test]
async fn unknown_sas_asks_for_the_core_and_a_retrace_rebuckets() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let Some(server) = TestServer::start(engine, "retracer = true\n").await else {
            continue;
        };
        let storage = &server.app.storage;
        // A crash whose stack trace is incomplete: parked under its SAS.
        let mut parked = decode(&upload("signal_crash"));
        parked.insert("StacktraceTop", "?? ()\n?? ()");
        let first = oops_id(
            &post_crash(&server, SYSTEM, &parked.to_vec().unwrap()).await,
            "CORE",
        );
        let sas = storage
            .oops(&first)
            .await
            .unwrap()
            .unwrap()
            .oops
            .sas
            .unwrap();
        assert_eq!(
            storage.oops(&first).await.unwrap().unwrap().oops.bucket,
            None
        );

        // The core upload, bounded and bound to the system.
        let core = b"H4sIAAAAAAAAA+3BAQ0AAADCoPdPbQ43oAAAAAAAAAAA\n".repeat(10);
        let path = format!("/{first}/submit-core/amd64/{SYSTEM}");
        let r = request(server.addr, "POST", &path, &[], &core).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let stored = std::fs::read(server.dir.path().join("cores").join(&first)).unwrap();
        assert_eq!(stored, core);
        assert_eq!(
            storage.oops(&first).await.unwrap().unwrap().core_size,
            Some(core.len() as i64)
        );
        let wrong = request(
            server.addr,
            "POST",
            &format!("/{first}/submit-core/amd64/other"),
            &[],
            &core,
        )
        .await;
        assert_eq!(wrong.status, 404);
        let traversal = request(
            server.addr,
            "POST",
            &format!("/..%2F..%2Fx/submit-core/amd64/{SYSTEM}"),
            &[],
            &core,
        )
        .await;
        assert_eq!(traversal.status, 400);

        // The retracer maps the SAS: the parked OOPS joins the bucket.
        let token = daisy::auth::new_token();
        storage
            .add_user(
                "retracer",
                "retracer",
                &daisy::auth::hash_token(&token),
                "test",
                0,
            )
            .await
            .unwrap();
        let body =
            serde_json::json!({ "signature": "/usr/sbin/lightdm:11:seat_start:main" }).to_string();
        let auth = format!("Bearer {token}");
        let sas_path = format!("/api/1.0/sas/{}", urlencode(&sas));
        let r = request(
            server.addr,
            "PUT",
            &sas_path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let reply: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(reply["rebucketed"], 1);
        assert_eq!(
            storage
                .oops(&first)
                .await
                .unwrap()
                .unwrap()
                .oops
                .bucket
                .as_deref(),
            Some("/usr/sbin/lightdm:11:seat_start:main")
        );
        // Known SAS now: no core wanted, bucketed at once.
        let mut again = parked.clone();
        again.insert("Date", Bson::String("another date".into()));
        let second = oops_id(
            &post_crash(&server, SYSTEM, &again.to_vec().unwrap()).await,
            "OOPSID",
        );
        assert_eq!(
            storage
                .oops(&second)
                .await
                .unwrap()
                .unwrap()
                .oops
                .bucket
                .as_deref(),
            Some("/usr/sbin/lightdm:11:seat_start:main")
        );
        // Without a token, or as core-dev, the index cannot be changed.
        let r = request(server.addr, "PUT", &sas_path, &[], body.as_bytes()).await;
        assert_eq!(r.status, 401);
    }
}

/// A crash whose stack trace is incomplete, from `system`: parked under
/// its unknown SAS and answered `CORE` (the server needs `retracer`).
async fn parked_crash(server: &TestServer, system: &str) -> String {
    let mut parked = decode(&upload("signal_crash"));
    parked.insert("StacktraceTop", "?? ()\n?? ()");
    oops_id(
        &post_crash(server, system, &parked.to_vec().unwrap()).await,
        "CORE",
    )
}

/// Cores are taken only when daisy asks for one (`CORE`): not without a
/// retracer, not for a crash without a SAS, and not once its SAS is
/// mapped.
#[tokio::test]
async fn a_core_daisy_did_not_ask_for_is_refused() {
    let refused = |server: &TestServer, id: String| {
        let path = format!("/{id}/submit-core/amd64/{SYSTEM}");
        let (addr, cores) = (server.addr, server.dir.path().join("cores"));
        async move {
            let r = request(addr, "POST", &path, &[], &[b'A'; 100]).await;
            assert_eq!((r.status, r.text().as_str()), (400, "Core not requested."));
            assert_eq!(std::fs::read_dir(cores).unwrap().count(), 0);
        }
    };
    let without = TestServer::start(Engine::Sqlite, "").await.unwrap();
    let id = oops_id(
        &post_crash(&without, SYSTEM, &upload("signal_crash")).await,
        "OOPSID",
    );
    refused(&without, id).await;

    let server = TestServer::start(Engine::Sqlite, "retracer = true\n")
        .await
        .unwrap();
    let mut no_sas = decode(&upload("signal_crash"));
    no_sas.remove("StacktraceAddressSignature");
    // Another crash of the same machine, not a duplicate of the next one.
    no_sas.insert("Date", "Mon Jan  5 10:00:00 2026");
    let id = oops_id(
        &post_crash(&server, SYSTEM, &no_sas.to_vec().unwrap()).await,
        "OOPSID",
    );
    refused(&server, id).await;
    let id = parked_crash(&server, SYSTEM).await;
    let sas = server
        .app
        .storage
        .oops(&id)
        .await
        .unwrap()
        .unwrap()
        .oops
        .sas;
    server
        .app
        .storage
        .map_sas(&sas.unwrap(), "/usr/sbin/lightdm:11:main", "t", 0)
        .await
        .unwrap();
    refused(&server, id).await;
}

/// A server with a retracer and the `[limits]` line `limits`, a crash
/// parked on it, and the path its core is uploaded to.
async fn parked_core(limits: &str) -> (TestServer, String, String) {
    let config = format!("retracer = true\n[limits]\n{limits}\n");
    let server = TestServer::start(Engine::Sqlite, &config).await.unwrap();
    let id = parked_crash(&server, SYSTEM).await;
    let path = format!("/{id}/submit-core/amd64/{SYSTEM}");
    (server, id, path)
}

/// A core that would leave less than `core_free_disk_bytes` free is
/// refused for later (`503`) before a byte is written.
#[tokio::test]
async fn a_core_is_refused_while_the_disk_is_nearly_full() {
    // More free space asked for than any disk has.
    let (server, id, path) = parked_core("core_free_disk_bytes = 9000000000000000000").await;
    let r = request(server.addr, "POST", &path, &[], &[b'A'; 100]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (503, "Disk nearly full, try again later.")
    );
    let cores = std::fs::read_dir(server.dir.path().join("cores")).unwrap();
    assert_eq!(cores.count(), 0);
    let stored = server.app.storage.oops(&id).await.unwrap().unwrap();
    assert_eq!(stored.core_size, None, "a retry can still store it");
}

#[tokio::test]
async fn a_core_over_the_cap_is_refused_and_not_kept() {
    let (server, id, path) = parked_core("max_core_bytes = 1000").await;
    let r = request(server.addr, "POST", &path, &[], &vec![b'A'; 5000]).await;
    assert_eq!(r.status, 413);
    let cores: Vec<_> = std::fs::read_dir(server.dir.path().join("cores"))
        .unwrap()
        .collect();
    assert!(cores.is_empty(), "no partial core left behind");
    assert_eq!(
        server
            .app
            .storage
            .oops(&id)
            .await
            .unwrap()
            .unwrap()
            .core_size,
        None
    );
}

/// Two uploads of one OOPS's core at once each stream to a file of their
/// own (they used to share one, truncating and interleaving): the first to
/// finish is stored, the other gets `409`, and a stored core is never
/// replaced. An upload whose client goes away leaves nothing behind, so a
/// retry can store the core.
#[tokio::test]
async fn core_uploads_never_mix_replace_or_block_each_other() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start(Engine::Sqlite, "retracer = true\n")
        .await
        .unwrap();
    let id = parked_crash(&server, SYSTEM).await;
    let path = format!("/{id}/submit-core/amd64/{SYSTEM}");
    let cores = server.dir.path().join("cores");
    let partials = || {
        std::fs::read_dir(&cores)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .count()
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n"
    );
    let half_sent = || async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[b'A'; 1000]).await.unwrap();
        stream.flush().await.unwrap();
        for _ in 0..200 {
            if partials() > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(partials(), 1, "the upload streams to its own file");
        stream
    };
    // A client that goes away mid-body leaves no file behind.
    drop(half_sent().await);
    for _ in 0..200 {
        if partials() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(partials(), 0, "an abandoned upload's file is removed");
    // Two at once: B finishes first and is stored, A then gets 409.
    let mut first = half_sent().await;
    let r = request(server.addr, "POST", &path, &[], &[b'B'; 2000]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    first.write_all(&[b'A'; 1000]).await.unwrap();
    let r = harness::http::read_response(&mut first).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = request(server.addr, "POST", &path, &[], &[b'C'; 2000]).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let core = std::fs::read(cores.join(&id)).unwrap();
    assert_eq!(core, vec![b'B'; 2000]);
    assert_eq!(partials(), 0);
    assert_eq!(
        server
            .app
            .storage
            .oops(&id)
            .await
            .unwrap()
            .unwrap()
            .core_size,
        Some(2000)
    );
}

/// A core file the database never recorded (its daisy was stopped between
/// storing and recording it) no longer refuses the core for good: once it
/// is older than any upload could still be, the next upload replaces it.
/// A young one may be an upload about to be recorded, and is kept.
#[tokio::test]
async fn an_unrecorded_core_file_left_by_a_stopped_daisy_is_replaced() {
    let server = TestServer::start(Engine::Sqlite, "retracer = true\n")
        .await
        .unwrap();
    let cores = server.dir.path().join("cores");
    let mut ids = Vec::new();
    for system in [SYSTEM, "b".repeat(128).as_str()] {
        ids.push(parked_crash(&server, system).await);
    }
    let (old, young) = (&ids[0], &ids[1]);
    let left = std::fs::File::create(cores.join(old)).unwrap();
    left.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    drop(left);
    std::fs::write(cores.join(young), b"in flight").unwrap();
    let path = format!("/{old}/submit-core/amd64/{SYSTEM}");
    let r = request(server.addr, "POST", &path, &[], &[b'D'; 100]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(std::fs::read(cores.join(old)).unwrap(), vec![b'D'; 100]);
    let stored = server.app.storage.oops(old).await.unwrap().unwrap();
    assert_eq!(stored.core_size, Some(100));
    let path = format!("/{young}/submit-core/amd64/{}", "b".repeat(128));
    let r = request(server.addr, "POST", &path, &[], &[b'E'; 100]).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(std::fs::read(cores.join(young)).unwrap(), b"in flight");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
