//! Writes a PNG grid of MNIST digits before and after augmentation, so anyone
//! can see that the transformation is sane:
//!
//!     cargo run --release -p augment --example augment_grid -- [OUTPUT.png] [N_DIGITS] [PIPELINE...]
//!     cargo run --release -p augment --example augment_grid -- docs/images/augment-elastic.png 8 elastic:34,4 seed+elastic:34,4
//!
//! Each row is one training digit: the original, then three augmentations
//! (epochs 0, 1, 2) by each pipeline in turn; by default `seed` and `fused`,
//! which applies the same random transformations in one pass.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use augment::{Augmenter, Pipeline};
use ndarray::{Array2, Array3, Axis, s};

const SCALE: usize = 3;
const GAP: usize = 4;
const N_EPOCHS: u64 = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let output_path = PathBuf::from(args.next().unwrap_or_else(|| "augment-grid.png".to_owned()));
    let n_digits: usize = args.next().map(|text| text.parse()).transpose()?.unwrap_or(8);
    let mut specs: Vec<String> = args.collect();
    if specs.is_empty() {
        specs = vec!["seed".to_owned(), "fused".to_owned()];
    }

    let data_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let mnist = idx::mnist::Mnist::load(&data_dir, idx::mnist::DEFAULT_VALIDATION_SIZE)?;
    let digits: Array3<f32> = mnist.train.images.slice(s![..n_digits, .., ..]).to_owned();
    let indices: Vec<u64> = (0..n_digits as u64).collect();

    let mut columns = vec![digits.clone()];
    for spec in &specs {
        let augmenter = Augmenter::new(Pipeline::parse(spec)?, 2026);
        for epoch in 0..N_EPOCHS {
            let mut augmented = Array3::zeros(digits.dim());
            augmenter.augment_batch(digits.view(), &indices, epoch, augmented.view_mut())?;
            columns.push(augmented);
        }
    }

    let (rows, cols) = (digits.dim().1, digits.dim().2);
    let (cell_height, cell_width) = (rows * SCALE + GAP, cols * SCALE + GAP);
    let mut canvas = Array2::<u8>::from_elem((n_digits * cell_height + GAP, columns.len() * cell_width + GAP), 96);
    for (column_idx, column) in columns.iter().enumerate() {
        for (digit_idx, image) in column.axis_iter(Axis(0)).enumerate() {
            for ((row, col), &value) in image.indexed_iter() {
                // Cubic splines ring slightly outside [0, 1]: clamp for display only.
                let gray = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
                let top = GAP + digit_idx * cell_height + row * SCALE;
                let left = GAP + column_idx * cell_width + col * SCALE;
                canvas.slice_mut(s![top..top + SCALE, left..left + SCALE]).fill(gray);
            }
        }
    }

    let (height, width) = canvas.dim();
    let mut encoder = png::Encoder::new(BufWriter::new(File::create(&output_path)?), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(canvas.as_slice().ok_or("canvas is contiguous")?)?;
    writer.finish()?;
    let columns: Vec<String> = specs.iter().map(|spec| format!("{spec} epochs 0-{}", N_EPOCHS - 1)).collect();
    println!("wrote {} ({n_digits} digits; columns: original, {})", output_path.display(), columns.join(", "));
    Ok(())
}
