//! The JSON API's extractors: axum's `Path`, `Query` and `Json`, whose
//! rejections (a non-numeric id, a bad `?limit=`, a body that is not JSON,
//! too large or missing a field) answer in the API's own shape,
//! `{"error": "…"}`, with the status axum chose, instead of plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// An axum rejection as an API error (same status, the rejection's text).
fn json_error(rejection: impl IntoResponse + std::fmt::Display) -> AppError {
    let message = rejection.to_string();
    AppError::json(rejection.into_response().status(), message)
}

/// `axum::extract::Path` with JSON rejections.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| json_error(e))
    }
}

/// `axum::extract::Query` with JSON rejections.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| json_error(e))
    }
}

/// `axum::Json` with JSON rejections; the body limit of the route still
/// applies (`413`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|j| ApiJson(j.0))
            .map_err(|e: JsonRejection| json_error(e))
    }
}
