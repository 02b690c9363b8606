//! Every route in one place, each with its body limit; one timeout around
//! all of them, so a slow or endless body cannot hold a connection.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use crate::controllers::{api, crash, health, hooks};
use crate::middleware::count::count_requests;

/// Builds the router.
pub fn build(app: AppState) -> Router {
    let limits = app.config.limits.clone();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route(
            "/{system_id}",
            post(crash::submit).layer(DefaultBodyLimit::max(limits.max_report_bytes)),
        )
        .route("/{oops_id}/hooks/{system_id}", get(hooks::list))
        .route("/hooks/{id}/bundle", get(hooks::bundle))
        // Streamed with its own caps (`limits.max_result_bytes`, the disk cap).
        .route(
            "/hooks/{id}/results/{oops_id}",
            post(hooks::post_result).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/1.0/hooks", get(api::hooks))
        .route("/api/1.0/hooks/{id}", get(api::hook))
        .route("/api/1.0/hooks/{id}/results", get(api::hook_results))
        .route("/api/1.0/oops/{id}", get(api::oops))
        .route("/api/1.0/problems/{*bucket}", get(api::problem))
        .route("/api/1.0/sas/{*sas}", put(api::put_sas))
        // Streamed with its own cap (`limits.max_core_bytes`).
        .route(
            "/{oops_id}/submit-core/{arch}/{system_id}",
            post(crash::submit_core).layer(DefaultBodyLimit::disable()),
        )
        .layer(DefaultBodyLimit::max(limits.max_api_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            count_requests,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(limits.request_timeout_secs),
        ))
        .with_state(app)
}
