//! Bearer tokens: API tokens of users and the per-OOPS hook tokens. Only
//! SHA-256 hashes are stored, so a database leak does not hand out
//! working tokens.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::digest_hex::lower_hex;
use crate::error::AppError;
use crate::storage::User;

/// Bytes of randomness in a token (hex-encoded on the wire).
pub const TOKEN_BYTES: usize = 32;

/// A fresh random token, hex.
pub fn new_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    lower_hex(&bytes)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    lower_hex(&Sha256::digest(token.as_bytes()))
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_token(parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` value `Bearer …` (API tokens and hook
/// result tokens alike): not empty, at most 256 bytes.
pub fn bearer_token(value: &str) -> Option<&str> {
    // The scheme is case-insensitive (RFC 9110, section 11.1).
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty() && token.len() <= 256).then_some(token)
}

/// An authenticated API user (extractor). Answers `401` without a valid
/// token.
#[derive(Debug, Clone)]
pub struct ApiUser(pub User);

impl ApiUser {
    /// `403` unless the user is in one of these teams (`admin` always passes).
    pub fn require_team(&self, teams: &[&str]) -> Result<(), AppError> {
        if self.0.team == "admin" || teams.contains(&self.0.team.as_str()) {
            Ok(())
        } else {
            Err(AppError::json(
                StatusCode::FORBIDDEN,
                format!(
                    "team {} may not do this; needs one of {teams:?}",
                    self.0.team
                ),
            ))
        }
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts).ok_or_else(|| {
            AppError::json(
                StatusCode::UNAUTHORIZED,
                "missing `Authorization: Bearer <token>` (daisy admin user add prints one)",
            )
        })?;
        let user = app
            .storage
            .user_by_token(&hash_token(token))
            .await
            .map_err(|e| AppError::from(e).into_json())?;
        user.map(ApiUser)
            .ok_or_else(|| AppError::json(StatusCode::UNAUTHORIZED, "unknown API token"))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            assert_eq!(bearer_token(value), Some("abc"), "{value}");
        }
        for value in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            &format!("Bearer {}", "a".repeat(257)),
        ] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
