//! Signing and verifying bundles with real minisign keys in real key
//! directories: every way a bundle can be refused has its own error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod bundle_support;

use apport_hooks::bundle::{
    BundleError, BundlePayload, CLOCK_SKEW_SECS, KeyRing, MAX_BUNDLE_LIFETIME_SECS,
    MAX_PAYLOAD_BYTES, frame_bundle,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bundle_support::{DAY, NOW, TestKey, sample_hook, sample_payload, write_private};
use sha2::{Digest, Sha256};

fn ring_trusting(keys: &[&TestKey]) -> (tempfile::TempDir, KeyRing) {
    let dir = tempfile::tempdir().unwrap();
    for (i, key) in keys.iter().enumerate() {
        key.install(dir.path(), &format!("key{i}"));
    }
    let ring = KeyRing::load(&[dir.path().to_path_buf()], None).unwrap();
    (dir, ring)
}

#[test]
fn signed_bundle_verifies_and_gives_the_payload_back() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let bytes = key.sign(&sample_payload());

    let bundle = ring.verify(&bytes, NOW).unwrap();
    assert_eq!(bundle.payload(), &sample_payload());
    assert_eq!(bundle.id(), "hook-42");
    assert_eq!(bundle.version(), 3);
    assert_eq!(bundle.target(), &sample_hook().target);
    assert_eq!(bundle.issued_at(), NOW - DAY);
    assert_eq!(bundle.not_after(), NOW + 7 * DAY);
    assert_eq!(bundle.hook(), &sample_hook());
    assert_eq!(bundle.key_id(), key.pair.key_id);
    assert_eq!(bundle.sha256(), <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(bundle.sha256_hex().len(), 64);
}

#[test]
fn same_payload_has_the_same_signed_bytes() {
    let key = TestKey::new();
    let a = key.sign(&sample_payload());
    let b = key.sign(&sample_payload());
    // The signatures differ (minisign signs with random noise), the payload
    // bytes after them do not.
    let payload = sample_payload().to_canonical_bson().unwrap();
    assert!(a.ends_with(&payload) && b.ends_with(&payload));
}

#[test]
fn tampered_bundle_is_rejected() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let mut bytes = key.sign(&sample_payload());
    // Change the first step's file path in place: still well-formed BSON.
    let at = bytes
        .windows(8)
        .position(|w| w == b"/var/log")
        .expect("the path is in the payload");
    bytes[at + 1] = b'e';
    assert_eq!(
        ring.verify(&bytes, NOW),
        Err(BundleError::BadSignature {
            key_id: key.pair.key_id
        })
    );
}

#[test]
fn signature_from_another_bundle_is_rejected() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let good = key.sign(&sample_payload());
    let mut other = sample_payload();
    other.version = 4;
    let other = key.sign(&other);
    let sig_len = usize::try_from(u32::from_be_bytes(good[5..9].try_into().unwrap())).unwrap();
    let other_sig_len =
        usize::try_from(u32::from_be_bytes(other[5..9].try_into().unwrap())).unwrap();
    let spliced = frame_bundle(
        std::str::from_utf8(&good[9..9 + sig_len]).unwrap(),
        &other[9 + other_sig_len..],
    )
    .unwrap();
    assert!(matches!(
        ring.verify(&spliced, NOW),
        Err(BundleError::BadSignature { .. })
    ));
}

#[test]
fn unknown_key_is_rejected() {
    let trusted = TestKey::new();
    let stranger = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&trusted]);
    let bytes = stranger.sign(&sample_payload());
    assert_eq!(
        ring.verify(&bytes, NOW),
        Err(BundleError::UnknownKey {
            key_id: stranger.pair.key_id
        })
    );
}

#[test]
fn revoked_key_is_rejected() {
    let key = TestKey::new();
    let dir = tempfile::tempdir().unwrap();
    key.install(dir.path(), "daisy");
    let revoked = dir.path().join("revoked-keys");
    write_private(
        &revoked,
        &format!(
            "# leaked 2026-11-20\n{}\n",
            key.pair.key_id.to_string().to_lowercase()
        ),
    );
    let ring = KeyRing::load(&[dir.path().to_path_buf()], Some(&revoked)).unwrap();
    let bytes = key.sign(&sample_payload());
    assert_eq!(
        ring.verify(&bytes, NOW),
        Err(BundleError::RevokedKey {
            key_id: key.pair.key_id
        })
    );
}

#[test]
fn expired_bundle_is_rejected() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let payload = sample_payload();
    let bytes = key.sign(&payload);
    // Within the clock skew allowance it is still accepted…
    assert!(
        ring.verify(&bytes, payload.not_after + CLOCK_SKEW_SECS)
            .is_ok()
    );
    // …one second later it is not.
    let now = payload.not_after + CLOCK_SKEW_SECS + 1;
    assert_eq!(
        ring.verify(&bytes, now),
        Err(BundleError::Expired {
            not_after: payload.not_after,
            now
        })
    );
}

#[test]
fn not_yet_valid_bundle_is_rejected() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let payload = sample_payload();
    let bytes = key.sign(&payload);
    assert!(
        ring.verify(&bytes, payload.issued_at - CLOCK_SKEW_SECS)
            .is_ok()
    );
    let now = payload.issued_at - CLOCK_SKEW_SECS - 1;
    assert_eq!(
        ring.verify(&bytes, now),
        Err(BundleError::NotYetValid {
            issued_at: payload.issued_at,
            now
        })
    );
}

#[test]
fn legacy_signature_is_rejected() {
    // minisign can no longer make legacy (`Ed`, not prehashed) signatures,
    // so take a real one and relabel its algorithm, as an attacker
    // downgrading the signature would.
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let bytes = key.sign(&sample_payload());
    let sig_len = usize::try_from(u32::from_be_bytes(bytes[5..9].try_into().unwrap())).unwrap();
    let text = std::str::from_utf8(&bytes[9..9 + sig_len]).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut raw = STANDARD.decode(&lines[1]).unwrap();
    assert_eq!(&raw[..2], b"ED");
    raw[1] = b'd';
    lines[1] = STANDARD.encode(&raw);
    let legacy_text = format!("{}\n", lines.join("\n"));
    let legacy = frame_bundle(&legacy_text, &bytes[9 + sig_len..]).unwrap();
    assert_eq!(
        ring.verify(&legacy, NOW),
        Err(BundleError::LegacySignature {
            key_id: key.pair.key_id
        })
    );
}

#[test]
fn two_trusted_keys_are_both_accepted() {
    // Key rotation: the old key in the packaged directory, the new one in
    // the local directory; bundles from either verify.
    let old = TestKey::new();
    let new = TestKey::new();
    let packaged = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    old.install(packaged.path(), "daisy-2025");
    new.install(local.path(), "daisy-2026");
    let ring = KeyRing::load(
        &[packaged.path().to_path_buf(), local.path().to_path_buf()],
        None,
    )
    .unwrap();
    assert_eq!(ring.trusted_key_ids().len(), 2);
    for key in [&old, &new] {
        let bundle = ring.verify(&key.sign(&sample_payload()), NOW).unwrap();
        assert_eq!(bundle.key_id(), key.pair.key_id);
    }

    // Both in one directory works the same.
    let (_dir, ring) = ring_trusting(&[&old, &new]);
    assert!(ring.verify(&old.sign(&sample_payload()), NOW).is_ok());
    assert!(ring.verify(&new.sign(&sample_payload()), NOW).is_ok());
}

#[test]
fn symlinked_public_key_is_not_trusted() {
    let key = TestKey::new();
    let elsewhere = tempfile::tempdir().unwrap();
    key.install(elsewhere.path(), "real");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("daisy.pub");
    std::os::unix::fs::symlink(elsewhere.path().join("real.pub"), &link).unwrap();

    let ring = KeyRing::load(&[dir.path().to_path_buf()], None).unwrap();
    assert!(ring.trusted_key_ids().is_empty());
    assert_eq!(ring.skipped().len(), 1);
    assert_eq!(ring.skipped()[0].path, link);
    assert!(ring.skipped()[0].reason.contains("symbolic link"));
    assert_eq!(
        ring.verify(&key.sign(&sample_payload()), NOW),
        Err(BundleError::UnknownKey {
            key_id: key.pair.key_id
        })
    );
}

#[test]
fn non_key_files_in_the_key_directory_are_not_trusted() {
    let key = TestKey::new();
    let dir = tempfile::tempdir().unwrap();
    key.install(dir.path(), "good");
    std::fs::write(dir.path().join("garbage.pub"), "not a key\n").unwrap();
    std::fs::create_dir(dir.path().join("subdir.pub")).unwrap();
    std::fs::write(dir.path().join("readme.txt"), &key.pair.public_key_file).unwrap();
    let hidden = TestKey::new();
    hidden.install(dir.path(), ".hidden");
    let ring = KeyRing::load(&[dir.path().to_path_buf()], None).unwrap();
    assert_eq!(ring.trusted_key_ids(), vec![key.pair.key_id]);
    let mut skipped: Vec<_> = ring
        .skipped()
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    skipped.sort();
    assert_eq!(skipped, ["garbage.pub", "subdir.pub"]);
}

#[test]
fn malformed_container_is_rejected() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let good = key.sign(&sample_payload());
    for bad in [
        Vec::new(),
        b"APHB".to_vec(),
        good[..20].to_vec(),
        // The signature text alone, no payload.
        good[..good.len() - sample_payload().to_canonical_bson().unwrap().len()].to_vec(),
        [b"XXXX".as_slice(), &good[4..]].concat(),
        [&good[..4], &[2_u8][..], &good[5..]].concat(),
        vec![0_u8; MAX_PAYLOAD_BYTES * 2],
    ] {
        assert!(
            matches!(
                ring.verify(&bad, NOW),
                Err(BundleError::MalformedContainer(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn correctly_signed_garbage_is_payload_malformed() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let garbage = key.sign_raw(b"\x05\x00\x00\x00\x00 this is not BSON");
    assert!(matches!(
        ring.verify(&garbage, NOW),
        Err(BundleError::PayloadMalformed(_))
    ));
    // A document whose target disagrees with its hook's target.
    let mut payload = sample_payload();
    payload.target = apport_hooks::hook::Target::Package("bash".into());
    let bytes = key.sign_raw(&bson::serialize_to_vec(&payload).unwrap());
    assert!(matches!(
        ring.verify(&bytes, NOW),
        Err(BundleError::PayloadMalformed(m)) if m.contains("target")
    ));
}

#[test]
fn future_payload_format_is_unsupported() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let mut payload = sample_payload();
    payload.format = 2;
    let bytes = key.sign_raw(&bson::serialize_to_vec(&payload).unwrap());
    assert_eq!(
        ring.verify(&bytes, NOW),
        Err(BundleError::UnsupportedFormat { found: 2 })
    );
}

#[test]
fn signature_is_checked_before_the_payload_is_parsed() {
    // Garbage signed by an untrusted key, or garbage under a valid header
    // and signature, never reaches the payload decoder.
    let trusted = TestKey::new();
    let stranger = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&trusted]);
    let garbage = stranger.sign_raw(b"\xff\xff\xff\x7f not BSON at all");
    assert!(matches!(
        ring.verify(&garbage, NOW),
        Err(BundleError::UnknownKey { .. })
    ));
    let good = trusted.sign(&sample_payload());
    let payload_len = sample_payload().to_canonical_bson().unwrap().len();
    let mut swapped = good[..good.len() - payload_len].to_vec();
    swapped.extend_from_slice(b"\xff\xff\xff\x7f not BSON at all");
    assert!(matches!(
        ring.verify(&swapped, NOW),
        Err(BundleError::BadSignature { .. })
    ));
}

#[test]
fn every_error_names_what_to_do_next() {
    let key = TestKey::new();
    let stranger = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let err = ring
        .verify(&stranger.sign(&sample_payload()), NOW)
        .unwrap_err();
    assert_eq!(err.code(), "unknown-key");
    let message = err.to_string();
    assert!(message.contains(&stranger.pair.key_id.to_string()));
    assert!(message.contains("/etc/apport-hooks/keys.d/"));
    let payload = BundlePayload {
        not_after: NOW - DAY,
        issued_at: NOW - 2 * DAY,
        ..sample_payload()
    };
    let err = ring.verify(&key.sign(&payload), NOW).unwrap_err();
    assert_eq!(err.code(), "expired");
    assert!(err.to_string().contains("fetch a fresh bundle"));
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn key_file_others_can_write_is_not_trusted() {
    // hooks run as root: a key file another user can rewrite is a root
    // exploit, whatever it holds now.
    for mode in [0o666, 0o664, 0o646] {
        let key = TestKey::new();
        let dir = tempfile::tempdir().unwrap();
        key.install(dir.path(), "daisy");
        chmod(&dir.path().join("daisy.pub"), mode);
        let ring = KeyRing::load(&[dir.path().to_path_buf()], None).unwrap();
        assert!(ring.trusted_key_ids().is_empty(), "mode {mode:o}");
        assert!(
            ring.skipped()[0].reason.contains("writable by"),
            "{:?}",
            ring.skipped()
        );
        assert_eq!(
            ring.verify(&key.sign(&sample_payload()), NOW),
            Err(BundleError::UnknownKey {
                key_id: key.pair.key_id
            })
        );
    }
}

#[test]
fn key_file_owned_by_another_user_is_not_trusted() {
    // Needs root to give the file away (CI runs as root).
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root"
        );
        eprintln!("not root: cannot chown a key file to another user; not checked here");
        return;
    }
    let key = TestKey::new();
    let dir = tempfile::tempdir().unwrap();
    key.install(dir.path(), "daisy");
    let status = std::process::Command::new("chown")
        .arg("65534")
        .arg(dir.path().join("daisy.pub"))
        .status()
        .unwrap();
    assert!(status.success());
    let ring = KeyRing::load(&[dir.path().to_path_buf()], None).unwrap();
    assert!(ring.trusted_key_ids().is_empty());
    assert!(ring.skipped()[0].reason.contains("owned by uid 65534"));
}

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn key_directory_others_can_write_fails_to_load() {
    // Group- or world-writable (even sticky, like /tmp): anyone could drop a
    // key in. The directory above may be sticky, not the key directory.
    for mode in [0o777, 0o1777, 0o770] {
        let key = TestKey::new();
        let dir = tempfile::tempdir().unwrap();
        key.install(dir.path(), "daisy");
        chmod(dir.path(), mode);
        let err = KeyRing::load(&[dir.path().to_path_buf()], None).unwrap_err();
        assert!(
            matches!(
                err,
                apport_hooks::bundle::KeyRingError::InsecureKeyDir { .. }
            ),
            "mode {mode:o}: {err}"
        );
        assert!(err.to_string().contains("chmod go-w"), "{err}");
    }
    // A writable directory above the key directory is as bad.
    let top = tempfile::tempdir().unwrap();
    let keys = top.path().join("keys.d");
    std::fs::create_dir(&keys).unwrap();
    chmod(&keys, 0o755);
    TestKey::new().install(&keys, "daisy");
    chmod(top.path(), 0o777);
    assert!(KeyRing::load(std::slice::from_ref(&keys), None).is_err());
    chmod(top.path(), 0o755);
    assert_eq!(
        KeyRing::load(&[keys], None)
            .unwrap()
            .trusted_key_ids()
            .len(),
        1
    );
}

#[test]
fn revocation_list_others_can_write_or_delete_fails_closed() {
    let key = TestKey::new();
    let dir = tempfile::tempdir().unwrap();
    key.install(dir.path(), "daisy");
    let revoked = dir.path().join("revoked-keys");
    write_private(&revoked, &format!("{}\n", key.pair.key_id));
    chmod(&revoked, 0o666);
    assert!(matches!(
        KeyRing::load(&[dir.path().to_path_buf()], Some(&revoked)),
        Err(apport_hooks::bundle::KeyRingError::RevocationList(_))
    ));

    // Missing, in a directory anyone can write: anyone could have deleted
    // it, so it does not count as empty.
    let open_dir = tempfile::tempdir().unwrap();
    chmod(open_dir.path(), 0o777);
    assert!(matches!(
        KeyRing::load(
            &[dir.path().to_path_buf()],
            Some(&open_dir.path().join("revoked-keys"))
        ),
        Err(apport_hooks::bundle::KeyRingError::RevocationList(_))
    ));
}

#[test]
fn bundle_valid_for_longer_than_the_cap_is_rejected() {
    // A hand-made (or buggy-server) payload valid forever must not give a
    // hook that can be replayed forever; 90 days exactly is the cap.
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let at_cap = BundlePayload {
        issued_at: NOW - DAY,
        not_after: NOW - DAY + MAX_BUNDLE_LIFETIME_SECS,
        ..sample_payload()
    };
    assert!(ring.verify(&key.sign(&at_cap), NOW).is_ok());
    for (issued_at, not_after) in [
        (NOW - DAY, i64::MAX),
        (NOW - DAY, NOW - DAY + MAX_BUNDLE_LIFETIME_SECS + 1),
        (i64::MIN, NOW),
        (-1, NOW),
    ] {
        let payload = BundlePayload {
            issued_at,
            not_after,
            ..sample_payload()
        };
        assert!(
            payload.to_canonical_bson().is_err(),
            "{issued_at}..{not_after}"
        );
        let bytes = key.sign_raw(&bson::serialize_to_vec(&payload).unwrap());
        assert!(
            matches!(
                ring.verify(&bytes, NOW),
                Err(BundleError::PayloadMalformed(_))
            ),
            "{issued_at}..{not_after}"
        );
    }
}

#[test]
fn clock_at_the_ends_of_time_is_handled() {
    let key = TestKey::new();
    let (_dir, ring) = ring_trusting(&[&key]);
    let payload = BundlePayload {
        issued_at: 0,
        not_after: MAX_BUNDLE_LIFETIME_SECS,
        ..sample_payload()
    };
    let bytes = key.sign(&payload);
    assert!(matches!(
        ring.verify(&bytes, i64::MIN),
        Err(BundleError::NotYetValid { .. })
    ));
    assert!(matches!(
        ring.verify(&bytes, i64::MAX),
        Err(BundleError::Expired { .. })
    ));
    assert!(ring.verify(&bytes, -CLOCK_SKEW_SECS).is_ok());
    assert!(
        ring.verify(&bytes, MAX_BUNDLE_LIFETIME_SECS + CLOCK_SKEW_SECS)
            .is_ok()
    );
}

#[test]
fn one_key_under_a_second_id_does_not_escape_its_revocation() {
    // minisign signs neither the key id in a signature nor the one in a
    // public key file: a copy of a revoked key's file with another id, and
    // a signature relabelled with that id, must not verify.
    let key = TestKey::new();
    let dir = tempfile::tempdir().unwrap();
    key.install(dir.path(), "daisy");
    let other_id: [u8; 8] = *b"relabel!";
    let relabel = |b64: &str| {
        let mut raw = STANDARD.decode(b64).unwrap();
        raw[2..10].copy_from_slice(&other_id);
        STANDARD.encode(raw)
    };
    let mut lines: Vec<String> = key
        .pair
        .public_key_file
        .lines()
        .map(str::to_string)
        .collect();
    lines[1] = relabel(&lines[1]);
    write_private(
        &dir.path().join("copy.pub"),
        &format!("{}\n", lines.join("\n")),
    );
    let revoked = dir.path().join("revoked-keys");
    write_private(&revoked, &format!("{}\n", key.pair.key_id));
    let ring = KeyRing::load(&[dir.path().to_path_buf()], Some(&revoked)).unwrap();
    // Neither copy is trusted: which one is "real" cannot be told.
    assert!(ring.trusted_key_ids().is_empty());
    assert_eq!(ring.skipped().len(), 2, "{:?}", ring.skipped());
    assert!(ring.skipped()[0].reason.contains("under another id"));

    let bytes = key.sign(&sample_payload());
    let sig_len = usize::try_from(u32::from_be_bytes(bytes[5..9].try_into().unwrap())).unwrap();
    let text = std::str::from_utf8(&bytes[9..9 + sig_len]).unwrap();
    let mut sig_lines: Vec<String> = text.lines().map(str::to_string).collect();
    sig_lines[1] = relabel(&sig_lines[1]);
    let relabelled = frame_bundle(
        &format!("{}\n", sig_lines.join("\n")),
        &bytes[9 + sig_len..],
    )
    .unwrap();
    assert!(matches!(
        ring.verify(&relabelled, NOW),
        Err(BundleError::UnknownKey { .. })
    ));
    assert!(matches!(
        ring.verify(&bytes, NOW),
        Err(BundleError::RevokedKey { .. })
    ));

    // The same across the two key directories, whichever comes first.
    let other_dir = tempfile::tempdir().unwrap();
    std::fs::rename(
        dir.path().join("copy.pub"),
        other_dir.path().join("copy.pub"),
    )
    .unwrap();
    for dirs in [
        [dir.path().to_path_buf(), other_dir.path().to_path_buf()],
        [other_dir.path().to_path_buf(), dir.path().to_path_buf()],
    ] {
        let ring = KeyRing::load(&dirs, None).unwrap();
        assert!(ring.trusted_key_ids().is_empty());
        assert!(ring.verify(&relabelled, NOW).is_err());
    }
}
