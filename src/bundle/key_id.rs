//! Minisign key ids: the 8 bytes that name the key a signature was made with.

use std::fmt;
use std::str::FromStr;

/// A minisign key id.
///
/// Minisign stores it as 8 bytes and prints it as the little-endian `u64` in
/// 16 upper-case hex digits (`minisign public key: E7620F1842B4E81F`). That
/// printed form is what `daisy keygen` shows, what revocation lists hold and
/// what [`fmt::Display`] writes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The key id from its 8 raw bytes, in the order they sit in a minisign
    /// public key or signature.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The 8 raw bytes, in the order they sit in a minisign key or signature.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A string that is not 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a minisign key id: expected 16 hex digits as `minisign` prints them")]
pub struct KeyIdParseError(String);

impl FromStr for KeyId {
    type Err = KeyIdParseError;

    /// Parses the printed form (16 hex digits, either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || KeyIdParseError(s.chars().take(64).collect());
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let value = u64::from_str_radix(s, 16).map_err(|_| bad())?;
        Ok(Self(value.to_le_bytes()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_id_prints_like_minisign() {
        // From minisign's own test vector: key bytes 1f e8 b4 42 18 0f 62 e7.
        let id = KeyId::from_bytes([0x1f, 0xe8, 0xb4, 0x42, 0x18, 0x0f, 0x62, 0xe7]);
        assert_eq!(id.to_string(), "E7620F1842B4E81F");
        assert_eq!("e7620f1842b4e81f".parse::<KeyId>().unwrap(), id);
    }

    #[test]
    fn key_id_rejects_non_hex_and_wrong_length() {
        for bad in [
            "",
            "E7620F1842B4E81",
            "E7620F1842B4E81F0",
            "+7620F1842B4E81F",
            "G7620F1842B4E81F",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }
}
