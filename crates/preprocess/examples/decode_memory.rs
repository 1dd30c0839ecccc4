//! Measures the memory one large image costs `trainer predict` and the web
//! app: decoding plus preparing it, as the process's peak resident memory
//! (`VmHWM`) grows, against what `Limits::max_decode_bytes` is checked
//! against (`preprocess::memory_needed`):
//!
//!     cargo run --release -p preprocess --example decode_memory -- WIDTH HEIGHT [grey8|rgb8|rgba16]
//!
//! The image is a PNG made in memory (a dark square on white paper, so it
//! has ink to find), with the limit lifted so that it is decoded whatever
//! its size. Prints one JSON line.

use std::io::Write;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// A PNG written row by row: a dark square in the middle of white paper.
fn png_bytes(width: u32, height: u32, kind: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let (color, depth, samples, bytes) = match kind {
        "grey8" => (png::ColorType::Grayscale, png::BitDepth::Eight, 1, 1),
        "rgb8" => (png::ColorType::Rgb, png::BitDepth::Eight, 3, 1),
        "rgba16" => (png::ColorType::Rgba, png::BitDepth::Sixteen, 4, 2),
        other => return Err(format!("unknown kind {other:?}: grey8, rgb8 or rgba16").into()),
    };
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        let mut writer = encoder.write_header()?;
        let mut stream = writer.stream_writer()?;
        let pixel_bytes = samples * bytes;
        for row in 0..height {
            let inside_rows = row > height / 3 && row < 2 * height / 3;
            let mut line = vec![0xffu8; width as usize * pixel_bytes];
            if inside_rows {
                let (from, to) = ((width / 3) as usize, (2 * width / 3) as usize);
                line[from * pixel_bytes..to * pixel_bytes].fill(0);
                if kind == "rgba16" {
                    // Keep the square opaque: alpha is the last two bytes of each pixel.
                    for pixel in from..to {
                        line[pixel * 8 + 6..pixel * 8 + 8].fill(0xff);
                    }
                }
            }
            stream.write_all(&line)?;
        }
        stream.finish()?;
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: decode_memory WIDTH HEIGHT [grey8|rgb8|rgba16]";
    let width: u32 = args.next().ok_or(usage)?.parse()?;
    let height: u32 = args.next().ok_or(usage)?.parse()?;
    let kind = args.next().unwrap_or_else(|| "grey8".to_owned());
    let bytes = png_bytes(width, height, &kind)?;
    let before = peak_rss_bytes();
    let limits = preprocess::Limits { max_decode_bytes: u64::MAX, max_pixels: u64::MAX, ..Default::default() };
    let grey = preprocess::decode_grey(&bytes, "generated.png", limits)?;
    let prepared = preprocess::prepare(grey.view(), &preprocess::Options::default(), "generated.png")?;
    let after = peak_rss_bytes();
    let bytes_per_pixel = match kind.as_str() {
        "grey8" => 1,
        "rgb8" => 3,
        _ => 8,
    };
    let pixels = u64::from(width) * u64::from(height);
    println!(
        "{{\"width\": {width}, \"height\": {height}, \"kind\": \"{kind}\", \"file_bytes\": {}, \"peak_growth_bytes\": {}, \"memory_needed\": {}, \"inverted\": {}}}",
        bytes.len(),
        after - before,
        preprocess::memory_needed(pixels, bytes_per_pixel, kind == "rgba16"),
        prepared.inverted
    );
    Ok(())
}
