//! Signing bundles and making signing keys (feature `sign`, used by daisy).
//!
//! Secret keys are minisign secret key files, unencrypted (like `minisign -G
//! -W`): daisy signs without a human at hand, so a password would have to sit
//! next to the key anyway. The file's mode (0600, set when `daisy keygen`
//! creates it) is what protects it. A key encrypted with an empty password
//! is accepted too.

use std::io::Cursor;

pub use minisign::SecretKey;

use super::container::{ContainerError, SIGNATURE_UNTRUSTED_COMMENT, frame_bundle};
use super::key_id::KeyId;
use super::payload::{BundlePayload, PayloadError};

/// The untrusted comment `daisy keygen` writes into the secret key file.
pub const SECRET_KEY_COMMENT: &str =
    "daisy hook bundle signing key, unencrypted: keep this file mode 0600";

/// Why signing or key handling failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The payload cannot be encoded (see the message).
    #[error("cannot sign this payload: {0}")]
    Payload(#[from] PayloadError),
    /// The signature or payload does not fit the container.
    #[error("cannot frame the bundle: {0}")]
    Container(#[from] ContainerError),
    /// minisign failed.
    #[error("minisign failed: {0}")]
    Minisign(String),
    /// The secret key file is not a usable minisign secret key.
    #[error(
        "not a usable minisign secret key ({0}); use the daisy.key written by `daisy keygen` \
         (unencrypted, or encrypted with an empty password)"
    )]
    SecretKey(String),
}

/// A freshly generated signing key pair, as the text of its two files.
#[derive(Debug)]
pub struct GeneratedKeyPair {
    /// The secret key file (`daisy.key`), minisign format, unencrypted.
    pub secret_key_file: String,
    /// The public key file (`daisy.pub`), minisign format.
    pub public_key_file: String,
    /// The key id both files carry.
    pub key_id: KeyId,
}

/// Generates a new Ed25519 minisign key pair for signing bundles.
pub fn generate_key_pair() -> Result<GeneratedKeyPair, SignError> {
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| SignError::Minisign(e.to_string()))?;
    let secret_key_file = pair
        .sk
        .to_box(Some(SECRET_KEY_COMMENT))
        .map_err(|e| SignError::Minisign(e.to_string()))?
        .into_string();
    let public_key_file = pair
        .pk
        .to_box()
        .map_err(|e| SignError::Minisign(e.to_string()))?
        .into_string();
    Ok(GeneratedKeyPair {
        secret_key_file,
        public_key_file,
        key_id: key_id_of(&pair.sk)?,
    })
}

/// Reads a minisign secret key file's text: unencrypted, or encrypted with
/// an empty password.
pub fn load_secret_key(text: &str) -> Result<SecretKey, SignError> {
    match SecretKey::from_unencrypted_box(text.to_string().into()) {
        Ok(key) => Ok(key),
        Err(unencrypted) => SecretKey::from_box(text.to_string().into(), Some(String::new()))
            .map_err(|_| SignError::SecretKey(unencrypted.to_string())),
    }
}

/// The key id of a secret key, as its public key and signatures carry it.
pub fn key_id_of(secret: &SecretKey) -> Result<KeyId, SignError> {
    let bytes: [u8; 8] = secret
        .keynum()
        .try_into()
        .map_err(|_| SignError::SecretKey("key id is not 8 bytes".into()))?;
    Ok(KeyId::from_bytes(bytes))
}

/// Signs a payload into a bundle file: canonical BSON, a prehashed minisign
/// signature over exactly those bytes, framed (see `docs/formats.md`).
pub fn sign_bundle(payload: &BundlePayload, secret: &SecretKey) -> Result<Vec<u8>, SignError> {
    let bytes = payload.to_canonical_bson()?;
    // The trusted comment is signed too; it names the bundle for people who
    // inspect the signature with the minisign tool.
    let trusted_comment = format!(
        "apport-hooks bundle id:{} version:{} issued_at:{}",
        payload.id, payload.version, payload.issued_at
    );
    let untrusted_comment = SIGNATURE_UNTRUSTED_COMMENT
        .strip_prefix("untrusted comment: ")
        .unwrap_or(SIGNATURE_UNTRUSTED_COMMENT);
    let signature = minisign::sign(
        None,
        secret,
        Cursor::new(&bytes),
        Some(&trusted_comment),
        Some(untrusted_comment),
    )
    .map_err(|e| SignError::Minisign(e.to_string()))?;
    Ok(frame_bundle(&signature.into_string(), &bytes)?)
}
