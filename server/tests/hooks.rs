//! Hook delivery and result ingestion over real HTTP, on both engines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod harness;

use std::io::Write as _;

use bson::{Document, doc};
use daisy::cli::admin::{AdminCommand, HookCommand, run_on};
use daisy::storage::HookState;
use harness::http::{Response, request};
use harness::{Engine, TestServer};
use sha2::{Digest, Sha256};

const SYSTEM: &str = "5ca1ab1e";
/// A second reporting system.
const OTHER_SYSTEM: &str = "0ddba11";

fn upload(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../shared/testdata/uploads/{name}.bson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn example_hook(name: &str) -> std::path::PathBuf {
    format!("{}/../examples/hooks/{name}", env!("CARGO_MANIFEST_DIR")).into()
}

/// A daisy with a signing key and the lightdm hook active (`reports`).
async fn server_with_hook(engine: Engine, toml: &str, reports: u32) -> Option<(TestServer, i64)> {
    let server = TestServer::start(engine, toml).await?;
    daisy::signing::ensure_signing_key(&server.app.config.data_dir).unwrap();
    let mut out = Vec::new();
    run_on(
        &server.app.config,
        &server.app.storage,
        AdminCommand::Hook(HookCommand::Activate {
            file: example_hook("lightdm.toml"),
            reports: Some(reports),
            days: None,
        }),
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let id: i64 = text.split_whitespace().nth(2).unwrap().parse().unwrap();
    Some((server, id))
}

/// A crash of the lightdm bucket from `system`; returns (oops id, hooks URL).
async fn crash(server: &TestServer, system: &str) -> (String, Option<String>) {
    let mut doc = Document::from_reader(&mut std::io::Cursor::new(upload("signal_crash"))).unwrap();
    doc.insert("Date", format!("crash of {system}"));
    let r = request(
        server.addr,
        "POST",
        &format!("/{system}"),
        &[],
        &doc.to_vec().unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let (id, cmd) = text.split_once(' ').unwrap();
    assert_eq!(cmd, "OOPSID", "old clients see the same body");
    (id.to_owned(), r.header("X-Apport-Hooks").map(str::to_owned))
}

struct Offer {
    token: String,
    results_path: String,
    bundle_path: String,
    sha256: String,
}

fn path_of(server: &TestServer, url: &str) -> String {
    url.strip_prefix(&format!("http://{}", server.addr))
        .unwrap()
        .to_owned()
}

async fn hook_list(server: &TestServer, oops: &str, system: &str) -> Vec<Offer> {
    let r = request(
        server.addr,
        "GET",
        &format!("/{oops}/hooks/{system}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/bson"));
    let list = Document::from_reader(&mut std::io::Cursor::new(&r.body)).unwrap();
    assert_eq!(list.get_str("oops").unwrap(), oops);
    let token = list.get_str("token").unwrap().to_owned();
    list.get_array("hooks")
        .unwrap()
        .iter()
        .map(|h| {
            let h = h.as_document().unwrap();
            Offer {
                token: token.clone(),
                results_path: path_of(server, h.get_str("results").unwrap()),
                bundle_path: path_of(server, h.get_str("bundle").unwrap()),
                sha256: h.get_str("sha256").unwrap().to_owned(),
            }
        })
        .collect()
}

/// Adds the core developer `dev` with a fresh API token; returns its
/// `Authorization` header value.
async fn new_developer_auth(server: &TestServer) -> String {
    new_auth(server, "dev", "core-dev").await
}

/// Adds user `name` of `team` with a fresh API token; returns its
/// `Authorization` header value.
async fn new_auth(server: &TestServer, name: &str, team: &str) -> String {
    let token = daisy::auth::new_token();
    server
        .app
        .storage
        .add_user(name, team, &daisy::auth::hash_token(&token), "test", 0)
        .await
        .unwrap();
    format!("Bearer {token}")
}

fn result_bson() -> Vec<u8> {
    doc! { "LightdmLog": "seat0: failed to start X server\n", "CurrentDmesg": "[1.0] ok" }
        .to_vec()
        .unwrap()
}

async fn post_result(
    server: &TestServer,
    offer: &Offer,
    token: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/bson"),
    ];
    if let Some(e) = encoding {
        headers.push(("Content-Encoding", e));
    }
    request(server.addr, "POST", &offer.results_path, &headers, body).await
}

/// A result whose `LightdmLog` has `lines` lines (9 bytes each).
fn log_result(lines: usize) -> Vec<u8> {
    let log = "seat0: x\n".repeat(lines);
    doc! { "LightdmLog": log.as_str() }.to_vec().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn a_matching_crash_gets_the_hook_and_its_result_is_stored() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let Some((server, hook_id)) = server_with_hook(engine, "", 2).await else {
            continue;
        };
        let (oops, url) = crash(&server, SYSTEM).await;
        let url = url.expect("X-Apport-Hooks header for a matching crash");
        assert_eq!(url, format!("http://{}/{oops}/hooks/{SYSTEM}", server.addr));
        // Someone who knows only the OOPS id gets nothing.
        let r = request(
            server.addr,
            "GET",
            &format!("/{oops}/hooks/othersystem"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 404);

        let offers = hook_list(&server, &oops, SYSTEM).await;
        assert_eq!(offers.len(), 1);
        let offer = &offers[0];
        let bundle = request(server.addr, "GET", &offer.bundle_path, &[], b"").await;
        assert_eq!(bundle.status, 200);
        assert_eq!(hex::encode(Sha256::digest(&bundle.body)), offer.sha256);

        let r = post_result(&server, offer, "not-the-token", None, &result_bson()).await;
        assert_eq!(r.status, 401, "{}", r.text());
        let compressed = zstd::encode_all(&result_bson()[..], 3).unwrap();
        let r = post_result(&server, offer, &offer.token, Some("zstd"), &compressed).await;
        assert_eq!((r.status, r.text().as_str()), (200, "Result stored."));
        let r = post_result(&server, offer, &offer.token, Some("zstd"), &compressed).await;
        assert_eq!(r.status, 409, "{}", r.text());

        let stored = server.app.storage.oops_results(&oops).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].keys, result_bson(), "decompressed document kept");
        assert!(!stored[0].failed);
        assert_eq!(
            stored[0].bucket.as_deref(),
            Some("/usr/sbin/lightdm:11:seat_start:display_manager_start:main")
        );
        let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
        assert_eq!(
            (hook.results, hook.offered, hook.results_refused),
            (1, 1, 1)
        );

        // The JSON API shows the OOPS with its result.
        let auth = new_developer_auth(&server).await;
        let r = request(
            server.addr,
            "GET",
            &format!("/api/1.0/oops/{oops}"),
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["hook_results"][0]["keys"]["LightdmLog"],
            "seat0: failed to start X server\n"
        );
        assert_eq!(v["report"]["Package"], "lightdm 1.30.0-0ubuntu14");
        // With the OOPS id, the system id fetches the machine's hook list
        // (and replaces its token): a developer does not see it, an admin
        // does.
        assert!(v["system_id"].is_null(), "{v}");
        let admin = new_auth(&server, "root", "admin").await;
        let r = request(
            server.addr,
            "GET",
            &format!("/api/1.0/oops/{oops}"),
            &[("Authorization", &admin)],
            b"",
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["system_id"], SYSTEM);
        // A NUL in a path value is the client's error, on both engines
        // (PostgreSQL's text cannot hold it).
        for path in ["/api/1.0/oops/a%00b", "/api/1.0/problems/x%00"] {
            let r = request(server.addr, "GET", path, &[("Authorization", &auth)], b"").await;
            assert_eq!(r.status, 400, "{path}: {}", r.text());
        }
        // The retracer's SAS (path) and signature (body) alike.
        let retracer = new_auth(&server, "ret", "retracer").await;
        let headers = [
            ("Authorization", retracer.as_str()),
            ("Content-Type", "application/json"),
        ];
        for (path, body) in [
            ("/api/1.0/sas/x%00", &br#"{"signature": "s"}"#[..]),
            ("/api/1.0/sas/x", &br#"{"signature": "a\u0000b"}"#[..]),
        ] {
            let r = request(server.addr, "PUT", path, &headers, body).await;
            assert_eq!(r.status, 400, "{path}: {}", r.text());
        }
        let r = request(
            server.addr,
            "GET",
            &format!("/api/1.0/hooks/{hook_id}"),
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v["state"].as_str(), v["results"].as_i64()),
            (Some("active"), Some(1))
        );
        let r = request(
            server.addr,
            "GET",
            &format!("/api/1.0/hooks/{hook_id}/results"),
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["results"].as_array().unwrap().len(), 1);
        let r = request(server.addr, "GET", "/api/1.0/hooks", &[], b"").await;
        assert_eq!(r.status, 401);
        let metrics = request(server.addr, "GET", "/metrics", &[], b"")
            .await
            .text();
        assert!(
            metrics.contains("daisy_hook_results_total{outcome=\"accepted\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("daisy_hooks_active 1"), "{metrics}");
        // Disabled: its bundle is withdrawn, so a kept or mirrored copy is
        // all that is left, and that expires.
        assert!(
            server
                .app
                .storage
                .set_hook_state(
                    hook_id,
                    HookState::Disabled,
                    "wrong bucket",
                    "t",
                    daisy::storage::now()
                )
                .await
                .unwrap()
        );
        let bundle = request(server.addr, "GET", &offer.bundle_path, &[], b"").await;
        assert_eq!(bundle.status, 404, "{}", bundle.text());
    }
}

#[tokio::test]
async fn the_hook_completes_at_its_reports_limit_and_then_answers_410() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let Some((server, hook_id)) = server_with_hook(engine, "", 2).await else {
            continue;
        };
        let mut offers = Vec::new();
        for system in ["s1", "s2", "s3"] {
            let (oops, _) = crash(&server, system).await;
            offers.extend(hook_list(&server, &oops, system).await);
        }
        assert_eq!(offers.len(), 3);
        let body = gzip(&result_bson());
        let mut statuses = Vec::new();
        for offer in &offers {
            statuses.push(
                post_result(&server, offer, &offer.token, Some("gzip"), &body)
                    .await
                    .status,
            );
        }
        assert_eq!(statuses, vec![200, 200, 410]);
        let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
        assert_eq!(hook.state, HookState::Completed);
        let (_, header) = crash(&server, "s4").await;
        assert_eq!(header, None, "a completed hook is not offered");
    }
}

#[tokio::test]
async fn a_failed_run_is_marked_by_hook_error() {
    let (server, hook_id) = server_with_hook(Engine::Sqlite, "", 5).await.unwrap();
    let (oops, _) = crash(&server, SYSTEM).await;
    let offer = hook_list(&server, &oops, SYSTEM).await.remove(0);
    let body = doc! { "HookError": "Traceback: permission denied" }
        .to_vec()
        .unwrap();
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    deflate.write_all(&body).unwrap();
    let r = post_result(
        &server,
        &offer,
        &offer.token,
        Some("deflate"),
        &deflate.finish().unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(server.app.storage.oops_results(&oops).await.unwrap()[0].failed);
    assert_eq!(
        server
            .app
            .storage
            .hook(hook_id)
            .await
            .unwrap()
            .unwrap()
            .failures,
        1
    );
}

#[tokio::test]
async fn hostile_results_are_refused_and_nothing_is_stored() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let Some((server, hook_id)) =
            server_with_hook(engine, "[limits]\nmax_result_bytes = 1000000\n", 5).await
        else {
            continue;
        };
        let (oops, _) = crash(&server, SYSTEM).await;
        let offer = hook_list(&server, &oops, SYSTEM).await.remove(0);
        let bomb = zstd::encode_all(&vec![0u8; 100 << 20][..], 19).unwrap();
        assert!(bomb.len() < 100_000, "a real bomb: {} bytes", bomb.len());
        let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
            ("zstd bomb", Some("zstd"), bomb, 413),
            ("gzip bomb", Some("gzip"), gzip(&vec![b'a'; 50 << 20]), 413),
            (
                "garbage zstd",
                Some("zstd"),
                b"not zstd at all".to_vec(),
                400,
            ),
            ("unknown coding", Some("br"), result_bson(), 415),
            ("truncated BSON", None, result_bson()[..10].to_vec(), 400),
            (
                "empty document",
                None,
                Document::new().to_vec().unwrap(),
                400,
            ),
            (
                "non-string value",
                None,
                doc! { "Key": 5 }.to_vec().unwrap(),
                400,
            ),
            (
                "bad key name",
                None,
                doc! { "../../etc/passwd": "x" }.to_vec().unwrap(),
                400,
            ),
            ("over the result cap", None, vec![0u8; 2_000_000], 413),
        ];
        for (what, coding, body, status) in &cases {
            let r = post_result(&server, &offer, &offer.token, *coding, body).await;
            assert_eq!(r.status, *status, "{what}: {}", r.text());
        }
        // A stranger's body is answered 401 whatever it holds: a bomb is
        // decoded only as far as `UNVERIFIED_RESULT_BYTES` before the token
        // is checked (it used to be inflated to the cap first).
        let unknown_before = server.app.metrics.result_count("unknown_token");
        for (what, coding, body, status) in &cases {
            let r = post_result(&server, &offer, "not-the-token", *coding, body).await;
            let expected = if *status == 415 { 415 } else { 401 };
            assert_eq!(r.status, expected, "stranger, {what}: {}", r.text());
        }
        assert_eq!(
            server.app.metrics.result_count("unknown_token") - unknown_before,
            cases.len() as u64 - 1
        );
        // A hook id that is no number is answered and counted the same way.
        let auth = format!("Bearer {}", offer.token);
        let r = request(
            server.addr,
            "POST",
            &format!("/hooks/not-a-number/results/{oops}"),
            &[("Authorization", auth.as_str())],
            &result_bson(),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(
            server.app.metrics.result_count("unknown_token") - unknown_before,
            cases.len() as u64
        );
        assert!(
            server
                .app
                .storage
                .oops_results(&oops)
                .await
                .unwrap()
                .is_empty()
        );
        let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
        assert_eq!(
            (hook.results, hook.bytes, hook.state),
            (0, 0, HookState::Active)
        );
        // Every refusal with the hook's token is counted for the hook, once;
        // the stranger's are not.
        assert_eq!(hook.results_refused, cases.len() as i64);
        // The token still works for a good upload afterwards, also one that
        // inflates past what is decoded before the token is checked (decoded
        // again from its start once the token is known).
        let big = log_result(20_000);
        assert!(big.len() > daisy::controllers::hooks::UNVERIFIED_RESULT_BYTES);
        let r = post_result(
            &server,
            &offer,
            &offer.token,
            Some("zstd"),
            &zstd::encode_all(&big[..], 3).unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let stored = server.app.storage.oops_results(&oops).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].bytes, big.len() as i64);
        // The used token no longer unlocks decoding: a bomb sent with it is
        // answered as the duplicate it is once the first 64 KiB are out,
        // not inflated to the cap (which answered 413 after 1 MB).
        let r = post_result(&server, &offer, &offer.token, Some("zstd"), &cases[0].2).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (409, "Result already reported.")
        );
        // A body whose wire bytes pass the limit while it decodes to little
        // (a zstd skippable frame first) is checked and replayed the same way.
        let (oops2, _) = crash(&server, OTHER_SYSTEM).await;
        let offer2 = hook_list(&server, &oops2, OTHER_SYSTEM).await.remove(0);
        let mut padded = vec![0x50, 0x2a, 0x4d, 0x18];
        padded.extend_from_slice(&(100_000u32).to_le_bytes());
        padded.resize(padded.len() + 100_000, 0);
        padded.extend_from_slice(&zstd::encode_all(&result_bson()[..], 3).unwrap());
        let r = post_result(&server, &offer2, &offer2.token, Some("zstd"), &padded).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let stored = server.app.storage.oops_results(&oops2).await.unwrap();
        assert_eq!(stored[0].bytes, result_bson().len() as i64);
    }
}

#[tokio::test]
async fn an_upload_over_the_disk_cap_is_cut_off_and_disables_the_hook() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let Some((server, hook_id)) =
            server_with_hook(engine, "[limits]\nhook_disk_cap_bytes = 4096\n", 5).await
        else {
            continue;
        };
        let (oops, _) = crash(&server, SYSTEM).await;
        let offer = hook_list(&server, &oops, SYSTEM).await.remove(0);
        let big = doc! { "Big": "x".repeat(1 << 20) }.to_vec().unwrap();
        let r = post_result(&server, &offer, &offer.token, None, &big).await;
        assert_eq!(r.status, 413, "{}", r.text());
        assert_eq!(r.header("connection"), Some("close"));
        let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
        assert_eq!(hook.state, HookState::Disabled);
        assert_eq!(hook.state_reason.as_deref(), Some("disk cap reached"));
        assert_eq!(hook.bytes, 0);
        assert_eq!(hook.results_refused, 1, "the cut-off upload is counted");
        // The token was spent on the refused upload: a retry is a duplicate.
        let r = post_result(&server, &offer, &offer.token, None, &result_bson()).await;
        assert_eq!(r.status, 409);
    }
}

#[tokio::test]
async fn daisy_routes_use_the_shared_system_id_grammar() {
    let (server, _) = server_with_hook(Engine::Sqlite, "", 5).await.unwrap();
    // Dotted, underscored and 256-character ids are the client agent's; daisy takes them.
    let long = "a".repeat(256);
    for system in ["host.example_1", long.as_str()] {
        assert!(apport_hooks::wire::is_valid_system_id(system));
        let (oops, url) = crash(&server, system).await;
        assert_eq!(
            url,
            Some(format!("http://{}/{oops}/hooks/{system}", server.addr))
        );
        assert_eq!(hook_list(&server, &oops, system).await.len(), 1);
    }
    // What the shared grammar refuses, both routes refuse with 400.
    let (oops, _) = crash(&server, SYSTEM).await;
    let too_long = "a".repeat(257);
    for system in [".hidden", "...", "-_-", too_long.as_str(), "a%2Fb"] {
        let r = request(
            server.addr,
            "POST",
            &format!("/{system}"),
            &[],
            &upload("signal_crash"),
        )
        .await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (400, "Invalid system identifier."),
            "crash from {system:?}"
        );
        let r = request(
            server.addr,
            "GET",
            &format!("/{oops}/hooks/{system}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 400, "hook list for {system:?}: {}", r.text());
    }
}

/// `data` compressed with `coding` (`zstd`, `gzip` or `deflate`).
fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "zstd" => zstd::encode_all(data, 19).unwrap(),
        "gzip" => gzip(data),
        "deflate" => {
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        other => panic!("no coding {other}"),
    }
}

/// Sends a result whose `Content-Length` announces `declared` bytes: first
/// `prefix`, then zeros for as long as the server keeps reading. Returns the
/// response and how many body bytes the client managed to send.
async fn post_endless_result(
    server: &TestServer,
    offer: &Offer,
    coding: &str,
    prefix: &[u8],
    declared: u64,
) -> (Response, u64) {
    use tokio::io::AsyncWriteExt as _;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/bson\r\nContent-Encoding: {coding}\r\n\
         Content-Length: {declared}\r\n\r\n",
        offer.results_path, server.addr, offer.token
    );
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    // Read concurrently: the answer comes while the client is still sending.
    let reader = tokio::spawn(async move { harness::http::read_response(&mut rx).await });
    tx.write_all(head.as_bytes()).await.unwrap();
    let mut sent = 0u64;
    if tx.write_all(prefix).await.is_ok() {
        sent += prefix.len() as u64;
        let zeros = vec![0u8; 64 << 10];
        while sent < declared {
            let n = zeros.len().min((declared - sent) as usize);
            if tx.write_all(&zeros[..n]).await.is_err() {
                break;
            }
            sent += n as u64;
        }
    }
    (reader.await.unwrap(), sent)
}

#[tokio::test]
async fn a_compressed_upload_past_the_disk_cap_is_cut_off_mid_stream() {
    const DECLARED: u64 = 1 << 30;
    for engine in [Engine::Sqlite, Engine::Postgres] {
        for coding in ["zstd", "gzip", "deflate"] {
            let Some((server, hook_id)) =
                server_with_hook(engine, "[limits]\nhook_disk_cap_bytes = 65536\n", 5).await
            else {
                continue;
            };
            let (oops, _) = crash(&server, SYSTEM).await;
            let offer = hook_list(&server, &oops, SYSTEM).await.remove(0);
            // Small on the wire, 8 MiB once decompressed: over the 64 KiB disk
            // cap, under the 50 MiB result cap.
            let inflating = compress(
                coding,
                &doc! { "Big": "x".repeat(8 << 20) }.to_vec().unwrap(),
            );
            assert!(
                inflating.len() < 65536,
                "{coding}: {} bytes",
                inflating.len()
            );
            // Without the right token nobody can disable the hook this way.
            let stranger = Offer {
                token: "not-the-token".into(),
                results_path: offer.results_path.clone(),
                bundle_path: String::new(),
                sha256: String::new(),
            };
            let (r, _) =
                post_endless_result(&server, &stranger, coding, &inflating, DECLARED).await;
            assert_eq!(r.status, 401, "{coding}: {}", r.text());
            let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
            assert_eq!(hook.state, HookState::Active, "{coding}");

            let (r, sent) =
                post_endless_result(&server, &offer, coding, &inflating, DECLARED).await;
            assert_eq!(r.status, 413, "{coding}: {}", r.text());
            assert_eq!(r.header("connection"), Some("close"), "{coding}");
            eprintln!("{engine:?} {coding}: the client sent {sent} of {DECLARED} bytes");
            assert!(
                sent < DECLARED,
                "{coding}: the server read all {sent} bytes instead of stopping"
            );

            let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
            assert_eq!(hook.state, HookState::Disabled, "{coding}");
            assert_eq!(hook.bytes, 0, "{coding}");
            assert!(
                server
                    .app
                    .storage
                    .oops_results(&oops)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // The reason is visible in the API.
            let auth = new_developer_auth(&server).await;
            let r = request(
                server.addr,
                "GET",
                &format!("/api/1.0/hooks/{hook_id}"),
                &[("Authorization", &auth)],
                b"",
            )
            .await;
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["state"], "disabled", "{coding}: {v}");
            assert_eq!(v["state_reason"], "disk cap reached", "{coding}: {v}");
            assert_eq!(v["results_refused"], 1, "{coding}: {v}");
            // The token was spent on the refused upload: a retry is a duplicate.
            let small = compress(coding, &result_bson());
            let r = post_result(&server, &offer, &offer.token, Some(coding), &small).await;
            assert_eq!(r.status, 409, "{coding}: {}", r.text());
        }
    }
}

/// A result that inflates past the bodies' budget (after its token was
/// checked) is refused with `503` and nothing is stored; the token still
/// works for a result that fits.
/// A valid token's bomb is charged to the bodies' budget as it inflates,
/// not after a whole chunk was inflated (up to `max_result_bytes` at once,
/// beyond any budget, for every such upload in flight).
#[tokio::test]
async fn a_bomb_with_a_valid_token_stops_at_the_bodies_budget() {
    let (server, hook_id) = server_with_hook(
        Engine::Sqlite,
        "[limits]\nbody_bytes_in_flight = 1000000\n",
        2,
    )
    .await
    .unwrap();
    let (oops, _) = crash(&server, SYSTEM).await;
    let offer = hook_list(&server, &oops, SYSTEM).await.remove(0);
    let bomb = zstd::encode_all(&vec![0u8; 100 << 20][..], 19).unwrap();
    let r = post_result(&server, &offer, &offer.token, Some("zstd"), &bomb).await;
    // Not `413` after inflating 50 MiB (`max_result_bytes`).
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("Connection"), Some("close"));
    let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
    assert_eq!((hook.results, hook.state), (0, HookState::Active));
    // The budget is whole again: a good result with the same token fits.
    let r = post_result(&server, &offer, &offer.token, None, &result_bson()).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_result_past_the_bodies_budget_is_refused_for_later() {
    let (server, hook_id) = server_with_hook(
        Engine::Sqlite,
        "[limits]\nbody_bytes_in_flight = 100000\n",
        2,
    )
    .await
    .unwrap();
    let (oops, _) = crash(&server, SYSTEM).await;
    let offer = hook_list(&server, &oops, SYSTEM).await.remove(0);
    let big = log_result(40_000);
    let r = post_result(
        &server,
        &offer,
        &offer.token,
        Some("zstd"),
        &zstd::encode_all(&big[..], 3).unwrap(),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(
        server
            .app
            .storage
            .oops_results(&oops)
            .await
            .unwrap()
            .is_empty()
    );
    let r = post_result(&server, &offer, &offer.token, None, &result_bson()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hook = server.app.storage.hook(hook_id).await.unwrap().unwrap();
    assert_eq!(hook.results, 1);
}
