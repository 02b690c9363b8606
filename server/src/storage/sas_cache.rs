//! The SQLite writer's memory of SAS index lookups (SAS → crash signature,
//! or "not mapped"), so that a crash whose SAS was looked up before costs a
//! hash probe instead of a query (crashes of one problem share their SAS).
//!
//! Staleness bound: none. The cache is valid for one value of the
//! database's `sas_generation` row, which triggers bump on every insert,
//! delete and change of `sas_signature` (migration 0006), whoever makes it
//! (this process, another daisy process, `daisy admin`, a hand edit). The
//! writer reads the generation at the start of each batch inside the
//! batch's write transaction, and no one else can change the SAS index
//! while that transaction holds the write lock, so every answer is the one
//! the database would give.
//!
//! Memory and hostile keys: a [`CappedMap`] (at most 4,096 SASes of at
//! most 512 bytes, with their signatures, which `PUT /api/1.0/sas` and the
//! admin set). SASes come from clients; a flood of made-up ones only costs
//! the queries a cache miss costs anyway.

use super::capped_map::CappedMap;

/// SAS lookups made at one SAS index generation.
#[derive(Debug, Default)]
pub(super) struct SasCache {
    generation: Option<i64>,
    entries: CappedMap<Option<String>>,
}

impl SasCache {
    /// At the start of a batch: forgets everything unless the SAS index is
    /// still at the generation the entries were read at.
    pub(super) fn refresh(&mut self, generation: i64) {
        if self.generation != Some(generation) {
            self.entries.clear();
            self.generation = Some(generation);
        }
    }

    /// Whether an answer for `sas` is remembered at all (it is short enough).
    pub(super) fn keeps(sas: &str) -> bool {
        CappedMap::<Option<String>>::keeps(sas)
    }

    /// The remembered answer for `sas`: `Some(None)` when it is known to be
    /// unmapped, `None` when it was not looked up yet.
    pub(super) fn get(&self, sas: &str) -> Option<Option<&str>> {
        self.entries.get(sas).map(Option::as_deref)
    }

    /// Remembers the answer the database gave for `sas`.
    pub(super) fn insert(&mut self, sas: &str, signature: Option<String>) {
        self.entries.insert(sas, signature);
    }
}

#[cfg(test)]
mod tests {
    use super::super::capped_map::{MAX_ENTRIES, MAX_KEY_BYTES as MAX_SAS_BYTES};
    use super::*;

    #[test]
    fn answers_hold_for_their_generation_only() {
        let mut cache = SasCache::default();
        cache.refresh(3);
        assert_eq!(cache.get("sas"), None);
        cache.insert("sas", None);
        cache.insert("mapped", Some("sig".into()));
        cache.refresh(3);
        assert_eq!(cache.get("sas"), Some(None));
        assert_eq!(cache.get("mapped"), Some(Some("sig")));
        cache.refresh(4);
        assert_eq!(cache.get("sas"), None);
        assert_eq!(cache.get("mapped"), None);
    }

    #[test]
    fn a_long_sas_is_not_kept() {
        let mut cache = SasCache::default();
        cache.refresh(0);
        let long = "s".repeat(MAX_SAS_BYTES + 1);
        cache.insert(&long, Some("sig".into()));
        assert_eq!(cache.get(&long), None);
    }

    #[test]
    fn it_starts_over_when_full() {
        let mut cache = SasCache::default();
        cache.refresh(0);
        for i in 0..MAX_ENTRIES {
            cache.insert(&format!("sas{i}"), None);
        }
        assert_eq!(cache.get("sas0"), Some(None));
        cache.insert("one more", None);
        assert_eq!(cache.get("sas0"), None);
        assert_eq!(cache.get("one more"), Some(None));
        assert_eq!(cache.entries.len(), 1);
    }
}
