//! The SQLite writer's memory of crash signature → bucket id (migration
//! 0007), so that storing a crash costs a hash probe instead of a query.
//!
//! Staleness bound: none for committed ids. An id, once committed, names
//! its signature forever (no row of `buckets` is deleted or changed), so an
//! id read or written by any connection stays right. The one way to be
//! wrong is an id this writer made in a transaction that then rolled back
//! (whole or to a savepoint): SQLite may hand the same id to another
//! signature later. So every rollback forgets everything
//! ([`BucketIds::forget_all`]); rollbacks are rare (a failed job).
//!
//! Memory and hostile keys: a [`CappedMap`] (at most 4,096 signatures of
//! at most 512 bytes). A signature is built from the client's report (a
//! `DuplicateSignature` may be 32,768 characters, an `ExecutablePath` as
//! long as the upload), so a longer one is not remembered.

use super::capped_map::CappedMap;

/// Bucket ids by crash signature.
#[derive(Debug, Default)]
pub(super) struct BucketIds {
    ids: CappedMap<i64>,
}

impl BucketIds {
    /// The remembered id of `signature`.
    pub(super) fn get(&self, signature: &str) -> Option<i64> {
        self.ids.get(signature).copied()
    }

    /// Remembers the id the database holds (or the open transaction wrote)
    /// for `signature`.
    pub(super) fn insert(&mut self, signature: &str, id: i64) {
        self.ids.insert(signature, id);
    }

    /// A transaction or savepoint rolled back: ids it created may be handed
    /// out again, to other signatures.
    pub(super) fn forget_all(&mut self) {
        self.ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::capped_map::{MAX_ENTRIES, MAX_KEY_BYTES as MAX_SIGNATURE_BYTES};
    use super::*;

    #[test]
    fn ids_are_remembered_until_a_rollback() {
        let mut ids = BucketIds::default();
        assert_eq!(ids.get("sig"), None);
        ids.insert("sig", 7);
        assert_eq!(ids.get("sig"), Some(7));
        ids.forget_all();
        assert_eq!(ids.get("sig"), None);
    }

    #[test]
    fn a_long_signature_is_not_kept() {
        let mut ids = BucketIds::default();
        let long = "x".repeat(MAX_SIGNATURE_BYTES + 1);
        ids.insert(&long, 3);
        assert_eq!(ids.get(&long), None);
        let longest = "x".repeat(MAX_SIGNATURE_BYTES);
        ids.insert(&longest, 4);
        assert_eq!(ids.get(&longest), Some(4));
    }

    #[test]
    fn it_starts_over_when_full() {
        let mut ids = BucketIds::default();
        for i in 0..MAX_ENTRIES {
            ids.insert(&format!("sig-{i}"), i64::try_from(i).unwrap_or(0));
        }
        assert_eq!(ids.get("sig-0"), Some(0));
        ids.insert("one more", 1);
        assert_eq!(ids.get("sig-0"), None);
        assert_eq!(ids.get("one more"), Some(1));
    }
}
