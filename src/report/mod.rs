//! The apport report format (`/var/crash/*.crash`): parsing, writing, new keys.
//!
//! # Grammar
//!
//! A report is a sequence of entries; every line ends with `\n` (a file that
//! does not is refused as probably truncated). An entry is one of:
//!
//! ```text
//! Key: value\n                 one-line text: the bytes after ": " up to the newline
//! Key:\n ␠line1\n ␠line2\n     multi-line text: one or more lines that start with one
//!                              space; the value is the lines without that space,
//!                              joined with "\n" (an empty line is a lone space)
//! Key: base64\n ␠AAAA\n …      binary: one or more lines of base64 (each a complete
//!                              base64 block; apport encodes every compressor block
//!                              separately) of a gzip, zstd or legacy zlib stream
//! ```
//!
//! - A key is one or more ASCII letters, digits, `.`, `-` or `_` ([`Key`]).
//! - Values are bytes, not necessarily UTF-8; any byte but NUL and `\n` may
//!   appear (tabs, `\r` and escape sequences are kept: a viewer must escape
//!   them). NUL is refused: C consumers such as whoopsie truncate there.
//! - Refused, each with its own [`LineError`] and 1-based line number: a line
//!   without `:`, `Key:value` without the space, an empty line, a
//!   continuation line first in the file or after a one-line value, `Key:`
//!   with no continuation line, `Key: base64` with no data line, a bad base64
//!   line, and any cap exceeded.
//! - Text is kept byte for byte and binary values keep their base64 lines, so
//!   every report the parser accepts is written back identically
//!   ([`Report::to_bytes`]).
//!
//! # Duplicate keys
//!
//! A key that appears twice is an error naming both lines
//! ([`LineError::DuplicateKey`]). apport's loader silently keeps the last
//! value, whoopsie leaked memory on duplicates (CVE-2020-11937), and "first"
//! or "last wins" would let a hostile report show one value to one consumer
//! and another to the next. apport itself never writes a key twice.
//!
//! # Limits
//!
//! [`ReportLimits`]: file size (default 512 MiB), number of keys (10,000),
//! size of one value (512 MiB), decompressed size of one binary value
//! (2 GiB). All arithmetic on sizes is checked; nothing is allocated from a
//! length read from the data.
//!
//! # Binary values
//!
//! Kept as base64 and decoded only on request ([`Binary::decompress`],
//! [`Report::decompress`]), up to a cap: gzip (`1f 8b`, what apport writes),
//! zstd (`28 b5 2f fd`), otherwise legacy zlib.
//!
//! # Opening files
//!
//! [`Report::open`] refuses symlinks and anything but a regular file and
//! checks the size before reading; [`Report::from_file`] does the same for a
//! descriptor received from elsewhere.
//!
//! # Bucketing
//!
//! [`signature`] computes what daisy buckets a report by.

mod decompress;
mod key;
mod limits;
mod new_keys;
mod open;
mod parse;
pub mod signature;
mod value;
mod write;

use std::collections::HashMap;

use thiserror::Error;

pub use decompress::{DecompressError, Format, ZSTD_MAX_WINDOW_LOG};
pub use key::{Key, KeyError, is_key_byte, path_to_key, validate_key};
pub use limits::{
    DEFAULT_MAX_DECOMPRESSED_BYTES, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_KEYS,
    DEFAULT_MAX_VALUE_BYTES, ReportLimits,
};
pub use new_keys::new_keys;
pub use open::OpenError;
pub use parse::{LineError, ParseError};
pub use value::{BASE64_MARKER, BINARY_CHUNK_BYTES, Binary, Text, Value, ValueError};

/// Why [`Report::set`] refused a key or value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    /// The key breaks the key grammar.
    #[error("invalid key {key:?}: {source}")]
    Key {
        /// The key given.
        key: String,
        /// Why it is invalid.
        source: KeyError,
    },
    /// The value cannot be stored as text.
    #[error("invalid value for key {key}: {source}")]
    Value {
        /// The key.
        key: String,
        /// Why the value is invalid.
        source: ValueError,
    },
}

/// Read access to text values by key: what the pure helpers (signatures,
/// bucketing) need. [`Report`] has it, and so does daisy's in-place reader
/// of a whoopsie upload (`wire::StringFields`), which skips building a
/// `Report` per crash.
pub trait ReportFields {
    /// The text of `key` as UTF-8; `None` if absent, binary or not UTF-8.
    fn text(&self, key: &str) -> Option<&str>;
}

impl ReportFields for Report {
    fn text(&self, key: &str) -> Option<&str> {
        self.get_str(key)
    }
}

/// An apport report: keys and values in file order.
///
/// Lookups are by key string; insertion keeps the order (a new key goes to
/// the end, re-setting a key keeps its place).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    entries: Vec<(Key, Value)>,
    index: HashMap<Key, usize>,
}

impl Report {
    /// An empty report.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the report has no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        let position = *self.index.get(key)?;
        self.entries.get(position).map(|(_, value)| value)
    }

    /// The text of `key` as UTF-8; `None` if absent, binary or not UTF-8.
    #[must_use]
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// The text bytes of `key`; `None` if absent or binary.
    #[must_use]
    pub fn get_text(&self, key: &str) -> Option<&[u8]> {
        self.get(key)?.as_text()
    }

    /// Sets `key` to `value`. A new key goes to the end; an existing key keeps
    /// its place. Returns the previous value.
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        if let Some(&position) = self.index.get(key.as_str())
            && let Some(slot) = self.entries.get_mut(position)
        {
            return Some(std::mem::replace(&mut slot.1, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        None
    }

    /// Validates `key` and sets it to the text `text` (see [`Report::insert`]).
    ///
    /// # Errors
    /// [`EntryError`] for a bad key or a text holding NUL.
    pub fn set(
        &mut self,
        key: &str,
        text: impl Into<Vec<u8>>,
    ) -> Result<Option<Value>, EntryError> {
        let valid_key = Key::new(key).map_err(|source| EntryError::Key {
            key: key.to_owned(),
            source,
        })?;
        let value = Value::text(text).map_err(|source| EntryError::Value {
            key: key.to_owned(),
            source,
        })?;
        Ok(self.insert(valid_key, value))
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let position = self.index.remove(key)?;
        if position >= self.entries.len() {
            return None;
        }
        let (_, value) = self.entries.remove(position);
        for slot in self.index.values_mut() {
            if *slot > position {
                *slot = slot.saturating_sub(1);
            }
        }
        Some(value)
    }

    /// Keys and values in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Key, &Value)> + '_ {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Key> + '_ {
        self.entries.iter().map(|(key, _)| key)
    }

    /// Decompresses the binary value of `key` up to
    /// [`ReportLimits::max_decompressed_bytes`]. `Ok(None)` if the key is absent.
    ///
    /// # Errors
    /// [`DecompressError`], including [`DecompressError::NotBinary`] for text.
    pub fn decompress(
        &self,
        key: &str,
        limits: &ReportLimits,
    ) -> Result<Option<Vec<u8>>, DecompressError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Text(_)) => Err(DecompressError::NotBinary {
                key: key.to_owned(),
            }),
            Some(Value::Binary(binary)) => {
                binary.decompress(limits.max_decompressed_bytes).map(Some)
            }
        }
    }
}
