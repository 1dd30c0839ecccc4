//! Time to decode and prepare one image, warm, on one thread: a 28x28 PNG
//! (an MNIST digit as a file) and a 400x400 colour JPEG photo of one.
//!
//!     cargo bench -p preprocess
//!
//! The network's share of `trainer predict` is measured end to end by
//! `scripts/bench_predict.sh`.

use std::path::PathBuf;
use std::time::Instant;

use preprocess::render::{PhotoStyle, encode_jpeg, render_photo};
use preprocess::{Limits, Options, decode_grey, encode_png, prepare};

/// Median seconds per call of `work` over `n` calls, after `n / 10` warm-up calls.
fn median_seconds(n: usize, mut work: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        work();
    }
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let test = idx::mnist::load_images(&dir.join("t10k-images-idx3-ubyte.gz")).expect("MNIST test images");
    let digit = test.index_axis(ndarray::Axis(0), 0).to_owned();
    let png = encode_png(digit.view());
    let style = PhotoStyle { side: (400, 400), ..PhotoStyle::default() };
    let jpeg = encode_jpeg(&render_photo(digit.view(), &style, 1), style.jpeg_quality);
    let options = Options::default();
    for (name, bytes) in [("28x28 PNG", &png), ("400x400 JPEG", &jpeg)] {
        let decode = median_seconds(200, || {
            decode_grey(bytes, name, Limits::default()).unwrap();
        });
        let total = median_seconds(200, || {
            let grey = decode_grey(bytes, name, Limits::default()).unwrap();
            prepare(grey.view(), &options, name).unwrap();
        });
        println!("{name:>13}: decode {:.3} ms, decode + prepare {:.3} ms", decode * 1e3, total * 1e3);
    }
}
