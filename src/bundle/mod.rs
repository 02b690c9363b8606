//! Signed hook bundles and the key ring that verifies them.
//!
//! A bundle is the canonical BSON of a [`BundlePayload`] (a validated hook
//! plus its id, version, target, `issued_at` and `not_after`), signed with
//! minisign (Ed25519 over BLAKE2b-512) and framed with its signature in one
//! file (see [`frame_bundle`]). daisy signs ([`sign_bundle`], feature `sign`);
//! clients verify with [`KeyRing::verify`], which checks the signature over
//! the exact bytes before it parses anything. The byte layout and the trust
//! rules are in `docs/formats.md`.

mod container;
mod key_id;
mod keyring;
mod payload;
pub(crate) mod regular_file;
#[cfg(feature = "sign")]
mod sign;
mod verify;

use std::path::Path;

pub use container::{
    BUNDLE_MAGIC, CONTAINER_VERSION, ContainerError, HEADER_BYTES, MAX_BUNDLE_BYTES,
    MAX_SIGNATURE_BYTES, MAX_TRUSTED_COMMENT_BYTES, SIGNATURE_UNTRUSTED_COMMENT, frame_bundle,
};
pub use key_id::{KeyId, KeyIdParseError};
pub use keyring::{
    DEFAULT_KEY_DIR, DEFAULT_KEY_DIRS, DEFAULT_REVOKED_KEYS, KeyRing, KeyRingError, LOCAL_KEY_DIR,
    MAX_KEY_FILES_PER_DIR, MAX_PUBLIC_KEY_FILE_BYTES, MAX_REVOCATION_LIST_BYTES, SkippedKeyFile,
};
pub use payload::{
    BUNDLE_FORMAT, BundlePayload, MAX_BUNDLE_DAYS, MAX_BUNDLE_ID_BYTES, MAX_BUNDLE_LIFETIME_SECS,
    MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, MAX_PAYLOAD_FIELDS, PayloadError, check_bundle_id,
};
pub use regular_file::{RegularFileError, check_trusted_dir};
#[cfg(feature = "sign")]
pub use sign::{
    GeneratedKeyPair, SECRET_KEY_COMMENT, SecretKey, SignError, generate_key_pair, key_id_of,
    load_secret_key, sign_bundle,
};
pub use verify::{BundleError, CLOCK_SKEW_SECS, VerifiedBundle};

/// Reads a bundle file: not through a symlink, a regular file, at most
/// [`MAX_BUNDLE_BYTES`].
pub fn read_bundle_file(path: &Path) -> Result<Vec<u8>, RegularFileError> {
    regular_file::read_regular_file(path, MAX_BUNDLE_BYTES as u64)
}
