//! The bundle file: a small header, the minisign signature text, the payload.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "APHB"
//! 4       1     container version, 1
//! 5       4     S = signature length, u32 big-endian, 1..=MAX_SIGNATURE_BYTES
//! 9       S     minisign signature text (4 lines, canonical form, see below)
//! 9+S     P     payload: the exact bytes that were signed, rest of the file
//! ```
//!
//! The verifier splits signature and payload from this framing alone; it
//! never parses the payload to find the signature, so nothing in the payload
//! is interpreted before the signature over it has been checked.
//!
//! The signature text must be exactly what minisign writes, with a fixed
//! untrusted comment: minisign does not sign its untrusted comment, so a
//! free-form one would let bytes change without the signature noticing. Both
//! base64 lines must be canonical (padding and unused bits zero) for the same
//! reason.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::key_id::KeyId;
use super::payload::MAX_PAYLOAD_BYTES;

/// The 4 bytes every bundle file starts with.
pub const BUNDLE_MAGIC: [u8; 4] = *b"APHB";

/// The container version this code reads and writes.
pub const CONTAINER_VERSION: u8 = 1;

/// Largest minisign signature text accepted, in bytes.
pub const MAX_SIGNATURE_BYTES: usize = 1024;

/// Longest trusted comment accepted (after `trusted comment: `), in bytes.
pub const MAX_TRUSTED_COMMENT_BYTES: usize = 256;

/// The first line of every bundle signature. minisign does not sign it, so
/// it is fixed.
pub const SIGNATURE_UNTRUSTED_COMMENT: &str = "untrusted comment: apport-hooks bundle signature";

/// Bytes before the signature text: magic, version, length.
pub const HEADER_BYTES: usize = 9;

/// Largest bundle file accepted, in bytes.
pub const MAX_BUNDLE_BYTES: usize = HEADER_BYTES + MAX_SIGNATURE_BYTES + MAX_PAYLOAD_BYTES;

const TRUSTED_COMMENT_PREFIX: &str = "trusted comment: ";

/// How a minisign signature was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureAlgorithm {
    /// `ED`: Ed25519 over the BLAKE2b-512 of the data (current minisign).
    Prehashed,
    /// `Ed`: Ed25519 over the raw data (legacy minisign); refused.
    Legacy,
}

/// A bundle file split into its parts, nothing verified yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitBundle<'a> {
    /// The minisign signature text, canonical.
    pub signature_text: &'a str,
    /// Which algorithm the signature claims.
    pub algorithm: SignatureAlgorithm,
    /// The key the signature claims to be from.
    pub key_id: KeyId,
    /// The signed bytes.
    pub payload: &'a [u8],
}

/// Why bytes are not a bundle container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContainerError(pub String);

fn bad(what: impl Into<String>) -> ContainerError {
    ContainerError(what.into())
}

/// Frames a minisign signature text and the payload it signs into a bundle
/// file. Refuses parts the verifier would refuse.
pub fn frame_bundle(signature_text: &str, payload: &[u8]) -> Result<Vec<u8>, ContainerError> {
    parse_signature_text(signature_text)?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(bad(format!(
            "payload is {} bytes, more than the {MAX_PAYLOAD_BYTES}-byte cap",
            payload.len()
        )));
    }
    let sig_len = u32::try_from(signature_text.len())
        .map_err(|_| bad("signature text does not fit a u32 length"))?;
    let total = HEADER_BYTES
        .checked_add(signature_text.len())
        .and_then(|n| n.checked_add(payload.len()))
        .ok_or_else(|| bad("bundle size overflows"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&BUNDLE_MAGIC);
    out.push(CONTAINER_VERSION);
    out.extend_from_slice(&sig_len.to_be_bytes());
    out.extend_from_slice(signature_text.as_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits a bundle file into signature and payload, checking every length
/// against its cap and the signature text's canonical form. Reads nothing of
/// the payload but its length.
pub(crate) fn split_bundle(bytes: &[u8]) -> Result<SplitBundle<'_>, ContainerError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(bad(format!(
            "file is {} bytes, more than the {MAX_BUNDLE_BYTES}-byte cap",
            bytes.len()
        )));
    }
    let (magic, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("file is shorter than the bundle header"))?;
    if *magic != BUNDLE_MAGIC {
        return Err(bad("file does not start with the bundle magic `APHB`"));
    }
    let (version, rest) = rest
        .split_first()
        .ok_or_else(|| bad("file is shorter than the bundle header"))?;
    if *version != CONTAINER_VERSION {
        return Err(bad(format!(
            "container version {version} is not supported (this build reads {CONTAINER_VERSION})"
        )));
    }
    let (sig_len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("file is shorter than the bundle header"))?;
    let sig_len = usize::try_from(u32::from_be_bytes(*sig_len))
        .map_err(|_| bad("signature length does not fit in memory"))?;
    if sig_len == 0 || sig_len > MAX_SIGNATURE_BYTES {
        return Err(bad(format!(
            "signature length {sig_len} is outside 1..={MAX_SIGNATURE_BYTES}"
        )));
    }
    if sig_len > rest.len() {
        return Err(bad(format!(
            "signature length {sig_len} runs past the end of the file"
        )));
    }
    let (sig, payload) = rest.split_at(sig_len);
    let signature_text =
        std::str::from_utf8(sig).map_err(|_| bad("signature text is not UTF-8"))?;
    let (algorithm, key_id) = parse_signature_text(signature_text)?;
    if payload.is_empty() {
        return Err(bad("bundle has no payload"));
    }
    Ok(SplitBundle {
        signature_text,
        algorithm,
        key_id,
        payload,
    })
}

/// Checks that `text` is a canonical minisign signature with the fixed
/// untrusted comment; returns its algorithm and key id.
fn parse_signature_text(text: &str) -> Result<(SignatureAlgorithm, KeyId), ContainerError> {
    if text.len() > MAX_SIGNATURE_BYTES {
        return Err(bad(format!(
            "signature text is longer than {MAX_SIGNATURE_BYTES} bytes"
        )));
    }
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| bad("signature text does not end with a newline"))?;
    let lines: Vec<&str> = body.split('\n').collect();
    let [untrusted, sig_b64, trusted, global_b64] = lines.as_slice() else {
        return Err(bad(format!(
            "signature text has {} lines, minisign writes 4",
            lines.len()
        )));
    };
    if *untrusted != SIGNATURE_UNTRUSTED_COMMENT {
        return Err(bad(format!(
            "signature's untrusted comment is not `{SIGNATURE_UNTRUSTED_COMMENT}`"
        )));
    }
    let sig = STANDARD
        .decode(sig_b64)
        .map_err(|_| bad("signature line is not canonical base64"))?;
    let [a0, a1, k0, k1, k2, k3, k4, k5, k6, k7, ..] = sig.as_slice() else {
        return Err(bad("signature line is too short"));
    };
    if sig.len() != 74 {
        return Err(bad(format!(
            "signature line holds {} bytes, minisign writes 74",
            sig.len()
        )));
    }
    let algorithm = match [*a0, *a1] {
        [b'E', b'D'] => SignatureAlgorithm::Prehashed,
        [b'E', b'd'] => SignatureAlgorithm::Legacy,
        _ => return Err(bad("signature algorithm is neither `ED` nor `Ed`")),
    };
    let key_id = KeyId::from_bytes([*k0, *k1, *k2, *k3, *k4, *k5, *k6, *k7]);
    let comment = trusted
        .strip_prefix(TRUSTED_COMMENT_PREFIX)
        .ok_or_else(|| bad("third signature line is not a trusted comment"))?;
    if comment.len() > MAX_TRUSTED_COMMENT_BYTES || comment.contains('\r') {
        return Err(bad(format!(
            "trusted comment is longer than {MAX_TRUSTED_COMMENT_BYTES} bytes or holds a CR"
        )));
    }
    let global = STANDARD
        .decode(global_b64)
        .map_err(|_| bad("global signature line is not canonical base64"))?;
    if global.len() != 64 {
        return Err(bad(format!(
            "global signature holds {} bytes, minisign writes 64",
            global.len()
        )));
    }
    Ok((algorithm, key_id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    // A real prehashed minisign signature (minisign-verify's test vector),
    // with the untrusted comment replaced by ours (it is not signed).
    fn signature_text() -> String {
        format!(
            "{SIGNATURE_UNTRUSTED_COMMENT}\n\
             RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\n\
             trusted comment: timestamp:1556193335\tfile:test\n\
             y/rUw2y8/hOUYjZU71eHp/Wo1KZ40fGy2VJEDl34XMJM+TX48Ss/17u3IvIfbVR1FkZZSNCisQbuQY+bHwhEBg==\n"
        )
    }

    #[test]
    fn frame_then_split_gives_the_parts_back() {
        let sig = signature_text();
        let bytes = frame_bundle(&sig, b"test").unwrap();
        assert_eq!(&bytes[..5], b"APHB\x01");
        let split = split_bundle(&bytes).unwrap();
        assert_eq!(split.signature_text, sig);
        assert_eq!(split.payload, b"test");
        assert_eq!(split.algorithm, SignatureAlgorithm::Prehashed);
        assert_eq!(split.key_id.to_string(), "E7620F1842B4E81F");
    }

    #[test]
    fn lengths_past_the_end_or_over_the_cap_are_refused() {
        let sig = signature_text();
        let mut bytes = frame_bundle(&sig, b"test").unwrap();
        bytes[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(split_bundle(&bytes).is_err());
        let len = u32::try_from(sig.len() + 4).unwrap();
        bytes[5..9].copy_from_slice(&len.to_be_bytes());
        assert!(split_bundle(&bytes).is_err());
        assert!(split_bundle(b"APHB\x01\0\0").is_err());
        assert!(split_bundle(b"").is_err());
    }

    #[test]
    fn non_canonical_signature_text_is_refused() {
        let sig = signature_text();
        for variant in [
            sig.replace("apport-hooks bundle signature", "anything else"),
            sig.replace('\n', "\r\n"),
            sig.trim_end().to_string(),
            format!("{sig}extra line\n"),
            // Non-zero unused bits in the last base64 character.
            sig.replace("Zwo=", "Zwp="),
        ] {
            assert!(frame_bundle(&variant, b"test").is_err(), "{variant:?}");
        }
    }
}
