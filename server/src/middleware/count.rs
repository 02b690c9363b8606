//! Counts every request by route template and status for `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

/// The middleware function (`axum::middleware::from_fn_with_state`).
pub async fn count_requests(State(app): State<AppState>, req: Request, next: Next) -> Response {
    // The template, never the raw path: system ids must not become labels.
    // `MatchedPath` is a shared string: cloning it allocates nothing.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    app.metrics.request(route, response.status().as_u16());
    response
}
