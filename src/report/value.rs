//! Report values: text exactly as in the file, or a binary value kept in its
//! base64 form and decompressed only on request.

use std::io::Write as _;

use base64::Engine as _;
use thiserror::Error;

use super::decompress::{self, DecompressError, Format};

/// The marker after `Key: ` that starts a binary value.
pub const BASE64_MARKER: &[u8] = b"base64";

/// Raw bytes per base64 line when this crate encodes a binary value (what
/// apport's `problem_report` uses for its compressor blocks).
pub const BINARY_CHUNK_BYTES: usize = 1024 * 1024;

/// Why a value cannot be built or stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// Text values cannot hold NUL (C consumers such as whoopsie would
    /// truncate the field there); store such data as a binary value.
    #[error(
        "text value holds a NUL byte at offset {offset}; store binary data with Value::gzip instead"
    )]
    NulByte {
        /// 0-based offset of the first NUL.
        offset: usize,
    },
    /// A line of a binary value is not a complete, canonical base64 block.
    #[error("line {line} of the base64 value is not valid base64: {reason}")]
    Base64Line {
        /// 1-based line within the value.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A binary value with no base64 lines at all.
    #[error("binary value has no base64 data lines")]
    EmptyBinary,
}

/// A text value: the bytes exactly as in the file.
///
/// Multi-line values hold their lines joined with `\n` (the one leading space
/// of each continuation line is not part of the value). Bytes need not be
/// UTF-8 (apport writes what the program gave it); NUL never appears.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text {
    bytes: Vec<u8>,
    /// Written as `Key:` followed by continuation lines (else `Key: value`).
    block: bool,
}

impl Text {
    /// A text value; multi-line if it holds `\n` (or is exactly `base64`,
    /// which on one line would read back as a binary marker).
    ///
    /// # Errors
    /// [`ValueError::NulByte`] if `bytes` holds a NUL.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ValueError> {
        let bytes = bytes.into();
        if let Some(offset) = bytes.iter().position(|&b| b == 0) {
            return Err(ValueError::NulByte { offset });
        }
        let block = bytes.contains(&b'\n') || bytes == BASE64_MARKER;
        Ok(Self { bytes, block })
    }

    /// Built by the parser, which has already checked the invariants:
    /// no NUL; an inline value has no `\n` and is not `base64`.
    pub(crate) fn from_parsed(bytes: Vec<u8>, block: bool) -> Self {
        Self { bytes, block }
    }

    /// The value's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value as UTF-8, if it is.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// Whether the value is written in the multi-line form (`Key:` then
    /// lines that start with one space).
    #[must_use]
    pub fn is_multiline(&self) -> bool {
        self.block
    }
}

/// A binary value (`Key: base64` and continuation lines), kept exactly as
/// its base64 lines so that writing it gives the same bytes back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binary {
    /// The base64 lines without their leading space, joined with `\n`.
    lines: Vec<u8>,
}

impl Binary {
    /// A binary value from its base64 lines joined with `\n` (no `base64`
    /// marker, no leading spaces): the form whoopsie sends.
    ///
    /// # Errors
    /// [`ValueError`] if there is no line or a line is not canonical base64.
    pub fn from_base64_lines(lines: impl Into<Vec<u8>>) -> Result<Self, ValueError> {
        let lines = lines.into();
        if lines.is_empty() {
            return Err(ValueError::EmptyBinary);
        }
        for (index, line) in split_lines(&lines).enumerate() {
            check_base64_line(line).map_err(|reason| ValueError::Base64Line {
                line: index.saturating_add(1),
                reason,
            })?;
        }
        Ok(Self { lines })
    }

    /// Built by the parser, which has already checked every line.
    pub(crate) fn from_parsed(lines: Vec<u8>) -> Self {
        Self { lines }
    }

    /// A binary value holding `compressed` (already a gzip, zstd or zlib
    /// stream), base64-encoded in lines of [`BINARY_CHUNK_BYTES`] raw bytes.
    ///
    /// # Errors
    /// [`ValueError::EmptyBinary`] if `compressed` is empty.
    pub fn from_compressed(compressed: &[u8]) -> Result<Self, ValueError> {
        if compressed.is_empty() {
            return Err(ValueError::EmptyBinary);
        }
        let engine = &base64::engine::general_purpose::STANDARD;
        let mut lines = Vec::new();
        for (index, chunk) in compressed.chunks(BINARY_CHUNK_BYTES).enumerate() {
            if index > 0 {
                lines.push(b'\n');
            }
            lines.extend_from_slice(engine.encode(chunk).as_bytes());
        }
        Ok(Self { lines })
    }

    /// Compresses `data` with gzip (as apport does) into a binary value.
    ///
    /// # Errors
    /// An I/O error from the compressor (only on allocation failure).
    pub fn gzip(data: &[u8]) -> std::io::Result<Self> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data)?;
        let compressed = encoder.finish()?;
        Self::from_compressed(&compressed).map_err(std::io::Error::other)
    }

    /// The base64 lines joined with `\n`, without the `base64` marker: what
    /// whoopsie uploads for a binary field and daisy stores.
    #[must_use]
    pub fn base64_lines(&self) -> &[u8] {
        &self.lines
    }

    /// The compression format, sniffed from the first decoded bytes.
    ///
    /// # Errors
    /// [`DecompressError::Base64`] if the first line does not decode.
    pub fn format(&self) -> Result<Format, DecompressError> {
        decompress::sniff(&self.lines)
    }

    /// Decodes and decompresses the value, stopping with
    /// [`DecompressError::OverCap`] as soon as the output would exceed `cap`
    /// bytes. Nothing is allocated from a size claimed inside the data.
    ///
    /// # Errors
    /// [`DecompressError`] for bad base64, a corrupt stream, or the cap.
    pub fn decompress(&self, cap: u64) -> Result<Vec<u8>, DecompressError> {
        decompress::decompress(&self.lines, cap)
    }
}

/// `BASE64_ALPHABET[b]` is true for the 64 symbols of standard base64.
// Index and increment stay within 0..=255 by construction.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const BASE64_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0u8;
    loop {
        table[b as usize] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    table
};

/// Checks one base64 line: non-empty, a multiple of 4 long, only the
/// standard alphabet, `=` only as final padding (at most two).
pub(crate) fn check_base64_line(line: &[u8]) -> Result<(), &'static str> {
    if line.is_empty() {
        return Err("empty line");
    }
    if !line.len().is_multiple_of(4) {
        return Err("length is not a multiple of 4");
    }
    let body = line
        .strip_suffix(b"==")
        .or_else(|| line.strip_suffix(b"="))
        .unwrap_or(line);
    if body.last() == Some(&b'=') {
        return Err("more than two '=' padding characters");
    }
    if !body
        .iter()
        .all(|&b| BASE64_ALPHABET.get(usize::from(b)) == Some(&true))
    {
        return Err("character outside the base64 alphabet");
    }
    Ok(())
}

/// Splits at every `\n`, like `bytes.split(|&b| b == b'\n')` (so a trailing
/// `\n` gives a final empty piece), but with `memchr`.
pub(crate) fn split_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b'\n', current) {
            Some(end) => {
                let (line, after) = current.split_at(end);
                rest = after.get(1..);
                Some(line)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// One report value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// Text, kept byte for byte.
    Text(Text),
    /// A compressed binary value, kept in its base64 form.
    Binary(Binary),
}

impl Value {
    /// A text value (see [`Text::new`]).
    ///
    /// # Errors
    /// [`ValueError::NulByte`] if `bytes` holds a NUL.
    pub fn text(bytes: impl Into<Vec<u8>>) -> Result<Self, ValueError> {
        Text::new(bytes).map(Self::Text)
    }

    /// A gzip-compressed binary value of `data` (see [`Binary::gzip`]).
    ///
    /// # Errors
    /// An I/O error from the compressor.
    pub fn gzip(data: &[u8]) -> std::io::Result<Self> {
        Binary::gzip(data).map(Self::Binary)
    }

    /// The text bytes, or `None` for a binary value.
    #[must_use]
    pub fn as_text(&self) -> Option<&[u8]> {
        match self {
            Self::Text(text) => Some(text.as_bytes()),
            Self::Binary(_) => None,
        }
    }

    /// The text as UTF-8, or `None` for binary or non-UTF-8 values.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(text) => text.as_str(),
            Self::Binary(_) => None,
        }
    }

    /// The binary value, or `None` for text.
    #[must_use]
    pub fn as_binary(&self) -> Option<&Binary> {
        match self {
            Self::Binary(binary) => Some(binary),
            Self::Text(_) => None,
        }
    }

    /// The bytes this value carries on the wire: the text, or the base64
    /// lines joined with `\n`.
    #[must_use]
    pub fn wire_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(binary) => binary.base64_lines(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base64_line_rules() {
        assert!(check_base64_line(b"H4sI").is_ok());
        assert!(check_base64_line(b"AA==").is_ok());
        assert_eq!(check_base64_line(b""), Err("empty line"));
        assert!(check_base64_line(b"A===").is_err());
        assert!(check_base64_line(b"AA=A").is_err());
        assert!(check_base64_line(b"AB\rC").is_err());
        assert!(check_base64_line(b"ABC").is_err());
    }

    #[test]
    fn split_lines_matches_slice_split() {
        for case in [&b""[..], b"\n", b"a", b"a\n", b"\n\na\nbc\n\n", b"abc"] {
            let ours: Vec<&[u8]> = split_lines(case).collect();
            let std: Vec<&[u8]> = case.split(|&b| b == b'\n').collect();
            assert_eq!(ours, std, "{case:?}");
        }
    }

    #[test]
    fn text_base64_word_is_written_multiline() {
        assert!(Text::new("base64").unwrap().is_multiline());
        assert!(!Text::new("base65").unwrap().is_multiline());
        assert_eq!(Text::new("a\0b"), Err(ValueError::NulByte { offset: 1 }));
    }
}
