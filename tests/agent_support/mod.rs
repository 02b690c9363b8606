//! A recording HTTP server on loopback with canned replies.
//!
//! The protocol tests against the real daisy are in `agent_daisy.rs`. This
//! double remains for what daisy cannot be made to do on demand: answer
//! `503`, `401` or an unknown command, and show the exact bytes and headers
//! a client sent. It records every request (method, path, the whoopsie
//! headers, body) and answers from a queue of canned replies (default
//! `200 <uuid> OOPSID`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

#[path = "../loopback_http/mod.rs"]
mod loopback_http;
use loopback_http::Loopback;

/// The OOPS id the double hands out by default.
pub const OOPS_ID: &str = "4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub whoopsie_version: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    replies: VecDeque<(u16, String)>,
}

/// A running double.
pub struct Intake {
    state: Arc<Mutex<State>>,
    server: Loopback,
}

impl Intake {
    /// Binds 127.0.0.1:0 and serves on a runtime of its own.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = Loopback::serve(move |_| {
            axum::Router::new()
                .fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let shared = shared.clone();
                        async move {
                            let header = |name: &str| {
                                headers
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            let mut state = shared.lock().unwrap();
                            state.seen.push(Seen {
                                method: method.to_string(),
                                path: uri.path().to_owned(),
                                content_type: header("content-type"),
                                whoopsie_version: header("x-whoopsie-version"),
                                body: body.to_vec(),
                            });
                            let (status, reply) = state
                                .replies
                                .pop_front()
                                .unwrap_or((200, format!("{OOPS_ID} OOPSID")));
                            (StatusCode::from_u16(status).unwrap(), reply)
                        }
                    },
                )
                .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        });
        Self { state, server }
    }

    /// The base URL to give the client.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Queues a reply for the next request.
    pub fn reply(&self, status: u16, body: impl Into<String>) {
        self.state
            .lock()
            .unwrap()
            .replies
            .push_back((status, body.into()));
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}
