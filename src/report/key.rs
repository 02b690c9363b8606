//! Report keys: the grammar every key must follow.
//!
//! A key is one or more ASCII letters, digits, `.`, `-` or `_`. Apport only
//! started to enforce this on load in 2026, after CVE-2026-77113 turned a key
//! name into a path traversal; every consumer of keys here (file names built
//! from keys, BSON field names, D-Bus replies) can therefore rely on it.

use std::borrow::Borrow;
use std::fmt;

use thiserror::Error;

/// Why a string is not a valid report key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The key is the empty string.
    #[error("the key is empty; a key needs at least one ASCII letter, digit, '.', '-' or '_'")]
    Empty,
    /// The key holds a byte outside the key grammar.
    #[error(
        "byte 0x{byte:02x} at position {position} of the key is not allowed; \
         keys use only ASCII letters, digits, '.', '-' and '_'"
    )]
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its 0-based position in the key.
        position: usize,
    },
}

/// Whether `byte` may appear in a key.
#[must_use]
// A `u8` indexes a 256-entry table: always in bounds.
#[allow(clippy::indexing_slicing)]
pub const fn is_key_byte(byte: u8) -> bool {
    KEY_BYTES[byte as usize]
}

/// `KEY_BYTES[b]`: whether byte `b` may appear in a key. Every name of every
/// crash upload, and every system id (the same byte set), is checked byte
/// by byte; one load per byte is a third of the three range checks it
/// replaces.
// In bounds as above; `b` is incremented only below `u8::MAX`.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const KEY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b: u8 = 0;
    loop {
        table[b as usize] = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    table
};

/// Checks `bytes` against the key grammar.
///
/// # Errors
/// [`KeyError`] naming the first offending byte.
pub fn validate_key(bytes: &[u8]) -> Result<(), KeyError> {
    if bytes.is_empty() {
        return Err(KeyError::Empty);
    }
    match bytes.iter().position(|&b| !is_key_byte(b)) {
        Some(position) => Err(KeyError::InvalidByte {
            byte: bytes.get(position).copied().unwrap_or(0),
            position,
        }),
        None => Ok(()),
    }
}

/// A validated report key (`ProblemType`, `StacktraceTop`, `XorgLogs.Xorg.0.log`).
///
/// Keys are case-sensitive. The only way to build one is through
/// [`Key::new`] (or `TryFrom`), so holding a `Key` proves it follows the grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Validates `key` and wraps it.
    ///
    /// # Errors
    /// [`KeyError`] if `key` is empty or holds a byte outside the grammar.
    pub fn new(key: impl Into<String>) -> Result<Self, KeyError> {
        let key = key.into();
        validate_key(key.as_bytes())?;
        Ok(Self(key))
    }

    /// Validates raw bytes (as read from a file) and wraps them.
    ///
    /// # Errors
    /// [`KeyError`] if the bytes are empty or hold a byte outside the grammar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        validate_key(bytes)?;
        // Every key byte is ASCII, so this conversion cannot fail; map the
        // impossible case to an error rather than panic.
        String::from_utf8(bytes.to_vec())
            .map(Self)
            .map_err(|_| KeyError::InvalidByte {
                byte: 0,
                position: 0,
            })
    }

    /// The key as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Key {
    type Error = KeyError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for Key {
    type Error = KeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Key> for String {
    fn from(key: Key) -> Self {
        key.0
    }
}

/// Turns a file path into a key the way apport's `hookutils.path_to_key` does:
/// every character outside `[0-9a-zA-Z_.-]` becomes `.`.
///
/// `/var/log/Xorg.0.log` gives `.var.log.Xorg.0.log`. A non-ASCII character
/// becomes one `.` (apport works on characters, not bytes). An empty path
/// gives an empty string, which is not a valid key on its own; callers
/// usually prefix it (`XorgLogs` + `.` + …).
#[must_use]
pub fn path_to_key(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_ascii() && is_key_byte(c as u8) {
                c
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_key_byte_table_is_the_grammar() {
        for b in 0..=u8::MAX {
            let grammar = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            assert_eq!(is_key_byte(b), grammar, "byte {b:#04x}");
        }
    }

    #[test]
    fn key_grammar_accepts_apport_keys() {
        for k in [
            "ProblemType",
            "XorgLogs.Xorg.0.log",
            "HookError_lightdm",
            "a-b",
        ] {
            assert_eq!(Key::new(k).unwrap().as_str(), k);
        }
    }

    #[test]
    fn key_grammar_rejects_path_traversal_and_spaces() {
        assert_eq!(
            Key::new("../x"),
            Err(KeyError::InvalidByte {
                byte: b'/',
                position: 2
            })
        );
        assert_eq!(Key::new(""), Err(KeyError::Empty));
        assert!(Key::new("a b").is_err());
        assert!(Key::new("Schlüssel").is_err());
    }

    #[test]
    fn path_to_key_follows_apport() {
        assert_eq!(path_to_key("/var/log/Xorg.0.log"), ".var.log.Xorg.0.log");
        assert_eq!(path_to_key("/home/ä b"), ".home...b");
    }
}
