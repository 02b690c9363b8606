//! The hook list token's expiry against a real HTTP server on loopback: a
//! token that expired (or would expire before a result arrives) is never
//! sent; the list is fetched once more, or the result waits in the spool
//! and gets a new token there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod hooklist_server;

use std::time::Duration;

use apport_hooks::agent::collect::{
    CollectError, Collector, Delivery, HookList, PendingResult, spool_result,
};
use apport_hooks::agent::http::{ClientSettings, build_client};
use apport_hooks::agent::ids::{OopsId, SystemId};
use apport_hooks::agent::spool::{EntryKey, Spool};
use apport_hooks::agent::token::{Freshness, now_secs};
use hooklist_server::{ListReply, Offer, Server};

const OOPS: &str = "4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d";
const SYSTEM: &str = "i-am-a-machine";

fn collector(server: &Server) -> Collector {
    let client = build_client(&ClientSettings {
        ca_file: None,
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    })
    .unwrap();
    Collector::new(client, &server.url(), SystemId::parse(SYSTEM).unwrap())
        .with_token_margin(Duration::from_secs(30))
}

fn hook5() -> Vec<Offer> {
    vec![Offer { id: 5, version: 1 }]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_list_whose_token_expired_is_fetched_once_more() {
    let server = Server::start();
    server.list(ListReply::List("old".into(), now_secs() - 10, hook5()));
    server.list(ListReply::List("new".into(), now_secs() + 3600, hook5()));
    let (list, freshness) = fresh_hook_list(&server);
    assert_eq!(freshness, Freshness::Refetched);
    assert_eq!(list.token, "new");
    assert_eq!(server.count("GET", &format!("/{OOPS}/hooks/")), 2);
}

#[test]
fn a_token_expiring_within_the_request_cap_counts_as_expired() {
    let server = Server::start();
    // Valid for 10 more seconds, but a request may take 30.
    server.default_list(ListReply::List("soon".into(), now_secs() + 10, hook5()));
    let (_, freshness) = fresh_hook_list(&server);
    assert_eq!(freshness, Freshness::Expired);
    assert_eq!(
        server.count("GET", &format!("/{OOPS}/hooks/")),
        2,
        "fetched once more, not more"
    );
}

#[test]
fn a_fresh_list_is_fetched_once() {
    let server = Server::start();
    server.default_list(ListReply::List("tok".into(), now_secs() + 3600, hook5()));
    let (_, freshness) = fresh_hook_list(&server);
    assert_eq!(freshness, Freshness::Fresh);
    assert_eq!(server.count("GET", "/"), 1);
}

#[test]
fn collect_runs_no_hook_when_the_token_expired_twice() {
    let server = Server::start();
    server.default_list(ListReply::List("stale".into(), now_secs() - 60, hook5()));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("_usr_bin_x.0.crash");
    std::fs::write(&report, "ProblemType: Crash\n").unwrap();
    std::fs::write(
        dir.path().join("_usr_bin_x.0.uploaded"),
        format!("{OOPS}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apport-hook"))
        .args(["collect", "--json", "--spool"])
        .arg(dir.path().join("spool"))
        .arg("--server")
        .arg(server.url())
        .arg(&report)
        .env("CRASH_DB_IDENTIFIER", SYSTEM)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["token"]["freshness"], "expired");
    assert_eq!(json["hooks"][0]["outcome"], "token-expired");
    assert!(
        json["hooks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("clock")
    );
    assert_eq!(server.count("GET", &format!("/{OOPS}/hooks/")), 2);
    assert_eq!(server.count("GET", "/hooks/5/bundle"), 0, "no hook is run");
    assert_eq!(server.count("POST", "/"), 0);
}

/// The hook list for `OOPS` as the collector fetches it, and how fresh its token was.
fn fresh_hook_list(server: &Server) -> (HookList, Freshness) {
    let oops = OopsId::parse(OOPS).unwrap();
    runtime()
        .block_on(collector(server).fresh_hook_list(&oops))
        .unwrap()
}

/// Spool one result with `token` valid until `expires`, then drain the spool;
/// the spool's directory, the spool and what the drain did.
fn drain_one(
    server: &Server,
    token: &str,
    expires: i64,
) -> (tempfile::TempDir, Spool, Vec<(EntryKey, Delivery)>) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool_entry(&spool, server, token, expires);
    let results = runtime().block_on(collector(server).drain(&spool)).unwrap();
    (dir, spool, results)
}

/// The result uploads the server saw.
fn posts(server: &Server) -> Vec<hooklist_server::Request> {
    server
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

fn spool_entry(spool: &Spool, server: &Server, token: &str, expires: i64) -> EntryKey {
    let key = EntryKey::new(OOPS, "5", 1).unwrap();
    let pending = PendingResult {
        url: format!("{}/hooks/5/results/{OOPS}", server.url()),
        token: token.into(),
        expires,
    };
    spool_result(spool, &key, &pending, || &b"result"[..]).unwrap();
    key
}

#[test]
fn a_spooled_result_whose_token_expired_is_sent_with_a_new_one() {
    let server = Server::start();
    server.default_list(ListReply::List("fresh".into(), now_secs() + 3600, hook5()));
    let (_dir, spool, results) = drain_one(&server, "expired", now_secs() - 5);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1, Delivery::Delivered(200));
    let posts = posts(&server);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].authorization.as_deref(), Some("Bearer fresh"));
    assert!(spool.pending().unwrap().is_empty());
}

#[test]
fn a_spooled_result_with_a_valid_token_is_sent_as_it_is() {
    let server = Server::start();
    let (_dir, _spool, _) = drain_one(&server, "valid", now_secs() + 3600);
    assert_eq!(server.count("GET", "/"), 0, "no new list needed");
    let posts = posts(&server);
    assert_eq!(posts[0].authorization.as_deref(), Some("Bearer valid"));
}

#[test]
fn a_spooled_result_whose_hook_is_no_longer_offered_is_dropped_unsent() {
    let server = Server::start();
    // The server has the result or the hook ended: an empty list.
    let (_dir, spool, results) = drain_one(&server, "expired", now_secs() - 5);
    assert!(matches!(&results[0].1, Delivery::Dropped(why) if why.contains("no longer offers")));
    assert_eq!(server.count("POST", "/"), 0);
    assert!(spool.pending().unwrap().is_empty());
}

#[test]
fn a_spooled_result_stays_when_no_new_token_can_be_fetched() {
    let server = Server::start();
    server.default_list(ListReply::Status(503));
    let (_dir, spool, results) = drain_one(&server, "expired", now_secs() - 5);
    assert!(matches!(&results[0].1, Delivery::Spooled(_)));
    assert_eq!(
        server.count("POST", "/"),
        0,
        "the expired token is never sent"
    );
    let pending = spool.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts(), 1);
    assert!(pending[0].last_error().unwrap().contains("new one"));
}

/// An entry spooled for another server (a `collect --server` run, a
/// changed `server_url`) never carries its token and result anywhere but
/// the configured server: it is dropped unsent.
/// One process at a time sends the spool: a second sender (the service
/// and an administrator's `collect` at once) leaves it alone instead of
/// posting the same results and rewriting entries under the first.
#[test]
fn a_spool_another_process_is_sending_is_left_to_it() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool_entry(&spool, &server, "valid", now_secs() + 3600);
    let other = Spool::open(dir.path(), 1 << 20).unwrap();
    let sending = other.try_send_lock().unwrap().expect("nobody else sends");
    assert!(
        other.try_send_lock().unwrap().is_none(),
        "one sender at a time"
    );
    let busy = runtime()
        .block_on(collector(&server).drain(&spool))
        .unwrap_err();
    assert!(matches!(busy, CollectError::SpoolBusy(_)), "{busy:?}");
    assert!(posts(&server).is_empty());
    assert_eq!(spool.pending().unwrap().len(), 1);
    drop(sending);
    let results = runtime()
        .block_on(collector(&server).drain(&spool))
        .unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(posts(&server).len(), 1);
}

#[test]
fn a_spooled_result_for_another_server_is_dropped_unsent() {
    let configured = Server::start();
    let other = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool_entry(&spool, &other, "valid", now_secs() + 3600);
    let results = runtime()
        .block_on(collector(&configured).drain(&spool))
        .unwrap();
    assert!(
        matches!(&results[0].1, Delivery::Dropped(why) if why.contains("not for the configured server")),
        "{results:?}"
    );
    assert_eq!(other.count("POST", "/"), 0);
    assert_eq!(configured.count("POST", "/"), 0);
    assert!(spool.pending().unwrap().is_empty());
}

/// A renewed token that also expires within the request margin (a clock
/// set wrong) leaves the result in the spool for later, instead of dropping
/// it as if the hook were no longer offered.
#[test]
fn a_spooled_result_stays_when_the_new_token_also_expires_too_soon() {
    let server = Server::start();
    server.default_list(ListReply::List("short".into(), now_secs() + 1, hook5()));
    let (_dir, spool, results) = drain_one(&server, "expired", now_secs() - 5);
    assert!(
        matches!(&results[0].1, Delivery::Spooled(why) if why.contains("clock")),
        "{results:?}"
    );
    assert_eq!(server.count("POST", "/"), 0);
    assert_eq!(spool.pending().unwrap().len(), 1);
}
