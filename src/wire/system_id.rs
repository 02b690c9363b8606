//! The one grammar for a machine's system id, shared by daisy's routes and
//! the client agent.
//!
//! whoopsie sends a 128-hex-digit SHA-512 of the machine id; other clients
//! send dotted or underscored ids. The id ends up in URL paths and log
//! lines, so the grammar keeps it to URL-safe ASCII and refuses ids that a
//! path layer could read as a relative step (`.`, `..`) or a hidden name.

use crate::report::is_key_byte;

/// Longest system id accepted, in bytes (the grammar is ASCII only).
pub const MAX_SYSTEM_ID_LEN: usize = 256;

/// Whether `id` is a valid system id: 1 to [`MAX_SYSTEM_ID_LEN`] characters
/// from `[A-Za-z0-9._-]`, at least one of them alphanumeric, and not
/// starting with `.` (so `.`, `..` and hidden names are refused).
pub fn is_valid_system_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=MAX_SYSTEM_ID_LEN).contains(&bytes.len())
        && bytes.first() != Some(&b'.')
        // The key grammar's byte set, looked up in its table.
        && bytes.iter().all(|&b| is_key_byte(b))
        && bytes.iter().any(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoopsie_sha512_system_id_is_valid() {
        let id = "0123456789abcdef".repeat(8);
        assert_eq!(id.len(), 128);
        assert!(is_valid_system_id(&id));
    }

    #[test]
    fn dotted_underscored_and_dashed_ids_are_valid() {
        for id in [
            "a",
            "Z",
            "7",
            "host.example-1",
            "a_b",
            "x..y",
            "a.",
            "-a",
            "_9",
        ] {
            assert!(is_valid_system_id(id), "{id:?} should be valid");
        }
    }

    #[test]
    fn empty_id_is_refused() {
        assert!(!is_valid_system_id(""));
    }

    #[test]
    fn id_of_256_chars_is_valid_and_257_is_refused() {
        assert!(is_valid_system_id(&"a".repeat(256)));
        assert!(!is_valid_system_id(&"a".repeat(257)));
    }

    #[test]
    fn path_steps_and_hidden_names_are_refused() {
        for id in [".", "..", "...", ".hidden", "../etc", "a/b", "/", "a\\b"] {
            assert!(!is_valid_system_id(id), "{id:?} should be refused");
        }
    }

    #[test]
    fn ids_without_an_alphanumeric_are_refused() {
        for id in ["-", "_", "--", "_-_", "-.", "_.."] {
            assert!(!is_valid_system_id(id), "{id:?} should be refused");
        }
    }

    #[test]
    fn other_characters_are_refused() {
        for id in ["a b", "a%2F", "a:b", "é", "a\0", "a\n", "a?b", "a#b", "a+b"] {
            assert!(!is_valid_system_id(id), "{id:?} should be refused");
        }
    }
}
