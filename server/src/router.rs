//! Every route in one place, each with its body limit; one timeout around
//! all of them, so a slow or endless body cannot hold a connection.
//!
//! Only the request counter is a `Router::layer`: axum wraps every route in
//! one more boxed service per such layer and clones each box on every
//! request, so the timeout goes around the router once instead, and each
//! body limit is applied where the body is read (docs/daisy.md, "The HTTP
//! stack").

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use hyper::Request;
use hyper::body::Incoming;
use tower_http::timeout::Timeout;
use tower_service::Service;

use crate::app::AppState;
use crate::controllers::{api, crash, health, hooks};
use crate::middleware::count::CountRequests;

/// daisy's whole HTTP service, as `server::serve` hands it to each connection.
pub trait HttpService:
    Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> HttpService for T where
    T: Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Builds daisy's HTTP service: the router inside the request timeout.
pub fn build(app: AppState) -> impl HttpService {
    let timeout = Duration::from_secs(app.config.limits.request_timeout_secs);
    Timeout::with_status_code(routes(app), StatusCode::REQUEST_TIMEOUT, timeout)
}

fn routes(app: AppState) -> Router {
    let limits = app.config.limits.clone();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        // Read with its own cap (`limits.max_report_bytes`).
        .route("/{system_id}", post(crash::submit))
        .route("/{oops_id}/hooks/{system_id}", get(hooks::list))
        .route("/hooks/{id}/bundle", get(hooks::bundle))
        // Streamed with its own caps (`limits.max_result_bytes`, the disk cap).
        .route("/hooks/{id}/results/{oops_id}", post(hooks::post_result))
        .route("/api/1.0/hooks", get(api::hooks))
        .route("/api/1.0/hooks/{id}", get(api::hook))
        .route("/api/1.0/hooks/{id}/results", get(api::hook_results))
        .route("/api/1.0/oops/{id}", get(api::oops))
        .route("/api/1.0/problems/{*bucket}", get(api::problem))
        // The only route whose extractor (JSON) reads the body for it.
        .route(
            "/api/1.0/sas/{*sas}",
            put(api::put_sas).layer(DefaultBodyLimit::max(limits.max_api_body_bytes)),
        )
        // Streamed with its own cap (`limits.max_core_bytes`).
        .route(
            "/{oops_id}/submit-core/{arch}/{system_id}",
            post(crash::submit_core),
        )
        .layer(CountRequests::new(app.clone()))
        .with_state(app)
}
