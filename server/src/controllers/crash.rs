//! The whoopsie protocol: `POST /{system-id}` (crash upload) and
//! `POST /{oops}/submit-core/{arch}/{system-id}` (core dump upload).
//!
//! Status texts are daisy's, byte for byte: whoopsie treats `200` and `400`
//! as done and retries anything else later.

use apport_hooks::report::ReportLimits;
use apport_hooks::wire::{StringFields, WireLimits, is_valid_system_id};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::app::AppState;
use crate::body_budget::BodyCharge;
use crate::bucketing::{CrashKeys, crash_time, dedup_digest};
use crate::error::AppError;
use crate::storage::{self, Intake, IntakeOutcome, NewOops};

/// Header that tells a hook-aware client where its hook list is. Old
/// clients ignore response headers, so the body stays as daisy's.
pub const HOOKS_HEADER: &str = "X-Apport-Hooks";

/// Most report keys in one upload (whoopsie sends about 40).
pub const MAX_UPLOAD_KEYS: usize = 1_000;

/// The URL of the hook list of an OOPS.
pub fn hooks_url(public_url: &str, oops_id: &str, system_id: &str) -> String {
    format!("{public_url}/{oops_id}/hooks/{system_id}")
}

/// `POST /{system-id}`.
pub async fn submit(
    State(app): State<AppState>,
    Path(system_id): Path<String>,
    body: Body,
) -> Result<Response, AppError> {
    if !is_valid_system_id(&system_id) {
        app.metrics.crash("invalid_system_id");
        return Err(AppError::bad_request("Invalid system identifier."));
    }
    let limits = &app.config.limits;
    // Held until the crash is answered: what its body takes of the budget.
    let mut charge = app.bodies.charge();
    // The cap is checked as frames arrive, never after buffering.
    let body = match read_body(body, limits.max_report_bytes, &mut charge).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            app.metrics.crash("too_large");
            return Err(AppError::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Report too large.",
            ));
        }
        Err(BodyError::Busy) => {
            app.metrics.crash("busy");
            return Ok(super::busy());
        }
        Err(BodyError::Interrupted(e)) => {
            app.metrics.crash("interrupted");
            return Err(AppError::bad_request(format!("Upload interrupted: {e}")));
        }
    };
    let wire = WireLimits {
        max_document_bytes: limits.max_report_bytes,
        ..WireLimits::default()
    };
    let report_limits = ReportLimits {
        max_keys: MAX_UPLOAD_KEYS,
        max_value_bytes: u64::try_from(limits.max_report_bytes).unwrap_or(u64::MAX),
        ..ReportLimits::default()
    };
    // One pass over the bytes with every check of the untrusted decoder,
    // no copies: the document is stored as received.
    let report = match StringFields::parse(&body, &wire, &report_limits) {
        Ok(report) => report,
        Err(e) => {
            // Never the system id in logs: with an OOPS id it is the key
            // to that machine's hook list.
            tracing::info!("refused crash upload: {e}");
            app.metrics.crash("invalid_bson");
            return Err(AppError::bad_request("Invalid BSON."));
        }
    };
    if report.is_empty() {
        app.metrics.crash("empty");
        return Err(AppError::bad_request("Empty report."));
    }
    if report.get("Package").is_none() {
        app.metrics.crash("incomplete");
        return Err(AppError::bad_request("Incomplete crash report."));
    }
    let keys = CrashKeys::of(&report);
    // Time-ordered (UUIDv7: 48 bits of milliseconds, 74 random bits): new
    // OOPS ids append to the end of the id index instead of dirtying a
    // random page of it per crash. The id is no secret (the hook list also
    // needs the system id), and the time is the OOPS's `received` anyway.
    // Encoded straight into its string: `to_string` goes through the
    // formatting machinery.
    let mut id_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let oops_id = uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut id_text)
        .to_owned();
    let has_sas = keys.sas.is_some();
    let oops = NewOops {
        id: oops_id.clone(),
        system_id: system_id.clone(),
        received: storage::now(),
        dedup_digest: dedup_digest(&report),
        crash_time: crash_time(&report),
        bucket: None,
        sas: keys.sas.clone(),
        package: keys.package.clone(),
        source_package: keys.source_package.clone(),
        duplicate_signature: keys.duplicate_signature.clone(),
        report: body.to_vec(),
    };
    // One storage call: SAS lookup, bucket, insert (acknowledged after the
    // group commit) and the hook match, on SQLite in one writer trip.
    let (sas_known, hooks_match) = match app.storage.intake(Intake { oops, keys }).await? {
        IntakeOutcome::Duplicate(existing) => {
            tracing::info!(%existing, "duplicate crash");
            app.metrics.crash("duplicate");
            return Err(AppError::text(
                StatusCode::CONFLICT,
                "Crash already reported.",
            ));
        }
        IntakeOutcome::Stored {
            sas_known,
            hooks_match,
        } => (sas_known, hooks_match),
    };
    app.metrics.crash("accepted");
    let command = if app.config.retracer && has_sas && !sas_known {
        "CORE"
    } else {
        "OOPSID"
    };
    let mut response = [oops_id.as_str(), " ", command].concat().into_response();
    if hooks_match
        && let Ok(value) =
            HeaderValue::from_str(&hooks_url(&app.config.public_url, &oops_id, &system_id))
    {
        response.headers_mut().insert(HOOKS_HEADER, value);
    }
    Ok(response)
}

fn valid_arch(arch: &str) -> bool {
    (1..=32).contains(&arch.len())
        && arch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a crash body was not read.
enum BodyError {
    /// Over `max_report_bytes`.
    TooLarge,
    /// The bodies in flight used up their budget.
    Busy,
    /// The body broke off.
    Interrupted(String),
}

/// Reads a body of at most `cap` bytes, charging what it holds beyond the
/// free allowance to the budget as it grows. A body of one frame (most
/// crashes) is kept as received, without a copy.
async fn read_body(body: Body, cap: usize, charge: &mut BodyCharge) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut first: Option<Bytes> = None;
    let mut joined = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Interrupted(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > cap {
            return Err(BodyError::TooLarge);
        }
        charge.cover(len).map_err(|_| BodyError::Busy)?;
        match first.take() {
            Some(earlier) => {
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&data);
            }
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// `POST /{oops}/submit-core/{arch}/{system-id}`: the `CoreDump` value's
/// base64 text, streamed to `cores/<oops>` in the data directory, bounded by
/// `limits.max_core_bytes`.
pub async fn submit_core(
    State(app): State<AppState>,
    Path((oops_id, arch, system_id)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, AppError> {
    // The OOPS id becomes a file name: only a canonical UUID passes.
    let Ok(uuid) = uuid::Uuid::parse_str(&oops_id) else {
        return Err(AppError::bad_request("Invalid OOPS id."));
    };
    if uuid.to_string() != oops_id || !is_valid_system_id(&system_id) || !valid_arch(&arch) {
        return Err(AppError::bad_request("Invalid core upload path."));
    }
    let Some(stored) = app.storage.oops(&oops_id).await? else {
        return Err(AppError::not_found("No such OOPS."));
    };
    if stored.oops.system_id != system_id {
        return Err(AppError::not_found("No such OOPS."));
    }
    // Only the cores daisy asks for (`CORE`: a retracer is configured and
    // the crash's SAS is not in the index, still): anyone may file a
    // crash, and every crash's core would otherwise be up to
    // `max_core_bytes` of disk. `400` is final for whoopsie, which then
    // stops retrying.
    let wanted = match (&stored.oops.sas, app.config.retracer) {
        (Some(sas), true) => app.storage.sas_signature(sas).await?.is_none(),
        _ => false,
    };
    if !wanted {
        app.metrics.crash("core_not_requested");
        return Err(AppError::bad_request("Core not requested."));
    }
    if stored.core_size.is_some() {
        return Err(AppError::text(
            StatusCode::CONFLICT,
            "Core already submitted.",
        ));
    }
    let cores = app.config.data_dir.join("cores");
    // Cores must never take the space the database needs: with a retracer,
    // every crash with an unknown SAS may send one. `503`: whoopsie keeps
    // the core and tries again later.
    let limits = &app.config.limits;
    let needed = limits
        .core_free_disk_bytes
        .saturating_add(u64::try_from(limits.max_core_bytes).unwrap_or(u64::MAX));
    match free_disk_bytes(&cores) {
        Ok(free) if free >= needed => {}
        Ok(free) => {
            tracing::warn!(
                free,
                "refusing a core upload: the data directory's file system has less free space \
                 than limits.core_free_disk_bytes plus limits.max_core_bytes ({needed} bytes)"
            );
            app.metrics.crash("core_disk_full");
            return Err(AppError::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Disk nearly full, try again later.",
            ));
        }
        Err(e) => return Err(internal_io("reading the free disk space", e)),
    }
    // A file of this upload's own: two uploads of one core never share
    // one (they used to truncate and interleave), and the guard removes it
    // however the upload ends (refused, cut off by the timeout, its client
    // gone).
    let partial = TempCore(cores.join(format!("{oops_id}.{}.partial", uuid::Uuid::new_v4())));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial.0)
        .await
        .map_err(|e| internal_io("creating the core file", e))?;
    let size = write_capped(body, file, app.config.limits.max_core_bytes).await?;
    // Linked, not renamed: the first upload to finish wins, and a stored
    // core is never replaced (`EEXIST`).
    let core = cores.join(&oops_id);
    let mut linked = tokio::fs::hard_link(&partial.0, &core).await;
    if matches!(&linked, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists) {
        // One replacement at a time: a second upload that found the same
        // leftover then finds the first one's young core, and gets `409`.
        let _replacing = app.core_replace.lock().await;
        if remove_orphan_core(&app, &oops_id, &core).await? {
            linked = tokio::fs::hard_link(&partial.0, &core).await;
        }
    }
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(AppError::text(
                StatusCode::CONFLICT,
                "Core already submitted.",
            ));
        }
        Err(e) => return Err(internal_io("storing the core", e)),
    }
    drop(partial);
    // The link must be on disk before the database says the core is
    // there: after a power loss, a recorded core without its file would
    // refuse every retry with `409`.
    if let Err(e) = sync_dir(cores).await {
        let _ = tokio::fs::remove_file(&core).await;
        return Err(internal_io("syncing the cores directory", e));
    }
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let recorded = app.storage.set_core(&oops_id, &system_id, size).await;
    if !matches!(recorded, Ok(true)) {
        // Not recorded: the file goes too, so that a retry can store it.
        let _ = tokio::fs::remove_file(&core).await;
    }
    if !recorded? {
        return Err(AppError::not_found("No such OOPS."));
    }
    Ok((StatusCode::OK, "").into_response())
}

/// Removes `core` when it is a file the database never recorded and no
/// upload can still be recording: a daisy stopped (or a request cut off)
/// between linking a core and recording it left it, and it would refuse
/// every later upload of that core with `409`. An upload in progress
/// records within its request's timeout after its last write, so only a
/// file last written more than twice that long ago counts. Whether it was
/// removed.
async fn remove_orphan_core(
    app: &AppState,
    oops_id: &str,
    core: &std::path::Path,
) -> Result<bool, AppError> {
    let recorded = app
        .storage
        .oops(oops_id)
        .await?
        .is_some_and(|stored| stored.core_size.is_some());
    if recorded {
        return Ok(false);
    }
    let grace =
        std::time::Duration::from_secs(app.config.limits.request_timeout_secs).saturating_mul(2);
    let Ok(meta) = tokio::fs::symlink_metadata(core).await else {
        return Ok(false);
    };
    if !meta.is_file() || !crate::config::changed_longer_ago_than(&meta, grace) {
        return Ok(false);
    }
    match tokio::fs::remove_file(core).await {
        Ok(()) => {
            tracing::warn!(
                oops = oops_id,
                "removed a core file the database never recorded (left by a daisy stopped \
                 while storing it); storing the new upload"
            );
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(internal_io("removing an unrecorded core", e)),
    }
}

/// Bytes an unprivileged writer may still use on the file system of `dir`.
// `fsblkcnt_t` and `c_ulong` are 64 bits here but 32 on other targets.
#[allow(clippy::useless_conversion)]
fn free_disk_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size())))
}

/// `fsync` of a directory, so that the names linked in it are durable.
async fn sync_dir(dir: std::path::PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// A core being uploaded, removed when dropped (a hard link keeps a stored
/// core).
struct TempCore(std::path::PathBuf);

impl Drop for TempCore {
    fn drop(&mut self) {
        // Already gone is fine; anything else is left for the start-up sweep.
        let _ = std::fs::remove_file(&self.0);
    }
}

fn internal_io(what: &str, e: std::io::Error) -> AppError {
    tracing::error!("{what}: {e}");
    AppError::text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Cannot store the upload, try again later.",
    )
}

/// Streams a body to a file, refusing it (`413`) once over `cap` bytes.
async fn write_capped(body: Body, mut file: tokio::fs::File, cap: usize) -> Result<u64, AppError> {
    let mut body = body;
    let mut written: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| AppError::bad_request(format!("Core upload interrupted: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        written = written.saturating_add(data.len());
        if written > cap {
            return Err(AppError::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Core dump too large.",
            ));
        }
        file.write_all(&data)
            .await
            .map_err(|e| internal_io("writing the core file", e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| internal_io("syncing the core file", e))?;
    Ok(u64::try_from(written).unwrap_or(u64::MAX))
}
