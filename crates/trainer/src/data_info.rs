//! `trainer data-info`: what the data set holds, split by split.

use anyhow::Result;
use idx::mnist::Split;
use serde_json::json;

use crate::cli::DataInfoArgs;

fn split_json(split: &Split) -> serde_json::Value {
    let (mean, std) = split.pixel_mean_std();
    let (rows, cols) = split.image_size();
    json!({
        "n_images": split.len(),
        "image_size": [rows, cols],
        "label_histogram": split.label_histogram(),
        "pixel_mean": mean,
        "pixel_std": std,
    })
}

/// Prints what the data set holds, split by split (as a table, or JSON with `--json`).
pub fn run(args: &DataInfoArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let start = std::time::Instant::now();
    let mnist = crate::data::load(&args.data)?;
    tracing::debug!(seconds = start.elapsed().as_secs_f64(), "data loaded");
    let splits = [("train", &mnist.train), ("validation", &mnist.validation), ("test", &mnist.test)];
    if args.json {
        let mut report = serde_json::Map::new();
        report.insert("dataset".into(), json!(args.data.dataset.name));
        report.insert("device".into(), json!(model::device::describe(device)));
        for (name, split) in splits {
            report.insert(name.into(), split_json(split));
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("dataset: {}", args.data.dataset.name);
        println!("device: {}", model::device::describe(device));
        for (name, split) in splits {
            let (mean, std) = split.pixel_mean_std();
            let (rows, cols) = split.image_size();
            println!(
                "{name:>10}: {:>6} images of {rows}x{cols}, pixel mean {mean:.5}, std {std:.5}, labels {:?}",
                split.len(),
                split.label_histogram()
            );
        }
    }
    Ok(())
}
