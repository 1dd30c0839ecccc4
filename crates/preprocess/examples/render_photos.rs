//! Renders MNIST test digits as phone photos (colour JPEG, dark ink on
//! tinted, noisy paper, off-centre), to try `trainer predict` on or to
//! measure it:
//!
//!     cargo run --release -p preprocess --example render_photos -- OUT_DIR [COUNT] [SIDE]
//!
//! Writes `OUT_DIR/{index}-{label}.jpg` for the first COUNT (default 20)
//! test digits; SIDE fixes the photos' size (default: 100 to 400 pixels).

use std::path::PathBuf;

use preprocess::render::{PhotoStyle, encode_jpeg, render_photo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: render_photos OUT_DIR [COUNT] [SIDE]")?);
    let count: usize = args.next().map_or(Ok(20), |text| text.parse())?;
    let mut style = PhotoStyle::default();
    if let Some(side) = args.next() {
        let side: u32 = side.parse()?;
        style.side = (side, side);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let test = idx::mnist::load_split(&dir.join("t10k-images-idx3-ubyte.gz"), &dir.join("t10k-labels-idx1-ubyte.gz"))?;
    std::fs::create_dir_all(&out)?;
    for (index, (digit, label)) in test.images.outer_iter().zip(&test.labels).take(count).enumerate() {
        let photo = render_photo(digit, &style, index as u64);
        std::fs::write(out.join(format!("{index:05}-{label}.jpg")), encode_jpeg(&photo, style.jpeg_quality))?;
    }
    println!("wrote {} photos to {}", count.min(test.len()), out.display());
    Ok(())
}
