//! Evaluation takes no more memory for more images: the growth of the peak
//! resident memory during an evaluation, measured for several numbers of
//! images, has a slope near zero bytes per image.
//!
//! Each measurement is a child process (`eval_memory`) with glibc's mmap
//! threshold fixed (`MALLOC_MMAP_THRESHOLD_`): with its default dynamic
//! threshold the peak depends on which blocks the allocator happened to
//! keep (measured on one Intel machine: 0.4 MB or 152 MB for the same
//! 60,000 images, by run), which is not a property of the code.

use std::process::Command;

/// One evaluation of `n_images`: the peak before it and the growth during it, in bytes.
fn measure(n_images: u64, extra: &[&str]) -> (u64, u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_eval_memory"))
        .args([n_images.to_string(), "500".to_owned()])
        .args(extra)
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["n_images"], n_images);
    let (before, after) =
        (report["peak_rss_before_kib"].as_u64().unwrap(), report["peak_rss_after_kib"].as_u64().unwrap());
    (before * 1024, after.saturating_sub(before) * 1024)
}

/// The least-squares slope of growth against images, in bytes per image.
fn slope(points: &[(u64, u64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|&(x, _)| x as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|&(_, y)| y as f64).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|&(x, y)| (x as f64 - mean_x) * (y as f64 - mean_y)).sum();
    let variance: f64 = points.iter().map(|&(x, _)| (x as f64 - mean_x).powi(2)).sum();
    covariance / variance
}

/// Bytes per image a growth must stay under: a copy of the images is 3,136
/// bytes an image, the intended network's activations about 100 KB.
const MAX_SLOPE: f64 = 256.0;

#[test]
fn peak_memory_does_not_grow_with_the_number_of_images_evaluated() {
    let sizes = [5_000, 15_000, 30_000];
    let measured: Vec<(u64, (u64, u64))> = sizes.iter().map(|&n| (n, measure(n, &[]))).collect();
    let growths: Vec<(u64, u64)> = measured.iter().map(|&(n, (_, growth))| (n, growth)).collect();
    // The measurement sees memory: the data (3,136 bytes an image) is allocated before it.
    let (first_before, last_before) = (measured[0].1.0, measured[2].1.0);
    assert!(last_before >= first_before + 25_000 * 3_136 * 9 / 10, "{measured:?}");
    let per_image = slope(&growths);
    assert!(per_image < MAX_SLOPE, "evaluation grew the peak by {per_image:.0} bytes an image: {growths:?}");
    // And the growth itself is small: one batch's activations and libtorch's buffers.
    assert!(growths.iter().all(|&(_, growth)| growth < 64 << 20), "{growths:?}");
}

#[test]
fn the_measurement_sees_an_evaluation_that_keeps_what_it_evaluated() {
    let growths: Vec<(u64, u64)> = [5_000, 15_000].iter().map(|&n| (n, measure(n, &["--keep-copies"]).1)).collect();
    let per_image = slope(&growths);
    assert!(per_image > 2_500.0, "a copy of 3,136 bytes an image was measured as {per_image:.0}: {growths:?}");
}
