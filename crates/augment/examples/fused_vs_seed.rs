//! How the fused mode's output differs from the seed mode's, in numbers:
//!
//!     cargo run --release -p augment --example fused_vs_seed [-- N_IMAGES]
//!
//! Both modes draw the same random parameters for each image, so they apply
//! the same geometric transformation; the fused mode interpolates once
//! instead of three times. Printed: the per-pixel differences between the two,
//! and how sharp each result is (mean absolute difference between
//! neighbouring pixels, a simple measure that blur lowers) next to the
//! originals', and how much ink (sum of pixels) each keeps.

use augment::{Augmenter, Pipeline};
use ndarray::{Array3, Axis, s};

fn sharpness(images: &Array3<f32>) -> f64 {
    let vertical = (&images.slice(s![.., 1.., ..]) - &images.slice(s![.., ..-1, ..])).mapv(|v| f64::from(v.abs()));
    let horizontal = (&images.slice(s![.., .., 1..]) - &images.slice(s![.., .., ..-1])).mapv(|v| f64::from(v.abs()));
    (vertical.sum() + horizontal.sum()) / (vertical.len() + horizontal.len()) as f64
}

fn ink(images: &Array3<f32>) -> f64 {
    images.iter().map(|&v| f64::from(v)).sum::<f64>() / images.len_of(Axis(0)) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_images: usize = std::env::args().nth(1).map(|text| text.parse()).transpose()?.unwrap_or(10_000);
    let data_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let mnist = idx::mnist::Mnist::load(&data_dir, idx::mnist::DEFAULT_VALIDATION_SIZE)?;
    let n_images = n_images.min(mnist.train.len());
    let originals = mnist.train.images.slice(s![..n_images, .., ..]).to_owned();
    let indices: Vec<u64> = (0..n_images as u64).collect();
    let run = |spec| -> Result<Array3<f32>, augment::AugmentError> {
        let mut output = Array3::zeros(originals.dim());
        Augmenter::new(Pipeline::parse(spec)?, 0).augment_batch(originals.view(), &indices, 0, output.view_mut())?;
        Ok(output)
    };
    let (seed, fused) = (run("seed")?, run("fused")?);

    let difference = (&seed - &fused).mapv(|v| f64::from(v.abs()));
    let mut sorted: Vec<f64> = difference.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!("{n_images} MNIST training digits, same random parameters in both modes:");
    println!(
        "  |seed - fused| per pixel: mean {:.4}, median {:.4}, 99th percentile {:.4}, max {:.4}",
        difference.mean().unwrap_or(f64::NAN),
        quantile(0.5),
        quantile(0.99),
        quantile(1.0)
    );
    println!(
        "  sharpness (mean |neighbour difference|): original {:.4}, seed {:.4}, fused {:.4}",
        sharpness(&originals),
        sharpness(&seed),
        sharpness(&fused)
    );
    println!("  ink per image: original {:.2}, seed {:.2}, fused {:.2}", ink(&originals), ink(&seed), ink(&fused));
    Ok(())
}
