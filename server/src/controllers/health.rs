//! `/healthz` and `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::app::AppState;

/// `GET /healthz`: `200 ok` when the database answers, `503` otherwise.
/// A trivial query: anyone may call it, as often as they like.
pub async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    match app.storage.ping().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!("health check: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let totals = app.totals.get(app.storage.as_ref()).await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(totals),
    )
}
