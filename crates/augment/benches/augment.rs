//! Augmentation throughput on real MNIST digits: single-image kernels on one
//! thread, and the batch API on one and on all threads.
//!
//!     cargo bench -p augment                            # human-readable
//!     cargo bench -p augment -- --n-images 2000 --json  # one JSON line (scripts/augment_vs_scipy.py)

use std::path::PathBuf;
use std::time::Instant;

use augment::original::{Scratch, augment_fused_into, augment_original_into};
use augment::{Augmenter, Order, ParamRanges, Pipeline};
use ndarray::{Array2, Array3, Axis, s};

/// The seed's affine followed by Simard's elastic distortion.
const ELASTIC: &str = "seed+elastic:34,4";
/// The Keras CNNs' continuous affine (`--augment affine:10,0.1,0.1`, the `strided-affine` runs).
const AFFINE: &str = "affine:10,0.1,0.1";

fn load_digits(n_images: usize) -> Array3<f32> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let mnist = idx::mnist::Mnist::load(&dir, idx::mnist::DEFAULT_VALIDATION_SIZE).expect("load MNIST");
    let n_images = n_images.min(mnist.train.len());
    mnist.train.images.slice(s![..n_images, .., ..]).to_owned()
}

/// Best of `n_runs` timings of `work`, in seconds.
fn best_seconds(n_runs: usize, mut work: impl FnMut()) -> f64 {
    (0..n_runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn single_image_rate(images: &Array3<f32>, mode: &str) -> f64 {
    let ranges = ParamRanges::default();
    let mut scratch = Scratch::new();
    let mut output = Array2::zeros((28, 28));
    let seconds = best_seconds(5, || {
        for (image_idx, image) in images.outer_iter().enumerate() {
            let params = ranges.sample(0, 0, image_idx as u64);
            let result = match mode {
                "seed" => augment_original_into(image, &params, Order::Cubic, &mut scratch, output.view_mut()),
                _ => augment_fused_into(image, &params, Order::Cubic, &mut scratch, output.view_mut()),
            };
            result.expect("augment");
        }
    });
    images.len_of(Axis(0)) as f64 / seconds
}

fn batch_rate(images: &Array3<f32>, mode: &str, n_threads: usize) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(n_threads).build().expect("thread pool");
    let augmenter = Augmenter::new(Pipeline::parse(mode).expect("a known transform"), 0);
    let indices: Vec<u64> = (0..images.len_of(Axis(0)) as u64).collect();
    let mut output = Array3::zeros(images.dim());
    let seconds = best_seconds(5, || {
        pool.install(|| augmenter.augment_batch(images.view(), &indices, 0, output.view_mut())).expect("augment");
    });
    images.len_of(Axis(0)) as f64 / seconds
}

/// How many producer threads feed a GPU, at one thread's rate times the
/// thread count (the scaling measured above is close to linear): a 2-second
/// epoch of 55,000 images (27,500 images/s, ~30,000 with evaluation's share
/// of the epoch), and 0.3 ms steps of 50 images back to back (166,667 images/s).
fn print_threads_to_feed(seed_per_thread: f64, elastic_per_thread: f64) {
    for (needed, what) in
        [(30_000.0, "a 2-second epoch (30,000 images/s)"), (50.0 / 0.3e-3, "0.3 ms steps of 50 (166,667 images/s)")]
    {
        let threads = |per_thread: f64| (needed / per_thread).ceil();
        println!(
            "  threads to feed {what}: {} with the seed's augmentation, {} with {ELASTIC} after it",
            threads(seed_per_thread),
            threads(elastic_per_thread)
        );
    }
}

/// One pipeline's batch rates on one thread and on every core.
fn print_pipeline_rates(spec: &str, one_thread: f64, all_threads: f64, n_cores: usize) {
    println!("  {spec}, batch, 1 thread:  {one_thread:>9.0} images/s ({:.2} us/image)", 1e6 / one_thread);
    println!(
        "  {spec}, batch, {n_cores} threads: {all_threads:>9.0} images/s (x{:.2} over 1 thread)",
        all_threads / one_thread
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_images = args
        .iter()
        .position(|arg| arg == "--n-images")
        .and_then(|position| args.get(position + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(10_000);
    let json = args.iter().any(|arg| arg == "--json");
    let images = load_digits(n_images);
    let n_cores = std::thread::available_parallelism().map_or(1, usize::from);

    let seed_single = single_image_rate(&images, "seed");
    let fused_single = single_image_rate(&images, "fused");
    let seed_batch_1 = batch_rate(&images, "seed", 1);
    let seed_batch_all = batch_rate(&images, "seed", n_cores);
    let fused_batch_all = batch_rate(&images, "fused", n_cores);
    let elastic_batch_1 = batch_rate(&images, ELASTIC, 1);
    let elastic_batch_all = batch_rate(&images, ELASTIC, n_cores);
    let affine_batch_1 = batch_rate(&images, AFFINE, 1);
    let affine_batch_all = batch_rate(&images, AFFINE, n_cores);
    if json {
        println!(
            "{{\"n_images\": {}, \"n_cores\": {n_cores}, \"seed_single_per_s\": {seed_single:.1}, \
             \"fused_single_per_s\": {fused_single:.1}, \"seed_batch_1_thread_per_s\": {seed_batch_1:.1}, \
             \"seed_batch_all_threads_per_s\": {seed_batch_all:.1}, \"fused_batch_all_threads_per_s\": {fused_batch_all:.1}, \
             \"seed_elastic_batch_1_thread_per_s\": {elastic_batch_1:.1}, \
             \"seed_elastic_batch_all_threads_per_s\": {elastic_batch_all:.1}, \
             \"affine_batch_1_thread_per_s\": {affine_batch_1:.1}, \
             \"affine_batch_all_threads_per_s\": {affine_batch_all:.1}}}",
            images.len_of(Axis(0))
        );
    } else {
        let n = images.len_of(Axis(0));
        println!("augment on {n} MNIST digits (best of 5 runs):");
        println!(
            "  seed mode, one image at a time, 1 thread: {seed_single:>9.0} images/s ({:.2} us/image)",
            1e6 / seed_single
        );
        println!(
            "  fused mode, one image at a time, 1 thread: {fused_single:>8.0} images/s ({:.2} us/image)",
            1e6 / fused_single
        );
        println!("  seed mode, batch, 1 thread:               {seed_batch_1:>9.0} images/s");
        println!(
            "  seed mode, batch, {n_cores} threads:              {seed_batch_all:>9.0} images/s (x{:.2} over 1 thread)",
            seed_batch_all / seed_batch_1
        );
        println!("  fused mode, batch, {n_cores} threads:             {fused_batch_all:>9.0} images/s");
        print_pipeline_rates(ELASTIC, elastic_batch_1, elastic_batch_all, n_cores);
        print_pipeline_rates(AFFINE, affine_batch_1, affine_batch_all, n_cores);
        print_threads_to_feed(seed_batch_1, elastic_batch_1);
    }
}
