//! The Rust side of `scripts/bench_step.py`: times the model crate's own
//! `train_step` or `evaluate` on random data (speed does not depend on the
//! values) after a warm-up, and prints one JSON line.
//!
//! ```text
//! cargo run --release -p model --example bench -- train --batch 50 --steps 60 --threads 2
//! cargo run --release -p model --example bench -- eval --batch 500 --images 10000 --threads 2
//! cargo run --release -p model --example bench -- train --device cuda
//! cargo run --release -p model --example bench -- train --precision bf16
//! cargo run --release -p model --example bench -- train --read-every 10
//! cargo run --release -p model --example bench -- train --network vgg
//! ```

use std::time::Instant;

use model::{
    Adam, AdamConfig, Architecture, DeviceRequest, Network, Precision, StepOnDevice, evaluate, train_step_on_device,
};
use tch::{Device, Kind, Tensor};

/// The command line: a mode, then `--name value` pairs.
struct Options {
    mode: String,
    batch: i64,
    steps: usize,
    warmup: usize,
    images: i64,
    threads: i32,
    device: DeviceRequest,
    precision: Precision,
    /// Read the steps' losses every this many steps (1: after each, as `train_step_in`).
    read_every: usize,
    /// The network timed.
    architecture: Architecture,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or(
        "usage: bench train|eval [--batch N] [--steps N] [--warmup N] [--images N] [--threads N] [--device cpu|cuda[:N]] [--precision fp32|bf16] [--read-every N] [--network intended|seed|vgg]",
    )?;
    let mut options = Options {
        mode,
        batch: 50,
        steps: 60,
        warmup: 10,
        images: 10_000,
        threads: 2,
        device: DeviceRequest::Cpu,
        precision: Precision::Float32,
        read_every: 1,
        architecture: Architecture::Intended,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--device" {
            options.device = value.parse().map_err(|error| format!("--device: {error}"))?;
            continue;
        }
        if flag == "--network" {
            options.architecture = value.parse().map_err(|error| format!("--network: {error}"))?;
            continue;
        }
        if flag == "--precision" {
            options.precision = value.parse().map_err(|error| format!("--precision: {error}"))?;
            continue;
        }
        let number: i64 = value.parse().map_err(|_| format!("{flag}: expected a whole number, found {value:?}"))?;
        match flag.as_str() {
            "--batch" => options.batch = number,
            "--steps" => options.steps = number as usize,
            "--warmup" => options.warmup = number as usize,
            "--images" => options.images = number,
            "--threads" => options.threads = number as i32,
            "--read-every" => options.read_every = number.max(1) as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

/// The network `options` name, on `device`, computing batch norm, pooling
/// and leaky ReLU as the trainer does by default (`--fused-tail auto`: one
/// fused node in bf16, ATen's calls in fp32); BENCH_TAIL=fused or
/// BENCH_TAIL=composite chooses for an A/B (`Network::set_fused_kernels`).
fn network_to_time(options: &Options, device: Device) -> Result<Network, Box<dyn std::error::Error>> {
    let mut network = Network::new(options.architecture, device)?;
    let fused = match std::env::var("BENCH_TAIL").as_deref() {
        Ok("fused") => true,
        Ok("composite") => false,
        Ok(other) => return Err(format!("BENCH_TAIL: expected fused or composite, found {other:?}").into()),
        Err(_) => options.precision == model::Precision::BFloat16,
    };
    network.set_fused_kernels(fused);
    Ok(network)
}

/// Pins glibc's malloc thresholds as the trainer does, unless BENCH_HEAP=default
/// asks for glibc's own (an A/B of `model::allocator::keep_freed_memory`).
fn choose_heap() {
    if std::env::var("BENCH_HEAP").as_deref() != Ok("default") {
        model::allocator::keep_freed_memory();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    choose_heap();
    tch::set_num_threads(options.threads);
    tch::manual_seed(0);
    let device = options.device.resolve()?;
    options.precision.check_native(device)?;
    let network = network_to_time(&options, device)?;
    match options.mode.as_str() {
        "train" => time_training(&options, &network)?,
        "eval" => time_evaluation(&options, &network)?,
        other => return Err(format!("unknown mode {other}: expected train or eval").into()),
    }
    Ok(())
}

/// Times `options.steps` training steps after a warm-up and prints the rate as JSON.
fn time_training(options: &Options, network: &Network) -> Result<(), Box<dyn std::error::Error>> {
    let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
    if std::env::var("BENCH_ADAM").as_deref() == Ok("composite") {
        optimizer.kernel = model::AdamKernel::Composite;
    }
    // BENCH_SHADOW=off: the bf16 step casts the dense weights every step instead.
    optimizer.bf16_shadows = std::env::var("BENCH_SHADOW").as_deref() != Ok("off");
    // The batch starts on the host, as the trainer's batches do.
    let images = Tensor::rand([options.batch, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [options.batch], (Kind::Int64, Device::Cpu));
    let mut pending = Vec::new();
    let mut step = |optimizer: &mut Adam| -> Result<(), model::ModelError> {
        pending.push(train_step_on_device(network, optimizer, &images, &labels, options.precision)?);
        if pending.len() >= options.read_every {
            StepOnDevice::read_all(&pending)?;
            pending.clear();
        }
        Ok(())
    };
    for _ in 0..options.warmup {
        step(&mut optimizer)?;
    }
    let start = Instant::now();
    for _ in 0..options.steps {
        step(&mut optimizer)?;
    }
    StepOnDevice::read_all(&pending)?;
    let seconds = start.elapsed().as_secs_f64();
    let images_per_second = (options.batch as usize * options.steps) as f64 / seconds;
    println!(
        "{{\"mode\":\"train\",\"device\":\"{}\",\"precision\":\"{}\",\"batch\":{},\"images_per_second\":{images_per_second:.1}}}",
        options.device,
        options.precision.name(),
        options.batch
    );
    Ok(())
}

/// Times one evaluation of `options.images` random images and prints the seconds as JSON.
fn time_evaluation(options: &Options, network: &Network) -> Result<(), Box<dyn std::error::Error>> {
    let images = Tensor::rand([options.images, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [options.images], (Kind::Int64, Device::Cpu));
    let warmup = images.narrow(0, 0, options.batch.min(options.images));
    evaluate(network, &warmup, &labels.narrow(0, 0, warmup.size()[0]), options.batch as usize)?;
    let start = Instant::now();
    evaluate(network, &images, &labels, options.batch as usize)?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"eval\",\"batch\":{},\"images\":{},\"seconds\":{seconds:.4}}}",
        options.batch, options.images
    );
    Ok(())
}
