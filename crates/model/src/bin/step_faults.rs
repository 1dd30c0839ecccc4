//! Counts the page faults of training steps, to show that a step reuses its
//! memory instead of asking the system for fresh pages each time
//! (`model::allocator`):
//!
//!     cargo run --release -p model --bin step_faults -- [STEPS] [--default-heap]
//!
//! Trains the intended network on random images for a warm-up of 10 steps,
//! then `STEPS` more (default 20), with [`keep_freed_memory`] called first
//! unless `--default-heap` is given, and prints one JSON line: what the heap
//! setting was, the median of the timed steps' minor page faults (from
//! `/proc/self/stat`, read around each step) and the most in one step. A step that hands its blocks back to the system and
//! gets fresh, zeroed pages the next time takes about one fault per 4 KiB.

use std::process::ExitCode;

use model::allocator::keep_freed_memory;
use model::{Adam, AdamConfig, Architecture, Network, Precision, train_step_in};
use tch::{Device, Kind, Tensor};

/// Minor page faults of this process so far: field 10 of `/proc/self/stat`.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(7)?.parse().ok()
}

fn run(steps: u64, default_heap: bool) -> Result<String, Box<dyn std::error::Error>> {
    let heap = if default_heap { "glibc's default".to_owned() } else { keep_freed_memory().to_string() };
    tch::manual_seed(0);
    let network = Network::new(Architecture::Intended, Device::Cpu)?;
    let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default())?;
    let images = Tensor::f_rand([50, 28, 28], (Kind::Float, Device::Cpu))?;
    let labels = Tensor::f_randint(10, [50], (Kind::Int64, Device::Cpu))?;
    for _ in 0..10 {
        train_step_in(&network, &mut optimizer, &images, &labels, Precision::Float32)?;
    }
    // Each step's own count, and their median: a one-time growth of the
    // heap (a first touch of a few MiB in one step) is not a step's habit.
    let mut per_step = Vec::new();
    for _ in 0..steps {
        let before = minor_faults().ok_or("cannot read /proc/self/stat")?;
        train_step_in(&network, &mut optimizer, &images, &labels, Precision::Float32)?;
        per_step.push(minor_faults().ok_or("cannot read /proc/self/stat")? - before);
    }
    per_step.sort_unstable();
    let (median, most) = (per_step[per_step.len() / 2], per_step[per_step.len() - 1]);
    Ok(format!(
        "{{\"heap\": \"{heap}\", \"steps\": {steps}, \"median_minor_faults_per_step\": {median}, \"most_minor_faults_in_a_step\": {most}}}"
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(20).max(1);
    match run(steps, args.contains(&"--default-heap".to_owned())) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
