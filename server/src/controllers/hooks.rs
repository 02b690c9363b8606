//! Hook delivery and result ingestion.
//!
//! - `GET /{oops}/hooks/{system-id}`: the hook list of an OOPS (BSON), with a
//!   fresh one-use-per-hook token. The same URL is sent in the
//!   `X-Apport-Hooks` header of the crash reply; a client whose report went
//!   through stock whoopsie builds it from the OOPS id in `X.uploaded`.
//! - `GET /hooks/{id}/bundle`: the signed bundle.
//! - `POST /hooks/{id}/results/{oops}`: the new keys, bearer token,
//!   optionally compressed.

use apport_hooks::report::ReportLimits;
use apport_hooks::wire::{StringFields, WireLimits, is_valid_system_id};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bson::{Bson, Document, doc};
use http_body_util::BodyExt;

use super::closing;
use crate::app::AppState;
use crate::auth::{hash_token, new_token};
use crate::bucketing::targets;
use crate::controllers::result_body::{BodyStop, Coding, ResultBody};
use crate::error::AppError;
use crate::storage::{self, NewResult, OfferRequest, ResultOutcome, TokenCheck};

/// BSON responses and requests.
pub const BSON_CONTENT_TYPE: &str = "application/bson";

/// Most keys one result may carry.
pub const MAX_RESULT_KEYS: usize = 10_000;

fn bson_response(doc: &Document) -> Result<Response, AppError> {
    let bytes = doc.to_vec().map_err(|e| {
        tracing::error!("encoding a hook list: {e}");
        AppError::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot encode the hook list.",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, BSON_CONTENT_TYPE)], bytes).into_response())
}

/// `GET /{oops}/hooks/{system-id}`.
pub async fn list(
    State(app): State<AppState>,
    Path((oops_id, system_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    if !is_valid_system_id(&system_id) || uuid::Uuid::parse_str(&oops_id).is_err() {
        return Err(AppError::bad_request("Invalid hook list path."));
    }
    let Some(stored) = app.storage.oops(&oops_id).await? else {
        return Err(AppError::not_found("No such OOPS."));
    };
    // Bound to the system that reported it: an OOPS id alone gets nothing.
    if stored.oops.system_id != system_id {
        return Err(AppError::not_found("No such OOPS."));
    }
    let o = &stored.oops;
    let targets = targets(
        o.bucket.as_deref(),
        o.sas.as_deref(),
        o.duplicate_signature.as_deref(),
        o.package.as_deref(),
        o.source_package.as_deref(),
    );
    let token = new_token();
    let now = storage::now();
    let limits = &app.config.limits;
    let expires = now.saturating_add(i64::try_from(limits.token_ttl_secs).unwrap_or(i64::MAX));
    let candidates = app.storage.matching_hooks(&targets, now).await?.len();
    let offered = app
        .storage
        .offer_hooks(OfferRequest {
            oops_id: oops_id.clone(),
            targets,
            token_hash: hash_token(&token),
            now,
            expires,
            offer_multiple: limits.offer_multiple,
        })
        .await?;
    for _ in 0..offered.len() {
        app.metrics.offer("offered");
    }
    for _ in offered.len()..candidates {
        app.metrics.offer("refused");
    }
    let base = &app.config.public_url;
    let hooks: Vec<Bson> = offered
        .iter()
        .map(|h| {
            Bson::Document(doc! {
                "id": h.id,
                "version": h.version,
                "sha256": h.sha256.as_str(),
                "bundle": format!("{base}/hooks/{}/bundle", h.id),
                "results": format!("{base}/hooks/{}/results/{oops_id}", h.id),
            })
        })
        .collect();
    let token = if hooks.is_empty() {
        String::new()
    } else {
        token
    };
    bson_response(&doc! {
        "oops": oops_id.as_str(),
        "token": token,
        "expires": expires,
        "hooks": hooks,
    })
}

/// `GET /hooks/{id}/bundle`.
pub async fn bundle(
    State(app): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    match app.storage.hook_bundle(id, storage::now()).await? {
        Some(bytes) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
        }
        None => Err(AppError::not_found("No such hook.")),
    }
}

fn refused(app: &AppState, outcome: &'static str, status: StatusCode, text: &str) -> AppError {
    app.metrics.result(outcome);
    AppError::text(status, text)
}

/// `413` that also closes the connection: the rest of the body is never read.
fn cut_off(app: &AppState, text: &'static str) -> Response {
    app.metrics.result("over_disk_cap");
    closing((StatusCode::PAYLOAD_TOO_LARGE, text))
}

/// `POST /hooks/{id}/results/{oops}`.
pub async fn post_result(
    State(app): State<AppState>,
    Path((hook_id, oops_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    // A hook id that is no number has no token either: counted as such.
    let Ok(hook_id) = hook_id.parse::<i64>() else {
        return Err(refused(
            &app,
            "unknown_token",
            StatusCode::UNAUTHORIZED,
            "Unknown token.",
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer_token);
    let Some(token) = token else {
        return Err(refused(
            &app,
            "unknown_token",
            StatusCode::UNAUTHORIZED,
            "Missing token.",
        ));
    };
    let upload = Upload {
        app: &app,
        token_hash: hash_token(token),
        hook_id,
        oops_id: &oops_id,
    };
    let Some(coding) = Coding::from_headers(&headers) else {
        upload.count_refusal().await;
        return Err(refused(
            &app,
            "bad_encoding",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding must be zstd, gzip, deflate or identity.",
        ));
    };
    // The disk-cap room comes from the storage's cache of the hook (no
    // database trip for most uploads); it only decides where to cut the
    // stream, the atomic claim in `accept_result` enforces the cap.
    let Some(hook) = app
        .storage
        .hook_room(hook_id)
        .await
        .map_err(|e| unavailable(&app, e))?
    else {
        return Err(refused(
            &app,
            "unknown_token",
            StatusCode::UNAUTHORIZED,
            "Unknown token.",
        ));
    };
    // An inactive hook is answered by `accept_result`, after the token check
    // and counted; the body is still bounded by the caps below.
    let cap = app.config.limits.max_result_bytes;
    // What the hook may still store before its disk cap.
    let room = usize::try_from(hook.room()).unwrap_or(usize::MAX);
    // Decoding stops at UNVERIFIED_RESULT_BYTES until the token is known
    // to be good; the wire bytes are kept until then to decode again.
    // The decoded bytes are charged to the bodies' budget as the decoder
    // grows its buffer (one chunk may inflate to the whole cap).
    let mut decoded = ResultBody::unverified(coding, cap, room, UNVERIFIED_RESULT_BYTES)
        .map_err(|e| decoder_error(&app, e))?
        .charged(app.bodies.charge());
    let mut wire = Some(Vec::new());
    // Held until the result is answered: what the kept wire bytes take of
    // the budget.
    let mut charge = app.bodies.charge();
    let mut body = body;
    let mut stop = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            app.metrics.result("interrupted");
            AppError::bad_request(format!("Upload interrupted: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        // The wire bytes kept for the replay count too: a compressed body
        // that decodes to almost nothing (skippable frames, empty blocks)
        // must not be kept up to the cap before its token is checked.
        let kept_over = wire.as_mut().is_some_and(|kept| {
            kept.extend_from_slice(&data);
            kept.len() > UNVERIFIED_RESULT_BYTES
        });
        // Decompressed while it streams: the caps hold for every coding.
        let pushed = if kept_over {
            Err(BodyStop::Unverified)
        } else {
            decoded.push(&data)
        };
        match pushed {
            Ok(()) => {}
            Err(BodyStop::Unverified) => {
                if let Some(answer) = upload.check_before_decoding().await? {
                    drop(body);
                    return Ok(answer);
                }
                decoded = ResultBody::new(coding, cap, room)
                    .map_err(|e| decoder_error(&app, e))?
                    .charged(app.bodies.charge());
                if let Err(s) = decoded.push(&wire.take().unwrap_or_default()) {
                    stop = Some(s);
                    break;
                }
            }
            Err(s) => {
                stop = Some(s);
                break;
            }
        }
        let kept = wire.as_ref().map_or(0, Vec::len);
        if charge.cover(kept).is_err() {
            drop(body);
            app.metrics.result("busy");
            return Ok(super::busy());
        }
    }
    let stop = match stop {
        Some(stop) => stop,
        None => match decoded.finish() {
            Ok(keys) => return store_result(&upload, wire.is_none(), keys).await,
            Err(BodyStop::Unverified) => {
                // The decoder's last bytes crossed the limit.
                if let Some(answer) = upload.check_before_decoding().await? {
                    return Ok(answer);
                }
                let mut again = ResultBody::new(coding, cap, room)
                    .map_err(|e| decoder_error(&app, e))?
                    .charged(app.bodies.charge());
                let kept = wire.take().unwrap_or_default();
                match again.push(&kept).and_then(|()| again.finish()) {
                    Ok(keys) => return store_result(&upload, true, keys).await,
                    Err(stop) => stop,
                }
            }
            Err(stop) => stop,
        },
    };
    // The rest of the body is never read: `drop` it before answering.
    drop(body);
    match stop {
        // Decoding only passes the budget after the token was found good
        // (before, it stops at `UNVERIFIED_RESULT_BYTES`, within every
        // body's free share): no stranger gets this answer.
        BodyStop::Busy => {
            app.metrics.result("busy");
            Ok(super::busy())
        }
        BodyStop::OverDiskCap { decompressed } => {
            // Spec: stop reading, answer 413, close, disable the hook. The
            // storage disables it (audited, atomically with other uploads)
            // only for a valid token: a stranger cannot disable hooks.
            // Counting more than the whole cap makes sure nothing is stored.
            let bytes = i64::try_from(decompressed)
                .unwrap_or(i64::MAX)
                .max(hook.disk_cap.saturating_add(1));
            let outcome = app
                .storage
                .accept_result(NewResult {
                    token_hash: upload.token_hash.clone(),
                    hook_id,
                    oops_id: oops_id.clone(),
                    keys: Vec::new(),
                    bytes,
                    failed: false,
                    now: storage::now(),
                })
                .await
                .map_err(|e| unavailable(&app, e))?;
            let r = match outcome {
                ResultOutcome::Accepted { .. } => {
                    // Only if the hook's disk cap was raised meanwhile.
                    tracing::error!(hook_id, %oops_id, "an over-cap claim was accepted");
                    AppError::text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Result not stored; retry later.",
                    )
                    .into_response()
                }
                ResultOutcome::OverDiskCap => {
                    tracing::info!(hook_id, %oops_id, "hook disabled: over its disk cap");
                    result_response(&app, outcome)
                }
                other => result_response(&app, other),
            };
            Ok(closing(r))
        }
        // A stranger's refused body is answered as a stranger: 401.
        BodyStop::TooLarge | BodyStop::Undecodable(_) | BodyStop::Unverified
            if wire.is_some() && !upload.token_known().await? =>
        {
            Ok(upload.unknown_token())
        }
        BodyStop::TooLarge | BodyStop::Unverified => {
            upload.count_refusal().await;
            Ok(closing(refused(
                &app,
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "Result too large.",
            )))
        }
        BodyStop::Undecodable(e) => {
            tracing::info!(hook_id, %oops_id, "undecodable result: {e}");
            upload.count_refusal().await;
            // Reading may have stopped before the end of the body.
            Ok(closing(refused(
                &app,
                "invalid",
                StatusCode::BAD_REQUEST,
                "Cannot decompress.",
            )))
        }
    }
}

/// Decompressed bytes of a result decoded before its token is checked:
/// results are small (a log of a few KiB), so most uploads never need the
/// extra read, while a stranger's compressed body inflates no further.
pub const UNVERIFIED_RESULT_BYTES: usize = 64 * 1024;

/// One result upload: what its token check and storage need.
struct Upload<'a> {
    app: &'a AppState,
    token_hash: String,
    hook_id: i64,
    oops_id: &'a str,
}

impl Upload<'_> {
    /// The token as the database knows it for this hook and OOPS.
    async fn token(&self) -> Result<TokenCheck, AppError> {
        self.app
            .storage
            .result_token(&self.token_hash, self.hook_id, self.oops_id, storage::now())
            .await
            .map_err(|e| unavailable(self.app, e))
    }

    /// Whether the token was issued for this hook and OOPS and is unexpired.
    async fn token_known(&self) -> Result<bool, AppError> {
        Ok(self.token().await? != TokenCheck::Unknown)
    }

    /// For a body past the bytes decoded before the token is checked:
    /// `None` to go on decoding (an unused token), else the answer. A used
    /// token gets what [`Storage::accept_result`] would answer, `409`,
    /// without its body being decompressed any further: a token that
    /// already delivered its result must not be a licence to make daisy
    /// inflate 50 MiB again and again for its 7 days.
    async fn check_before_decoding(&self) -> Result<Option<Response>, AppError> {
        Ok(match self.token().await? {
            TokenCheck::Unused => None,
            TokenCheck::Unknown => Some(self.unknown_token()),
            TokenCheck::Used => Some(closing(refused(
                self.app,
                "duplicate",
                StatusCode::CONFLICT,
                "Result already reported.",
            ))),
        })
    }

    /// Counts a body refused here (not by `accept_result`) in the hook's
    /// `results_refused`, if the token is the hook's; a failure to count is
    /// logged, never turned into another answer.
    async fn count_refusal(&self) {
        // A read first: a stranger's refusal must not cost a write lock.
        if !matches!(self.token_known().await, Ok(true)) {
            return;
        }
        let counted = self
            .app
            .storage
            .refuse_result(&self.token_hash, self.hook_id, self.oops_id, storage::now())
            .await;
        if let Err(e) = counted {
            tracing::warn!(hook_id = self.hook_id, "counting a refused result: {e}");
        }
    }

    /// `401`, counted; the connection is closed since its body was not read
    /// to the end.
    fn unknown_token(&self) -> Response {
        closing(refused(
            self.app,
            "unknown_token",
            StatusCode::UNAUTHORIZED,
            "Unknown token.",
        ))
    }
}

/// A storage error on the result path, counted (`unavailable`).
fn unavailable(app: &AppState, e: storage::StorageError) -> AppError {
    app.metrics.result("unavailable");
    AppError::from(e)
}

fn decoder_error(app: &AppState, e: std::io::Error) -> AppError {
    app.metrics.result("unavailable");
    tracing::error!("creating a result decoder: {e}");
    AppError::text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Cannot decode results right now; retry later.",
    )
}

/// Checks and stores a decoded result; `verified`: its token was checked
/// already.
async fn store_result(
    upload: &Upload<'_>,
    verified: bool,
    keys: Vec<u8>,
) -> Result<Response, AppError> {
    let (app, hook_id, oops_id) = (upload.app, upload.hook_id, upload.oops_id);
    let failed = match check_result(&keys, app.config.limits.max_result_bytes) {
        Ok(failed) => failed,
        Err(_) if !verified && !upload.token_known().await? => {
            return Ok(upload.unknown_token());
        }
        Err(refusal) => {
            tracing::info!(hook_id, %oops_id, "refused result: {refusal}");
            upload.count_refusal().await;
            let text = match refusal {
                ResultRefusal::Empty => "Empty result.",
                ResultRefusal::Invalid(_) => "Invalid BSON.",
            };
            return Err(refused(app, "invalid", StatusCode::BAD_REQUEST, text));
        }
    };
    let outcome = app
        .storage
        .accept_result(NewResult {
            token_hash: upload.token_hash.clone(),
            hook_id,
            oops_id: oops_id.to_owned(),
            bytes: i64::try_from(keys.len()).unwrap_or(i64::MAX),
            keys,
            failed,
            now: storage::now(),
        })
        .await
        .map_err(|e| unavailable(app, e))?;
    Ok(result_response(app, outcome))
}

/// Why a decoded result is refused.
#[derive(Debug, thiserror::Error)]
enum ResultRefusal {
    /// A document without keys.
    #[error("empty result")]
    Empty,
    /// Not one BSON document of report keys and strings within the caps.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a decoded result with the rules of a crash report (every field a
/// string under a valid report key, no NUL, at most [`MAX_RESULT_KEYS`]
/// keys and `cap` bytes) by reading it in place (`StringFields`): the keys
/// are stored as received, so building a `Document` and a `Report` only to
/// drop them cost more than the checks. Returns whether
/// the run failed: apport names a failed hook's traceback `HookError` or
/// `HookError_<name>`.
fn check_result(keys: &[u8], cap: usize) -> Result<bool, ResultRefusal> {
    let wire = WireLimits {
        max_document_bytes: cap,
        ..WireLimits::default()
    };
    let limits = ReportLimits {
        max_keys: MAX_RESULT_KEYS,
        max_value_bytes: u64::try_from(cap).unwrap_or(u64::MAX),
        ..ReportLimits::default()
    };
    // The same one-pass reader as the crash intake: every check, no copies.
    let fields = StringFields::parse(keys, &wire, &limits)
        .map_err(|e| ResultRefusal::Invalid(e.to_string()))?;
    if fields.is_empty() {
        return Err(ResultRefusal::Empty);
    }
    Ok(fields
        .iter()
        .any(|(name, _)| name == "HookError" || name.starts_with("HookError_")))
}

/// The answer to a storage outcome, counted.
fn result_response(app: &AppState, outcome: ResultOutcome) -> Response {
    match outcome {
        ResultOutcome::Accepted { .. } => {
            app.metrics.result("accepted");
            (StatusCode::OK, "Result stored.").into_response()
        }
        ResultOutcome::UnknownToken => refused(
            app,
            "unknown_token",
            StatusCode::UNAUTHORIZED,
            "Unknown token.",
        )
        .into_response(),
        ResultOutcome::Duplicate => refused(
            app,
            "duplicate",
            StatusCode::CONFLICT,
            "Result already reported.",
        )
        .into_response(),
        ResultOutcome::Gone(_) => {
            refused(app, "gone", StatusCode::GONE, "Hook no longer active.").into_response()
        }
        ResultOutcome::OverDiskCap => cut_off(app, "Hook over its disk cap."),
    }
}
