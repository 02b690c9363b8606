//! Property tests: arbitrary valid reports round-trip, arbitrary bytes never panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use apport_hooks::report::{Binary, Key, Report, ReportLimits, Value};
use apport_hooks::wire::{WireLimits, decode_report, report_to_strings_bson};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = Key> {
    "[A-Za-z0-9._-]{1,24}".prop_map(|k| Key::new(k).unwrap())
}

fn text() -> impl Strategy<Value = Value> {
    // Any bytes but NUL, with newlines, spaces and '\r' likely.
    proptest::collection::vec(
        prop_oneof![
            3 => 1u8..=255,
            1 => Just(b'\n'),
            1 => Just(b' '),
            1 => Just(b'\r'),
        ],
        0..80,
    )
    .prop_map(|bytes| Value::text(bytes).unwrap())
}

fn binary() -> impl Strategy<Value = Value> {
    proptest::collection::vec(any::<u8>(), 0..200)
        .prop_map(|data| Value::Binary(Binary::gzip(&data).unwrap()))
}

fn report() -> impl Strategy<Value = Report> {
    proptest::collection::vec((key(), prop_oneof![4 => text(), 1 => binary()]), 0..12).prop_map(
        |entries| {
            let mut report = Report::new();
            for (key, value) in entries {
                report.insert(key, value);
            }
            report
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_valid_reports_round_trip(report in report()) {
        let bytes = report.to_bytes();
        let parsed = Report::parse(&bytes, &ReportLimits::default()).unwrap();
        prop_assert_eq!(&parsed, &report);
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_what_parses_writes_back_identically(
        bytes in proptest::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                2 => Just(b'\n'),
                2 => Just(b' '),
                2 => Just(b':'),
                3 => proptest::sample::select(b"Key base64AH4sI=".to_vec()),
            ],
            0..200,
        )
    ) {
        if let Ok(report) = Report::parse(&bytes, &ReportLimits::default()) {
            prop_assert_eq!(report.to_bytes(), bytes);
            for (_, value) in report.iter() {
                if let Some(binary) = value.as_binary() {
                    let _ = binary.decompress(1 << 16);
                }
            }
        }
    }

    #[test]
    fn mutated_valid_reports_never_panic_and_round_trip_when_accepted(
        report in report(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = report.to_bytes();
        if !bytes.is_empty() {
            for (index, byte) in flips {
                let i = index % bytes.len();
                bytes[i] = byte;
            }
        }
        if let Ok(parsed) = Report::parse(&bytes, &ReportLimits::default()) {
            prop_assert_eq!(parsed.to_bytes(), bytes);
        }
    }

    #[test]
    fn utf8_reports_survive_the_strings_bson_shape(report in report()) {
        // Binary values travel as base64 text; text that is UTF-8 unchanged.
        if let Ok(bytes) = report_to_strings_bson(&report) {
            let back =
                decode_report(&bytes, &WireLimits::default(), &ReportLimits::default()).unwrap();
            prop_assert_eq!(back.len(), report.len());
            for ((k1, v1), (k2, v2)) in report.iter().zip(back.iter()) {
                prop_assert_eq!(k1, k2);
                prop_assert_eq!(v1.wire_bytes(), v2.wire_bytes());
            }
        }
    }
}

#[test]
fn every_prefix_of_a_real_report_parses_or_errors_without_panic() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/testdata/reports/signal_crash.with_hook_keys.crash"
    ))
    .unwrap();
    let mut parsed = 0;
    for end in 0..=bytes.len() {
        let prefix = &bytes[..end];
        match Report::parse(prefix, &ReportLimits::default()) {
            Ok(report) => {
                parsed += 1;
                assert_eq!(report.to_bytes(), prefix);
            }
            Err(e) => assert!(e.line().is_some(), "{e}"),
        }
    }
    // Cut at a line end, a prefix is a valid report unless it splits a
    // multi-line key from its first line.
    assert!(parsed > 40, "{parsed}");
}
