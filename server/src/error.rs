//! The error type of request handlers, rendered at the edge: plain text on
//! the whoopsie routes (clients log the body), JSON on `/api/`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::storage::StorageError;

/// How the body of an error is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Text,
    Json,
}

/// A request failure with its status and message.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
    shape: Shape,
}

impl AppError {
    /// A plain-text error (whoopsie protocol routes).
    pub fn text(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
            shape: Shape::Text,
        }
    }

    /// A JSON error `{"error": message}` (API routes).
    pub fn json(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
            shape: Shape::Json,
        }
    }

    /// Renders the same error as JSON.
    pub fn into_json(mut self) -> AppError {
        self.shape = Shape::Json;
        self
    }

    /// `400` with a text.
    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::text(StatusCode::BAD_REQUEST, message)
    }

    /// `401`.
    pub fn unauthorized(message: impl Into<String>) -> AppError {
        AppError::text(StatusCode::UNAUTHORIZED, message)
    }

    /// `403`.
    pub fn forbidden(message: impl Into<String>) -> AppError {
        AppError::text(StatusCode::FORBIDDEN, message)
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::text(StatusCode::NOT_FOUND, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> AppError {
        tracing::error!("storage: {e}");
        // 503 makes whoopsie retry later instead of dropping the crash.
        AppError::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Storage unavailable, try again later.",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self.shape {
            Shape::Text => (self.status, self.message).into_response(),
            Shape::Json => (
                self.status,
                axum::Json(serde_json::json!({ "error": self.message })),
            )
                .into_response(),
        }
    }
}
