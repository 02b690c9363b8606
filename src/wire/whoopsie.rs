//! Report ⇄ whoopsie BSON.
//!
//! whoopsie uploads a report as one BSON document in which every field is a
//! BSON string, in report order (what pymongo gives for an ordered dict):
//! - text values as their bytes (multi-line values joined with `\n`);
//! - binary values as their base64 lines joined with `\n`, without the
//!   `base64` marker (whoopsie's `parse_report` drops the marker and joins
//!   continuation lines);
//! - `CoreDump` left out (it goes to `submit-core` only if daisy asks).
//!
//! No field allow-list is applied here (the testdata uploads carry
//! `DpkgTerminalLog` and `Title`, which whoopsie's list leaves out); a client
//! that wants whoopsie's list filters the report before encoding.
//!
//! Values must be UTF-8: the BSON string type requires it and daisy's
//! decoder refuses anything else (`Invalid BSON.`). Hook results ("new
//! keys") travel in the same strings-only shape, with every key.

use bson::{Bson, Document};

use super::WireError;
use super::untrusted::{WireLimits, type_name};
use crate::report::{Key, Report, ReportLimits, Value};

/// The key whoopsie never sends in the first upload.
pub const CORE_DUMP_KEY: &str = "CoreDump";

/// BSON type tag of a UTF-8 string.
const BSON_STRING: u8 = 0x02;

fn utf8<'a>(key: &Key, value: &'a Value) -> Result<&'a str, WireError> {
    std::str::from_utf8(value.wire_bytes()).map_err(|e| WireError::NotUtf8 {
        key: key.to_string(),
        offset: e.valid_up_to(),
    })
}

fn bson_len(len: usize) -> Result<[u8; 4], WireError> {
    i32::try_from(len)
        .map(i32::to_le_bytes)
        .map_err(|_| WireError::EncodeTooLarge { size: len })
}

/// Encodes `(key, value)` pairs as a strings-only BSON document.
fn encode<'a>(entries: impl Iterator<Item = (&'a Key, &'a Value)>) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 4];
    for (key, value) in entries {
        let text = utf8(key, value)?;
        out.push(BSON_STRING);
        // Keys follow the key grammar, so they hold no NUL.
        out.extend_from_slice(key.as_str().as_bytes());
        out.push(0);
        let with_nul = text
            .len()
            .checked_add(1)
            .ok_or(WireError::EncodeTooLarge { size: text.len() })?;
        out.extend_from_slice(&bson_len(with_nul)?);
        out.extend_from_slice(text.as_bytes());
        out.push(0);
    }
    out.push(0);
    let total = bson_len(out.len())?;
    if let Some(prefix) = out.get_mut(..4) {
        prefix.copy_from_slice(&total);
    }
    Ok(out)
}

/// Encodes a report the way whoopsie uploads it: every field a BSON string,
/// binary values as their base64 lines, `CoreDump` left out, report order.
///
/// # Errors
/// [`WireError::NotUtf8`] for a non-UTF-8 value, [`WireError::EncodeTooLarge`]
/// past BSON's 2 GiB.
pub fn report_to_whoopsie_bson(report: &Report) -> Result<Vec<u8>, WireError> {
    encode(
        report
            .iter()
            .filter(|(key, _)| key.as_str() != CORE_DUMP_KEY),
    )
}

/// Encodes every key of `report` in the same strings-only shape (for hook
/// results, where the new keys are the whole point).
///
/// # Errors
/// As [`report_to_whoopsie_bson`].
pub fn report_to_strings_bson(report: &Report) -> Result<Vec<u8>, WireError> {
    encode(report.iter())
}

/// Every key of `report` as a strings-only [`Document`] (to embed in a
/// larger document).
///
/// # Errors
/// [`WireError::NotUtf8`] for a non-UTF-8 value.
pub fn strings_document(report: &Report) -> Result<Document, WireError> {
    let mut doc = Document::new();
    for (key, value) in report.iter() {
        doc.insert(key.as_str(), Bson::String(utf8(key, value)?.to_owned()));
    }
    Ok(doc)
}

/// Builds a report from a strings-only document (a whoopsie upload or a hook
/// result). Every field must be a string, every name a valid key, and
/// `limits` (number of keys, value size) hold. Values become text; a binary
/// value sent by whoopsie stays its base64 text.
///
/// # Errors
/// [`WireError`] naming the offending field.
pub fn report_from_whoopsie_bson(
    doc: &Document,
    limits: &ReportLimits,
) -> Result<Report, WireError> {
    let mut report = Report::new();
    for (name, value) in doc {
        let Bson::String(text) = value else {
            return Err(WireError::NotAString {
                key: name.clone(),
                found: type_name(value.element_type()),
            });
        };
        if report.len() >= limits.max_keys {
            return Err(WireError::TooManyKeys {
                max: limits.max_keys,
            });
        }
        let key = Key::new(name.as_str()).map_err(|source| WireError::InvalidKey {
            key: name.clone(),
            source,
        })?;
        if u64::try_from(text.len()).map_or(true, |len| len > limits.max_value_bytes) {
            return Err(WireError::ValueTooLarge {
                key: name.clone(),
                max: limits.max_value_bytes,
            });
        }
        let value = Value::text(text.as_bytes()).map_err(|source| WireError::InvalidValue {
            key: name.clone(),
            source,
        })?;
        report.insert(key, value);
    }
    Ok(report)
}

/// Decodes untrusted bytes into a report: every check of
/// [`decode_untrusted`](super::decode_untrusted) followed by
/// [`report_from_whoopsie_bson`], made in one pass by
/// [`StringFields::parse`](super::StringFields::parse), which is the one
/// place those rules live for bytes.
///
/// # Errors
/// [`WireError`] naming the first check that failed.
pub fn decode_report(
    bytes: &[u8],
    wire: &WireLimits,
    limits: &ReportLimits,
) -> Result<Report, WireError> {
    super::StringFields::parse(bytes, wire, limits)?.to_report()
}
