//! Times loading the embedded MNIST (four gzip IDX files, split like the seed).
//! Run with `cargo bench -p idx`; prints the best and median of several loads.

use std::path::PathBuf;
use std::time::Instant;

use idx::mnist::{DEFAULT_VALIDATION_SIZE, Mnist};

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let n_runs = 7;
    let mut seconds: Vec<f64> = (0..n_runs)
        .map(|_| {
            let start = Instant::now();
            let mnist = Mnist::load(&dir, DEFAULT_VALIDATION_SIZE).expect("load MNIST");
            let elapsed = start.elapsed().as_secs_f64();
            assert_eq!(mnist.train.len() + mnist.validation.len() + mnist.test.len(), 70_000);
            elapsed
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    println!(
        "load_mnist: best {:.3} s, median {:.3} s over {n_runs} loads of 70,000 images",
        seconds[0],
        seconds[n_runs / 2]
    );
}
