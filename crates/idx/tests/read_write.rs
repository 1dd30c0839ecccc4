//! Reading fixtures written by Python (`data/make_fixtures.py`), and round trips through the writer.

use std::path::PathBuf;

use idx::{Compression, ElementType, IdxArray, IdxData, read_idx, write_idx};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

const SHAPES: [&[usize]; 4] = [&[7], &[3, 5], &[2, 3, 4], &[2, 1, 3, 2]];

/// The values `make_fixtures.py` writes: element `i` of each type.
fn expected_data(element_type: ElementType, n: usize) -> IdxData {
    let indices = 0..n as i64;
    match element_type {
        ElementType::U8 => IdxData::U8(indices.map(|i| ((i * 37) % 256) as u8).collect()),
        ElementType::I8 => IdxData::I8(indices.map(|i| ((i * 37) % 256 - 128) as i8).collect()),
        ElementType::I16 => IdxData::I16(indices.map(|i| (i * 1000 - 30000) as i16).collect()),
        ElementType::I32 => IdxData::I32(indices.map(|i| (i * 100_000_007 - (1 << 31) + 5) as i32).collect()),
        ElementType::F32 => IdxData::F32(indices.map(|i| i as f32 * 0.25 - 3.5).collect()),
        ElementType::F64 => IdxData::F64(indices.map(|i| i as f64 * 1e-3 - 1e10).collect()),
    }
}

#[test]
fn reads_every_element_type_in_one_to_four_dimensions_plain_and_gzip() {
    let mut n_checked = 0;
    for element_type in ElementType::ALL {
        for shape in SHAPES {
            let n_dims = shape.len();
            let suffix = if n_dims % 2 == 0 { "" } else { ".gz" };
            let path = fixture(&format!("{element_type}_{n_dims}d.idx{suffix}"));
            let array = read_idx(&path).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(array.shape(), shape, "{}", path.display());
            assert_eq!(array.element_type(), element_type);
            assert_eq!(array.data(), &expected_data(element_type, shape.iter().product()), "{}", path.display());
            n_checked += 1;
        }
    }
    assert_eq!(n_checked, 24);
}

#[test]
fn compression_is_detected_by_content_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let plain_named_gz = dir.path().join("plain.gz");
    let gzip_named_plain = dir.path().join("gzip.idx");
    std::fs::copy(fixture("u8_2d.idx"), &plain_named_gz).unwrap();
    std::fs::copy(fixture("u8_1d.idx.gz"), &gzip_named_plain).unwrap();
    assert_eq!(read_idx(&plain_named_gz).unwrap().shape(), &[3, 5]);
    assert_eq!(read_idx(&gzip_named_plain).unwrap().shape(), &[7]);
}

#[test]
fn writer_round_trips_every_type_and_compression_and_matches_python_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for element_type in ElementType::ALL {
        for shape in SHAPES {
            let array = IdxArray::new(shape.to_vec(), expected_data(element_type, shape.iter().product())).unwrap();
            for compression in [Compression::None, Compression::Gzip] {
                let path = dir.path().join(format!("{element_type}_{}d_{compression:?}", shape.len()));
                write_idx(&path, &array, compression).unwrap();
                assert_eq!(read_idx(&path).unwrap(), array, "{}", path.display());
            }
            // The plain encoding is byte for byte what Python's struct module wrote.
            if shape.len() % 2 == 0 {
                let python = std::fs::read(fixture(&format!("{element_type}_{}d.idx", shape.len()))).unwrap();
                assert_eq!(idx::encode_idx(&array, Compression::None, "memory").unwrap(), python);
            }
        }
    }
    // Writing leaves no temporary files (atomic-write-file's `.name.XXXXXX`) behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn zero_dimensional_and_empty_arrays_round_trip() {
    for (shape, data) in [(vec![], IdxData::F64(vec![2.5])), (vec![0, 28, 28], IdxData::U8(vec![]))] {
        let array = IdxArray::new(shape, data).unwrap();
        let bytes = idx::encode_idx(&array, Compression::None, "memory").unwrap();
        assert_eq!(idx::parse_idx(bytes.as_slice(), "memory", Default::default()).unwrap(), array);
    }
}

#[test]
fn nan_and_infinity_survive_bit_for_bit() {
    let values = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, f32::from_bits(0x7fc0_1234)];
    let array = IdxArray::new(vec![values.len()], IdxData::F32(values.clone())).unwrap();
    let bytes = idx::encode_idx(&array, Compression::Gzip, "memory").unwrap();
    let IdxData::F32(read_back) =
        idx::parse_idx(bytes.as_slice(), "memory", Default::default()).unwrap().into_parts().1
    else {
        panic!("not f32")
    };
    let bits = |values: &[f32]| values.iter().map(|value| value.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&read_back), bits(&values));
}

#[test]
fn writing_into_a_missing_folder_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/folder/x.idx");
    let array = IdxArray::new(vec![1], IdxData::U8(vec![1])).unwrap();
    let message = write_idx(&path, &array, Compression::None).unwrap_err().to_string();
    assert!(message.starts_with(&path.display().to_string()) && message.contains("cannot write"), "{message}");
}
