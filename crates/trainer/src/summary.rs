//! `trainer summary`: the network's layers as a Keras-style table.

use anyhow::{Context, Result};
use model::throughput::{self, Measurement, Throughput};
use model::{Architecture, ModelSummary};
use serde_json::{Value, json};

use crate::cli::SummaryArgs;

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// The totals `config.json` records and the trainer logs.
pub fn totals_json(summary: &ModelSummary, batch_size: u64) -> Value {
    json!({
        "architecture": summary.architecture.name(),
        "parameters": summary.parameters(),
        "batch_norm_statistics": summary.statistics(),
        "forward_flops_per_image": summary.forward_flops(),
        "train_flops_per_image": summary.train_flops_per_image(),
        "optimizer_flops_per_step": summary.optimizer_flops_per_step(),
        "batch_size": batch_size,
        "train_flops_per_step": summary.train_flops_per_step(batch_size),
    })
}

/// One line of totals, for the log.
pub fn totals_line(summary: &ModelSummary, batch_size: u64) -> String {
    format!(
        "{} network: {} parameters; {:.1} MFLOP per image forward, {:.1} MFLOP per image trained, \
         {:.2} GFLOP per step of {batch_size} images (Adam included)",
        summary.architecture.name(),
        thousands(summary.parameters()),
        summary.forward_flops() as f64 / 1e6,
        summary.train_flops_per_image() as f64 / 1e6,
        summary.train_flops_per_step(batch_size) as f64 / 1e9,
    )
}

fn table(summary: &ModelSummary, batch_size: u64) -> String {
    // The kind column is as wide as its longest entry (a strided convolution's is long).
    let kind_width = summary.layers.iter().map(|layer| layer.kind.len()).max().unwrap_or(0).max(28);
    let mut lines = vec![format!(
        "{:<8} {:<kind_width$} {:<14} {:>11} {:>16} {:>16}",
        "layer", "kind", "output shape", "parameters", "forward FLOPs", "training FLOPs"
    )];
    lines.push("-".repeat(lines[0].len()));
    for layer in &summary.layers {
        let shape = format!("{:?}", layer.output_shape);
        lines.push(format!(
            "{:<8} {:<kind_width$} {:<14} {:>11} {:>16} {:>16}",
            layer.name,
            layer.kind,
            shape,
            thousands(layer.parameters),
            thousands(layer.forward_flops),
            thousands(layer.forward_flops + layer.backward_flops)
        ));
    }
    lines.push("-".repeat(lines[0].len()));
    lines.push(format!(
        "{:<8} {:<kind_width$} {:<14} {:>11} {:>16} {:>16}",
        "total",
        "",
        "",
        thousands(summary.parameters()),
        thousands(summary.forward_flops()),
        thousands(summary.train_flops_per_image())
    ));
    lines.push(String::new());
    lines.push(format!(
        "{} trainable parameters ({:.1} MiB as f32), {} batch-norm statistics",
        thousands(summary.parameters()),
        summary.parameters() as f64 * 4.0 / (1 << 20) as f64,
        thousands(summary.statistics())
    ));
    lines.push(format!(
        "FLOPs per image (a multiply-add is 2): {} forward, {} forward and backward in training",
        thousands(summary.forward_flops()),
        thousands(summary.train_flops_per_image())
    ));
    lines.push(format!(
        "a training step of {batch_size} images: {} FLOPs ({} of them Adam's update)",
        thousands(summary.train_flops_per_step(batch_size)),
        thousands(summary.optimizer_flops_per_step())
    ));
    lines.join("\n")
}

/// The measured cost per image as one line.
fn throughput_line(throughput: &Throughput, threads: i32) -> String {
    format!(
        "measured on this machine with {threads} threads: training {:.0} images/s ({:.0} us per image, \
         forward, backward and Adam), evaluation {:.0} images/s ({:.0} us per image)",
        throughput.train_images_per_second,
        throughput.train_micros_per_image(),
        throughput.eval_images_per_second,
        throughput.eval_micros_per_image(),
    )
}

/// The measured cost per image as JSON.
fn throughput_json(throughput: &Throughput, threads: i32) -> Value {
    json!({
        "threads": threads,
        "train_images_per_second": throughput.train_images_per_second,
        "train_microseconds_per_image": throughput.train_micros_per_image(),
        "eval_images_per_second": throughput.eval_images_per_second,
        "eval_microseconds_per_image": throughput.eval_micros_per_image(),
    })
}

/// Times the network here when `--measure` asks for it.
fn measured(args: &SummaryArgs, architecture: Architecture) -> Result<Option<(Throughput, i32)>> {
    if !args.measure {
        return Ok(None);
    }
    if args.threads > 0 {
        tch::set_num_threads(args.threads);
    }
    tch::manual_seed(0);
    let batch_size = i64::try_from(args.batch_size).context("--batch-size is too large")?;
    let measurement = Measurement { batch_size, ..Measurement::default() };
    let throughput = throughput::measure(architecture, tch::Device::Cpu, measurement)
        .with_context(|| format!("timing the {} network", architecture.name()))?;
    Ok(Some((throughput, tch::get_num_threads())))
}

/// Prints the layer table of a network (of a checkpoint, or as `--network` builds it).
pub fn run(args: &SummaryArgs) -> Result<()> {
    let architecture = Architecture::from(args.network);
    let summary = architecture.summary();
    let measured = measured(args, architecture)?;
    if args.json {
        let layers: Vec<Value> = summary
            .layers
            .iter()
            .map(|layer| {
                json!({
                    "name": layer.name,
                    "kind": layer.kind,
                    "output_shape": layer.output_shape,
                    "parameters": layer.parameters,
                    "statistics": layer.statistics,
                    "forward_flops": layer.forward_flops,
                    "backward_flops": layer.backward_flops,
                })
            })
            .collect();
        let mut report = totals_json(&summary, args.batch_size);
        report["layers"] = json!(layers);
        if let Some((throughput, threads)) = &measured {
            report["measured"] = throughput_json(throughput, *threads);
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", table(&summary, args.batch_size));
        if let Some((throughput, threads)) = &measured {
            println!("{}", throughput_line(throughput, *threads));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(3_274_634), "3,274,634");
    }

    #[test]
    fn the_table_lists_every_layer_and_the_totals() {
        let summary = Architecture::Intended.summary();
        let text = table(&summary, 50);
        for layer in &summary.layers {
            assert!(text.lines().any(|line| line.starts_with(layer.name)), "{} missing:\n{text}", layer.name);
        }
        assert!(text.contains("3,274,634 trainable parameters"), "{text}");
        assert!(text.contains("28,027,978 forward"), "{text}");
    }
}
