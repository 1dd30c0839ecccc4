//! Measures how much memory evaluation adds, to show it does not grow with the
//! number of images (the seed's out-of-memory error, fixed):
//!
//!     cargo run --release -p model --bin eval_memory -- N_IMAGES [BATCH_SIZE]
//!
//! Creates `N_IMAGES` random 28x28 images on the CPU, runs a warm-up
//! evaluation of four batches, then evaluates all of them with the intended
//! network, and prints one JSON line: the process's peak resident memory
//! (`VmHWM`) before and after the full evaluation, in KiB.

use std::process::ExitCode;

use model::{Architecture, Network, evaluate};
use tch::{Device, Kind, Tensor};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |text: Option<String>, default: i64| text.and_then(|text| text.parse().ok()).unwrap_or(default);
    let n_images = parse(args.next(), 5_000);
    let batch_size = parse(args.next(), 500);
    tch::manual_seed(0);
    let network = Network::new(Architecture::Intended, Device::Cpu);
    let images = Tensor::rand([n_images, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [n_images], (Kind::Int64, Device::Cpu));
    // Warm up libtorch's thread pool and allocator first: its peak settles
    // within the first few batches (measured: one batch is not enough).
    let warm_up = (4 * batch_size).min(n_images);
    if let Err(error) =
        evaluate(&network, &images.narrow(0, 0, warm_up), &labels.narrow(0, 0, warm_up), batch_size as usize)
    {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    let before = peak_rss_kib().unwrap_or(0);
    let start = std::time::Instant::now();
    let evaluation = match evaluate(&network, &images, &labels, batch_size as usize) {
        Ok(evaluation) => evaluation,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let after = peak_rss_kib().unwrap_or(0);
    println!(
        "{{\"n_images\": {}, \"batch_size\": {batch_size}, \"peak_rss_before_kib\": {before}, \"peak_rss_after_kib\": {after}, \"seconds\": {:.2}}}",
        evaluation.n_images,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
