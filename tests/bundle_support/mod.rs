//! Shared fixtures for the bundle tests: a real hook, real keys, real files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    dead_code
)]

use std::collections::BTreeMap;
use std::path::Path;

use apport_hooks::bundle::{
    BundlePayload, GeneratedKeyPair, SecretKey, generate_key_pair, load_secret_key, sign_bundle,
};
use apport_hooks::hook::{Action, Condition, Hook, HookLimits, JournalQuery, RunAs, Step, Target};

/// The clock every test verifies at.
pub const NOW: i64 = 1_800_000_000;
/// One day in seconds.
pub const DAY: i64 = 86_400;

/// A hook using every step kind, like the issue's example.
pub fn sample_hook() -> Hook {
    let mut when = BTreeMap::new();
    when.insert(
        "DistroRelease".to_string(),
        Condition::OneOf(vec!["Ubuntu 24.04".into(), "Ubuntu 24.10".into()]),
    );
    when.insert(
        "Package".to_string(),
        Condition::Matches(r"^lightdm 1\.30".into()),
    );
    let step = |key: &str, run_as: RunAs, action: Action| Step {
        key: key.into(),
        run_as,
        optional: false,
        replaces: false,
        max_bytes: 1_048_576,
        timeout_secs: 10,
        action,
    };
    Hook {
        name: "lightdm-seat-start".into(),
        description: "Why we need this data".into(),
        target: Target::CrashSignature(
            "/usr/sbin/lightdm:11:seat_start:display_manager_start:main".into(),
        ),
        when,
        limits: HookLimits {
            reports: 10,
            days: 7,
        },
        steps: vec![
            step(
                "LightdmLog",
                RunAs::Root,
                Action::File("/var/log/lightdm/lightdm.log".into()),
            ),
            step(
                "XorgLogs",
                RunAs::User,
                Action::Glob("/var/log/Xorg.*.log".into()),
            ),
            step(
                "CurrentDmesg",
                RunAs::Root,
                Action::Command(vec!["dmesg".into(), "--level=err,warn".into()]),
            ),
            step(
                "LightdmJournal",
                RunAs::User,
                Action::Journal(JournalQuery {
                    unit: Some("lightdm.service".into()),
                    priority: Some("warning".into()),
                    lines: Some(300),
                    grep: Some("seat".into()),
                    this_boot: true,
                }),
            ),
            step(
                "RelatedPackageVersions",
                RunAs::User,
                Action::PackageVersions(vec!["lightdm".into(), "libgtk-3-0*".into()]),
            ),
            step(
                "LightdmConffiles",
                RunAs::User,
                Action::Conffiles("lightdm".into()),
            ),
        ],
    }
}

/// A payload valid from `NOW - 1 day` to `NOW + 7 days`.
pub fn sample_payload() -> BundlePayload {
    BundlePayload::new("hook-42".into(), 3, sample_hook(), NOW - DAY, NOW + 7 * DAY)
}

/// Writes `contents` to `path` with mode 0644, whatever the umask.
pub fn write_private(path: &Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// A freshly generated signing key.
pub struct TestKey {
    pub pair: GeneratedKeyPair,
    pub secret: SecretKey,
}

impl TestKey {
    pub fn new() -> Self {
        let pair = generate_key_pair().unwrap();
        let secret = load_secret_key(&pair.secret_key_file).unwrap();
        Self { pair, secret }
    }

    /// Writes `NAME.pub` into `dir`, mode 0644 whatever the umask (the key
    /// ring refuses key files others can write).
    pub fn install(&self, dir: &Path, name: &str) {
        write_private(&dir.join(format!("{name}.pub")), &self.pair.public_key_file);
    }

    pub fn sign(&self, payload: &BundlePayload) -> Vec<u8> {
        sign_bundle(payload, &self.secret).unwrap()
    }

    /// Signs arbitrary bytes as a bundle payload, bypassing the payload
    /// encoder (for payloads the encoder refuses to produce).
    pub fn sign_raw(&self, payload: &[u8]) -> Vec<u8> {
        let signature = minisign::sign(
            None,
            &self.secret,
            std::io::Cursor::new(payload),
            Some("raw test payload"),
            Some("apport-hooks bundle signature"),
        )
        .unwrap();
        apport_hooks::bundle::frame_bundle(&signature.into_string(), payload).unwrap()
    }
}
