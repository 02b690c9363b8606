//! No single changed byte anywhere in a bundle (header, signature text,
//! payload) is accepted, and no input makes the verifier panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod bundle_support;

use apport_hooks::bundle::{BundleError, BundlePayload, KeyRing};
use bundle_support::{NOW, TestKey, sample_payload};
use proptest::prelude::*;

fn sample() -> (tempfile::TempDir, KeyRing, Vec<u8>) {
    let key = TestKey::new();
    let dir = tempfile::tempdir().unwrap();
    key.install(dir.path(), "daisy");
    let ring = KeyRing::load(&[dir.path().to_path_buf()], None).unwrap();
    let bytes = key.sign(&sample_payload());
    assert!(ring.verify(&bytes, NOW).is_ok());
    (dir, ring, bytes)
}

#[test]
fn every_single_byte_flip_is_rejected() {
    let (_dir, ring, bytes) = sample();
    let sig_len = usize::try_from(u32::from_be_bytes(bytes[5..9].try_into().unwrap())).unwrap();
    let mut by_code = std::collections::BTreeMap::<&str, usize>::new();
    // Three different flips per byte: the lowest bit (a base64 letter
    // becomes a neighbour, an integer changes by one), the highest bit (ASCII
    // becomes non-ASCII) and all bits.
    for mask in [0x01_u8, 0x80, 0xff] {
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            match ring.verify(&flipped, NOW) {
                Ok(_) => panic!("flipping byte {at} with {mask:#04x} was accepted"),
                Err(e) => {
                    *by_code.entry(e.code()).or_default() += 1;
                    // Inside the payload, only the signature can catch it.
                    if at >= 9 + sig_len {
                        assert!(
                            matches!(e, BundleError::BadSignature { .. }),
                            "payload byte {at} flipped with {mask:#04x}: {e}"
                        );
                    }
                }
            }
        }
    }
    println!(
        "{} bytes ({} signature, {} payload) x 3 flips, rejected as: {by_code:?}",
        bytes.len(),
        sig_len,
        bytes.len() - 9 - sig_len
    );
}

#[test]
fn truncation_and_extension_are_rejected() {
    let (_dir, ring, bytes) = sample();
    for len in 0..bytes.len() {
        assert!(
            ring.verify(&bytes[..len], NOW).is_err(),
            "truncated to {len}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        ring.verify(&longer, NOW),
        Err(BundleError::BadSignature { .. })
    ));
}

/// One key ring and bundle for all property cases (key generation is the
/// slow part).
static SAMPLE: std::sync::LazyLock<(tempfile::TempDir, KeyRing, Vec<u8>)> =
    std::sync::LazyLock::new(sample);

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_verify(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (_dir, ring, _) = &*SAMPLE;
        prop_assert!(ring.verify(&bytes, NOW).is_err());
    }

    #[test]
    fn arbitrary_bytes_after_a_real_header_never_panic_verify(
        cut in 0_usize..200,
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let (_dir, ring, bytes) = &*SAMPLE;
        let mut mixed = bytes[..cut.min(bytes.len())].to_vec();
        mixed.extend_from_slice(&tail);
        prop_assert!(ring.verify(&mixed, NOW).is_err());
    }

    #[test]
    fn random_edits_of_a_real_bundle_are_never_accepted(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let (_dir, ring, bytes) = &*SAMPLE;
        let mut edited = bytes.clone();
        for (index, value) in &edits {
            let at = index.index(edited.len());
            edited[at] = *value;
        }
        prop_assume!(&edited != bytes);
        prop_assert!(ring.verify(&edited, NOW).is_err());
    }

    #[test]
    fn payload_decoder_never_panics_on_edited_payloads(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        // The decoder only ever sees signed bytes, but it must still be total.
        let good = sample_payload().to_canonical_bson().unwrap();
        let mut edited = good.clone();
        for (index, value) in &edits {
            let at = index.index(edited.len());
            edited[at] = *value;
        }
        if let Ok(decoded) = BundlePayload::from_canonical_bson(&edited) {
            // Only an edit that kept the bytes canonical can decode, and then
            // it decodes to exactly what re-encodes to those bytes.
            prop_assert_eq!(decoded.to_canonical_bson().unwrap(), edited);
        }
    }

    #[test]
    fn payload_decoder_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let _ = BundlePayload::from_canonical_bson(&bytes);
    }
}
