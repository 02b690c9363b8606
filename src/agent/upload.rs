//! The whoopsie protocol, client side.
//!
//! - `POST {url}/{system-id}`, `Content-Type: application/octet-stream`,
//!   `X-Whoopsie-Version`, body = the report as whoopsie's BSON
//!   ([`report_to_whoopsie_bson`]: every field a string, `CoreDump` left out).
//! - The reply is read like whoopsie reads it: the body is split at the first
//!   space into the OOPS id and a command; `OOPSID` is the normal answer,
//!   `CORE` asks for the core dump, anything else is only logged (a safe place
//!   for servers to add signals). `200` and `400` mean done (`400`: the
//!   server will never take this report, sending it again changes nothing),
//!   `409` means the server already has it (done), anything else and any
//!   network failure mean "try again later".
//! - `POST {url}/{oops}/submit-core/{arch}/{system-id}` with the `CoreDump`
//!   value's base64 text when the server asks (once, like whoopsie: a core is
//!   a big hit on the user's connection and the next machine can send one).
//! - `REPORT.uploaded` gets the OOPS id, written atomically and never through
//!   a link (`/var/crash` is world-writable), as modern whoopsie does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use super::atomic_file;
use super::http::{ClientSettings, HttpError, build_client};
use super::ids::{OopsId, SystemId};
use crate::report::Report;
use crate::wire::{CORE_DUMP_KEY, WireError, report_to_whoopsie_bson};

/// The header whoopsie sends its version in.
pub const WHOOPSIE_VERSION_HEADER: &str = "X-Whoopsie-Version";
/// Largest reply body read (replies are one short line).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Size of the body chunks handed to the connection (and of progress steps).
pub const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;
/// Mode of the `.uploaded` marker: apport and the user's session read it.
pub const UPLOADED_MODE: u32 = 0o644;
/// Longest `Architecture` value accepted in a core upload URL.
const MAX_ARCH_BYTES: usize = 32;

/// What the agent calls itself in `X-Whoopsie-Version` and `User-Agent`.
pub fn client_version() -> String {
    format!("apport-hooks {}", env!("CARGO_PKG_VERSION"))
}

/// Called with the number of body bytes handed to the connection so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// The command after the OOPS id in a `200` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyCommand {
    /// `OOPSID`: the report was stored.
    OopsId,
    /// `CORE`: please send the core dump.
    Core,
    /// Anything else (logged, otherwise ignored).
    Unknown(String),
    /// No command in the reply.
    None,
}

/// A `200` reply, split like whoopsie splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The OOPS id, if the first word is a valid one.
    pub oops: Option<OopsId>,
    /// The command.
    pub command: ReplyCommand,
}

/// Splits a reply body at the first space (surrounding whitespace ignored).
pub fn parse_reply(body: &str) -> Reply {
    let body = body.trim();
    let (head, command) = match body.split_once(' ') {
        Some((head, tail)) => (head, Some(tail.trim())),
        None => (body, None),
    };
    let command = match command {
        None | Some("") => ReplyCommand::None,
        Some("OOPSID") => ReplyCommand::OopsId,
        Some("CORE") => ReplyCommand::Core,
        Some(other) => ReplyCommand::Unknown(other.chars().take(200).collect()),
    };
    Reply {
        oops: OopsId::parse(head).ok(),
        command,
    }
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// `200`: stored.
    Accepted(Reply),
    /// `400`: the server refuses this report for good (done, not retried).
    Refused {
        /// The server's message.
        message: String,
    },
    /// `409`: the server already has this crash (done).
    AlreadyReported {
        /// The server's message.
        message: String,
    },
    /// Anything else: try again later.
    RetryLater {
        /// The HTTP status, if there was a reply.
        status: Option<u16>,
        /// What happened.
        message: String,
    },
}

impl UploadOutcome {
    /// Whether the report is done with (no retry).
    pub fn is_done(&self) -> bool {
        !matches!(self, Self::RetryLater { .. })
    }

    /// The OOPS id, when the server gave one.
    pub fn oops(&self) -> Option<&OopsId> {
        match self {
            Self::Accepted(reply) => reply.oops.as_ref(),
            _ => None,
        }
    }
}

/// How a core upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreOutcome {
    /// `200`.
    Sent,
    /// The report has no `CoreDump` or no usable `Architecture`.
    Unavailable(String),
    /// The server or the network failed (not retried, as in whoopsie).
    Failed(String),
}

/// An upload could not even be attempted.
#[derive(Debug, Error)]
pub enum UploadError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The report cannot be encoded.
    #[error("the report cannot be encoded for upload: {0}")]
    Encode(#[from] WireError),
}

/// Maps a status and body to an outcome, exactly as whoopsie does (plus
/// daisy's `409`).
pub fn classify(status: u16, body: &str) -> UploadOutcome {
    match status {
        200 => UploadOutcome::Accepted(parse_reply(body)),
        // The server's words are printed and logged: escaped, and cut.
        400 => UploadOutcome::Refused {
            message: server_words(body),
        },
        409 => UploadOutcome::AlreadyReported {
            message: server_words(body),
        },
        other => UploadOutcome::RetryLater {
            status: Some(other),
            message: server_words(body),
        },
    }
}

/// A refusal's text as it is shown: its first 500 characters, control
/// characters escaped.
fn server_words(body: &str) -> String {
    let cut: String = body.trim().chars().take(500).collect();
    super::text::printable(&cut)
}

/// Speaks the whoopsie protocol to one server for one machine.
#[derive(Debug, Clone)]
pub struct Uploader {
    client: reqwest::Client,
    base_url: String,
    system_id: SystemId,
}

fn body_stream(data: Bytes, progress: Option<Progress>) -> reqwest::Body {
    let total = data.len();
    let chunks = (0..total.div_ceil(UPLOAD_CHUNK_BYTES)).map(move |i| {
        let start = i.saturating_mul(UPLOAD_CHUNK_BYTES);
        let end = start.saturating_add(UPLOAD_CHUNK_BYTES).min(total);
        if let Some(progress) = &progress {
            progress(u64::try_from(end).unwrap_or(u64::MAX));
        }
        Ok::<Bytes, std::io::Error>(data.slice(start..end))
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

async fn read_capped(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_REPLY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if body.len() >= MAX_REPLY_BYTES {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn network_error(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Whether `arch` is safe as a URL path segment (it comes from the report).
fn valid_arch(arch: &str) -> bool {
    !arch.is_empty()
        && arch.len() <= MAX_ARCH_BYTES
        && arch
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Uploader {
    /// A client for `base_url` (already normalised, see
    /// [`normalize_server_url`](super::config::normalize_server_url)).
    ///
    /// # Errors
    /// [`HttpError`] when the TLS setup fails.
    pub fn new(
        base_url: &str,
        system_id: SystemId,
        settings: &ClientSettings,
    ) -> Result<Self, HttpError> {
        Ok(Self {
            client: build_client(settings)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            system_id,
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn post(&self, url: String, body: reqwest::Body) -> UploadOutcome {
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(WHOOPSIE_VERSION_HEADER, client_version())
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                return UploadOutcome::RetryLater {
                    status: None,
                    message: network_error(&e),
                };
            }
        };
        let status = response.status().as_u16();
        match read_capped(response).await {
            Ok(body) => classify(status, &body),
            Err(e) => UploadOutcome::RetryLater {
                status: Some(status),
                message: format!("reading the reply failed: {}", network_error(&e)),
            },
        }
    }

    /// The encoded upload body of `report` (to know its size before sending).
    ///
    /// # Errors
    /// [`UploadError::Encode`] for a value that is not UTF-8.
    pub fn encode(report: &Report) -> Result<Vec<u8>, UploadError> {
        Ok(report_to_whoopsie_bson(report)?)
    }

    /// Uploads an encoded report (see [`Uploader::encode`]).
    pub async fn upload_encoded(&self, body: Vec<u8>, progress: Option<Progress>) -> UploadOutcome {
        let url = format!("{}/{}", self.base_url, self.system_id);
        let outcome = self
            .post(url, body_stream(Bytes::from(body), progress))
            .await;
        match &outcome {
            UploadOutcome::Accepted(Reply {
                command: ReplyCommand::Unknown(command),
                ..
            }) => tracing::info!("server sent an unknown command: {command}"),
            UploadOutcome::Accepted(Reply { oops: None, .. }) => {
                tracing::warn!("server accepted the report but sent no valid OOPS id");
            }
            _ => {}
        }
        outcome
    }

    /// Encodes and uploads `report`.
    ///
    /// # Errors
    /// [`UploadError::Encode`]; network and server failures are an
    /// [`UploadOutcome::RetryLater`], not an error.
    pub async fn upload_report(
        &self,
        report: &Report,
        progress: Option<Progress>,
    ) -> Result<UploadOutcome, UploadError> {
        Ok(self.upload_encoded(Self::encode(report)?, progress).await)
    }

    /// Sends the report's core dump for `oops` (after a `CORE` reply).
    pub async fn upload_core(
        &self,
        oops: &OopsId,
        report: &Report,
        progress: Option<Progress>,
    ) -> CoreOutcome {
        let Some(core) = report.get(CORE_DUMP_KEY) else {
            return CoreOutcome::Unavailable("the report has no CoreDump".into());
        };
        let Some(arch) = report.get_str("Architecture") else {
            return CoreOutcome::Unavailable("the report has no Architecture".into());
        };
        if !valid_arch(arch) {
            return CoreOutcome::Unavailable(format!(
                "the report's Architecture {:?} is not a valid architecture name",
                arch.chars().take(40).collect::<String>()
            ));
        }
        let url = format!(
            "{}/{}/submit-core/{}/{}",
            self.base_url, oops, arch, self.system_id
        );
        let body = body_stream(Bytes::copy_from_slice(core.wire_bytes()), progress);
        match self.post(url, body).await {
            UploadOutcome::Accepted(_) => CoreOutcome::Sent,
            UploadOutcome::Refused { message }
            | UploadOutcome::AlreadyReported { message }
            | UploadOutcome::RetryLater { message, .. } => CoreOutcome::Failed(message),
        }
    }
}

/// Where the `.uploaded` marker of `report` goes: the report's name with its
/// extension replaced (`x.crash` → `x.uploaded`), as apport and whoopsie do.
///
/// # Errors
/// A message when the path has no file name.
pub fn uploaded_marker_path(report: &Path) -> Result<(PathBuf, String), String> {
    let stem = report
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{} has no usable file name", report.display()))?;
    let dir = match report.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, format!("{stem}.uploaded")))
}

/// Writes `REPORT.uploaded` holding `oops` (or empty when the server gave
/// none, which still marks the report as handled), atomically and never
/// through a link. Returns the marker's path.
///
/// # Errors
/// An I/O error (e.g. another user's file of that name in the sticky
/// `/var/crash`: it is not replaced).
pub fn write_uploaded_marker(report: &Path, oops: Option<&OopsId>) -> std::io::Result<PathBuf> {
    let (dir, name) = uploaded_marker_path(report).map_err(std::io::Error::other)?;
    let contents = oops.map(|o| format!("{o}\n")).unwrap_or_default();
    atomic_file::write_atomic(&dir, &name, contents.as_bytes(), UPLOADED_MODE)?;
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_split_at_the_first_space_like_whoopsie() {
        let r = parse_reply("4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d OOPSID");
        assert_eq!(
            r.oops.as_ref().map(OopsId::as_str),
            Some("4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d")
        );
        assert_eq!(r.command, ReplyCommand::OopsId);
        assert_eq!(parse_reply("abc CORE").command, ReplyCommand::Core);
        assert_eq!(
            parse_reply("abc BUG 12345").command,
            ReplyCommand::Unknown("BUG 12345".into())
        );
        assert_eq!(parse_reply("abc").command, ReplyCommand::None);
        assert_eq!(parse_reply("../../x OOPSID").oops, None);
    }

    #[test]
    fn statuses_are_classified_like_whoopsie() {
        assert!(matches!(
            classify(200, "a OOPSID"),
            UploadOutcome::Accepted(_)
        ));
        assert!(classify(400, "Invalid BSON.").is_done());
        assert!(classify(409, "Crash already reported.").is_done());
        for status in [401, 404, 429, 500, 502, 503] {
            assert!(!classify(status, "").is_done(), "{status}");
        }
    }

    #[test]
    fn a_refusals_text_is_escaped_and_cut_before_it_is_shown() {
        let refused = classify(400, "bad\u{1b}[2J\nfake log line");
        assert!(
            matches!(&refused, UploadOutcome::Refused { message }
                if message == "bad\\u{1b}[2J\\nfake log line"),
            "{refused:?}"
        );
        let later = classify(503, &"x".repeat(70_000));
        assert!(
            matches!(&later, UploadOutcome::RetryLater { message, .. } if message.len() == 500),
            "{later:?}"
        );
    }

    #[test]
    fn hostile_architectures_are_refused() {
        assert!(valid_arch("amd64"));
        assert!(valid_arch("arm64"));
        for bad in ["", "../x", "a/b", "AMD64 ", "x?y", &"a".repeat(33)] {
            assert!(!valid_arch(bad), "{bad:?}");
        }
    }

    #[test]
    fn marker_path_replaces_the_extension() {
        let (dir, name) =
            uploaded_marker_path(Path::new("/var/crash/_usr_bin_x.1000.crash")).unwrap_or_default();
        assert_eq!(dir, PathBuf::from("/var/crash"));
        assert_eq!(name, "_usr_bin_x.1000.uploaded");
    }
}
