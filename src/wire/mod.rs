//! The whoopsie wire format: untrusted BSON decoding and report ⇄ BSON.
//!
//! - [`decode_untrusted`] is the only way this project turns bytes from the
//!   network into a [`bson::Document`]: size cap, declared length checked
//!   against the cap and the slice, then a raw walk with depth, field-count
//!   and unique-name checks before anything is built ([`WireLimits`]).
//! - [`report_to_whoopsie_bson`] encodes a report byte for byte like a
//!   whoopsie upload; [`report_from_whoopsie_bson`] is daisy's intake;
//!   [`report_to_strings_bson`] / [`strings_document`] carry hook results
//!   in the same shape.
//! - [`StringFields`] reads a strings-only document in place, with every
//!   check of `decode_untrusted` + `report_from_whoopsie_bson` in one pass
//!   and no copies (daisy's crash intake and result check);
//!   [`decode_report`] is it plus `to_report()`.
//! - [`is_valid_system_id`] is the one system-id grammar for daisy and
//!   the client agent.

mod strings;
mod system_id;
mod untrusted;
mod whoopsie;

use thiserror::Error;

use crate::report::{KeyError, ValueError};

pub use strings::StringFields;
pub use system_id::{MAX_SYSTEM_ID_LEN, is_valid_system_id};
pub use untrusted::{
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_FIELDS, WireLimits, check_raw,
    decode_untrusted,
};
pub use whoopsie::{
    CORE_DUMP_KEY, decode_report, report_from_whoopsie_bson, report_to_strings_bson,
    report_to_whoopsie_bson, strings_document,
};

/// Why BSON could not be decoded, encoded or turned into a report.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The document (slice or declared length) is over the cap.
    #[error(
        "BSON document of {size} bytes is over the limit of {max} bytes; \
         raise WireLimits::max_document_bytes if such documents are expected"
    )]
    TooLarge {
        /// The size seen.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Fewer than the 4 bytes of the length prefix.
    #[error("BSON document of {size} bytes is too short to hold its length")]
    TooShort {
        /// Bytes received.
        size: usize,
    },
    /// The length prefix is below 5 (negative or too small for a document).
    #[error("BSON length prefix {declared} is invalid (a document is at least 5 bytes)")]
    BadLength {
        /// The declared length.
        declared: i32,
    },
    /// The length prefix claims more bytes than were received.
    #[error("BSON document is truncated: it declares {declared} bytes but {actual} arrived")]
    Truncated {
        /// The declared length.
        declared: usize,
        /// Bytes received.
        actual: usize,
    },
    /// Bytes after the document's declared end.
    #[error(
        "BSON document declares {declared} bytes but {actual} arrived; send exactly one document"
    )]
    TrailingBytes {
        /// The declared length.
        declared: usize,
        /// Bytes received.
        actual: usize,
    },
    /// Nesting deeper than [`WireLimits::max_depth`].
    #[error("BSON nesting is deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// More fields than [`WireLimits::max_fields`].
    #[error("BSON document has more than {max} fields")]
    TooManyFields {
        /// The limit.
        max: usize,
    },
    /// A field name appears twice in one document.
    #[error("BSON field {key:?} appears twice in one document")]
    DuplicateField {
        /// The repeated name.
        key: String,
    },
    /// The bytes break the BSON grammar.
    #[error("malformed BSON: {0}")]
    Malformed(String),
    /// A report field that is not a string.
    #[error("field {key:?} is a BSON {found}; every report field must be a string")]
    NotAString {
        /// The field.
        key: String,
        /// Its BSON type.
        found: &'static str,
    },
    /// A field name that is not a valid report key.
    #[error("field name {key:?} is not a valid report key: {source}")]
    InvalidKey {
        /// The field name.
        key: String,
        /// Why.
        source: KeyError,
    },
    /// A value that cannot be report text (NUL).
    #[error("field {key:?}: {source}")]
    InvalidValue {
        /// The field.
        key: String,
        /// Why.
        source: ValueError,
    },
    /// More report keys than [`ReportLimits::max_keys`](crate::report::ReportLimits).
    #[error("more than {max} report keys")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// A value over [`ReportLimits::max_value_bytes`](crate::report::ReportLimits).
    #[error("field {key:?} is over the value limit of {max} bytes")]
    ValueTooLarge {
        /// The field.
        key: String,
        /// The limit.
        max: u64,
    },
    /// A value that is not UTF-8 cannot be a BSON string.
    #[error(
        "value of key {key} is not UTF-8 (first bad byte at offset {offset}); BSON strings must be UTF-8"
    )]
    NotUtf8 {
        /// The key.
        key: String,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A value or document beyond BSON's 2 GiB lengths.
    #[error("{size} bytes do not fit a BSON length")]
    EncodeTooLarge {
        /// The size.
        size: usize,
    },
}

/// A report entry refused while building a [`Report`] from wire fields.
impl From<crate::report::EntryError> for WireError {
    fn from(e: crate::report::EntryError) -> WireError {
        match e {
            crate::report::EntryError::Key { key, source } => WireError::InvalidKey { key, source },
            crate::report::EntryError::Value { key, source } => {
                WireError::InvalidValue { key, source }
            }
        }
    }
}
