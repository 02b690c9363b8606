//! The storage contract, run against SQLite and a throwaway PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use std::sync::Arc;

use daisy::bucketing::CrashKeys;
use daisy::storage::{
    HookState, InsertOops, Intake, IntakeOutcome, NewHook, NewOops, NewResult, OfferRequest,
    ResultOutcome, SqliteStorage, Storage, TargetKey, day_of, next_version,
};
use daisy::totals_cache::TotalsCache;
use harness::on_both_engines;

const NOW: i64 = 1_800_000_000;

fn oops(id: &str, system: &str) -> NewOops {
    NewOops {
        id: id.into(),
        system_id: system.into(),
        received: NOW,
        dedup_digest: Some(format!("digest-of-{id}")),
        crash_time: NOW - 10,
        bucket: Some("/usr/bin/foo:11:main".into()),
        sas: Some("/usr/bin/foo:11:foo+1a".into()),
        package: Some("foo".into()),
        source_package: Some("foo-src".into()),
        duplicate_signature: None,
        report: vec![5, 0, 0, 0, 0],
    }
}

/// Bucketing keys of a crash known only by its SAS (package `foo`).
fn sas_only_keys(sas: &str) -> CrashKeys {
    CrashKeys {
        duplicate_signature: None,
        early_signature: None,
        stacktrace_signature: None,
        sas: Some(sas.into()),
        package: Some("foo".into()),
        source_package: None,
    }
}

fn package_target() -> TargetKey {
    TargetKey {
        kind: "package".into(),
        value: "foo".into(),
    }
}

fn hook(name: &str, reports: u32) -> NewHook {
    NewHook {
        name: name.into(),
        version: 1,
        target: package_target(),
        max_reports: reports,
        max_days: 7,
        not_after: NOW + 7 * 86_400,
        disk_cap: 1000,
        source: format!("name = \"{name}\"\n"),
        bundle: b"bundle bytes".to_vec(),
        sha256: "00".repeat(32),
        actor: "tester".into(),
        created: NOW,
    }
}

async fn offer(s: &Arc<dyn Storage>, oops_id: &str, token: &str) -> Vec<i64> {
    s.offer_hooks(OfferRequest {
        oops_id: oops_id.into(),
        targets: vec![package_target()],
        token_hash: token.into(),
        now: NOW,
        expires: NOW + 3600,
        offer_multiple: 2,
    })
    .await
    .unwrap()
    .into_iter()
    .map(|h| h.id)
    .collect()
}

fn result(token: &str, hook_id: i64, oops_id: &str, bytes: i64) -> NewResult {
    NewResult {
        token_hash: token.into(),
        hook_id,
        oops_id: oops_id.into(),
        keys: vec![1, 2, 3],
        bytes,
        failed: false,
        now: NOW + 10,
    }
}

/// `/metrics`' totals are read once per interval, whatever the number of
/// scrapes; `/healthz` only pings.
#[tokio::test]
async fn metrics_totals_are_read_at_most_once_per_interval() {
    on_both_engines(|s| async move {
        s.ping().await.unwrap();
        let cache = TotalsCache::new(std::time::Duration::from_secs(3600));
        let first = cache.get(s.as_ref()).await.unwrap();
        s.insert_oops(oops("t1", "sys1")).await.unwrap();
        assert_eq!(
            cache.get(s.as_ref()).await.unwrap(),
            first,
            "within the interval: the first reading"
        );
        let fresh = TotalsCache::new(std::time::Duration::ZERO)
            .get(s.as_ref())
            .await
            .unwrap();
        assert_eq!(fresh.oopses, first.oopses + 1);
    })
    .await;
}

#[tokio::test]
async fn same_crash_from_same_system_is_a_duplicate() {
    on_both_engines(|s| async move {
        assert_eq!(
            s.insert_oops(oops("a", "sys1")).await.unwrap(),
            InsertOops::Inserted
        );
        let mut again = oops("b", "sys1");
        again.dedup_digest = Some("digest-of-a".into());
        assert_eq!(
            s.insert_oops(again.clone()).await.unwrap(),
            InsertOops::Duplicate("a".into())
        );
        assert!(
            s.oops("b").await.unwrap().is_none(),
            "duplicate must not be stored"
        );
        again.system_id = "sys2".into();
        assert_eq!(s.insert_oops(again).await.unwrap(), InsertOops::Inserted);
        let stored = s.oops("a").await.unwrap().unwrap();
        assert_eq!(stored.oops.package.as_deref(), Some("foo"));
        assert_eq!(stored.oops.report, vec![5, 0, 0, 0, 0]);
        assert_eq!(stored.core_size, None);
        assert!(s.set_core("a", "sys1", 42).await.unwrap());
        assert!(
            !s.set_core("a", "sys2", 42).await.unwrap(),
            "core bound to the system"
        );
        assert_eq!(s.oops("a").await.unwrap().unwrap().core_size, Some(42));
        assert_eq!(s.totals().await.unwrap().oopses, 2);
    })
    .await;
}

#[tokio::test]
async fn mapping_a_sas_rebuckets_the_parked_oopses() {
    on_both_engines(|s| async move {
        for id in ["p1", "p2"] {
            let mut o = oops(id, "sys");
            o.bucket = None;
            o.sas = Some("/usr/bin/foo:11:foo+1a".into());
            s.insert_oops(o).await.unwrap();
        }
        s.insert_oops(oops("bucketed", "sys")).await.unwrap();
        assert_eq!(
            s.sas_signature("/usr/bin/foo:11:foo+1a").await.unwrap(),
            None
        );
        let moved = s
            .map_sas(
                "/usr/bin/foo:11:foo+1a",
                "/usr/bin/foo:11:crash",
                "retracer",
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(moved, 2);
        assert_eq!(
            s.sas_signature("/usr/bin/foo:11:foo+1a")
                .await
                .unwrap()
                .as_deref(),
            Some("/usr/bin/foo:11:crash")
        );
        let mut ids = s
            .oopses_in_bucket("/usr/bin/foo:11:crash", 10)
            .await
            .unwrap();
        ids.sort();
        assert_eq!(ids, vec!["p1", "p2"]);
        let log = s.audit_log(1).await.unwrap();
        assert_eq!(log[0].action, "sas.map");
        assert_eq!(log[0].actor, "retracer");
    })
    .await;
}

/// The SQLite writer keeps its SAS lookups in memory for as long as the SAS
/// index does not change: a mapping made after a crash was filed under the
/// unknown SAS, and a mapping changed later, count for the very next crash.
#[tokio::test]
async fn intake_sees_a_sas_mapping_made_or_changed_after_its_last_lookup() {
    on_both_engines(|s| async move {
        let sas = "/usr/bin/foo:11:foo+1a";
        let intake = |id: &str| {
            let mut oops = oops(id, "sys");
            oops.bucket = None;
            Intake {
                oops,
                keys: sas_only_keys(sas),
            }
        };
        let bucket = |id: &'static str| {
            let s = Arc::clone(&s);
            async move { s.oops(id).await.unwrap().unwrap().oops.bucket }
        };
        let stored = |sas_known| IntakeOutcome::Stored {
            sas_known,
            hooks_match: false,
        };
        assert_eq!(s.intake(intake("i1")).await.unwrap(), stored(false));
        assert_eq!(s.intake(intake("i2")).await.unwrap(), stored(false));
        assert_eq!(bucket("i2").await, None);
        s.map_sas(sas, "/usr/bin/foo:11:first", "retracer", NOW)
            .await
            .unwrap();
        assert_eq!(s.intake(intake("i3")).await.unwrap(), stored(true));
        assert_eq!(bucket("i3").await.as_deref(), Some("/usr/bin/foo:11:first"));
        s.map_sas(sas, "/usr/bin/foo:11:second", "retracer", NOW)
            .await
            .unwrap();
        assert_eq!(s.intake(intake("i4")).await.unwrap(), stored(true));
        assert_eq!(
            bucket("i4").await.as_deref(),
            Some("/usr/bin/foo:11:second")
        );
    })
    .await;
}

/// The SQLite writer does not remember SASes or signatures longer than a
/// few hundred bytes (a client can make them megabytes long); such crashes
/// must still be bucketed and found like any other.
/// PostgreSQL: a SAS mapped after the crash writer looked it up, but whose
/// re-bucketing ran before the crash was committed, does not leave the
/// crash parked. A trigger commits the mapping together with the crash
/// (exactly that window); the writer's re-check under `map_sas`'s advisory
/// lock then buckets it. (SQLite's writer holds the write lock from the
/// lookup to the commit, so it cannot happen there.)
#[tokio::test]
async fn postgresql_a_sas_mapped_between_lookup_and_store_still_buckets_the_crash() {
    let Some(pg) = harness::Postgres::start() else {
        return;
    };
    let url = pg.fresh_database().await;
    let storage = daisy::storage::PostgresStorage::connect(&url)
        .await
        .unwrap();
    let client = harness::postgres::client(&url).await;
    let sas = "/usr/bin/foo:11:foo+race";
    client
        .batch_execute(&format!(
            "CREATE FUNCTION map_late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               INSERT INTO sas_signature (sas, signature, updated) \
               VALUES ('{sas}', '/usr/bin/foo:11:late', 0) ON CONFLICT DO NOTHING; \
               RETURN NEW; END $$; \
             CREATE TRIGGER map_late BEFORE INSERT ON oops \
               FOR EACH ROW EXECUTE FUNCTION map_late();"
        ))
        .await
        .unwrap();
    // A hook for the bucket the crash only gets from the late mapping.
    let mut late_hook = hook("late-bucket", 10);
    late_hook.target = TargetKey {
        kind: "crash_signature".into(),
        value: "/usr/bin/foo:11:late".into(),
    };
    storage.insert_hook(late_hook).await.unwrap();
    let mut oops = oops("race", "sys");
    oops.bucket = None;
    oops.sas = Some(sas.into());
    oops.package = Some("bar".into());
    oops.source_package = None;
    let outcome = storage
        .intake(Intake {
            oops,
            keys: sas_only_keys(sas),
        })
        .await
        .unwrap();
    // Answered as bucketed: no `CORE` for a SAS the retracer has mapped,
    // and the hook of its bucket matches.
    assert_eq!(
        outcome,
        IntakeOutcome::Stored {
            sas_known: true,
            hooks_match: true,
        }
    );
    assert_eq!(
        storage
            .oops("race")
            .await
            .unwrap()
            .unwrap()
            .oops
            .bucket
            .as_deref(),
        Some("/usr/bin/foo:11:late")
    );
}

/// A leaked or departed user's token can be revoked, and replaced in one
/// step; both audited.
#[tokio::test]
async fn tokens_are_revoked_and_replaced_and_both_are_audited() {
    on_both_engines(|s| async move {
        s.add_user("alice", "core-dev", "hash-1", "tester", NOW)
            .await
            .unwrap();
        assert!(s.user_by_token("hash-1").await.unwrap().is_some());
        assert_eq!(
            s.replace_tokens("alice", Some("hash-2"), "tester", NOW)
                .await
                .unwrap(),
            Some(1)
        );
        assert!(s.user_by_token("hash-1").await.unwrap().is_none());
        assert_eq!(
            s.user_by_token("hash-2").await.unwrap().map(|u| u.name),
            Some("alice".to_owned())
        );
        let listed = s.users().await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|u| (u.name.as_str(), u.team.as_str(), u.active_tokens))
                .collect::<Vec<_>>(),
            [("alice", "core-dev", 1)]
        );
        assert_eq!(
            s.replace_tokens("alice", None, "tester", NOW)
                .await
                .unwrap(),
            Some(1)
        );
        assert!(s.user_by_token("hash-2").await.unwrap().is_none());
        assert_eq!(s.users().await.unwrap()[0].active_tokens, 0);
        assert_eq!(
            s.replace_tokens("nobody", None, "tester", NOW)
                .await
                .unwrap(),
            None
        );
        let actions: Vec<String> = s
            .audit_log(10)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.subject == "alice")
            .map(|e| e.action)
            .collect();
        for action in ["user.add", "user.revoke", "user.token"] {
            assert!(actions.iter().any(|a| a == action), "{actions:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn crashes_with_long_sases_and_signatures_are_bucketed_and_found() {
    on_both_engines(|s| async move {
        let sas = format!("/usr/bin/foo:11:{}", "f".repeat(600));
        let signature = format!("/usr/bin/foo:11:{}", "g".repeat(1_000));
        s.map_sas(&sas, &signature, "retracer", NOW).await.unwrap();
        for id in ["long-1", "long-2"] {
            let mut oops = oops(id, "sys");
            oops.bucket = None;
            oops.sas = Some(sas.clone());
            let keys = sas_only_keys(&sas);
            assert_eq!(
                s.intake(Intake { oops, keys }).await.unwrap(),
                IntakeOutcome::Stored {
                    sas_known: true,
                    hooks_match: false,
                }
            );
            let stored = s.oops(id).await.unwrap().unwrap().oops.bucket;
            assert_eq!(stored.as_deref(), Some(signature.as_str()));
        }
        assert_eq!(
            s.oopses_in_bucket(&signature, 10).await.unwrap(),
            ["long-1", "long-2"]
        );
    })
    .await;
}

#[tokio::test]
async fn hook_versions_count_per_name_and_activation_is_audited_with_its_text() {
    on_both_engines(|s| async move {
        let one = s.insert_hook(hook("lightdm-log", 10)).await.unwrap();
        let mut second = hook("lightdm-log", 10);
        second.version = next_version(&s.hooks().await.unwrap(), "lightdm-log");
        let two = s.insert_hook(second).await.unwrap();
        assert!(
            s.insert_hook(hook("lightdm-log", 10)).await.is_err(),
            "(name, version) is unique"
        );
        let other = s.insert_hook(hook("other", 10)).await.unwrap();
        assert_eq!((one.version, two.version, other.version), (1, 2, 1));
        assert_eq!(one.state, HookState::Active);
        assert_eq!(
            s.hook_bundle(two.id, NOW).await.unwrap().unwrap(),
            b"bundle bytes"
        );
        // Withdrawn: the superseded version's bundle, and any bundle past
        // its hook's days.
        assert!(s.hook_bundle(one.id, NOW).await.unwrap().is_none());
        let expiry = s.hook(two.id).await.unwrap().unwrap().not_after;
        assert!(s.hook_bundle(two.id, expiry).await.unwrap().is_none());
        assert_eq!(s.hooks().await.unwrap().len(), 3);
        // The new version replaced the old one; another name is untouched.
        let one_now = s.hook(one.id).await.unwrap().unwrap();
        assert_eq!(one_now.state, HookState::Disabled);
        assert_eq!(
            one_now.state_reason.as_deref(),
            Some("superseded by version 2")
        );
        assert_eq!(two.state, HookState::Active);
        let log = s.audit_log(10).await.unwrap();
        assert!(log.iter().any(|e| e.action == "hook.activate"
            && e.detail == "name = \"lightdm-log\"\n"
            && e.actor == "tester"));
        assert!(log.iter().any(|e| e.action == "hook.disabled"
            && e.subject == one.id.to_string()
            && e.detail == "superseded by version 2"));
        let matching = s.matching_hooks(&[package_target()], NOW).await.unwrap();
        let ids: Vec<i64> = matching.iter().map(|h| h.id).collect();
        assert_eq!(
            ids,
            vec![two.id, other.id],
            "disabled hooks are not matched"
        );
        assert!(
            s.set_hook_state(two.id, HookState::Disabled, "by hand", "admin", NOW)
                .await
                .unwrap()
        );
        assert!(
            !s.set_hook_state(two.id, HookState::Disabled, "again", "admin", NOW)
                .await
                .unwrap()
        );
        let matching = s.matching_hooks(&[package_target()], NOW).await.unwrap();
        assert_eq!(
            matching.iter().map(|h| h.id).collect::<Vec<_>>(),
            [other.id]
        );
        let later = s
            .matching_hooks(&[package_target()], NOW + 8 * 86_400)
            .await
            .unwrap();
        assert!(later.is_empty(), "hooks past `days` are not matched");
    })
    .await;
}

#[tokio::test]
async fn results_stop_at_the_reports_limit_and_the_hook_completes() {
    on_both_engines(|s| async move {
        let h = s.insert_hook(hook("three", 3)).await.unwrap();
        for i in 0..5 {
            let id = format!("o{i}");
            s.insert_oops(oops(&id, "sys")).await.unwrap();
            assert_eq!(offer(&s, &id, &format!("t{i}")).await, vec![h.id]);
        }
        let mut outcomes = Vec::new();
        for i in 0..5 {
            let r = result(&format!("t{i}"), h.id, &format!("o{i}"), 10);
            outcomes.push(s.accept_result(r).await.unwrap());
        }
        s.insert_oops(oops("late", "sys")).await.unwrap();
        assert!(
            offer(&s, "late", "t-late").await.is_empty(),
            "completed hooks are not offered"
        );
        assert_eq!(
            outcomes,
            vec![
                ResultOutcome::Accepted { completed: false },
                ResultOutcome::Accepted { completed: false },
                ResultOutcome::Accepted { completed: true },
                ResultOutcome::Gone(HookState::Completed),
                ResultOutcome::Gone(HookState::Completed),
            ]
        );
        let h = s.hook(h.id).await.unwrap().unwrap();
        assert_eq!(h.state, HookState::Completed);
        assert_eq!(
            (h.results, h.bytes, h.results_refused, h.offered),
            (3, 30, 2, 5)
        );
        let stored = s.hook_results(h.id, 100).await.unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[0].bucket.as_deref(), Some("/usr/bin/foo:11:main"));
        assert_eq!(stored[0].package.as_deref(), Some("foo"));
        assert_eq!(stored[0].hook_version, 1);
        assert_eq!(s.oops_results("o0").await.unwrap().len(), 1);
        assert_eq!(s.daily_stat(day_of(NOW), h.id, "results").await.unwrap(), 3);
        assert_eq!(
            s.daily_stat(day_of(NOW), h.id, "results_refused")
                .await
                .unwrap(),
            2
        );
    })
    .await;
}

#[tokio::test]
async fn tokens_are_one_use_bound_to_their_oops_and_expire() {
    on_both_engines(|s| async move {
        let h = s.insert_hook(hook("tok", 10)).await.unwrap();
        s.insert_oops(oops("o1", "sys")).await.unwrap();
        s.insert_oops(oops("o2", "sys")).await.unwrap();
        offer(&s, "o1", "tok1").await;
        assert_eq!(
            s.accept_result(result("wrong", h.id, "o1", 1))
                .await
                .unwrap(),
            ResultOutcome::UnknownToken
        );
        assert_eq!(
            s.accept_result(result("tok1", h.id, "o2", 1))
                .await
                .unwrap(),
            ResultOutcome::UnknownToken,
            "a token is bound to its OOPS"
        );
        let mut late = result("tok1", h.id, "o1", 1);
        late.now = NOW + 3601;
        assert_eq!(
            s.accept_result(late).await.unwrap(),
            ResultOutcome::UnknownToken
        );
        assert_eq!(
            s.accept_result(result("tok1", h.id, "o1", 1))
                .await
                .unwrap(),
            ResultOutcome::Accepted { completed: false }
        );
        assert_eq!(
            s.accept_result(result("tok1", h.id, "o1", 1))
                .await
                .unwrap(),
            ResultOutcome::Duplicate
        );
        // A second list for the same OOPS does not offer the hook again.
        assert!(offer(&s, "o1", "tok2").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_hook_past_its_days_expires_on_the_next_upload() {
    on_both_engines(|s| async move {
        let h = s.insert_hook(hook("days", 10)).await.unwrap();
        s.insert_oops(oops("o1", "sys")).await.unwrap();
        offer(&s, "o1", "t").await;
        let mut r = result("t", h.id, "o1", 1);
        r.now = h.not_after;
        let outcome = s.accept_result(r).await.unwrap();
        // The token expired an hour after issue, long before `days`.
        assert_eq!(outcome, ResultOutcome::UnknownToken);
        let h2 = s.insert_hook(hook("days-long-token", 10)).await.unwrap();
        s.insert_oops(oops("o2", "sys")).await.unwrap();
        s.offer_hooks(OfferRequest {
            oops_id: "o2".into(),
            targets: vec![package_target()],
            token_hash: "long".into(),
            now: NOW,
            expires: NOW + 30 * 86_400,
            offer_multiple: 2,
        })
        .await
        .unwrap();
        let mut r = result("long", h2.id, "o2", 1);
        r.now = h2.not_after + 1;
        assert_eq!(
            s.accept_result(r).await.unwrap(),
            ResultOutcome::Gone(HookState::Expired)
        );
        assert_eq!(
            s.hook(h2.id).await.unwrap().unwrap().state,
            HookState::Expired
        );
    })
    .await;
}

/// Asking for the hook list of one OOPS again replaces its token instead
/// of adding one: the first token is retired, the second works, and a
/// client (or anyone who knows the OOPS and system id) asking again and
/// again does not use up the hook's offer bound for other crashes.
#[tokio::test]
async fn asking_again_for_one_oops_replaces_its_token() {
    on_both_engines(|s| async move {
        let h = s.insert_hook(hook("again", 1)).await.unwrap();
        s.insert_oops(oops("o1", "sys")).await.unwrap();
        for i in 0..5 {
            assert_eq!(offer(&s, "o1", &format!("again{i}")).await, [h.id]);
        }
        let hook_now = s.hook(h.id).await.unwrap().unwrap();
        assert_eq!((hook_now.offered, hook_now.offers_refused), (5, 0));
        // The bound (2 × reports = 2) still has room for another crash.
        s.insert_oops(oops("o2", "sys")).await.unwrap();
        assert_eq!(offer(&s, "o2", "other").await, [h.id]);
        assert_eq!(
            s.accept_result(result("again0", h.id, "o1", 1))
                .await
                .unwrap(),
            ResultOutcome::UnknownToken,
            "the first token was retired"
        );
        assert_eq!(
            s.accept_result(result("again4", h.id, "o1", 1))
                .await
                .unwrap(),
            ResultOutcome::Accepted { completed: true }
        );
    })
    .await;
}

/// The gauge of active hooks leaves out hooks whose `days` have passed,
/// and so do the API and the CLI (`HookRecord::as_of`), even while no late
/// result has yet marked the row expired.
#[tokio::test]
async fn hooks_past_their_days_are_not_counted_active() {
    on_both_engines(|s| async move {
        let now = daisy::storage::now();
        let mut past = hook("past", 10);
        past.not_after = now - 1;
        let past = s.insert_hook(past).await.unwrap();
        let mut future = hook("future", 10);
        future.not_after = now + 86_400;
        s.insert_hook(future).await.unwrap();
        assert_eq!(s.totals().await.unwrap().hooks_active, 1);
        let stored = s.hook(past.id).await.unwrap().unwrap();
        assert_eq!(stored.state, HookState::Active, "the row is unchanged");
        let shown = stored.as_of(now);
        assert_eq!(shown.state, HookState::Expired);
        assert_eq!(shown.state_reason.as_deref(), Some("days limit reached"));
    })
    .await;
}

#[tokio::test]
async fn a_result_over_the_disk_cap_disables_the_hook() {
    on_both_engines(|s| async move {
        let h = s.insert_hook(hook("cap", 10)).await.unwrap();
        for (i, bytes) in [(0, 600), (1, 600)] {
            let id = format!("o{i}");
            s.insert_oops(oops(&id, "sys")).await.unwrap();
            offer(&s, &id, &format!("t{i}")).await;
            let outcome = s
                .accept_result(result(&format!("t{i}"), h.id, &id, bytes))
                .await
                .unwrap();
            let expected = if i == 0 {
                ResultOutcome::Accepted { completed: false }
            } else {
                ResultOutcome::OverDiskCap
            };
            assert_eq!(outcome, expected);
        }
        let h = s.hook(h.id).await.unwrap().unwrap();
        assert_eq!(h.state, HookState::Disabled);
        assert_eq!(h.state_reason.as_deref(), Some("disk cap reached"));
        assert_eq!((h.results, h.bytes), (1, 600));
    })
    .await;
}

#[tokio::test]
async fn a_hook_is_not_offered_beyond_its_offer_bound() {
    on_both_engines(|s| async move {
        let h = s.insert_hook(hook("bound", 2)).await.unwrap();
        let mut offered = 0;
        for i in 0..6 {
            let id = format!("o{i}");
            s.insert_oops(oops(&id, "sys")).await.unwrap();
            offered += offer(&s, &id, &format!("t{i}")).await.len();
        }
        assert_eq!(offered, 4, "2 × reports outstanding tokens at most");
        let h = s.hook(h.id).await.unwrap().unwrap();
        assert_eq!((h.offered, h.offers_refused), (4, 2));
    })
    .await;
}

#[tokio::test]
async fn concurrent_uploads_never_pass_the_reports_limit() {
    on_both_engines(|s| async move {
        let h = s.insert_hook(hook("race", 10)).await.unwrap();
        for i in 0..40 {
            let id = format!("o{i}");
            s.insert_oops(oops(&id, "sys")).await.unwrap();
            s.offer_hooks(OfferRequest {
                oops_id: id,
                targets: vec![package_target()],
                token_hash: format!("t{i}"),
                now: NOW,
                expires: NOW + 3600,
                offer_multiple: 10,
            })
            .await
            .unwrap();
        }
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                s.accept_result(result(&format!("t{i}"), h.id, &format!("o{i}"), 1))
                    .await
                    .unwrap()
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), ResultOutcome::Accepted { .. }) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 10);
        assert_eq!(s.hook(h.id).await.unwrap().unwrap().results, 10);
        assert_eq!(s.hook_results(h.id, 100).await.unwrap().len(), 10);
    })
    .await;
}

#[tokio::test]
async fn api_tokens_are_looked_up_by_hash() {
    on_both_engines(|s| async move {
        assert_eq!(s.user_count().await.unwrap(), 0);
        let u = s
            .add_user("alice", "core-dev", "hash-a", "admin-cli", NOW)
            .await
            .unwrap();
        assert_eq!(s.user_by_token("hash-a").await.unwrap(), Some(u));
        assert_eq!(s.user_by_token("hash-b").await.unwrap(), None);
        assert!(
            s.add_user("alice", "x", "hash-c", "admin-cli", NOW)
                .await
                .is_err()
        );
        assert_eq!(s.user_count().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn concurrent_crashes_are_all_stored_and_duplicates_caught_within_a_batch() {
    on_both_engines(|s| async move {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                let mut o = oops(&format!("c{i}"), "sys");
                // Pairs share a digest: one of each pair is a duplicate.
                o.dedup_digest = Some(format!("pair{}", i / 2));
                s.insert_oops(o).await.unwrap()
            }));
        }
        let mut inserted = 0;
        for t in tasks {
            if t.await.unwrap() == InsertOops::Inserted {
                inserted += 1;
            }
        }
        assert_eq!(inserted, 100);
        assert_eq!(s.totals().await.unwrap().oopses, 100);
    })
    .await;
}

/// On SQLite a mapped SAS moves its parked crashes into the bucket's id
/// (migration 0007), so they are found through `oops_bucket_id`, not the
/// index of rows from before 0007; a mapping with nothing parked makes no
/// bucket.
#[tokio::test]
async fn sqlite_sas_mapping_files_moved_crashes_under_the_bucket_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daisy.sqlite3");
    let s = SqliteStorage::open(&path).await.unwrap();
    let sas = "/usr/bin/foo:11:foo+1a";
    let mut parked = oops("p1", "sys");
    parked.bucket = None;
    parked.sas = Some(sas.into());
    s.insert_oops(parked).await.unwrap();
    let moved = s
        .map_sas(sas, "/usr/bin/foo:11:crash", "retracer", NOW)
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let none = s
        .map_sas(
            "/usr/bin/bar:1:bar+1",
            "/usr/bin/bar:1:nothing",
            "retracer",
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(none, 0);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let filed: String = conn
        .query_row(
            "SELECT b.signature FROM oops o JOIN buckets b ON b.id = o.bucket_id \
             WHERE o.id = 'p1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(filed, "/usr/bin/foo:11:crash");
    let empty: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM buckets WHERE signature = '/usr/bin/bar:1:nothing'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(empty, 0, "no bucket made for a mapping that moved nothing");
}
