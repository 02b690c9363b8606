//! A loopback HTTP server speaking the hook-phase half of daisy's protocol
//! with scripted answers: hook lists (BSON) whose token and expiry each test
//! chooses, result uploads it records. The real daisy cannot be made to hand
//! out a token that expired already or to fail one request on demand; the
//! protocol against the real daisy is tested in `agent_collect.rs`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;

#[path = "../loopback_http/mod.rs"]
mod loopback_http;
use loopback_http::Loopback;

/// One hook in a scripted list.
#[derive(Debug, Clone)]
pub struct Offer {
    pub id: i64,
    pub version: i32,
}

/// One scripted hook-list answer.
#[derive(Debug, Clone)]
pub enum ListReply {
    /// 200 with a list: token, expires, hooks.
    List(String, i64, Vec<Offer>),
    /// This status with a text body.
    Status(u16),
    /// This status with this body.
    Text(u16, &'static str),
}

/// A request as seen.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    seen: Vec<Request>,
    lists: VecDeque<ListReply>,
    default_list: Option<ListReply>,
    results: VecDeque<u16>,
    list_delay: std::time::Duration,
    bundles: std::collections::HashMap<i64, Vec<u8>>,
}

/// The running server.
pub struct Server {
    state: Arc<Mutex<State>>,
    server: Loopback,
}

fn list_body(
    base: &str,
    oops: &str,
    token: &str,
    expires: i64,
    hooks: &[Offer],
    bundles: &std::collections::HashMap<i64, Vec<u8>>,
) -> Vec<u8> {
    use sha2::Digest as _;
    let hooks: Vec<bson::Bson> = hooks
        .iter()
        .map(|h| {
            let sha256 = bundles
                .get(&h.id)
                .map_or_else(|| "0".repeat(64), |b| hex::encode(sha2::Sha256::digest(b)));
            bson::Bson::Document(bson::doc! {
                "id": h.id,
                "version": h.version,
                "sha256": sha256,
                "bundle": format!("{base}/hooks/{}/bundle", h.id),
                "results": format!("{base}/hooks/{}/results/{oops}", h.id),
            })
        })
        .collect();
    bson::doc! { "oops": oops, "token": token, "expires": expires, "hooks": hooks }
        .to_vec()
        .unwrap()
}

impl Server {
    /// Binds 127.0.0.1:0; hook lists default to an empty list.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = Loopback::serve(move |addr| {
            let base = format!("http://{addr}");
            axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let shared = shared.clone();
                    let base = base.clone();
                    async move {
                        let path = uri.path().to_owned();
                        let parts: Vec<String> = path
                            .trim_start_matches('/')
                            .split('/')
                            .map(str::to_owned)
                            .collect();
                        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                        // Decide under the lock, answer (maybe slowly) without it.
                        let (delay, answer) = {
                            let mut state = shared.lock().unwrap();
                            state.seen.push(Request {
                                method: method.to_string(),
                                path: path.clone(),
                                authorization: headers
                                    .get("authorization")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                                body: body.to_vec(),
                            });
                            match (method.as_str(), parts.as_slice()) {
                                ("GET", [oops, "hooks", _system]) => {
                                    let reply = state
                                        .lists
                                        .pop_front()
                                        .or_else(|| state.default_list.clone())
                                        .unwrap_or(ListReply::List(String::new(), 0, Vec::new()));
                                    let answer = match reply {
                                        ListReply::List(token, expires, hooks) => (
                                            200,
                                            list_body(
                                                &base,
                                                oops,
                                                &token,
                                                expires,
                                                &hooks,
                                                &state.bundles,
                                            ),
                                        ),
                                        ListReply::Status(code) => {
                                            (code, b"scripted failure".to_vec())
                                        }
                                        ListReply::Text(code, text) => {
                                            (code, text.as_bytes().to_vec())
                                        }
                                    };
                                    (state.list_delay, answer)
                                }
                                ("GET", ["hooks", id, "bundle"]) => {
                                    match id
                                        .parse::<i64>()
                                        .ok()
                                        .and_then(|id| state.bundles.get(&id))
                                    {
                                        Some(bytes) => {
                                            (std::time::Duration::ZERO, (200, bytes.clone()))
                                        }
                                        None => (
                                            std::time::Duration::ZERO,
                                            (404, b"no such hook".to_vec()),
                                        ),
                                    }
                                }
                                ("POST", ["hooks", _id, "results", _oops]) => {
                                    let code = state.results.pop_front().unwrap_or(200);
                                    (std::time::Duration::ZERO, (code, b"ok".to_vec()))
                                }
                                _ => (std::time::Duration::ZERO, (404, b"no such thing".to_vec())),
                            }
                        };
                        tokio::time::sleep(delay).await;
                        (StatusCode::from_u16(answer.0).unwrap(), answer.1).into_response()
                    }
                },
            )
        });
        Self { state, server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Queues the answer to the next hook-list request.
    pub fn list(&self, reply: ListReply) {
        self.state.lock().unwrap().lists.push_back(reply);
    }

    /// The answer once the queue is empty.
    pub fn default_list(&self, reply: ListReply) {
        self.state.lock().unwrap().default_list = Some(reply);
    }

    /// Serves `bundle` as hook `id`'s bundle (and its sha256 in lists).
    pub fn bundle(&self, id: i64, bundle: Vec<u8>) {
        self.state.lock().unwrap().bundles.insert(id, bundle);
    }

    /// Answers hook lists only after `delay` (a slow server).
    pub fn delay_lists(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().list_delay = delay;
    }

    /// Queues the status of the next result upload.
    pub fn result_status(&self, code: u16) {
        self.state.lock().unwrap().results.push_back(code);
    }

    pub fn seen(&self) -> Vec<Request> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests had this method and a path starting with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .count()
    }
}
