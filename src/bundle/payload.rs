//! The signed payload of a bundle and its canonical BSON encoding.
//!
//! The payload is the BSON document of [`BundlePayload`] as serde writes it:
//! fields in struct order, the hook's `when` conditions sorted (a
//! `BTreeMap`), integers as BSON int64. The same payload always gives the same
//! bytes, so the server's content hash, the signature and the client's
//! re-encoding all agree. Decoding is strict: after the signature has been
//! checked, the bytes must pass the wire module's untrusted-BSON checks
//! (size, length prefix, depth, field count, no duplicate names) and must
//! re-encode to exactly the same bytes (no unknown fields, no other BSON
//! types or integer widths, no other field order).

use bson::RawBsonRef;
use serde::{Deserialize, Serialize};

use crate::hook::{Hook, Target};
use crate::wire::{WireLimits, check_raw};

/// The only payload format this code reads and writes.
pub const BUNDLE_FORMAT: u32 = 1;

/// Largest payload accepted, in bytes. A hook is a few kilobytes; this is
/// far above any real one and far below what would hurt a client.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Deepest nesting of documents and arrays accepted in a payload, the
/// payload itself being level 1 (the format uses 6: payload, hook, `steps`,
/// step, action, argv).
pub const MAX_PAYLOAD_DEPTH: usize = 8;

/// Most BSON elements accepted in a payload, counted over all levels (a
/// hook of 64 steps has about a thousand).
pub const MAX_PAYLOAD_FIELDS: usize = 16_384;

const PAYLOAD_LIMITS: WireLimits = WireLimits {
    max_document_bytes: MAX_PAYLOAD_BYTES,
    max_depth: MAX_PAYLOAD_DEPTH,
    max_fields: MAX_PAYLOAD_FIELDS,
};

/// Longest validity of a bundle, in days (`not_after - issued_at`).
///
/// daisy never signs a longer one, and clients refuse one: a signed bundle
/// can be replayed until it expires, even after the server withdrew the hook,
/// so a server bug or a hand-made signature with `not_after` far away (say
/// `i64::MAX`) must not yield a hook that runs forever.
pub const MAX_BUNDLE_DAYS: u32 = 90;

/// [`MAX_BUNDLE_DAYS`] in seconds.
pub const MAX_BUNDLE_LIFETIME_SECS: i64 = 90 * 86_400;

/// Longest bundle id accepted, in bytes.
pub const MAX_BUNDLE_ID_BYTES: usize = 128;

/// What a bundle carries: the hook and what the server says about it.
///
/// Field order is part of the signed format (see `docs/formats.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlePayload {
    /// Payload format version, always [`BUNDLE_FORMAT`].
    pub format: u32,
    /// The server's opaque id of the hook: 1 to [`MAX_BUNDLE_ID_BYTES`] bytes of
    /// `[A-Za-z0-9._-]`, not starting with `.`. Clients look hooks up by this
    /// id, never by a path built from report data (CVE-2016-9950), and the
    /// charset keeps it safe to use as a file name.
    pub id: String,
    /// The hook's version on the server; any edit makes a new version.
    pub version: u32,
    /// The hook's target, repeated outside `hook` so a client can match it
    /// against a crash without looking into the hook. Always equal to
    /// `hook.target`.
    pub target: Target,
    /// When the server signed the bundle, Unix seconds.
    pub issued_at: i64,
    /// The bundle must not be used after this time, Unix seconds.
    pub not_after: i64,
    /// The validated hook.
    pub hook: Hook,
}

/// Why bytes are not a payload this code accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not a well-formed, canonical, consistent payload.
    #[error("bundle payload is malformed: {0}")]
    Malformed(String),
    /// A well-formed document whose `format` this code does not know.
    #[error("bundle payload format {0} is not supported (this build reads format {BUNDLE_FORMAT})")]
    UnsupportedFormat(i64),
}

impl BundlePayload {
    /// A format-[`BUNDLE_FORMAT`] payload for `hook`, with `target` copied
    /// from the hook.
    pub fn new(id: String, version: u32, hook: Hook, issued_at: i64, not_after: i64) -> Self {
        Self {
            format: BUNDLE_FORMAT,
            id,
            version,
            target: hook.target.clone(),
            issued_at,
            not_after,
            hook,
        }
    }

    /// The canonical BSON bytes that get signed.
    ///
    /// Refuses payloads the verifier would refuse (bad id, `issued_at`
    /// negative, `not_after` before `issued_at` or more than
    /// [`MAX_BUNDLE_DAYS`] after it, target not the hook's, too large), so a server
    /// cannot sign a bundle no client accepts.
    pub fn to_canonical_bson(&self) -> Result<Vec<u8>, PayloadError> {
        if self.format != BUNDLE_FORMAT {
            return Err(PayloadError::UnsupportedFormat(i64::from(self.format)));
        }
        self.check_consistency()?;
        let bytes = bson::serialize_to_vec(self)
            .map_err(|e| PayloadError::Malformed(format!("cannot encode as BSON: {e}")))?;
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(PayloadError::Malformed(format!(
                "encoded payload is {} bytes, more than the {MAX_PAYLOAD_BYTES}-byte cap",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Decodes payload bytes strictly. Call it only on bytes whose signature
    /// has been verified: it is bounded and panic-free on any input, but its
    /// job is to catch server bugs and format drift, not attackers.
    pub fn from_canonical_bson(bytes: &[u8]) -> Result<Self, PayloadError> {
        let malformed = |what: String| PayloadError::Malformed(what);
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(malformed(format!(
                "{} bytes, more than the {MAX_PAYLOAD_BYTES}-byte cap",
                bytes.len()
            )));
        }
        // The wire module's untrusted-BSON checks: length prefix against the
        // slice, depth, field count, no duplicate names; nothing allocated.
        let doc = check_raw(bytes, &PAYLOAD_LIMITS).map_err(|e| malformed(e.to_string()))?;
        let format = match doc.iter().next() {
            Some(Ok((key, RawBsonRef::Int64(v)))) if key.as_str() == "format" => v,
            Some(Ok((key, RawBsonRef::Int32(v)))) if key.as_str() == "format" => i64::from(v),
            _ => {
                return Err(malformed(
                    "the first field is not an integer `format`".into(),
                ));
            }
        };
        if format != i64::from(BUNDLE_FORMAT) {
            return Err(PayloadError::UnsupportedFormat(format));
        }
        let payload: Self = bson::deserialize_from_slice(bytes)
            .map_err(|e| malformed(format!("does not match format {BUNDLE_FORMAT}: {e}")))?;
        let again = bson::serialize_to_vec(&payload)
            .map_err(|e| malformed(format!("cannot be re-encoded: {e}")))?;
        if again != bytes {
            return Err(malformed(
                "not in canonical form (unknown or duplicate fields, or other integer widths)"
                    .into(),
            ));
        }
        payload.check_consistency()?;
        Ok(payload)
    }

    fn check_consistency(&self) -> Result<(), PayloadError> {
        check_bundle_id(&self.id).map_err(PayloadError::Malformed)?;
        if self.target != self.hook.target {
            return Err(PayloadError::Malformed(
                "`target` differs from the hook's own target".into(),
            ));
        }
        if self.issued_at < 0 {
            return Err(PayloadError::Malformed(format!(
                "`issued_at` ({}) is before 1970",
                self.issued_at
            )));
        }
        if self.not_after < self.issued_at {
            return Err(PayloadError::Malformed(format!(
                "`not_after` ({}) is before `issued_at` ({})",
                self.not_after, self.issued_at
            )));
        }
        // issued_at >= 0 and not_after >= issued_at: the difference cannot
        // overflow, but stay checked.
        let lifetime = self.not_after.checked_sub(self.issued_at);
        if lifetime.is_none_or(|secs| secs > MAX_BUNDLE_LIFETIME_SECS) {
            return Err(PayloadError::Malformed(format!(
                "valid from {} to {}, longer than {MAX_BUNDLE_DAYS} days",
                self.issued_at, self.not_after
            )));
        }
        Ok(())
    }
}

/// Checks a bundle id: 1 to [`MAX_BUNDLE_ID_BYTES`] bytes of `[A-Za-z0-9._-]`,
/// not starting with `.`. The error says what is wrong.
pub fn check_bundle_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_BUNDLE_ID_BYTES {
        return Err(format!(
            "bundle id must be 1 to {MAX_BUNDLE_ID_BYTES} bytes long, got {}",
            id.len()
        ));
    }
    if id.starts_with('.') {
        return Err("bundle id must not start with `.`".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "bundle id may hold only ASCII letters, digits, `.`, `_` and `-`, not {c:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::hook::{Action, Condition, HookLimits, RunAs, Step};

    fn hook() -> Hook {
        let mut when = BTreeMap::new();
        when.insert(
            "DistroRelease".to_string(),
            Condition::OneOf(vec!["Ubuntu 24.04".into(), "Ubuntu 24.10".into()]),
        );
        when.insert(
            "Package".to_string(),
            Condition::Matches("^lightdm ".into()),
        );
        Hook {
            name: "lightdm-seat-start".into(),
            description: "Why we need this data".into(),
            target: Target::Package("lightdm".into()),
            when,
            limits: HookLimits {
                reports: 10,
                days: 7,
            },
            steps: vec![Step {
                key: "LightdmLog".into(),
                run_as: RunAs::Root,
                optional: true,
                replaces: false,
                max_bytes: 1_048_576,
                timeout_secs: 10,
                action: Action::File("/var/log/lightdm/lightdm.log".into()),
            }],
        }
    }

    fn payload() -> BundlePayload {
        BundlePayload::new("hook-42".into(), 3, hook(), 1_700_000_000, 1_700_600_000)
    }

    #[test]
    fn same_payload_gives_same_bytes_and_decodes_back() {
        let a = payload().to_canonical_bson().unwrap();
        let b = payload().clone().to_canonical_bson().unwrap();
        assert_eq!(a, b);
        assert_eq!(BundlePayload::from_canonical_bson(&a).unwrap(), payload());
    }

    #[test]
    fn unknown_field_is_not_canonical() {
        let mut doc = bson::serialize_to_document(&payload()).unwrap();
        doc.insert("extra", "x");
        let bytes = bson::serialize_to_vec(&doc).unwrap();
        let err = BundlePayload::from_canonical_bson(&bytes).unwrap_err();
        assert!(matches!(err, PayloadError::Malformed(m) if m.contains("canonical")));
    }

    #[test]
    fn other_bson_types_and_duplicate_fields_are_refused() {
        let mut doc = bson::serialize_to_document(&payload()).unwrap();
        doc.insert("version", 3.0_f64);
        let bytes = bson::serialize_to_vec(&doc).unwrap();
        assert!(BundlePayload::from_canonical_bson(&bytes).is_err());

        // Append a second `id` by hand: `Document` would not keep both.
        let good = payload().to_canonical_bson().unwrap();
        let mut dup = good[..good.len() - 1].to_vec();
        dup.extend_from_slice(b"\x02id\0\x02\0\0\0x\0\0");
        let len = i32::try_from(dup.len()).unwrap().to_le_bytes();
        dup[..4].copy_from_slice(&len);
        assert!(matches!(
            BundlePayload::from_canonical_bson(&dup),
            Err(PayloadError::Malformed(m)) if m.contains("twice")
        ));
    }

    #[test]
    fn other_format_is_unsupported() {
        let mut doc = bson::serialize_to_document(&payload()).unwrap();
        doc.insert("format", 2_i64);
        let bytes = bson::serialize_to_vec(&doc).unwrap();
        assert_eq!(
            BundlePayload::from_canonical_bson(&bytes),
            Err(PayloadError::UnsupportedFormat(2))
        );
    }

    #[test]
    fn target_must_match_the_hooks_target() {
        let mut p = payload();
        p.target = Target::Package("other".into());
        assert!(p.to_canonical_bson().is_err());
        let bytes = bson::serialize_to_vec(&p).unwrap();
        assert!(matches!(
            BundlePayload::from_canonical_bson(&bytes),
            Err(PayloadError::Malformed(m)) if m.contains("target")
        ));
    }

    #[test]
    fn bad_ids_are_refused() {
        for id in ["", ".hidden", "a/b", "../x", "a b", &"x".repeat(129)] {
            let mut p = payload();
            p.id = id.to_string();
            assert!(p.to_canonical_bson().is_err(), "{id:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut inner = bson::doc! {};
        for _ in 0..20 {
            inner = bson::doc! { "x": inner };
        }
        let doc = bson::doc! { "format": 1_i64, "deep": inner };
        let bytes = bson::serialize_to_vec(&doc).unwrap();
        assert!(matches!(
            BundlePayload::from_canonical_bson(&bytes),
            Err(PayloadError::Malformed(m)) if m.contains("deeper than 8")
        ));
    }

    #[test]
    fn wrong_length_prefix_is_refused() {
        let mut bytes = payload().to_canonical_bson().unwrap();
        bytes[0] = bytes[0].wrapping_add(1);
        assert!(BundlePayload::from_canonical_bson(&bytes).is_err());
    }
}
