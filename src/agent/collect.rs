//! The hook phase (`apport-hook collect REPORT`): after a report is
//! uploaded, fetch the hooks the server offers for its OOPS, check each
//! bundle (size cap, sha256, signature against the local trusted keys), have
//! apportd run it, and send only the new keys back. Results the server could
//! not take now wait in the [`spool`](super::spool).
//!
//! Everything from the server is untrusted: the hook list is decoded by
//! [`decode_untrusted`] with strict field checks, URLs must stay on the
//! configured server (a hostile list cannot point the agent at another host
//! with our token), and a bundle runs only after the local [`KeyRing`]
//! verified it (apportd verifies it again).

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use thiserror::Error;

use super::config::DEFAULT_TIMEOUT_SECS;
use super::ids::{IdError, OopsId, SystemId};
use super::progress::{CountingReader, ProgressDisplay};
use super::result_file::ResultFile;
use super::result_upload::{
    Payload, PayloadHeader, body_from_reader, compressed, compressed_len, open_payload,
    payload_reader,
};
use super::spool::{EntryKey, Spool, SpoolError};
use super::upload::uploaded_marker_path;
use crate::bundle::KeyRing;
use crate::wire::{WireLimits, decode_untrusted};

/// Largest `.uploaded` file read (an OOPS id and a newline).
pub const MAX_UPLOADED_BYTES: u64 = 256;
/// Largest hook list accepted.
pub const MAX_HOOK_LIST_BYTES: usize = 256 * 1024;
/// Most hooks taken from one list.
pub const MAX_HOOKS: usize = 16;
/// Largest bundle downloaded.
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;
/// Longest token accepted (daisy sends 64 hex digits).
pub const MAX_TOKEN_CHARS: usize = 256;
/// Largest spooled delivery read back (payload cap plus URL and token).
const MAX_SPOOLED_BYTES: usize = 64 * 1024 * 1024;

/// daisy's answers to a hook list request that no retry can change
/// (`controllers/hooks.rs`): status and body.
const REFUSED_FOR_GOOD: &[(u16, &str)] =
    &[(404, "No such OOPS."), (400, "Invalid hook list path.")];
/// Longest refusal body read to compare with [`REFUSED_FOR_GOOD`].
const MAX_REFUSAL_BYTES: usize = 4096;

/// Why the hook phase failed.
#[derive(Debug, Error)]
pub enum CollectError {
    /// `REPORT.uploaded` is missing or unreadable.
    #[error(
        "cannot read {path}: {source}; upload the report first (`apport-hook upload --no-hooks`)"
    )]
    Uploaded {
        /// The marker.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// `REPORT.uploaded` holds no valid OOPS id.
    #[error("{0}; the report was not accepted by the server, nothing to collect")]
    BadOops(#[from] IdError),
    /// The server answered with something that is not a valid hook list.
    #[error("the server sent an invalid hook list: {0}")]
    BadList(String),
    /// An HTTP request failed.
    #[error("{what}: {message}; check the network and try again later")]
    Http {
        /// Which request.
        what: String,
        /// Why.
        message: String,
    },
    /// daisy refused the hook list for good (`404 No such OOPS.`, `400
    /// Invalid hook list path.`): it does not know this report under this
    /// system id, so asking again cannot help.
    #[error(
        "{what}: the server answered {status}; it does not know this report (was it \
         uploaded to another server, or under another system id?); not tried again"
    )]
    Refused {
        /// Which request.
        what: String,
        /// The HTTP status.
        status: u16,
    },
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Another process is sending the spool's due entries now.
    #[error("another apport-hook is sending the spool {0} now; it is left to that one")]
    SpoolBusy(String),
}

impl CollectError {
    /// Whether trying the same hook phase again cannot succeed: the marker
    /// holds no OOPS id, or the server refused the hook list for good.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            CollectError::BadOops(_) | CollectError::Refused { .. }
        )
    }
}

/// One hook the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOffer {
    /// Server-side id.
    pub id: i64,
    /// Version.
    pub version: u32,
    /// sha256 of the bundle (64 lowercase hex digits).
    pub sha256: String,
    /// Where to fetch the bundle.
    pub bundle: String,
    /// Where to post the result.
    pub results: String,
}

/// The server's hook list for one OOPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookList {
    /// The OOPS the list is for.
    pub oops: OopsId,
    /// Bearer token for the results (empty when there are no hooks).
    pub token: String,
    /// Token expiry (Unix seconds).
    pub expires: i64,
    /// The offers.
    pub hooks: Vec<HookOffer>,
}

/// Reads the OOPS id from `REPORT.uploaded` without following a link
/// (a link planted in the sticky `/var/crash` must not make us read another
/// file: CVE-2015-1318 class), at most [`MAX_UPLOADED_BYTES`].
///
/// # Errors
/// [`CollectError::Uploaded`], [`CollectError::BadOops`].
pub fn read_uploaded_oops(report: &Path) -> Result<OopsId, CollectError> {
    let (dir, name) = uploaded_marker_path(report).map_err(|e| CollectError::Uploaded {
        path: report.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    let path = dir.join(name);
    let err = |source| CollectError::Uploaded {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(err)?;
    if !file.metadata().map_err(err)?.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let mut text = String::new();
    file.take(MAX_UPLOADED_BYTES)
        .read_to_string(&mut text)
        .map_err(err)?;
    Ok(OopsId::parse(text.trim())?)
}

/// Opens the report for apportd without following a link.
///
/// # Errors
/// The I/O error.
pub fn open_report(report: &Path) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(report)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The uid apport writes into a report's name (`_usr_bin_foo.1000.crash`).
pub fn uid_in_report_name(report: &Path) -> Option<u32> {
    let name = report.file_name()?.to_str()?;
    let stem = name.strip_suffix(".crash")?;
    stem.rsplit_once('.')?.1.parse().ok()
}

/// Opens an uploaded report for its hook phase, as [`open_report`], and
/// when it belongs to someone else than `runner` (the watcher runs as
/// `whoopsie`, which apportd lets use anyone's report) also requires that
/// it is owned by the uid in its name. Anyone can create files in
/// `/var/crash`: without this, a user could put a report of their own
/// making where a removed report of another user was, and have that user's
/// OOPS's hooks run on it, root steps included, and their result sent
/// under that OOPS.
///
/// # Errors
/// The I/O error, or a report whose owner is not the uid in its name.
pub fn open_uploaded_report(report: &Path, runner: u32) -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt as _;
    let file = open_report(report)?;
    let owner = file.metadata()?.uid();
    if owner != runner && uid_in_report_name(report) != Some(owner) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "owned by uid {owner}, which its name does not name: not the report that was \
                 uploaded"
            ),
        ));
    }
    Ok(file)
}

fn field<'a>(doc: &'a bson::Document, key: &str) -> Result<&'a bson::Bson, CollectError> {
    doc.get(key)
        .ok_or_else(|| CollectError::BadList(format!("no `{key}`")))
}

fn string(doc: &bson::Document, key: &str) -> Result<String, CollectError> {
    match field(doc, key)? {
        bson::Bson::String(s) => Ok(s.clone()),
        _ => Err(CollectError::BadList(format!("`{key}` is not a string"))),
    }
}

fn integer(doc: &bson::Document, key: &str) -> Result<i64, CollectError> {
    match field(doc, key)? {
        bson::Bson::Int32(n) => Ok(i64::from(*n)),
        bson::Bson::Int64(n) => Ok(*n),
        _ => Err(CollectError::BadList(format!("`{key}` is not an integer"))),
    }
}

fn only_fields(doc: &bson::Document, allowed: &[&str]) -> Result<(), CollectError> {
    match doc.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(CollectError::BadList(format!("unexpected field `{k}`"))),
        None => Ok(()),
    }
}

/// Whether `url` is `base` followed by exactly `path`: the list may not send
/// our token or fetch a bundle anywhere else.
pub(crate) fn on_server(url: &str, base: &str, path: &str) -> bool {
    url.strip_prefix(base) == Some(path)
}

/// Decodes and checks a hook list for `oops` from the server at `base`.
///
/// # Errors
/// [`CollectError::BadList`] for anything unexpected.
pub fn parse_hook_list(bytes: &[u8], oops: &OopsId, base: &str) -> Result<HookList, CollectError> {
    if bytes.len() > MAX_HOOK_LIST_BYTES {
        return Err(CollectError::BadList("too large".into()));
    }
    let doc = decode_untrusted(bytes, &WireLimits::default())
        .map_err(|e| CollectError::BadList(e.to_string()))?;
    only_fields(&doc, &["oops", "token", "expires", "hooks"])?;
    if string(&doc, "oops")? != oops.as_str() {
        return Err(CollectError::BadList("it is for another OOPS".into()));
    }
    let token = string(&doc, "token")?;
    if token.len() > MAX_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CollectError::BadList("malformed token".into()));
    }
    let expires = integer(&doc, "expires")?;
    let bson::Bson::Array(items) = field(&doc, "hooks")? else {
        return Err(CollectError::BadList("`hooks` is not an array".into()));
    };
    if items.len() > MAX_HOOKS {
        return Err(CollectError::BadList(format!(
            "{} hooks, at most {MAX_HOOKS} are taken",
            items.len()
        )));
    }
    if !items.is_empty() && token.is_empty() {
        return Err(CollectError::BadList("hooks without a token".into()));
    }
    let mut hooks = Vec::with_capacity(items.len());
    for item in items {
        let bson::Bson::Document(h) = item else {
            return Err(CollectError::BadList("a hook is not a document".into()));
        };
        only_fields(h, &["id", "version", "sha256", "bundle", "results"])?;
        let id = integer(h, "id")?;
        let version = u32::try_from(integer(h, "version")?)
            .map_err(|_| CollectError::BadList("bad version".into()))?;
        let sha256 = string(h, "sha256")?;
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(CollectError::BadList("bad sha256".into()));
        }
        let bundle = string(h, "bundle")?;
        let results = string(h, "results")?;
        if id < 0
            || !on_server(&bundle, base, &format!("/hooks/{id}/bundle"))
            || !on_server(&results, base, &format!("/hooks/{id}/results/{oops}"))
        {
            return Err(CollectError::BadList(format!(
                "hook {id} points outside {base}"
            )));
        }
        hooks.push(HookOffer {
            id,
            version,
            sha256,
            bundle,
            results,
        });
    }
    Ok(HookList {
        oops: oops.clone(),
        token,
        expires,
        hooks,
    })
}

/// What happened to a result sent to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// 200 (stored) or 409 (already had it).
    Delivered(u16),
    /// The server cannot take it now (5xx, network): spooled for later.
    Spooled(String),
    /// Refused for good (401, 410, 413, …): logged and dropped.
    Dropped(String),
}

impl Delivery {
    /// Short name for output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Delivered(_) => "delivered",
            Delivery::Spooled(_) => "spooled",
            Delivery::Dropped(_) => "dropped",
        }
    }
}

/// A result on its way: where it goes and with which token. Its body is
/// streamed from a [`ResultFile`] or a spool entry, never held whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingResult {
    /// Results URL.
    pub url: String,
    /// Bearer token.
    pub token: String,
    /// When `token` expires (Unix seconds, from the hook list).
    pub expires: i64,
}

impl PendingResult {
    /// Reads a spool payload of the earlier format (one BSON document: url,
    /// token, body, and since token expiry `expires`) back; it is our own
    /// 0600 file, still checked.
    ///
    /// # Errors
    /// A message for anything malformed.
    pub fn from_legacy_payload(bytes: &[u8]) -> Result<(Self, Vec<u8>), String> {
        let limits = WireLimits {
            max_document_bytes: MAX_SPOOLED_BYTES,
            ..WireLimits::default()
        };
        let doc = decode_untrusted(bytes, &limits).map_err(|e| e.to_string())?;
        let url = doc.get_str("url").map_err(|e| e.to_string())?.to_owned();
        let token = doc.get_str("token").map_err(|e| e.to_string())?.to_owned();
        let body = doc
            .get_binary_generic("body")
            .map_err(|e| e.to_string())?
            .clone();
        // Entries written before the expiry was stored: sent as they are.
        let expires = doc.get_i64("expires").unwrap_or(i64::MAX);
        Ok((
            Self {
                url,
                token,
                expires,
            },
            body,
        ))
    }
}

/// The hook phase's HTTP side.
#[derive(Debug, Clone)]
pub struct Collector {
    client: reqwest::Client,
    base_url: String,
    system_id: SystemId,
    token_margin: Duration,
    progress: ProgressDisplay,
}

fn http_error(what: &str, e: impl std::fmt::Display) -> CollectError {
    CollectError::Http {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// Reads a body of at most `cap` bytes (the length header is not trusted).
async fn capped_body(
    mut response: reqwest::Response,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>, CollectError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| http_error(what, e))? {
        if body.len().saturating_add(chunk.len()) > cap {
            return Err(http_error(what, format!("more than {cap} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error and its causes on one line (reqwest's own text hides why a
/// connection failed).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Compresses a result into a new spool entry for `key`, to be sent to
/// `result.url` with `result.token` (renewed first once `result.expires`
/// is near). `open` gives a reader of the whole uncompressed result from
/// its start; it is called twice: once to learn the length the entry header
/// records, once more into the entry (zstd is deterministic; the spool
/// checks the length). The entry is written to a temporary file and
/// renamed: whole or absent, never duplicated. Returns the compressed bytes
/// spooled.
///
/// # Errors
/// A message when the result cannot be read or the spool refuses it.
pub fn spool_result<R: std::io::Read>(
    spool: &Spool,
    key: &EntryKey,
    result: &PendingResult,
    open: impl Fn() -> R,
) -> Result<u64, String> {
    let body_bytes = compressed_len(open()).map_err(|e| e.to_string())?;
    let header = PayloadHeader {
        url: result.url.clone(),
        token: result.token.clone(),
        body_bytes,
        expires: result.expires,
    };
    let body = compressed(open()).map_err(|e| e.to_string())?;
    let (mut payload, len) = payload_reader(&header, body)?;
    spool
        .put_reader(key, &mut payload, len, SystemTime::now())
        .map(|_| body_bytes)
        .map_err(|e| e.to_string())
}

impl Collector {
    /// The server's base URL.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A collector for the server at `base_url` (already normalized, no
    /// trailing slash) using `client`.
    pub fn new(client: reqwest::Client, base_url: &str, system_id: SystemId) -> Self {
        Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            system_id,
            token_margin: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            progress: ProgressDisplay::Quiet,
        }
    }

    /// Draw progress bars for result uploads (bodies over 1 MB) when
    /// `display` allows it; quiet by default (`watch`, library callers).
    #[must_use]
    pub fn with_progress(mut self, display: ProgressDisplay) -> Self {
        self.progress = display;
        self
    }

    /// How long a token must stay valid to be used: the whole-request cap
    /// (`timeout_secs`), so it cannot expire while the result is on its way.
    #[must_use]
    pub fn with_token_margin(mut self, margin: Duration) -> Self {
        self.token_margin = margin;
        self
    }

    /// See [`Collector::with_token_margin`].
    pub fn token_margin(&self) -> Duration {
        self.token_margin
    }

    /// `GET {server}/{oops}/hooks/{system-id}`, checked.
    ///
    /// # Errors
    /// [`CollectError`].
    pub async fn hook_list(&self, oops: &OopsId) -> Result<HookList, CollectError> {
        let what = "fetching the hook list";
        let url = format!("{}/{oops}/hooks/{}", self.base_url, self.system_id.as_str());
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(what, e))?;
        let status = response.status();
        // daisy's own answers for an OOPS it does not have under this system
        // id, or ids it cannot take: final. The same status from anything
        // else (a proxy not routing yet, a wrong `server_url` path) passes.
        if let Some(text) = REFUSED_FOR_GOOD
            .iter()
            .find(|(code, _)| *code == status.as_u16())
            .map(|(_, text)| *text)
        {
            let body = capped_body(response, MAX_REFUSAL_BYTES, what).await?;
            if body.trim_ascii() == text.as_bytes() {
                return Err(CollectError::Refused {
                    what: what.to_owned(),
                    status: status.as_u16(),
                });
            }
            return Err(http_error(what, format!("the server answered {status}")));
        }
        if !status.is_success() {
            return Err(http_error(what, format!("the server answered {status}")));
        }
        let body = capped_body(response, MAX_HOOK_LIST_BYTES, what).await?;
        parse_hook_list(&body, oops, &self.base_url)
    }

    /// Downloads the bundle of `offer` and checks its size and sha256, then
    /// its signature against `keys` at `now`.
    ///
    /// # Errors
    /// A message saying why the bundle is not run.
    pub async fn bundle(
        &self,
        offer: &HookOffer,
        keys: &KeyRing,
        now: i64,
    ) -> Result<Vec<u8>, String> {
        let what = "fetching the bundle";
        let response = self
            .client
            .get(&offer.bundle)
            .send()
            .await
            .map_err(|e| http_error(what, e).to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{what}: the server answered {status}"));
        }
        let bytes = capped_body(response, MAX_BUNDLE_BYTES, what)
            .await
            .map_err(|e| e.to_string())?;
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest != offer.sha256 {
            return Err(format!(
                "the bundle's sha256 is {digest}, the list said {}",
                offer.sha256
            ));
        }
        let verified = keys
            .verify(&bytes, now)
            .map_err(|e| format!("the bundle is refused: {e}"))?;
        if verified.version() != offer.version {
            return Err(format!(
                "the bundle is version {}, the list said {}",
                verified.version(),
                offer.version
            ));
        }
        Ok(bytes)
    }

    /// POSTs a compressed result body; classifies the answer (never spools
    /// by itself).
    pub async fn post(&self, result: &PendingResult, body: reqwest::Body) -> Delivery {
        let response = self
            .client
            .post(&result.url)
            .header("Content-Type", "application/bson")
            .header("Content-Encoding", "zstd")
            .header("Authorization", format!("Bearer {}", result.token))
            .body(body)
            .send()
            .await;
        match response {
            Err(e) => Delivery::Spooled(format!("cannot reach the server: {}", error_chain(&e))),
            Ok(r) => {
                let status = r.status().as_u16();
                let text = capped_body(r, 4096, "reading the answer")
                    .await
                    .map(|b| super::text::printable(String::from_utf8_lossy(&b).trim()))
                    .unwrap_or_default();
                match status {
                    200 | 409 => Delivery::Delivered(status),
                    500..=599 | 408 | 429 => {
                        Delivery::Spooled(format!("the server answered {status}: {text}"))
                    }
                    _ => Delivery::Dropped(format!("the server answered {status}: {text}")),
                }
            }
        }
    }

    /// Sends `file` to `result`, compressed on the way from its descriptor
    /// to the socket; on a temporary failure compresses it again, straight
    /// into `spool` under `key`. `sent` counts the compressed bytes handed
    /// to the connection. A result over 1 MB gets a progress bar when the
    /// collector's [`ProgressDisplay`] allows it.
    pub async fn deliver(
        &self,
        result: &PendingResult,
        file: &ResultFile,
        key: &EntryKey,
        spool: Option<&Spool>,
        sent: Arc<AtomicU64>,
    ) -> Delivery {
        let counter = sent.clone();
        // The bar follows the uncompressed bytes taken from the descriptor:
        // their total is known before the first byte is sent.
        let bar = self.progress.bar(
            file.len(),
            &format!("sending the result of hook {}", key.hook_id()),
        );
        let read = CountingReader::new(file.reader(), bar.as_ref().map(|b| b.progress()));
        let delivery = match compressed(read) {
            Ok(reader) => {
                let on_read: Box<dyn Fn(u64) + Send + Sync> =
                    Box::new(move |total| counter.store(total, Ordering::Relaxed));
                self.post(result, body_from_reader(reader, Some(on_read)))
                    .await
            }
            Err(e) => Delivery::Dropped(format!("cannot compress the result: {e}")),
        };
        drop(bar);
        match &delivery {
            Delivery::Delivered(status) => {
                tracing::info!("result of hook {} delivered ({status})", key.hook_id());
            }
            Delivery::Dropped(why) => {
                tracing::warn!("result of hook {} dropped: {why}", key.hook_id());
            }
            Delivery::Spooled(why) => {
                let stored = match spool {
                    Some(spool) => spool_result(spool, key, result, || file.reader()).map(|_| ()),
                    None => Err("no spool".to_owned()),
                };
                if let Err(e) = stored {
                    tracing::warn!(
                        "result of hook {} lost: {why}, and cannot spool it: {e}",
                        key.hook_id()
                    );
                    return Delivery::Dropped(format!("{why}; cannot spool it: {e}"));
                }
                tracing::info!("result of hook {} spooled: {why}", key.hook_id());
            }
        }
        delivery
    }

    /// Retries every due spool entry once. Returns (key, delivery) per entry.
    ///
    /// # Errors
    /// [`CollectError::Spool`] when the spool cannot be listed.
    pub async fn drain(&self, spool: &Spool) -> Result<Vec<(EntryKey, Delivery)>, CollectError> {
        let mut out = Vec::new();
        let Some(_sending) = spool.try_send_lock()? else {
            return Err(CollectError::SpoolBusy(spool.dir().display().to_string()));
        };
        for entry in spool.due(SystemTime::now())? {
            let key = entry.key().clone();
            let opened = entry
                .open_payload()
                .map_err(|e| e.to_string())
                .and_then(|p| open_payload(p, u64::try_from(MAX_SPOOLED_BYTES).unwrap_or(0)));
            let delivery = match opened {
                Err(e) => Delivery::Dropped(format!("unreadable spool entry: {e}")),
                Ok(Payload::Stream(header, body)) => {
                    let pending = PendingResult {
                        url: header.url,
                        token: header.token,
                        expires: header.expires,
                    };
                    // A spooled body is compressed already: the bar follows
                    // the bytes sent of its known length.
                    let bar = self.progress.bar(
                        header.body_bytes,
                        &format!("sending the spooled result of hook {}", key.hook_id()),
                    );
                    let read = CountingReader::new(
                        body.take(header.body_bytes),
                        bar.as_ref().map(|b| b.progress()),
                    );
                    let delivery = self
                        .post_spooled(&key, pending, body_from_reader(read, None))
                        .await;
                    drop(bar);
                    delivery
                }
                Ok(Payload::Legacy(bytes)) => match PendingResult::from_legacy_payload(&bytes) {
                    Err(e) => Delivery::Dropped(format!("unreadable spool entry: {e}")),
                    Ok((pending, body)) => {
                        let total = u64::try_from(body.len()).unwrap_or(u64::MAX);
                        let bar = self.progress.bar(
                            total,
                            &format!("sending the spooled result of hook {}", key.hook_id()),
                        );
                        let body = match &bar {
                            Some(bar) => body_from_reader(
                                CountingReader::new(
                                    std::io::Cursor::new(body),
                                    Some(bar.progress()),
                                ),
                                None,
                            ),
                            None => reqwest::Body::from(body),
                        };
                        let delivery = self.post_spooled(&key, pending, body).await;
                        drop(bar);
                        delivery
                    }
                },
            };
            // An entry replaced or removed meanwhile (a new result for the
            // same hook and OOPS) is no reason to stop the others.
            // Only the entry that was sent: a new result put under the same
            // key meanwhile is neither removed nor charged with a failure.
            let sent = Some(entry.created_ns());
            let recorded = match &delivery {
                Delivery::Delivered(_) | Delivery::Dropped(_) => {
                    tracing::info!("spooled result {key}: {}", delivery.as_str());
                    spool.mark_delivered_if(&key, sent)
                }
                Delivery::Spooled(why) => spool
                    .record_failure_if(&key, sent, why, SystemTime::now())
                    .map(|_| ()),
            };
            match recorded {
                Ok(()) | Err(SpoolError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            out.push((key, delivery));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const OOPS: &str = "4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d";
    const BASE: &str = "http://127.0.0.1:8080";

    #[test]
    fn an_uploaded_report_of_someone_else_must_be_owned_by_the_uid_in_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let other = me.wrapping_add(4242);
        let mine = dir.path().join(format!("_usr_bin_foo.{me}.crash"));
        let planted = dir.path().join(format!("_usr_bin_foo.{other}.crash"));
        for path in [&mine, &planted] {
            std::fs::write(path, "ProblemType: Crash\n").unwrap();
        }
        assert_eq!(uid_in_report_name(&planted), Some(other));
        // Run by its owner: any name.
        open_uploaded_report(&planted, me).unwrap();
        // Run by someone else (the watcher as whoopsie): the name must name
        // the owner.
        open_uploaded_report(&mine, other).unwrap();
        let refused = open_uploaded_report(&planted, other).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            refused
                .to_string()
                .contains("not the report that was uploaded")
        );
        let unnamed = dir.path().join("report.crash");
        std::fs::write(&unnamed, "ProblemType: Crash\n").unwrap();
        assert!(open_uploaded_report(&unnamed, other).is_err());
    }

    fn list(hooks: Vec<bson::Document>) -> Vec<u8> {
        bson::doc! { "oops": OOPS, "token": "ab".repeat(32), "expires": 1_i64, "hooks": hooks }
            .to_vec()
            .unwrap()
    }

    fn hook(bundle: &str) -> bson::Document {
        bson::doc! {
            "id": 3_i64, "version": 1_i32, "sha256": "0".repeat(64),
            "bundle": bundle, "results": format!("{BASE}/hooks/3/results/{OOPS}"),
        }
    }

    #[test]
    fn a_well_formed_list_is_taken() {
        let oops = OopsId::parse(OOPS).unwrap();
        let l = parse_hook_list(
            &list(vec![hook(&format!("{BASE}/hooks/3/bundle"))]),
            &oops,
            BASE,
        )
        .unwrap();
        assert_eq!(l.hooks.len(), 1);
        assert_eq!(l.hooks[0].id, 3);
    }

    #[test]
    fn a_list_pointing_at_another_host_is_refused() {
        let oops = OopsId::parse(OOPS).unwrap();
        for bad in [
            "http://evil.example/hooks/3/bundle",
            "http://127.0.0.1:8080/hooks/4/bundle",
            "http://127.0.0.1:8080.evil/hooks/3/bundle",
        ] {
            assert!(parse_hook_list(&list(vec![hook(bad)]), &oops, BASE).is_err());
        }
        let mut extra = hook(&format!("{BASE}/hooks/3/bundle"));
        extra.insert("run", "rm -rf /");
        assert!(parse_hook_list(&list(vec![extra]), &oops, BASE).is_err());
        let other = OopsId::parse("5c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d").unwrap();
        assert!(parse_hook_list(&list(vec![]), &other, BASE).is_err());
    }

    #[test]
    fn earlier_spool_payloads_are_still_read() {
        let doc = bson::doc! {
            "url": "u", "token": "t",
            "body": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0, 1, 2] },
        };
        let (p, body) = PendingResult::from_legacy_payload(&doc.to_vec().unwrap()).unwrap();
        assert_eq!(
            (p.url.as_str(), p.token.as_str(), p.expires, body),
            ("u", "t", i64::MAX, vec![0, 1, 2])
        );
        let mut doc = doc;
        doc.insert("expires", 1_700_000_000_i64);
        let (p, _) = PendingResult::from_legacy_payload(&doc.to_vec().unwrap()).unwrap();
        assert_eq!(p.expires, 1_700_000_000);
    }
}
