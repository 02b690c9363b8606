//! The apport report format against real reports and whoopsie's parser cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::io::Write as _;

use apport_hooks::report::{
    Binary, DecompressError, Format, KeyError, LineError, ParseError, Report, ReportLimits, Value,
    new_keys, signature,
};

const REPORTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/reports");
const PARSER_CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/testdata/whoopsie-parser"
);

fn read(dir: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!("{dir}/{name}")).unwrap()
}

fn load(name: &str) -> Report {
    Report::parse(&read(REPORTS, name), &ReportLimits::default()).unwrap()
}

fn parse_case(name: &str) -> Result<Report, ParseError> {
    Report::parse(&read(PARSER_CASES, name), &ReportLimits::default())
}

fn line_error(line: usize, kind: LineError) -> ParseError {
    ParseError::Line { line, kind }
}

// ---- round trip -------------------------------------------------------------

#[test]
fn every_testdata_report_round_trips_byte_for_byte() {
    let mut seen = 0;
    for entry in std::fs::read_dir(REPORTS).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let report = Report::parse(&bytes, &ReportLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!report.is_empty(), "{}", path.display());
        assert_eq!(report.to_bytes(), bytes, "{}", path.display());
        seen += 1;
    }
    assert_eq!(seen, 7, "expected the 7 reports of testdata/reports");
}

#[test]
fn multi_line_values_drop_the_leading_space_and_keep_tabs() {
    let report = load("signal_crash.crash");
    assert_eq!(
        report.get_str("ProcStatus"),
        Some("Name:\tlightdm\nState:\tS (sleeping)\nPid:\t1234\nUid:\t0\t0\t0\t0")
    );
    assert_eq!(report.get_str("Signal"), Some("11"));
    assert_eq!(report.keys().next().unwrap().as_str(), "ProblemType");
    assert!(report.get("CoreDump").unwrap().as_binary().is_some());
    assert_eq!(report.get_str("CoreDump"), None);
}

#[test]
fn edited_report_writes_new_keys_at_the_end_and_keeps_replaced_in_place() {
    let mut report = load("python_crash.crash");
    report.set("Package", "update-manager 1:24.04.10").unwrap();
    report.set("HookLog", "one\ntwo").unwrap();
    report.set("Empty", "").unwrap();
    assert_eq!(
        report.remove("Uname").unwrap().as_str(),
        Some("Linux 6.8.0-45-generic x86_64")
    );
    let text = String::from_utf8(report.to_bytes()).unwrap();
    assert!(text.contains("Package: update-manager 1:24.04.10\nProcCmdline"));
    assert!(text.ends_with("KeyError: 'pane'\nHookLog:\n one\n two\nEmpty: \n"));
    let again = Report::parse(text.as_bytes(), &ReportLimits::default()).unwrap();
    assert_eq!(again, report);
}

#[test]
fn set_refuses_bad_keys_and_nul() {
    let mut report = Report::new();
    assert!(matches!(
        report.set("../../etc/passwd", "x"),
        Err(apport_hooks::report::EntryError::Key { .. })
    ));
    assert!(matches!(
        report.set("Ok", "a\0b"),
        Err(apport_hooks::report::EntryError::Value { .. })
    ));
    assert!(report.is_empty());
}

// ---- new keys ---------------------------------------------------------------

#[test]
fn new_keys_are_exactly_the_keys_a_hook_added() {
    let before = load("signal_crash.crash");
    let after = load("signal_crash.with_hook_keys.crash");
    let expected = load("signal_crash.new_keys_only.crash");
    // The hook re-set Package to the same value: not a new key.
    assert!(after.contains_key("Package"));
    let new = new_keys(&before, &after);
    assert_eq!(new, expected);
    let keys: Vec<&str> = new.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, ["CurrentDmesg", "LightdmLog"]);
    assert_eq!(
        new.to_bytes(),
        read(REPORTS, "signal_crash.new_keys_only.crash")
    );
}

#[test]
fn a_re_set_key_with_another_value_is_not_new() {
    let before = load("signal_crash.crash");
    let mut after = before.clone();
    after.set("Package", "lightdm 9.9").unwrap();
    after.set("HookKey", "x").unwrap();
    let new = new_keys(&before, &after);
    assert_eq!(new.len(), 1);
    assert_eq!(new.get_str("HookKey"), Some("x"));
}

// ---- whoopsie parser cases: one test per file -------------------------------

#[test]
fn whoopsie_valid_parses() {
    let report = parse_case("valid").unwrap();
    assert_eq!(report.get_str("ProblemType"), Some("Crash"));
    assert_eq!(report.get_str("Date"), Some("Thu Feb  2 17:09:31 2012"));
    assert_eq!(
        report.get_str("ProcEnviron"),
        Some(
            "LANGUAGE=en_US:en\nLC_CTYPE=en_US.UTF-8\nLC_COLLATE=en_US.UTF-8\n\
             PATH=(custom, user)\nLANG=en_US.UTF-8\nLC_MESSAGES=en_US.UTF-8\nSHELL=/bin/bash"
        )
    );
    assert_eq!(report.to_bytes(), read(PARSER_CASES, "valid"));
}

#[test]
fn whoopsie_valid_empty_value_parses() {
    let report = parse_case("valid_empty_value").unwrap();
    assert_eq!(report.get_str("ProcEnviron"), Some(""));
    assert_eq!(report.get_str("ProcMaps"), Some("004..."));
    assert_eq!(report.to_bytes(), read(PARSER_CASES, "valid_empty_value"));
}

#[test]
fn whoopsie_unicode_parses() {
    let report = parse_case("unicode").unwrap();
    assert_eq!(report.get_str("ProcCmdline"), Some("gedit ♥"));
    assert_eq!(report.to_bytes(), read(PARSER_CASES, "unicode"));
}

#[test]
fn whoopsie_invalid_key_embedded_nul_is_an_invalid_key() {
    assert_eq!(
        parse_case("invalid_key_embedded_nul").unwrap_err(),
        line_error(
            1,
            LineError::InvalidKey(KeyError::InvalidByte {
                byte: 0,
                position: 5
            })
        )
    );
}

#[test]
fn whoopsie_invalid_key_leading_spaces_is_a_continuation_before_any_key() {
    assert_eq!(
        parse_case("invalid_key_leading_spaces").unwrap_err(),
        line_error(1, LineError::ContinuationBeforeKey)
    );
}

#[test]
fn whoopsie_invalid_key_leading_spaces2_is_a_continuation_before_any_key() {
    assert_eq!(
        parse_case("invalid_key_leading_spaces2").unwrap_err(),
        line_error(1, LineError::ContinuationBeforeKey)
    );
}

#[test]
fn whoopsie_invalid_key_no_value_is_a_missing_colon() {
    assert_eq!(
        parse_case("invalid_key_no_value").unwrap_err(),
        line_error(1, LineError::MissingColon)
    );
}

#[test]
fn whoopsie_invalid_key_no_value2_is_a_key_without_value() {
    assert_eq!(
        parse_case("invalid_key_no_value2").unwrap_err(),
        line_error(
            1,
            LineError::NoValue {
                key: "ProblemType".into()
            }
        )
    );
}

#[test]
fn whoopsie_invalid_key_special_chars_keeps_the_carriage_return_verbatim() {
    // A \r inside a value is data (logs hold such bytes); it is kept exactly,
    // never truncated, and the report still round-trips.
    let report = parse_case("invalid_key_special_chars").unwrap();
    assert_eq!(report.get_text("ProblemType"), Some(&b"Cr\rash"[..]));
    assert_eq!(
        report.to_bytes(),
        read(PARSER_CASES, "invalid_key_special_chars")
    );
}

#[test]
fn whoopsie_invalid_no_spaces_needs_a_space_after_the_colon() {
    assert_eq!(
        parse_case("invalid_no_spaces").unwrap_err(),
        line_error(1, LineError::MissingSpaceAfterColon)
    );
}

#[test]
fn whoopsie_invalid_trailing2_is_refused_as_truncated() {
    assert_eq!(
        parse_case("invalid_trailing2").unwrap_err(),
        line_error(11, LineError::MissingFinalNewline)
    );
}

#[test]
fn whoopsie_invalid_value_is_an_empty_line() {
    assert_eq!(
        parse_case("invalid_value").unwrap_err(),
        line_error(2, LineError::EmptyLine)
    );
}

#[test]
fn whoopsie_invalid_value2_keeps_the_carriage_return_verbatim() {
    let report = parse_case("invalid_value2").unwrap();
    let environ = report.get_text("ProcEnviron").unwrap();
    assert!(environ.starts_with(b"LANGUAGE=en_US:en\nLC_CTYPE\r=en_US.UTF-8\n"));
    assert!(environ.ends_with(b"SHELL=/bin/bash"));
    assert_eq!(report.to_bytes(), read(PARSER_CASES, "invalid_value2"));
}

#[test]
fn whoopsie_invalid_value_embedded_nul_is_refused() {
    assert_eq!(
        parse_case("invalid_value_embedded_nul").unwrap_err(),
        line_error(1, LineError::NulByte)
    );
}

#[test]
fn every_whoopsie_parser_case_has_a_test_above() {
    let mut names: Vec<String> = std::fs::read_dir(PARSER_CASES)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "invalid_key_embedded_nul",
            "invalid_key_leading_spaces",
            "invalid_key_leading_spaces2",
            "invalid_key_no_value",
            "invalid_key_no_value2",
            "invalid_key_special_chars",
            "invalid_no_spaces",
            "invalid_trailing2",
            "invalid_value",
            "invalid_value2",
            "invalid_value_embedded_nul",
            "unicode",
            "valid",
            "valid_empty_value",
        ]
    );
}

// ---- other grammar errors ---------------------------------------------------

#[test]
fn duplicate_key_names_both_lines() {
    let err = Report::parse(b"A: 1\nB:\n x\nA: 2\n", &ReportLimits::default()).unwrap_err();
    assert_eq!(
        err,
        line_error(
            4,
            LineError::DuplicateKey {
                key: "A".into(),
                first_line: 1
            }
        )
    );
    assert_eq!(
        err.to_string(),
        "line 4: duplicate key A, first set on line 1"
    );
}

#[test]
fn continuation_after_a_one_line_value_is_refused() {
    assert_eq!(
        Report::parse(b"A: 1\n 2\n", &ReportLimits::default()).unwrap_err(),
        line_error(
            2,
            LineError::ContinuationAfterOneLineValue { key: "A".into() }
        )
    );
}

#[test]
fn bad_base64_line_is_refused_with_its_line() {
    let err = Report::parse(b"A: base64\n H4sI\n H4s!\n", &ReportLimits::default()).unwrap_err();
    assert_eq!(
        err,
        line_error(
            3,
            LineError::Base64 {
                key: "A".into(),
                reason: "character outside the base64 alphabet"
            }
        )
    );
    assert_eq!(
        Report::parse(b"A: base64\nB: 1\n", &ReportLimits::default()).unwrap_err(),
        line_error(1, LineError::EmptyBinary { key: "A".into() })
    );
}

#[test]
fn limits_on_size_keys_and_values_are_enforced() {
    let data = b"A: 1\nB: 2\nC:\n 333\n 444\n";
    let limits = ReportLimits {
        max_file_bytes: 10,
        ..ReportLimits::default()
    };
    assert_eq!(
        Report::parse(data, &limits).unwrap_err(),
        ParseError::FileTooLarge { size: 23, max: 10 }
    );
    let limits = ReportLimits {
        max_keys: 2,
        ..ReportLimits::default()
    };
    assert_eq!(
        Report::parse(data, &limits).unwrap_err(),
        line_error(3, LineError::TooManyKeys { max: 2 })
    );
    let limits = ReportLimits {
        max_value_bytes: 5,
        ..ReportLimits::default()
    };
    assert_eq!(
        Report::parse(data, &limits).unwrap_err(),
        line_error(
            5,
            LineError::ValueTooLarge {
                key: "C".into(),
                max: 5
            }
        )
    );
}

#[test]
fn empty_input_is_an_empty_report() {
    let report = Report::parse(b"", &ReportLimits::default()).unwrap();
    assert!(report.is_empty());
    assert_eq!(report.to_bytes(), b"");
}

// ---- binary values ----------------------------------------------------------

#[test]
fn gzip_core_dump_from_apport_decompresses() {
    for name in [
        "signal_crash.crash",
        "jammy_usr_bin_sleep.1000.crash",
        "_usr_bin_gedit.1000.crash",
    ] {
        let report = load(name);
        let core = report.get("CoreDump").unwrap().as_binary().unwrap();
        assert_eq!(core.format().unwrap(), Format::Gzip, "{name}");
        let data = report
            .decompress("CoreDump", &ReportLimits::default())
            .unwrap()
            .unwrap();
        // A core dump is an ELF file.
        assert_eq!(&data[..4], b"\x7fELF", "{name}");
    }
}

fn with_binary(compressed: &[u8]) -> Report {
    let mut text = b"ProblemType: Crash\nBlob: base64\n".to_vec();
    let binary = Binary::from_compressed(compressed).unwrap();
    for line in binary.base64_lines().split(|&b| b == b'\n') {
        text.push(b' ');
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    Report::parse(&text, &ReportLimits::default()).unwrap()
}

#[test]
fn zstd_value_decompresses() {
    let data = b"zstd compressed payload ".repeat(1000);
    let compressed = zstd::encode_all(&data[..], 3).unwrap();
    let report = with_binary(&compressed);
    let blob = report.get("Blob").unwrap().as_binary().unwrap();
    assert_eq!(blob.format().unwrap(), Format::Zstd);
    assert_eq!(blob.decompress(1 << 20).unwrap(), data);
}

#[test]
fn legacy_zlib_value_decompresses() {
    let data = b"legacy zlib payload ".repeat(1000);
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&data).unwrap();
    let report = with_binary(&encoder.finish().unwrap());
    let blob = report.get("Blob").unwrap().as_binary().unwrap();
    assert_eq!(blob.format().unwrap(), Format::Zlib);
    assert_eq!(blob.decompress(1 << 20).unwrap(), data);
}

#[test]
fn gzip_value_written_by_this_crate_reads_back() {
    let data = vec![7u8; 3 * 1024 * 1024];
    let mut report = Report::new();
    report.insert("Blob".try_into().unwrap(), Value::gzip(&data).unwrap());
    let again = Report::parse(&report.to_bytes(), &ReportLimits::default()).unwrap();
    assert_eq!(again, report);
    assert_eq!(
        again
            .decompress("Blob", &ReportLimits::default())
            .unwrap()
            .unwrap(),
        data
    );
}

#[test]
fn apport_style_per_line_padding_decodes() {
    // apport base64-encodes every compressor block on its own, so '=' may
    // end any line.
    let data = b"split across lines with padding".repeat(50);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&data).unwrap();
    let gz = encoder.finish().unwrap();
    let engine = &base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let lines: Vec<String> = gz.chunks(7).map(|c| engine.encode(c)).collect();
    let blob = Binary::from_base64_lines(lines.join("\n")).unwrap();
    assert_eq!(blob.decompress(1 << 20).unwrap(), data);
}

#[test]
fn decompression_cap_stops_a_bomb() {
    // 16 MiB of zeros compress to a few KiB in each format.
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&zeros[..], 3).unwrap();
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zl.write_all(&zeros).unwrap();
    let zl = zl.finish().unwrap();
    for compressed in [gz, zst, zl] {
        assert!(compressed.len() < 64 * 1024);
        let blob = Binary::from_compressed(&compressed).unwrap();
        let err = blob.decompress(1024 * 1024).unwrap_err();
        assert!(
            matches!(err, DecompressError::OverCap { cap: 1_048_576 }),
            "{err}"
        );
        // Exactly at the size it fits.
        assert_eq!(
            blob.decompress(16 * 1024 * 1024).unwrap().len(),
            zeros.len()
        );
    }
}

#[test]
fn corrupt_and_truncated_streams_are_errors() {
    let report = load("signal_crash.crash");
    let core = report.get("CoreDump").unwrap().as_binary().unwrap();
    let lines = core.base64_lines();
    // Keep only the first 40 base64 characters: a truncated gzip stream.
    let truncated = Binary::from_base64_lines(&lines[..40]).unwrap();
    assert!(matches!(
        truncated.decompress(1 << 30).unwrap_err(),
        DecompressError::Corrupt {
            format: Format::Gzip,
            ..
        }
    ));
    let junk = Binary::from_base64_lines("AAAAAAAA").unwrap();
    assert!(matches!(
        junk.decompress(1 << 30).unwrap_err(),
        DecompressError::Corrupt {
            format: Format::Zlib,
            ..
        }
    ));
    assert!(matches!(
        report.decompress("Signal", &ReportLimits::default()),
        Err(DecompressError::NotBinary { .. })
    ));
    assert!(
        report
            .decompress("Nope", &ReportLimits::default())
            .unwrap()
            .is_none()
    );
}

// ---- signatures -------------------------------------------------------------

#[test]
fn binary_crash_signature_from_stacktrace_top() {
    let report = load("signal_crash.crash");
    assert_eq!(
        signature::crash_signature(&report).as_deref(),
        Some("/usr/sbin/lightdm:11:seat_start:display_manager_start:main")
    );
    assert_eq!(
        signature::stacktrace_address_signature(&report),
        Some(
            "/usr/sbin/lightdm:11:/usr/sbin/lightdm+3a1f0:/usr/sbin/lightdm+2e9c4:/usr/sbin/lightdm+1d210"
        )
    );
    assert_eq!(signature::package_name(&report), Some("lightdm"));
    assert_eq!(signature::source_package(&report), Some("lightdm"));
}

#[test]
fn incomplete_stacktrace_top_gives_no_signature() {
    let mut report = load("signal_crash.crash");
    report
        .set(
            "StacktraceTop",
            "seat_start (seat=0x1) at seat.c:1714\n?? ()\nmain ()",
        )
        .unwrap();
    assert_eq!(signature::binary_signature(&report), None);
    assert_eq!(signature::crash_signature(&report), None);
    assert!(signature::stacktrace_address_signature(&report).is_some());
}

#[test]
fn python_crash_signature_from_traceback() {
    let report = load("python_crash.crash");
    assert_eq!(
        signature::crash_signature(&report).as_deref(),
        Some("/usr/bin/update-manager:KeyError:<module>:start_update")
    );
    assert_eq!(signature::package_name(&report), Some("update-manager"));
    assert_eq!(signature::source_package(&report), Some("update-manager"));
}

#[test]
fn duplicate_signature_wins_and_is_truncated() {
    let report = load("package_failure.crash");
    assert_eq!(
        signature::crash_signature(&report).as_deref(),
        Some(
            "package:grub-pc:2.12-1ubuntu7:installed grub-pc package post-installation script \
             subprocess returned error exit status 1"
        )
    );
    assert_eq!(signature::package_name(&report), Some("grub-pc"));
    assert_eq!(signature::source_package(&report), Some("grub2"));

    let mut long = load("python_crash.crash");
    long.set("DuplicateSignature", "é".repeat(40_000)).unwrap();
    let sig = signature::crash_signature(&long).unwrap();
    assert_eq!(
        sig.chars().count(),
        signature::MAX_DUPLICATE_SIGNATURE_CHARS
    );
}

#[test]
fn a_gzip_checksum_mismatch_is_an_error() {
    let report = load("signal_crash.crash");
    let core = report.get("CoreDump").unwrap().as_binary().unwrap();
    use base64::Engine as _;
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut raw = Vec::new();
    for line in core.base64_lines().split(|&b| b == b'\n') {
        raw.extend_from_slice(&engine.decode(line).unwrap());
    }
    // The gzip trailer is CRC32 then the size: break the CRC.
    let crc = raw.len() - 8;
    raw[crc] ^= 0xff;
    let broken = Binary::from_compressed(&raw).unwrap();
    assert!(matches!(
        broken.decompress(1 << 30).unwrap_err(),
        DecompressError::Corrupt {
            format: Format::Gzip,
            ..
        }
    ));
}

#[test]
fn a_zstd_frame_claiming_a_huge_window_is_refused() {
    // A streaming frame declares its window size; 2^30 bytes is more than
    // the decoder may reserve (ZSTD_MAX_WINDOW_LOG), whatever the content.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(30).unwrap();
    encoder.long_distance_matching(true).unwrap();
    encoder.write_all(b"small content").unwrap();
    let frame = encoder.finish().unwrap();
    let blob = Binary::from_compressed(&frame).unwrap();
    assert_eq!(blob.format().unwrap(), Format::Zstd);
    assert!(matches!(
        blob.decompress(1 << 20).unwrap_err(),
        DecompressError::Corrupt {
            format: Format::Zstd,
            ..
        }
    ));
    // The same content with a normal window decompresses.
    let normal = zstd::encode_all(&b"small content"[..], 3).unwrap();
    let blob = Binary::from_compressed(&normal).unwrap();
    assert_eq!(blob.decompress(1 << 20).unwrap(), b"small content");
}
