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
//! Memory: at most [`MAX_ENTRIES`] signatures, then it starts over.
//! Signatures come from clients' reports, so the map is keyed with a
//! randomly seeded hash.

use std::collections::HashMap;

use ahash::RandomState;

/// Signatures kept (a signature is under 200 bytes: about 1 MiB at most).
pub const MAX_ENTRIES: usize = 4_096;

/// Bucket ids by crash signature.
#[derive(Debug, Default)]
pub(super) struct BucketIds {
    ids: HashMap<String, i64, RandomState>,
}

impl BucketIds {
    /// The remembered id of `signature`.
    pub(super) fn get(&self, signature: &str) -> Option<i64> {
        self.ids.get(signature).copied()
    }

    /// Remembers the id the database holds (or the open transaction wrote)
    /// for `signature`.
    pub(super) fn insert(&mut self, signature: &str, id: i64) {
        if self.ids.len() >= MAX_ENTRIES {
            self.ids.clear();
        }
        self.ids.insert(signature.to_owned(), id);
    }

    /// A transaction or savepoint rolled back: ids it created may be handed
    /// out again, to other signatures.
    pub(super) fn forget_all(&mut self) {
        self.ids.clear();
    }
}

#[cfg(test)]
mod tests {
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
