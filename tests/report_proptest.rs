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
