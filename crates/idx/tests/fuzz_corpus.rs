//! Replays every input the fuzzer kept (its corpus and any crash it found) through the parser.

use std::path::PathBuf;

use idx::{Compression, ReadOptions, encode_idx, parse_idx};

#[test]
fn every_fuzzer_input_parses_or_fails_cleanly_and_round_trips() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let folders = [root.join("fuzz/corpus/parse_idx"), root.join("tests/data/fuzz-regressions")];
    let options = ReadOptions { max_payload_bytes: 1 << 24 };
    let (mut n_inputs, mut n_parsed) = (0, 0);
    for folder in &folders {
        for entry in std::fs::read_dir(folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display())) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "md") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            n_inputs += 1;
            // Same checks as the fuzz target: no panic, and what parses re-encodes bit for bit.
            if let Ok(array) = parse_idx(bytes.as_slice(), "input", options) {
                let encoded = encode_idx(&array, Compression::None, "output").unwrap();
                let reparsed = parse_idx(encoded.as_slice(), "output", options).unwrap();
                assert_eq!(encode_idx(&reparsed, Compression::None, "output").unwrap(), encoded, "{}", path.display());
                n_parsed += 1;
            }
        }
    }
    assert!(n_inputs > 0, "no fuzzer inputs under {folders:?}");
    assert!(n_parsed > 0, "no fuzzer input parsed: the corpus lost its valid seeds");
}
