//! Decoding BSON from the network.
//!
//! whoopsie's bundled BSON code overflowed integers (CVE-2019-11484,
//! CVE-2020-12135) and BSON readers that trust the 4-byte length prefix
//! allocate whatever a peer claims. Here a document is only ever decoded from
//! a byte slice the caller has already read (with its own cap), in this
//! order: slice size against the cap, declared length against the cap and
//! the slice, then a walk over the raw bytes that enforces the nesting depth,
//! the number of fields and unique field names, and only then an owned
//! [`bson::Document`] is built.

use std::collections::HashSet;

use bson::raw::{RawBsonRef, RawDocument};
use bson::spec::ElementType;

use super::WireError;

/// Default cap on one document: 16 MiB (MongoDB's own document limit).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Default cap on nesting: 16 levels (a report is one level, a bundle three).
pub const DEFAULT_MAX_DEPTH: usize = 16;

/// Default cap on fields, counted over all levels: 2,048 (whoopsie sends
/// about 40 allow-listed fields; hook results are a few keys per step).
pub const DEFAULT_MAX_FIELDS: usize = 2_048;

/// Caps for [`decode_untrusted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Largest document accepted, in bytes.
    pub max_document_bytes: usize,
    /// Deepest nesting accepted; the top-level document is depth 1.
    pub max_depth: usize,
    /// Most fields accepted, counting every element at every level.
    pub max_fields: usize,
}

impl Default for WireLimits {
    fn default() -> Self {
        Self {
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            max_fields: DEFAULT_MAX_FIELDS,
        }
    }
}

/// Decodes one BSON document received from an untrusted peer.
///
/// # Errors
/// [`WireError`] naming the first check that failed; never panics.
pub fn decode_untrusted(bytes: &[u8], limits: &WireLimits) -> Result<bson::Document, WireError> {
    let raw = check_raw(bytes, limits)?;
    bson::Document::try_from(raw).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Runs every check of [`decode_untrusted`] and returns the raw document
/// (for callers that read a few fields without building a `Document`).
///
/// # Errors
/// As [`decode_untrusted`].
pub fn check_raw<'a>(bytes: &'a [u8], limits: &WireLimits) -> Result<&'a RawDocument, WireError> {
    check_length(bytes, limits)?;
    let raw = RawDocument::from_bytes(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    let mut fields = 0usize;
    walk(raw, 1, limits, &mut fields)?;
    Ok(raw)
}

/// The checks made before any byte of the document is read: the slice
/// against the cap, then the declared length (at least 5, within the cap,
/// equal to the slice: a peer's prefix never drives a read or an
/// allocation, compare CVE-2019-11484).
pub(super) fn check_length(bytes: &[u8], limits: &WireLimits) -> Result<(), WireError> {
    if bytes.len() > limits.max_document_bytes {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            max: limits.max_document_bytes,
        });
    }
    let prefix: [u8; 4] = bytes
        .get(..4)
        .and_then(|p| p.try_into().ok())
        .ok_or(WireError::TooShort { size: bytes.len() })?;
    let declared = i32::from_le_bytes(prefix);
    let declared_len = usize::try_from(declared)
        .ok()
        .filter(|&d| d >= 5)
        .ok_or(WireError::BadLength { declared })?;
    if declared_len > limits.max_document_bytes {
        return Err(WireError::TooLarge {
            size: declared_len,
            max: limits.max_document_bytes,
        });
    }
    if declared_len > bytes.len() {
        return Err(WireError::Truncated {
            declared: declared_len,
            actual: bytes.len(),
        });
    }
    if declared_len < bytes.len() {
        return Err(WireError::TrailingBytes {
            declared: declared_len,
            actual: bytes.len(),
        });
    }
    Ok(())
}

fn walk(
    doc: &RawDocument,
    depth: usize,
    limits: &WireLimits,
    fields: &mut usize,
) -> Result<(), WireError> {
    if depth > limits.max_depth {
        return Err(WireError::TooDeep {
            max: limits.max_depth,
        });
    }
    let mut names = HashSet::new();
    for element in doc.iter_elements() {
        let element = element.map_err(|e| WireError::Malformed(e.to_string()))?;
        *fields = fields.saturating_add(1);
        if *fields > limits.max_fields {
            return Err(WireError::TooManyFields {
                max: limits.max_fields,
            });
        }
        let key = element.key().as_str();
        // Arrays use "0", "1", … and are checked like documents: a peer that
        // repeats a name could show one value to one reader and another to
        // the next (compare whoopsie's duplicate-key CVE-2020-11937).
        if !names.insert(key) {
            return Err(WireError::DuplicateField {
                key: key.to_owned(),
            });
        }
        let value = element
            .value()
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        let child = match value {
            RawBsonRef::Document(child) => Some(child),
            RawBsonRef::Array(array) => Some(
                RawDocument::from_bytes(array.as_bytes())
                    .map_err(|e| WireError::Malformed(e.to_string()))?,
            ),
            RawBsonRef::JavaScriptCodeWithScope(code) => Some(code.scope),
            _ => None,
        };
        if let Some(child) = child {
            walk(child, depth.saturating_add(1), limits, fields)?;
        }
    }
    Ok(())
}

/// The BSON type name of an element type, for error messages.
pub(crate) fn type_name(element_type: ElementType) -> &'static str {
    match element_type {
        ElementType::Double => "double",
        ElementType::String => "string",
        ElementType::EmbeddedDocument => "document",
        ElementType::Array => "array",
        ElementType::Binary => "binary",
        ElementType::Undefined => "undefined",
        ElementType::ObjectId => "objectId",
        ElementType::Boolean => "bool",
        ElementType::DateTime => "date",
        ElementType::Null => "null",
        ElementType::RegularExpression => "regex",
        ElementType::DbPointer => "dbPointer",
        ElementType::JavaScriptCode => "javascript",
        ElementType::Symbol => "symbol",
        ElementType::JavaScriptCodeWithScope => "javascriptWithScope",
        ElementType::Int32 => "int",
        ElementType::Timestamp => "timestamp",
        ElementType::Int64 => "long",
        ElementType::Decimal128 => "decimal",
        ElementType::MaxKey => "maxKey",
        ElementType::MinKey => "minKey",
    }
}
