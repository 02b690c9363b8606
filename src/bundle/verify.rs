//! Verifying a bundle: signature first, then the payload, then the clock.

use sha2::{Digest, Sha256};

use super::container::{ContainerError, SignatureAlgorithm, split_bundle};
use super::key_id::KeyId;
use super::keyring::KeyRing;
use super::payload::{BUNDLE_FORMAT, BundlePayload, PayloadError};
use crate::hook::{Hook, Target};

/// How far the client's clock may be off, in seconds: a bundle is accepted
/// from `issued_at - CLOCK_SKEW_SECS` until `not_after + CLOCK_SKEW_SECS`.
/// Five minutes covers machines without NTP sync for a while, and is small
/// next to the days a bundle is valid.
pub const CLOCK_SKEW_SECS: i64 = 300;

/// Why a bundle is refused. Each reason has its own variant and its own
/// [`BundleError::code`], and every message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The file is not a bundle container (bad magic, lengths, signature text).
    #[error("not a valid hook bundle file: {0}; fetch the bundle again from the server")]
    MalformedContainer(ContainerError),
    /// The signing key is not in any trusted key directory.
    #[error(
        "the bundle is signed by key {key_id}, which is not trusted; if you trust the server, \
         install its public key (daisy.pub) into /etc/apport-hooks/keys.d/"
    )]
    UnknownKey {
        /// The key the signature names.
        key_id: KeyId,
    },
    /// The signing key is on the revocation list.
    #[error(
        "the bundle is signed by key {key_id}, which is revoked; the server must re-sign the \
         hook with a current key"
    )]
    RevokedKey {
        /// The revoked key.
        key_id: KeyId,
    },
    /// The signature does not match the bytes: tampered or corrupted.
    #[error(
        "the signature by key {key_id} does not match the bundle's content (tampered or \
         corrupted); do not use this file, fetch the bundle again from the server"
    )]
    BadSignature {
        /// The key the signature names.
        key_id: KeyId,
    },
    /// A legacy (non-prehashed) minisign signature.
    #[error(
        "the bundle has a legacy minisign signature (algorithm `Ed`, key {key_id}), which is \
         refused; the server must re-sign it with a current minisign or daisy"
    )]
    LegacySignature {
        /// The key the signature names.
        key_id: KeyId,
    },
    /// Correctly signed, but the payload is not a valid format-1 payload.
    #[error(
        "the bundle is correctly signed but its payload is malformed ({0}); report this to the \
         server's operators"
    )]
    PayloadMalformed(String),
    /// Correctly signed, in a payload format this build does not read.
    #[error(
        "the bundle's payload format {found} is not supported (this build reads format \
         {BUNDLE_FORMAT}); upgrade apport-hooks"
    )]
    UnsupportedFormat {
        /// The format number in the payload.
        found: i64,
    },
    /// Past `not_after` (plus the clock skew allowance).
    #[error(
        "the bundle expired at {not_after} (Unix time; now {now}); fetch a fresh bundle from \
         the server, or check this machine's clock"
    )]
    Expired {
        /// The payload's `not_after`.
        not_after: i64,
        /// The time the check used.
        now: i64,
    },
    /// Before `issued_at` (minus the clock skew allowance).
    #[error(
        "the bundle is issued at {issued_at} (Unix time), in the future (now {now}); check \
         this machine's clock"
    )]
    NotYetValid {
        /// The payload's `issued_at`.
        issued_at: i64,
        /// The time the check used.
        now: i64,
    },
}

impl BundleError {
    /// A stable, machine-readable name for the reason, for `--json` output
    /// and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedContainer(_) => "malformed-container",
            Self::UnknownKey { .. } => "unknown-key",
            Self::RevokedKey { .. } => "revoked-key",
            Self::BadSignature { .. } => "bad-signature",
            Self::LegacySignature { .. } => "legacy-signature",
            Self::PayloadMalformed(_) => "payload-malformed",
            Self::UnsupportedFormat { .. } => "unsupported-format",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not-yet-valid",
        }
    }
}

/// A bundle whose signature, payload and validity period have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    payload: BundlePayload,
    key_id: KeyId,
    sha256: [u8; 32],
}

impl VerifiedBundle {
    /// The whole verified payload.
    pub fn payload(&self) -> &BundlePayload {
        &self.payload
    }

    /// Takes the verified payload out.
    pub fn into_payload(self) -> BundlePayload {
        self.payload
    }

    /// The server's id of the hook.
    pub fn id(&self) -> &str {
        &self.payload.id
    }

    /// The hook's version.
    pub fn version(&self) -> u32 {
        self.payload.version
    }

    /// What the hook targets (equal to `hook().target`).
    pub fn target(&self) -> &Target {
        &self.payload.target
    }

    /// When the server signed it, Unix seconds.
    pub fn issued_at(&self) -> i64 {
        self.payload.issued_at
    }

    /// When it stops being valid, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.payload.not_after
    }

    /// The hook.
    pub fn hook(&self) -> &Hook {
        &self.payload.hook
    }

    /// The key that signed it.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// SHA-256 of the whole bundle file, as given to [`KeyRing::verify`].
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// [`VerifiedBundle::sha256`] as 64 lower-case hex digits.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

impl KeyRing {
    /// Verifies a bundle file's bytes at time `now` (Unix seconds).
    ///
    /// Order matters: the container is split by its framing alone, the
    /// signature is checked over the exact payload bytes with
    /// `minisign-verify` (legacy signatures refused), and only then is the
    /// payload parsed, strictly. A bundle from an unknown or revoked key, or
    /// with a bad signature, is never parsed at all: the BSON decoder is not
    /// exposed to anyone who does not hold a trusted key.
    pub fn verify(&self, bundle_bytes: &[u8], now: i64) -> Result<VerifiedBundle, BundleError> {
        let split = split_bundle(bundle_bytes).map_err(BundleError::MalformedContainer)?;
        let key_id = split.key_id;
        if split.algorithm == SignatureAlgorithm::Legacy {
            return Err(BundleError::LegacySignature { key_id });
        }
        if self.is_revoked(key_id) {
            return Err(BundleError::RevokedKey { key_id });
        }
        let trusted = self
            .keys
            .get(&key_id)
            .ok_or(BundleError::UnknownKey { key_id })?;
        let signature = minisign_verify::Signature::decode(split.signature_text).map_err(|e| {
            BundleError::MalformedContainer(ContainerError(format!("bad minisign signature: {e}")))
        })?;
        trusted
            .key
            .verify(split.payload, &signature, false)
            .map_err(|e| match e {
                minisign_verify::Error::UnexpectedAlgorithm
                | minisign_verify::Error::UnsupportedLegacyMode => {
                    BundleError::LegacySignature { key_id }
                }
                _ => BundleError::BadSignature { key_id },
            })?;

        let payload = BundlePayload::from_canonical_bson(split.payload).map_err(|e| match e {
            PayloadError::UnsupportedFormat(found) => BundleError::UnsupportedFormat { found },
            PayloadError::Malformed(what) => BundleError::PayloadMalformed(what),
        })?;
        if now < payload.issued_at.saturating_sub(CLOCK_SKEW_SECS) {
            return Err(BundleError::NotYetValid {
                issued_at: payload.issued_at,
                now,
            });
        }
        if now > payload.not_after.saturating_add(CLOCK_SKEW_SECS) {
            return Err(BundleError::Expired {
                not_after: payload.not_after,
                now,
            });
        }
        Ok(VerifiedBundle {
            payload,
            key_id,
            sha256: Sha256::digest(bundle_bytes).into(),
        })
    }
}
