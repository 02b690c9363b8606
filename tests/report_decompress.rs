//! Binary values: every byte of the compressed stream is accounted for, and
//! the caps hold in every format while streaming.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::Write as _;

use apport_hooks::report::{Binary, DecompressError, Format};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn blob(compressed: &[u8]) -> Binary {
    Binary::from_compressed(compressed).unwrap()
}

fn is_corrupt(result: Result<Vec<u8>, DecompressError>, format: Format) -> bool {
    matches!(result, Err(DecompressError::Corrupt { format: f, .. }) if f == format)
}

#[test]
fn every_gzip_member_is_decompressed_like_pythons_gzip_module() {
    // apport reads values with gzip.GzipFile, which reads all members; reading
    // only the first would show daisy and apport different data.
    let mut two = gzip(b"first member ");
    two.extend_from_slice(&gzip(b"second member"));
    assert_eq!(
        blob(&two).decompress(1 << 20).unwrap(),
        b"first member second member"
    );
    // An empty member in between does not end the value early.
    let mut with_empty = gzip(b"a");
    with_empty.extend_from_slice(&gzip(b""));
    with_empty.extend_from_slice(&gzip(b""));
    with_empty.extend_from_slice(&gzip(b"b"));
    assert_eq!(blob(&with_empty).decompress(1 << 20).unwrap(), b"ab");
    // Same for zstd frames.
    let mut frames = zstd::encode_all(&b"a"[..], 3).unwrap();
    frames.extend_from_slice(&zstd::encode_all(&b""[..], 3).unwrap());
    frames.extend_from_slice(&zstd::encode_all(&b"b"[..], 3).unwrap());
    assert_eq!(blob(&frames).decompress(1 << 20).unwrap(), b"ab");
}

#[test]
fn the_cap_counts_all_gzip_members_together() {
    let zeros = vec![0u8; 768 * 1024];
    let mut many = Vec::new();
    for _ in 0..4 {
        many.extend_from_slice(&gzip(&zeros));
    }
    assert!(matches!(
        blob(&many).decompress(1 << 20),
        Err(DecompressError::OverCap { cap: 1_048_576 })
    ));
    assert_eq!(
        blob(&many).decompress(4 * 768 * 1024).unwrap().len(),
        4 * 768 * 1024
    );
}

#[test]
fn bytes_after_the_compressed_stream_are_refused_not_ignored() {
    let mut gz = gzip(b"payload");
    gz.extend_from_slice(b"hidden trailing bytes");
    assert!(is_corrupt(blob(&gz).decompress(1 << 20), Format::Gzip));

    let mut zl = zlib(b"payload");
    zl.extend_from_slice(b"hidden trailing bytes");
    assert!(is_corrupt(blob(&zl).decompress(1 << 20), Format::Zlib));

    let mut zs = zstd::encode_all(&b"payload"[..], 3).unwrap();
    zs.extend_from_slice(b"hidden trailing bytes");
    assert!(is_corrupt(blob(&zs).decompress(1 << 20), Format::Zstd));
}

#[test]
fn a_truncated_stream_is_an_error_in_every_format() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let zl = zlib(&data);
    assert!(is_corrupt(
        blob(&zl[..zl.len() / 2]).decompress(1 << 20),
        Format::Zlib
    ));
    // Only the 4-byte adler32 trailer missing.
    assert!(is_corrupt(
        blob(&zl[..zl.len() - 4]).decompress(1 << 20),
        Format::Zlib
    ));
    let gz = gzip(&data);
    assert!(is_corrupt(
        blob(&gz[..gz.len() - 4]).decompress(1 << 20),
        Format::Gzip
    ));
    let zs = zstd::encode_all(&data[..], 3).unwrap();
    assert!(is_corrupt(
        blob(&zs[..zs.len() / 2]).decompress(1 << 20),
        Format::Zstd
    ));
}

#[test]
fn a_zstd_window_far_larger_than_the_cap_is_refused_before_it_is_reserved() {
    // A frame that declares a 64 MiB window while the caller allows 64 KiB:
    // the decoder would reserve the window first.
    let data = vec![1u8; 1024];
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_contentsize(false).unwrap();
    encoder.window_log(26).unwrap();
    encoder
        .set_parameter(zstd::stream::raw::CParameter::EnableLongDistanceMatching(
            true,
        ))
        .unwrap();
    encoder.write_all(&data).unwrap();
    let zs = encoder.finish().unwrap();
    assert!(is_corrupt(blob(&zs).decompress(64 * 1024), Format::Zstd));
    // With a cap that large the same frame is fine.
    assert_eq!(blob(&zs).decompress(64 << 20).unwrap(), data);
    // Ordinary frames (apport streams at level 3: window 2^21) pass any cap.
    let plain = zstd::encode_all(&data[..], 3).unwrap();
    assert_eq!(blob(&plain).decompress(4096).unwrap(), data);
}
