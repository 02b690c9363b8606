//! Request handlers, one file per resource.

pub mod api;
pub mod api_extract;
pub mod crash;
pub mod health;
pub mod hooks;
pub mod result_body;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// `response` with `Connection: close`: for an answer given before the
/// request's body was read to its end, so that the client cannot go on
/// sending it on this connection.
pub fn closing(response: impl IntoResponse) -> Response {
    let mut r = response.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// `503` for a body refused because the bodies in flight used up their
/// budget (`body_budget`): whoopsie retries anything but `200` and `400`
/// later. The rest of the body is not read, so the connection is closed.
pub fn busy() -> Response {
    closing(AppError::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Server busy, try again later.",
    ))
}
