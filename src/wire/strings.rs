//! A strings-only BSON document (a whoopsie upload, a hook result) read in
//! place.
//!
//! [`decode_untrusted`](super::decode_untrusted) followed by
//! [`report_from_whoopsie_bson`](super::report_from_whoopsie_bson) walks the
//! bytes twice and copies every field twice (into a `bson::Document`, then
//! into a [`Report`]), with a hash set and a hash map on the way: most of
//! daisy's CPU per crash once. [`StringFields::parse`] makes every check of
//! those two, in one pass over the bytes, and keeps borrowed `&str` pairs.
//!
//! Checks, in this order: the slice against `max_document_bytes`; the
//! length prefix (at least 5, within the cap, equal to the slice: no
//! truncation, no trailing bytes, so a peer's prefix never drives an
//! allocation, compare CVE-2019-11484); the terminating NUL; then per field:
//! the field count against `max_fields` and `max_keys`, a string type tag
//! (anything else, nested documents included, is refused: a report has one
//! level), a NUL-terminated name inside the document that is a valid report
//! key, a string length that fits inside the document and ends on its NUL,
//! the value cap, UTF-8, no NUL inside the value; finally unique names
//! (CVE-2020-11937: a repeated name could show one value to one reader and
//! another to the next).

use bson::spec::ElementType;

use super::WireError;
use super::untrusted::{WireLimits, check_length, type_name};
use crate::report::{Report, ReportFields, ReportLimits, ValueError, validate_key};

/// BSON type tag of a UTF-8 string.
const BSON_STRING: u8 = 0x02;

/// The fields of a strings-only BSON document, borrowed from its bytes, in
/// document order. Every name is a valid report key, every value UTF-8
/// without NUL; names are unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringFields<'a> {
    /// Names as bytes: each passed the key grammar, so it is ASCII and
    /// needs no UTF-8 pass until someone asks for it as `&str`.
    fields: Vec<(&'a [u8], &'a str)>,
}

/// Reads the little-endian `i32` at `at`.
fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let end = at.checked_add(4)?;
    let raw: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(i32::from_le_bytes(raw))
}

fn malformed(what: &str, at: usize) -> WireError {
    WireError::Malformed(format!("{what} at byte {at}"))
}

impl<'a> StringFields<'a> {
    /// Checks `bytes` as one strings-only document under both sets of
    /// limits and returns its fields.
    ///
    /// # Errors
    /// [`WireError`] naming the first check that failed; never panics and
    /// allocates nothing in proportion to what the peer claims.
    pub fn parse(
        bytes: &'a [u8],
        wire: &WireLimits,
        limits: &ReportLimits,
    ) -> Result<StringFields<'a>, WireError> {
        let body = document_body(bytes, wire)?;
        // Each field takes at least 7 bytes (tag, 1-byte name, NUL, length,
        // NUL), so this bounds the vector by the bytes received.
        let most = body
            .len()
            .checked_div(7)
            .unwrap_or(0)
            .min(wire.max_fields)
            .min(limits.max_keys);
        let mut fields: Vec<(&'a [u8], &'a str)> = Vec::with_capacity(most.min(64));
        let mut at = 4usize;
        while at < body.len() {
            if fields.len() >= wire.max_fields {
                return Err(WireError::TooManyFields {
                    max: wire.max_fields,
                });
            }
            if fields.len() >= limits.max_keys {
                return Err(WireError::TooManyKeys {
                    max: limits.max_keys,
                });
            }
            let (field, next) = read_field(body, at, limits)?;
            fields.push(field);
            at = next;
        }
        reject_duplicates(&fields)?;
        Ok(StringFields { fields })
    }

    /// Number of fields.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the document has no fields.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(name, _)| *name == key.as_bytes())
            .map(|&(_, value)| value)
    }

    /// Names and values in document order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + '_ {
        self.fields
            .iter()
            .map(|&(name, text)| (key_str(name), text))
    }

    /// The fields as an owned [`Report`] (text values, document order).
    ///
    /// # Errors
    /// Never for a parsed document (its names and values were checked);
    /// the `Result` keeps the constructors' checks in one place.
    pub fn to_report(&self) -> Result<Report, WireError> {
        let mut report = Report::new();
        for (name, text) in self.iter() {
            report.set(name, text)?;
        }
        Ok(report)
    }
}

impl ReportFields for StringFields<'_> {
    fn text(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// The size and prefix checks of [`check_raw`](super::check_raw); returns
/// the document without its terminating NUL.
fn document_body<'a>(bytes: &'a [u8], wire: &WireLimits) -> Result<&'a [u8], WireError> {
    check_length(bytes, wire)?;
    match bytes.split_last() {
        Some((0, body)) => Ok(body),
        _ => Err(malformed("document does not end with NUL", bytes.len())),
    }
}

/// Reads the field starting at `at` of `body` (the document without its
/// final NUL); returns it and the offset of the next one.
fn read_field<'a>(
    body: &'a [u8],
    at: usize,
    limits: &ReportLimits,
) -> Result<((&'a [u8], &'a str), usize), WireError> {
    let tag = *body
        .get(at)
        .ok_or_else(|| malformed("field expected", at))?;
    let name_start = at.checked_add(1).ok_or_else(|| malformed("overflow", at))?;
    let name_len = body
        .get(name_start..)
        .and_then(|rest| memchr::memchr(0, rest))
        .ok_or_else(|| malformed("field name without NUL", name_start))?;
    let name_end = name_start
        .checked_add(name_len)
        .ok_or_else(|| malformed("overflow", at))?;
    let name_bytes = body
        .get(name_start..name_end)
        .ok_or_else(|| malformed("field name out of bounds", name_start))?;
    // A valid key is ASCII, so the name needs no UTF-8 pass of its own
    // (one per field was a quarter of the parse); the error paths below
    // still tell a name that is not UTF-8 from one outside the grammar.
    let name_text = || {
        std::str::from_utf8(name_bytes)
            .map_err(|_| malformed("field name is not UTF-8", name_start))
    };
    if tag != BSON_STRING {
        let name = name_text()?;
        let found = ElementType::from(tag)
            .map(type_name)
            .ok_or_else(|| malformed(&format!("unknown BSON type 0x{tag:02x}"), at))?;
        return Err(WireError::NotAString {
            key: name.to_owned(),
            found,
        });
    }
    if let Err(source) = validate_key(name_bytes) {
        return Err(WireError::InvalidKey {
            key: name_text()?.to_owned(),
            source,
        });
    }
    let len_at = name_end
        .checked_add(1)
        .ok_or_else(|| malformed("overflow", at))?;
    let declared =
        read_i32(body, len_at).ok_or_else(|| malformed("string length out of bounds", len_at))?;
    let with_nul = usize::try_from(declared)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| malformed("invalid string length", len_at))?;
    let text_start = len_at
        .checked_add(4)
        .ok_or_else(|| malformed("overflow", at))?;
    let text_end = text_start
        .checked_add(with_nul.saturating_sub(1))
        .ok_or_else(|| malformed("overflow", at))?;
    // The value's NUL must lie inside the document, before its final NUL.
    if body.get(text_end) != Some(&0) {
        return Err(malformed("string runs past the document", len_at));
    }
    let text_bytes = body
        .get(text_start..text_end)
        .ok_or_else(|| malformed("string out of bounds", text_start))?;
    if u64::try_from(text_bytes.len()).map_or(true, |len| len > limits.max_value_bytes) {
        return Err(WireError::ValueTooLarge {
            key: key_text(name_bytes),
            max: limits.max_value_bytes,
        });
    }
    let text = std::str::from_utf8(text_bytes).map_err(|e| WireError::NotUtf8 {
        key: key_text(name_bytes),
        offset: e.valid_up_to(),
    })?;
    // The memchr crate's search, not the slice's `contains` (a quarter of
    // the time of this whole check for a report's short values).
    if let Some(offset) = memchr::memchr(0, text_bytes) {
        return Err(WireError::InvalidValue {
            key: key_text(name_bytes),
            source: ValueError::NulByte { offset },
        });
    }
    let next = text_end
        .checked_add(1)
        .ok_or_else(|| malformed("overflow", at))?;
    Ok(((name_bytes, text), next))
}

/// A checked name as an owned `String`, for errors.
fn key_text(name: &[u8]) -> String {
    key_str(name).to_owned()
}

/// A checked name as `&str`: keys are ASCII, so the empty fallback is
/// never taken.
fn key_str(name: &[u8]) -> &str {
    std::str::from_utf8(name).unwrap_or_default()
}

/// Finds a repeated name. A report has a few dozen fields with short names:
/// those go into a small open-addressed table by fingerprint, and a name is
/// compared only with the names already in its probe run (sorting the
/// names was a third of the parse, mostly `memcmp` over shared prefixes
/// such as `Stacktrace…`). The fingerprint has no secret seed, so names can
/// be made to share one run; the table is therefore used only when every
/// name is at most [`SMALL_NAME_BYTES`] long, which bounds that to 2,016
/// comparisons of short names. Other documents sort `(fingerprint, name)`
/// pairs, which compares names only on a tie of fingerprints.
fn reject_duplicates(fields: &[(&[u8], &str)]) -> Result<(), WireError> {
    let duplicate = |name: &[u8]| WireError::DuplicateField {
        key: key_text(name),
    };
    if fields.len() <= SMALL_FIELDS
        && fields
            .iter()
            .all(|(name, _)| name.len() <= SMALL_NAME_BYTES)
    {
        // Slot values are field index + 1; 0 is empty. Twice as many slots
        // as fields keeps probe runs short.
        let mut slots = [0u8; 2 * SMALL_FIELDS];
        let mask = slots.len().saturating_sub(1);
        for (i, &(name, _)) in fields.iter().enumerate() {
            let mut at = usize::try_from(fingerprint(name) >> 57).unwrap_or(0) & mask;
            loop {
                match slots.get(at).copied() {
                    Some(0) | None => {
                        if let Some(slot) = slots.get_mut(at) {
                            *slot = u8::try_from(i.saturating_add(1)).unwrap_or(u8::MAX);
                        }
                        break;
                    }
                    Some(taken) => {
                        let other = fields.get(usize::from(taken).saturating_sub(1));
                        if other.is_some_and(|&(other, _)| other == name) {
                            return Err(duplicate(name));
                        }
                        at = at.saturating_add(1) & mask;
                    }
                }
            }
        }
        return Ok(());
    }
    let mut names: Vec<(u64, &[u8])> = fields
        .iter()
        .map(|&(name, _)| (fingerprint(name), name))
        .collect();
    names.sort_unstable();
    match names.windows(2).find(|pair| pair.first() == pair.get(1)) {
        Some(pair) => Err(duplicate(pair.first().map_or(&[][..], |&(_, name)| name))),
        None => Ok(()),
    }
}

/// Documents with at most this many fields find duplicates in a table on
/// the stack (128 slots, 7 bits of fingerprint)…
const SMALL_FIELDS: usize = 64;

/// …when none of their names is longer than this (apport's keys are
/// shorter than 40 bytes).
const SMALL_NAME_BYTES: usize = 64;

/// A multiply-rotate hash of `name` in 8-byte words (FxHash's step), with
/// the length mixed in. Not keyed: a collision only costs a comparison.
fn fingerprint(name: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut words = name.chunks_exact(8);
    let mut h = u64::try_from(name.len()).unwrap_or(u64::MAX);
    for word in &mut words {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(word);
        h = mix(h, u64::from_le_bytes(raw));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut raw = [0u8; 8];
        if let Some(head) = raw.get_mut(..rest.len()) {
            head.copy_from_slice(rest);
        }
        h = mix(h, u64::from_le_bytes(raw));
    }
    h
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]

    use super::*;
    use crate::wire::{decode_untrusted, report_from_whoopsie_bson, report_to_whoopsie_bson};

    /// The two-step path this reader replaces, as the reference: a
    /// `bson::Document` first, then the report.
    fn two_pass(bytes: &[u8]) -> Result<Report, WireError> {
        let doc = decode_untrusted(bytes, &WireLimits::default())?;
        report_from_whoopsie_bson(&doc, &ReportLimits::default())
    }

    fn strings_doc(fields: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        for (name, value) in fields {
            out.push(BSON_STRING);
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.extend_from_slice(&i32::try_from(value.len() + 1).unwrap().to_le_bytes());
            out.extend_from_slice(value);
            out.push(0);
        }
        out.push(0);
        let len = i32::try_from(out.len()).unwrap().to_le_bytes();
        out[..4].copy_from_slice(&len);
        out
    }

    fn parse(bytes: &[u8]) -> Result<StringFields<'_>, WireError> {
        StringFields::parse(bytes, &WireLimits::default(), &ReportLimits::default())
    }

    fn testdata(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../shared/testdata/uploads/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn real_whoopsie_uploads_read_like_the_two_pass_decoder() {
        for name in [
            "signal_crash.bson",
            "python_crash.bson",
            "package_failure.bson",
        ] {
            let bytes = testdata(name);
            let fields = parse(&bytes).unwrap();
            let report = two_pass(&bytes).unwrap();
            assert_eq!(fields.to_report().unwrap(), report, "{name}");
            assert_eq!(fields.len(), report.len());
            assert_eq!(fields.get("Package"), report.get_str("Package"));
        }
    }

    #[test]
    fn a_report_round_trips_through_whoopsie_bson() {
        let mut report = Report::new();
        report.set("ProblemType", "Crash").unwrap();
        report.set("Stacktrace", "#0 main ()\n#1 start ()").unwrap();
        let bytes = report_to_whoopsie_bson(&report).unwrap();
        assert_eq!(parse(&bytes).unwrap().to_report().unwrap(), report);
    }

    #[test]
    fn the_empty_document_has_no_fields() {
        assert!(parse(&[5, 0, 0, 0, 0]).unwrap().is_empty());
    }

    #[test]
    fn length_prefix_must_equal_the_body() {
        let mut bytes = strings_doc(&[("A", b"x")]);
        assert!(matches!(
            parse(&bytes[..bytes.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
        bytes.push(0);
        assert!(matches!(
            parse(&bytes),
            Err(WireError::TrailingBytes { .. })
        ));
        assert!(matches!(parse(&[1, 2]), Err(WireError::TooShort { .. })));
        assert!(matches!(
            parse(&[0xff, 0xff, 0xff, 0xff, 0]),
            Err(WireError::BadLength { declared: -1 })
        ));
    }

    #[test]
    fn caps_apply_before_anything_is_read() {
        let bytes = strings_doc(&[("A", b"x")]);
        let wire = WireLimits {
            max_document_bytes: bytes.len() - 1,
            ..WireLimits::default()
        };
        assert!(matches!(
            StringFields::parse(&bytes, &wire, &ReportLimits::default()),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_string_length_past_the_document_is_refused() {
        let mut bytes = strings_doc(&[("A", b"xy")]);
        // "A\0" then the length at offset 7: claim far more than is there.
        bytes[7..11].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(WireError::Malformed(_))));
        bytes[7..11].copy_from_slice(&0i32.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(WireError::Malformed(_))));
        bytes[7..11].copy_from_slice(&(-5i32).to_le_bytes());
        assert!(matches!(parse(&bytes), Err(WireError::Malformed(_))));
    }

    #[test]
    fn a_string_that_swallows_the_final_nul_is_refused() {
        let mut bytes = strings_doc(&[("A", b"xy")]);
        bytes[7..11].copy_from_slice(&4i32.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(WireError::Malformed(_))));
    }

    #[test]
    fn nested_documents_and_other_types_are_refused_by_name() {
        let mut bytes = strings_doc(&[("Good", b"x"), ("Bad", b"y")]);
        // Turn the second field's tag into an embedded document.
        let second = 4 + 1 + 5 + 4 + 2;
        assert_eq!(bytes[second], BSON_STRING);
        bytes[second] = 0x03;
        assert_eq!(
            parse(&bytes),
            Err(WireError::NotAString {
                key: "Bad".into(),
                found: "document"
            })
        );
        bytes[second] = 0x7e;
        assert!(matches!(parse(&bytes), Err(WireError::Malformed(_))));
    }

    #[test]
    fn invalid_names_values_and_duplicates_are_refused() {
        assert!(matches!(
            parse(&strings_doc(&[("../etc", b"x")])),
            Err(WireError::InvalidKey { .. })
        ));
        assert!(matches!(
            parse(&strings_doc(&[("", b"x")])),
            Err(WireError::InvalidKey { .. })
        ));
        assert!(matches!(
            parse(&strings_doc(&[("A", b"a\0b")])),
            Err(WireError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse(&strings_doc(&[("A", b"\xff")])),
            Err(WireError::NotUtf8 { .. })
        ));
        assert_eq!(
            parse(&strings_doc(&[("A", b"1"), ("B", b"2"), ("A", b"3")])),
            Err(WireError::DuplicateField { key: "A".into() })
        );
    }

    #[test]
    fn a_repeated_name_is_found_in_small_and_large_documents() {
        // Up to SMALL_FIELDS names go through the table on the stack, more
        // through the sort; names share prefixes and lengths the way
        // apport's do (`Stacktrace`, `StacktraceTop`, …).
        for count in [
            2usize,
            3,
            22,
            SMALL_FIELDS - 1,
            SMALL_FIELDS,
            SMALL_FIELDS + 1,
            130,
        ] {
            let names: Vec<String> = (0..count).map(|i| format!("Stacktrace{i}")).collect();
            let fields: Vec<(&str, &[u8])> =
                names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
            assert_eq!(parse(&strings_doc(&fields)).unwrap().len(), count);
            for (first, again) in [(0, count - 1), (count / 2, count / 2), (count - 1, 0)] {
                let mut repeated = fields.clone();
                repeated.insert(again, fields[first]);
                assert_eq!(
                    parse(&strings_doc(&repeated)),
                    Err(WireError::DuplicateField {
                        key: names[first].clone()
                    }),
                    "{count} fields, {first} again at {again}"
                );
            }
        }
    }

    #[test]
    fn a_repeated_long_name_is_found_by_the_sort() {
        // A name over SMALL_NAME_BYTES sends even a short document to the sort.
        let long = "L".repeat(SMALL_NAME_BYTES + 1);
        let fields: Vec<(&str, &[u8])> = vec![("A", b"1"), (&long, b"2"), ("B", b"3")];
        let bytes = strings_doc(&fields);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.get(&long), Some("2"));
        let mut repeated = fields.clone();
        repeated.push((&long, b"4"));
        assert_eq!(
            parse(&strings_doc(&repeated)),
            Err(WireError::DuplicateField { key: long.clone() })
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_named_as_such() {
        let mut bytes = strings_doc(&[("AB", b"x")]);
        bytes[5] = 0xff;
        assert_eq!(
            parse(&bytes),
            Err(WireError::Malformed(
                "field name is not UTF-8 at byte 5".into()
            ))
        );
        bytes[4] = 0x10;
        assert_eq!(
            parse(&bytes),
            Err(WireError::Malformed(
                "field name is not UTF-8 at byte 5".into()
            ))
        );
    }

    #[test]
    fn key_count_and_value_size_caps_hold() {
        let names: Vec<String> = (0..11).map(|i| format!("K{i}")).collect();
        let fields: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
        let bytes = strings_doc(&fields);
        let limits = ReportLimits {
            max_keys: 10,
            ..ReportLimits::default()
        };
        assert_eq!(
            StringFields::parse(&bytes, &WireLimits::default(), &limits),
            Err(WireError::TooManyKeys { max: 10 })
        );
        let wire = WireLimits {
            max_fields: 5,
            ..WireLimits::default()
        };
        assert_eq!(
            StringFields::parse(&bytes, &wire, &ReportLimits::default()),
            Err(WireError::TooManyFields { max: 5 })
        );
        let limits = ReportLimits {
            max_value_bytes: 2,
            ..ReportLimits::default()
        };
        assert!(matches!(
            StringFields::parse(
                &strings_doc(&[("A", b"abc")]),
                &WireLimits::default(),
                &limits
            ),
            Err(WireError::ValueTooLarge { .. })
        ));
    }

    #[test]
    fn every_truncation_of_a_real_upload_is_refused_without_panic() {
        let bytes = testdata("signal_crash.bson");
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
            // Same cut with a matching prefix: the inner lengths now lie.
            let mut lying = bytes[..cut].to_vec();
            if lying.len() >= 5 {
                let len = i32::try_from(lying.len()).unwrap().to_le_bytes();
                lying[..4].copy_from_slice(&len);
                let last = lying.len() - 1;
                lying[last] = 0;
                let _ = parse(&lying);
            }
        }
    }

    #[test]
    fn agrees_with_the_two_pass_decoder_on_every_single_byte_flip() {
        let bytes = testdata("package_failure.bson");
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut mutated = bytes.clone();
                mutated[at] ^= flip;
                let one = parse(&mutated).map(|f| f.to_report().unwrap());
                let two = two_pass(&mutated);
                assert_eq!(one.is_ok(), two.is_ok(), "byte {at} ^ {flip:#x}");
                if let (Ok(one), Ok(two)) = (one, two) {
                    assert_eq!(one, two, "byte {at} ^ {flip:#x}");
                }
            }
        }
    }
}
