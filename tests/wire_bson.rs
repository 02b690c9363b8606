//! BSON on the wire: whoopsie uploads byte for byte, and hostile input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use apport_hooks::report::{Report, ReportLimits};
use apport_hooks::wire::{
    self, WireError, WireLimits, decode_report, decode_untrusted, report_from_whoopsie_bson,
    report_to_strings_bson, report_to_whoopsie_bson, strings_document,
};
use bson::{Bson, Document, doc};
use proptest::prelude::*;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata");

fn load(name: &str) -> Report {
    let bytes = std::fs::read(format!("{TESTDATA}/reports/{name}.crash")).unwrap();
    Report::parse(&bytes, &ReportLimits::default()).unwrap()
}

fn upload(name: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}/uploads/{name}.bson")).unwrap()
}

fn to_bytes(doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).unwrap();
    out
}

// ---- whoopsie encoding ------------------------------------------------------

#[test]
fn reports_encode_to_the_whoopsie_uploads_byte_for_byte() {
    for name in ["signal_crash", "python_crash", "package_failure"] {
        let encoded = report_to_whoopsie_bson(&load(name)).unwrap();
        assert_eq!(encoded, upload(name), "{name}");
    }
}

#[test]
fn whoopsie_upload_leaves_out_the_core_dump_only() {
    let report = load("signal_crash");
    let doc = decode_untrusted(&upload("signal_crash"), &WireLimits::default()).unwrap();
    assert!(!doc.contains_key("CoreDump"));
    assert_eq!(doc.len(), report.len() - 1);
    let keys: Vec<&str> = report
        .keys()
        .map(|k| k.as_str())
        .filter(|k| *k != "CoreDump")
        .collect();
    let doc_keys: Vec<&str> = doc.keys().map(String::as_str).collect();
    assert_eq!(doc_keys, keys);
}

#[test]
fn daisy_intake_reads_the_uploads_back() {
    for name in ["signal_crash", "python_crash", "package_failure"] {
        let original = load(name);
        let report = decode_report(
            &upload(name),
            &WireLimits::default(),
            &ReportLimits::default(),
        )
        .unwrap();
        for (key, value) in report.iter() {
            assert_eq!(
                original.get(key.as_str()).unwrap().as_text(),
                value.as_text(),
                "{name}: {key}"
            );
        }
        // Encoding what daisy read gives the upload again.
        assert_eq!(report_to_whoopsie_bson(&report).unwrap(), upload(name));
    }
}

#[test]
fn binary_values_travel_as_their_base64_lines_without_the_marker() {
    let text = b"ProblemType: Crash\nAttachment: base64\n H4sI\n AAAA\nCoreDump: base64\n H4sI\n";
    let report = Report::parse(text, &ReportLimits::default()).unwrap();
    let doc = decode_untrusted(
        &report_to_whoopsie_bson(&report).unwrap(),
        &WireLimits::default(),
    )
    .unwrap();
    assert_eq!(
        doc,
        doc! { "ProblemType": "Crash", "Attachment": "H4sI\nAAAA" }
    );
    // Hook results keep every key, CoreDump included.
    let all = decode_untrusted(
        &report_to_strings_bson(&report).unwrap(),
        &WireLimits::default(),
    )
    .unwrap();
    assert_eq!(all.get_str("CoreDump").unwrap(), "H4sI");
}

#[test]
fn strings_document_matches_the_encoder() {
    let report = load("python_crash");
    let doc = strings_document(&report).unwrap();
    assert_eq!(to_bytes(&doc), report_to_strings_bson(&report).unwrap());
    let back = report_from_whoopsie_bson(&doc, &ReportLimits::default()).unwrap();
    assert_eq!(back, report);
}

#[test]
fn non_utf8_value_cannot_be_a_bson_string() {
    let report = Report::parse(b"ProcCmdline: caf\xe9\n", &ReportLimits::default()).unwrap();
    assert_eq!(
        report_to_whoopsie_bson(&report).unwrap_err(),
        WireError::NotUtf8 {
            key: "ProcCmdline".into(),
            offset: 3
        }
    );
}

// ---- intake checks ----------------------------------------------------------

#[test]
fn a_non_string_field_is_refused() {
    let doc = doc! { "ProblemType": "Crash", "Signal": 11_i32 };
    assert_eq!(
        report_from_whoopsie_bson(&doc, &ReportLimits::default()).unwrap_err(),
        WireError::NotAString {
            key: "Signal".into(),
            found: "int"
        }
    );
    let nested = doc! { "ProblemType": { "a": "b" } };
    assert!(matches!(
        report_from_whoopsie_bson(&nested, &ReportLimits::default()).unwrap_err(),
        WireError::NotAString {
            found: "document",
            ..
        }
    ));
}

#[test]
fn a_field_name_outside_the_key_grammar_is_refused() {
    let doc = doc! { "../../etc/cron.d/x": "y" };
    assert!(matches!(
        report_from_whoopsie_bson(&doc, &ReportLimits::default()).unwrap_err(),
        WireError::InvalidKey { .. }
    ));
    let doc = doc! { "Key": "a\0b" };
    assert!(matches!(
        report_from_whoopsie_bson(&doc, &ReportLimits::default()).unwrap_err(),
        WireError::InvalidValue { .. }
    ));
}

#[test]
fn a_huge_string_over_the_caps_is_refused() {
    let huge = "x".repeat(2 * 1024 * 1024);
    let bytes = to_bytes(&doc! { "Big": huge.as_str() });
    let limits = WireLimits {
        max_document_bytes: 1024 * 1024,
        ..WireLimits::default()
    };
    assert_eq!(
        decode_untrusted(&bytes, &limits).unwrap_err(),
        WireError::TooLarge {
            size: bytes.len(),
            max: 1024 * 1024
        }
    );
    // Within the document cap but over the report's value cap.
    let report_limits = ReportLimits {
        max_value_bytes: 1024,
        ..ReportLimits::default()
    };
    assert_eq!(
        decode_report(&bytes, &WireLimits::default(), &report_limits).unwrap_err(),
        WireError::ValueTooLarge {
            key: "Big".into(),
            max: 1024
        }
    );
}

// ---- hostile bytes ----------------------------------------------------------

#[test]
fn a_truncated_document_is_refused() {
    let full = upload("python_crash");
    let cut = &full[..full.len() / 2];
    assert_eq!(
        decode_untrusted(cut, &WireLimits::default()).unwrap_err(),
        WireError::Truncated {
            declared: full.len(),
            actual: cut.len()
        }
    );
    // Truncated inside, with the prefix patched to match: the walk notices.
    let mut patched = cut.to_vec();
    patched.push(0);
    let len = i32::try_from(patched.len()).unwrap().to_le_bytes();
    patched[..4].copy_from_slice(&len);
    assert!(matches!(
        decode_untrusted(&patched, &WireLimits::default()).unwrap_err(),
        WireError::Malformed(_)
    ));
    assert_eq!(
        decode_untrusted(&full[..3], &WireLimits::default()).unwrap_err(),
        WireError::TooShort { size: 3 }
    );
}

#[test]
fn a_length_prefix_larger_than_the_slice_is_refused() {
    let mut bytes = upload("package_failure");
    let actual = bytes.len();
    bytes[..4].copy_from_slice(&(1_000_000_i32).to_le_bytes());
    assert_eq!(
        decode_untrusted(&bytes, &WireLimits::default()).unwrap_err(),
        WireError::Truncated {
            declared: 1_000_000,
            actual
        }
    );
    // A claim above the cap is refused as too large before anything else.
    bytes[..4].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(matches!(
        decode_untrusted(&bytes, &WireLimits::default()).unwrap_err(),
        WireError::TooLarge { .. }
    ));
    bytes[..4].copy_from_slice(&(-1_i32).to_le_bytes());
    assert_eq!(
        decode_untrusted(&bytes, &WireLimits::default()).unwrap_err(),
        WireError::BadLength { declared: -1 }
    );
}

#[test]
fn a_length_prefix_smaller_than_the_slice_is_refused() {
    let mut bytes = upload("package_failure");
    let actual = bytes.len();
    bytes[..4].copy_from_slice(&(100_i32).to_le_bytes());
    assert_eq!(
        decode_untrusted(&bytes, &WireLimits::default()).unwrap_err(),
        WireError::TrailingBytes {
            declared: 100,
            actual
        }
    );
}

#[test]
fn ten_thousand_keys_exceed_the_field_limit() {
    let mut doc = Document::new();
    for i in 0..10_000 {
        doc.insert(format!("Key{i}"), "v");
    }
    let bytes = to_bytes(&doc);
    assert!(bytes.len() < WireLimits::default().max_document_bytes);
    assert_eq!(
        decode_untrusted(&bytes, &WireLimits::default()).unwrap_err(),
        WireError::TooManyFields {
            max: wire::DEFAULT_MAX_FIELDS
        }
    );
}

/// `depth` documents nested inside each other (`{a: {a: … {}}}`), built in
/// one pass: each level adds a 4-byte length, a type byte, `a\0` and a
/// closing 0 around the empty innermost document.
fn nested(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 8 + 5);
    for level in (1..depth).rev() {
        let len = 5 + 8 * level;
        out.extend_from_slice(&i32::try_from(len).unwrap().to_le_bytes());
        out.push(0x03);
        out.extend_from_slice(b"a\0");
    }
    out.extend_from_slice(&[5, 0, 0, 0, 0]);
    out.resize(out.len() + depth - 1, 0);
    out
}

#[test]
fn nesting_over_the_depth_limit_is_refused() {
    let limits = WireLimits::default();
    assert!(decode_untrusted(&nested(limits.max_depth), &limits).is_ok());
    assert_eq!(
        decode_untrusted(&nested(limits.max_depth + 1), &limits).unwrap_err(),
        WireError::TooDeep {
            max: limits.max_depth
        }
    );
    // Far deeper than any stack would survive if it were followed.
    assert_eq!(
        decode_untrusted(&nested(100_000), &limits).unwrap_err(),
        WireError::TooDeep {
            max: limits.max_depth
        }
    );
}

#[test]
fn a_repeated_field_name_is_refused() {
    // Two "Package" fields: bson's Document would silently keep the last.
    let mut bytes = vec![0, 0, 0, 0];
    for value in ["a", "b"] {
        bytes.push(0x02);
        bytes.extend_from_slice(b"Package\0");
        bytes.extend_from_slice(&2_i32.to_le_bytes());
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    bytes.push(0);
    let len = i32::try_from(bytes.len()).unwrap().to_le_bytes();
    bytes[..4].copy_from_slice(&len);
    assert_eq!(
        decode_untrusted(&bytes, &WireLimits::default()).unwrap_err(),
        WireError::DuplicateField {
            key: "Package".into()
        }
    );
}

#[test]
fn nested_arrays_count_towards_depth_and_fields() {
    let doc = doc! { "a": [1, 2, 3], "b": { "c": [ { "d": "e" } ] } };
    let bytes = to_bytes(&doc);
    assert_eq!(
        decode_untrusted(&bytes, &WireLimits::default()).unwrap(),
        doc
    );
    let shallow = WireLimits {
        max_depth: 3,
        ..WireLimits::default()
    };
    assert_eq!(
        decode_untrusted(&bytes, &shallow).unwrap_err(),
        WireError::TooDeep { max: 3 }
    );
    let few = WireLimits {
        max_fields: 7,
        ..WireLimits::default()
    };
    assert_eq!(
        decode_untrusted(&bytes, &few).unwrap_err(),
        WireError::TooManyFields { max: 7 }
    );
    assert!(matches!(doc.get("a"), Some(Bson::Array(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_untrusted(&bytes, &WireLimits::default());
    }

    #[test]
    fn arbitrary_bytes_with_a_matching_prefix_never_panic(
        body in proptest::collection::vec(any::<u8>(), 1..300)
    ) {
        // Make the length check pass so the walk itself sees the junk.
        let mut bytes = vec![0u8; 4];
        bytes.extend_from_slice(&body);
        bytes.push(0);
        let len = i32::try_from(bytes.len()).unwrap().to_le_bytes();
        bytes[..4].copy_from_slice(&len);
        let _ = decode_untrusted(&bytes, &WireLimits::default());
        let _ = decode_report(&bytes, &WireLimits::default(), &ReportLimits::default());
    }

    #[test]
    fn mutated_uploads_never_panic(index in 0usize..717, byte in any::<u8>()) {
        let mut bytes = upload("python_crash");
        let i = index % bytes.len();
        bytes[i] = byte;
        let _ = decode_report(&bytes, &WireLimits::default(), &ReportLimits::default());
    }
}
