//! The intake's in-memory answer to "does any active hook match this
//! crash?": the targets of all active hooks, held by each writer and
//! reloaded only when the database's hook generation changes.
//!
//! Staleness bound: a writer compares its generation with the database's
//! once per batch, inside the batch's transaction, so an activation,
//! completion, expiry or disable committed before a batch starts is seen by
//! that batch. A hook that leaves `active` inside the same batch may still
//! earn a crash the `X-Apport-Hooks` header; that is harmless, because the
//! hook list (`GET /{oops}/hooks/{system-id}`) re-checks every hook in the
//! database and offers only active ones under their bound.
//!
//! The generation is one row, `hook_generation`, bumped by triggers on every
//! insert and delete of a hook and on every update that changes a hook's
//! state, target or `not_after` (not on counter updates, so result
//! ingestion does not invalidate it). Expiry by time needs no bump: each
//! target keeps its latest `not_after` and is compared with the crash's
//! arrival time.

use std::collections::HashMap;

use super::{NewOops, TARGET_KINDS, UnixTime};

/// Active hook targets by kind (in [`TARGET_KINDS`] order): value → the
/// latest `not_after` of an active hook with that target.
#[derive(Debug, Default)]
pub(super) struct HookIndex {
    generation: Option<i64>,
    by_kind: [HashMap<String, UnixTime>; TARGET_KINDS.len()],
}

impl HookIndex {
    /// Whether the index was loaded at `generation`.
    pub(super) fn is_current(&self, generation: i64) -> bool {
        self.generation == Some(generation)
    }

    /// Replaces the content with `active` (kind, value, not_after) rows read
    /// at `generation`. Unknown kinds are ignored (they match nothing).
    pub(super) fn reload(
        &mut self,
        generation: i64,
        active: impl IntoIterator<Item = (String, String, UnixTime)>,
    ) {
        for map in &mut self.by_kind {
            map.clear();
        }
        for (kind, value, not_after) in active {
            let Some(map) = TARGET_KINDS
                .iter()
                .position(|k| *k == kind)
                .and_then(|i| self.by_kind.get_mut(i))
            else {
                continue;
            };
            let latest = map.entry(value).or_insert(not_after);
            *latest = (*latest).max(not_after);
        }
        self.generation = Some(generation);
    }

    /// Whether an active, unexpired hook targets the OOPS (its bucket, SAS,
    /// `DuplicateSignature`, package or source package).
    pub(super) fn matches(&self, oops: &NewOops) -> bool {
        self.matches_in_bucket(oops, oops.bucket.as_deref())
    }

    /// [`matches`](Self::matches) with the bucket the OOPS ended up in
    /// (PostgreSQL's writer re-buckets a parked crash after storing it).
    pub(super) fn matches_in_bucket(&self, oops: &NewOops, bucket: Option<&str>) -> bool {
        let values = [
            bucket,
            oops.sas.as_deref(),
            oops.duplicate_signature.as_deref(),
            oops.package.as_deref(),
            oops.source_package.as_deref(),
        ];
        self.by_kind
            .iter()
            .zip(values)
            .any(|(map, value)| match value {
                Some(v) => map.get(v).is_some_and(|&t| t > oops.received),
                None => false,
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn oops(package: &str, bucket: Option<&str>, received: UnixTime) -> NewOops {
        NewOops {
            id: "id".into(),
            system_id: "s".into(),
            received,
            dedup_digest: None,
            crash_time: 0,
            bucket: bucket.map(str::to_owned),
            sas: None,
            package: Some(package.into()),
            source_package: None,
            duplicate_signature: None,
            report: vec![],
        }
    }

    #[test]
    fn a_crash_matches_by_any_of_its_targets_until_not_after() {
        let mut index = HookIndex::default();
        assert!(!index.is_current(0));
        index.reload(
            3,
            [
                ("package".into(), "lightdm".into(), 100),
                ("crash_signature".into(), "/usr/bin/x:11:main".into(), 50),
                ("no_such_kind".into(), "lightdm".into(), 100),
            ],
        );
        assert!(index.is_current(3));
        assert!(index.matches(&oops("lightdm", None, 99)));
        assert!(!index.matches(&oops("lightdm", None, 100)), "expired");
        assert!(index.matches(&oops("other", Some("/usr/bin/x:11:main"), 10)));
        assert!(!index.matches(&oops("other", Some("/usr/bin/x:11:main"), 50)));
        // The package value does not match as a bucket.
        assert!(!index.matches(&oops("other", Some("lightdm"), 10)));
        index.reload(4, []);
        assert!(!index.matches(&oops("lightdm", None, 1)));
    }
}
