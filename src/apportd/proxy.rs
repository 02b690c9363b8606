//! Client-side definitions of apportd's D-Bus API, for `apport-hook run` and tests.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::{Fd, OwnedFd, OwnedObjectPath, Type, Variant, proxy};

/// One step's status as it travels on the bus: `(key, outcome, detail, bytes, duration_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct StepReport {
    /// The step's key.
    pub key: String,
    /// `collected`, `truncated`, `missing`, `not-authorized`, `refused`,
    /// `failed`, `timed-out`, `cancelled` or `skipped`.
    pub outcome: String,
    /// Why, for anything but `collected`.
    pub detail: String,
    /// Bytes of values produced.
    pub bytes: u64,
    /// Milliseconds the step took.
    pub duration_ms: u64,
}

/// `com.ubuntu.Apport1` on `/com/ubuntu/Apport`.
#[proxy(
    interface = "com.ubuntu.Apport1",
    default_service = "com.ubuntu.apport",
    default_path = "/com/ubuntu/Apport"
)]
pub trait Apport1 {
    /// Run a signed bundle against the report behind `report`. Returns the job.
    #[zbus(allow_interactive_auth)]
    fn run_bundle(
        &self,
        bundle: &[u8],
        report: Fd<'_>,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;

    /// Run an unsigned hook (its canonical BSON encoding) against the report
    /// behind `report`; needs `com.ubuntu.apport.test-hook`. Returns the job.
    #[zbus(allow_interactive_auth)]
    fn run_unsigned_hook(
        &self,
        hook: &[u8],
        report: Fd<'_>,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;

    /// Ids of the trusted signing keys.
    #[zbus(property)]
    fn trusted_keys(&self) -> zbus::Result<Vec<String>>;

    /// Ids of trusted keys that are revoked.
    #[zbus(property)]
    fn revoked_keys(&self) -> zbus::Result<Vec<String>>;

    /// apportd's version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    /// The limits in force.
    #[zbus(property)]
    fn limits(&self) -> zbus::Result<HashMap<String, u64>>;

    /// Jobs that exist now.
    #[zbus(property)]
    fn running_jobs(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
}

/// `com.ubuntu.Apport1.Job` on a job's path.
#[proxy(
    interface = "com.ubuntu.Apport1.Job",
    default_service = "com.ubuntu.apport"
)]
pub trait Job {
    /// Stop the job; only its caller or root may.
    fn cancel(&self) -> zbus::Result<()>;

    /// The result of a finished job: new keys (BSON memfd), step statuses, job outcome.
    fn result(&self) -> zbus::Result<(OwnedFd, Vec<StepReport>, String)>;

    /// `running`, `finished` or `cancelled`.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;

    /// Steps done and total.
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(u32, u32)>;

    /// Emitted once when the job ends.
    #[zbus(signal)]
    fn finished(&self, result: Fd<'_>, steps: Vec<StepReport>, outcome: String)
    -> zbus::Result<()>;
}
