//! `prepare` on real MNIST digits, on the same digits rendered as photos,
//! on synthetic drawings, and on bad files.

use std::path::PathBuf;

use ndarray::{Array2, Array3, ArrayView2, Axis, s};
use preprocess::prepare::{INK_FLOOR, MNIST_CENTRE_OF_MASS, MNIST_SATURATED_SHARE};
use preprocess::render::{PhotoStyle, encode_jpeg, render_photo};
use preprocess::{Invert, Layout, Limits, Options, PrepError, decode_grey, encode_png, prepare};

fn mnist_images(file: &str) -> Array3<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist").join(file);
    idx::mnist::load_images(&path).unwrap()
}

fn test_digits(n: usize) -> Array3<f32> {
    mnist_images("t10k-images-idx3-ubyte.gz").slice(s![..n, .., ..]).to_owned()
}

/// Pearson correlation of two images.
fn correlation(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> f64 {
    let n = a.len() as f64;
    let (mean_a, mean_b) = (a.sum() as f64 / n, b.sum() as f64 / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - mean_a, f64::from(y) - mean_b);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

/// The best correlation over shifts of up to one pixel: a digit placed a
/// pixel off (whole-pixel placement rounds) is the same digit.
fn similarity(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> f64 {
    let inner = b.slice(s![1..27, 1..27]);
    let mut best = f64::MIN;
    for dy in 0..3 {
        for dx in 0..3 {
            best = best.max(correlation(a.slice(s![dy..dy + 26, dx..dx + 26]), inner));
        }
    }
    best
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn centre_of_mass(image: ArrayView2<'_, f32>) -> (f64, f64) {
    let (mut total, mut rows, mut cols) = (0.0, 0.0, 0.0);
    for ((row, col), &value) in image.indexed_iter() {
        total += f64::from(value);
        rows += f64::from(value) * row as f64;
        cols += f64::from(value) * col as f64;
    }
    (rows / total, cols / total)
}

/// Rows and columns where the ink covers at least half a pixel: the
/// extent MNIST scaled to 20 pixels.
fn core_box(image: ArrayView2<'_, f32>) -> (usize, usize) {
    let rows = image.outer_iter().filter(|row| row.iter().any(|&v| v >= 0.5)).count();
    let cols = image.axis_iter(Axis(1)).filter(|col| col.iter().any(|&v| v >= 0.5)).count();
    (rows, cols)
}

#[test]
fn the_target_centre_of_mass_is_mnists_own() {
    let train = mnist_images("train-images-idx3-ubyte.gz");
    let (mut rows, mut cols) = (0.0, 0.0);
    for image in train.outer_iter() {
        let (row, col) = centre_of_mass(image);
        rows += row;
        cols += col;
    }
    let n = train.len_of(Axis(0)) as f64;
    let measured = (rows / n, cols / n);
    assert!(
        (measured.0 - MNIST_CENTRE_OF_MASS.0).abs() < 0.05 && (measured.1 - MNIST_CENTRE_OF_MASS.1).abs() < 0.05,
        "MNIST's mean centre of mass is {measured:?}, the constant says {MNIST_CENTRE_OF_MASS:?}"
    );
}

#[test]
fn the_target_share_of_saturated_ink_is_mnists_own() {
    let train = mnist_images("train-images-idx3-ubyte.gz");
    let ink = train.iter().filter(|&&value| value > INK_FLOOR).count();
    let saturated = train.iter().filter(|&&value| value >= 250.0 / 255.0).count();
    let measured = saturated as f64 / ink as f64;
    assert!(
        (measured - MNIST_SATURATED_SHARE).abs() < 0.01,
        "{measured} of MNIST's ink is saturated, the constant says {MNIST_SATURATED_SHARE}"
    );
}

#[test]
fn mnist_digits_come_back_as_they_were() {
    let digits = test_digits(300);
    let mut correlations = Vec::new();
    for (index, digit) in digits.outer_iter().enumerate() {
        let prepared = prepare(digit, &Options::default(), &format!("digit {index}")).unwrap();
        assert!(!prepared.inverted, "digit {index}: white on black must not be inverted");
        correlations.push(correlation(prepared.image.view(), digit));
    }
    let typical = median(correlations.clone());
    let worst = correlations.iter().copied().fold(f64::INFINITY, f64::min);
    // Matching MNIST's tone changes faint digits' grey levels, not their shape.
    assert!(typical > 0.97, "median correlation with the original {typical}");
    assert!(worst > 0.5, "worst correlation with the original {worst}");
}

#[test]
fn photos_of_mnist_digits_come_back_close_to_the_digits() {
    let digits = test_digits(200);
    let style = PhotoStyle::default();
    let (mut correlations, mut core_sides) = (Vec::new(), Vec::new());
    for (index, digit) in digits.outer_iter().enumerate() {
        let jpeg = encode_jpeg(&render_photo(digit, &style, index as u64), style.jpeg_quality);
        let name = format!("photo {index}");
        let grey = decode_grey(&jpeg, &name, Limits::default()).unwrap();
        let prepared = prepare(grey.view(), &Options::default(), &name).unwrap();
        assert!(prepared.inverted, "{name}: dark ink on paper must be inverted");
        correlations.push(similarity(prepared.image.view(), digit));
        let (rows, cols) = core_box(prepared.image.view());
        core_sides.push(rows.max(cols));
    }
    let sized_like_mnist = core_sides.iter().filter(|&&side| (19..=20).contains(&side)).count();
    assert!(sized_like_mnist >= 180, "{sized_like_mnist} of 200 photos have a core of 19-20 pixels: {core_sides:?}");
    let typical = median(correlations.clone());
    let poor = correlations.iter().filter(|&&c| c < 0.7).count();
    assert!(typical > 0.9, "median correlation with the original digit {typical}");
    assert!(poor <= 4, "{poor} of 200 photos came back poorly: {correlations:?}");
}

#[test]
fn uneven_lighting_and_dust_do_not_move_the_digit() {
    let digit = test_digits(1).index_axis(Axis(0), 0).to_owned();
    let clean = prepare(digit.view(), &Options::default(), "clean").unwrap();
    // Dark ink on paper lit from the left: the paper goes from 0.45 to 0.95.
    let zoomed = augment::zoom(digit.view(), 200.0 / 28.0, augment::Order::Linear).unwrap();
    let mut photo = Array2::from_shape_fn((300, 300), |(_, col)| 0.45 + 0.5 * col as f32 / 299.0);
    photo.slice_mut(s![50..250, 60..260]).zip_mut_with(&zoomed, |paper, &ink| *paper *= 1.0 - 0.85 * ink);
    // Dust: a few dark dots far from the digit.
    for (row, col) in [(10, 10), (290, 20), (280, 290), (20, 280)] {
        photo.slice_mut(s![row..row + 2, col..col + 2]).fill(0.1);
    }
    let prepared = prepare(photo.view(), &Options::default(), "lit").unwrap();
    let similar = similarity(prepared.image.view(), clean.image.view());
    assert!(similar > 0.9, "correlation with the clean digit {similar}");
    let (lit, clean) = (core_box(prepared.image.view()), core_box(clean.image.view()));
    assert!(lit.0.abs_diff(clean.0) <= 1 && lit.1.abs_diff(clean.1) <= 1, "core {lit:?}, clean {clean:?}");
}

#[test]
fn the_longer_side_becomes_20_pixels_and_the_aspect_ratio_holds() {
    // A 2:1 block of ink, dark on light.
    let mut grey = Array2::from_elem((200, 300), 0.9f32);
    grey.slice_mut(s![40..160, 100..160]).fill(0.1);
    let prepared = prepare(grey.view(), &Options::default(), "block").unwrap();
    // Sampling the block's soft edges may leave its outermost rows just under half.
    let (rows, cols) = core_box(prepared.image.view());
    assert!((18..=20).contains(&rows) && (8..=10).contains(&cols), "core of {rows}x{cols}");
    let (top, left, height, width) = prepared.ink_box;
    let near = |found: usize, expected: usize| found.abs_diff(expected) <= 2;
    assert!(near(top, 40) && near(left, 100) && near(height, 120) && near(width, 60), "{:?}", prepared.ink_box);
    let (row, col) = centre_of_mass(prepared.image.view());
    assert!((row - 14.0).abs() <= 0.5 && (col - 14.0).abs() <= 0.5, "centre of mass ({row}, {col})");
    // Fashion-MNIST's layout: the longer side fills the field.
    let options = Options { layout: Layout::FashionMnist, ..Options::default() };
    let prepared = prepare(grey.view(), &options, "block").unwrap();
    let (rows, cols) = core_box(prepared.image.view());
    assert!((26..=28).contains(&rows) && (12..=14).contains(&cols), "core of {rows}x{cols}");
}

#[test]
fn a_thin_stroke_survives_a_large_reduction() {
    // A 4-pixel-wide pen line in a 1200-pixel-high photo: reduced 60 times,
    // to a fifteenth of an output pixel. Sampling without smoothing first
    // would catch it in some positions and miss it in others.
    for left in [198, 201, 203, 205, 207] {
        let mut grey = Array2::from_elem((1200, 400), 1.0f32);
        grey.slice_mut(s![100..1100, left..left + 4]).fill(0.0);
        let prepared = prepare(grey.view(), &Options::default(), "line").unwrap();
        let column_mass: Vec<f32> = prepared.image.axis_iter(Axis(1)).map(|col| col.sum()).collect();
        let strongest = column_mass.iter().copied().fold(0.0, f32::max);
        assert!(strongest > 3.0, "line at {left}: the stroke faded to {strongest} over 20 rows");
        let rows_with_ink = prepared.image.outer_iter().filter(|row| row.iter().any(|&v| v > 0.1)).count();
        assert!(rows_with_ink >= 18, "line at {left}: only {rows_with_ink} rows show it");
    }
}

#[test]
fn polarity_is_detected_and_can_be_forced() {
    let digit = test_digits(1).index_axis(Axis(0), 0).to_owned();
    let dark_on_light = digit.mapv(|v| 0.9 - 0.8 * v);
    let auto = prepare(dark_on_light.view(), &Options::default(), "dark").unwrap();
    assert!(auto.inverted);
    let forced = prepare(dark_on_light.view(), &Options { invert: Invert::Yes, ..Options::default() }, "dark").unwrap();
    assert_eq!(auto, forced);
    let light_on_dark = prepare(digit.view(), &Options::default(), "light").unwrap();
    assert!(correlation(auto.image.view(), light_on_dark.image.view()) > 0.98);
    // Forcing the wrong polarity reads the paper as ink: a different image.
    let wrong = prepare(digit.view(), &Options { invert: Invert::Yes, ..Options::default() }, "wrong").unwrap();
    assert!(wrong.inverted);
    assert!(correlation(wrong.image.view(), light_on_dark.image.view()) < 0.5);
}

/// A drawing on a transparent canvas: ink of `ink` brightness where
/// `digit` is set, alpha following the ink.
fn transparent_png(digit: ArrayView2<'_, f32>, ink: u8) -> Vec<u8> {
    let mut canvas = image::RgbaImage::new(28, 28);
    for (x, y, pixel) in canvas.enumerate_pixels_mut() {
        let alpha = (digit[[y as usize, x as usize]] * 255.0).round() as u8;
        *pixel = image::Rgba([ink, ink, ink, alpha]);
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    canvas.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

#[test]
fn drawings_on_a_transparent_canvas_read_the_same_in_either_ink() {
    let digit = test_digits(1).index_axis(Axis(0), 0).to_owned();
    let black = decode_grey(&transparent_png(digit.view(), 0), "black.png", Limits::default()).unwrap();
    let white = decode_grey(&transparent_png(digit.view(), 255), "white.png", Limits::default()).unwrap();
    let black = prepare(black.view(), &Options::default(), "black.png").unwrap();
    let white = prepare(white.view(), &Options::default(), "white.png").unwrap();
    assert!(black.inverted && !white.inverted);
    let similarity = correlation(black.image.view(), white.image.view());
    assert!(similarity > 0.99, "{similarity}");
    assert!(correlation(white.image.view(), digit.view()) > 0.95);
}

#[test]
fn every_supported_format_decodes_to_the_same_grey() {
    let digit = test_digits(1).index_axis(Axis(0), 0).to_owned();
    let png = encode_png(digit.view());
    let reference = decode_grey(&png, "digit.png", Limits::default()).unwrap();
    let grey = image::load_from_memory(&png).unwrap();
    for format in [image::ImageFormat::Bmp, image::ImageFormat::Pnm, image::ImageFormat::Gif, image::ImageFormat::WebP]
    {
        let mut bytes = std::io::Cursor::new(Vec::new());
        grey.to_rgba8().write_to(&mut bytes, format).unwrap_or_else(|error| panic!("{format:?}: {error}"));
        let decoded = decode_grey(bytes.get_ref(), "digit", Limits::default())
            .unwrap_or_else(|error| panic!("{format:?}: {error}"));
        let difference = (&decoded - &reference).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
        assert!(difference < 0.01, "{format:?} differs by {difference}");
    }
    let jpeg = encode_jpeg(&grey.to_rgb8(), 95);
    let decoded = decode_grey(&jpeg, "digit.jpg", Limits::default()).unwrap();
    assert!(correlation(decoded.view(), reference.view()) > 0.98);
}

#[test]
fn blank_images_are_refused_as_having_no_ink() {
    let plain = Array2::from_elem((100, 100), 0.8f32);
    let noisy = Array2::from_shape_fn((100, 100), |(row, col)| {
        0.8 + 0.03 * (((row * 7919 + col * 104729) % 17) as f32 / 8.0 - 1.0)
    });
    for (name, image) in [("plain", plain), ("noisy", noisy)] {
        match prepare(image.view(), &Options::default(), name) {
            Err(error @ PrepError::NoInk { .. }) => assert!(error.to_string().starts_with(name), "{error}"),
            other => panic!("{name}: expected no ink, got {other:?}"),
        }
    }
    let message = prepare(Array2::from_elem((2, 2), f32::NAN).view(), &Options::default(), "nan").unwrap_err();
    assert!(message.to_string().contains("pixel (0, 0) is NaN"), "{message}");
}

/// A PNG made of a signature and a header chunk claiming `width x height`.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(width.to_be_bytes());
    chunk.extend(height.to_be_bytes());
    chunk.extend([8, 0, 0, 0, 0]);
    let mut crc = flate2::Crc::new();
    crc.update(&chunk);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&chunk);
    png.extend(crc.sum().to_be_bytes());
    // Some compressed data and the end, as a real file has.
    for (kind, data) in [(&b"IDAT"[..], &b"\x78\x9c\x03\x00\x00\x00\x00\x01"[..]), (b"IEND", b"")] {
        let mut chunk = kind.to_vec();
        chunk.extend(data);
        let mut crc = flate2::Crc::new();
        crc.update(&chunk);
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(&chunk);
        png.extend(crc.sum().to_be_bytes());
    }
    png
}

#[test]
fn bad_files_get_errors_that_name_them() {
    let digit = test_digits(1).index_axis(Axis(0), 0).to_owned();
    let png = encode_png(digit.view());
    let truncated = &png[..png.len() / 2];
    let cases: [(&str, &[u8], &str); 5] = [
        ("empty.png", b"", "empty file"),
        ("notes.txt", b"these are not pixels", "not an image"),
        ("truncated.png", truncated, "cannot decode the PNG image"),
        ("huge.png", &png_header_only(100_000, 100_000), "100000x100000 pixels"),
        ("huge.pgm", b"P5 100000 100000 255\n\x00", "refused before decoding"),
    ];
    for (name, bytes, expected) in cases {
        let message = decode_grey(bytes, name, Limits::default()).unwrap_err().to_string();
        assert!(message.starts_with(name) && message.contains(expected), "{name}: {message}");
    }
    // The limit is the caller's.
    let small = Limits { max_pixels: 100, ..Limits::default() };
    assert!(matches!(decode_grey(&png, "digit.png", small), Err(PrepError::TooManyPixels { width: 28, .. })));
}
