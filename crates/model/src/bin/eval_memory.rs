//! Measures how much memory evaluation adds, to show it does not grow with the
//! number of images (the seed's out-of-memory error, fixed):
//!
//!     cargo run --release -p model --bin eval_memory -- N_IMAGES [BATCH_SIZE] [--keep-copies]
//!
//! Creates `N_IMAGES` random 28x28 images on the CPU, runs a warm-up
//! evaluation of four batches, then evaluates all of them with the intended
//! network, and prints one JSON line: the process's peak resident memory
//! (`VmHWM`) before and after the full evaluation, in KiB. With
//! `--keep-copies` it also keeps a copy of every batch it evaluated, as an
//! evaluation that grows with the images would (3,136 bytes an image): the
//! test uses it to show that its measurement sees such growth.
//!
//! The peak depends on glibc's allocator: it moves its mmap threshold up to
//! the size of blocks freed (to 32 MiB), after which a batch's activations
//! come from the heap, which it may keep, instead of their own mappings,
//! which it returns; whether and when that happens varies by run and by
//! machine. `MALLOC_MMAP_THRESHOLD_=131072` fixes the threshold, so the peak
//! follows what is live (the test runs it so).

use std::process::ExitCode;

use model::{Architecture, Network, evaluate};
use tch::{Device, Kind, Tensor};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Evaluates batch by batch, keeping a copy of each batch until the end.
fn evaluate_keeping_copies(
    network: &Network,
    images: &Tensor,
    labels: &Tensor,
    batch_size: i64,
) -> Result<u64, model::ModelError> {
    let n_images = images.size()[0];
    let (mut copies, mut n_evaluated) = (Vec::new(), 0);
    for start in (0..n_images).step_by(batch_size as usize) {
        let length = batch_size.min(n_images - start);
        let batch = images.narrow(0, start, length);
        n_evaluated += evaluate(network, &batch, &labels.narrow(0, start, length), batch_size as usize)?.n_images;
        copies.push(batch.copy());
    }
    Ok(n_evaluated)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |text: Option<String>, default: i64| text.and_then(|text| text.parse().ok()).unwrap_or(default);
    let n_images = parse(args.next(), 5_000);
    let batch_size = parse(args.next(), 500);
    let keep_copies = args.next().as_deref() == Some("--keep-copies");
    tch::manual_seed(0);
    let network = match Network::new(Architecture::Intended, Device::Cpu) {
        Ok(network) => network,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
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
    let evaluated = if keep_copies {
        evaluate_keeping_copies(&network, &images, &labels, batch_size)
    } else {
        evaluate(&network, &images, &labels, batch_size as usize).map(|evaluation| evaluation.n_images)
    };
    let n_evaluated = match evaluated {
        Ok(n_evaluated) => n_evaluated,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let after = peak_rss_kib().unwrap_or(0);
    println!(
        "{{\"n_images\": {}, \"batch_size\": {batch_size}, \"peak_rss_before_kib\": {before}, \"peak_rss_after_kib\": {after}, \"seconds\": {:.2}}}",
        n_evaluated,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
