//! Moving a result without holding it: compression as a reader over the
//! result document, an HTTP body that pulls from any reader one chunk at a
//! time, and the spool payload (a small header, then the compressed body)
//! written and read back as streams.
//!
//! The compressor is zstd level 3 with its window capped at
//! 2^[`ZSTD_WINDOW_LOG`] bytes, so the encoder's memory is a few MiB whatever
//! the input size; the body pulls [`CHUNK_BYTES`] at a time and hyper stops
//! pulling while the socket is full, so at most a few chunks are in flight.

use std::io::{self, BufRead, BufReader, Read};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::result_file::CHUNK_BYTES;

/// zstd level of result bodies.
pub const ZSTD_LEVEL: i32 = 3;
/// zstd window of result bodies (2 MiB; daisy accepts up to 2^27).
pub const ZSTD_WINDOW_LOG: u32 = 21;
/// First line of a spool payload in this format.
pub const PAYLOAD_MAGIC: &[u8] = b"apport-hooks-result 2\n";
/// Longest header line of a spool payload.
const MAX_PAYLOAD_HEADER: u64 = 8192;

/// A reader of the zstd-compressed bytes of `input`.
///
/// # Errors
/// The encoder's I/O error.
pub fn compressed(input: impl Read) -> io::Result<impl Read> {
    let mut encoder = zstd::stream::read::Encoder::new(BufReader::new(input), ZSTD_LEVEL)?;
    encoder.window_log(ZSTD_WINDOW_LOG)?;
    Ok(encoder)
}

/// How many compressed bytes `input` makes (compressed and thrown away: the
/// spool header records the length before the bytes follow).
///
/// # Errors
/// The encoder's or reader's I/O error.
pub fn compressed_len(input: impl Read) -> io::Result<u64> {
    io::copy(&mut compressed(input)?, &mut io::sink())
}

/// An HTTP body streaming `reader` in chunks of [`CHUNK_BYTES`]; `on_read`
/// sees the running total (for a progress bar).
pub fn body_from_reader(
    reader: impl Read + Send + 'static,
    on_read: Option<Box<dyn Fn(u64) + Send + Sync>>,
) -> reqwest::Body {
    let state = (reader, 0u64, false);
    let stream = futures_util::stream::unfold(state, move |(mut reader, total, done)| {
        let chunk = if done {
            None
        } else {
            let mut buf = vec![0u8; CHUNK_BYTES];
            match read_some(&mut reader, &mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let total = total.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    if let Some(progress) = &on_read {
                        progress(total);
                    }
                    Some((Ok(Bytes::from(buf)), (reader, total, false)))
                }
                // Ends the body with an error: the request fails rather
                // than sending a truncated result as if it were whole.
                Err(e) => Some((Err(e), (reader, total, true))),
            }
        };
        std::future::ready(chunk)
    });
    reqwest::Body::wrap_stream(stream)
}

/// Reads until `buf` is full or the input ends (fewer, larger chunks).
fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0usize;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The header line of a spool payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadHeader {
    /// Results URL.
    pub url: String,
    /// Bearer token.
    pub token: String,
    /// Bytes of compressed body after the header.
    pub body_bytes: u64,
    /// When `token` expires (Unix seconds). Headers written before the
    /// expiry was stored have none: their token is sent as it is.
    #[serde(default = "never_expires")]
    pub expires: i64,
}

fn never_expires() -> i64 {
    i64::MAX
}

/// A spool payload as a reader: the magic, the header line, then `body`
/// (which must yield exactly `header.body_bytes`). Returns the reader and its
/// total length.
///
/// # Errors
/// A message if the header cannot be encoded.
pub fn payload_reader(header: &PayloadHeader, body: impl Read) -> Result<(impl Read, u64), String> {
    let mut head = PAYLOAD_MAGIC.to_vec();
    head.extend(serde_json::to_vec(header).map_err(|e| e.to_string())?);
    head.push(b'\n');
    let len = u64::try_from(head.len())
        .unwrap_or(u64::MAX)
        .saturating_add(header.body_bytes);
    Ok((io::Cursor::new(head).chain(body), len))
}

/// What a spool payload holds: a streamed body in this format, or an
/// entry written by an earlier version (one BSON document, read whole).
#[derive(Debug)]
pub enum Payload<R> {
    /// The header and a reader positioned at the body.
    Stream(PayloadHeader, R),
    /// Not this format: every byte of the payload, for the legacy reader.
    Legacy(Vec<u8>),
}

/// Opens a spool payload: checks the magic and reads the header line,
/// leaving `payload` at the first body byte. A payload without the magic is
/// read whole (at most `legacy_cap` bytes) for the earlier format.
///
/// # Errors
/// A message for a malformed header or an I/O error.
pub fn open_payload<R: Read>(payload: R, legacy_cap: u64) -> Result<Payload<BufReader<R>>, String> {
    let mut reader = BufReader::with_capacity(CHUNK_BYTES, payload);
    let mut magic = Vec::new();
    (&mut reader)
        .take(u64::try_from(PAYLOAD_MAGIC.len()).unwrap_or(u64::MAX))
        .read_to_end(&mut magic)
        .map_err(|e| e.to_string())?;
    if magic != PAYLOAD_MAGIC {
        let mut all = magic;
        (&mut reader)
            .take(legacy_cap)
            .read_to_end(&mut all)
            .map_err(|e| e.to_string())?;
        return Ok(Payload::Legacy(all));
    }
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_PAYLOAD_HEADER)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if line.last() != Some(&b'\n') {
        return Err("the payload's header line is missing or too long".into());
    }
    let header: PayloadHeader = serde_json::from_slice(&line).map_err(|e| e.to_string())?;
    Ok(Payload::Stream(header, reader))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_payload_round_trips_and_its_length_is_exact() {
        let input = b"some result bytes ".repeat(1000);
        let n = compressed_len(&input[..]).unwrap();
        let header = PayloadHeader {
            url: "http://x/hooks/1/results/o".into(),
            token: "ab".into(),
            body_bytes: n,
            expires: 1_700_000_000,
        };
        let (mut reader, len) = payload_reader(&header, compressed(&input[..]).unwrap()).unwrap();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).unwrap();
        assert_eq!(u64::try_from(bytes.len()).unwrap(), len);
        let Payload::Stream(back, mut body) = open_payload(&bytes[..], 1 << 20).unwrap() else {
            panic!("not the streamed format");
        };
        assert_eq!(back, header);
        let mut compressed = Vec::new();
        body.read_to_end(&mut compressed).unwrap();
        assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), input);
    }

    #[test]
    fn a_header_without_an_expiry_never_expires() {
        let mut payload = PAYLOAD_MAGIC.to_vec();
        payload.extend(br#"{"url":"u","token":"t","body_bytes":0}"#);
        payload.push(b'\n');
        let Payload::Stream(header, _) = open_payload(&payload[..], 1 << 20).unwrap() else {
            panic!("not the streamed format");
        };
        assert_eq!(header.expires, i64::MAX);
    }

    #[test]
    fn an_earlier_payload_is_read_whole() {
        let legacy = bson::doc! { "url": "u" }.to_vec().unwrap();
        assert!(matches!(
            open_payload(&legacy[..], 1 << 20).unwrap(),
            Payload::Legacy(b) if b == legacy
        ));
    }
}
