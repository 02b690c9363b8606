//! The name of a spool entry, built only from validated ids.

use super::{ENTRY_SUFFIX, SpoolError};
use crate::agent::ids::OopsId;
use crate::bundle::check_bundle_id;

/// What an entry is for: one hook's result for one OOPS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryKey {
    oops: OopsId,
    hook_id: String,
    hook_version: u32,
}

impl EntryKey {
    /// Builds a key from validated parts (`hook_id` as a bundle id).
    ///
    /// # Errors
    /// [`SpoolError::BadKey`] for an invalid OOPS id or hook id.
    pub fn new(oops: &str, hook_id: &str, hook_version: u32) -> Result<Self, SpoolError> {
        let oops = OopsId::parse(oops)?;
        check_bundle_id(hook_id).map_err(SpoolError::BadKey)?;
        if hook_id.contains('+') {
            return Err(SpoolError::BadKey(format!("hook id {hook_id:?} holds `+`")));
        }
        Ok(Self {
            oops,
            hook_id: hook_id.to_owned(),
            hook_version,
        })
    }

    /// The OOPS id.
    pub fn oops(&self) -> &OopsId {
        &self.oops
    }

    /// The hook's id.
    pub fn hook_id(&self) -> &str {
        &self.hook_id
    }

    /// The hook's version.
    pub fn hook_version(&self) -> u32 {
        self.hook_version
    }

    /// The entry's file name (`+` appears in neither id, so it is unambiguous).
    pub fn file_name(&self) -> String {
        format!(
            "{}+{}+{}{ENTRY_SUFFIX}",
            self.oops, self.hook_id, self.hook_version
        )
    }

    pub(super) fn from_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(ENTRY_SUFFIX)?;
        let mut parts = stem.split('+');
        let (oops, hook, version) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let version: u32 = version.parse().ok()?;
        let key = Self::new(oops, hook, version).ok()?;
        (key.file_name() == name).then_some(key)
    }
}

impl std::fmt::Display for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OOPS {} hook {} version {}",
            self.oops, self.hook_id, self.hook_version
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn entry_names_round_trip_and_refuse_hostile_parts() {
        let key =
            EntryKey::new("4c5fd3a2-1e6b-11f1-9a2c-fa163e6b7c1d", "lightdm.log_1", 3).unwrap();
        assert_eq!(EntryKey::from_file_name(&key.file_name()), Some(key));
        for (oops, hook) in [
            ("../x", "h"),
            ("o", "../../etc/cron.d/x"),
            ("o", "a/b"),
            ("o/..", "h"),
            ("o", ".h"),
            ("o", "a+b"),
        ] {
            assert!(EntryKey::new(oops, hook, 1).is_err(), "{oops} {hook}");
        }
        assert_eq!(EntryKey::from_file_name("o+h+01.entry"), None);
        assert_eq!(EntryKey::from_file_name("o+h+1+2.entry"), None);
    }
}
