//! Identifiers that end up in file names and URL paths.
//!
//! apport once built a hook file's path from report data (CVE-2016-9950,
//! CVE-2017-10708). Here every name the agent builds comes from one of these
//! types, and each accepts only a short run of `[A-Za-z0-9._-]` that does not
//! start with `.` (so no `/`, no `..`, no hidden files, nothing a URL or a
//! shell would interpret).

use std::fmt;

use thiserror::Error;

/// Longest system id accepted (whoopsie's is 128 hex characters): the
/// shared grammar's bound ([`crate::wire::MAX_SYSTEM_ID_LEN`]).
pub const MAX_SYSTEM_ID_BYTES: usize = crate::wire::MAX_SYSTEM_ID_LEN;

/// Longest OOPS id accepted (daisy's are 36-character UUIDs).
pub const MAX_OOPS_ID_BYTES: usize = 64;

/// An identifier was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct IdError {
    /// Which kind of id (`system id`, `OOPS id`).
    pub what: &'static str,
    /// The refused value, truncated for display.
    pub value: String,
    /// Why.
    pub reason: String,
}

fn check(what: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    let refuse = |reason: String| IdError {
        what,
        value: value.chars().take(80).collect(),
        reason,
    };
    if value.is_empty() || value.len() > max {
        return Err(refuse(format!("must be 1 to {max} bytes long")));
    }
    if value.starts_with('.') {
        return Err(refuse("must not start with `.`".into()));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(refuse(format!(
            "may hold only ASCII letters, digits, `.`, `_` and `-`, not {c:?}"
        )));
    }
    Ok(())
}

/// The machine's anonymous id, sent as the last path segment of every upload
/// (whoopsie: SHA-512 hex of the DMI product UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SystemId(String);

impl SystemId {
    /// Validates a system id with the grammar daisy uses too
    /// ([`crate::wire::is_valid_system_id`]: 1 to [`MAX_SYSTEM_ID_BYTES`]
    /// bytes of `[A-Za-z0-9._-]`, at least one alphanumeric, not starting
    /// with `.`), so the agent never sends an id the server refuses.
    ///
    /// # Errors
    /// [`IdError`] saying what is wrong.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        if crate::wire::is_valid_system_id(value) {
            return Ok(Self(value.to_owned()));
        }
        // The shared grammar says only yes or no; say which rule failed.
        check("system id", value, MAX_SYSTEM_ID_BYTES)?;
        Err(IdError {
            what: "system id",
            value: value.chars().take(80).collect(),
            reason: "must hold at least one ASCII letter or digit".into(),
        })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The server's id of one uploaded crash (first word of its `OOPSID` reply).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OopsId(String);

impl OopsId {
    /// Validates an OOPS id: 1 to [`MAX_OOPS_ID_BYTES`] bytes of
    /// `[A-Za-z0-9._-]`, not starting with `.`.
    ///
    /// # Errors
    /// [`IdError`] saying what is wrong.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        check("OOPS id", value, MAX_OOPS_ID_BYTES)?;
        Ok(Self(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OopsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hostile_ids_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a b",
            "a\0b",
            "é",
            ".hidden",
            "a%2fb",
            "a?b",
        ] {
            assert!(OopsId::parse(bad).is_err(), "{bad:?}");
            assert!(SystemId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(OopsId::parse(&"a".repeat(MAX_OOPS_ID_BYTES + 1)).is_err());
        assert!(SystemId::parse(&"a".repeat(MAX_SYSTEM_ID_BYTES + 1)).is_err());
    }

    #[test]
    fn real_ids_are_accepted() {
        OopsId::parse("4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d").unwrap();
        SystemId::parse(&"ab".repeat(64)).unwrap();
        SystemId::parse("i_am_a_machine").unwrap();
    }

    #[test]
    fn system_ids_follow_the_shared_grammar() {
        for id in ["-", "_", "-_-", "a..", ".a", ""] {
            assert_eq!(
                SystemId::parse(id).is_ok(),
                crate::wire::is_valid_system_id(id),
                "{id:?}"
            );
        }
        assert!(SystemId::parse("---").is_err());
        assert!(SystemId::parse("a-b").is_ok());
    }
}
