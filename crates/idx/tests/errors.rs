//! Every malformed input gives its own error, naming the file, and never a panic.

use std::io::Write;

use idx::{IdxError, ReadOptions, parse_idx, read_idx, read_idx_with};

fn parse(bytes: &[u8]) -> Result<idx::IdxArray, IdxError> {
    parse_idx(bytes, "input.idx", ReadOptions::default())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A u8 file of shape [2, 3] with one byte too few or too many.
fn u8_2x3(n_payload_bytes: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    bytes.extend((0..n_payload_bytes).map(|i| i as u8));
    bytes
}

#[test]
fn a_valid_input_parses() {
    assert_eq!(parse(&u8_2x3(6)).unwrap().shape(), &[2, 3]);
    assert_eq!(parse(&gzip(&u8_2x3(6))).unwrap().shape(), &[2, 3]);
}

#[test]
fn bad_magic() {
    let error = parse(&[0x50, 0x4b, 0x03, 0x04, 0, 0]).unwrap_err();
    assert!(matches!(error, IdxError::BadMagic { found: [0x50, 0x4b, 0x03, 0x04], .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("input.idx: bad magic number [50, 4b, 03, 04]"), "{message}");
}

#[test]
fn unknown_element_type() {
    let error = parse(&[0, 0, 0x0A, 1, 0, 0, 0, 0]).unwrap_err();
    assert!(matches!(error, IdxError::UnknownElementType { code: 0x0A, .. }), "{error:?}");
    assert!(error.to_string().contains("unknown element type code 0x0a"), "{error}");
}

#[test]
fn truncated_header() {
    let error = parse(&[0, 0]).unwrap_err();
    assert!(matches!(error, IdxError::TruncatedHeader { expected: 4, found: 2, .. }), "{error:?}");
    let error = parse(&[0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0]).unwrap_err();
    assert!(matches!(error, IdxError::TruncatedHeader { expected: 16, found: 10, n_dims: 3, .. }), "{error:?}");
    assert!(matches!(parse(&[]).unwrap_err(), IdxError::TruncatedHeader { found: 0, .. }));
}

#[test]
fn truncated_payload_plain_and_gzip() {
    for bytes in [u8_2x3(5), gzip(&u8_2x3(5))] {
        let error = parse(&bytes).unwrap_err();
        assert!(matches!(error, IdxError::TruncatedPayload { expected: 6, found: 5, .. }), "{error:?}");
        assert!(error.to_string().contains("shape [2, 3] of u8 needs 6 bytes, found 5"), "{error}");
    }
}

#[test]
fn trailing_bytes_plain_and_gzip() {
    for bytes in [u8_2x3(9), gzip(&u8_2x3(9))] {
        let error = parse(&bytes).unwrap_err();
        assert!(matches!(error, IdxError::TrailingBytes { expected: 6, n_extra: 3, more: "", .. }), "{error:?}");
    }
}

#[test]
fn sizes_that_overflow_or_exceed_the_limit_are_refused_before_allocating() {
    // u32::MAX^3 * 8 bytes does not fit in 64 bits.
    let mut header = vec![0, 0, 0x0E, 3];
    header.extend([0xff; 12]);
    let error = parse(&header).unwrap_err();
    assert!(matches!(error, IdxError::SizeOverflow { .. }), "{error:?}");

    // A 16-byte header claiming 2^32 * 255 * 255 bytes (280 TB) of u8: over the default limit.
    let header = vec![0, 0, 0x08, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0, 0, 0, 0xff];
    let error = parse(&header).unwrap_err();
    assert!(matches!(error, IdxError::TooLarge { limit: idx::DEFAULT_MAX_PAYLOAD_BYTES, .. }), "{error:?}");

    // With no limit at all, the reader still only allocates what the input backs.
    let mut header = vec![0, 0, 0x08, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff];
    header.extend([1, 2, 3]);
    let unlimited = ReadOptions { max_payload_bytes: u64::MAX };
    let error = parse_idx(header.as_slice(), "input.idx", unlimited).unwrap_err();
    assert!(matches!(error, IdxError::TruncatedPayload { found: 3, .. }), "{error:?}");

    let small = ReadOptions { max_payload_bytes: 5 };
    let error = parse_idx(u8_2x3(6).as_slice(), "input.idx", small).unwrap_err();
    assert!(matches!(error, IdxError::TooLarge { n_bytes: 6, limit: 5, .. }), "{error:?}");
}

#[test]
fn corrupt_and_truncated_gzip() {
    // A valid gzip header, then a deflate block of the reserved type 3.
    let corrupt = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff];
    let error = parse(&corrupt).unwrap_err();
    assert!(matches!(error, IdxError::CorruptGzip { .. }), "{error:?}");
    assert!(error.to_string().starts_with("input.idx: corrupt gzip stream"), "{error}");

    // A stream cut before its end: the payload cannot be complete.
    let full = gzip(&u8_2x3(600));
    let error = parse(&full[..full.len() / 2]).unwrap_err();
    assert!(matches!(error, IdxError::CorruptGzip { .. } | IdxError::TruncatedPayload { .. }), "{error:?}");

    // A complete payload whose gzip checksum no longer matches.
    let mut bad_crc = gzip(&u8_2x3(6));
    let crc_idx = bad_crc.len() - 8;
    bad_crc[crc_idx] ^= 0x01;
    let error = parse(&bad_crc).unwrap_err();
    assert!(matches!(error, IdxError::CorruptGzip { .. }), "{error:?}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.idx");
    let message = read_idx(&missing).unwrap_err().to_string();
    assert!(message.starts_with(&format!("{}: cannot open", missing.display())), "{message}");

    let bad = dir.path().join("bad.idx");
    std::fs::write(&bad, u8_2x3(5)).unwrap();
    let message = read_idx_with(&bad, ReadOptions::default()).unwrap_err().to_string();
    assert!(message.starts_with(&format!("{}: truncated payload", bad.display())), "{message}");
}
