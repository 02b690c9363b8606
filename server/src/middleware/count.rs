//! Counts every request by route template and status for `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

/// The middleware function (`axum::middleware::from_fn_with_state`).
pub async fn count_requests(State(app): State<AppState>, req: Request, next: Next) -> Response {
    // The template, never the raw path: system ids must not become labels.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    app.metrics.request(&route, response.status().as_u16());
    response
}
