//! Feeds arbitrary bytes to the IDX parser: it must return `Ok` or `Err`, never
//! panic, and never allocate more than the limit (libFuzzer's `-rss_limit_mb`
//! catches an allocation the header alone could force).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // A small limit keeps each run fast; the check it exercises is the same.
    let options = idx::ReadOptions { max_payload_bytes: 1 << 24 };
    if let Ok(array) = idx::parse_idx(bytes, "fuzz-input", options) {
        // Whatever parses must re-encode to a plain file that parses to the same array.
        let encoded = idx::encode_idx(&array, idx::Compression::None, "fuzz-output").expect("re-encode");
        let reparsed = idx::parse_idx(encoded.as_slice(), "fuzz-output", options).expect("re-parse");
        assert_eq!(reparsed.shape(), array.shape());
        assert_eq!(reparsed.element_type(), array.element_type());
        // Compare bytes, not values: NaN payloads must survive bit for bit.
        let re_encoded = idx::encode_idx(&reparsed, idx::Compression::None, "fuzz-output").expect("re-encode");
        assert_eq!(re_encoded, encoded);
    }
});
