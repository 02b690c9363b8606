//! Counters for `/metrics`, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::storage::Totals;

/// Process-wide counters. Labelled counters live in small maps: the label
/// values are route templates and fixed reasons, never client data.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Route template → status → count: a known route is counted without
    /// allocating.
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    crashes: Mutex<BTreeMap<&'static str, u64>>,
    results: Mutex<BTreeMap<&'static str, u64>>,
    offers: Mutex<BTreeMap<&'static str, u64>>,
    connections_open: AtomicU64,
    connection_limit: AtomicU64,
    connection_limit_reached: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    let n = map.entry(key).or_insert(0);
    *n = n.saturating_add(1);
}

fn get<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: &K) -> u64 {
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.get(key).copied().unwrap_or(0)
}

impl Metrics {
    /// Counts a finished request by route template and status.
    pub fn request(&self, route: &str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let statuses = match requests.get_mut(route) {
            Some(statuses) => statuses,
            None => requests.entry(route.to_owned()).or_default(),
        };
        let n = statuses.entry(status).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Counts a crash upload by outcome (`accepted`, `duplicate`, `invalid_bson`…).
    pub fn crash(&self, outcome: &'static str) {
        bump(&self.crashes, outcome);
    }

    /// Counts a result upload by outcome (`accepted`, `unknown_token`, `duplicate`…).
    pub fn result(&self, outcome: &'static str) {
        bump(&self.results, outcome);
    }

    /// Counts hook offers (`offered`, `refused`).
    pub fn offer(&self, outcome: &'static str) {
        bump(&self.offers, outcome);
    }

    /// Sets the connection cap in force (`limits.max_connections` after
    /// `fd_limit`).
    pub fn set_connection_limit(&self, limit: usize) {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        self.connection_limit.store(limit, Ordering::Relaxed);
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Every connection was taken, so accepting waited for one to close.
    pub fn connection_limit_reached(&self) {
        self.connection_limit_reached
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Client connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// One crash counter, for tests.
    pub fn crash_count(&self, outcome: &'static str) -> u64 {
        get(&self.crashes, &outcome)
    }

    /// One result counter, for tests.
    pub fn result_count(&self, outcome: &'static str) -> u64 {
        get(&self.results, &outcome)
    }

    /// Renders all counters plus the database totals.
    pub fn render(&self, totals: Option<Totals>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP daisy_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE daisy_requests_total counter");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(route, statuses)| statuses.iter().map(move |(s, n)| ((route, s), n)))
        {
            let _ = writeln!(
                out,
                "daisy_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        for (name, help, map) in [
            (
                "daisy_crashes_total",
                "Crash uploads by outcome.",
                &self.crashes,
            ),
            (
                "daisy_hook_results_total",
                "Hook result uploads by outcome.",
                &self.results,
            ),
            (
                "daisy_hook_offers_total",
                "Hooks offered or left out by the offer bound.",
                &self.offers,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (outcome, n) in map.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {n}");
            }
        }
        for (name, kind, help, value) in [
            (
                "daisy_http_connections",
                "gauge",
                "Client connections open.",
                self.connections_open(),
            ),
            (
                "daisy_http_connection_limit",
                "gauge",
                "Client connections served at once (limits.max_connections).",
                self.connection_limit.load(Ordering::Relaxed),
            ),
            (
                "daisy_http_connection_limit_reached_total",
                "counter",
                "Times every connection was taken and accepting waited for one to close.",
                self.connection_limit_reached.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(t) = totals {
            for (name, help, value) in [
                (
                    "daisy_hooks_active",
                    "Hooks in state active.",
                    t.hooks_active,
                ),
                ("daisy_oopses", "Stored OOPSes.", t.oopses),
                ("daisy_hook_results", "Stored hook results.", t.results),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                let _ = writeln!(out, "{name} {value}");
            }
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
