//! Lazy, capped decoding of binary values.
//!
//! Formats, chosen by the first decoded bytes (as apport's `problem_report`
//! does):
//! - gzip (`1f 8b`): what apport writes today; every member is read, as
//!   Python's `gzip` module does;
//! - zstd (`28 b5 2f fd`): newer apport; every frame is read;
//! - anything else: legacy zlib (RFC 1950) as written by apport before 2011.
//!
//! Every byte must belong to the stream: data after the last gzip member,
//! zstd frame or zlib stream is an error, never silently dropped (two
//! readers must not see two different values).
//!
//! Each base64 line is decoded on its own: apport encodes every compressor
//! block separately, so `=` padding may end any line.
//!
//! The output grows in 64 KiB steps and stops with an error as soon as it
//! would pass the caller's cap: no buffer is sized from a length found in the
//! data (whoopsie's CVE-2020-15570). The zstd window (which the decoder
//! reserves up front, from the frame header) is limited to the cap rounded up
//! to a power of two, at least 2^[`ZSTD_MIN_WINDOW_LOG`] and at most
//! 2^[`ZSTD_MAX_WINDOW_LOG`].

use std::io::Read;

use base64::Engine as _;
use thiserror::Error;

use super::value::split_lines;

/// Largest zstd window accepted: 2^27 bytes (libzstd's own default limit).
pub const ZSTD_MAX_WINDOW_LOG: u32 = 27;

/// Smallest zstd window limit, whatever the cap: 2^23 bytes, what zstd uses
/// up to level 19 when streaming data of unknown size (apport streams at
/// level 3: 2^21).
pub const ZSTD_MIN_WINDOW_LOG: u32 = 23;

/// The zstd window limit for a decompression cap of `cap` bytes.
fn zstd_window_log(cap: u64) -> u32 {
    let needed = u64::BITS.saturating_sub(cap.saturating_sub(1).leading_zeros());
    needed.clamp(ZSTD_MIN_WINDOW_LOG, ZSTD_MAX_WINDOW_LOG)
}

fn trailing_data(format: Format, remaining: usize) -> DecompressError {
    DecompressError::Corrupt {
        format,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{remaining} bytes after the end of the compressed stream"),
        ),
    }
}

/// Bytes read from the decompressor at a time.
const READ_STEP: usize = 64 * 1024;

/// The compression format of a binary value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A gzip member (magic `1f 8b`).
    Gzip,
    /// A zstd frame (magic `28 b5 2f fd`).
    Zstd,
    /// A zlib stream (RFC 1950), apport's legacy format.
    Zlib,
}

/// Why a binary value could not be decompressed.
#[derive(Debug, Error)]
pub enum DecompressError {
    /// A base64 line does not decode.
    #[error("line {line} of the binary value is not valid base64: {reason}")]
    Base64 {
        /// 1-based line within the value.
        line: usize,
        /// The decoder's message.
        reason: String,
    },
    /// The compressed stream is corrupt or truncated.
    #[error("the {format:?} stream is corrupt or truncated: {source}")]
    Corrupt {
        /// The format that was tried.
        format: Format,
        /// The decompressor's error.
        source: std::io::Error,
    },
    /// The decompressed data would exceed the cap.
    #[error(
        "decompressed data exceeds the cap of {cap} bytes; raise the cap \
         (ReportLimits::max_decompressed_bytes) if this value is expected to be that large"
    )]
    OverCap {
        /// The cap in bytes.
        cap: u64,
    },
    /// Memory for the output could not be reserved.
    #[error("out of memory while decompressing after {bytes} bytes")]
    OutOfMemory {
        /// Bytes decompressed so far.
        bytes: usize,
    },
    /// The key holds a text value, not a binary one.
    #[error("key {key} holds text, not a base64 binary value")]
    NotBinary {
        /// The key asked for.
        key: String,
    },
}

fn decode_base64_lines(lines: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    // Decoded data is at most 3/4 of the (already capped) encoded size.
    if out
        .try_reserve((lines.len() / 4).saturating_mul(3))
        .is_err()
    {
        return Err(DecompressError::OutOfMemory { bytes: 0 });
    }
    for (index, line) in split_lines(lines).enumerate() {
        engine
            .decode_vec(line, &mut out)
            .map_err(|e| DecompressError::Base64 {
                line: index.saturating_add(1),
                reason: e.to_string(),
            })?;
    }
    Ok(out)
}

fn sniff_bytes(raw: &[u8]) -> Format {
    if raw.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Format::Zstd
    } else {
        Format::Zlib
    }
}

/// The format of base64 `lines` (joined with `\n`), from the first line.
pub(crate) fn sniff(lines: &[u8]) -> Result<Format, DecompressError> {
    let first = split_lines(lines).next().unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(first)
        .map_err(|e| DecompressError::Base64 {
            line: 1,
            reason: e.to_string(),
        })?;
    Ok(sniff_bytes(&raw))
}

/// Decodes base64 `lines` (joined with `\n`) and decompresses them, up to `cap`.
pub(crate) fn decompress(lines: &[u8], cap: u64) -> Result<Vec<u8>, DecompressError> {
    let raw = decode_base64_lines(lines)?;
    let format = sniff_bytes(&raw);
    let corrupt = |source| DecompressError::Corrupt { format, source };
    match format {
        // A multi-member reader: a header where the next member should start
        // is an error, so trailing bytes cannot hide behind the first member.
        Format::Gzip => read_capped(
            &mut flate2::bufread::MultiGzDecoder::new(raw.as_slice()),
            cap,
            format,
        ),
        Format::Zlib => {
            let mut decoder = flate2::bufread::ZlibDecoder::new(raw.as_slice());
            let out = read_capped(&mut decoder, cap, format)?;
            match decoder.into_inner().len() {
                0 => Ok(out),
                remaining => Err(trailing_data(format, remaining)),
            }
        }
        // Reads every frame; bytes that are not a frame are an error.
        Format::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(raw.as_slice()).map_err(corrupt)?;
            decoder
                .window_log_max(zstd_window_log(cap))
                .map_err(corrupt)?;
            read_capped(&mut decoder, cap, format)
        }
    }
}

fn read_capped(
    reader: &mut impl Read,
    cap: u64,
    format: Format,
) -> Result<Vec<u8>, DecompressError> {
    let mut out: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; READ_STEP];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(DecompressError::Corrupt { format, source }),
        };
        let total = out
            .len()
            .checked_add(n)
            .ok_or(DecompressError::OverCap { cap })?;
        if u64::try_from(total).map_or(true, |t| t > cap) {
            return Err(DecompressError::OverCap { cap });
        }
        if out.try_reserve(n).is_err() {
            return Err(DecompressError::OutOfMemory { bytes: out.len() });
        }
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}
