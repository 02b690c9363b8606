//! Crashes as the intake stores them, for the storage tests that need only
//! the duplicate key to vary.

use daisy::storage::NewOops;

/// The tests' "now" (2027-01-15), in Unix seconds.
pub const NOW: i64 = 1_800_000_000;

/// A crash received at [`NOW`] from `system`, filed under the duplicate key
/// (`crash_time`, `system`, `digest`), in bucket `bucket` of package `foo`,
/// with an empty BSON document as its report.
pub fn crash(id: &str, system: &str, digest: &str, crash_time: i64) -> NewOops {
    NewOops {
        id: id.into(),
        system_id: system.into(),
        received: NOW,
        dedup_digest: Some(digest.into()),
        crash_time,
        bucket: Some("bucket".into()),
        sas: None,
        package: Some("foo".into()),
        source_package: None,
        duplicate_signature: None,
        report: vec![5, 0, 0, 0, 0],
    }
}
