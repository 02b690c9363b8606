//! Parsing throughput: prints numbers, asserts nothing about time.
//!
//! `cargo run --release --example report_parse_bench [MiB]` builds a report
//! shaped like a real one (text keys plus a gzip `CoreDump` of MiB mebibytes
//! of pseudo-random data) and times parse, write, whoopsie BSON encoding and
//! decompression.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use std::time::Instant;

use apport_hooks::report::{Report, ReportLimits, Value};
use apport_hooks::wire;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    // xorshift noise: compresses poorly, like a real core.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let core: Vec<u8> = (0..mib * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut report = Report::new();
    report.set("ProblemType", "Crash").unwrap();
    for i in 0..200 {
        let lines: Vec<String> = (0..50)
            .map(|l| format!("line {l} of key {i}\twith a tab"))
            .collect();
        report.set(&format!("Key{i}"), lines.join("\n")).unwrap();
    }
    report.insert("CoreDump".try_into().unwrap(), Value::gzip(&core).unwrap());
    let bytes = report.to_bytes();
    let size_mib = bytes.len() as f64 / (1024.0 * 1024.0);
    let limits = ReportLimits::default();

    let start = Instant::now();
    let parsed = Report::parse(&bytes, &limits).unwrap();
    let parse = start.elapsed();

    let start = Instant::now();
    let written = parsed.to_bytes();
    let write = start.elapsed();
    assert_eq!(written, bytes);

    let start = Instant::now();
    let bson = wire::report_to_whoopsie_bson(&parsed).unwrap();
    let encode = start.elapsed();

    let start = Instant::now();
    let out = parsed.decompress("CoreDump", &limits).unwrap().unwrap();
    let decompress = start.elapsed();
    assert_eq!(out.len(), core.len());

    let rate = |d: std::time::Duration| size_mib / d.as_secs_f64();
    println!("report: {size_mib:.1} MiB, {} keys", parsed.len());
    println!("parse:      {parse:?} ({:.0} MiB/s)", rate(parse));
    println!("write:      {write:?} ({:.0} MiB/s)", rate(write));
    println!(
        "bson:       {encode:?} ({} bytes without CoreDump)",
        bson.len()
    );
    println!("decompress: {decompress:?} ({mib} MiB out)");
}
