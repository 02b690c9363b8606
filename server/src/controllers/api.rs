//! The JSON API (`/api/1.0/…`), bearer-token authenticated. Documented in
//! `docs/api.md`.

use apport_hooks::wire::{WireLimits, decode_untrusted};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api_extract::{ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::ApiUser;
use crate::error::AppError;
use crate::storage::{self, HookRecord, HookResult};

/// Most rows one list call returns.
pub const MAX_PAGE: i64 = 1000;

/// `?limit=` of list calls.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<i64>,
}

impl Page {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, MAX_PAGE)
    }
}

fn not_found(what: &str) -> AppError {
    AppError::json(StatusCode::NOT_FOUND, format!("no such {what}"))
}

fn storage_err(e: storage::StorageError) -> AppError {
    AppError::from(e).into_json()
}

/// A hook as the API shows it.
pub fn hook_json(h: &HookRecord) -> Value {
    json!({
        "id": h.id,
        "name": h.name,
        "version": h.version,
        "state": h.state.as_str(),
        "state_reason": h.state_reason,
        "target": { "kind": h.target.kind, "value": h.target.value },
        "reports": h.max_reports,
        "days": h.max_days,
        "expires": h.not_after,
        "disk_cap": h.disk_cap,
        "sha256": h.sha256,
        "created": h.created,
        "offered": h.offered,
        "offers_refused": h.offers_refused,
        "results": h.results,
        "results_refused": h.results_refused,
        "bytes": h.bytes,
        "failures": h.failures,
    })
}

/// A BSON document of strings as a JSON object (non-strings are shown as
/// their BSON display form).
fn document_json(bytes: &[u8]) -> Value {
    let limits = WireLimits {
        max_document_bytes: bytes.len(),
        ..WireLimits::default()
    };
    match decode_untrusted(bytes, &limits) {
        Ok(doc) => Value::Object(
            doc.into_iter()
                .map(|(k, v)| match v {
                    bson::Bson::String(s) => (k, Value::String(s)),
                    other => (k, Value::String(other.to_string())),
                })
                .collect::<Map<String, Value>>(),
        ),
        Err(e) => json!({ "error": format!("stored document unreadable: {e}") }),
    }
}

fn result_json(r: &HookResult) -> Value {
    json!({
        "oops": r.oops_id,
        "hook": r.hook_id,
        "hook_version": r.hook_version,
        "bucket": r.bucket,
        "package": r.package,
        "received": r.received,
        "bytes": r.bytes,
        "failed": r.failed,
        "keys": document_json(&r.keys),
    })
}

/// `GET /api/1.0/hooks`.
pub async fn hooks(State(app): State<AppState>, _user: ApiUser) -> Result<Json<Value>, AppError> {
    let hooks = app.storage.hooks().await.map_err(storage_err)?;
    let now = storage::now();
    Ok(Json(
        json!({ "hooks": hooks.into_iter().map(|h| hook_json(&h.as_of(now))).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/1.0/hooks/{id}`.
pub async fn hook(
    State(app): State<AppState>,
    _user: ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, AppError> {
    let hook = app.storage.hook(id).await.map_err(storage_err)?;
    hook.map(|h| Json(hook_json(&h.as_of(storage::now()))))
        .ok_or_else(|| not_found("hook"))
}

/// `GET /api/1.0/hooks/{id}/results`.
pub async fn hook_results(
    State(app): State<AppState>,
    _user: ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, AppError> {
    if app.storage.hook(id).await.map_err(storage_err)?.is_none() {
        return Err(not_found("hook"));
    }
    let results = app
        .storage
        .hook_results(id, page.limit())
        .await
        .map_err(storage_err)?;
    Ok(Json(
        json!({ "results": results.iter().map(result_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/1.0/oops/{id}`: the OOPS with its hook results.
pub async fn oops(
    State(app): State<AppState>,
    user: ApiUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, AppError> {
    check_path_value("OOPS id", &id)?;
    let Some(stored) = app.storage.oops(&id).await.map_err(storage_err)? else {
        return Err(not_found("OOPS"));
    };
    let results = app.storage.oops_results(&id).await.map_err(storage_err)?;
    let o = &stored.oops;
    // With the OOPS id, the system id is what fetches the machine's hook
    // list (and replaces its token): only admins see it.
    let system_id = (user.0.team == "admin").then_some(o.system_id.as_str());
    Ok(Json(json!({
        "id": o.id,
        "system_id": system_id,
        "received": o.received,
        "bucket": o.bucket,
        "sas": o.sas,
        "package": o.package,
        "source_package": o.source_package,
        "duplicate_signature": o.duplicate_signature,
        "core_size": stored.core_size,
        "report": document_json(&o.report),
        "hook_results": results.iter().map(result_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/1.0/problems/{bucket}`: OOPS ids in a bucket, newest first.
pub async fn problem(
    State(app): State<AppState>,
    _user: ApiUser,
    ApiPath(bucket): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, AppError> {
    check_path_value("bucket", &bucket)?;
    let ids = app
        .storage
        .oopses_in_bucket(&bucket, page.limit())
        .await
        .map_err(storage_err)?;
    Ok(Json(json!({ "bucket": bucket, "oopses": ids })))
}

/// Longest OOPS id, bucket or SAS taken from a path (signatures are cut
/// at 32,768 characters, see [`MAX_SIGNATURE_CHARS`]).
pub const MAX_PATH_VALUE_BYTES: usize = 4 * MAX_SIGNATURE_CHARS;

/// `400` for a path value no stored object can have: NUL (which
/// PostgreSQL's text cannot hold, so the query would fail as if the
/// database were down) or more than [`MAX_PATH_VALUE_BYTES`].
fn check_path_value(what: &str, value: &str) -> Result<(), AppError> {
    if value.contains('\0') || value.len() > MAX_PATH_VALUE_BYTES {
        return Err(AppError::json(
            StatusCode::BAD_REQUEST,
            format!("the {what} in the path holds NUL or is too long"),
        ));
    }
    Ok(())
}

/// Body of `PUT /api/1.0/sas/{sas}`.
#[derive(Debug, Deserialize)]
pub struct SasMapping {
    signature: String,
}

/// Longest crash signature accepted from the retracer.
pub const MAX_SIGNATURE_CHARS: usize = 32_768;

/// `PUT /api/1.0/sas/{sas}` (team `retracer`): fills the SAS index and
/// re-buckets the OOPSes parked under that SAS.
pub async fn put_sas(
    State(app): State<AppState>,
    user: ApiUser,
    ApiPath(sas): ApiPath<String>,
    body: Result<ApiJson<SasMapping>, AppError>,
) -> Result<Json<Value>, AppError> {
    // Rights first: a caller without them learns nothing about the body.
    user.require_team(&["retracer"])?;
    check_path_value("SAS", &sas)?;
    let ApiJson(body) = body?;
    let signature = body.signature.trim();
    if sas.is_empty()
        || signature.is_empty()
        || signature.contains('\0')
        || signature.chars().count() > MAX_SIGNATURE_CHARS
    {
        return Err(AppError::json(
            StatusCode::BAD_REQUEST,
            "signature must be 1 to 32768 characters, without NUL",
        ));
    }
    let moved = app
        .storage
        .map_sas(&sas, signature, &user.0.name, storage::now())
        .await
        .map_err(storage_err)?;
    Ok(Json(
        json!({ "sas": sas, "signature": signature, "rebucketed": moved }),
    ))
}
